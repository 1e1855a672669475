"""Gradescope: the autograder zip (`course export gradescope A`), and grading inside it
(`python -m course.publish.gradescope ROOT ASSIGNMENT`, which the zip's run_autograder calls).

Inside Gradescope the runner reads the submission from ROOT/submission, grades it with the assignment's
hidden suites (sandboxed, as `course grade` does) and writes ROOT/results/results.json in Gradescope's
format: a total score and one entry per hidden test with its name, score, max_score, output and visibility.
Whatever happens, a results file is written; a submission that cannot be graded gets 0 and a one-line reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

from course import config, notebooks
from course.config import Assignment, Course
from course.errors import CourseError
from course.files import atomic_write
from course.grading import pipeline
from course.grading.results import NotebookResult, rounded
from course.publish import wording


# -- grading inside Gradescope --------------------------------------------------------------------------------
def _plain_name(stem: str) -> str:
    """A notebook's name without what browsers and JupyterLab add to a copy: `name (1)`, `name-Copy1`."""
    return re.sub(r"(?:\s*\(\d+\)|-Copy\d*)+$", "", stem.strip())


def find_notebooks(course: Course, assignment: Assignment, submission: Path) -> dict[str, Path]:
    """The submission's notebook for each notebook of the assignment: by name (`01_autograd_engine.ipynb`, or a
    browser's `01_autograd_engine (1).ipynb`), else by content (a file that holds the notebook's exercise
    cells, whatever it is called). An exact name wins over a copy's."""
    files = sorted(p for p in submission.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    names = {nb.name for nb in assignment.notebooks}
    found: dict[str, Path] = {}
    for exact in (True, False):
        for p in files:
            name = p.stem if exact else _plain_name(p.stem)
            if name in names and name not in found and p not in found.values():
                found[name] = p
    for nb in assignment.notebooks:
        release = course.paths(nb).release
        if nb.name in found or not release.is_file():
            continue
        for p in files:
            if p in found.values():
                continue
            try:
                if notebooks.belongs_to(notebooks.read(p), notebooks.read(release)):
                    found[nb.name] = p
                    break
            except CourseError:
                continue  # not a readable notebook: it matches nothing
    if not found and len(assignment.notebooks) == 1 and len(files) == 1:
        found[assignment.notebooks[0].name] = files[0]  # the one notebook, unreadable: graded, to say why
    return found


def results_json(results: list[NotebookResult]) -> dict[str, Any]:
    tests = []
    for r in results:
        titles = {e.id: e.title for e in r.notebook.exercises}
        if r.problem:
            for ex in r.notebook.auto_exercises:
                tests.append(
                    {
                        "name": f"{r.notebook.name} · {ex.title}",
                        "score": 0.0,
                        "max_score": ex.points,
                        "output": r.problem,
                        "visibility": "visible",
                    }
                )
            continue
        for t in r.tests:
            causes = r.diagnosis.get(t.exercise, []) if not t.passed else []
            lines = [t.output, *map(wording.known_mistake, causes), *([wording.hint(t.hint)] if t.hint else [])]
            tests.append(
                {
                    "name": f"{r.notebook.name} · {titles[t.exercise]} · {t.name}",
                    "score": rounded(t.score),
                    "max_score": rounded(t.max_score),
                    "output": "\n".join(lines),
                    "visibility": "visible",
                }
            )
    notes = [n for r in results for n in r.notes]
    where = wording.isolation([r.isolation for r in results], [r.bound for r in results])
    notes += [where] if where else []
    return {
        "score": rounded(sum(r.score for r in results)),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "output": "\n".join(notes),
        "tests": tests,
    }


def run(root: Path, assignment_name: str) -> dict[str, Any]:
    """Grade ROOT/submission and write ROOT/results/results.json, whatever happens."""
    try:
        course = config.load()
        assignment = course.assignment(assignment_name)
        files = find_notebooks(course, assignment, root / "submission")
        if not files:
            raise CourseError(
                "no notebook of this assignment was found in the submission (expected "
                + ", ".join(f"{nb.name}.ipynb" for nb in assignment.notebooks)
                + ")"
            )
        lock_down(course, root)
        # a sandbox where one starts; where none does (a container that refuses namespaces), the container
        # holds this one submission, which runs as a user of its own that cannot read the course's sources
        options = pipeline.GradingOptions(isolation="container", workers=pipeline.default_workers())
        [results] = pipeline.grade(course, assignment, {"submission": files}, options, say=lambda _: None)
        data = results_json(results)
    except CourseError as exc:
        data = _failed(str(exc))
    except Exception as exc:
        data = _failed(f"an error in the autograder itself ({type(exc).__name__}: {exc}); tell your instructor")
    atomic_write(root / "results" / "results.json", json.dumps(data, indent=1) + "\n")
    return data


def lock_down(course: Course, root: Path) -> None:
    """Inside Gradescope's container (as root): the hidden suites, the references and the results folder
    readable by root alone, so that a submission running as another user cannot read or write them."""
    if os.geteuid() != 0:
        return
    for folder in (course.files.autograder, course.root / "solutions", root / "results"):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, 0, 0)
        folder.chmod(0o700)


def _failed(reason: str) -> dict[str, Any]:
    return {"score": 0.0, "output": f"The autograder could not grade this submission: {reason}", "tests": []}


# -- the autograder zip ---------------------------------------------------------------------------------------
SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y python3.11 python3.11-venv bubblewrap
cd /autograder/source
python3.11 -m venv .venv
.venv/bin/pip install --disable-pip-version-check -r requirements/grading.txt
.venv/bin/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades /autograder/submission with the course's hidden
# suites, in the same sandbox as `course grade`, and writes /autograder/results/results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SRC="$ROOT/source"
PYTHON="${{COURSE_PYTHON:-$SRC/.venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$SRC"
PYTHONPATH="$SRC:$SRC/datasets" COURSE_ROOT="$SRC" exec "$PYTHON" -m course.publish.gradescope "$ROOT" {assignment}
"""

TOOLING_FILES = ("requirements/grading.txt", "pyproject.toml")
COURSE_FILES = ("course.yaml", "nbgrader_config.py", "datasets/registry.yaml", "autograder/probes.py")


def gradescope_zip(course: Course, assignment: Assignment, dest: Path) -> Path:
    """A Gradescope autograder: setup.sh, run_autograder, and what grading needs (the tooling, the
    assignment's hidden suites, references and released notebooks) — never the source notebooks."""
    import course as tooling
    import coursedata

    dest = Path(dest)
    root = course.root
    code = course.files.tooling
    members: list[tuple[Path, str]] = []
    for package, name in (
        (Path(tooling.__file__).parent, "course"),
        (Path(coursedata.__file__).parent, "datasets/coursedata"),
    ):
        members += [
            (p, f"{name}/{p.relative_to(package).as_posix()}")
            for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    members += [(code / f, f) for f in TOOLING_FILES if (code / f).is_file()]
    members += [(root / f, f) for f in COURSE_FILES if (root / f).is_file()]
    for layer in ("autograder", "solutions", "release"):
        folder = course.files.layer(layer, assignment.name)
        if not folder.is_dir():
            raise CourseError(f"{folder}: not found (is {assignment.name} released?)")
        members += [
            (p, p.relative_to(root).as_posix())
            for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        scripts = (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment.name)))
        for name, text in scripts:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            z.writestr(info, text)
        for path, name in members:
            z.write(path, name)
    return dest


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
