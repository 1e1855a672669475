"""Hidden tests for week3/02_sequence_models: classifying sequences and a character-level language model.

Models are compared with the reference by giving both the same weights, by name, in float64; the bigram and the
encoding are compared exactly; the language-model training loop is replayed step by step on a tiny problem; the
student's LSTM classifier must reach a stated accuracy on MNIST-1D (with the probe's own loop), and the student's
CharLSTM trained by the student's loop must beat a bigram baseline on held-out names, each within a CPU budget.
The sampler is tested on stand-in models: exactly near temperature 0 (greedy), statistically at 0.5, 1 and 2.
"""
import math
import re

import pytest

from course.testing import assert_close, check, is_finite, probe
from probes import seeded_weights


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def classifier_shapes(nb, seed, hidden, classes, pool, n, t):
    """Parameter count, state_dict shapes and output shape of LSTMClassifier(hidden, classes, pool) on [n, t];
    then, apart, its logits in float64 with seeded weights on a batch [n, t]."""
    import torch
    torch.manual_seed(0)
    model = nb.LSTMClassifier(hidden, classes, pool)
    out = model(torch.randn(n, t))
    shapes = {"n_params": sum(p.numel() for p in model.parameters()),
              "state_dict": {name: list(v.shape) for name, v in sorted(model.state_dict().items())},
              "shape": list(out.shape)}
    return {"shapes": shapes, "logits": classifier_forward(nb, seed, hidden, classes, pool, n, t)["logits"]}


@probe
def classifier_forward(nb, seed, hidden, classes, pool, n, t):
    """The logits of LSTMClassifier(hidden, classes, pool) in float64 with seeded weights, for a batch [n, t]
    (pool None: LSTMClassifier(hidden, classes), the default pool)."""
    import torch
    model = (nb.LSTMClassifier(hidden, classes) if pool is None else nb.LSTMClassifier(hidden, classes, pool)).double()
    shapes = seeded_weights(nb, model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    return {"state_dict": shapes, "logits": model(torch.randn(n, t, generator=g, dtype=torch.float64))}


@probe
def mnist1d_lstm_run(nb, seed):
    """The student's LSTMClassifier(64, 10, "max") trained by this probe's own loop (Adam, OneCycleLR up to
    1e-2, gradient norm clipped to 1, 8 epochs, batches of 64) on MNIST-1D's 4,000 training sequences, on one
    thread; test accuracy and CPU time. (The last-state model needs about four times as many epochs to train
    reliably: its forward pass is compared with the reference's instead.)"""
    import math
    import time
    import torch
    import torch.nn.functional as F
    import coursedata
    raw = coursedata.mnist1d()
    x, y = torch.from_numpy(raw["x_train"]), torch.from_numpy(raw["y_train"])
    epochs, batch_size = 8, 64
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nb.LSTMClassifier(64, 10, "max")
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        steps = epochs * math.ceil(len(x) / batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
        cpu = time.process_time()
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                optimizer.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
        cpu = time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(raw["x_test"]))
    accuracy = (logits.argmax(dim=1) == torch.from_numpy(raw["y_test"])).double().mean().item()
    return {"accuracy": accuracy, "cpu_seconds": cpu}


@probe
def toy_vocabulary(nb):
    """A vocabulary of 6 tokens: '.' is 0, then a to e."""
    return {".": 0, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}


@probe
def bigram_case(nb, alphas):
    """bigram_counts of a few names over the toy vocabulary, and bigram_nll of other names (with pairs never
    seen in the counts) for each alpha (none: bigram_nll is not called), and under a table of counts whose rows
    and columns have different sums (counts made from names have equal ones)."""
    import torch
    stoi = toy_vocabulary(nb)
    train = ["abc", "a", "cab", "eed", "dd", "bead", "ace"]
    val = ["ebb", "da", "c", "abcde"]
    counts = nb.bigram_counts(train, stoi)
    out = {"counts": counts.long(), "shape": list(counts.shape), "dtype": str(counts.dtype)}
    if alphas:
        out.update(nll={str(a): float(nb.bigram_nll(counts, val, stoi, alpha=a)) for a in alphas},
                   nll_train=float(nb.bigram_nll(counts, train, stoi, alpha=1.0)),
                   is_float=isinstance(nb.bigram_nll(counts, val, stoi, alpha=1.0), float))
        lopsided = torch.randint(0, 6, (len(stoi), len(stoi)), generator=torch.Generator().manual_seed(0))
        out["nll_lopsided"] = float(nb.bigram_nll(lopsided, val, stoi, alpha=0.5))
    return out


@probe
def census_stoi(nb):
    """'.' is 0, then the letters a to z are 1 to 26."""
    return {".": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}


@probe
def encode_case(nb, names):
    """encode_names of `names` with the 27-token vocabulary: x, y and their dtypes."""
    x, y = nb.encode_names(names, census_stoi(nb))
    return {"x": x.long(), "y": y.long(), "dtypes": [str(x.dtype), str(y.dtype)]}


@probe
def charlstm_shapes(nb, seed, vocab, embed, hidden, n, t):
    """Parameter count, state_dict shapes, and the shapes of the logits and the state of CharLSTM on [n, t]; then,
    apart, its logits and state in float64 with seeded weights on random tokens [n, t]."""
    import torch
    torch.manual_seed(0)
    model = nb.CharLSTM(vocab, embed, hidden)
    logits, (h, c) = model(torch.randint(0, vocab, (n, t)))
    shapes = {"n_params": sum(p.numel() for p in model.parameters()),
              "state_dict": {name: list(v.shape) for name, v in sorted(model.state_dict().items())},
              "logits": list(logits.shape), "h": list(h.shape), "c": list(c.shape)}
    model = model.double()
    seeded_weights(nb, model, seed)
    idx = torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits, (h, c) = model(idx)
    return {"shapes": shapes, "values": {"logits": logits, "h": h, "c": c}}


@probe
def charlstm_forward(nb, seed, vocab, embed, hidden, n, t, split):
    """CharLSTM in float64 with seeded weights on random tokens [n, t]: the logits and state of one pass, and the
    logits of the first `split` steps followed by the rest continued from the returned state."""
    import torch
    model = nb.CharLSTM(vocab, embed, hidden).double()
    shapes = seeded_weights(nb, model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, vocab, (n, t), generator=g)
    logits, (h, c) = model(idx)
    first, state = model(idx[:, :split])
    rest, _ = model(idx[:, split:], state)
    return {"state_dict": shapes, "logits": logits, "h": h, "c": c, "continued": torch.cat([first, rest], dim=1)}


@probe
def lm_loss_case(nb, seed, n, t, v):
    """lm_loss of random float64 logits [n, t, v] and targets with -1 padding, and its gradient."""
    import torch
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, t, v, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v, (n, t), generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    y[torch.arange(t)[None, :] >= lengths[:, None]] = -1          # row i keeps lengths[i] targets
    loss = nb.lm_loss(logits, y)
    loss.backward()
    return {"loss": loss.detach(), "shape": list(loss.shape), "grad": logits.grad}


@probe
def stand_in_lm(nb, seed, vocab, embed, hidden, scale):
    """A stand-in language model with CharLSTM's interface, forward(idx, state=None) -> (logits, state), in
    float64, its weights multiplied by `scale` (larger: more peaked distributions)."""
    import torch
    import torch.nn as nn

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, vocab)

        def forward(self, idx, state=None):
            out, state = self.lstm(self.emb(idx), state)
            return self.fc(out), state

    torch.manual_seed(seed)
    model = StandIn().double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


@probe
def tiny_lm_problem(nb, seed):
    """13 training and 5 validation token sequences of length 6 over 5 tokens, padded with -1 targets (every
    row keeps at least 2 targets)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (18, 6), generator=g)
    x[:, 0] = 0
    y = torch.roll(x, -1, dims=1)
    lengths = torch.randint(2, 7, (18,), generator=g)
    pad = torch.arange(6)[None, :] >= lengths[:, None]
    y[pad] = -1
    y[torch.arange(18), lengths - 1] = 0
    x[pad] = 0
    return {"x_train": x[:13], "y_train": y[:13], "x_val": x[13:], "y_val": y[13:]}


@probe
def train_lm_replay(nb, seed, clip):
    """train_char_model for 2 epochs (batches of 4 of 13, the last one of 1) at lr 0.05 on a tiny problem, with a
    float64 stand-in model: the history and the parameters."""
    data = tiny_lm_problem(nb, seed)
    model = stand_in_lm(nb, seed, 5, 3, 4, 1.0)
    history = nb.train_char_model(model, data, epochs=2, lr=0.05, batch_size=4, clip=clip, seed=seed, progress=False)
    return {"keys": sorted(history),
            "history": {k: [float(v) for v in history.get(k, [])] for k in ("loss", "grad_norm", "val_loss")},
            "params": [p.detach().clone() for p in model.parameters()]}


@probe
def names_run(nb, seed):
    """The student's CharLSTM(27, 16, 64) trained by the student's train_char_model (5 epochs, lr 1e-2, batches
    of 64, clip 1) on 90% of the census names, on one thread; the validation loss on the other 10% measured
    here, next to an add-one bigram model counted here on the same split, and the CPU time of the training."""
    import math
    import random
    import time
    import torch
    import torch.nn.functional as F
    import coursedata
    names = coursedata.names()
    random.Random(seed).shuffle(names)
    val, train = names[:len(names) // 10], names[len(names) // 10:]
    stoi = census_stoi(nb)

    def encode(ws):
        T = max(map(len, ws)) + 1
        x = torch.zeros(len(ws), T, dtype=torch.int64)
        y = torch.full((len(ws), T), -1, dtype=torch.int64)
        for i, w in enumerate(ws):
            ids = torch.tensor([stoi[c] for c in w])
            x[i, 1:len(w) + 1], y[i, :len(w)], y[i, len(w)] = ids, ids, 0
        return x, y

    (x_train, y_train), (x_val, y_val) = encode(train), encode(val)
    counts = torch.ones(27, 27, dtype=torch.float64)
    for w in train:
        tokens = [0] + [stoi[c] for c in w] + [0]
        for a, b in zip(tokens, tokens[1:]):
            counts[a, b] += 1
    logp = (counts / counts.sum(dim=1, keepdim=True)).log()
    pairs = [(a, b) for w in val for a, b in zip([0] + [stoi[c] for c in w], [stoi[c] for c in w] + [0])]
    bigram = -sum(logp[a, b].item() for a, b in pairs) / len(pairs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nb.CharLSTM(27, 16, 64)
        data = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
        cpu = time.process_time()
        history = nb.train_char_model(model, data, epochs=5, lr=1e-2, batch_size=64, clip=1.0, seed=seed,
                                      progress=False)
        cpu = time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        logits, _ = model(x_val)
        val_loss = F.cross_entropy(logits.reshape(-1, 27).double(), y_val.reshape(-1), ignore_index=-1).item()
    return {"val_loss": val_loss, "bigram": bigram, "cpu_seconds": cpu,
            "history_loss": [float(v) for v in history.get("loss", [])],
            "history_val_loss": [float(v) for v in history.get("val_loss", [])]}


@probe
def scripted_lm(nb, seed):
    """A stand-in with CharLSTM's interface whose logits are a random table row for the last token plus 8 for the
    token a script names at this step; the step count travels in the state. Its greedy name is the script,
    'dabec', as long as the state is passed along and the argmax taken at every step."""
    import torch
    import torch.nn as nn

    class Scripted(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.table = nn.Parameter(torch.randn(7, 7, generator=g, dtype=torch.float64))
            self.script = torch.tensor([4, 1, 2, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])   # d a b e c .

        def forward(self, idx, state=None):
            step = torch.zeros(idx.shape[0], dtype=torch.int64) if state is None else state
            rows = []
            for t in range(idx.shape[1]):
                bonus = torch.zeros(idx.shape[0], 7, dtype=torch.float64)
                bonus[torch.arange(idx.shape[0]), self.script[(step + t).clamp(max=15)]] = 8.0
                rows.append(self.table[idx[:, t].cpu()] + bonus)
            return torch.stack(rows, dim=1), step + idx.shape[1]

    return Scripted()


@probe
def greedy_case(nb, seed, num_samples, max_len):
    """sample() near temperature 0 (1e-4) from the scripted stand-in over 7 tokens."""
    import torch
    model = scripted_lm(nb, seed)
    itos = {0: ".", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"}
    out = nb.sample(model, itos, num_samples=num_samples, temperature=1e-4, max_len=max_len,
                    generator=torch.Generator().manual_seed(seed))
    return {"names": list(out), "is_list": isinstance(out, list)}


@probe
def frequency_case(nb, seed, temperature, num_samples):
    """sample() at `temperature` from a stand-in LSTM over 7 tokens, names of at most 2 letters: the counts of
    the first token (the end token when the name is empty), the counts of the second token after the most
    likely first letter, and the model's own probabilities for both steps, softmax(logits / temperature),
    computed here."""
    import torch
    model = stand_in_lm(nb, seed, 7, 5, 8, 1.5)
    itos = {0: ".", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"}
    stoi = {c: i for i, c in itos.items()}
    with torch.no_grad():
        first_logits = model(torch.zeros(1, 1, dtype=torch.int64))[0][0, -1]
        p_first = torch.softmax(first_logits / temperature, dim=0)
        top = int(p_first[1:].argmax()) + 1                       # the most likely first letter
        second_logits = model(torch.tensor([[0, top]]))[0][0, -1]
        p_second = torch.softmax(second_logits / temperature, dim=0)
    out = nb.sample(model, itos, num_samples=num_samples, temperature=temperature, max_len=2,
                    generator=torch.Generator().manual_seed(seed))
    first = [stoi[name[0]] if name else 0 for name in out]
    second = [stoi[name[1]] if len(name) > 1 else 0 for name in out if name and stoi[name[0]] == top]
    second_counts = torch.bincount(torch.tensor(second, dtype=torch.int64), minlength=7).tolist() if second else [0] * 7
    return {"first": torch.bincount(torch.tensor(first, dtype=torch.int64), minlength=7).tolist(),
            "p_first": p_first, "second": second_counts, "p_second": p_second, "count": len(out),
            "longest": max(map(len, out), default=0)}


@probe
def reproducible_case(nb, seed):
    """sample() twice with generators of the same seed (the global random state changed in between), and once
    with another seed."""
    import torch
    model = stand_in_lm(nb, seed, 7, 5, 8, 1.5)
    itos = {0: ".", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"}
    runs = []
    for global_seed, generator_seed in [(1, seed), (2, seed), (3, seed + 1)]:
        torch.manual_seed(global_seed)
        runs.append(nb.sample(model, itos, num_samples=50, temperature=1.0, max_len=6,
                              generator=torch.Generator().manual_seed(generator_seed)))
    return {"same_seed_equal": runs[0] == runs[1], "other_seed_differs": runs[0] != runs[2]}


@probe
def accelerator_lm(nb, seed):
    """stand_in_lm(seed, 7 tokens) behind a wrapper whose logits behave, for sampling, like those of a model on a
    GPU: what is computed from them stays "on the device" until .cpu() or .to("cpu") brings it back, .numpy()
    refuses, and torch.multinomial raises, as CUDA does, when it is given a CPU generator. The rest is the CPU's."""
    import torch
    import torch.nn as nn

    class OnAccelerator(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.multinomial:
                generator = kwargs.get("generator", args[3] if len(args) > 3 else None)
                if generator is not None and generator.device.type == "cpu":
                    raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")
            if func is torch.Tensor.numpy:
                raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                                "tensor to host memory first.")
            to_cpu = func is torch.Tensor.cpu or (func is torch.Tensor.to and any(
                str(a) == "cpu" for a in [*args[1:], kwargs.get("device")] if isinstance(a, (str, torch.device))))
            if to_cpu:
                return func(args[0].as_subclass(torch.Tensor), *args[1:], **kwargs)
            return super().__torch_function__(func, types, args, kwargs)

    class OnGPU(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = stand_in_lm(nb, seed, 7, 5, 8, 1.5)

        def forward(self, idx, state=None):
            logits, state = self.inner(idx.as_subclass(torch.Tensor), state)
            return logits.as_subclass(OnAccelerator), state

    return OnGPU()


@probe
def accelerator_case(nb, seed):
    """sample() from accelerator_lm with a CPU generator (the error it raised, if any), and sample() from the same
    stand-in on the CPU with a generator of the same seed; the counts of the first tokens drawn on the "GPU" (the
    end token when the name is empty) and the stand-in's own probabilities for them, softmax(logits), computed
    here."""
    import torch
    model = accelerator_lm(nb, seed)
    itos = {0: ".", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"}
    stoi = {c: i for i, c in itos.items()}
    with torch.no_grad():
        p_first = torch.softmax(model.inner(torch.zeros(1, 1, dtype=torch.int64))[0][0, -1], dim=0)
    error, names, first = None, None, None
    try:
        names = nb.sample(model, itos, num_samples=2000, temperature=1.0, max_len=5,
                          generator=torch.Generator().manual_seed(seed))
        names = list(names)
        first = torch.bincount(torch.tensor([stoi[name[0]] if name else 0 for name in names], dtype=torch.int64),
                               minlength=7).tolist()
    except Exception as e:  # what a GPU would raise
        error = f"{type(e).__name__}: {e}"
    on_cpu = nb.sample(model.inner, itos, num_samples=2000, temperature=1.0, max_len=5,
                       generator=torch.Generator().manual_seed(seed))
    return {"error": error, "names": names, "on_cpu": list(on_cpu), "first": first, "p_first": p_first}



@probe
def sampling_on_gpu_case(nb, seed):
    """sample() from stand_in_lm(seed, 7 tokens) moved to cuda:0 (course.devices.FakeGPU, CUDA's device rules on
    the CPU), with a CPU generator: the DeviceMismatch it met (None when it ran) and the names; and the names the
    same stand-in gives on the CPU with a generator of the same seed."""
    import torch

    from course.devices import DeviceMismatch, FakeGPU
    itos = {0: ".", 1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"}
    mismatch, names = None, None
    with FakeGPU() as gpu:
        model = gpu.put(stand_in_lm(nb, seed, 7, 5, 8, 1.5))  # not .to(): the LSTM would ask cuDNN for its weights
        try:
            names = list(nb.sample(model, itos, num_samples=20, temperature=1.0, max_len=5,
                                   generator=torch.Generator().manual_seed(seed)))
        except DeviceMismatch as e:
            mismatch = str(e)
    on_cpu = nb.sample(stand_in_lm(nb, seed, 7, 5, 8, 1.5), itos, num_samples=20, temperature=1.0, max_len=5,
                       generator=torch.Generator().manual_seed(seed))
    return {"mismatch": mismatch, "names": names, "on_cpu": list(on_cpu)}

# ---------------------------------------------------------------------------------------------------------
# the sequence classifier
# ---------------------------------------------------------------------------------------------------------

def check_classifier(student, reference, seed, hidden, classes, pool, n, t):
    found = student(classifier_forward, seed=seed, hidden=hidden, classes=classes, pool=pool, n=n, t=t)
    expected = reference(classifier_forward, seed=seed, hidden=hidden, classes=classes, pool=pool, n=n, t=t)
    model = f"LSTMClassifier({hidden}, {classes}" + (")" if pool is None else f", {pool!r})")
    assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                 what=f"{model}'s state_dict (names and shapes of its tensors)")
    assert_close(found["logits"], expected["logits"], atol=1e-10, rtol=1e-8,
                 what=f"{model}'s logits for a batch [{n}, {t}] with the reference's weights")


@pytest.mark.exercise("sequence_classifier")
def test_classifier_parameters_and_shapes(student, reference, seed):
    """LSTMClassifier(hidden_size, num_classes, pool) holds lstm = nn.LSTM(1, hidden_size, batch_first=True) and fc = nn.Linear(hidden_size, num_classes), and turns x [N, T] into logits [N, num_classes] with either pool: with the same weights, the reference's logits."""
    for hidden, classes, pool, n, t in [(64, 10, "last", 5, 40), (64, 10, "max", 1, 40), (7, 3, "last", 2, 11),
                                        (16, 5, "max", 3, 8), (9, 4, "last", 1, 1)]:
        found = student(classifier_shapes, seed=seed, hidden=hidden, classes=classes, pool=pool, n=n, t=t)
        expected = reference(classifier_shapes, seed=seed, hidden=hidden, classes=classes, pool=pool, n=n, t=t)
        model = f"LSTMClassifier({hidden}, {classes}, {pool!r})"
        assert_close(found["shapes"]["state_dict"], expected["shapes"]["state_dict"], atol=0, rtol=0,
                     what=f"{model}'s state_dict (names and shapes of its tensors)")
        assert_close(found["shapes"], expected["shapes"], atol=0, rtol=0, what=f"{model} on a batch [{n}, {t}]")
        assert_close(found["logits"], expected["logits"], atol=1e-10, rtol=1e-8,
                     what=f"{model}'s logits for a batch [{n}, {t}] with the reference's weights")


@pytest.mark.exercise("sequence_classifier")
def test_classifier_reads_the_last_state(student, reference, seed):
    """With the same weights, pool="last" gives fc(out[:, -1]): the LSTM runs over x.unsqueeze(-1) [N, T, 1] along the time axis (batch_first=True), and the classifier reads its hidden state after the LAST step."""
    for hidden, classes, n, t in [(8, 4, 3, 7), (5, 10, 1, 40), (6, 3, 4, 2), (4, 5, 6, 5)]:
        check_classifier(student, reference, seed, hidden, classes, "last", n, t)


@pytest.mark.exercise("sequence_classifier")
def test_classifier_max_over_time(student, reference, seed):
    """With the same weights, pool="max" gives fc(out.max(dim=1).values): the largest value of each hidden unit over the time steps (dim 1 of out [N, T, H])."""
    for hidden, classes, n, t in [(8, 4, 3, 7), (5, 10, 1, 40), (6, 3, 4, 2)]:
        check_classifier(student, reference, seed, hidden, classes, "max", n, t)


@pytest.mark.exercise("sequence_classifier")
def test_classifier_default_pool(student, reference, seed):
    """LSTMClassifier(hidden_size, num_classes), with no pool given, uses the default pool="last": with the same weights, its logits are those of the classifier reading the last hidden state."""
    for hidden, classes, n, t in [(8, 4, 3, 7), (5, 10, 1, 40)]:
        check_classifier(student, reference, seed, hidden, classes, None, n, t)


@pytest.mark.exercise("sequence_classifier")
def test_classifier_trains_on_mnist1d(student, seed):
    """LSTMClassifier(64, 10, "max") trained for 8 epochs (Adam with a one-cycle schedule up to 1e-2, clipping at 1, batches of 64, the grader's own loop) must reach at least 92% test accuracy on MNIST-1D within 40 s of CPU (the reference: 95-97% in about 3 s)."""
    found = student(mnist1d_lstm_run, seed=seed, timeout=150)
    check(found["cpu_seconds"] <= 40, f"training took {found['cpu_seconds']:.1f} s of CPU, more than the 40 s "
                                      "allowed (the reference needs about 3 s)")
    check(found["accuracy"] >= 0.92, f"test accuracy {found['accuracy']:.4f} on MNIST-1D after training, "
                                     "expected at least 0.92")


# ---------------------------------------------------------------------------------------------------------
# the bigram baseline
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("bigram_baseline")
def test_bigram_counts(student, reference):
    """bigram_counts reads each name as '.' + name + '.' and counts N[current, next]: a [V, V] table of integers (int64), the start and the end of every name included."""
    found = student(bigram_case, alphas=[])
    expected = reference(bigram_case, alphas=[])
    check(found["shape"] == expected["shape"],
          f"the counts have shape {found['shape']}, expected {expected['shape']} ([V, V])")
    check(found["dtype"] == "torch.int64", f"the counts are {found['dtype']}, expected torch.int64 (whole numbers "
                                           "of occurrences)")
    assert_close(found["counts"], expected["counts"], atol=0, rtol=0,
                 what="the bigram counts of ['abc', 'a', 'cab', 'eed', 'dd', 'bead', 'ace'] "
                      "(row: current token, column: next)")


@pytest.mark.exercise("bigram_baseline")
def test_bigram_nll(student, reference):
    """bigram_nll normalises each ROW of counts + alpha (every count gets alpha, for the given alpha) and averages -log P over every prediction of every name: each letter and the end token, len(name) + 1 per name; a Python float."""
    alphas = [1.0, 0.1, 2.5]
    found = student(bigram_case, alphas=alphas)
    expected = reference(bigram_case, alphas=alphas)
    check(found["is_float"], "bigram_nll should return a Python float")
    check(is_finite(list(found["nll"].values())), f"bigram_nll gave {found['nll']}: with smoothing, pairs never "
                                                   "seen in the counts still have a finite loss")
    assert_close(found["nll"], expected["nll"], atol=1e-6, rtol=1e-5,
                 what="bigram_nll of ['ebb', 'da', 'c', 'abcde'] for alpha 1.0, 0.1 and 2.5")
    assert_close(found["nll_train"], expected["nll_train"], atol=1e-6, rtol=1e-5,
                 what="bigram_nll of the training names themselves (alpha 1)")
    assert_close(found["nll_lopsided"], expected["nll_lopsided"], atol=1e-6, rtol=1e-5,
                 what="bigram_nll of ['ebb', 'da', 'c', 'abcde'] under random counts whose rows and columns have "
                      "different sums (alpha 0.5)")


# ---------------------------------------------------------------------------------------------------------
# the character-level model
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("char_model")
def test_encode_names(student, reference):
    """encode_names: inputs '.' then the letters, padded with 0; targets the inputs shifted by one step, then the end token 0, padded with -1; both int64 [N, longest + 1]."""
    for names in (["annabelle", "al", "zoe", "q"], ["bob"], ["mary", "ann", "mary"]):
        found = student(encode_case, names=names)
        expected = reference(encode_case, names=names)
        check(found["dtypes"] == ["torch.int64", "torch.int64"], f"x and y should be int64, found {found['dtypes']}")
        assert_close(found["x"], expected["x"], atol=0, rtol=0, what=f"the inputs x of {names}")
        assert_close(found["y"], expected["y"], atol=0, rtol=0, what=f"the targets y of {names}")


@pytest.mark.exercise("char_model")
def test_charlstm_parameters_and_shapes(student, reference, seed):
    """CharLSTM(vocab_size, embed_size, hidden_size) holds emb = nn.Embedding(V, E), lstm = nn.LSTM(E, H, batch_first=True) and fc = nn.Linear(H, V); idx [N, T] gives logits [N, T, V] and a state (h, c), each [1, N, H]: with the same weights, the reference's."""
    for vocab, embed, hidden, n, t in [(27, 16, 128, 4, 9), (27, 16, 64, 1, 12), (7, 3, 5, 3, 1), (11, 4, 6, 2, 5)]:
        found = student(charlstm_shapes, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t)
        expected = reference(charlstm_shapes, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t)
        model = f"CharLSTM({vocab}, {embed}, {hidden})"
        assert_close(found["shapes"]["state_dict"], expected["shapes"]["state_dict"], atol=0, rtol=0,
                     what=f"{model}'s state_dict (names and shapes of its tensors)")
        assert_close(found["shapes"], expected["shapes"], atol=0, rtol=0, what=f"{model} on tokens [{n}, {t}]")
        assert_close(found["values"], expected["values"], atol=1e-10, rtol=1e-8,
                     what=f"{model}'s logits and state for tokens [{n}, {t}] with the reference's weights")


@pytest.mark.exercise("char_model")
def test_charlstm_forward_matches_reference(student, reference, seed):
    """With the same weights, CharLSTM.forward is fc(lstm(emb(idx), state)) along the time axis (batch_first=True), raw logits after every step, and returns the LSTM's new state."""
    for vocab, embed, hidden, n, t in [(9, 4, 6, 3, 7), (27, 5, 8, 1, 11), (6, 3, 4, 5, 2)]:
        found = student(charlstm_forward, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t, split=1)
        expected = reference(charlstm_forward, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t, split=1)
        model = f"CharLSTM({vocab}, {embed}, {hidden})"
        assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                     what=f"{model}'s state_dict (names and shapes of its tensors)")
        for key in ("logits", "h", "c"):
            assert_close(found[key], expected[key], atol=1e-10, rtol=1e-8,
                         what=f"{model}'s {key} for tokens [{n}, {t}] with the reference's weights")


@pytest.mark.exercise("char_model")
def test_charlstm_continues_from_a_state(student, reference, seed):
    """forward(idx, state) passes the state to the LSTM: the first steps, then the rest from the returned state, give the logits of one pass over the whole sequence (the sampler relies on it)."""
    for vocab, embed, hidden, n, t, split in [(9, 4, 6, 3, 7, 3), (27, 5, 8, 2, 6, 1)]:
        found = student(charlstm_forward, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t, split=split)
        expected = reference(charlstm_forward, seed=seed, vocab=vocab, embed=embed, hidden=hidden, n=n, t=t,
                             split=split)
        assert_close(found["continued"], expected["continued"], atol=1e-10, rtol=1e-8,
                     what=f"the logits of {split} steps, then {t - split} more from the returned state")


# ---------------------------------------------------------------------------------------------------------
# the loss and the training loop
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("char_training")
def test_lm_loss(student, reference, seed):
    """lm_loss flattens logits [N, T, V] to [N*T, V] and y to [N*T] (the same order) and averages the cross-entropy over the targets that are not -1 only; it returns a scalar tensor that autograd can differentiate."""
    for n, t, v in [(3, 5, 7), (1, 4, 27), (4, 2, 3)]:
        found = student(lm_loss_case, seed=seed, n=n, t=t, v=v)
        expected = reference(lm_loss_case, seed=seed, n=n, t=t, v=v)
        check(found["shape"] == [], f"lm_loss should return a scalar tensor, found shape {found['shape']}")
        assert_close(found["loss"], expected["loss"], atol=1e-10, rtol=1e-8,
                     what=f"lm_loss of logits [{n}, {t}, {v}] with padded targets")
        assert_close(found["grad"], expected["grad"], atol=1e-10, rtol=1e-8,
                     what=f"the gradient of lm_loss with respect to logits [{n}, {t}, {v}]")


@pytest.mark.exercise("char_training")
def test_train_replays_reference_steps(student, reference, seed):
    """Each step: zero_grad, forward, lm_loss, backward, THEN clip_grad_norm_(parameters, clip) (its return value, the norm before clipping, goes into the history; clip=None clips nothing), optimizer.step(), scheduler.step() after every step; after each epoch the mean loss, the mean gradient norm and evaluate_lm on the validation data."""
    for clip in (0.05, None):
        found = student(train_lm_replay, seed=seed, clip=clip)
        expected = reference(train_lm_replay, seed=seed, clip=clip)
        check(found["keys"] == expected["keys"], f"train_char_model's history has keys {found['keys']}, "
                                                 f"expected {expected['keys']}")
        for key in ("loss", "grad_norm", "val_loss"):
            check(len(found["history"][key]) == 2, f"history[{key!r}] holds {len(found['history'][key])} values "
                                                   "after 2 epochs, expected one per epoch")
        check(is_finite(found["history"]["loss"]), f"the training losses {found['history']['loss']} are not finite")
        assert_close(found["history"], expected["history"], atol=1e-9, rtol=1e-7,
                     what=f"the history of 2 epochs on a tiny problem (Adam, lr 0.05, batches of 4, clip={clip})")
        assert_close(found["params"], expected["params"], atol=1e-9, rtol=1e-7,
                     what=f"the parameters after 2 epochs (clip={clip})")


@pytest.mark.exercise("char_training")
def test_char_model_beats_the_bigram(student, seed):
    """CharLSTM(27, 16, 64) trained by train_char_model for 5 epochs (lr 1e-2, batches of 64, clip 1) must reach a validation loss at least 0.2 nats below an add-one bigram model's on held-out census names, within 30 s of CPU (the reference: about 0.35 nats below, in about 1 s); the history's last "val_loss" is that validation loss, evaluate_lm of the trained model."""
    found = student(names_run, seed=seed, timeout=120)
    check(len(found["history_loss"]) == 5, f"train_char_model returned {len(found['history_loss'])} epoch losses "
                                           "for 5 epochs")
    check(found["cpu_seconds"] <= 30, f"training took {found['cpu_seconds']:.1f} s of CPU, more than the 30 s "
                                      "allowed (the reference needs about 1 s)")
    check(math.isfinite(found["val_loss"]), f"the validation loss is {found['val_loss']}")
    margin = found["bigram"] - found["val_loss"]
    check(len(found["history_val_loss"]) == 5, f"train_char_model returned {len(found['history_val_loss'])} "
                                               "validation losses for 5 epochs")
    assert_close(found["history_val_loss"][-1], found["val_loss"], atol=1e-4, rtol=1e-4,
                 what="history['val_loss'][-1], next to the validation loss of the trained model measured by the "
                      "grader")
    check(margin >= 0.2, f"validation loss {found['val_loss']:.4f} nats per token after training, the bigram's "
                         f"{found['bigram']:.4f}: {margin:.3f} nats better, expected at least 0.2")


# ---------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------

def within_sampling_error(counts, probs, what):
    """Each class's frequency within 5 standard errors (plus 3 counts) of its probability."""
    n = sum(counts)
    check(n > 0, f"{what}: no samples to count")
    for k, (c, p) in enumerate(zip(counts, probs)):
        bound = 5 * math.sqrt(p * (1 - p) / n) + 3 / n
        if abs(c / n - p) > bound:
            freq = ", ".join(f"{x / n:.3f}" for x in counts)
            prob = ", ".join(f"{float(q):.3f}" for q in probs)
            raise AssertionError(f"{what}: token {k} was drawn with frequency {c / n:.4f} in {n} samples, but its "
                                 f"probability is {float(p):.4f} (all frequencies: {freq}; probabilities: {prob})")


@pytest.mark.exercise("sampling")
def test_greedy_near_zero_temperature(student, reference, seed):
    """Near temperature 0 (1e-4) the softmax of logits / temperature puts all the probability on the largest logit: every sample is the greedy name, the argmax at every step, with the LSTM state carried from step to step."""
    for num_samples, max_len in [(5, 8), (1, 3)]:
        found = student(greedy_case, seed=seed, num_samples=num_samples, max_len=max_len)
        expected = reference(greedy_case, seed=seed, num_samples=num_samples, max_len=max_len)
        check(found["is_list"] and len(found["names"]) == num_samples,
              f"sample(num_samples={num_samples}) should return a list of {num_samples} strings, "
              f"got {found['names']!r}")
        check(found["names"] == expected["names"], f"near temperature 0 every sample should be the greedy name "
                                                   f"{expected['names'][0]!r}; got {found['names']}")


@pytest.mark.exercise("sampling")
def test_frequencies_follow_the_softmax_at_temperature_one(student, seed):
    """At temperature 1 the tokens are drawn from the model's distribution: over 20,000 samples the first letters, and the second letters after the most likely first one, have the frequencies of softmax(logits) (drawn with torch.multinomial, not the argmax; softmax over the vocabulary)."""
    found = student(frequency_case, seed=seed, temperature=1.0, num_samples=20000)
    check(found["count"] == 20000, f"sample(num_samples=20000) returned {found['count']} names")
    check(found["longest"] <= 2, f"with max_len=2 a name has at most 2 letters, found one of {found['longest']}")
    within_sampling_error(found["first"], found["p_first"], "the first token at temperature 1")
    within_sampling_error(found["second"], found["p_second"], "the second token, after the most likely first letter, "
                                                              "at temperature 1 (is the LSTM state passed along?)")


@pytest.mark.exercise("sampling")
def test_temperature_divides_the_logits(student, seed):
    """The temperature divides the logits before the softmax: at 2 the first letters follow softmax(logits / 2), flatter; at 0.5 softmax(logits / 0.5), sharper (multiplying, or dividing the probabilities, gives other frequencies)."""
    for temperature in (2.0, 0.5):
        found = student(frequency_case, seed=seed, temperature=temperature, num_samples=20000)
        within_sampling_error(found["first"], found["p_first"], f"the first token at temperature {temperature}")


@pytest.mark.exercise("sampling")
def test_sampling_is_reproducible_with_a_generator(student, seed):
    """Every random draw comes from the `generator` argument: the same seed gives the same names whatever the global random state, another seed other names."""
    found = student(reproducible_case, seed=seed)
    check(found["same_seed_equal"], "two calls with generators of the same seed gave different names: pass "
                                    "generator=generator to torch.multinomial (not the global random state)")
    check(found["other_seed_differs"], "generators of different seeds gave the same 50 names")


@pytest.mark.exercise("sampling")
def test_sampling_from_a_model_on_a_gpu(student, seed):
    """On a GPU the model's probabilities are on the GPU and the generator on the CPU: move the probabilities to the CPU (probs.cpu()) before torch.multinomial(..., generator=generator), then the drawn tokens back to the model's device; the names must be those that the same model gives on the CPU, drawn from its softmax."""
    found = student(accelerator_case, seed=seed)
    check(found["error"] is None, f"sample() raised {found['error']!r} for a model whose probabilities are on a GPU, "
                                  "with a CPU generator: draw with torch.multinomial(probs.cpu(), 1, "
                                  "generator=generator)")
    check(found["names"] == found["on_cpu"], "sample() gave other names for a model on a GPU than for the same model "
                                             "on the CPU with a generator of the same seed: every draw should come "
                                             "from the generator, on the CPU")
    within_sampling_error(found["first"], found["p_first"], "the first token drawn from a model on a GPU")


@pytest.mark.exercise("sampling")
def test_sampled_tokens_live_on_the_models_device(student, seed):
    """With the model's parameters on a GPU, the start tokens are made on the model's device (torch.zeros(..., device=device)) and each drawn token goes back to it (drawn.to(device)) before it is fed to the model; the names are those the same model gives on the CPU."""
    found = student(sampling_on_gpu_case, seed=seed)
    check(found["mismatch"] is None,
          "sample() met a tensor on the CPU together with one on cuda:0, for a model whose parameters are on cuda:0. "
          "On a GPU, PyTorch says: "
          f"{re.split(r'! |[.] A tensor', str(found['mismatch']))[0]}. The start tokens belong on the model's "
          "device (device=device), each token is drawn on the CPU and moved back with drawn.to(device)")
    check(any(found["on_cpu"]), "sample() gave 20 empty names for a stand-in model on the CPU, whose first token "
                                "is the end token with a probability of about 1/7")
    check(found["names"] == found["on_cpu"], "sample() gave other names for a model on a GPU than for the same "
                                             "model on the CPU with a generator of the same seed")
