"""Reading notebooks: which cells a grader runs, and the reference regions that become solution cells."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from course.config import Assignment, Course
from course.errors import CourseError

SKIP_TAG = "grader-skip"
REGION = re.compile(r"^# %% \[([A-Za-z0-9_.-]+)\]\s*$", re.M)


def read(path: Path) -> NotebookNode:
    try:
        return nbformat.read(str(path), as_version=4)  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise CourseError(f"{path}: no such notebook") from None
    except Exception as exc:  # nbformat raises several kinds for a file that is not a notebook
        raise CourseError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})".splitlines()[0]) from None


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    meta: dict[str, Any] = cell.get("metadata", {}).get("nbgrader", {})
    return meta


def is_visible_test(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def cells_to_run(nb: NotebookNode) -> list[list[str]]:
    """The code the grader executes: definitions and setup, never visible tests or long runs.

    Each entry is [label, source]; the label names the cell in messages ("7" or "7 value").
    """
    cells = []
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or is_visible_test(cell):
            continue
        if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        grade_id = nbgrader_meta(cell).get("grade_id")
        label = f"{index}" + (f", {grade_id}" if nbgrader_meta(cell).get("solution") and grade_id else "")
        cells.append([label, cell.source])
    return cells


def is_locked(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def _by_grade_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if "grade_id" in nbgrader_meta(c)}


def _significant(cell: NotebookNode) -> dict[str, Any]:
    return {k: v for k, v in nbgrader_meta(cell).items() if k in ("grade", "solution", "locked", "points", "task")}


def belongs_to(submission: NotebookNode, release: NotebookNode) -> bool:
    """A submission of this notebook keeps at least one of the release's exercise cells."""
    return bool(set(solution_cells(submission)) & set(solution_cells(release)))


def tampering(submission: NotebookNode, release: NotebookNode) -> list[str]:
    """The locked cells of the release that the submission deleted or changed, in a few words each."""
    theirs = _by_grade_id(submission)
    found = []
    for gid, cell in _by_grade_id(release).items():
        if gid not in theirs:
            found.append(f"{gid} (deleted)")
        elif _significant(theirs[gid]) != _significant(cell):
            found.append(f"{gid} (nbgrader metadata changed)")
        elif is_locked(cell) and theirs[gid].source != cell.source:
            found.append(f"{gid} (edited)")
    return found


def restore_locked(submission: NotebookNode, release: NotebookNode) -> NotebookNode:
    """Like nbgrader's autograding: locked cells run as the instructor wrote them, and every cell the
    release knows keeps the release's nbgrader metadata (a student cannot turn a test into a solution)."""
    originals = _by_grade_id(release)
    for cell in submission.cells:
        original = originals.get(nbgrader_meta(cell).get("grade_id", ""))
        if original is None:
            continue
        cell.metadata["nbgrader"] = dict(nbgrader_meta(original))
        if is_locked(original):
            cell.source = original.source
    return submission


def is_solution_label(label: str) -> bool:
    """Labels of solution cells name their grade_id ("7, value"); other cells are numbers only."""
    return ", " in label


def regions(path: Path) -> dict[str, str]:
    """The reference module's regions, `# %% [cell-id]` to the next marker, trailing blank lines removed."""
    text = path.read_text()
    marks = list(REGION.finditer(text))
    out = {}
    for mark, nxt in zip(marks, [*marks[1:], None], strict=False):
        body = text[mark.end() : nxt.start() if nxt else len(text)]
        if mark.group(1) in out:
            raise CourseError(f"{path}: region [{mark.group(1)}] appears twice")
        out[mark.group(1)] = body.strip("\n").rstrip()
    return out


def solution_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {
        nbgrader_meta(c)["grade_id"]: c
        for c in nb.cells
        if c.cell_type == "code" and nbgrader_meta(c).get("solution") and "grade_id" in nbgrader_meta(c)
    }


def sync_solutions(notebook_path: Path, reference_path: Path, write: bool) -> list[str]:
    """Make the notebook's solution cells equal the reference regions. Returns the cell ids that differed
    (and, with write=True, were rewritten). A cell or region without a partner is an error."""
    nb = read(notebook_path)
    cells, parts = solution_cells(nb), regions(reference_path)
    if set(cells) != set(parts):
        only_nb, only_ref = sorted(set(cells) - set(parts)), sorted(set(parts) - set(cells))
        raise CourseError(
            f"{notebook_path}: solution cells and regions of {reference_path} do not match "
            f"(only in the notebook: {only_nb or 'none'}; only in the reference: {only_ref or 'none'})"
        )
    changed = [cid for cid, cell in cells.items() if cell.source != parts[cid]]
    if write and changed:
        for cid in changed:
            cells[cid].source = parts[cid]
        nbformat.write(nb, str(notebook_path))
    return changed


def points_by_grade_id(nb: NotebookNode) -> dict[str, float]:
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0))
        for c in nb.cells
        if nbgrader_meta(c).get("grade") and "grade_id" in nbgrader_meta(c)
    }


def check_description(course: Course, assignment: Assignment) -> None:
    """course.yaml against the notebooks it describes: each notebook is there (in source/ or release/), each
    exercise is one of its grade cells with the points the notebook gives it, and each grade cell is an
    exercise. A typo or a changed number is reported as course.yaml's, at its key, before anything is graded
    (the gradebook takes its maxima from the notebook, the grader its points from course.yaml)."""
    described = course.files.course_yaml
    for i, nb in enumerate(assignment.notebooks):
        key = f"assignments.{assignment.name}.notebooks[{i}]"
        paths = course.paths(nb)
        file = paths.source if paths.source.is_file() else paths.release
        if not file.is_file():
            there = sorted({p.stem for d in (paths.source.parent, paths.release.parent) for p in d.glob("*.ipynb")})
            raise CourseError(
                f"{described}: {key}.name: no notebook {nb.name!r} in source/{assignment.name}/ or "
                f"release/{assignment.name}/ (there are: {', '.join(there) or 'none'})"
            )
        cells = points_by_grade_id(read(file))
        for j, ex in enumerate(nb.exercises):
            where = f"{described}: {key}.exercises[{j}]"
            if ex.id not in cells:
                raise CourseError(
                    f"{where}.id: {ex.id!r} is not a grade cell of {file} (its grade cells: {', '.join(cells)})"
                )
            if cells[ex.id] != ex.points:
                raise CourseError(
                    f"{where}.points: {ex.points:g} here but {cells[ex.id]:g} in {file}'s grade cell {ex.id!r} "
                    "(the gradebook takes the notebook's; make them agree, then release again)"
                )
        extra = sorted(set(cells) - {e.id for e in nb.exercises})
        if extra:
            raise CourseError(
                f"{described}: {key}.exercises: {file} has grade cells it does not list: {', '.join(extra)}"
            )
