"""From source/ to release/: write the reference regions into the solution cells, then let nbgrader make the
student notebooks (and record the assignment's cells in its gradebook)."""
from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from course import notebooks
from course.config import Assignment, Course
from course.errors import CourseError


def alembic_on_path() -> None:
    """nbgrader runs `alembic` from PATH when it creates or upgrades a gradebook; it lives next to this
    Python, which may not be on PATH (`.venv/bin/course` run directly)."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_api(course: Course, db_url: str | None = None, release_directory: str = "release",
                 notebook: str | None = None):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    alembic_on_path()

    config = Config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.course_id = course.id
    config.CourseDirectory.db_url = db_url or default_db_url(course)
    config.CourseDirectory.release_directory = release_directory
    if notebook:
        config.CourseDirectory.notebook_id = notebook   # nbgrader then leaves the other notebooks alone
    config.Application.log_level = logging.WARNING
    return NbGraderAPI(config=config)


def default_db_url(course: Course) -> str:
    return f"sqlite:///{course.root / 'gradebook.db'}"


def sync(course: Course, assignment: Assignment, write: bool, notebook: str | None = None) -> dict[str, list[str]]:
    """Solution cells that differ from the reference regions, per notebook (rewritten when `write`)."""
    out = {}
    for nb in _selected(assignment, notebook):
        paths = nb.paths(course.root)
        changed = notebooks.sync_solutions(paths.source, paths.reference, write=write)
        if changed:
            out[nb.name] = changed
    return out


def check_points(course: Course, assignment: Assignment, notebook: str | None = None) -> None:
    """The points in the source notebooks' grade cells are the points of course.yaml."""
    for nb in _selected(assignment, notebook):
        paths = nb.paths(course.root)
        cells = notebooks.points_by_grade_id(notebooks.read(paths.source))
        wanted = {e.id: e.points for e in nb.exercises}
        if cells != wanted:
            raise CourseError(f"{paths.source}: grade cells {cells} do not match the exercises of course.yaml "
                              f"{wanted} (grade_id and points must agree)")


def generate(course: Course, assignment: Assignment, db_url: str | None = None,
             release_directory: str = "release", notebook: str | None = None) -> None:
    """Run nbgrader's generate_assignment (for one notebook when given); raise with nbgrader's own message when
    it fails."""
    for nb in _selected(assignment, notebook):
        if not nb.paths(course.root).source.is_file():
            raise CourseError(f"{nb.paths(course.root).source}: source notebook listed in course.yaml is missing")
    api = nbgrader_api(course, db_url, release_directory, notebook)
    result = api.generate_assignment(assignment.name, force=True)
    if not result.get("success"):
        text = (result.get("error") or "") + (result.get("log") or "")
        causes = re.findall(r"^\s*(?:\[ERROR\] )?((?:[\w.]+(?:Error|Exception)): .+)$", text, re.M)
        raise CourseError(f"nbgrader could not release {assignment.name}: "
                          f"{causes[0] if causes else 'see nbgrader log'}")
    out = Path(release_directory if Path(release_directory).is_absolute() else course.root / release_directory)
    for extra in (out / assignment.name).iterdir():  # nbgrader copies everything; only the notebooks go out
        if extra.suffix != ".ipynb" and extra.name not in {n.name for n in assignment.notebooks}:
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()


def _selected(assignment: Assignment, notebook: str | None) -> list:
    return [assignment.notebook(notebook)] if notebook else list(assignment.notebooks)


def release(course: Course, assignment: Assignment, notebook: str | None = None) -> list[Path]:
    """Release the assignment, or only its notebook `notebook` (the others' release files are left as they are)."""
    check_points(course, assignment, notebook)
    sync(course, assignment, write=True, notebook=notebook)
    generate(course, assignment, notebook=notebook)
    return [nb.paths(course.root).release for nb in _selected(assignment, notebook)]


def stale(course: Course, assignment: Assignment) -> list[str]:
    """What `course release` would change: solution cells out of step, release notebooks out of date."""
    problems = [f"source/{assignment.name}/{nb}.ipynb: solution cells {cells} differ from solutions/"
                for nb, cells in sync(course, assignment, write=False).items()]
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        generate(course, assignment, db_url=f"sqlite:///{tmp}/gradebook.db", release_directory=f"{tmp}/release")
        for nb in assignment.notebooks:
            fresh = Path(tmp) / "release" / assignment.name / f"{nb.name}.ipynb"
            kept = nb.paths(course.root).release
            if not kept.is_file() or not filecmp.cmp(fresh, kept, shallow=False):
                problems.append(f"{kept.relative_to(course.root)}: out of date with source/ (run `course release "
                                f"{assignment.name}`)")
    return problems


def ensure_in_gradebook(course: Course, assignment: Assignment, db_url: str) -> None:
    """nbgrader's gradebook needs the assignment's cells before scores can be stored: record them, without
    touching release/, when they are missing."""
    from nbgrader.api import Gradebook, MissingEntry

    alembic_on_path()
    with Gradebook(db_url) as gb:
        try:
            a = gb.find_assignment(assignment.name)
            present = {nb.name for nb in a.notebooks}
        except MissingEntry:
            present = set()
    if present >= {nb.name for nb in assignment.notebooks}:
        return
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        generate(course, assignment, db_url=db_url, release_directory=f"{tmp}/release")
