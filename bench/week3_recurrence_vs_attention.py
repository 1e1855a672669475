"""Week 3, notebook 03: nn.LSTM next to a causal transformer block, as the notebook measures them, over seeds.

  timing   a forward and backward pass of the notebook's RecurrentLayer(64, 80) and AttentionBlock(64, 4) on a
           batch of 8 sequences of T = 16, 64, 256, 1024 steps, with the notebook's median_time, --rounds times
           in alternating order; the medians of the rounds, per length, and with --threads-also N the same at N
           threads next to 1
  training the notebook's RecurrentLM and AttentionLM trained by its train_for on pydoc for --budget seconds each,
           --seeds times (seeds 0, 1, ...), the two models alternating; the final validation loss, the steps and
           the tokens per second of each run, then their min and median; with --sweep, first each model at the
           learning rates 3e-3, 1e-2 and 3e-2 for seed 0, to choose the rates the notebook uses

With --clock cpu, the clock that median_time and train_for read is the thread's CPU time instead of the wall clock:
on a machine that other programs keep busy, the budget is then the work done, not the time spent waiting (one
thread does all the work, so on a quiet machine the two clocks agree).

The code comes from the source notebook itself: every code cell that the grader runs (the definitions: the
imports, the layers, the reference's cost model, the timing helpers, the language models, train_for), the
cell that loads the text, and the learning rates of the training cell, so that this measures what a learner
runs. One thread by default, as in the notebook.

    .venv/bin/python bench/week3_recurrence_vs_attention.py [--only timing|training] [--rounds 5] [--seeds 5]
                                                            [--budget 20] [--sweep] [--threads-also 2] [--clock cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
import types

import nbformat
import torch
from notebook_code import REPO

NOTEBOOK = REPO / "source" / "week3" / "03_recurrence_vs_attention.ipynb"
LENGTHS = (16, 64, 256, 1024)
RATES = (3e-3, 1e-2, 3e-2)


def notebook_namespace() -> dict:
    """The namespace of the notebook after its definition cells (those the grader runs) and its data cell."""
    ns: dict = {}
    for cell in nbformat.read(str(NOTEBOOK), as_version=4).cells:
        if cell.cell_type != "code":
            continue
        if cell.metadata.get("nbgrader", {}).get("grade"):  # a visible check, not a definition
            continue
        skipped = "grader-skip" in cell.metadata.get("tags", [])
        if not skipped or "coursedata.text(" in cell.source:
            exec(compile(cell.source, f"<{NOTEBOOK.name} cell>", "exec"), ns)
        elif "RATES = " in cell.source:  # the training cell: only its learning rates
            exec("\n".join(line for line in cell.source.splitlines() if line.startswith("RATES = ")), ns)
    return ns


def timing(ns, rounds: int, threads_also: int | None) -> None:
    torch.manual_seed(0)
    layers = {"LSTM": ns["RecurrentLayer"](64, 80), "block": ns["AttentionBlock"](64, 4)}
    configurations = [1] + ([threads_also] if threads_also else [])
    for threads in configurations:
        torch.set_num_threads(threads)
        print(
            f"\n{threads} thread(s); medians of {rounds} rounds, each the median of 7 timed calls after 2 warm-up calls"
        )
        print(f"{'T':>5s} {'LSTM ms':>8s} {'(min-max)':>15s} {'block ms':>9s} {'(min-max)':>15s} {'block/LSTM':>11s}")
        for T in LENGTHS:
            x = torch.randn(8, T, 64)
            times = {name: [] for name in layers}
            for r in range(rounds):
                order = list(layers) if r % 2 == 0 else list(layers)[::-1]
                for name in order:
                    times[name].append(
                        ns["median_time"](lambda layer=layers[name], x=x: ns["forward_backward"](layer, x))
                    )
            a, b = (statistics.median(times[name]) for name in layers)
            print(
                f"{T:5d} {1e3 * a:8.2f} {1e3 * min(times['LSTM']):7.2f}-{1e3 * max(times['LSTM']):<7.2f} "
                f"{1e3 * b:9.2f} {1e3 * min(times['block']):7.2f}-{1e3 * max(times['block']):<7.2f} {b / a:11.2f}"
            )
    torch.set_num_threads(1)


def training_run(ns, kind: str, seed: int, budget: float, lr: float) -> dict:
    torch.manual_seed(seed)
    model = ns[kind](ns["V"])
    cpu = time.process_time()
    history = ns["train_for"](model, budget, lr=lr, seed=seed, progress=False)
    return {
        "val_loss": history["val_loss"][-1],
        "steps": history["steps"],
        "tokens_per_second": history["tokens"][-1] / history["seconds"][-1],
        "cpu": time.process_time() - cpu,
    }


def training(ns, seeds: int, budget: float, sweep: bool) -> None:
    rates = dict(ns["RATES"])
    if sweep:
        print(f"\nlearning-rate sweep, seed 0, {budget:g} s each")
        for kind in ("RecurrentLM", "AttentionLM"):
            results = {lr: training_run(ns, kind, 0, budget, lr) for lr in RATES}
            for lr, r in results.items():
                print(f"{kind:12s} lr {lr:<6g} validation loss {r['val_loss']:.4f} after {r['steps']:5d} steps")
            rates[kind] = min(results, key=lambda lr: results[lr]["val_loss"])
            print(f"{kind:12s} best: {rates[kind]:g}")
    print(f"\n{seeds} seeds, {budget:g} s each, learning rates {rates}")
    runs = {kind: [] for kind in ("RecurrentLM", "AttentionLM")}
    for seed in range(seeds):
        order = list(runs) if seed % 2 == 0 else list(runs)[::-1]
        for kind in order:
            r = training_run(ns, kind, seed, budget, rates[kind])
            runs[kind].append(r)
            print(
                f"{kind:12s} seed {seed}: validation loss {r['val_loss']:.4f}, {r['steps']:5d} steps, "
                f"{r['tokens_per_second']:9,.0f} tokens/s, {r['cpu']:5.1f} s CPU",
                flush=True,
            )
    for kind, rs in runs.items():
        losses = [r["val_loss"] for r in rs]
        print(
            f"{kind:12s} validation loss min {min(losses):.4f}, median {statistics.median(losses):.4f}, "
            f"max {max(losses):.4f}; steps median {statistics.median(r['steps'] for r in rs):.0f}; "
            f"tokens/s median {statistics.median(r['tokens_per_second'] for r in rs):,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("timing", "training"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads-also", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    ns = notebook_namespace()
    if args.clock == "cpu":  # what the notebook's functions see as `time`: perf_counter reads the thread's CPU time
        ns["time"] = types.SimpleNamespace(perf_counter=time.thread_time, process_time=time.process_time)
    torch.set_num_threads(1)
    if args.only in (None, "timing"):
        timing(ns, args.rounds, args.threads_also)
    if args.only in (None, "training"):
        training(ns, args.seeds, args.budget, args.sweep)


if __name__ == "__main__":
    main()
