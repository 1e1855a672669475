"""Week 4, notebook 03: the reference encoder-decoder trained to reverse strings of digits, over several seeds.

  model     Seq2Seq(d_model=64, n_head=4, d_ff=128, n_layer=1), post-norm layers on nn.MultiheadAttention
  training  the notebook's: Adam at 3e-3, 1,000 steps of 64 train strings of 1 to 8 digits, teacher forcing
  measured  exact-match accuracy of greedy decoding on 2,000 test strings (the split the model never trains on),
            the final training loss, and the CPU and wall time of the training

The model, the loss and the decoding come from solutions/week4/03_encoder_decoder.py; the data (reversal_batch)
from the source notebook's cell, so that this measures what a learner runs. With --runs N (seeds 0, 1, ...) it
prints every run and the minimum and median of each figure.

    .venv/bin/python bench/week4_seq2seq.py [--runs 10] [--steps 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from notebook_code import notebook_functions, reference

NOTEBOOK = "week4/03_encoder_decoder"


def run(ref, reversal_batch, seed: int, steps: int) -> dict:
    torch.manual_seed(seed)
    model = ref.Seq2Seq(d_model=64, n_head=4, d_ff=128, n_layer=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(steps):
        src, tgt = reversal_batch(64, generator)
        loss = ref.seq2seq_loss(model, src, tgt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.eval()
    src, tgt = reversal_batch(2000, torch.Generator().manual_seed(10_000 + seed), split="test")
    predicted = ref.greedy_decode(model, src, tgt.shape[1] - 1)
    accuracy = (predicted == tgt[:, 1:]).all(dim=1).float().mean().item()
    return {"accuracy": accuracy, "loss": loss.item(), "wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs, seeds 0.. (default 10)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000, the notebook's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the notebook sets)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = reference(NOTEBOOK)
    given = {"torch": torch, "PAD": ref.PAD, "BOS": ref.BOS, "EOS": ref.EOS}
    reversal_batch = notebook_functions(NOTEBOOK, ("reversal_batch",), given)["reversal_batch"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps of 64 strings\n")
    runs = []
    for seed in range(args.runs):
        r = run(ref, reversal_batch, seed, args.steps)
        runs.append(r)
        print(
            f"seed {seed}: test accuracy {r['accuracy']:.4f}, final loss {r['loss']:.5f}; "
            f"{r['cpu']:.1f} s CPU, {r['wall']:.1f} s wall"
        )
    for key, fmt in (("accuracy", ".4f"), ("loss", ".5f"), ("cpu", ".1f"), ("wall", ".1f")):
        values = [r[key] for r in runs]
        print(f"{key:>8}: min {min(values):{fmt}}  median {statistics.median(values):{fmt}}  max {max(values):{fmt}}")


if __name__ == "__main__":
    main()
