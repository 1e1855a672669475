"""The one adapter to nbgrader: its API (releasing an assignment), its gradebook (recording scores, reading
them back, due dates, extensions and late penalties), its database URL, and the refusal of its own
autograde (which would grade with the visible checks alone, unsandboxed). No other module of the course
imports nbgrader.

Settings come from the course's nbgrader_config.py, as nbgrader's own commands read them (the late
penalty's policy, for one); the course directory, its id and the database are set here."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    settings = course.root / "nbgrader_config.py"
    if settings.is_file():
        from traitlets.config.loader import PyFileConfigLoader

        config.merge(PyFileConfigLoader(settings.name, str(course.root)).load_config())
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


def check_database(db_url: str) -> None:
    """Open the gradebook (creating it when new) before anything is graded, so that a database that cannot
    be written fails at once, with one line, and not after the whole class was graded."""
    if db_url.startswith("sqlite:///"):
        folder = Path(db_url.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise CourseError(f"{db_url}: the folder {folder} does not exist (the gradebook cannot be written there)")
    for attempt in range(1, 6):
        try:
            with gradebook(db_url):
                return
        except CourseError:
            raise
        except Exception as exc:
            # several graders creating a new database at once: one made the tables first, the others see them
            # the next time; anything else fails the same way five times
            if attempt == 5:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise CourseError(f"{_shown(db_url)}: the gradebook cannot be opened ({first})") from None
            time.sleep(random.uniform(0.1, 0.5) * attempt)


def _shown(db_url: str) -> str:
    """A database URL without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", db_url)


def submitted_at(results: list[NotebookResult]) -> dict[tuple[str, str], Any]:
    """(student, assignment) -> when nbgrader collected it: submitted/<student>/<assignment>/timestamp.txt,
    as nbgrader's own autograde reads it (None where there is none)."""
    from nbgrader.utils import parse_utc

    stamps: dict[tuple[str, str], Any] = {}
    for r in results:
        key = (r.student, r.assignment)
        if stamps.get(key) is not None or r.path is None:
            stamps.setdefault(key, None)
            continue
        file = Path(r.path).parent / "timestamp.txt"
        text = file.read_text().strip() if file.is_file() else ""
        try:
            stamps[key] = parse_utc(text) if text else None
        except ValueError:
            raise CourseError(f"{file}: not a timestamp ({text[:40]!r})") from None
    return stamps


def record(course: Course, results: list[NotebookResult], db_url: str, tries: int = 5) -> None:
    """`record_once`, tried again when another grader writing the same gradebook at the same time (the shards
    of a class on a database server) created a row first: every step is idempotent."""
    from nbgrader.api import InvalidEntry
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(1, tries + 1):
        try:
            return record_once(course, results, db_url)
        except (IntegrityError, InvalidEntry, OperationalError):
            if attempt == tries:
                raise
            time.sleep(random.uniform(0.1, 0.5) * attempt)


def record_once(course: Course, results: list[NotebookResult], db_url: str) -> None:
    """Each exercise's score as the auto score of its grade cell, one submission per student, with the time
    nbgrader collected it; then nbgrader's late penalty (its LateSubmissionPlugin, or the plugin_class that
    nbgrader_config.py sets) against the assignment's due date and the student's extension."""
    for name in sorted({r.assignment for r in results}):
        ensure_assignment(course, course.assignment(name), db_url)
    stamps = submitted_at(results)
    with gradebook(db_url) as gb:
        for (student, assignment), stamp in stamps.items():
            gb.update_or_create_student(student)
            submission = gb.update_or_create_submission(assignment, student)
            submission.timestamp = stamp
        gb.db.commit()
        for r in results:
            for ex in r.notebook.exercises:
                grade = gb.find_grade(ex.id, r.notebook.name, r.assignment, r.student)
                if r.problem:
                    # nothing to grade, by hand or not: 0, out of formgrader's queue (as nbgrader does for a
                    # notebook that was not submitted)
                    grade.auto_score, grade.needs_manual_grade = 0.0, False
                elif not ex.manual:
                    grade.auto_score = r.exercise_score(ex.id)
                    # as nbgrader's SaveAutoGrades: reviewed by hand only where a grader changed the score
                    grade.needs_manual_grade = grade.manual_score is not None
            gb.db.commit()
    _late_penalties(course, results, db_url)


def _late_penalties(course: Course, results: list[NotebookResult], db_url: str) -> None:
    import nbformat
    from nbgrader.preprocessors import AssignLatePenalties

    config = _config(course, db_url)
    for r in results:
        where = {"notebook": r.notebook.name, "assignment": r.assignment, "student": r.student, "db_url": db_url}
        resources = {"nbgrader": where}
        AssignLatePenalties(config=config).preprocess(nbformat.v4.new_notebook(), resources)


def grant_extension(course: Course, assignment: Assignment, student: str, hours: float, db_url: str) -> None:
    """Move the student's due date for the assignment `hours` later (0: no extension), as nbgrader's
    Gradebook.grant_extension; the late penalty counts from there the next time the class is graded."""
    ensure_assignment(course, assignment, db_url)
    with gradebook(db_url) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment.name, student)
        gb.grant_extension(assignment.name, student, minutes=round(hours * 60))


def late_seconds(db_url: str, assignment: str) -> dict[str, tuple[float, float]]:
    """student -> (seconds late past the due date and extension, late penalty in points), for every
    submission of the assignment in the gradebook."""
    with gradebook(db_url) as gb:
        try:
            found = gb.find_assignment(assignment)
        except missing_entry():
            return {}
        return {
            s.student.id: (float(s.total_seconds_late), float(s.late_submission_penalty or 0.0))
            for s in found.submissions
        }


@dataclass
class AssignmentGrades:
    """One student's grades for one assignment, as the gradebook holds them."""

    scores: dict[tuple[str, str], float | None]  # (notebook, exercise) -> score; None: written, not yet graded
    penalty: float  # nbgrader's late penalty, in points
    seconds_late: float
    submitted_at: Any = None  # when nbgrader collected it (a datetime, UTC), None where nothing says

    @property
    def ungraded(self) -> int:
        return sum(v is None for v in self.scores.values())

    @property
    def total(self) -> float:
        """The points so far, less the late penalty (never below 0)."""
        return max(0.0, sum(v or 0.0 for v in self.scores.values()) - self.penalty)


@dataclass
class StudentGrades:
    id: str
    first_name: str
    last_name: str
    assignments: dict[str, AssignmentGrades]  # only the assignments the student submitted


def class_grades(db_url: str, assignments: list[Assignment]) -> list[StudentGrades]:
    """Every student of the gradebook with their grades for these assignments, by student id."""
    missing = missing_entry()
    out = []
    with gradebook(db_url) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            held: dict[str, AssignmentGrades] = {}
            for a in assignments:
                try:
                    submission = gb.find_submission(a.name, student.id)
                except missing:
                    continue
                scores: dict[tuple[str, str], float | None] = {}
                for nb in a.notebooks:
                    for ex in nb.exercises:
                        try:
                            grade = gb.find_grade(ex.id, nb.name, a.name, student.id)
                        except missing:
                            scores[(nb.name, ex.id)] = 0.0
                            continue
                        waiting = ex.manual and grade.manual_score is None and grade.needs_manual_grade
                        scores[(nb.name, ex.id)] = None if waiting else float(grade.score or 0.0)
                held[a.name] = AssignmentGrades(
                    scores,
                    float(submission.late_submission_penalty or 0.0),
                    float(submission.total_seconds_late),
                    submission.timestamp,
                )
            out.append(StudentGrades(student.id, student.first_name or "", student.last_name or "", held))
    return out


# -- nbgrader's own autograde: refused ------------------------------------------------------------------------
REFUSAL = (
    "nbgrader's autograde is turned off in this course: it would grade with the visible checks alone, without "
    "the hidden tests or the sandbox, and replace the scores. Grade with `course grade {assignment} submitted` "
    "(as root, for the sandbox); formgrader then shows its scores and the hidden tests' results."
)


def __getattr__(name: str) -> Any:
    """`RefuseAutograde`, built on first use (nbgrader_config.py names it as `Autograde.exporter_class`), so that
    importing this module does not import nbconvert."""
    if name != "RefuseAutograde":
        raise AttributeError(name)
    from nbconvert.exporters import NotebookExporter
    from nbgrader.converters.base import NbGraderException

    class RefuseAutograde(NotebookExporter):
        """The exporter nbgrader's Autograde converter makes before it touches any file: it refuses, so that
        `nbgrader autograde` and formgrader's Autograde button change nothing and say what to run."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            parent = kwargs.get("parent")
            assignment = getattr(getattr(parent, "coursedir", None), "assignment_id", "") or "ASSIGNMENT"
            message = REFUSAL.format(assignment=assignment)
            if parent is not None and hasattr(parent, "log"):
                parent.log.error(message)
            raise NbGraderException(message)

    globals()["RefuseAutograde"] = RefuseAutograde
    return RefuseAutograde
