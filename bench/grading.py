"""Grading a class, side by side: `nbgrader autograde` against `course grade` (sandbox on), in one run.

It makes N Week 1 submissions — complete, with two cataloged mistakes, and broken (untouched, a syntax
error, an empty file) — copies them into two fresh course directories, and grades them once with each
tool. It prints both wall times, their ratio, and the time per submission next to the floor of starting
Python and importing torch.

    .venv/bin/python bench/grading.py [--students 20] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course import catalog as mistakes
from course import config, notebooks

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COURSE_FILES = ("course.yaml", "nbgrader_config.py", "datasets/registry.yaml")


def make_class(course, n: int) -> dict[str, dict[str, nbformat.NotebookNode]]:
    """student -> notebook name -> notebook: 40% complete, 40% with two mistakes, 20% broken."""
    rng = random.Random(0)
    a = course.assignment("week1")
    out = {}
    for i in range(n):
        student, kind = f"s{i:03d}", ("complete", "mistakes", "complete", "mistakes", "broken")[i % 5]
        out[student] = {}
        for nb in a.notebooks:
            paths = course.paths(nb)
            source = notebooks.read(paths.source)
            if kind == "complete":
                made = source
            elif kind == "mistakes":
                first, *others = rng.sample(mistakes.load(nb, paths.mistakes), 8)
                second = next(m for m in others if m.cell != first.cell)  # two edits of one cell may collide
                made = mistakes.apply(source, [first, second])
            else:
                made = notebooks.read(paths.release)
                if i % 2:  # a syntax error in the first solution cell
                    first = next(iter(notebooks.solution_cells(made).values()))
                    first.source = "def broken(:\n" + first.source
            out[student][nb.name] = made
    return out


def course_dir(dest: Path, with_suites: bool) -> Path:
    for f in COURSE_FILES:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, dest / f)
    if not with_suites:  # nbgrader's own autograde, which the course's config refuses, is what is measured here
        config = dest / "nbgrader_config.py"
        nbgraders_own = '\nc.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"\n'
        config.write_text(config.read_text() + nbgraders_own)
    layers = ("source", "release", "solutions", "autograder") if with_suites else ("source",)
    for layer in layers:
        shutil.copytree(REPO / layer / "week1", dest / layer / "week1")
    return dest


def write_class(klass, dest: Path) -> None:
    for student, nbs in klass.items():
        folder = dest / "submitted" / student / "week1"
        folder.mkdir(parents=True)
        for name, nb in nbs.items():
            nbformat.write(nb, str(folder / f"{name}.ipynb"))


def timed(cmd, cwd, env=None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--keep", metavar="DIR", help="grade in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    course = config.load(REPO)
    klass = make_class(course, args.students)
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-grading-"))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MPLBACKEND="Agg", OMP_NUM_THREADS="1")

    nbg = course_dir(base / "nbgrader", with_suites=False)
    timed([BIN / "nbgrader", "generate_assignment", "week1", "--force"], nbg, env)
    write_class(klass, nbg)
    ours = course_dir(base / "course", with_suites=True)
    write_class(klass, ours)
    env_ours = dict(env, COURSE_ROOT=str(ours))

    floor = statistics.median(timed([sys.executable, "-c", "import torch"], base) for _ in range(3))
    t_nbgrader = timed([BIN / "nbgrader", "autograde", "week1", "--force"], nbg, env)
    t_course = timed([BIN / "course", "grade", "week1", "submitted", "--workers", str(args.workers)], ours, env_ours)
    n = args.students
    print(f"{n} submissions of week 1 (2 notebooks each), {args.workers} workers, sandbox on")
    print(f"nbgrader autograde  {t_nbgrader:8.1f} s   {t_nbgrader / n:6.2f} s per submission")
    print(f"course grade        {t_course:8.1f} s   {t_course / n:6.2f} s per submission")
    print(f"throughput ratio    {t_nbgrader / t_course:8.1f}x")
    print(f"floor: python -c 'import torch' {floor:.2f} s (median of 3)")
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
