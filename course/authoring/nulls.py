"""Null submissions: the reference with a function made to do nothing, written without any catalog.

Every function of a solution cell that holds a student part (the code between the solution markers) is
nulled in each way that applies to it: it does nothing (`pass` where the solution goes), returns None,
returns zeros of the reference's shapes, or returns its input unchanged; alone, and every function at once.
A suite passes when a function nulled alone costs its exercise points and fails every test that calls it
and no other student function, when every function of an exercise nulled at once scores 0 on that
exercise, and every function of the notebook nulled at once scores 0 on all of them: no test's expected
state can be reached by doing nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from nbformat import NotebookNode

from course import catalog, notebooks
from course.config import Notebook
from course.errors import CourseError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

KINDS = {
    "pass": "does nothing",
    "none": "returns None",
    "zeros": "returns zeros of the reference's shapes",  # computed on copies of its arguments
    "identity": "returns its input unchanged",
}

# the decorators of the "zeros" and "identity" kinds, put at the top of the nulled cell
HELPER = '''
class __course_null__:
    """Decorators of the audit's null submissions: a result made zeros, or the input returned."""

    @staticmethod
    def _zero(x, seen):
        import numpy as np
        import torch

        if isinstance(x, torch.Tensor):
            seen.append(1)
            return torch.zeros_like(x)
        if isinstance(x, torch.nn.Module):
            with torch.no_grad():
                for t in [*x.parameters(), *x.buffers()]:
                    t.zero_()
                    seen.append(1)
            return x
        if isinstance(x, np.ndarray):
            seen.append(1)
            return np.zeros_like(x)
        if isinstance(x, bool):
            seen.append(1)
            return False
        if isinstance(x, (int, float, complex, np.number)):
            seen.append(1)
            return type(x)(0)
        if isinstance(x, dict):
            return type(x)((k, __course_null__._zero(v, seen)) for k, v in x.items())
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return type(x)(*(__course_null__._zero(v, seen) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(__course_null__._zero(v, seen) for v in x)
        return x

    @staticmethod
    def zeros(fn):
        import functools

        @functools.wraps(fn)
        def zeroed(*args, **kwargs):
            import copy

            try:  # the function runs on copies, to learn the result's shapes: its work reaches nobody
                args, kwargs = copy.deepcopy((args, kwargs))
            except Exception:
                pass
            seen = []
            out = __course_null__._zero(fn(*args, **kwargs), seen)
            return out if seen else None

        return zeroed

    @staticmethod
    def identity(skip):
        import functools

        def wrap(fn):
            @functools.wraps(fn)
            def same(*args, **kwargs):
                rest = [*args[skip:], *kwargs.values()]
                return rest[0] if rest else None

            return same

        return wrap
'''.strip()


@dataclass(frozen=True)
class Function:
    """A function of a solution cell that holds a student part."""

    cell: str  # the solution cell's grade id
    exercise: str
    qualname: str
    first: int  # 1-based line of its def (decorators excluded)
    spans: tuple[tuple[int, int], ...]  # 1-based (first, last) lines of its student parts
    method: bool  # its first argument is self or cls
    returns: bool  # it has a `return <value>` of its own
    inputs: bool  # it takes an argument besides self

    def kinds(self) -> list[str]:
        out = ["pass", "none"]
        if self.returns and self.qualname.rsplit(".", 1)[-1] != "__init__":
            out.append("zeros")
            if self.inputs:
                out.append("identity")
        return out


@dataclass(frozen=True)
class Null:
    """One null submission: the functions nulled and the solution cells rewritten. Its scope is "alone" (one
    function), "exercise" (every function of `exercise`) or "notebook" (every function)."""

    label: str
    functions: tuple[Function, ...]
    cells: dict[str, str]  # grade id -> the cell's nulled text
    scope: str = "alone"

    @property
    def alone(self) -> bool:
        return self.scope == "alone"

    @property
    def exercise(self) -> str:
        return self.functions[0].exercise

    def variants(self) -> list[catalog.Variant]:
        return [catalog.Variant(f"null {self.label}", "", self.label, c, source=t) for c, t in self.cells.items()]


def cell_exercises(source: NotebookNode, notebook: Notebook) -> dict[str, str]:
    """Solution cell id -> the exercise it belongs to: that of the next visible test cell."""
    exercises = {e.id for e in notebook.auto_exercises}
    out: dict[str, str] = {}
    pending: list[str] = []
    for cell in source.cells:
        meta = notebooks.nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("solution") and "grade_id" in meta:
            pending.append(meta["grade_id"])
        elif notebooks.is_visible_test(cell) and meta.get("grade_id") in exercises:
            out.update(dict.fromkeys(pending, meta["grade_id"]))
            pending = []
    return out


def solution_spans(text: str) -> list[tuple[int, int]]:
    """1-based (first, last) lines strictly between each BEGIN and END marker: the student's parts."""
    spans, start = [], None
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip() == BEGIN:
            start = i
        elif line.strip() == END and start is not None:
            spans.append((start + 1, i - 1))
            start = None
    return spans


def functions(cell: str, exercise: str, text: str) -> list[Function]:
    """The functions (top level and methods, at any depth) whose own bodies hold a student part."""
    spans = solution_spans(text)
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise CourseError(f"solution cell {cell}: does not parse ({exc.msg}, line {exc.lineno})") from None
    out: list[Function] = []

    def walk(node: ast.AST, scope: list[str], in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                walk(child, [*scope, child.name], True)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                end = child.end_lineno or child.lineno
                own = [(a, b) for a, b in spans if child.lineno < a and b <= end]
                inner = [
                    s
                    for sub in ast.walk(child)
                    if sub is not child and isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                    for s in own
                    if sub.lineno <= s[0] and s[1] <= (sub.end_lineno or sub.lineno)
                ]
                mine = tuple(s for s in own if s not in inner)
                if mine:
                    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in child.decorator_list)
                    params = [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]
                    skip = 1 if in_class and not static else 0
                    qualname = ".".join([*scope, child.name])
                    out.append(
                        Function(
                            cell,
                            exercise,
                            qualname,
                            child.lineno,
                            mine,
                            in_class and not static,
                            _returns_value(child),
                            len(params) > skip or child.args.vararg is not None,
                        )
                    )
                walk(child, [*scope, child.name, "<locals>"], False)

    walk(tree, [], False)
    return out


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    out = []
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            out += [child, *_own_nodes(child)]
    return out


def _returns_value(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    own = _own_nodes(fn)
    values = [n.value for n in own if isinstance(n, ast.Return) and n.value is not None]
    returns = any(not (isinstance(v, ast.Constant) and v.value is None) for v in values)
    return returns and not any(isinstance(n, ast.Yield | ast.YieldFrom) for n in own)


def nulled(text: str, chosen: list[tuple[Function, str]]) -> str:
    """The cell's text with each (function, kind) nulled."""
    lines = text.splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (first, last, new lines): 0-based, inclusive
    helper = False
    for fn, kind in chosen:
        if kind in ("pass", "none"):
            for a, b in fn.spans:
                indent = re.match(r"\s*", lines[a - 2]).group(0)  # type: ignore[union-attr]
                edits.append((a - 1, b - 1, [indent + ("pass" if kind == "pass" else "return None")]))
        else:
            helper = True
            indent = re.match(r"\s*", lines[fn.first - 1]).group(0)  # type: ignore[union-attr]
            deco = "__course_null__.zeros" if kind == "zeros" else f"__course_null__.identity({int(fn.method)})"
            edits.append((fn.first - 1, fn.first - 2, [f"{indent}@{deco}"]))  # a line above the def
    for first, last, new in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[first : last + 1] = new
    body = "\n".join(lines)
    return f"{HELPER}\n\n\n{body}" if helper else body


def submissions(source: NotebookNode, notebook: Notebook) -> list[Null]:
    """Each function nulled alone in each way that applies to it; then, way by way, every function of an
    exercise that has several, and every function of the notebook."""
    exercises = cell_exercises(source, notebook)
    texts = {cid: c.source for cid, c in notebooks.solution_cells(source).items() if cid in exercises}
    found = {cid: functions(cid, exercises[cid], text) for cid, text in texts.items()}
    out: list[Null] = []
    for cid, fns in found.items():
        for fn in fns:
            for kind in fn.kinds():
                out.append(Null(f"{fn.qualname} {KINDS[kind]}", (fn,), {cid: nulled(texts[cid], [(fn, kind)])}))

    def every(chosen: list[Function], label: str, scope: str) -> None:
        for kind, says in KINDS.items():
            cells = {
                cid: nulled(texts[cid], [(fn, kind if kind in fn.kinds() else "pass") for fn in fns if fn in chosen])
                for cid, fns in found.items()
                if any(fn in chosen for fn in fns)
            }
            out.append(Null(f"{label} {says}", tuple(chosen), cells, scope))

    everything = [fn for fns in found.values() for fn in fns]
    for exercise in dict.fromkeys(fn.exercise for fn in everything):
        of_exercise = [fn for fn in everything if fn.exercise == exercise]
        if len(of_exercise) > 1:
            every(of_exercise, f"every function of {exercise}", "exercise")
    if everything:
        every(everything, "every function", "notebook")
    return out
