"""Week 4, notebook 01, section 5: one forward and backward pass of a causal self-attention layer against an LSTM,
over growing sequence lengths — attention's one batched product against the recurrence's T sequential steps.

  layers    the reference's MultiHeadAttention(64, 4 heads) with its causal_mask; nn.LSTM(64, 64); a Python loop
            over nn.LSTMCell(64, 64), the recurrence written out as in week 3
  inputs    N = 8 sequences of T = 16, 64, 256, 512 (and more with --lengths) positions of 64 features
  measured  the median wall time of one forward and backward pass (after a warm-up), per device: the CPU, and
            the GPU when there is one; and the size of the T x T weights attention keeps

The layer and the mask come from solutions/week4/01_attention.py; the loop and the timing repeat the notebook's
cells. Each run times every layer at every length; with --runs N it prints the median of the runs' medians.

    .venv/bin/python bench/week4_parallel.py [--runs 5] [--rounds 3] [--threads 1] [--lengths 16 64 256 512]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
from notebook_code import reference


def forward_backward_ms(layer, x, rounds: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for r in range(rounds + 1):
        x = x.detach().requires_grad_(True)
        sync()
        start = time.perf_counter()
        layer(x).sum().backward()
        sync()
        if r > 0:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class LSTMLoop(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.cell = nn.LSTMCell(C, C)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], self.cell.hidden_size)
        states = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            states.append(h)
        return torch.stack(states, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per layer and length (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the notebook sets)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256, 512])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = reference("week4/01_attention")
    N, C, n_head = 8, 64, 4
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); N = {N}, C = {C}, {n_head} heads; "
        f"median of {args.rounds} passes per run, median of {args.runs} runs, in ms\n"
    )
    for dev in devices:
        torch.manual_seed(0)
        attention = ref.MultiHeadAttention(C, n_head).to(dev)
        lstm, loop = nn.LSTM(C, C, batch_first=True).to(dev), LSTMLoop(C).to(dev)
        names = ("causal attention", "nn.LSTM", "LSTMCell loop")
        print(f"{dev.type}: {'T':>5} {'steps':>9} {'T x T weights':>14}" + "".join(f"{n:>18}" for n in names))
        for T in args.lengths:
            x, mask = torch.randn(N, T, C, device=dev), ref.causal_mask(T, dev)
            layers = (lambda x: attention(x, mask), lambda x: lstm(x)[0], loop)  # noqa: B023 (timed at once, here)
            times = [
                statistics.median(forward_backward_ms(layer, x, args.rounds) for _ in range(args.runs))
                for layer in layers
            ]
            weights_mb = N * n_head * T * T * 4 / 2**20
            print(
                f"{'':>{len(dev.type) + 1}} {T:5d} {'1 vs ' + str(T):>9} {weights_mb:11.1f} MB"
                + "".join(f"{t:18.2f}" for t in times)
            )
        print()


if __name__ == "__main__":
    main()
