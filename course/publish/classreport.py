"""The class report (`course report ASSIGNMENT`): what a graded class got right and wrong, for its instructor.

It reads what grading saved and grades nothing: the journal's results (`autograded/<student>/<A>/<NB>.result.json`:
scores, the mistakes named, why a notebook could not be graded) and, where there is one, nbgrader's gradebook
through `nbgrader.class_grades`, as `course export csv` does (the written answers' scores, when each submission
was collected, how late and its penalty). It writes `reports/_class/<A>/`: `index.html`, one histogram per
exercise (PNG, drawn by matplotlib's Agg canvas) and `class.csv`, one row per student and exercise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course import catalog
from course.config import Assignment, Course, Exercise, Notebook
from course.errors import CourseError
from course.files import atomic_write
from course.grading.results import NotebookResult, rounded
from course.publish import nbgrader, report

NO_RESULT = "no saved result: not submitted, or not graded yet"


@dataclass
class ExerciseStats:
    """One exercise over the class: the score of every student it is known for."""

    notebook: Notebook
    exercise: Exercise
    scores: dict[str, float] = field(default_factory=dict)  # student -> points
    waiting: list[str] = field(default_factory=list)  # written answers nobody has graded yet
    plot: str = ""  # the histogram's file name, beside the page

    @property
    def lost(self) -> float:
        return rounded(sum(self.exercise.points - s for s in self.scores.values()))

    @property
    def mean(self) -> float:
        return rounded(sum(self.scores.values()) / len(self.scores)) if self.scores else 0.0

    @property
    def full(self) -> int:
        return sum(s >= self.exercise.points for s in self.scores.values())

    @property
    def zero(self) -> int:
        return sum(s <= 0 for s in self.scores.values())


@dataclass
class NamedMistake:
    notebook: Notebook
    exercise: Exercise
    says: str  # the catalog's plain words, as the students' reports showed them
    id: str | None  # the catalog's id for those words (None: the catalog no longer has them)
    students: list[str] = field(default_factory=list)


@dataclass
class Ungraded:
    student: str
    notebook: Notebook
    reason: str


@dataclass
class Late:
    student: str
    submitted_at: Any  # a datetime (UTC), or None
    seconds_late: float
    penalty: float


@dataclass
class ClassReport:
    course_title: str
    assignment: Assignment
    students: list[str]
    results: list[NotebookResult]
    exercises: list[ExerciseStats]  # in the course's order
    mistakes: list[NamedMistake]  # most students first
    ungraded: list[Ungraded]
    late: list[Late] | None  # None: no gradebook to say
    gradebook: str | None  # the database the lateness and written answers come from, None when there is none
    left_out: int = 0  # saved results of notebooks that course.yaml no longer lists

    @property
    def by_loss(self) -> list[ExerciseStats]:
        """The exercises that cost the class most points first (exercises nobody has a score for left out)."""
        scored = [e for e in self.exercises if e.scores]
        return sorted(scored, key=lambda e: (-e.lost, -e.exercise.points, e.notebook.name, e.exercise.id))

    @property
    def graded(self) -> int:
        return sum(r.problem is None for r in self.results)


# -- reading what grading saved --------------------------------------------------------------------------------


def saved_results(course: Course, assignment: Assignment) -> tuple[list[NotebookResult], int]:
    """Every result the journal holds for the assignment, by student then notebook in the course's order;
    and how many saved results belong to notebooks that course.yaml no longer lists (left out)."""
    by_name = {nb.name: nb for nb in assignment.notebooks}
    order = {nb.name: i for i, nb in enumerate(assignment.notebooks)}
    results, left_out = [], 0
    for file in sorted(course.files.autograded.glob(f"*/{assignment.name}/*.result.json")):
        notebook = by_name.get(file.name.removesuffix(".result.json"))
        if notebook is None:
            left_out += 1
            continue
        try:
            results.append(NotebookResult.from_json(notebook, json.loads(file.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CourseError(f"{file}: not a readable result ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    results.sort(key=lambda r: (r.student, order[r.notebook.name]))
    return results, left_out


def _gradebook(course: Course, db_url: str | None) -> str | None:
    """The gradebook to read, or None where there is none (a SQLite file that does not exist is not created)."""
    url = db_url or course.files.gradebook_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return url


def build(course: Course, assignment: Assignment, db_url: str | None = None) -> ClassReport:
    results, left_out = saved_results(course, assignment)
    if not results:
        raise CourseError(
            f"{assignment.name}: nothing graded yet (no results under {course.files.autograded}/*/{assignment.name}/;"
            f" run `course grade {assignment.name} submitted` first)"
        )
    students = sorted({r.student for r in results})
    held = {(r.student, r.notebook.name): r for r in results}
    gradebook = _gradebook(course, db_url)
    grades: dict[str, nbgrader.AssignmentGrades] = {}
    if gradebook:
        nbgrader.check_database(gradebook)
        for s in nbgrader.class_grades(gradebook, [assignment]):
            if s.id in students and assignment.name in s.assignments:
                grades[s.id] = s.assignments[assignment.name]

    exercises: list[ExerciseStats] = []
    ungraded: list[Ungraded] = []
    for nb in assignment.notebooks:
        stats = {ex.id: ExerciseStats(nb, ex) for ex in nb.exercises}
        for student in students:
            r = held.get((student, nb.name))
            if r is None:
                ungraded.append(Ungraded(student, nb, NO_RESULT))
                continue
            if r.problem:
                ungraded.append(Ungraded(student, nb, r.problem))
                continue
            for ex in nb.exercises:
                if not ex.manual:
                    stats[ex.id].scores[student] = r.exercise_score(ex.id)
                elif student in grades:
                    score = grades[student].scores.get((nb.name, ex.id))
                    if score is None:
                        stats[ex.id].waiting.append(student)
                    else:
                        stats[ex.id].scores[student] = score
        exercises += stats.values()

    late = None
    if gradebook:
        late = [
            Late(student, g.submitted_at, g.seconds_late, g.penalty)
            for student, g in sorted(grades.items())
            if g.seconds_late > 0 or g.penalty > 0
        ]
    return ClassReport(
        course.title,
        assignment,
        students,
        results,
        exercises,
        named_mistakes(course, assignment, results),
        ungraded,
        late,
        gradebook,
        left_out,
    )


def named_mistakes(course: Course, assignment: Assignment, results: Iterable[NotebookResult]) -> list[NamedMistake]:
    """Each cataloged mistake that some student's answers matched (the results' diagnosis, which the students'
    reports showed), with who: the mistake most students made first."""
    found: dict[tuple[str, str, str], NamedMistake] = {}
    ids: dict[tuple[str, str, str], str] = {}
    for nb in assignment.notebooks:
        for m in catalog.load(nb, course.paths(nb).mistakes):
            ids.setdefault((nb.name, m.exercise, m.says), m.id)
    for r in results:
        exercises = {ex.id: ex for ex in r.notebook.exercises}
        for ex_id, causes in r.diagnosis.items():
            if ex_id not in exercises:
                continue
            for says in causes:
                key = (r.notebook.name, ex_id, says)
                named = found.setdefault(key, NamedMistake(r.notebook, exercises[ex_id], says, ids.get(key)))
                if r.student not in named.students:
                    named.students.append(r.student)
    order = {nb.name: i for i, nb in enumerate(assignment.notebooks)}
    return sorted(found.values(), key=lambda m: (-len(m.students), order[m.notebook.name], m.exercise.id, m.says))


# -- what it writes --------------------------------------------------------------------------------------------


def histogram(stats: ExerciseStats) -> bytes:
    """A PNG of how many students got each score of the exercise: one bar per score that some student got
    (matplotlib's Agg canvas: no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    points = stats.exercise.points
    counts = _counts(stats)
    fig = Figure(figsize=(4.2, 2.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(list(counts), list(counts.values()), width=points / 20, color="#0969da")
    ax.set_xlim(-points / 20, points * 1.05)
    ax.set_xlabel(f"points (of {report.pts(points)})")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(counts.values()) * 1.15)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _counts(stats: ExerciseStats) -> dict[float, int]:
    """score -> how many students got it, the highest first."""
    counts: dict[float, int] = {}
    for s in stats.scores.values():
        counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items(), reverse=True))


def alt_text(stats: ExerciseStats) -> str:
    """What the histogram shows, in words, for a reader who cannot see it."""
    shown = "; ".join(f"{n} student{'s' if n != 1 else ''} with {report.pts(s)}" for s, n in _counts(stats).items())
    return f"Scores for {stats.exercise.title}, out of {report.pts(stats.exercise.points)}: {shown}"


CSV_HEADER = ["student", "notebook", "exercise", "title", "written", "points", "score", "status", "mistakes"]


def class_csv(r: ClassReport) -> str:
    """One row per student and exercise: the score where it is known, else why not, and the mistakes named."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    problems = {(u.student, u.notebook.name): u.reason for u in r.ungraded}
    named: dict[tuple[str, str, str], list[str]] = {}
    for m in r.mistakes:
        for s in m.students:
            named.setdefault((s, m.notebook.name, m.exercise.id), []).append(m.id or m.says)
    for student in r.students:
        for stats in r.exercises:
            nb, ex = stats.notebook, stats.exercise
            if (student, nb.name) in problems:
                score, status = "", f"not graded: {problems[(student, nb.name)]}"
            elif student in stats.scores:
                score, status = report.pts(stats.scores[student]), "graded"
            elif student in stats.waiting:
                score, status = "", "written answer not graded yet"
            else:
                score, status = "", "written answer: no score in a gradebook"
            writer.writerow(
                [
                    student,
                    nb.name,
                    ex.id,
                    ex.title,
                    "yes" if ex.manual else "no",
                    report.pts(ex.points),
                    score,
                    status,
                    "; ".join(named.get((student, nb.name, ex.id), [])),
                ]
            )
    return out.getvalue()


def _late_by(seconds: float) -> str:
    minutes = max(1, round(seconds / 60)) if seconds > 0 else 0
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days {hours % 24} h"


def write(course: Course, assignment: Assignment, db_url: str | None = None) -> Path:
    """Write the class report; returns its page."""
    r = build(course, assignment, db_url)
    folder = course.files.class_report(assignment.name)
    for old in folder.glob("hist-*.png"):
        old.unlink()
    for i, stats in enumerate(r.exercises, start=1):
        if stats.scores:
            stats.plot = f"hist-{i:02d}-{stats.exercise.id}.png"
            atomic_write(folder / stats.plot, histogram(stats))
    atomic_write(folder / "class.csv", class_csv(r))
    similarity = (folder / "similarity" / "index.html").is_file()
    page = folder / "index.html"
    html = report.render("class.html.j2", r=r, alt_text=alt_text, late_by=_late_by, similarity=similarity)
    atomic_write(page, html)
    report.write_index(course.files.reports, course.title)
    return page
