"""Catalogs of variants of the reference: realistic mistakes the hidden suite must catch, and correct
alternatives (written differently) it must accept. A variant edits one solution cell, either by replacing
one piece of text or by giving the whole cell."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml
from nbformat import NotebookNode

from course import config, notebooks
from course.config import Notebook
from course.errors import CourseError


@dataclass(frozen=True)
class Variant:
    id: str
    exercise: str
    says: str
    cell: str
    replace: str | None = None
    with_: str | None = None
    source: str | None = None  # the whole cell, for an alternative written from scratch
    also: tuple[str, ...] = ()  # other exercises that rightly fail too, because they build on this one
    correct: bool = False  # an alternative: it must keep every point

    def edit(self, text: str, where: str) -> str:
        """`text` (a solution cell or reference region) as this variant writes it."""
        if self.source is not None:
            return self.source.strip("\n").rstrip()
        assert self.replace is not None and self.with_ is not None  # checked when the catalog was read
        if text.count(self.replace) != 1:
            raise CourseError(
                f"{'alternative' if self.correct else 'mistake'} {self.id}: {self.replace!r} "
                f"occurs {text.count(self.replace)} times in {where}, expected exactly once"
            )
        return text.replace(self.replace, self.with_)


Mistake = Variant


def _load(notebook: Notebook, path: Path, correct: bool) -> list[Variant]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise CourseError(config.yaml_problem(path, exc)) from None
    what = "alternatives" if correct else "mistakes"
    if not isinstance(data, list):
        raise CourseError(f"{path}: expected a list of {what}, found {type(data).__name__}")
    exercises = {e.id for e in notebook.auto_exercises}
    optional = {"source", "replace", "with"} | (set() if correct else {"also"})
    out: list[Variant] = []
    for i, m in enumerate(data):
        where = f"{path}: [{i}]"
        keys = {"id", "exercise", "says", "cell"}
        edits = isinstance(m, dict) and (("source" in m) != ("replace" in m) and ("replace" in m) == ("with" in m))
        if not isinstance(m, dict) or set(m) - keys - optional or not keys <= set(m) or not edits:
            raise CourseError(
                f"{where}: expected the keys id, exercise, says, cell, and either replace and with "
                f"or source{'' if correct else ' (and optionally also)'}; found {m!r}"[:300]
            )
        also = m.get("also") or []
        for ex in [m["exercise"], *also]:
            if ex not in exercises:
                raise CourseError(f"{where}: expected exercises among {sorted(exercises)}, found {ex!r}")
        if m["id"] in {x.id for x in out}:
            raise CourseError(f"{where}.id: {m['id']!r} is used twice")
        out.append(
            Variant(
                m["id"],
                m["exercise"],
                m["says"],
                m["cell"],
                m.get("replace"),
                m.get("with"),
                m.get("source"),
                tuple(also),
                correct,
            )
        )
    return out


def load(notebook: Notebook, path: Path) -> list[Variant]:
    """The notebook's mistakes (autograder/A/mistakes/NB.yaml)."""
    return _load(notebook, path, correct=False)


def load_alternatives(notebook: Notebook, path: Path) -> list[Variant]:
    """The notebook's correct alternatives (autograder/A/alternatives/NB.yaml)."""
    return _load(notebook, path, correct=True)


def apply(nb: NotebookNode, variants: list[Variant], source: str = "notebook") -> NotebookNode:
    """A copy of the notebook with each variant written into its solution cell."""
    nb = copy.deepcopy(nb)
    cells = notebooks.solution_cells(nb)
    for v in variants:
        cell = cells.get(v.cell)
        if cell is None:
            raise CourseError(f"{v.id}: the {source} has no solution cell {v.cell!r}")
        cell.source = v.edit(cell.source, f"cell {v.cell!r}")
    return nb


def apply_to_reference(text: str, variant: Variant) -> str:
    """The reference module's text with the variant written into its region."""
    marks = list(notebooks.REGION.finditer(text))
    for mark, nxt in zip(marks, [*marks[1:], None], strict=False):
        if mark.group(1) == variant.cell:
            start, end = mark.end(), nxt.start() if nxt else len(text)
            body = text[start:end]
            core = body.strip("\n").rstrip()
            lead = body[: body.index(core)] if core else body
            return (
                text[:start] + lead + variant.edit(core, f"region [{variant.cell}]") + "\n\n" + text[end:].lstrip("\n")
            )
    raise CourseError(f"{variant.id}: the reference has no region [{variant.cell}]")
