"""What people read: a score table in the terminal, a JSON file for tools, an HTML page for the student, and
the hidden tests' results written into the notebook that formgrader shows."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import nbformat
from nbformat import NotebookNode

from course import notebooks
from course.config import Exercise
from course.files import CourseFiles, atomic_write
from course.grading.results import NotebookResult, TestResult
from course.publish import wording

WRAP = "white-space: pre-wrap; overflow-wrap: anywhere"


def _pts(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.2f}"


pts = _pts  # points as every page shows them


def exercise_rows(result: NotebookResult) -> Iterator[tuple[Exercise, float | None, list[TestResult]]]:
    """(exercise, score or None for hand-graded, failed tests) for each exercise of the notebook."""
    for ex in result.notebook.exercises:
        if ex.manual:
            yield ex, None, []
        else:
            yield ex, result.exercise_score(ex.id), [t for t in result.tests if t.exercise == ex.id and not t.passed]


def text(student_results: list[NotebookResult]) -> str:
    if not student_results:
        return ""
    first = student_results[0]
    w = (
        max(
            [len(r.notebook.name) + 2 for r in student_results]
            + [len(e.title) for r in student_results for e in r.notebook.exercises]
        )
        + 2
    )
    total = sum(r.score for r in student_results)
    possible = sum(r.max_score for r in student_results)
    where = wording.isolation([r.isolation for r in student_results], [r.bound for r in student_results])
    lines = [
        f"{first.student} — {first.assignment}: {_pts(total)} / {_pts(possible)}" + (f"  ({where})" if where else "")
    ]
    if any(wording.unisolated(r.isolation, r.sandboxed) for r in student_results):
        lines.append(f"  ! {wording.UNSANDBOXED}")
    for r in student_results:
        lines.append(f"  {r.notebook.name:<{w + 2}} {_pts(r.score):>9} / {_pts(r.max_score)}")
        if r.problem:
            lines.append(f"      ! {r.problem}")
        for note in r.notes:
            lines.append(f"      note: {note}")
        for ex, score, failed in exercise_rows(r):
            if score is None:
                lines.append(f"    {ex.title:<{w}} {'(by hand)':>9} / {_pts(ex.points)}")
                continue
            lines.append(f"    {ex.title:<{w}} {_pts(score):>9} / {_pts(ex.points)}")
            for cause in r.diagnosis.get(ex.id, []):
                lines.append(f"      → {wording.known_mistake(cause)}")
            for t in failed:
                lines.append(f"      {wording.failed_test(t.name, t.output)}")
                if t.hint:
                    lines.append(f"        {wording.hint(t.hint)}")
        for err in r.load_errors:
            lines.append(
                f"      note: cell {err['cell']} raised {err['type']} when the notebook was run: {err['message'][:200]}"
            )
    return "\n".join(lines)


def as_json(all_results: list[list[NotebookResult]], seed: int) -> str:
    data = {"seed": seed, "submissions": [r.as_json() for student in all_results for r in student]}
    return json.dumps(data, indent=2) + "\n"


def write_json(all_results: list[list[NotebookResult]], file: Path, seed: int) -> None:
    atomic_write(file, as_json(all_results, seed))


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["pts"] = _pts
_env.globals["wording"] = wording


def render(template: str, **context: Any) -> str:
    """One of the templates beside this module, with the pages' filters (`pts`) and `wording`."""
    return _env.get_template(template).render(**context)


def feedback_html(result: NotebookResult, course_title: str) -> str:
    """A page for the student: scores, what each failed test expected, hints. Never test or reference code."""
    return _env.get_template("feedback.html.j2").render(
        r=result, rows=list(exercise_rows(result)), course_title=course_title
    )


def write_feedback(results: list[NotebookResult], root: Path, course_title: str) -> list[Path]:
    written = []
    for r in results:
        out = CourseFiles.report_page(root, r.student, r.assignment, r.notebook.name)
        atomic_write(out, feedback_html(r, course_title))
        written.append(out)
    if written:
        write_index(root, course_title)
    return written


def write_index(root: Path, course_title: str) -> Path:
    """reports/index.html: a link to every report page under `root` (of this batch and earlier ones), by
    student and assignment, and to the class reports. For the instructor: it names every student."""
    pages: dict[str, dict[str, list[str]]] = {}
    for page in sorted(root.glob("*/*/*.html")):
        student, assignment = page.parent.parent.name, page.parent.name
        if student != "_class":
            pages.setdefault(student, {}).setdefault(assignment, []).append(page.stem)
    classes = sorted(p.parent.name for p in root.glob("_class/*/index.html"))
    out = CourseFiles.report_index(root)
    atomic_write(
        out, _env.get_template("index.html.j2").render(course_title=course_title, pages=pages, classes=classes)
    )
    return out


def annotate(nb: NotebookNode, result: NotebookResult) -> NotebookNode:
    """The submitted notebook with the hidden tests' results written after each exercise's visible test
    cell, as markdown: nbgrader's formgrader and `generate_feedback` then show them in place. Results
    only — never test or reference code."""
    rows = {ex.id: (ex, score, failed) for ex, score, failed in exercise_rows(result) if score is not None}
    placed = set()
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        gid = notebooks.nbgrader_meta(cell).get("grade_id")
        if gid in rows and notebooks.is_visible_test(cell):
            cells.append(_results_cell(*rows[gid], result))
            placed.add(gid)
    for gid in rows.keys() - placed:  # its test cell was deleted: say it at the end
        cells.append(_results_cell(*rows[gid], result))
    nb.cells = cells
    return nb


def problem_cell(result: NotebookResult) -> Any:
    """The first cell of the formgrader copy of a notebook that could not be graded: why."""
    text = f"<b>Not graded: {html.escape(result.problem or '')}</b>"
    return nbformat.v4.new_markdown_cell(text, metadata={"course": {"problem": True}})


def _results_cell(ex: Exercise, score: float | None, failed: list[TestResult], result: NotebookResult) -> Any:
    assert score is not None
    lines = [f"<b>Hidden tests — {html.escape(ex.title)}: {_pts(score)} / {_pts(ex.points)}</b>"]
    if wording.unisolated(result.isolation, result.sandboxed):
        lines.append(f"<p>{html.escape(wording.UNSANDBOXED)}</p>")
    for cause in result.diagnosis.get(ex.id, []):
        lines.append(f"<p>{html.escape(wording.known_mistake(cause))}</p>")
    if result.problem:
        lines.append(f"<p>{html.escape(result.problem)}</p>")
    for t in failed:
        # wrapped, never cut off: formgrader and generate_feedback show a <pre> at the cell's width
        lines.append(f'<pre style="{WRAP}">{html.escape(wording.failed_test(t.name, t.output))}</pre>')
        if t.hint:
            lines.append(f"<p><i>{html.escape(wording.hint(t.hint))}</i></p>")
    if not failed and not result.problem and score >= ex.points:
        lines.append(f"<p>{wording.ALL_PASSED}</p>")
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"course": {"results": ex.id}})
