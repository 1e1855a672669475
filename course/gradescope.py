"""Grading inside a Gradescope autograder: `python -m course.gradescope ROOT ASSIGNMENT`.

Reads the submission from ROOT/submission, grades it with the assignment's hidden suites (sandboxed, as
`course grade` does) and writes ROOT/results/results.json in Gradescope's format: a total score and one
entry per hidden test with its name, score, max_score, output and visibility. Whatever happens, a
results file is written; a submission that cannot be graded gets 0 and a one-line reason.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from course import config, grade
from course.errors import CourseError


def find_notebooks(assignment, submission: Path) -> dict[str, Path]:
    files = sorted(p for p in submission.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    by_name = {p.stem: p for p in files}
    found = {nb.name: by_name[nb.name] for nb in assignment.notebooks if nb.name in by_name}
    if not found and len(assignment.notebooks) == 1 and len(files) == 1:
        found[assignment.notebooks[0].name] = files[0]  # one notebook, renamed by the student
    return found


def results_json(results: list[grade.NotebookResult]) -> dict:
    tests = []
    for r in results:
        titles = {e.id: e.title for e in r.notebook.exercises}
        if r.problem:
            for ex in r.notebook.auto_exercises:
                tests.append({"name": f"{r.notebook.name} · {ex.title}", "score": 0.0, "max_score": ex.points,
                              "output": r.problem, "visibility": "visible"})
            continue
        for t in r.tests:
            lines = [t.output] + [f"This looks like a known mistake: {c}" for c in r.diagnosis.get(t.exercise, [])
                                  if not t.passed] + ([f"Hint: {t.hint}"] if t.hint else [])
            tests.append({"name": f"{r.notebook.name} · {titles[t.exercise]} · {t.name}",
                          "score": round(t.score, 4), "max_score": round(t.max_score, 4),
                          "output": "\n".join(lines), "visibility": "visible"})
    notes = [n for r in results for n in r.notes]
    return {"score": round(sum(r.score for r in results), 4), "visibility": "visible",
            "stdout_visibility": "hidden", "output": "\n".join(notes), "tests": tests}


def run(root: Path, assignment_name: str) -> dict:
    try:
        course = config.load()
        assignment = course.assignment(assignment_name)
        files = find_notebooks(assignment, root / "submission")
        if not files:
            raise CourseError("no notebook of this assignment was found in the submission (expected "
                              + ", ".join(f"{nb.name}.ipynb" for nb in assignment.notebooks) + ")")
        [results] = grade.grade(course, assignment, {"submission": files}, workers=grade.default_workers())
        data = results_json(results)
    except CourseError as exc:
        data = {"score": 0.0, "output": f"The autograder could not grade this submission: {exc}", "tests": []}
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
