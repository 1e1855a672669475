"""The one adapter to nbgrader: its API (releasing an assignment), its gradebook (recording scores, reading
them back) and its database URL. No other module of the course imports nbgrader."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from course import notebooks
from course.config import Assignment, Course
from course.errors import CourseError
from course.grading.results import NotebookResult


def alembic_on_path() -> None:
    """nbgrader runs `alembic` from PATH when it creates or upgrades a gradebook; it lives next to this
    Python, which may not be on PATH (`.venv/bin/course` run directly)."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _config(
    course: Course, db_url: str | None = None, release_directory: str = "release", notebook: str | None = None
) -> Any:
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.course_id = course.id
    config.CourseDirectory.db_url = db_url or course.files.gradebook_url
    config.CourseDirectory.release_directory = release_directory
    if notebook:
        config.CourseDirectory.notebook_id = notebook  # nbgrader then leaves the other notebooks alone
    config.Application.log_level = logging.WARNING
    return config


def api(
    course: Course, db_url: str | None = None, release_directory: str = "release", notebook: str | None = None
) -> Any:
    from nbgrader.apps import NbGraderAPI

    alembic_on_path()
    return NbGraderAPI(config=_config(course, db_url, release_directory, notebook))


def generate_assignment(
    course: Course,
    assignment: Assignment,
    db_url: str | None = None,
    release_directory: str = "release",
    notebook: str | None = None,
) -> None:
    """Run nbgrader's generate_assignment (for one notebook when given); raise with nbgrader's own message
    when it fails. Only the notebooks go out: anything else nbgrader copies is removed."""
    result = api(course, db_url, release_directory, notebook).generate_assignment(assignment.name, force=True)
    if not result.get("success"):
        text = (result.get("error") or "") + (result.get("log") or "")
        causes = re.findall(r"^\s*(?:\[ERROR\] )?((?:[\w.]+(?:Error|Exception)): .+)$", text, re.M)
        raise CourseError(
            f"nbgrader could not release {assignment.name}: {causes[0] if causes else 'see nbgrader log'}"
        )
    out = Path(release_directory if Path(release_directory).is_absolute() else course.root / release_directory)
    for extra in (out / assignment.name).iterdir():
        if extra.suffix != ".ipynb" and extra.name not in {n.name for n in assignment.notebooks}:
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()


@contextmanager
def gradebook(db_url: str) -> Iterator[Any]:
    """nbgrader's Gradebook on this database (SQLite file or any SQLAlchemy URL nbgrader accepts)."""
    from nbgrader.api import Gradebook

    alembic_on_path()
    warnings.filterwarnings("ignore", module="nbgrader.api")  # SQLAlchemy autoflush notices from nbgrader
    with Gradebook(db_url) as gb:
        yield gb


def missing_entry() -> type[Exception]:
    """The exception the gradebook raises for a student, submission or grade it does not hold."""
    from nbgrader.api import MissingEntry

    return MissingEntry  # type: ignore[no-any-return]


def record_assignment(course: Course, assignment: Assignment, db_url: str) -> None:
    """Record the assignment's notebooks and cells in the gradebook, as generate_assignment does, without
    writing a release: nbgrader's own preprocessors, up to SaveCells, run on the source notebooks."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
        SaveCells,
    )

    config = _config(course, db_url)
    with gradebook(db_url) as gb:
        gb.update_or_create_assignment(assignment.name)
    for nb in assignment.notebooks:
        source = notebooks.read(course.paths(nb).source)
        resources: dict[str, Any] = {
            "nbgrader": {"notebook": nb.name, "assignment": assignment.name, "db_url": db_url, "student": "."}
        }
        for step in (LockCells, ClearSolutions, ClearOutput, CheckCellMetadata, ComputeChecksums, SaveCells):
            source, resources = step(config=config).preprocess(source, resources)


def ensure_assignment(course: Course, assignment: Assignment, db_url: str) -> None:
    """nbgrader's gradebook needs the assignment's cells before scores can be stored: record them when
    they are missing."""
    with gradebook(db_url) as gb:
        try:
            present = {nb.name for nb in gb.find_assignment(assignment.name).notebooks}
        except missing_entry():
            present = set()
    if not present >= {nb.name for nb in assignment.notebooks}:
        record_assignment(course, assignment, db_url)


def record(course: Course, results: list[NotebookResult], db_url: str) -> None:
    """Each exercise's score as the auto score of its grade cell, one submission per student."""
    for name in sorted({r.assignment for r in results}):
        ensure_assignment(course, course.assignment(name), db_url)
    missing = missing_entry()
    with gradebook(db_url) as gb:
        for r in results:
            gb.update_or_create_student(r.student)
            try:
                gb.find_submission(r.assignment, r.student)
            except missing:
                gb.add_submission(r.assignment, r.student)
            for ex in r.notebook.auto_exercises:
                grade = gb.find_grade(ex.id, r.notebook.name, r.assignment, r.student)
                grade.auto_score = r.exercise_score(ex.id)
            gb.db.commit()
