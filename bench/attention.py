"""The reference's scaled_dot_product_attention (week4/01: scores, masked_fill, a softmax by hand, weights @ v)
next to F.scaled_dot_product_attention, on GPT-sized shapes, timed side by side in one run.

Each round times both functions once, in alternating order; the first round warms up. The medians and their
ratio are printed per device (the CPU, and the GPU when there is one), without a mask and with a causal mask
given to both as the same boolean tensor (True = may attend). The last column times F.scaled_dot_product_attention
with is_causal=True instead of the mask, which lets its fused kernels skip the blocks above the diagonal.
The reference also returns the [N, heads, T, T] weights; F.scaled_dot_product_attention never forms them.

On Linux, glibc's malloc hands allocations above its mmap threshold (at most 32 MiB) straight to the kernel and
returns them when they are freed, so every call page-faults its large temporaries in again; --keep-memory asks
malloc (mallopt) to keep freed memory in the process instead, which separates that cost from the arithmetic.

    .venv/bin/python bench/attention.py [--rounds 15] [--threads 1] [--backward] [--dtype float32] [--keep-memory]
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REFERENCE = Path(__file__).resolve().parent.parent / "solutions" / "week4" / "01_attention.py"

# batch, heads, sequence length, head size: the attention layers of small GPTs
SHAPES = [(16, 4, 64, 32), (16, 4, 128, 32), (16, 8, 128, 64), (16, 6, 256, 64), (16, 8, 256, 64)]


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every allocation from its heap and never trim it (no mmap, no munmap)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def timed(fn, args, backward, sync) -> float:
    if backward:
        for t in args:
            t.grad = None
    sync()
    start = time.perf_counter()
    out = fn(*args)
    out = out[0] if isinstance(out, tuple) else out
    if backward:
        out.backward(torch.ones_like(out))
    sync()
    return time.perf_counter() - start


def compare(fns, device, shape, dtype, causal, backward, rounds) -> list[float]:
    """Medians of each of `fns` (called as fn(q, k, v, mask)), timed in turns."""
    n, h, T, hs = shape
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(n, h, T, hs, generator=g, dtype=dtype).to(device).requires_grad_(backward) for _ in range(3))
    mask = torch.ones(T, T, dtype=torch.bool, device=device).tril() if causal else None
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(rounds + 1):
        for i in order if r % 2 else order[::-1]:
            times[i].append(timed(lambda *a, fn=fns[i]: fn(*a, mask), (q, k, v), backward, sync))
    return [statistics.median(t[1:]) for t in times]  # the first round warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--backward", action="store_true", help="time the forward and the backward pass")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    parser.add_argument(
        "--keep-memory",
        action="store_true",
        help="keep freed memory in the process (glibc mallopt): no page faults for temporaries",
    )
    args = parser.parse_args()
    if args.keep_memory and not keep_freed_memory():
        raise SystemExit("--keep-memory needs glibc's mallopt")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    attention = runpy.run_path(str(REFERENCE))["scaled_dot_product_attention"]
    fns = [
        attention,
        lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    ]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), {args.dtype}, "
        f"{'forward + backward' if args.backward else 'forward'}, median of {args.rounds} rounds"
        f"{', freed memory kept (mallopt)' if args.keep_memory else ''}"
    )
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name()}")
    print(
        f"{'device':6s} {'[N, heads, T, hs]':>18s} {'mask':>6s}   {'reference':>10s}   {'SDPA':>10s}   ratio"
        f"   {'SDPA is_causal':>14s}"
    )
    for device in devices:
        for shape in SHAPES:
            for causal in (False, True):
                medians = compare(fns if causal else fns[:2], device, shape, dtype, causal, args.backward, args.rounds)
                ours, theirs = medians[:2]
                extra = f"{1e3 * medians[2]:11.3f} ms" if causal else ""
                print(
                    f"{device.type:6s} {list(shape)!s:>18s} {'causal' if causal else 'none':>6s}   "
                    f"{1e3 * ours:7.3f} ms   {1e3 * theirs:7.3f} ms   {ours / theirs:5.2f}   {extra}"
                )


if __name__ == "__main__":
    main()
