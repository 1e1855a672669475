"""Finding the notebooks to grade, and preparing each one: the cells the grader runs, locked cells as
released, and the reason when a file cannot be graded at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from course import notebooks
from course.config import Assignment, Notebook
from course.errors import CourseError

Submissions = dict[str, dict[str, Path]]  # student -> notebook name -> file


def notebook_for(assignment: Assignment, path: Path) -> Notebook:
    names = {nb.name: nb for nb in assignment.notebooks}
    if path.stem in names:
        return names[path.stem]
    if len(assignment.notebooks) == 1:
        return assignment.notebooks[0]
    raise CourseError(
        f"{path}: cannot tell which notebook of {assignment.name} this is "
        f"(name it one of: {', '.join(n + '.ipynb' for n in names)})"
    )


def discover(assignment: Assignment, paths: list[Path]) -> Submissions:
    """Map student -> notebook name -> file, from files, `<student>/<assignment>/` folders, or a
    `submitted/` tree as nbgrader collects it."""
    found: Submissions = {}

    def add(student: str, file: Path) -> None:
        nb = notebook_for(assignment, file)
        if nb.name in found.setdefault(student, {}):
            raise CourseError(
                f"{file}: student {student!r} has two files for {nb.name}: {found[student][nb.name]} and {file}"
            )
        found[student][nb.name] = file

    for path in map(Path, paths):
        if path.is_file():
            if path.suffix != ".ipynb":
                raise CourseError(f"{path}: not a notebook (expected a .ipynb file)")
            parts = path.resolve().parts
            student = parts[-3] if len(parts) >= 3 and parts[-2] == assignment.name else path.parent.name or "student"
            add(student, path)
        elif path.is_dir():
            direct = sorted(path.glob("*.ipynb"))
            if not direct and (path / assignment.name).is_dir():  # a <student>/ folder
                path = path / assignment.name
                direct = sorted(path.glob("*.ipynb"))
            nested = sorted(path.glob(f"*/{assignment.name}/*.ipynb"))
            if direct:
                student = path.resolve().parent.name if path.name == assignment.name else path.resolve().name
                for f in direct:
                    add(student, f)
            elif nested:
                for f in nested:
                    add(f.parent.parent.name, f)
            else:
                raise CourseError(
                    f"{path}: no notebooks of {assignment.name} found (expected *.ipynb, or "
                    f"<student>/{assignment.name}/*.ipynb as nbgrader collects them)"
                )
        else:
            raise CourseError(f"{path}: no such file or folder")
    return found


@dataclass
class Prepared:
    """One submitted notebook, ready to grade: the cells to run, or the reason it cannot be graded."""

    cells: list[list[str]] = field(default_factory=list)
    problem: str | None = None
    notes: list[str] = field(default_factory=list)


def not_submitted(notebook: Notebook) -> str:
    return f"{notebook.name}.ipynb was not submitted"


def shard(submissions: Submissions, k: int, n: int) -> Submissions:
    """Shard k of n (1 <= k <= n): every n-th student in the order of their ids, so that n machines that see
    the same submitted/ tree split it the same way, each student in exactly one shard."""
    if not 1 <= k <= n:
        raise CourseError(f"--shard {k}/{n}: expected K/N with 1 <= K <= N")
    return {s: submissions[s] for s in sorted(submissions)[k - 1 :: n]}


def prepare(file: Path | None, release: NotebookNode, notebook: Notebook) -> Prepared:
    """Read a submission and make it gradable as nbgrader would: locked cells as released."""
    if file is None:
        return Prepared(problem=not_submitted(notebook))
    try:
        nb = notebooks.read(file)
    except CourseError as exc:
        return Prepared(problem=str(exc))
    if not notebooks.belongs_to(nb, release):
        return Prepared(
            problem=f"this is not {notebook.assignment}'s {notebook.name}: none of its exercise "
            "cells are there (a notebook from another assignment?)"
        )
    prepared = Prepared()
    changed = notebooks.tampering(nb, release)
    if changed:
        prepared.notes.append("locked cells were deleted or changed and are graded as released: " + ", ".join(changed))
    prepared.cells = notebooks.cells_to_run(notebooks.restore_locked(nb, release))
    return prepared
