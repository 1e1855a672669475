"""What the audit's focus saves, and proof that it changes no verdict, measured side by side in one run.

For each notebook (or the ones named), the audit runs twice: focused (each variant runs only the tests whose
probes, traced on the reference, reach the code it changes) and with every test on every variant. It prints
both times, the tests each way ran, and whether every row's score, lost exercises, named mistakes and
diagnosis are the same; exit 1 if any differ.

    .venv/bin/python bench/audit.py [week1/01_autograd_engine ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from course import config
from course.authoring import audit
from course.grading import pipeline

ROOT = Path(__file__).resolve().parent.parent


def verdicts(a: audit.NotebookAudit) -> dict[str, tuple[object, ...]]:
    return {r.label: (r.result.score, sorted(audit._lost(r)), r.named, r.result.diagnosis) for r in a.rows}


def tests_run(a: audit.NotebookAudit) -> int:
    return sum(len(r.result.tests) - len(r.not_run) for r in a.rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="assignment/notebook (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    course = config.load(ROOT)
    chosen = [
        nb
        for a in course.assignments.values()
        for nb in a.notebooks
        if not args.notebooks or f"{a.name}/{nb.name}" in args.notebooks
    ]
    differ = 0
    totals = [0.0, 0.0]
    print(f"{'notebook':<34}{'focused s':>10}{'every s':>9}{'ratio':>7}{'tests run':>18}  verdicts")
    for nb in chosen:
        seed = pipeline.default_seed(course, course.assignment(nb.assignment))
        t0 = time.perf_counter()
        focused = audit.audit_notebook(course, nb, seed, args.workers)
        t1 = time.perf_counter()
        every = audit.audit_notebook(course, nb, seed, args.workers, every_test=True)
        t2 = time.perf_counter()
        same = verdicts(focused) == verdicts(every)
        differ += not same
        totals[0] += t1 - t0
        totals[1] += t2 - t1
        name = f"{nb.assignment}/{nb.name}"
        ran = f"{tests_run(focused)} of {tests_run(every)}"
        print(
            f"{name:<34}{t1 - t0:>10.1f}{t2 - t1:>9.1f}{(t2 - t1) / (t1 - t0):>7.2f}{ran:>18}  "
            f"{'same' if same else 'DIFFER'}",
            flush=True,
        )
        if not same:
            a, b = verdicts(focused), verdicts(every)
            for label in a:
                if a[label] != b[label]:
                    print(f"    {label}: focused {a[label]} / every test {b[label]}")
    print(f"{'total':<34}{totals[0]:>10.1f}{totals[1]:>9.1f}{totals[1] / totals[0]:>7.2f}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
