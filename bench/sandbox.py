"""What each way of running a submission costs, measured side by side in one run.

Three modes: the fork server (one sandboxed process that has imported torch forks each submission), a
bubblewrap sandbox per worker (the fallback), and a plain process (--allow-unsandboxed). Each round, in
rotating order, it times in each mode:
  start    a worker started, a notebook that imports torch run in it, and its first answer received;
  probe    one more probe call on the loaded notebook;
  recover  the call after the tester died (os._exit in the student's function): a fresh tester answers;
  grade    (with --grade) a complete Week 1 submission graded end to end, both notebooks, one worker;
next to the floor of a bare `python -c "import torch"`. Medians, and each mode's overhead against the
plain process, are printed. The fork server starts once, before the rounds (its own start is printed).

    .venv/bin/python bench/sandbox.py [--rounds 10] [--grade 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time

from course import config
from course.grading import pipeline
from course.sandbox import launch
from course.sandbox.client import StudentError, Worker

CELLS = [
    ["1", "import torch\nimport numpy as np"],
    ["2, f", "def f(x):\n    return torch.as_tensor(x) * 2"],
    ["3, g", "import os\ndef g(x):\n    os._exit(3)"],
]
PROBES = "def call(nb, fn, x):\n    return getattr(nb, fn)(x)\n"
MODES = {"fork server": launch.FORK_SERVER, "bubblewrap": launch.FORK_SERVER, "plain": launch.UNSANDBOXED}


def use(mode: str) -> str:
    """Select a mode for the workers started next; returns the isolation to ask for."""
    if mode == "bubblewrap":
        os.environ["COURSE_SANDBOX"] = launch.BUBBLEWRAP
    else:
        os.environ.pop("COURSE_SANDBOX", None)
    return MODES[mode]


def worker_times(course, mode: str) -> tuple[float, float, float]:
    w = Worker(CELLS, course.grading.limits, course.grading.notebook_timeout, use(mode))
    t0 = time.perf_counter()
    w.start()
    w.call("bench", PROBES, "call", {"fn": "f", "x": [1.0, 2.0]}, 60)
    t1 = time.perf_counter()
    w.call("bench", PROBES, "call", {"fn": "f", "x": [3.0]}, 60)
    t2 = time.perf_counter()
    try:
        w.call("bench", PROBES, "call", {"fn": "g", "x": [3.0]}, 60)
    except StudentError:
        pass
    t3 = time.perf_counter()
    w.call("bench", PROBES, "call", {"fn": "f", "x": [3.0]}, 60)
    t4 = time.perf_counter()
    expected = {"plain": launch.UNSANDBOXED, "bubblewrap": launch.BUBBLEWRAP, "fork server": launch.FORK_SERVER}
    assert w.isolation == expected[mode], (mode, w.isolation)
    w.stop()
    return t1 - t0, t2 - t1, t4 - t3


def floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


def grade_time(course, mode: str) -> float:
    sandboxed = use(mode) != launch.UNSANDBOXED
    course = dataclasses.replace(course, grading=dataclasses.replace(course.grading, sandboxed=sandboxed))
    a = course.assignment("week1")
    files = [course.paths(nb).source for nb in a.notebooks]
    submissions = {"reference": {nb.name: f for nb, f in zip(a.notebooks, files, strict=True)}}
    t0 = time.perf_counter()
    [[*results]] = pipeline.grade(course, a, submissions)
    elapsed = time.perf_counter() - t0
    assert sum(r.score for r in results) == sum(r.max_score for r in results), "the reference lost points"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--grade", type=int, default=0, metavar="N", help="also grade a full submission N times")
    args = parser.parse_args()
    if launch.sandbox_problem():
        sys.exit(f"no sandbox here: {launch.sandbox_problem()}")
    t0 = time.perf_counter()
    if launch.fork_server_problem():
        sys.exit(f"no fork server here: {launch.fork_server_problem()}")
    print(f"fork server started in {time.perf_counter() - t0:.2f} s (once per grading process)")
    course = config.load()
    times: dict[tuple[str, str], list[float]] = {}
    modes = list(MODES)
    for mode in modes:
        worker_times(course, mode)  # warm the file cache
    floors = []
    for i in range(args.rounds):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            for what, t in zip(("start", "probe", "recover"), worker_times(course, mode), strict=True):
                times.setdefault((what, mode), []).append(t)
        floors.append(floor())
    for i in range(args.grade):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            times.setdefault(("grade", mode), []).append(grade_time(course, mode))
    print(f"floor    python -c 'import torch' {statistics.median(floors):.3f} s   [n={len(floors)}]")
    for what in ("start", "probe", "recover", "grade"):
        if (what, "plain") not in times:
            continue
        plain = statistics.median(times[(what, "plain")])
        cells = []
        for mode in modes:
            m = statistics.median(times[(what, mode)])
            cells.append(f"{mode} {m:8.4f} s ({m - plain:+.4f})")
        print(f"{what:<8} " + "   ".join(cells) + f"   [n={len(times[(what, 'plain')])}]")


if __name__ == "__main__":
    main()
