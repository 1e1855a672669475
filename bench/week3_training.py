"""Week 3, notebook 02: how well and how fast the reference sequence models train, as the notebook trains them.

  lstm-last   LSTMClassifier(64, pool="last") on MNIST-1D, train_classifier(epochs=30, lr=1e-2, batch_size=64, clip=1)
  lstm-max    LSTMClassifier(64, pool="max") on MNIST-1D, the same loop for 10 epochs
  names       CharLSTM(27, 16, 128) on the census names (coursedata.names()), train_char_model(epochs=10, lr=1e-2,
              batch_size=64, clip=1), next to the add-one bigram model counted on the same 90/10 split
  makemore    the same two models on a local copy of makemore's names.txt, with --makemore PATH (its published
              anchors, on its own split: bigram 2.48, MLP 2.17, WaveNet 1.99 nats per token)

The models and the language-model loop come from solutions/week3/02_sequence_models.py; the classifier's loop and
the data split are taken from the source notebook, so that this measures what a learner runs. Each configuration
runs --runs times (seeds 0, 1, ...) and prints each run's figures and the medians; with --seeds N the MNIST-1D
configurations run N seeds and print the spread of the test accuracy. One thread by default: for these small
recurrent models it is faster than two (--threads 2 to compare).

    .venv/bin/python bench/week3_training.py [--runs 3] [--threads 1] [--seeds N] [--only lstm-last|lstm-max|names]
                                             [--makemore PATH]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from notebook_code import notebook_functions, reference
from tqdm.auto import tqdm

import coursedata

NOTEBOOK = "week3/02_sequence_models"


def classifier_run(ref, helpers, data, pool, epochs, seed) -> dict:
    torch.manual_seed(seed)
    model = ref.LSTMClassifier(hidden_size=64, pool=pool)
    wall, cpu = time.perf_counter(), time.process_time()
    helpers["train_classifier"](model, data, epochs=epochs, lr=1e-2, batch_size=64, clip=1.0, seed=seed, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "accuracy": helpers["evaluate_classifier"](model, data["x_test"], data["y_test"]),
        "wall": wall,
        "cpu": cpu,
        "params": sum(p.numel() for p in model.parameters()),
    }


def names_split(words: list[str]):
    """The notebook's split: shuffled with seed 0, the first 10% for validation."""
    words = list(words)
    random.Random(0).shuffle(words)
    n_val = len(words) // 10
    return words[n_val:], words[:n_val]


def language_run(ref, train_words, val_words, seed, epochs=10) -> dict:
    chars = sorted(set("".join(train_words + val_words)))
    stoi = {".": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    bigram_cpu = time.process_time()
    bigram = ref.bigram_nll(ref.bigram_counts(train_words, stoi), val_words, stoi, alpha=1.0)
    bigram_cpu = time.process_time() - bigram_cpu
    (x_train, y_train), (x_val, y_val) = ref.encode_names(train_words, stoi), ref.encode_names(val_words, stoi)
    data = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    torch.manual_seed(seed)
    model = ref.CharLSTM(len(stoi), 16, 128)
    wall, cpu = time.perf_counter(), time.process_time()
    history = ref.train_char_model(
        model, data, epochs=epochs, lr=1e-2, batch_size=64, clip=1.0, seed=seed, progress=False
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "val_loss": history["val_loss"][-1],
        "bigram": bigram,
        "bigram_cpu": bigram_cpu,
        "wall": wall,
        "cpu": cpu,
        "params": sum(p.numel() for p in model.parameters()),
    }


def report_classifier(title, results):
    accuracy = [r["accuracy"] for r in results]
    for seed, r in enumerate(results):
        print(
            f"{title:22s} seed {seed}: test accuracy {r['accuracy']:.4f}, {r['wall']:5.1f} s wall, "
            f"{r['cpu']:5.1f} s CPU"
        )
    print(
        f"{title:22s} {results[0]['params']:6,d} params  median of {len(results)}: test accuracy "
        f"{statistics.median(accuracy):.4f}, {statistics.median(r['wall'] for r in results):.1f} s wall, "
        f"{statistics.median(r['cpu'] for r in results):.1f} s CPU"
    )


def report_language(title, results, words):
    for seed, r in enumerate(results):
        print(
            f"{title:22s} seed {seed}: validation loss {r['val_loss']:.4f} (bigram {r['bigram']:.4f}, "
            f"{r['bigram'] - r['val_loss']:.3f} nats better), {r['wall']:5.1f} s wall, {r['cpu']:5.1f} s CPU"
        )
    val = statistics.median(r["val_loss"] for r in results)
    print(
        f"{title:22s} {len(words):,d} names, {results[0]['params']:,d} params  median of {len(results)}: "
        f"validation loss {val:.4f}, bigram {results[0]['bigram']:.4f} (counted in {results[0]['bigram_cpu']:.1f} s "
        f"of CPU), margin {results[0]['bigram'] - val:.3f} nats; "
        f"{statistics.median(r['wall'] for r in results):.1f} s wall, "
        f"{statistics.median(r['cpu'] for r in results):.1f} s CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration, seeds 0.. (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seeds", type=int, metavar="N", help="sweep N seeds of the MNIST-1D runs: accuracy spread")
    parser.add_argument("--only", choices=["lstm-last", "lstm-max", "names"], action="append", help="run only these")
    parser.add_argument("--makemore", metavar="PATH", help="also train on this copy of makemore's names.txt")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    ref = reference(NOTEBOOK)
    helpers = notebook_functions(
        NOTEBOOK,
        ("split_validation", "evaluate_classifier", "train_classifier"),
        {"torch": torch, "nn": nn, "F": F, "math": math, "tqdm": tqdm},
    )
    raw = coursedata.mnist1d()
    tensors = {k: torch.from_numpy(raw[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    seqs = helpers["split_validation"](tensors, n_val=500)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    for key, pool, epochs in [("lstm-last", "last", 30), ("lstm-max", "max", 10)]:
        if args.only and key not in args.only:
            continue
        title = f"LSTM {pool}, {epochs} epochs"
        results = [classifier_run(ref, helpers, seqs, pool, epochs, seed) for seed in range(args.seeds or args.runs)]
        if args.seeds:
            accuracy = sorted(r["accuracy"] for r in results)
            print(
                f"{title:22s} test accuracy over {len(accuracy)} seeds: min {accuracy[0]:.4f}, median "
                f"{statistics.median(accuracy):.4f}, max {accuracy[-1]:.4f}; CPU per run "
                f"{statistics.median(r['cpu'] for r in results):.1f} s"
            )
        else:
            report_classifier(title, results)
    corpora = [] if args.only and "names" not in args.only else [("census names", coursedata.names())]
    if args.makemore:
        corpora.append(("makemore names.txt", coursedata.names(args.makemore)))
    for title, words in corpora:
        train_words, val_words = names_split(words)
        report_language(title, [language_run(ref, train_words, val_words, seed) for seed in range(args.runs)], words)


if __name__ == "__main__":
    main()
