"""What Python's cyclic garbage collector costs the week 1/01 moons training test, per collector setting.

Every micrograd Value and its _backward closure form a reference cycle, so each training step leaves a graph
of cycles for the collector; with the default thresholds it scans them again and again while the next step
builds its graph. This runs the reference train() (50 moons points, MLP(2, [16, 1]), 60 steps at lr = 1.0, as
the hidden test does) in a fresh plain process per setting, rounds in rotating order, and prints the median
CPU time of training, of the collection that follows it once the old setting is back, and the peak memory
above the start.

    .venv/bin/python bench/moons_gc.py [--rounds 3] [--thresholds 700,10,10 500000,1,1000 ...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CHILD = r"""
import gc, json, math, random, resource, runpy, sys, time
sys.path.insert(0, sys.argv[1] + "/autograder/week1")
from test_01_autograd_engine import moons
ns = runpy.run_path(sys.argv[1] + "/solutions/week1/01_autograd_engine.py")
threshold = tuple(int(v) for v in sys.argv[2].split(","))
X, y = moons(3, n=50)
rng = random.Random(3)
model = ns["MLP"](2, [16, 1])
for layer in model.layers:
    for n in layer.neurons:
        for w in n.w:
            w.data = rng.uniform(-1, 1)
        n.b.data = 0.0
start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gc.collect()
gc.freeze()
old = gc.get_threshold()
gc.set_threshold(*threshold)
t0 = time.process_time()
ns["train"](model, X, y, steps=60, lr=1.0)
t1 = time.process_time()
gc.set_threshold(*old)
gc.unfreeze()
gc.collect()
t2 = time.process_time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss
print(json.dumps({"train": t1 - t0, "collect": t2 - t1, "peak_mb": peak / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--thresholds", nargs="+", default=["700,10,10", "200000,1,1000", "500000,1,1000"])
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.thresholds}
    for r in range(args.rounds):
        order = args.thresholds[r % len(args.thresholds) :] + args.thresholds[: r % len(args.thresholds)]
        for threshold in order:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT), threshold], capture_output=True, text=True, check=True
            ).stdout
            results[threshold].append(json.loads(out))
    print(f"{'thresholds':>16} {'train CPU':>10} {'+ collect':>10} {'total':>7} {'peak':>8}")
    for threshold, runs in results.items():
        train = statistics.median(run["train"] for run in runs)
        collect = statistics.median(run["collect"] for run in runs)
        peak = statistics.median(run["peak_mb"] for run in runs)
        print(f"{threshold:>16} {train:9.2f}s {collect:9.2f}s {train + collect:6.2f}s {peak:6.0f} MB")


if __name__ == "__main__":
    main()
