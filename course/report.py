"""What people read: a score table in the terminal, a JSON file for tools, an HTML page for the student."""
from __future__ import annotations

import json
from pathlib import Path

import jinja2

from course.grade import NotebookResult
from course.journal import atomic_write


UNSANDBOXED = "graded WITHOUT the sandbox (--allow-unsandboxed): the submission's code ran unisolated"


def _pts(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.2f}"


def exercise_rows(result: NotebookResult):
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
    w = max([len(r.notebook.name) + 2 for r in student_results]
            + [len(e.title) for r in student_results for e in r.notebook.exercises]) + 2
    total = sum(r.score for r in student_results)
    possible = sum(r.max_score for r in student_results)
    lines = [f"{first.student} — {first.assignment}: {_pts(total)} / {_pts(possible)}"]
    if not all(r.sandboxed for r in student_results):
        lines.append(f"  ! {UNSANDBOXED}")
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
                lines.append(f"      → this looks like a known mistake: {cause}")
            for t in failed:
                lines.append(f"      ✗ {t.name}: {t.output}")
                if t.hint:
                    lines.append(f"        hint: {t.hint}")
        for err in r.load_errors:
            lines.append(f"      note: cell {err['cell']} raised {err['type']} when the notebook was run: "
                         f"{err['message'][:200]}")
    return "\n".join(lines)


def write_json(all_results: list[list[NotebookResult]], file: Path, seed: int) -> None:
    data = {"seed": seed, "submissions": [r.as_json() for student in all_results for r in student]}
    atomic_write(file, json.dumps(data, indent=2) + "\n")


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True)
_env.filters["pts"] = _pts


def feedback_html(result: NotebookResult, course_title: str) -> str:
    """A page for the student: scores, what each failed test expected, hints. Never test or reference code."""
    return _env.get_template("feedback.html.j2").render(r=result, rows=list(exercise_rows(result)),
                                                        course_title=course_title)


def write_feedback(results: list[NotebookResult], root: Path, course_title: str) -> list[Path]:
    written = []
    for r in results:
        out = root / r.student / r.assignment / f"{r.notebook.name}.html"
        atomic_write(out, feedback_html(r, course_title))
        written.append(out)
    return written


def annotate(nb, result: NotebookResult):
    """The submitted notebook with the hidden tests' results written after each exercise's visible test
    cell, as markdown: nbgrader's formgrader and `generate_feedback` then show them in place. Results
    only — never test or reference code."""
    import html

    import nbformat

    from course import notebooks
    rows = {ex.id: (ex, score, failed) for ex, score, failed in exercise_rows(result) if score is not None}
    placed = set()
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        gid = notebooks.nbgrader_meta(cell).get("grade_id")
        if gid in rows and notebooks.is_visible_test(cell):
            cells.append(_results_cell(nbformat, html, *rows[gid], result))
            placed.add(gid)
    for gid in rows.keys() - placed:  # its test cell was deleted: say it at the end
        cells.append(_results_cell(nbformat, html, *rows[gid], result))
    nb.cells = cells
    return nb


def _results_cell(nbformat, html, ex, score, failed, result):
    lines = [f"<b>Hidden tests — {html.escape(ex.title)}: {_pts(score)} / {_pts(ex.points)}</b>"]
    for cause in result.diagnosis.get(ex.id, []):
        lines.append(f"<p>This looks like a known mistake: {html.escape(cause)}</p>")
    for t in failed:
        lines.append(f"<pre>✗ {html.escape(t.name)}: {html.escape(t.output)}</pre>")
        if t.hint:
            lines.append(f"<p><i>Hint: {html.escape(t.hint)}</i></p>")
    if not failed:
        lines.append("<p>all hidden checks passed</p>")
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"course": {"results": ex.id}})
