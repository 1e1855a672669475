"""Hidden tests for week4/03_encoder_decoder: an encoder-decoder transformer that learns to reverse.

The layers are compared with PyTorch's nn.TransformerEncoderLayer and nn.TransformerDecoderLayer given the same
weights (float64, gradients on, so PyTorch takes its exact path), with masks that are neither empty nor full. The
model's tests put layers of the probe's own (PyTorch's, behind the notebook's call signatures) in place of the
learner's, so that a layer's mistake is charged to its own exercise; they compare with the reference given the
same seeded weights, and test causality, padding and the device directly. The loss and the decoding are tested
on stand-in models whose logits are known. Devices are tested on PyTorch's "meta" device, which every machine
has: a tensor created on the CPU next to it fails as it would next to a GPU's. Boolean masks follow PyTorch:
True = forbidden.
"""
import numpy as np
import pytest
# nn.MultiheadAttention imports sympy (through torch.fx) the first time it checks a key_padding_mask. Import it
# here, in the grader's process, before any test: a first import that the grader's time limit on a cataloged
# mistake's run interrupts (a busy machine makes it slow) leaves a half-initialised sympy behind, and every
# later reference run of that process then fails.
import torch.fx.experimental.symbolic_shapes  # noqa: F401

from course.testing import assert_close, check, probe
from probes import device_mixing


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def gaussians(seed, shapes, scale=1.0):
    """float64 standard normal tensors of the given shapes, times `scale`."""
    import torch
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


@probe
def lengths_mask(lengths, S):
    """A key padding mask [N, S], True after the first lengths[i] positions of row i (None for lengths None)."""
    import torch
    if lengths is None:
        return None
    return torch.arange(S)[None, :] >= torch.tensor(lengths)[:, None]


@probe
def token_batch(seed, lengths, S, T=None):
    """Sources [N, S] of the given numbers of digits (tokens 3..12, then PAD = 0) and, with T, targets [N, T]
    that start with BOS (1) and hold random tokens, EOS or PAD after it (the decoder's inputs)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    n = len(lengths)
    digits = torch.randint(3, 13, (n, S), generator=g)
    src = torch.where(torch.arange(S)[None, :] < torch.tensor(lengths)[:, None], digits, 0)
    if T is None:
        return src
    tgt = torch.randint(0, 13, (n, T), generator=g)
    tgt[:, 0] = 1
    return src, tgt


@probe
def seed_parameters(module, seed):
    """Give every parameter of `module`, in sorted name order, seeded float64 values: matrices scaled by
    1/sqrt(fan-in), 1-D weights around 1, biases around 0. Buffers are left alone."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(module.named_parameters()):
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if t.dim() > 1:
                t.copy_(noise / t.shape[-1] ** 0.5)
            elif name.endswith("weight"):
                t.copy_(1 + 0.3 * noise)
            else:
                t.copy_(0.3 * noise)
    return module


@probe
def masks_case(nb, seed, which):
    """which="padding": nb.padding_mask on tokens with PAD at the end and in the middle; which="future":
    nb.future_mask for several T and its dtype, and the device of future_mask(3, device="meta")."""
    import torch
    if which == "padding":
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, 13, (4, 9), generator=g)
        tokens[0, 5:] = 0
        tokens[1] = 7                                      # no padding at all
        tokens[2, :] = 0                                   # nothing but padding
        given = tokens.clone()
        pad = torch.as_tensor(nb.padding_mask(tokens))
        return {"pad": pad.to(torch.float64), "pad_dtype": str(pad.dtype), "pad_shape": list(pad.shape),
                "unchanged": bool(torch.equal(tokens, given))}
    futures = [torch.as_tensor(nb.future_mask(T)) for T in (1, 2, 5, 9)]
    try:
        meta = nb.future_mask(3, device="meta")
    except Exception as error:                         # reported by the device test only
        meta = f"{type(error).__name__}: {error}"
    return {"futures": [f.to(torch.float64) for f in futures], "future_dtypes": [str(f.dtype) for f in futures],
            "meta_device": str(getattr(meta, "device", None)), "meta_shape": list(getattr(meta, "shape", []))}


@probe
def torch_layer(nb, seed, kind, d_model, n_head, d_ff):
    """nn.TransformerEncoderLayer or nn.TransformerDecoderLayer (batch_first, no dropout, float64) with every
    parameter seeded, biases and norms included."""
    import torch
    import torch.nn as nn
    cls = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    layer = cls(d_model, n_head, d_ff, dropout=0.0, batch_first=True, dtype=torch.float64)
    return seed_parameters(layer, seed)


@probe
def load_torch_weights(mine, theirs):
    """Copy the parameters of PyTorch's layer into the learner's, by name, with a message that names the
    parameters whose names or shapes differ."""
    import torch
    want = {k: list(v.shape) for k, v in theirs.named_parameters()}
    have = {k: list(v.shape) for k, v in mine.named_parameters()}
    if want != have:
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise AttributeError(f"{type(mine).__name__}'s tensors are not those of PyTorch's layer: missing {missing}, "
                             f"unexpected {extra}, of another shape {wrong}")
    mine_p = dict(mine.named_parameters())
    with torch.no_grad():
        for k, v in theirs.named_parameters():
            mine_p[k].copy_(v)


@probe
def layer_shapes(nb, kind, d_model, n_head, d_ff):
    """The names and shapes of the tensors of nb.EncoderLayer / nb.DecoderLayer and of PyTorch's layer."""
    import torch.nn as nn
    mine = (nb.EncoderLayer if kind == "encoder" else nb.DecoderLayer)(d_model, n_head, d_ff)
    cls = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    theirs = cls(d_model, n_head, d_ff, batch_first=True)
    return {"mine": {k: list(v.shape) for k, v in sorted(mine.named_parameters())},
            "torch": {k: list(v.shape) for k, v in sorted(theirs.named_parameters())}}


@probe
def encoder_case(nb, seed, d_model, n_head, d_ff, n, S, lengths=None):
    """nb.EncoderLayer given PyTorch's seeded weights and PyTorch's layer, on the same x [n, S, C] (gradients on),
    with the key padding mask of `lengths`: both outputs and both gradients of x and of the weights for a random
    upstream gradient."""
    import torch
    theirs = torch_layer(nb, seed, "encoder", d_model, n_head, d_ff)
    mine = nb.EncoderLayer(d_model, n_head, d_ff).double()
    load_torch_weights(mine, theirs)
    x = gaussians(seed + 1, [[n, S, d_model]])[0]
    pad = lengths_mask(lengths, S)
    xm, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = mine(xm) if pad is None else mine(xm, pad.clone())
    expected = theirs(xt, src_key_padding_mask=pad)
    dout = gaussians(seed + 2, [list(expected.shape)])[0]
    out.backward(dout)
    expected.backward(dout)
    grad = (lambda t: torch.zeros(0) if t is None or t.grad is None else t.grad)
    mine_p, theirs_p = dict(mine.named_parameters()), dict(theirs.named_parameters())
    return {"out": out.detach(), "torch_out": expected.detach(), "dx": grad(xm), "torch_dx": xt.grad,
            "grads": {k: grad(mine_p.get(k)) for k in sorted(theirs_p)},
            "torch_grads": {k: theirs_p[k].grad for k in sorted(theirs_p)}}


@probe
def encoder_dependence(nb, seed, d_model, n_head, d_ff, S, length):
    """A seeded nb.EncoderLayer on one source of `length` real positions out of S: how much the real outputs move
    when the input at each position moves ([S]: position moved -> largest change of a real output), and how
    much each real output moves when a real position moves ([length, length])."""
    import torch
    mine = nb.EncoderLayer(d_model, n_head, d_ff).double()
    load_torch_weights(mine, torch_layer(nb, seed, "encoder", d_model, n_head, d_ff))
    x = gaussians(seed + 1, [[1, S, d_model]])[0]
    pad = lengths_mask([length], S)
    with torch.no_grad():
        base = mine(x, pad)
        moved_by, each = [], []
        for s in range(S):
            moved = x.clone()
            moved[0, s] += 3 * gaussians(seed + 3 + s, [[d_model]])[0]
            change = (mine(moved, pad) - base)[0, :length].abs().amax(dim=-1)      # [length]
            moved_by.append(float(change.max()))
            if s < length:
                each.append(change.tolist())
    return {"finite": bool(torch.isfinite(base).all()), "moved_by": moved_by, "each": each}


@probe
def borrowed_layers(nb, kind, d_model=12, n_head=3, d_ff=20):
    """What of PyTorch's own transformer layers nb.EncoderLayer / nb.DecoderLayer uses: whether its class derives
    from one, which of its modules is one, and which of their forward functions run during its forward (each
    still runs, and is recorded)."""
    import torch
    import torch.nn as nn
    classes = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
               nn.TransformerDecoder, nn.Transformer)
    mine = (nb.EncoderLayer if kind == "encoder" else nb.DecoderLayer)(d_model, n_head, d_ff)
    found = {"derives_from": [c.__name__ for c in classes if isinstance(mine, c)],
             "holds": sorted(f"{name} ({type(m).__name__})" for name, m in mine.named_modules()
                             if name and isinstance(m, classes)),
             "called": []}
    originals = {c: c.forward for c in classes}

    def recording(cls):
        def forward(self, *args, **kwargs):
            found["called"].append(cls.__name__)
            return originals[cls](self, *args, **kwargs)
        return forward

    x, memory = gaussians(0, [[2, 5, d_model], [2, 4, d_model]])
    mine = mine.double().eval()
    try:
        for cls in classes:
            cls.forward = recording(cls)
        with torch.no_grad():
            if kind == "encoder":
                out = mine(x.clone())
            else:
                out = mine(x.clone(), memory.clone(), torch.ones(5, 5, dtype=torch.bool).triu(1))
    finally:
        for cls, forward in originals.items():
            cls.forward = forward
    found["called"] = sorted(set(found["called"]))
    found["out"] = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    found["moved"] = float((out - x).abs().max()) if isinstance(out, torch.Tensor) and out.shape == x.shape else 0.0
    return found


@probe
def decoder_case(nb, seed, d_model, n_head, d_ff, n, T, S, lengths=None):
    """nb.DecoderLayer given PyTorch's seeded weights and nn.TransformerDecoderLayer, on the same y [n, T, C] and
    memory [n, S, C], with a future mask [T, T] (True above the diagonal) and the memory's key padding mask of
    `lengths`: both outputs and the gradients of y, memory and the weights for a random upstream gradient."""
    import torch
    theirs = torch_layer(nb, seed, "decoder", d_model, n_head, d_ff)
    mine = nb.DecoderLayer(d_model, n_head, d_ff).double()
    load_torch_weights(mine, theirs)
    y, memory = gaussians(seed + 1, [[n, T, d_model], [n, S, d_model]])
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    pad = lengths_mask(lengths, S)
    ym, mm = y.clone().requires_grad_(True), memory.clone().requires_grad_(True)
    yt, mt = y.clone().requires_grad_(True), memory.clone().requires_grad_(True)
    out = mine(ym, mm, future.clone()) if pad is None else mine(ym, mm, future.clone(), pad.clone())
    expected = theirs(yt, mt, tgt_mask=future, memory_key_padding_mask=pad)
    dout = gaussians(seed + 2, [list(expected.shape)])[0]
    out.backward(dout)
    expected.backward(dout)
    grad = (lambda t: torch.zeros(0) if t is None or t.grad is None else t.grad)
    mine_p, theirs_p = dict(mine.named_parameters()), dict(theirs.named_parameters())
    return {"out": out.detach(), "torch_out": expected.detach(), "dy": grad(ym), "torch_dy": yt.grad,
            "dmemory": grad(mm), "torch_dmemory": mt.grad,
            "grads": {k: grad(mine_p.get(k)) for k in sorted(theirs_p)},
            "torch_grads": {k: theirs_p[k].grad for k in sorted(theirs_p)}}


@probe
def decoder_dependence(nb, seed, d_model, n_head, d_ff, T, S, length):
    """A seeded nb.DecoderLayer on one target of T positions and a memory of `length` real positions out of S:
    for each target position t moved, the largest change of the outputs before t and at t; for each memory
    position moved, the smallest and the largest change over the target positions; the output for the unchanged
    inputs, and nn.TransformerDecoderLayer's (same weights, gradients on: its exact path)."""
    import torch
    mine = nb.DecoderLayer(d_model, n_head, d_ff).double()
    theirs = torch_layer(nb, seed, "decoder", d_model, n_head, d_ff)
    load_torch_weights(mine, theirs)
    y, memory = gaussians(seed + 1, [[1, T, d_model], [1, S, d_model]])
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    pad = lengths_mask([length], S)
    torch_out = theirs(y, memory, tgt_mask=future, memory_key_padding_mask=pad).detach()
    with torch.no_grad():
        base = mine(y, memory, future, pad)
        before, at, smallest, largest = [], [], [], []
        for t in range(T):
            moved = y.clone()
            moved[0, t] += gaussians(seed + 3 + t, [[d_model]])[0]
            change = (mine(moved, memory, future, pad) - base)[0].abs().amax(dim=-1)
            before.append(float(change[:t].max()) if t else 0.0)
            at.append(float(change[t]))
        for s in range(S):
            moved = memory.clone()
            moved[0, s] += 3 * gaussians(seed + 40 + s, [[d_model]])[0]
            change = (mine(y, moved, future, pad) - base)[0].abs().amax(dim=-1)
            smallest.append(float(change.min()))
            largest.append(float(change.max()))
    return {"finite": bool(torch.isfinite(base).all()), "shape": list(base.shape), "before": before, "at": at,
            "smallest": smallest, "largest": largest, "out": base, "torch_out": torch_out}


@probe
def probe_layers(nb, model, d_model, n_head, d_ff):
    """Put PyTorch's layers (no dropout, float64), behind the notebook's call signatures, in place of every layer
    of model.encoder and model.decoder."""
    import torch
    import torch.nn as nn

    class ProbeEncoder(nn.Module):
        def __init__(self, d_model, n_head, d_ff):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(d_model, n_head, d_ff, dropout=0.0, batch_first=True,
                                                    dtype=torch.float64)

        def forward(self, x, src_pad=None):
            return self.layer(x, src_key_padding_mask=src_pad)

    class ProbeDecoder(nn.Module):
        def __init__(self, d_model, n_head, d_ff):
            super().__init__()
            self.layer = nn.TransformerDecoderLayer(d_model, n_head, d_ff, dropout=0.0, batch_first=True,
                                                    dtype=torch.float64)

        def forward(self, y, memory, future, src_pad=None):
            return self.layer(y, memory, tgt_mask=future, memory_key_padding_mask=src_pad)

    for stack, cls in (("encoder", ProbeEncoder), ("decoder", ProbeDecoder)):
        layers = getattr(model, stack)
        for i in range(len(layers)):
            layers[i] = cls(d_model, n_head, d_ff)
    return model


@probe
def seq2seq_model(nb, seed, cfg):
    """nb.Seq2Seq(**cfg) in float64 with the probe's layers and seeded weights, in training mode (nothing in it
    is random: PyTorch's layers then take their exact path)."""
    import torch
    torch.manual_seed(seed)
    model = probe_layers(nb, nb.Seq2Seq(**cfg), cfg["d_model"], cfg["n_head"], cfg["d_ff"]).double().train()
    return seed_parameters(model, seed)


@probe
def seq2seq_modules(nb, cfg):
    """nb.Seq2Seq(**cfg): the names and shapes of its tensors outside the layers, its layers' kinds and how many
    distinct ones, and whether encoder and decoder are nn.ModuleLists."""
    import torch.nn as nn
    model = nb.Seq2Seq(**cfg)
    outside = {k: list(v.shape) for k, v in sorted(model.named_parameters())
               if not k.startswith(("encoder.", "decoder."))}
    stacks = {}
    for name, kind in (("encoder", nb.EncoderLayer), ("decoder", nb.DecoderLayer)):
        layers = getattr(model, name, None)
        stacks[name] = {"module_list": isinstance(layers, nn.ModuleList),
                        "count": len(layers) if layers is not None else -1,
                        "distinct": len({id(l) for l in layers}) if layers is not None else -1,
                        "kind": bool(layers is not None and all(isinstance(l, kind) for l in layers))}
    return {"outside": outside, "stacks": stacks}


@probe
def seq2seq_case(nb, seed, cfg, lengths, T):
    """The probe-layered, seeded model on sources of `lengths` digits (S = cfg max_len - 2) and targets of T
    tokens: forward's logits, encode's memory, and decode(tgt, encode(src), padding_mask(src))."""
    import torch
    model = seq2seq_model(nb, seed, cfg)
    S = cfg["max_len"] - 2
    src, tgt = token_batch(seed + 1, lengths, S, T)
    with torch.no_grad():
        logits = model(src.clone(), tgt.clone())
        memory = model.encode(src.clone())
        decoded = model.decode(tgt.clone(), memory, torch.as_tensor(nb.padding_mask(src.clone())))
    return {"logits": logits, "memory": memory, "decoded": decoded}


@probe
def seq2seq_properties(nb, seed, cfg, lengths, T, t):
    """The probe-layered, seeded model: how much the logits before t, at t and after t move when target token t
    changes; how much they move when two PAD columns are added to the sources; and how much when one real
    source digit changes."""
    import torch
    model = seq2seq_model(nb, seed, cfg)
    S = cfg["max_len"] - 2
    src, tgt = token_batch(seed + 1, lengths, S, T)
    with torch.no_grad():
        base = model(src, tgt)
        changed = tgt.clone()
        changed[:, t] = 3 + (changed[:, t] - 2) % 10
        moved = (model(src, changed) - base).abs()
        shorter = src[:, :S - 2]                                   # the same sources with two PAD columns fewer
        padded = (model(src, tgt) - model(shorter, tgt)).abs() if all(n <= S - 2 for n in lengths) else None
        other = src.clone()
        other[0, 0] = 3 + (other[0, 0] - 2) % 10
        digit = (model(other, tgt) - base)[0].abs()
    return {"finite": bool(torch.isfinite(base).all()),
            "before": float(moved[:, :t].max()) if t else 0.0, "at_and_after": float(moved[:, t:].amax(dim=-1).min()),
            "padding": float(padded.max()) if padded is not None else 0.0,
            "digit_min": float(digit.amax(dim=-1).min())}


@probe
def seq2seq_on_meta(nb, cfg):
    """nb.Seq2Seq(**cfg), with the probe's layers, moved to PyTorch's "meta" device and run there, forward and
    encode: the devices of what it returns, and the torch functions that met tensors of two devices (a tensor
    the model creates on the CPU, next to the meta ones)."""
    import torch
    model = probe_layers(nb, nb.Seq2Seq(**cfg), cfg["d_model"], cfg["n_head"], cfg["d_ff"]).to("meta")
    src = torch.zeros(2, 5, dtype=torch.long, device="meta")
    tgt = torch.zeros(2, 4, dtype=torch.long, device="meta")
    mode = device_mixing()
    try:
        with mode:
            logits = model(src, tgt)
            memory = model.encode(src)
        found = {"logits": str(logits.device), "memory": str(memory.device), "shape": list(logits.shape)}
    except RuntimeError as error:                       # two devices in one operation: recorded by the mode
        found = {"logits": f"nothing ({error})", "memory": "nothing", "shape": None}
    return {**found, "mixed": mode.mixed}


@probe
def stand_in_lookup(seed, vocab_size=13):
    """A stand-in model(src, tgt): logits [N, T, V] = row tgt[n, t] of a seeded table, as a leaf that needs grad;
    it records the (src, tgt) of each call."""
    import torch
    import torch.nn as nn

    class Lookup(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.table = nn.Parameter(2 * torch.randn(vocab_size, vocab_size, generator=g, dtype=torch.float64))
            self.calls = []

        def forward(self, src, tgt):
            self.calls.append((src.clone(), tgt.clone()))
            return self.table[tgt]

    return Lookup()


@probe
def stand_in_oracle():
    """A stand-in model(src, tgt) that knows the answer: at position t it gives the true next token of the reversal
    of src a logit of 25 and every other token 0, and gives no opinion (all logits 0) where the next token is PAD."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, src, tgt):
            self.calls.append((src.clone(), tgt.clone()))
            lengths = (src != 0).sum(dim=1, keepdim=True)
            t = torch.arange(tgt.shape[1])
            backwards = src.gather(1, (lengths - 1 - t).clamp(0, src.shape[1] - 1))
            following = torch.where(t < lengths, backwards, 2)
            logits = 25.0 * F.one_hot(following, 13).double()
            return logits.masked_fill((t > lengths)[..., None], 0.0)

    return Oracle()


@probe
def reversal_targets(seed, lengths, S, extra_pad=0):
    """Sources of `lengths` digits padded to S, and their targets as the notebook builds them: BOS, the digits
    backwards, EOS, PAD, [N, S + 2 + extra_pad]."""
    import torch
    src = token_batch(seed, lengths, S)
    tgt = torch.zeros(len(lengths), S + 2 + extra_pad, dtype=torch.long)
    tgt[:, 0] = 1
    for i, n in enumerate(lengths):
        tgt[i, 1:n + 1] = src[i, :n].flip(0)
        tgt[i, n + 1] = 2
    return src, tgt


@probe
def loss_case(nb, seed, kind, lengths, S=8, extra_pad=0):
    """nb.seq2seq_loss(stand_in, src, tgt) for a lookup or an oracle stand-in: the loss, what kind of object it
    is, the calls the stand-in received, and for the lookup, the gradient of its table."""
    import torch
    model = stand_in_lookup(seed) if kind == "lookup" else stand_in_oracle()
    src, tgt = reversal_targets(seed + 1, lengths, S, extra_pad)
    given = (src.clone(), tgt.clone())
    loss = nb.seq2seq_loss(model, src, tgt)
    is_tensor = torch.is_tensor(loss)
    grad = torch.zeros(0)
    if is_tensor and kind == "lookup" and loss.requires_grad:
        loss.backward()
        grad = model.table.grad if model.table.grad is not None else torch.zeros(0)
    return {"loss": float(loss), "is_tensor": is_tensor, "dim": loss.dim() if is_tensor else -1,
            "calls": len(model.calls),
            "src_given": [bool(torch.equal(s, given[0])) for s, _ in model.calls],
            "tgt_given": [t for _, t in model.calls], "tgt": given[1], "grad": grad,
            "unchanged": bool(torch.equal(src, given[0]) and torch.equal(tgt, given[1]))}


@probe
def stand_in_decoder(seed, kind, device="cpu"):
    """A stand-in with encode(src) and decode(tgt, memory, src_pad) (and forward, both in a row), counting encode
    calls and keeping each target decode reads. "reverser": at position t it scores digit L - 1 - t of the source
    (L from src_pad), then EOS, then the digit 7 forever. "lookup": logits = row tgt[n, t] of a seeded table plus a
    term of the real source tokens, read from the memory. "zeros": logits of 0 on tgt's device."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.table = 3 * torch.randn(13, 13, generator=g, dtype=torch.float64)
            self.source_term = torch.randn(13, 13, generator=g, dtype=torch.float64)
            self.encoded, self.inputs, self.devices = 0, [], []

        def encode(self, src):
            self.encoded += 1
            if kind == "zeros":
                return torch.zeros(*src.shape, 13, device=src.device)
            return F.one_hot(src, 13).double()

        def decode(self, tgt, memory, src_pad):
            self.devices.append(str(tgt.device))
            if kind == "zeros":
                return torch.zeros(*tgt.shape, 13, device=tgt.device)
            self.inputs.append(tgt.clone())
            src = memory.argmax(dim=-1)
            if kind == "lookup":
                real = (memory * (~src_pad)[..., None]).sum(dim=1)                  # [N, 13]: counts of tokens
                return self.table[tgt] + (real @ self.source_term)[:, None, :]
            lengths = (~src_pad).sum(dim=1, keepdim=True)
            t = torch.arange(tgt.shape[1])
            backwards = src.gather(1, (lengths - 1 - t).clamp(0, src.shape[1] - 1))
            following = torch.where(t < lengths, backwards, torch.where(t == lengths, 2, 10))
            return 10.0 * F.one_hot(following, 13).double()

        def forward(self, src, tgt):
            return self.decode(tgt, self.encode(src), src == 0)

    return StandIn()


@probe
def greedy_case(nb, seed, kind, lengths, S, max_len):
    """nb.greedy_decode(stand_in, src, max_len): its output (as float64 tokens), dtype and shape, how many times it
    encoded, and every target the decoder read."""
    import torch
    model = stand_in_decoder(seed, kind)
    src = token_batch(seed + 1, lengths, S)
    given = src.clone()
    out = torch.as_tensor(nb.greedy_decode(model, src, max_len))
    return {"out": out.to(torch.float64), "dtype": str(out.dtype), "shape": list(out.shape),
            "encoded": model.encoded, "inputs": [t.to(torch.float64) for t in model.inputs],
            "unchanged": bool(torch.equal(src, given)), "src": src}


@probe
def greedy_on_meta(nb):
    """nb.greedy_decode on a source on PyTorch's "meta" device, with a stand-in whose logits are zeros on the
    device of the target it reads: the devices of the decoder's inputs and of the output, and the torch functions
    that met tensors of two devices. A meta tensor has no values, so a decoding that stops early (`if done.all()`)
    cannot run to its end there: what it did until then is what counts."""
    import torch
    model = stand_in_decoder(0, "zeros")
    mode = device_mixing()
    out, stopped = None, None
    try:
        with mode:
            out = nb.greedy_decode(model, torch.zeros(3, 5, dtype=torch.long, device="meta"), 4)
    except RuntimeError as error:
        if "meta" not in str(error) or not model.devices:
            raise
        stopped = str(error)
    return {"out": None if out is None else str(out.device), "inputs": sorted(set(model.devices)),
            "shape": None if out is None else list(out.shape), "stopped": stopped, "mixed": mode.mixed}


# ---------------------------------------------------------------------------------------------------------
# attention_masks
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("attention_masks")
def test_padding_mask(student, reference, seed):
    """padding_mask(tokens) is a bool tensor of the shape of tokens, True exactly where the token is PAD (PyTorch's convention: True = a key no query may read), wherever the PAD is, and it leaves tokens as they were."""
    found = student(masks_case, seed=seed, which="padding")
    expected = reference(masks_case, seed=seed, which="padding")
    check(found["pad_dtype"] == "torch.bool", f"padding_mask should return a bool tensor, found {found['pad_dtype']}")
    check(found["pad_shape"] == [4, 9], f"padding_mask(tokens [4, 9]) has shape {found['pad_shape']}, expected [4, 9]")
    check(found["unchanged"], "padding_mask changed the tokens it was given")
    pad, want = np.asarray(found["pad"]), np.asarray(expected["pad"])
    if (pad != want).any() and (pad == 1 - want).all():
        raise AssertionError("padding_mask is True on the real tokens and False on the PAD: PyTorch's masks are True "
                             "where attention is forbidden, here at the padding")
    assert_close(found["pad"], expected["pad"], atol=0, rtol=0, what="padding_mask of tokens with PAD in them")


@pytest.mark.exercise("attention_masks")
def test_future_mask(student, reference, seed):
    """future_mask(T) is a bool [T, T] tensor, True exactly where key s comes after query t (s > t): the diagonal and everything below it are False, so that each position reads itself and the past."""
    found = student(masks_case, seed=seed, which="future")
    expected = reference(masks_case, seed=seed, which="future")
    check(all(d == "torch.bool" for d in found["future_dtypes"]),
          f"future_mask should return a bool tensor, found {found['future_dtypes'][-1]}")
    for T, f, e in zip((1, 2, 5, 9), found["futures"], expected["futures"]):
        f, e = np.asarray(f), np.asarray(e)
        check(f.shape == e.shape, f"future_mask({T}) has shape {list(f.shape)}, expected [{T}, {T}]")
        if (f != e).any():
            if (np.diag(f) == 1).any():
                raise AssertionError(f"future_mask({T}) is True on its diagonal: a position would not read its own "
                                     "key, and the first one would read nothing (nan)")
            i, j = [int(a[0]) for a in np.nonzero(f != e)]
            raise AssertionError(f"future_mask({T})[{i}, {j}] is {bool(f[i, j])}, expected {bool(e[i, j])}: True "
                                 "exactly where the key comes after the query (PyTorch's convention, the complement "
                                 "of notebook 01's causal_mask)")


@pytest.mark.exercise("attention_masks")
def test_future_mask_device(student, reference):
    """future_mask(T, device) creates its tensor on `device` (here PyTorch's "meta" device, as it would on a GPU), the mask it gives on the CPU."""
    found = student(masks_case, seed=0, which="future")
    check(found["meta_device"] == "meta", f"future_mask(3, device='meta') returned a tensor on "
                                          f"{found['meta_device']}: create it with device=device")
    check(found["meta_shape"] == [3, 3], f"future_mask(3, device='meta') has shape {found['meta_shape']}")
    expected = reference(masks_case, seed=0, which="future")
    assert_close(found["futures"], expected["futures"], atol=0, rtol=0,
                 what="future_mask(T) for T = 1, 2, 5 and 9 (1: True, 0: False)")


# ---------------------------------------------------------------------------------------------------------
# encoder_layer
# ---------------------------------------------------------------------------------------------------------

def _agree_with_torch(found, names, what):
    for name in names:
        assert_close(found[name], found[f"torch_{name}"], atol=1e-10, rtol=1e-8, what=f"{what}: {name}")


@pytest.mark.exercise("encoder_layer")
def test_encoder_layer_parameters(student):
    """EncoderLayer(d_model, n_head, d_ff) holds self_attn = nn.MultiheadAttention(d_model, n_head, batch_first=True), linear1 (d_model -> d_ff), linear2 (d_ff -> d_model), norm1 and norm2: the tensors of nn.TransformerEncoderLayer, with its names."""
    for args in ((12, 3, 20), (8, 1, 8)):
        found = student(layer_shapes, kind="encoder", d_model=args[0], n_head=args[1], d_ff=args[2])
        assert_close(found["mine"], found["torch"], atol=0, rtol=0,
                     what=f"the tensors of EncoderLayer{args}, next to nn.TransformerEncoderLayer's")


@pytest.mark.exercise("encoder_layer")
def test_encoder_layer_matches_torch(student, seed):
    """With nn.TransformerEncoderLayer's weights loaded, EncoderLayer gives its output: x = norm1(x + self_attn(x, x, x)) with the padding as key_padding_mask, then x = norm2(x + linear2(relu(linear1(x)))) — post-norm, ReLU."""
    cases = [dict(d_model=12, n_head=3, d_ff=20, n=3, S=7, lengths=[7, 4, 6]),
             dict(d_model=12, n_head=3, d_ff=20, n=2, S=5, lengths=None),
             dict(d_model=8, n_head=2, d_ff=16, n=1, S=6, lengths=[2]),
             dict(d_model=10, n_head=5, d_ff=12, n=2, S=1, lengths=[1, 1])]
    for case in cases:
        found = student(encoder_case, seed=seed, **case)
        _agree_with_torch(found, ("out",), f"EncoderLayer on x [{case['n']}, {case['S']}, {case['d_model']}] with "
                                           f"lengths {case['lengths']}, next to nn.TransformerEncoderLayer")


@pytest.mark.exercise("encoder_layer")
def test_encoder_layer_gradients(student, seed):
    """Backpropagating a random upstream gradient through EncoderLayer gives nn.TransformerEncoderLayer's gradients for x and for every weight."""
    found = student(encoder_case, seed=seed, d_model=12, n_head=4, d_ff=24, n=2, S=6, lengths=[6, 3])
    _agree_with_torch(found, ("dx", "grads"), "EncoderLayer's gradients, next to nn.TransformerEncoderLayer's")


@pytest.mark.exercise("encoder_layer")
def test_encoder_layer_ignores_padding(student, seed):
    """In the encoder every real position reads every other real position, earlier and later, and none of the padding: changing a padded input leaves the real outputs unchanged, changing a real one moves them all."""
    found = student(encoder_dependence, seed=seed, d_model=12, n_head=3, d_ff=20, S=8, length=5)
    check(found["finite"], "the encoder's output holds nan: is the padding mask True on the PAD positions only?")
    for s in range(5, 8):
        check(found["moved_by"][s] <= 1e-12, f"changing padded position {s} changed the real outputs (by up to "
                                             f"{found['moved_by'][s]:.3g}): give src_pad to the self-attention as "
                                             "key_padding_mask")
    for s, row in enumerate(found["each"]):
        check(min(row) > 1e-9, f"changing real position {s} left the outputs of some real positions unchanged: the "
                               "encoder's self-attention is not causal, every position reads every other")


@pytest.mark.exercise("encoder_layer")
def test_encoder_layer_is_written_out(student):
    """EncoderLayer is written without nn.TransformerEncoderLayer: its class does not derive from one (nor from
    PyTorch's other transformer modules), none of its modules is one, and its forward runs none of theirs; and
    that forward computes something: a tensor of its input's shape, not the input itself."""
    found = student(borrowed_layers, kind="encoder")
    check(not found["derives_from"], f"EncoderLayer derives from nn.{', nn.'.join(found['derives_from'])}: write the "
                                     "layer without nn.TransformerEncoderLayer")
    check(not found["holds"], f"EncoderLayer holds {', '.join(found['holds'])}: write the layer without "
                              "nn.TransformerEncoderLayer")
    check(not found["called"], f"EncoderLayer's forward runs nn.{', nn.'.join(found['called'])}'s forward: write "
                               "the layer without nn.TransformerEncoderLayer")
    check(found["out"] == [2, 5, 12] and found["moved"] > 0, f"EncoderLayer's forward on [2, 5, 12] returned "
          f"{found['out']}" + (", its input unchanged" if found["out"] == [2, 5, 12] else "")
          + ", expected a tensor [2, 5, 12] computed from it")


# ---------------------------------------------------------------------------------------------------------
# decoder_layer
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_parameters(student):
    """DecoderLayer(d_model, n_head, d_ff) holds self_attn and multihead_attn (nn.MultiheadAttention each), linear1, linear2, norm1, norm2 and norm3: the tensors of nn.TransformerDecoderLayer, with its names."""
    for args in ((12, 3, 20), (8, 1, 8)):
        found = student(layer_shapes, kind="decoder", d_model=args[0], n_head=args[1], d_ff=args[2])
        assert_close(found["mine"], found["torch"], atol=0, rtol=0,
                     what=f"the tensors of DecoderLayer{args}, next to nn.TransformerDecoderLayer's")


@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_matches_torch(student, seed):
    """With nn.TransformerDecoderLayer's weights loaded, DecoderLayer gives its output: norm1 after the masked self-attention, norm2 after the cross-attention (queries from y; keys and values from memory, its padding hidden), norm3 after the feed-forward network, in this order."""
    cases = [dict(d_model=12, n_head=3, d_ff=20, n=3, T=5, S=7, lengths=[7, 4, 6]),
             dict(d_model=12, n_head=3, d_ff=20, n=2, T=6, S=4, lengths=None),
             dict(d_model=8, n_head=2, d_ff=16, n=1, T=1, S=6, lengths=[3]),
             dict(d_model=10, n_head=5, d_ff=12, n=2, T=4, S=1, lengths=[1, 1])]
    for case in cases:
        found = student(decoder_case, seed=seed, **case)
        _agree_with_torch(found, ("out",), f"DecoderLayer on y [{case['n']}, {case['T']}, {case['d_model']}] and "
                                           f"memory [{case['n']}, {case['S']}, {case['d_model']}] with lengths "
                                           f"{case['lengths']}, next to nn.TransformerDecoderLayer")


@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_gradients(student, seed):
    """Backpropagating a random upstream gradient through DecoderLayer gives nn.TransformerDecoderLayer's gradients for y, for the memory and for every weight."""
    found = student(decoder_case, seed=seed, d_model=12, n_head=4, d_ff=24, n=2, T=5, S=6, lengths=[6, 2])
    _agree_with_torch(found, ("dy", "dmemory", "grads"), "DecoderLayer's gradients, next to nn.TransformerDecoderLayer's")


@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_is_causal(student, seed):
    """Changing the target at position t leaves every output before t unchanged (the self-attention reads the future mask) and changes the output at t; the output is nn.TransformerDecoderLayer's."""
    found = student(decoder_dependence, seed=seed, d_model=12, n_head=3, d_ff=20, T=6, S=7, length=5)
    check(found["finite"], "the decoder's output holds nan: does some row of a mask forbid every key?")
    for t, (before, at) in enumerate(zip(found["before"], found["at"])):
        check(before <= 1e-12, f"changing target position {t} changed the outputs before it (by up to {before:.3g}): "
                               "give the future mask to the self-attention as attn_mask")
        check(at > 1e-9, f"changing target position {t} left its own output unchanged")
    _agree_with_torch(found, ("out",), "DecoderLayer on y [1, 6, 12] and memory [1, 7, 12] with 5 real memory "
                                       "positions, next to nn.TransformerDecoderLayer")


@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_reads_the_memory_without_its_padding(student, seed):
    """The cross-attention reads the memory: changing a real memory position changes the output of every target position; changing a padded one changes nothing (src_pad is the cross-attention's key_padding_mask)."""
    found = student(decoder_dependence, seed=seed, d_model=12, n_head=3, d_ff=20, T=6, S=7, length=5)
    check(found["shape"] == [1, 6, 12], f"DecoderLayer on y [1, 6, 12] and memory [1, 7, 12] returned "
                                        f"{found['shape']}, expected one row per target position, [1, 6, 12]")
    for s in range(5):
        check(found["smallest"][s] > 1e-9, f"changing memory position {s} left some target positions unchanged: the "
                                           "cross-attention takes its keys and values from the memory")
    for s in range(5, 7):
        check(found["largest"][s] <= 1e-12, f"changing padded memory position {s} changed the output (by up to "
                                            f"{found['largest'][s]:.3g}): give src_pad to the cross-attention")


@pytest.mark.exercise("decoder_layer")
def test_decoder_layer_is_written_out(student):
    """DecoderLayer is written without nn.TransformerDecoderLayer: its class does not derive from one (nor from
    PyTorch's other transformer modules), none of its modules is one, and its forward runs none of theirs; and
    that forward computes something: a tensor of its input's shape, not the input itself."""
    found = student(borrowed_layers, kind="decoder")
    check(not found["derives_from"], f"DecoderLayer derives from nn.{', nn.'.join(found['derives_from'])}: write the "
                                     "layer without nn.TransformerDecoderLayer")
    check(not found["holds"], f"DecoderLayer holds {', '.join(found['holds'])}: write the layer without "
                              "nn.TransformerDecoderLayer")
    check(not found["called"], f"DecoderLayer's forward runs nn.{', nn.'.join(found['called'])}'s forward: write "
                               "the layer without nn.TransformerDecoderLayer")
    check(found["out"] == [2, 5, 12] and found["moved"] > 0, f"DecoderLayer's forward on [2, 5, 12] returned "
          f"{found['out']}" + (", its input unchanged" if found["out"] == [2, 5, 12] else "")
          + ", expected a tensor [2, 5, 12] computed from it")


# ---------------------------------------------------------------------------------------------------------
# seq2seq_model
# ---------------------------------------------------------------------------------------------------------

SEQ2SEQ_CONFIGS = [dict(vocab_size=13, max_len=10, d_model=12, n_head=3, d_ff=20, n_layer=2),
                   dict(vocab_size=13, max_len=7, d_model=8, n_head=2, d_ff=8, n_layer=1),
                   dict(vocab_size=13, max_len=12, d_model=10, n_head=5, d_ff=16, n_layer=3)]


@pytest.mark.exercise("seq2seq_model")
def test_seq2seq_modules(student, reference):
    """Seq2Seq holds embed [vocab_size, d_model], pos [max_len, d_model] and head (d_model -> vocab_size, with a bias), and encoder and decoder, nn.ModuleLists of n_layer distinct EncoderLayers and DecoderLayers."""
    for cfg in SEQ2SEQ_CONFIGS:
        found = student(seq2seq_modules, cfg=cfg)
        expected = reference(seq2seq_modules, cfg=cfg)
        assert_close(found["outside"], expected["outside"], atol=0, rtol=0,
                     what=f"Seq2Seq({cfg})'s tensors outside its layers")
        for name in ("encoder", "decoder"):
            s = found["stacks"][name]
            check(s["module_list"] and s["kind"] and s["count"] == cfg["n_layer"],
                  f"{name} should be an nn.ModuleList of n_layer = {cfg['n_layer']} "
                  f"{'EncoderLayer' if name == 'encoder' else 'DecoderLayer'}s")
            check(s["distinct"] == cfg["n_layer"], f"the {name}'s layers should be {cfg['n_layer']} different layers "
                                                   "([layer] * n repeats ONE layer)")


@pytest.mark.exercise("seq2seq_model")
def test_seq2seq_matches_reference(student, reference, seed):
    """With the same layers and weights, Seq2Seq gives the reference's logits: embed + pos(0..S-1) through the encoder layers in order (each given the source's padding mask), embed + pos(0..T-1) through the decoder layers in order (each given the final memory, the future mask and the padding mask), then head."""
    cases = [(SEQ2SEQ_CONFIGS[0], [8, 3, 5], 6), (SEQ2SEQ_CONFIGS[1], [5], 7), (SEQ2SEQ_CONFIGS[2], [1, 10, 4, 7], 3)]
    for cfg, lengths, T in cases:
        found = student(seq2seq_case, seed=seed, cfg=cfg, lengths=lengths, T=T)
        expected = reference(seq2seq_case, seed=seed, cfg=cfg, lengths=lengths, T=T)
        where = f"sources of {lengths} digits, targets of {T} tokens, n_layer={cfg['n_layer']}"
        assert_close(found["memory"], expected["memory"], atol=1e-9, rtol=1e-7, what=f"encode's memory for {where}")
        assert_close(found["logits"], expected["logits"], atol=1e-9, rtol=1e-7, what=f"the logits for {where}")


@pytest.mark.exercise("seq2seq_model")
def test_encode_then_decode_is_forward(student, reference, seed):
    """forward(src, tgt) is decode(tgt, encode(src), padding_mask(src)): generation calls encode once and decode many times, and must get what training got, the reference's logits."""
    found = student(seq2seq_case, seed=seed, cfg=SEQ2SEQ_CONFIGS[0], lengths=[8, 2, 6], T=5)
    assert_close(found["decoded"], found["logits"], atol=1e-10, rtol=1e-8,
                 what="decode(tgt, encode(src), padding_mask(src)) next to forward(src, tgt)")
    expected = reference(seq2seq_case, seed=seed, cfg=SEQ2SEQ_CONFIGS[0], lengths=[8, 2, 6], T=5)
    assert_close(found["decoded"], expected["decoded"], atol=1e-9, rtol=1e-7,
                 what="decode(tgt, encode(src), padding_mask(src)) for sources of [8, 2, 6] digits, targets of 5 "
                      "tokens, with the reference's weights")


@pytest.mark.exercise("seq2seq_model")
def test_seq2seq_is_causal_and_ignores_padding(student, seed):
    """The logits at target position t depend on target tokens 0..t only; two more PAD columns at the end of the sources change nothing; a real source digit changes the logits of every target position."""
    for cfg, lengths, T, t in ((SEQ2SEQ_CONFIGS[0], [6, 3, 1], 7, 3), (SEQ2SEQ_CONFIGS[2], [8, 2], 5, 2)):
        found = student(seq2seq_properties, seed=seed, cfg=cfg, lengths=lengths, T=T, t=t)
        check(found["finite"], "the logits hold nan: some row of a mask forbids every key")
        check(found["before"] <= 1e-10, f"changing target token {t} changed the logits before it (by up to "
                                        f"{found['before']:.3g}): give future_mask(T) to every decoder layer")
        check(found["at_and_after"] > 1e-9, f"changing target token {t} left the logits of some position >= {t} "
                                            "unchanged")
        check(found["padding"] <= 1e-10, f"two more PAD columns at the end of the sources changed the logits (by up "
                                         f"to {found['padding']:.3g}): give the source's padding mask to every "
                                         "encoder layer and every decoder layer")
        check(found["digit_min"] > 1e-9, "changing the first digit of a source left the logits of some target "
                                         "position unchanged: every decoder layer should read the encoder's memory")


@pytest.mark.exercise("seq2seq_model")
def test_seq2seq_runs_on_the_device_of_its_input(student, reference, seed):
    """The positions and the future mask are created on the device of the tokens (device=src.device / tgt.device): tested with the model and its inputs on PyTorch's "meta" device, as on a GPU; on the CPU the same model gives the reference's logits."""
    found = student(seq2seq_on_meta, cfg=SEQ2SEQ_CONFIGS[1])
    check(not found["mixed"], f"with the model and the tokens on another device, the model combined them with tensors "
                              f"on the CPU ({'; '.join(found['mixed'][:3])}): create the positions and the masks "
                              "on the device of the tokens")
    check(found["logits"] == "meta" and found["memory"] == "meta",
          f"on the meta device, forward returned logits on {found['logits']} and encode a memory on "
          f"{found['memory']}: create every new tensor on the device of the tokens")
    check(found["shape"] == [2, 4, 13], f"the logits for src [2, 5] and tgt [2, 4] have shape {found['shape']}")
    found = student(seq2seq_case, seed=seed, cfg=SEQ2SEQ_CONFIGS[1], lengths=[5, 2], T=4)
    expected = reference(seq2seq_case, seed=seed, cfg=SEQ2SEQ_CONFIGS[1], lengths=[5, 2], T=4)
    assert_close({"memory": found["memory"], "logits": found["logits"]},
                 {"memory": expected["memory"], "logits": expected["logits"]}, atol=1e-9, rtol=1e-7,
                 what="encode's memory and the logits on the CPU for sources of [5, 2] digits, targets of 4 tokens, "
                      "with the reference's weights")


# ---------------------------------------------------------------------------------------------------------
# teacher_forcing
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("teacher_forcing")
def test_loss_reads_the_shifted_target(student, reference, seed):
    """seq2seq_loss calls the model once, with the source unchanged and the decoder reading tgt[:, :-1]: BOS and the target so far, without the last column, and scores what it returns."""
    found = student(loss_case, seed=seed, kind="lookup", lengths=[8, 3, 5, 1])
    check(found["calls"] == 1, f"seq2seq_loss called the model {found['calls']} times, expected once")
    check(all(found["src_given"]), "seq2seq_loss should pass the source to the model as it is")
    assert_close(found["tgt_given"][0], np.asarray(found["tgt"])[:, :-1], atol=0, rtol=0,
                 what="the target the model's decoder read (expected tgt[:, :-1])")
    check(found["unchanged"], "seq2seq_loss changed the src or tgt it was given")
    expected = reference(loss_case, seed=seed, kind="lookup", lengths=[8, 3, 5, 1])
    assert_close(found["loss"], expected["loss"], atol=1e-9, rtol=1e-7, what="the loss for sources of [8, 3, 5, 1] digits")


@pytest.mark.exercise("teacher_forcing")
def test_loss_matches_reference(student, reference, seed):
    """The loss is the mean cross-entropy of the logits at position t against tgt[:, t + 1], over every position whose next token is not PAD; a 0-dimensional tensor, through which gradients flow."""
    for lengths in ([8, 3, 5, 1], [2], [8, 8]):
        found = student(loss_case, seed=seed, kind="lookup", lengths=lengths)
        expected = reference(loss_case, seed=seed, kind="lookup", lengths=lengths)
        check(found["is_tensor"] and found["dim"] == 0, "seq2seq_loss should return a 0-dimensional tensor (not a "
                                                        "Python float: training calls .backward() on it)")
        assert_close(found["loss"], expected["loss"], atol=1e-9, rtol=1e-7,
                     what=f"the loss for sources of {lengths} digits")
        assert_close(found["grad"], expected["grad"], atol=1e-9, rtol=1e-7,
                     what=f"the gradient of the loss for sources of {lengths} digits")


@pytest.mark.exercise("teacher_forcing")
def test_loss_leaves_the_padding_out(student, reference, seed):
    """Positions whose next token is PAD count neither in the sum nor in the mean: a model that always gives the right next token has a loss of about 0, and more PAD columns at the end of the targets leave the loss unchanged, the mean over the real next tokens."""
    found = student(loss_case, seed=seed, kind="oracle", lengths=[6, 2, 4])
    check(found["loss"] < 1e-6, f"a model that always scores the right next token got a loss of {found['loss']:.4f}, "
                                "expected about 0: score position t on tgt[:, t + 1], leaving out the positions "
                                "whose next token is PAD")
    base = student(loss_case, seed=seed, kind="lookup", lengths=[6, 2, 4])
    more = student(loss_case, seed=seed, kind="lookup", lengths=[6, 2, 4], extra_pad=3)
    check(abs(base["loss"] - more["loss"]) < 1e-9,
          f"three more PAD columns at the end of the targets changed the loss from {base['loss']:.6f} to "
          f"{more['loss']:.6f}: leave the PAD positions out of the mean (F.cross_entropy's ignore_index=PAD)")
    expected = reference(loss_case, seed=seed, kind="lookup", lengths=[6, 2, 4], extra_pad=3)
    assert_close(more["loss"], expected["loss"], atol=1e-9, rtol=1e-7,
                 what="the loss for sources of [6, 2, 4] digits, with three more PAD columns at the end of the targets")


# ---------------------------------------------------------------------------------------------------------
# greedy_decoding
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("greedy_decoding")
def test_greedy_returns_max_len_tokens(student, reference, seed):
    """greedy_decode(model, src, max_len) returns an int64 [N, max_len] tensor, the tokens after BOS, for any batch size and max_len (1 included), and leaves src unchanged: the reference's tokens."""
    for lengths, max_len in (([4, 1, 7], 9), ([3], 1), ([2, 2], 5)):
        found = student(greedy_case, seed=seed, kind="lookup", lengths=lengths, S=8, max_len=max_len)
        check(found["shape"] == [len(lengths), max_len], f"greedy_decode(model, src [{len(lengths)}, 8], "
                                                         f"max_len={max_len}) returned shape {found['shape']}, "
                                                         f"expected [{len(lengths)}, {max_len}] (without BOS)")
        check(found["dtype"] == "torch.int64", f"greedy_decode returned {found['dtype']} tokens, expected int64")
        check(found["unchanged"], "greedy_decode changed the source it was given")
        expected = reference(greedy_case, seed=seed, kind="lookup", lengths=lengths, S=8, max_len=max_len)
        assert_close(found["out"], expected["out"], atol=0, rtol=0,
                     what=f"greedy_decode's tokens for sources of {lengths} digits, max_len={max_len}")


@pytest.mark.exercise("greedy_decoding")
def test_greedy_reverses_with_a_model_that_knows_how(student, seed):
    """With a stand-in model that scores the right next token (the source backwards, then EOS, then the digit 7), greedy decoding returns the reversal, EOS, then PAD: the argmax of the LAST position's logits at each step, PAD once a row has produced EOS."""
    found = student(greedy_case, seed=seed, kind="reverser", lengths=[8, 3, 5, 1, 6], S=8, max_len=9)
    out, src = np.asarray(found["out"]).astype(int), np.asarray(found["src"])
    for i, row in enumerate(out):
        n = int((src[i] != 0).sum())
        want = [*src[i, :n][::-1], 2] + [0] * (9 - n - 1)
        if list(row) != want:
            hint = (" (after EOS a row should get PAD, whatever the model scores)" if list(row[:n + 1]) == want[:n + 1]
                    else " (the next token is the argmax of the logits of the last position)")
            raise AssertionError(f"for the source {src[i, :n].tolist()} greedy_decode returned {list(row)}, expected "
                                 f"{want}{hint}")


@pytest.mark.exercise("greedy_decoding")
def test_greedy_matches_reference(student, reference, seed):
    """With a stand-in whose logits depend on the last token and on the source, greedy_decode gives the reference's tokens: the most likely token after each prefix, PAD after EOS."""
    for lengths, max_len in (([4, 1, 7, 8], 9), ([5], 12), ([2, 6], 3)):
        found = student(greedy_case, seed=seed, kind="lookup", lengths=lengths, S=8, max_len=max_len)
        expected = reference(greedy_case, seed=seed, kind="lookup", lengths=lengths, S=8, max_len=max_len)
        assert_close(found["out"], expected["out"], atol=0, rtol=0,
                     what=f"greedy_decode's tokens for sources of {lengths} digits, max_len={max_len}")


@pytest.mark.exercise("greedy_decoding")
def test_greedy_encodes_once_and_feeds_back_its_tokens(student, reference, seed):
    """The source is encoded once; the decoder first reads a column of BOS, then BOS and every token written so far (its own, not the model's scores of other positions): the reference's tokens."""
    found = student(greedy_case, seed=seed, kind="lookup", lengths=[4, 1, 7], S=8, max_len=6)
    check(found["encoded"] == 1, f"the source was encoded {found['encoded']} times for 6 tokens: encode it once, "
                                 "before the loop, and call decode at each step")
    inputs, out = found["inputs"], np.asarray(found["out"])
    check(len(inputs) >= 1 and np.asarray(inputs[0]).shape == (3, 1) and (np.asarray(inputs[0]) == 1).all(),
          "the decoder's first input should be one column of BOS (token 1) per row")
    for step, seen in enumerate(inputs[1:], start=1):
        seen = np.asarray(seen)
        check(seen.shape == (3, step + 1) and (seen[:, 0] == 1).all() and (seen[:, 1:] == out[:, :step]).all(),
              f"at step {step + 1} the decoder should read BOS and the {step} tokens written so far, "
              f"[3, {step + 1}]; it read {seen.shape[1] if seen.ndim == 2 else seen.shape} columns")
    expected = reference(greedy_case, seed=seed, kind="lookup", lengths=[4, 1, 7], S=8, max_len=6)
    assert_close(found["out"], expected["out"], atol=0, rtol=0,
                 what="greedy_decode's tokens for sources of [4, 1, 7] digits, max_len=6")


@pytest.mark.exercise("greedy_decoding")
def test_greedy_runs_on_the_device_of_the_source(student, reference, seed):
    """The BOS column and every tensor greedy_decode creates live on the device of the source (tested on PyTorch's "meta" device, as on a GPU); on the CPU it gives the reference's tokens."""
    found = student(greedy_on_meta)
    check(found["inputs"] == ["meta"], f"the decoder read targets on {found['inputs']}, expected the source's device "
                                       "(meta): create the BOS column with device=src.device")
    check(not found["mixed"], f"greedy_decode combined tensors of the source's device with tensors on the CPU "
                              f"({'; '.join(found['mixed'][:3])}): create every new tensor with device=src.device")
    if found["stopped"] is None:
        check(found["out"] == "meta", f"greedy_decode returned tokens on {found['out']}, expected meta")
        check(found["shape"] == [3, 4], f"greedy_decode on src [3, 5] with max_len=4 returned shape {found['shape']}")
    found = student(greedy_case, seed=seed, kind="lookup", lengths=[5, 2, 3], S=5, max_len=4)
    expected = reference(greedy_case, seed=seed, kind="lookup", lengths=[5, 2, 3], S=5, max_len=4)
    assert_close(found["out"], expected["out"], atol=0, rtol=0,
                 what="greedy_decode's tokens on the CPU for sources [3, 5] of [5, 2, 3] digits, max_len=4")
