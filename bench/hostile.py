"""What a submission that exits, crashes or loops forever in every function costs, next to an honest one.

For each notebook of week 1 it writes four submissions from the source notebook: the reference as it is
(honest), and the reference with one statement put first in every function of every solution cell —
`os._exit(0)` (exit), a segmentation fault (crash), `while True: pass` (loop). Each is graded alone, with
the sandbox, one worker, in rotating order; the medians and each one's ratio to the honest one are printed.

    .venv/bin/python bench/hostile.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course import config, notebooks
from course.grading import pipeline

FIRST = {
    "exit": "import os\nos._exit(0)",
    "crash": "import ctypes\nctypes.string_at(0)",
    "loop": "while True:\n    pass",
}


def poisoned(source: str, statement: str) -> str:
    """`source` with `statement` first in the body of every function it defines."""
    tree = ast.parse(source)
    first = ast.parse(statement).body
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [*first, *node.body]
    return ast.unparse(tree)


def submissions(course, folder: Path) -> dict[str, dict[str, Path]]:
    a = course.assignment("week1")
    out: dict[str, dict[str, Path]] = {kind: {} for kind in ("honest", *FIRST)}
    for nb in a.notebooks:
        source = notebooks.read(course.paths(nb).source)
        for kind in out:
            made = nbformat.from_dict(source)
            if kind != "honest":
                for cell in notebooks.solution_cells(made).values():
                    cell.source = poisoned(cell.source, FIRST[kind])
            path = folder / kind / "week1" / f"{nb.name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(made, str(path))
            out[kind][nb.name] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    course = config.load()
    a = course.assignment("week1")
    times: dict[str, list[float]] = {}
    scores: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        made = submissions(course, Path(tmp))
        kinds = list(made)
        for i in range(args.rounds):
            for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:
                t0 = time.perf_counter()
                [results] = pipeline.grade(course, a, {kind: made[kind]}, pipeline.GradingOptions(workers=1))
                times.setdefault(kind, []).append(time.perf_counter() - t0)
                scores[kind] = sum(r.score for r in results)
                print(f"  round {i + 1}: {kind:<6} {times[kind][-1]:7.1f} s  score {scores[kind]:g}", flush=True)
    honest = statistics.median(times["honest"])
    for kind in kinds:
        m = statistics.median(times[kind])
        print(f"{kind:<6} {m:7.1f} s  ({m / honest:.2f}x honest)  score {scores[kind]:g}  [n={len(times[kind])}]")
    if any(scores[k] for k in FIRST):
        sys.exit("a hostile submission earned points")


if __name__ == "__main__":
    main()
