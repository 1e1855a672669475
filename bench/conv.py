"""The reference's vectorized convolution (week2/01, conv2d_unfold: F.unfold and one matrix product) next to
F.conv2d, on the layers of small CNNs, timed side by side in one run.

Each round times both functions once, in alternating order, after a warm-up; the medians and their ratio are
printed, per device (the CPU, and the GPU when there is one).

    .venv/bin/python bench/conv.py [--rounds 15] [--threads 1] [--batch 64]
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REFERENCE = Path(__file__).resolve().parent.parent / "solutions" / "week2" / "01_convolution.py"

# (C_in, H, W), (C_out, k), stride, padding: the layers of a CIFAR-sized and an MNIST-sized CNN
LAYERS = [
    ((3, 32, 32), (16, 3), 1, 1),
    ((16, 32, 32), (32, 3), 1, 1),
    ((32, 16, 16), (64, 3), 1, 1),
    ((16, 32, 32), (32, 3), 2, 1),
    ((1, 28, 28), (8, 5), 1, 2),
]


def timed(fn, *args, sync) -> float:
    sync()
    start = time.perf_counter()
    fn(*args)
    sync()
    return time.perf_counter() - start


def compare(conv2d_unfold, device, batch, layer, rounds) -> tuple[float, float]:
    (c_in, h, w), (c_out, k), stride, padding = layer
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, h, w, generator=g).to(device)
    weight = torch.randn(c_out, c_in, k, k, generator=g).to(device)
    b = torch.randn(c_out, generator=g).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ours, theirs = [], []
    for r in range(rounds + 1):
        pair = [(conv2d_unfold, ours), (F.conv2d, theirs)]
        for fn, times in pair if r % 2 else pair[::-1]:
            times.append(timed(fn, x, weight, b, stride, padding, sync=sync))
    return statistics.median(ours[1:]), statistics.median(theirs[1:])  # the first round warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    conv2d_unfold = runpy.run_path(str(REFERENCE))["conv2d_unfold"]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), batch {args.batch}, "
        f"median of {args.rounds} rounds"
    )
    print(
        f"{'device':6s} {'input':>14s} {'filters':>8s} {'s':>2s} {'p':>2s}   {'unfold':>9s}   {'F.conv2d':>9s}   ratio"
    )
    for device in devices:
        for layer in LAYERS:
            ours, theirs = compare(conv2d_unfold, device, args.batch, layer, args.rounds)
            (c_in, h, w), (c_out, k), stride, padding = layer
            print(
                f"{device.type:6s} {[c_in, h, w]!s:>14s} {f'{c_out}x{k}x{k}':>8s} {stride:2d} {padding:2d}   "
                f"{1e3 * ours:6.2f} ms   {1e3 * theirs:6.2f} ms   {ours / theirs:5.2f}"
            )


if __name__ == "__main__":
    main()
