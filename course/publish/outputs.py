"""The publish step of `course grade`, `check` and `demo`: every output of one graded batch, in order —
the terminal text, the JSON file, the HTML report pages, nbgrader's gradebook, and the copies of the
notebooks that formgrader and `nbgrader generate_feedback` open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course import notebooks
from course.config import Course
from course.files import atomic_write
from course.grading.results import NotebookResult
from course.publish import nbgrader, report


@dataclass(frozen=True)
class Targets:
    json: Path | None = None  # also write the scores as JSON here
    reports: Path | None = None  # the HTML pages (default: the course's reports/)
    gradebook: str | None = None  # nbgrader's database URL; None: no gradebook, no formgrader copies


def publish(
    course: Course, results: list[list[NotebookResult]], seed: int, targets: Targets, say: Callable[[str], None] = print
) -> None:
    flat = [r for student in results for r in student]
    for student in results:
        say(report.text(student))
        say("")
    if targets.json:
        report.write_json(results, targets.json, seed)
        say(f"scores written to {targets.json}")
    reports = targets.reports or course.files.reports
    written = report.write_feedback(flat, reports, course.title)
    say(f"reports: {len(written)} page(s) under {reports}")
    if targets.gradebook:
        nbgrader.record(course, flat, targets.gradebook)
        place_for_formgrader(course, flat)
        say(f"gradebook: {targets.gradebook}")
    reused = sum(r.reused for r in flat)
    if reused:
        say(
            f"{reused} of {len(flat)} notebook(s) were graded before under the same conditions and kept "
            "(--regrade grades them again)"
        )
    say(f"(inputs drawn with seed {seed}; grading again with the same seed gives the same result)")


NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")  # what nbgrader submit and collect leave beside a notebook


def place_for_formgrader(course: Course, results: list[NotebookResult]) -> None:
    """formgrader and `nbgrader generate_feedback` open autograded/<student>/<assignment>/<notebook>.ipynb:
    the submission, with the hidden tests' results written in after each exercise. A notebook that could not
    be graded (missing, unreadable, another assignment's) is there too: the released notebook, with the
    reason at the top. nbgrader's own files of the submission are copied beside them, as nbgrader's autograde
    does: timestamp.txt (when it was collected) and submission_secret.txt (`nbgrader release_feedback` names
    each student's feedback after it, and stops without it)."""
    for r in results:
        if r.problem:
            nb = notebooks.read(course.paths(r.notebook).release)
            nb.cells.insert(0, report.problem_cell(r))
        else:
            assert r.path is not None
            nb = notebooks.read(Path(r.path))
        nb.cells = [c for c in nb.cells if "results" not in c.get("metadata", {}).get("course", {})]  # an earlier run
        dest = course.files.autograded_notebook(r.student, r.assignment, r.notebook.name)
        atomic_write(dest, nbformat.writes(report.annotate(nb, r)))
        for name in NBGRADER_FILES:
            kept = Path(r.path).parent / name if r.path else None
            if kept and kept.is_file():
                atomic_write(dest.parent / name, kept.read_bytes())
