"""From source/ to release/: write the reference regions into the solution cells, then let nbgrader make the
student notebooks (and record the assignment's cells in its gradebook)."""

from __future__ import annotations

import filecmp
import tempfile
from pathlib import Path

from course import notebooks
from course.config import Assignment, Course, Notebook
from course.errors import CourseError
from course.publish import nbgrader


def sync(course: Course, assignment: Assignment, write: bool, notebook: str | None = None) -> dict[str, list[str]]:
    """Solution cells that differ from the reference regions, per notebook (rewritten when `write`)."""
    out = {}
    for nb in _selected(assignment, notebook):
        paths = course.paths(nb)
        changed = notebooks.sync_solutions(paths.source, paths.reference, write=write)
        if changed:
            out[nb.name] = changed
    return out


def check_points(course: Course, assignment: Assignment, notebook: str | None = None) -> None:
    """The grade cells of the source notebooks are the exercises of course.yaml, with the same points."""
    notebooks.check_description(course, assignment)


def generate(
    course: Course,
    assignment: Assignment,
    db_url: str | None = None,
    release_directory: str = "release",
    notebook: str | None = None,
) -> None:
    """nbgrader's generate_assignment, once every source notebook listed in course.yaml is there."""
    for nb in _selected(assignment, notebook):
        if not course.paths(nb).source.is_file():
            raise CourseError(f"{course.paths(nb).source}: source notebook listed in course.yaml is missing")
    nbgrader.generate_assignment(course, assignment, db_url, release_directory, notebook)


def _selected(assignment: Assignment, notebook: str | None) -> list[Notebook]:
    return [assignment.notebook(notebook)] if notebook else list(assignment.notebooks)


def release(course: Course, assignment: Assignment, notebook: str | None = None) -> list[Path]:
    """Release the assignment, or only its notebook `notebook` (the others' release files are left as they are)."""
    check_points(course, assignment, notebook)
    sync(course, assignment, write=True, notebook=notebook)
    generate(course, assignment, notebook=notebook)
    return [course.paths(nb).release for nb in _selected(assignment, notebook)]


def stale(course: Course, assignment: Assignment) -> list[str]:
    """What `course release` would change: solution cells out of step, release notebooks out of date."""
    problems = [
        f"source/{assignment.name}/{nb}.ipynb: solution cells {cells} differ from solutions/"
        for nb, cells in sync(course, assignment, write=False).items()
    ]
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        generate(course, assignment, db_url=f"sqlite:///{tmp}/gradebook.db", release_directory=f"{tmp}/release")
        for nb in assignment.notebooks:
            fresh = Path(tmp) / "release" / assignment.name / f"{nb.name}.ipynb"
            kept = course.paths(nb).release
            if not kept.is_file() or not filecmp.cmp(fresh, kept, shallow=False):
                problems.append(
                    f"{kept.relative_to(course.root)}: out of date with source/ (run `course release "
                    f"{assignment.name}`)"
                )
    return problems
