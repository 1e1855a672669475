"""Week 2, notebook 02: how fast and how well the reference models train, as the notebook trains them.

  2-D CNN on digits     CNN(1, 10, 8), train(epochs=40, lr=3e-3, batch_size=32, augment=random_shift)
  1-D CNN on MNIST-1D   CNN1D(), train(epochs=40, lr=1e-2, batch_size=64)
  MLP on MNIST-1D       40 -> 100 -> 100 -> 10 with ReLU, the same loop: the paper's baseline
  lost digits (--design) the architectures of section 6 on the notebook's lost_digits(seed), with its recipe
                        train(epochs=20, lr=3e-3, batch_size=32): the baseline CNN(1, 10, 16), the reference's
                        build_model() and variants of it that change one thing; validation and test accuracy

The models and the loop come from solutions/week2/02_cnn_classification.py; the notebook's own helpers
(split_validation, random_shift) are taken from its source notebook, so that this measures what a learner runs.
Each configuration runs --runs times (seeds 0, 1, ...); it prints each run's test accuracy, wall and CPU time, and
the medians. With --seeds N it runs N seeds instead and prints the spread of the accuracy (threshold sweeps).

    .venv/bin/python bench/week2_training.py [--runs 3] [--threads 2] [--seeds N] [--only digits|cnn1d|mlp]
    .venv/bin/python bench/week2_training.py --design [--seeds 10] [--threads 1] [--variant NAME ...]

--design prints, per architecture, the minimum and median over the seeds of the validation accuracy (what the
notebook's table shows) and of the test accuracy (what the hidden test grades, threshold 0.90), and the CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
from notebook_code import notebook_functions, reference

import coursedata

NOTEBOOK = "week2/02_cnn_classification"


def configurations(ref, helpers) -> dict:
    split = helpers["split_validation"]
    digits = split(coursedata.images("digits"), n_val=200)
    raw = coursedata.mnist1d()
    seqs = split({k: torch.from_numpy(raw[k]) for k in ("x_train", "y_train", "x_test", "y_test")}, n_val=500)

    def mlp():
        return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))

    return {
        "digits": (
            "2-D CNN, digits",
            lambda: ref.CNN(1, 10, 8),
            digits,
            {"epochs": 40, "lr": 3e-3, "batch_size": 32, "augment": helpers["random_shift"]},
        ),
        "cnn1d": ("1-D CNN, MNIST-1D", lambda: ref.CNN1D(), seqs, {"epochs": 40, "lr": 1e-2, "batch_size": 64}),
        "mlp": ("MLP, MNIST-1D", mlp, seqs, {"epochs": 40, "lr": 1e-2, "batch_size": 64}),
    }


def design_variants(ref) -> dict:
    """The architectures of the lost-digits experiment: the baseline, the reference design, and one change each."""

    def stack(channels=(16, 32, 64), pool_after=(0,), batch_norm=True, head="max"):
        layers, c_in = [], 1
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1)] + ([nn.BatchNorm2d(c)] if batch_norm else []) + [nn.ReLU()]
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        if head == "flatten":
            size = 16 // 2 ** len(pool_after)
            return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * size * size, 10))
        pool = nn.AdaptiveMaxPool2d(1) if head == "max" else nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(c_in, 10))

    return {
        "baseline CNN(1, 10, 16)": lambda: ref.CNN(1, 10, 16),
        "baseline + batch norm": lambda: stack((32, 64), pool_after=(0, 1), head="flatten"),
        "3 stages, batch norm, flatten": lambda: stack(pool_after=(0, 1, 2), head="flatten"),
        "2 stages, global max, no bn": lambda: stack((32, 64), batch_norm=False),
        "2 stages, global max, bn": lambda: stack((32, 64)),
        "reference, global average": lambda: stack(head="avg"),
        "reference, no batch norm": lambda: stack(batch_norm=False),
        "reference build_model()": ref.build_model,
    }


def design(ref, helpers, seeds, only) -> None:
    digits = coursedata.images("digits")
    variants = design_variants(ref)
    print(
        f"{'lost digits, ' + str(len(seeds)) + ' seeds':32s} {'params':>7s} {'CPU s':>6s}  val acc min / median"
        f"   test acc min / median"
    )
    for name, make in variants.items():
        if only and name not in only:
            continue
        val, test, cpu = [], [], []
        for seed in seeds:
            data = helpers["lost_digits"](digits, seed=seed)
            torch.manual_seed(seed)
            model = make()
            start = time.process_time()
            history = ref.train(model, data, epochs=20, lr=3e-3, batch_size=32, seed=seed, progress=False)
            cpu.append(time.process_time() - start)
            val.append(history["val_acc"][-1])
            test.append(ref.evaluate(model, data["x_test"], data["y_test"]))
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:32s} {params:7,d} {statistics.median(cpu):6.1f}  {min(val):.3f} / {statistics.median(val):.3f}"
            f"          {min(test):.3f} / {statistics.median(test):.3f}   (test: "
            f"{' '.join(f'{v:.3f}' for v in test)})",
            flush=True,
        )


def run(ref, make, data, options, seed) -> dict:
    torch.manual_seed(seed)
    model = make()
    wall, cpu = time.perf_counter(), time.process_time()
    ref.train(model, data, seed=seed, progress=False, **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "accuracy": ref.evaluate(model, data["x_test"], data["y_test"]),
        "wall": wall,
        "cpu": cpu,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration, seeds 0.. (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: two CPU cores)")
    parser.add_argument("--seeds", type=int, metavar="N", help="sweep N seeds and print the accuracy's spread")
    parser.add_argument("--only", choices=["digits", "cnn1d", "mlp"], action="append", help="run only these")
    parser.add_argument("--design", action="store_true", help="the lost-digits architectures (default 10 seeds)")
    parser.add_argument("--variant", action="append", help="with --design: run only this architecture")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    ref = reference(NOTEBOOK)
    helpers = notebook_functions(
        NOTEBOOK, ("split_validation", "random_shift", "lost_digits"), {"torch": torch, "F": torch.nn.functional}
    )
    if args.design:
        print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
        design(ref, helpers, range(args.seeds or 10), args.variant)
        return
    configs = configurations(ref, helpers)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    for key, (title, make, data, options) in configs.items():
        if args.only and key not in args.only:
            continue
        results = [run(ref, make, data, options, seed) for seed in range(args.seeds or args.runs)]
        accuracy = [r["accuracy"] for r in results]
        if args.seeds:
            accuracy.sort()
            print(
                f"{title:18s} {results[0]['params']:6,d} params  test accuracy over {len(accuracy)} seeds: min "
                f"{accuracy[0]:.4f}, 5th percentile {accuracy[len(accuracy) // 20]:.4f}, median "
                f"{statistics.median(accuracy):.4f}, max {accuracy[-1]:.4f}; "
                f"CPU per run {statistics.median(r['cpu'] for r in results):.1f} s"
            )
            continue
        for seed, r in enumerate(results):
            print(
                f"{title:18s} seed {seed}: test accuracy {r['accuracy']:.4f}, {r['wall']:5.1f} s wall, "
                f"{r['cpu']:5.1f} s CPU"
            )
        print(
            f"{title:18s} {results[0]['params']:6,d} params  median of {len(results)}: test accuracy "
            f"{statistics.median(accuracy):.4f}, {statistics.median(r['wall'] for r in results):.1f} s wall, "
            f"{statistics.median(r['cpu'] for r in results):.1f} s CPU"
        )


if __name__ == "__main__":
    main()
