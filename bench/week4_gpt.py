"""Week 4, notebook 02: the reference GPT trained with nanoGPT's configuration for CPUs, and the loss it reaches.

  model     GPT(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0), characters as tokens
  training  the notebook's train(): AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1), 100 warmup steps, cosine
            decay to 1e-4, gradient clipping at 1, 2,000 steps of 12 windows
  target    for Tiny Shakespeare: validation loss <= 1.88 within 3 minutes on 2 CPU cores (nanoGPT's figure)

The model comes from solutions/week4/02_gpt.py; the data pipeline and the training loop (get_batch, bigram_loss,
estimate_loss, train) are taken from the source notebook's cells, so that this measures what a learner runs. The
text is a local file given as an argument (for instance a copy of Tiny Shakespeare's input.txt), or by default the
offline pydoc text; the first 90% is for training, the last 10% for validation. Each run prints the validation
loss as nanoGPT estimates it (20 random batches) and over every window of the validation text, the bigram model's
loss, wall and CPU time; with --runs N (seeds 0, 1, ...) it prints the medians.

    .venv/bin/python bench/week4_gpt.py [TEXT_FILE] [--runs 1] [--threads 2] [--iters 2000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from notebook_code import notebook_functions, reference
from tqdm.auto import tqdm

import coursedata

NOTEBOOK = "week4/02_gpt"
TARGET_LOSS, TARGET_SECONDS = 1.88, 180.0


@torch.no_grad()
def full_loss(model, data, block_size) -> float:
    """The mean cross-entropy over every non-overlapping window of block_size tokens of data."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1 : n + 1].view(-1, block_size)
    total = sum(model(xb, yb)[1].item() * len(xb) for xb, yb in zip(x.split(256), y.split(256), strict=False))
    return total / len(x)


def run(ref, ns, splits, vocab_size, seed, iters) -> dict:
    torch.manual_seed(seed)
    config = ref.GPTConfig(block_size=64, vocab_size=vocab_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    model = ref.GPT(config)
    wall, cpu = time.perf_counter(), time.process_time()
    history = ns["train"](
        model,
        splits,
        max_iters=iters,
        batch_size=12,
        lr=1e-3,
        min_lr=1e-4,
        warmup_iters=100,
        eval_interval=iters,
        eval_iters=20,
        seed=seed,
        progress=False,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "val": history["val"][-1],
        "train": history["train"][-1],
        "val_full": full_loss(model, splits["val"], 64),
        "wall": wall,
        "cpu": cpu,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "text",
        nargs="?",
        default="pydoc",
        help="a UTF-8 text file, or a text of coursedata's registry (default: pydoc, offline)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs, seeds 0.. (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target's cores)")
    parser.add_argument("--iters", type=int, default=2000, help="training steps (default 2000, nanoGPT's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    text = coursedata.text(args.text)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    splits = {"train": data[:n], "val": data[n:]}
    ref = reference(NOTEBOOK)
    ns = notebook_functions(
        NOTEBOOK,
        ("get_batch", "bigram_loss", "estimate_loss", "learning_rate", "train"),
        {"torch": torch, "F": F, "math": math, "tqdm": tqdm, "device": "cpu"},
    )
    bigram = ns["bigram_loss"](splits["train"], splits["val"], len(chars))
    print(f"text {args.text!r}: {len(text):,} characters, vocabulary {len(chars)}, train {n:,}, val {len(data) - n:,}")
    print(f"uniform guess {math.log(len(chars)):.3f}, bigram model {bigram:.3f} nats per character on val")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.iters} steps of 12 x 64 characters\n")

    runs = []
    for seed in range(args.runs):
        r = run(ref, ns, splits, len(chars), seed, args.iters)
        runs.append(r)
        print(
            f"seed {seed}: val {r['val']:.3f} (estimated), {r['val_full']:.3f} (all of val), train {r['train']:.3f}; "
            f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {args.iters / r['wall']:.1f} steps/s, "
            f"{r['params']:,} parameters"
        )
    med = {key: statistics.median(r[key] for r in runs) for key in ("val", "val_full", "wall", "cpu")}
    print(
        f"\nmedian of {len(runs)}: val {med['val']:.3f} (estimated) / {med['val_full']:.3f} (all of val), "
        f"{med['val_full'] - bigram:+.3f} against the bigram model; {med['wall']:.1f} s wall, {med['cpu']:.1f} s CPU"
    )
    met = med["val"] <= TARGET_LOSS and med["wall"] <= TARGET_SECONDS
    print(
        f"target (stated for Tiny Shakespeare): val <= {TARGET_LOSS} within {TARGET_SECONDS:.0f} s: "
        f"{'met' if met else 'not met'} on this text"
    )


if __name__ == "__main__":
    main()
