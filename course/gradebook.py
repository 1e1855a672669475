"""Scores into nbgrader's gradebook, so that formgrader and `nbgrader export` show them."""
from __future__ import annotations

from pathlib import Path

from course.config import Course
from course.grade import NotebookResult
from course.journal import atomic_write
from course.release import ensure_in_gradebook


def record(course: Course, results: list[NotebookResult], db_url: str) -> None:
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    warnings.filterwarnings("ignore", module="nbgrader.api")  # SQLAlchemy autoflush notices from nbgrader

    for assignment in {r.assignment for r in results}:
        ensure_in_gradebook(course, course.assignment(assignment), db_url)
    with Gradebook(db_url) as gb:
        for r in results:
            gb.update_or_create_student(r.student)
            try:
                gb.find_submission(r.assignment, r.student)
            except MissingEntry:
                gb.add_submission(r.assignment, r.student)
            for ex in r.notebook.auto_exercises:
                grade = gb.find_grade(ex.id, r.notebook.name, r.assignment, r.student)
                grade.auto_score = r.exercise_score(ex.id)
            gb.db.commit()


def place_for_formgrader(course: Course, results: list[NotebookResult]) -> None:
    """formgrader and `nbgrader generate_feedback` open autograded/<student>/<assignment>/<notebook>.ipynb:
    the submission, with the hidden tests' results written in after each exercise."""
    import nbformat

    from course import notebooks, report
    for r in results:
        if r.path is None or r.problem:
            continue
        dest = course.root / "autograded" / r.student / r.assignment / f"{r.notebook.name}.ipynb"
        nb = notebooks.read(Path(r.path))
        nb.cells = [c for c in nb.cells if "course" not in c.get("metadata", {})]  # results of an earlier run
        atomic_write(dest, nbformat.writes(report.annotate(nb, r)))
