"""Catalogs of realistic wrong answers, and notebooks that make them."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from course import notebooks
from course.config import Notebook
from course.errors import CourseError


@dataclass(frozen=True)
class Mistake:
    id: str
    exercise: str
    says: str
    cell: str
    replace: str
    with_: str
    also: tuple[str, ...] = ()   # other exercises that rightly fail too, because they build on this one


def load(notebook: Notebook, path: Path) -> list[Mistake]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise CourseError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list):
        raise CourseError(f"{path}: expected a list of mistakes, found {type(data).__name__}")
    exercises = {e.id for e in notebook.auto_exercises}
    out = []
    for i, m in enumerate(data):
        where = f"{path}: [{i}]"
        keys = {"id", "exercise", "says", "cell", "replace", "with"}
        if not isinstance(m, dict) or set(m) - keys - {"also"} or not keys <= set(m):
            raise CourseError(f"{where}: expected the keys id, exercise, says, cell, replace, with (and "
                              f"optionally also); found {m!r}"[:300])
        also = m.get("also") or []
        for ex in [m["exercise"], *also]:
            if ex not in exercises:
                raise CourseError(f"{where}: expected exercises among {sorted(exercises)}, found {ex!r}")
        if m["id"] in {x.id for x in out}:
            raise CourseError(f"{where}.id: {m['id']!r} is used twice")
        out.append(Mistake(m["id"], m["exercise"], m["says"], m["cell"], m["replace"], m["with"], tuple(also)))
    return out


def apply(nb, mistakes: list[Mistake], source: str = "notebook"):
    """A copy of the notebook with each mistake made in its solution cell."""
    nb = copy.deepcopy(nb)
    cells = notebooks.solution_cells(nb)
    for m in mistakes:
        cell = cells.get(m.cell)
        if cell is None:
            raise CourseError(f"mistake {m.id}: the {source} has no solution cell {m.cell!r}")
        if cell.source.count(m.replace) != 1:
            raise CourseError(f"mistake {m.id}: {m.replace!r} occurs {cell.source.count(m.replace)} times in cell "
                              f"{m.cell!r}, expected exactly once")
        cell.source = cell.source.replace(m.replace, m.with_)
    return nb
