"""Helpers shared by the tooling tests."""

import subprocess
import sys
from pathlib import Path

import nbformat

from course import notebooks
from course.grading import pipeline
from course.sandbox.launch import UID_BASE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COURSE_BIN = Path(sys.executable).with_name("course")


def grade(course, assignment, submissions, progress=None, **options):
    """Grade as `course grade` does, with these GradingOptions (seed, workers, journal, ...)."""
    return pipeline.grade(course, assignment, submissions, pipeline.GradingOptions(**options), progress=progress)


def submission(course, student: str, cells: dict[str, str], *, base="release", folder=None) -> Path:
    """Write `<folder>/<student>/toy/adder.ipynb`: the release notebook with some solution cells replaced."""
    nb = notebooks.read(course.root / base / "toy" / "adder.ipynb")
    sol = notebooks.solution_cells(nb)
    for cid, src in cells.items():
        sol[cid].source = src
    out = (folder or course.root / "submitted") / student / "toy" / "adder.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


def run_course(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([str(COURSE_BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sandbox_processes(tag: str) -> list[str]:
    """Processes still running under a sandbox user id, started by graders whose COURSE_GRADING_TAG was
    `tag` (other gradings may be running on the machine at the same time)."""
    alive = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields.get("Uid", "0").split()[0]) >= UID_BASE and f"COURSE_GRADING_TAG={tag}".encode() in environ:
            alive.append(f"{status.parent.name} {fields.get('Name', '').strip()}")
    return alive


GOOD_ADD = "def add(a, b):\n    return a + b"
GOOD_SCALE = "import numpy as np\ndef scale(x, k):\n    return np.asarray(x) * k"
