"""A class graded as 1, 2 and 4 shards on this machine, side by side in one run.

It makes N Week 1 submissions as bench/grading.py does (complete, with two cataloged mistakes, broken),
then, for each shard count K, grades them in a fresh copy of the course as K separate `course grade
--shard k/K` processes started at once (the jobs of a cluster, here on one machine: the cores are shared)
and one `course grade --merge`. It prints the wall time of the shards, of the merge, and of the whole, and
checks that every count gives the same gradebook scores.

    .venv/bin/python bench/shards.py [--students 20] [--shards 1 2 4] [--notebook NB]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grading import BIN, REPO, course_dir, make_class, timed, write_class

from course import config


def scores(root: Path) -> list[tuple[str, str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return sorted(
            (s.id, nb.name, round(nb.score, 2)) for s in gb.students for sub in s.submissions for nb in sub.notebooks
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--notebook", help="only this notebook of week 1 (the others are left out of the class)")
    args = parser.parse_args()
    course = config.load(REPO)
    klass = make_class(course, args.students)
    if args.notebook:
        klass = {s: {n: nb for n, nb in nbs.items() if n == args.notebook} for s, nbs in klass.items()}
    base = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    results = {}
    print(f"{args.students} submissions of week 1, {len(next(iter(klass.values())))} notebook(s) each, sandbox on")
    print(f"{'shards':>6} {'shards s':>9} {'merge s':>8} {'total s':>8} {'s/student':>10}")
    for k in args.shards:
        root = course_dir(base / f"k{k}", with_suites=True)
        write_class(klass, root)
        env_k = dict(env, COURSE_ROOT=str(root))
        grade = [str(BIN / "course"), "grade", "week1", "submitted", "--workers", "1"]
        t0 = time.perf_counter()
        jobs = [
            subprocess.Popen(
                [*grade, "--shard", f"{i}/{k}"],
                cwd=root,
                env=env_k,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(1, k + 1)
        ]
        for job in jobs:
            _, err = job.communicate()
            if job.returncode not in (0, 1):  # 1: some submission lost points or could not be graded
                sys.exit(f"a shard of {k} failed:\n{err[-3000:]}")
        t_shards = time.perf_counter() - t0
        t_merge = timed([str(BIN / "course"), "grade", "week1", "submitted", "--merge"], root, env_k)
        results[k] = scores(root)
        total = t_shards + t_merge
        print(f"{k:>6} {t_shards:>9.1f} {t_merge:>8.1f} {total:>8.1f} {total / args.students:>10.2f}", flush=True)
    first = results[args.shards[0]]
    same = all(r == first for r in results.values())
    print(f"gradebooks: {'the same' if same else 'DIFFERENT'} for every shard count ({len(first)} notebook scores)")
    shutil.rmtree(base)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
