"""What the sandbox costs per submission, measured side by side in one run.

Each round, in alternating order, it times with and without the sandbox:
  start   a worker started, a notebook that imports torch run in it, and its first answer received;
  probe   one more probe call on the loaded notebook;
  grade   (with --grade) a complete Week 1 submission graded end to end, both notebooks, one worker;
next to the floor of a bare `python -c "import torch"`. Medians and ratios are printed.

    .venv/bin/python bench/sandbox.py [--rounds 10] [--grade 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time

from course import config
from course.grading import pipeline
from course.sandbox.client import Worker
from course.sandbox.launch import sandbox_problem

CELLS = [["1", "import torch\nimport numpy as np"], ["2, f", "def f(x):\n    return torch.as_tensor(x) * 2"]]
PROBES = "def double(nb, x):\n    return nb.f(x)\n"


def worker_times(course, sandboxed: bool) -> tuple[float, float]:
    w = Worker(CELLS, course.grading.limits, course.grading.notebook_timeout, sandboxed)
    t0 = time.perf_counter()
    w.start()
    w.call("bench", PROBES, "double", {"x": [1.0, 2.0]}, 60)
    t1 = time.perf_counter()
    w.call("bench", PROBES, "double", {"x": [3.0]}, 60)
    t2 = time.perf_counter()
    w.stop()
    return t1 - t0, t2 - t1


def floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


def grade_time(course, sandboxed: bool) -> float:
    course = dataclasses.replace(course, grading=dataclasses.replace(course.grading, sandboxed=sandboxed))
    a = course.assignment("week1")
    files = [course.root / "source" / "week1" / f"{nb.name}.ipynb" for nb in a.notebooks]
    t0 = time.perf_counter()
    submissions = {"reference": {nb.name: f for nb, f in zip(a.notebooks, files, strict=True)}}
    [[*results]] = pipeline.grade(course, a, submissions)
    elapsed = time.perf_counter() - t0
    assert sum(r.score for r in results) == sum(r.max_score for r in results), "the reference lost points"
    return elapsed


def summary(name: str, on: list[float], off: list[float]) -> str:
    m_on, m_off = statistics.median(on), statistics.median(off)
    return (
        f"{name:<7} sandbox {m_on:8.4f} s   plain {m_off:8.4f} s   "
        f"overhead {m_on - m_off:+.4f} s ({m_on / m_off:.2f}x)   [n={len(on)}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--grade", type=int, default=0, metavar="N", help="also grade a full submission N times")
    args = parser.parse_args()
    if sandbox_problem():
        sys.exit(f"no sandbox here: {sandbox_problem()}")
    course = config.load()
    times = {k: [] for k in ("start+", "start-", "probe+", "probe-", "floor", "grade+", "grade-")}
    worker_times(course, True), worker_times(course, False)  # warm the file cache
    for i in range(args.rounds):
        for sandboxed in (True, False) if i % 2 == 0 else (False, True):
            start, probe = worker_times(course, sandboxed)
            times["start" + "+-"[not sandboxed]].append(start)
            times["probe" + "+-"[not sandboxed]].append(probe)
        times["floor"].append(floor())
    for i in range(args.grade):
        for sandboxed in (True, False) if i % 2 == 0 else (False, True):
            times["grade" + "+-"[not sandboxed]].append(grade_time(course, sandboxed))
    print(f"floor   python -c 'import torch' {statistics.median(times['floor']):.3f} s")
    print(summary("start", times["start+"], times["start-"]))
    print(summary("probe", times["probe+"], times["probe-"]))
    if args.grade:
        print(summary("grade", times["grade+"], times["grade-"]))


if __name__ == "__main__":
    main()
