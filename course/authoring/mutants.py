"""Mechanical mutants of a reference, for `course audit --mutate`.

A *mutant* changes one thing in the student's part of one solution cell (between `### BEGIN SOLUTION` and
`### END SOLUTION`) with a standard operator: an arithmetic or comparison operator swapped, a constant off
by one, a `dim`/`axis` changed, `keepdim` dropped, `+=` turned into `=`, a statement deleted, two arguments
swapped, `.detach()`/`.clone()` removed, a `device=`/`dtype=` argument dropped. The cells are parsed and
rewritten with libcst, which keeps every comment (the solution markers among them) and the layout. A
mutant that does not compile, or whose code is that of the reference or of an earlier mutant, is left
out. A mutant is known by its cell, operator, the code of the line it changes and what that line
becomes (and, when two mutants share all four, their order): a name that survives edits elsewhere.

Every mutant must cost points when graded, or be listed in `autograder/<A>/equivalent/<NB>.yaml` with the
reason it behaves as the reference on every input the exercise allows (`load_equivalents`).
"""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst
import yaml
from libcst.metadata import MetadataWrapper, PositionProvider
from nbformat import NotebookNode

from course import catalog, notebooks
from course.authoring.nulls import cell_exercises, solution_spans
from course.config import Notebook
from course.errors import CourseError

OPERATORS = {
    "arithmetic": "an arithmetic operator swapped",
    "comparison": "a comparison operator swapped",
    "constant": "a constant off by one",
    "dim": "a dim or axis changed",
    "keepdim": "keepdim dropped",
    "assign": "an augmented assignment (+=) turned into =",
    "statement": "a statement deleted",
    "arguments": "two arguments swapped",
    "copy": ".detach() or .clone() removed",
    "device": "a device= or dtype= argument dropped",
}

_ARITHMETIC: dict[type[cst.BaseBinaryOp], type[cst.BaseBinaryOp]] = {
    cst.Add: cst.Subtract,
    cst.Subtract: cst.Add,
    cst.Multiply: cst.Divide,
    cst.Divide: cst.Multiply,
    cst.FloorDivide: cst.Divide,
    cst.Modulo: cst.FloorDivide,
    cst.Power: cst.Multiply,
    cst.MatrixMultiply: cst.Multiply,
}
_AUGMENTED: dict[type[cst.BaseAugOp], type[cst.BaseAugOp]] = {
    cst.AddAssign: cst.SubtractAssign,
    cst.SubtractAssign: cst.AddAssign,
    cst.MultiplyAssign: cst.DivideAssign,
    cst.DivideAssign: cst.MultiplyAssign,
}
_COMPARISON: dict[type[cst.BaseCompOp], type[cst.BaseCompOp]] = {
    cst.LessThan: cst.LessThanEqual,
    cst.LessThanEqual: cst.LessThan,
    cst.GreaterThan: cst.GreaterThanEqual,
    cst.GreaterThanEqual: cst.GreaterThan,
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
}
_DIM_WORDS = {"dim", "axis"}
_KEEPDIM_WORDS = {"keepdim", "keepdims"}
_DEVICE_WORDS = {"device", "dtype"}
_COPY_METHODS = {"detach", "clone"}


@dataclass(frozen=True)
class Mutant:
    cell: str
    exercise: str
    operator: str
    line: str  # the code of the line it changes (comments left out)
    mutated: str  # what that line becomes ("" for a deleted statement)
    occurrence: int  # 0, or the order among mutants that share cell, operator, line and mutated
    source: str  # the cell with the mutant written in
    lineno: int  # the line in the cell (for reports; not part of its name)
    function: str  # the qualified name of the function it is in ("" at the cell's top level)

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return self.cell, self.operator, self.line, self.mutated, self.occurrence

    @property
    def id(self) -> str:
        digest = hashlib.sha1(repr(self.key).encode()).hexdigest()[:8]
        return f"{self.cell}/{self.operator}/{digest}"

    @property
    def says(self) -> str:
        change = f"`{self.line}` -> `{self.mutated}`" if self.mutated else f"`{self.line}` deleted"
        return f"{OPERATORS[self.operator]}: {change}"

    def variant(self) -> catalog.Variant:
        return catalog.Variant(self.id, self.exercise, self.says, self.cell, source=self.source)


@dataclass(frozen=True)
class Equivalent:
    """A reviewed mutant that behaves as the reference on every input the exercise allows."""

    cell: str
    operator: str
    line: str
    mutated: str
    occurrence: int
    reason: str

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return self.cell, self.operator, self.line, self.mutated, self.occurrence


# -- the student's part of a cell ---------------------------------------------------------------------------
def _code_of(line: str) -> str:
    """A line's code without its comment or indentation."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return line[: tok.start[1]].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return line.strip()


# -- mutants ---------------------------------------------------------------------------------------------------
@dataclass
class _Site:
    node: cst.CSTNode
    operator: str
    replacement: cst.CSTNode | cst.RemovalSentinel
    function: str


class _Sites(cst.CSTVisitor):
    """Every place of the student's part an operator applies to, with what it becomes."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, spans: list[tuple[int, int]]):
        super().__init__()
        self.spans = spans
        self.sites: list[_Site] = []
        self.scope: list[str] = []  # qualified-name parts: a function's inner names follow "<locals>"
        self.dim_values: set[int] = set()  # ids of the constants that are dim= values (the dim operator's)

    def _inside(self, node: cst.CSTNode) -> bool:
        pos = self.get_metadata(PositionProvider, node)
        return any(a <= pos.start.line and pos.end.line <= b for a, b in self.spans)

    def _add(self, node: cst.CSTNode, operator: str, replacement: cst.CSTNode | cst.RemovalSentinel) -> None:
        if self._inside(node):
            parts = [p for p in self.scope if p]
            if parts and parts[-1] == "<locals>":
                parts.pop()
            self.sites.append(_Site(node, operator, replacement, ".".join(parts)))

    # scopes, for the qualified name of the function a mutant is in
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scope += [node.name.value, ""]

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        del self.scope[-2:]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope += [node.name.value, "<locals>"]

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        del self.scope[-2:]

    # operators
    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        new = _ARITHMETIC.get(type(node.operator))
        if new is not None:
            self._add(node, "arithmetic", node.with_changes(operator=_op(new, node.operator)))

    def visit_UnaryOperation(self, node: cst.UnaryOperation) -> None:
        if isinstance(node.operator, cst.Minus) and not isinstance(node.expression, (cst.Integer, cst.Float)):
            self._add(node, "arithmetic", node.expression)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        new = _AUGMENTED.get(type(node.operator))
        if new is not None:
            self._add(node, "arithmetic", node.with_changes(operator=_op(new, node.operator)))
        self._add(node, "assign", cst.Assign(targets=[cst.AssignTarget(node.target)], value=node.value))

    def visit_ComparisonTarget(self, node: cst.ComparisonTarget) -> None:
        new = _COMPARISON.get(type(node.operator))
        if new is not None:
            self._add(node, "comparison", node.with_changes(operator=_op(new, node.operator)))

    def visit_Integer(self, node: cst.Integer) -> None:
        if id(node) in self.dim_values:
            return
        value = int(node.value, 0)
        for v in (value + 1, value - 1):
            if v >= 0:
                self._add(node, "constant", cst.Integer(str(v)))

    def visit_Float(self, node: cst.Float) -> None:
        try:
            value = float(node.value)
        except ValueError:
            return
        for v in (value + 1, value - 1):
            literal = cst.Float(repr(abs(v)))  # a literal has no sign: a negative one is a unary minus
            self._add(node, "constant", literal if v >= 0 else cst.UnaryOperation(cst.Minus(), literal))

    def visit_Call(self, node: cst.Call) -> None:
        for i, arg in enumerate(node.args):
            word = arg.keyword.value if arg.keyword else None
            if word in _DIM_WORDS:
                value = _int_value(arg.value)
                if value is not None:
                    self._mark_dim_value(arg.value)
                    for v in dict.fromkeys((value + 1, value - 1, -1 if value >= 0 else 0)):
                        if v != value:
                            self._add(arg, "dim", arg.with_changes(value=_int_node(v)))
            if word in _KEEPDIM_WORDS:
                self._add(node, "keepdim", _without_arg(node, i))
            if word in _DEVICE_WORDS:
                self._add(node, "device", _without_arg(node, i))
        positional = [i for i, a in enumerate(node.args) if a.keyword is None and not a.star]
        for i, j in itertools.pairwise(positional):
            args = list(node.args)
            args[i], args[j] = args[i].with_changes(value=args[j].value), args[j].with_changes(value=args[i].value)
            self._add(node, "arguments", node.with_changes(args=args))
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _COPY_METHODS and not node.args:
            self._add(node, "copy", func.value)

    def _mark_dim_value(self, value: cst.BaseExpression) -> None:
        if isinstance(value, cst.Integer):
            self.dim_values.add(id(value))
        elif isinstance(value, cst.UnaryOperation) and isinstance(value.expression, cst.Integer):
            self.dim_values.add(id(value.expression))

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        body = node.body
        if len(body) == 1 and isinstance(body[0], cst.Pass):
            return
        if len(body) == 1 and isinstance(body[0], cst.Expr) and isinstance(body[0].value, cst.SimpleString):
            return  # a docstring
        self._add(node, "statement", node.with_changes(body=[cst.Pass()]))


def _op(kind: type[Any], like: Any) -> Any:
    """An operator node of `kind` with the spacing of `like`."""
    spacing = {k: getattr(like, k) for k in ("whitespace_before", "whitespace_after") if hasattr(like, k)}
    if hasattr(like, "whitespace_between") and "whitespace_between" in kind.__dataclass_fields__:
        spacing["whitespace_between"] = like.whitespace_between
    if "whitespace_between" in kind.__dataclass_fields__ and "whitespace_between" not in spacing:
        spacing["whitespace_between"] = cst.SimpleWhitespace(" ")
    return kind(**{k: v for k, v in spacing.items() if k in kind.__dataclass_fields__})


def _int_value(value: cst.BaseExpression) -> int | None:
    if isinstance(value, cst.Integer):
        return int(value.value, 0)
    minus = isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus)
    if minus and isinstance(value, cst.UnaryOperation) and isinstance(value.expression, cst.Integer):
        return -int(value.expression.value, 0)
    return None


def _int_node(v: int) -> cst.BaseExpression:
    return cst.Integer(str(v)) if v >= 0 else cst.UnaryOperation(cst.Minus(), cst.Integer(str(-v)))


def _without_arg(call: cst.Call, index: int) -> cst.Call:
    args = list(call.args)
    del args[index]
    if args and index == len(args):  # the last one went: the one before keeps no trailing comma
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)


class _Replace(cst.CSTTransformer):
    def __init__(self, target: cst.CSTNode, replacement: cst.CSTNode | cst.RemovalSentinel):
        super().__init__()
        self.target = target
        self.replacement = replacement

    def on_leave(self, original_node: Any, updated_node: Any) -> Any:
        return self.replacement if original_node is self.target else updated_node


def _normal(text: str) -> str | None:
    try:
        return ast.dump(ast.parse(text))
    except SyntaxError:
        return None


@dataclass
class Generated:
    mutants: list[Mutant] = field(default_factory=list)
    invalid: int = 0  # did not compile
    identical: int = 0  # the reference's code, or an earlier mutant's


def cell_mutants(cell: str, exercise: str, text: str) -> Generated:
    """Every mutant of one cell's student part."""
    out = Generated()
    spans = solution_spans(text)
    if not spans:
        return out
    try:
        wrapper = MetadataWrapper(cst.parse_module(text))
    except cst.ParserSyntaxError as exc:
        raise CourseError(f"cell [{cell}]: libcst cannot parse it ({exc.message})") from None
    finder = _Sites(spans)
    wrapper.visit(finder)
    positions = wrapper.resolve(PositionProvider)
    seen = {_normal(text)}
    count: dict[tuple[str, str, str, str], int] = {}
    original = text.splitlines()
    for site in finder.sites:
        code = wrapper.module.visit(_Replace(site.node, site.replacement)).code
        normal = _normal(code)
        if normal is None:
            out.invalid += 1
            continue
        if normal in seen:
            out.identical += 1
            continue
        seen.add(normal)
        lineno = positions[site.node].start.line
        line, mutated = _changed(original, code.splitlines(), lineno)
        key = (cell, site.operator, line, mutated)
        occurrence = count.get(key, 0)
        count[key] = occurrence + 1
        out.mutants.append(
            Mutant(cell, exercise, site.operator, line, mutated, occurrence, code, lineno, site.function)
        )
    return out


def _changed(before: list[str], after: list[str], lineno: int) -> tuple[str, str]:
    """The code of the line a mutant changes, and what it becomes (lines joined by " / " when a change spans
    several; "" when the statement is gone)."""
    import difflib

    ops = [op for op in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops:
        return _code_of(before[lineno - 1]), ""
    _, i1, i2, j1, j2 = ops[0][0], ops[0][1], ops[-1][2], ops[0][3], ops[-1][4]
    old = " / ".join(_code_of(x) for x in before[i1:i2] if _code_of(x))
    new = " / ".join(_code_of(x) for x in after[j1:j2] if _code_of(x))
    return old or _code_of(before[lineno - 1]), "" if new == "pass" else new


def notebook_mutants(source: NotebookNode, notebook: Notebook) -> Generated:
    """Every mutant of every solution cell of a source notebook that belongs to an exercise (cells in order)."""
    out = Generated()
    exercises = cell_exercises(source, notebook)
    for cid, cell in notebooks.solution_cells(source).items():
        if cid not in exercises:
            continue
        part = cell_mutants(cid, exercises[cid], cell.source)
        out.mutants += part.mutants
        out.invalid += part.invalid
        out.identical += part.identical
    return out


# -- the reviewed list of equivalent mutants -------------------------------------------------------------------
def load_equivalents(path: Path) -> list[Equivalent]:
    """autograder/A/equivalent/NB.yaml: cell, operator, line, mutant, (occurrence,) reason."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise CourseError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list):
        raise CourseError(f"{path}: expected a list of equivalent mutants, found {type(data).__name__}")
    out = []
    required, optional = {"cell", "operator", "line", "mutant", "reason"}, {"occurrence"}
    for i, e in enumerate(data):
        if not isinstance(e, dict) or not required <= set(e) or set(e) - required - optional:
            raise CourseError(
                f"{path}: [{i}]: expected the keys cell, operator, line, mutant, reason (and optionally "
                f"occurrence); found {e!r}"[:300]
            )
        if e["operator"] not in OPERATORS:
            raise CourseError(f"{path}: [{i}].operator: expected one of {sorted(OPERATORS)}, found {e['operator']!r}")
        if not str(e["reason"]).strip() or "\n" in str(e["reason"]).strip():
            raise CourseError(f"{path}: [{i}].reason: expected one line saying why it behaves as the reference")
        out.append(
            Equivalent(
                str(e["cell"]),
                str(e["operator"]),
                str(e["line"]),
                str(e["mutant"] or ""),
                int(e.get("occurrence", 0)),
                str(e["reason"]).strip(),
            )
        )
    return out


def equivalent_entry(m: Mutant) -> str:
    """The YAML entry an author adds after reviewing that `m` behaves as the reference."""
    entry: dict[str, Any] = {"cell": m.cell, "operator": m.operator, "line": m.line, "mutant": m.mutated}
    if m.occurrence:
        entry["occurrence"] = m.occurrence
    entry["reason"] = "WHY it behaves as the reference on every input the exercise allows"
    return yaml.safe_dump([entry], sort_keys=False, width=200, allow_unicode=True).rstrip()


def in_catalog(m: Mutant, reference_cells: dict[str, str], mistakes: Sequence[catalog.Variant]) -> bool:
    """The mutant's code is that of a cataloged mistake (so naming it is right)."""
    mine = _normal(m.source)
    for v in mistakes:
        if v.cell != m.cell or v.cell not in reference_cells:
            continue
        try:
            theirs = _normal(v.edit(reference_cells[v.cell], f"cell [{v.cell}]"))
        except CourseError:
            continue
        if theirs == mine:
            return True
    return False
