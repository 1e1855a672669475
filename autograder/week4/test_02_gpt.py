"""Hidden tests for week4/02_gpt: a GPT from scratch, trained and sampled.

Layer norm is compared with nn.LayerNorm itself. The MLP and the GPT are compared with the reference, and the
block with the pre-norm block composed directly from its own weights, in float64 with the same weights. Their
tests put PyTorch's layer norm (and, for the GPT, blocks of the probe's own) in place of the learner's, so that a
mistake is charged to its own exercise; the GPT's causality and its training use the learner's whole model.
Generation is tested on stand-in models whose logits are known: exact where sampling is deterministic (top_k=1),
by frequencies over thousands of samples otherwise, so that any correct way of sampling passes.
"""
import numpy as np
import pytest

from course.testing import assert_close, check, is_finite, probe
from probes import device_mixing, forbidding


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def make_config(nb, cfg):
    """The notebook's GPTConfig from a dict of its fields."""
    return nb.GPTConfig(**cfg)


@probe
def seeded_gpt_weights(nb, model, seed):
    """Give every entry of model.state_dict(), in sorted name order, seeded float64 values: matrices scaled by
    1/sqrt(fan-in), 1-D weights around 1, biases around 0. Returns the names and shapes."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if t.dim() > 1:
                t.copy_(noise / t.shape[-1] ** 0.5)
            elif name.endswith("weight"):
                t.copy_(1 + 0.3 * noise)
            else:
                t.copy_(0.3 * noise)
    return {name: list(t.shape) for name, t in sorted(model.state_dict().items())}


@probe
def torch_layernorms(nb, model):
    """Put nn.LayerNorm (eps 1e-5, float64), with the same weight and bias, in place of every ln_1, ln_2, ln_f."""
    import torch
    import torch.nn as nn
    for name, module in list(model.named_modules()):
        parent, _, attr = name.rpartition(".")
        if attr in ("ln_1", "ln_2", "ln_f"):
            weight = torch.as_tensor(module.weight).detach()
            bias = torch.as_tensor(module.bias).detach()
            ln = nn.LayerNorm(weight.shape[0], eps=1e-5).double()
            with torch.no_grad():
                ln.weight.copy_(weight)
                ln.bias.copy_(bias)
            setattr(model.get_submodule(parent) if parent else model, attr, ln)
    return model


@probe
def composed_block(nb, block):
    """A module that computes a pre-norm block directly from `block`'s weights: layer norms and the MLP written
    with torch.nn.functional, the block's own attention module (dropout off)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Composed(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block

        def forward(self, x):
            b, C = self.block, x.shape[-1]
            h = x + b.attn(F.layer_norm(x, (C,), b.ln_1.weight, b.ln_1.bias, 1e-5))
            z = F.layer_norm(h, (C,), b.ln_2.weight, b.ln_2.bias, 1e-5)
            z = F.gelu(z @ b.mlp.c_fc.weight.T + b.mlp.c_fc.bias)
            return h + z @ b.mlp.c_proj.weight.T + b.mlp.c_proj.bias

    return Composed()


@probe
def layernorm_case(nb, seed, shape, eps, use_torch=False):
    """LayerNorm(C, eps) in float64 with seeded weight and bias, on x of `shape` (mean and scale far from 0 and 1):
    the output and the gradients of a random upstream with respect to x, weight and bias. With use_torch, the
    same for nn.LayerNorm."""
    import torch
    import torch.nn as nn
    C = shape[-1]
    ln = (nn.LayerNorm(C, eps=eps) if use_torch else nb.LayerNorm(C, eps=eps)).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64))
        ln.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64))
    x = (3 * torch.randn(*shape, generator=g, dtype=torch.float64) + 1.5).requires_grad_()
    upstream = torch.randn(*shape, generator=g, dtype=torch.float64)
    out = ln(x)
    (out * upstream).sum().backward()
    return {"out": out.detach(), "grad_x": x.grad, "grad_weight": ln.weight.grad, "grad_bias": ln.bias.grad}


@probe
def layernorm_forbidden(nb, seed, shape, eps):
    """layernorm_case for the notebook's LayerNorm while PyTorch's layer norm (F.layer_norm, torch.layer_norm,
    torch.native_layer_norm and nn.LayerNorm's forward) raises when called: which of them it called, the first
    error, and the output and gradients."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    targets = [(F, "layer_norm", "F.layer_norm"), (torch, "layer_norm", "torch.layer_norm"),
               (torch, "native_layer_norm", "torch.native_layer_norm"), (nn.LayerNorm, "forward", "nn.LayerNorm")]
    called, error, found = forbidding(nb, targets, lambda: layernorm_case(nb, seed, shape, eps))
    empty = torch.zeros(0)
    return {"called": called, "error": error,
            **{key: (found or {}).get(key, empty) for key in ("out", "grad_x", "grad_weight", "grad_bias")}}


@probe
def layernorm_parameters(nb, seed, C):
    """LayerNorm(C) with its defaults: its parameters (names, shapes, initial values) and its output, in float64,
    on an input whose variance (about 1e-5) is as small as the default eps."""
    import torch
    ln = nb.LayerNorm(C)
    params = {name: p.detach().clone() for name, p in ln.named_parameters()}
    g = torch.Generator().manual_seed(seed)
    x = 0.003 * torch.randn(2, 3, C, generator=g, dtype=torch.float64) + 0.7
    return {"names": sorted(params), "weight": params.get("weight"), "bias": params.get("bias"),
            "out": ln.double()(x).detach()}


@probe
def mlp_case(nb, seed, cfg, x_shape):
    """MLP(config) in float64, eval mode, seeded weights by name: the state_dict's shapes and the output."""
    import torch
    model = nb.MLP(make_config(nb, cfg)).double().eval()
    shapes = seeded_gpt_weights(nb, model, seed)
    x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return {"state_dict": shapes, "n_params": sum(p.numel() for p in model.parameters()), "out": model(x).detach()}


@probe
def mlp_dropout(nb, seed, cfg):
    """MLP(config) with dropout 0.5: the fraction of exact zeros of its output in training mode, whether the
    output in eval mode is the same as with dropout 0, and whether two eval calls agree."""
    import torch
    torch.manual_seed(seed)
    model = nb.MLP(make_config(nb, {**cfg, "dropout": 0.5})).double()
    seeded_gpt_weights(nb, model, seed)
    twin = nb.MLP(make_config(nb, {**cfg, "dropout": 0.0})).double()
    twin.load_state_dict(model.state_dict())
    x = torch.randn(4, 50, cfg["n_embd"], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    model.train()
    trained = model(x).detach()
    model.eval()
    twin.eval()
    evaluated = model(x).detach()
    return {"zeros_in_training": float((trained == 0).double().mean()),
            "zeros_in_eval": float((evaluated == 0).double().mean()),
            "eval_is_no_dropout": bool(torch.allclose(evaluated, twin(x).detach(), atol=1e-12, rtol=0))}


@probe
def block_case(nb, seed, cfg, x_shape, compose=False):
    """Block(config) in float64, eval mode, PyTorch's layer norms in place of ln_1 and ln_2, seeded weights by
    name: the state_dict's shapes and the output. With compose, the output of the block composed directly from
    the same weights (torch.nn.functional layer norms and MLP) instead of the block's forward."""
    import torch
    block = torch_layernorms(nb, nb.Block(make_config(nb, cfg)).double().eval())
    shapes = seeded_gpt_weights(nb, block, seed)
    x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    run = composed_block(nb, block) if compose else block
    return {"state_dict": shapes, "n_params": sum(p.numel() for p in block.parameters()), "out": run(x).detach()}


@probe
def gpt_modules(nb, cfg):
    """GPT(config): its state_dict entries outside the blocks and ln_f (names and shapes), its parameter count
    there, whether ln_f is the notebook's LayerNorm, whether lm_head has a bias, whether lm_head's weight is wte's,
    the sizes wte and wpe were built with, and how many distinct blocks it has."""
    import torch
    torch.manual_seed(0)
    model = nb.GPT(make_config(nb, cfg))
    mine = lambda name: not name.startswith(("blocks.", "ln_f."))
    params = dict(model.named_parameters())
    outside = {name: list(t.shape) for name, t in model.state_dict().items() if mine(name)}
    head, wte = getattr(model, "lm_head", None), getattr(model, "wte", None)
    blocks = list(getattr(model, "blocks", []))
    return {"outside": dict(sorted(outside.items())),
            "n_outside": sum(p.numel() for name, p in params.items() if mine(name)),
            "ln_f": isinstance(getattr(model, "ln_f", None), nb.LayerNorm),
            "head_bias": getattr(head, "bias", None) is not None,
            "tied": head is not None and wte is not None and head.weight is wte.weight,
            # what the embeddings were built as: tying replaces wte's weight, not its sizes
            "built": {name: [getattr(m, "num_embeddings", None), getattr(m, "embedding_dim", None)]
                      for name, m in (("wte", wte), ("wpe", getattr(model, "wpe", None)))},
            "blocks": len(blocks), "distinct_blocks": len({id(b) for b in blocks})}


@probe
def gpt_embedding_dropout(nb, seed):
    """GPT with dropout 0.5 and one block: what its first block receives in training and in eval mode, next to
    wte(idx) + wpe(positions) computed here from the model's own embeddings."""
    import torch
    torch.manual_seed(seed)
    T, V = 8, 11
    model = nb.GPT(make_config(nb, dict(block_size=T, vocab_size=V, n_layer=1, n_head=2, n_embd=16, dropout=0.5)))
    model = model.double()
    idx = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(seed))
    seen = []
    hook = list(model.blocks)[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    model.train()
    model(idx)
    model.eval()
    model(idx)
    hook.remove()
    with torch.no_grad():
        total = model.wte(idx) + model.wpe(torch.arange(T))
    trained, evaluated = seen
    kept = trained != 0
    return {"zero_fraction": float((~kept).double().mean()),
            "kept_doubled": bool(torch.allclose(trained[kept], 2 * total[kept], atol=1e-12, rtol=1e-12)),
            "eval_is_sum": bool(torch.allclose(evaluated, total, atol=1e-12, rtol=1e-12))}


@probe
def probe_block(nb, config):
    """A pre-norm block with weights of its own: PyTorch's layer norms, the notebook's (given) attention, and the
    MLP written with torch.nn.functional."""
    import torch.nn as nn
    import torch.nn.functional as F

    class ProbeBlock(nn.Module):
        def __init__(self):
            super().__init__()
            C = config.n_embd
            self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.attn = nb.CausalSelfAttention(config)
            self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))

    return ProbeBlock()


@probe
def gpt_forward(nb, seed, cfg, shape):
    """GPT(config) in float64, eval mode, with PyTorch's layer norm as ln_f and each of its blocks replaced by a
    block of the probe's own (so that only the GPT's own code is tested), then seeded weights by name. Logits and
    loss for random idx and targets of `shape`, and what it returns without targets."""
    import torch
    config = make_config(nb, cfg)
    model = nb.GPT(config)
    for i in range(len(model.blocks)):
        model.blocks[i] = probe_block(nb, config)
    model = torch_layernorms(nb, model).double().eval()
    seeded_gpt_weights(nb, model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, cfg["vocab_size"], shape, generator=g)
    targets = torch.randint(0, cfg["vocab_size"], shape, generator=g)
    with torch.no_grad():
        logits, loss = model(idx, targets)
        alone, no_loss = model(idx)
    return {"logits": logits, "loss": float(loss), "logits_without_targets": alone, "loss_without_targets": no_loss}


@probe
def gpt_causality(nb, seed, cfg, T, t):
    """The learner's whole GPT in float64 (seeded weights): how much the logits of each position change when the
    token at position t of the first sequence changes, and how much the second sequence's logits change."""
    import torch
    model = nb.GPT(make_config(nb, cfg)).double().eval()
    seeded_gpt_weights(nb, model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, cfg["vocab_size"], (2, T), generator=g)
    changed = idx.clone()
    changed[0, t] = (idx[0, t] + 1 + torch.randint(0, cfg["vocab_size"] - 1, (1,), generator=g)) % cfg["vocab_size"]
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
    diff = (after - before).abs()
    return {"per_position": diff[0].amax(dim=-1), "other_sequence": float(diff[1].max())}


@probe
def gpt_on_meta(nb, cfg):
    """The learner's GPT, with the probe's blocks and PyTorch's layer norm as ln_f (as in gpt_forward), moved to
    PyTorch's "meta" device and run there on idx and targets: the devices of the logits and the loss, and the
    torch functions that met tensors of two devices (a tensor the model creates on the CPU)."""
    import torch
    config = make_config(nb, cfg)
    model = nb.GPT(config)
    for i in range(len(model.blocks)):
        model.blocks[i] = probe_block(nb, config)
    model = torch_layernorms(nb, model).double().to("meta")
    idx = torch.zeros(2, 5, dtype=torch.long, device="meta")
    mode = device_mixing()
    try:
        with mode:
            logits, loss = model(idx, idx.clone())
        devices = {"logits": str(logits.device), "loss": str(loss.device)}
    except RuntimeError as error:                       # two devices in one operation: recorded by the mode
        devices = {"logits": f"nothing ({error})", "loss": "nothing"}
    return {**devices, "mixed": mode.mixed}


@probe
def param_formula(nb, configs):
    """gpt_num_params for each (vocab_size, block_size, n_layer, n_embd), and whether each answer is an int."""
    out = [nb.gpt_num_params(*c) for c in configs]
    return {"counts": [int(n) for n in out], "ints": [isinstance(n, int) for n in out]}


@probe
def param_formula_builds(nb):
    """The kinds of nn.Module built while gpt_num_params counts a small GPT (none: the count comes from the
    sizes alone)."""
    import torch.nn as nn
    built, init = set(), nn.Module.__init__

    def counted(self, *args, **kwargs):          # every module's __init__ reaches nn.Module's
        built.add(type(self).__name__)
        init(self, *args, **kwargs)

    nn.Module.__init__ = counted
    try:
        nb.gpt_num_params(11, 16, 2, 8)
    finally:
        nn.Module.__init__ = init
    return sorted(built)


@probe
def training_run(nb, seed):
    """The learner's GPT (1 block, 4 heads, n_embd 64, block_size 32) trained by this probe's own loop (AdamW,
    lr 4e-3, 400 steps of 32 random windows) on the first 90% of the offline pydoc text, on one thread; its loss
    on the last 10% (every window of 32 characters), the count-based bigram model's loss there, and the CPU time."""
    import time
    import torch
    import torch.nn.functional as F
    import coursedata
    text = coursedata.text("pydoc")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text])
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    V, T, B = len(chars), 32, 32
    counts = torch.ones(V, V)                                    # the bigram baseline, add-one smoothed
    counts.index_put_((train[:-1], train[1:]), torch.ones(n - 1), accumulate=True)
    bigram = float(-(counts / counts.sum(dim=1, keepdim=True)).log()[val[:-1], val[1:]].mean())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nb.GPT(make_config(nb, dict(block_size=T, vocab_size=V, n_layer=1, n_head=4, n_embd=64, dropout=0.0)))
        optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
        g = torch.Generator().manual_seed(seed)
        losses = []
        cpu = time.process_time()
        model.train()
        for step in range(400):
            ix = torch.randint(n - T, (B,), generator=g)
            x = torch.stack([train[i:i + T] for i in ix])
            y = torch.stack([train[i + 1:i + 1 + T] for i in ix])
            logits, _ = model(x)                                 # the loss is computed here, not by the model
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        cpu = time.process_time() - cpu
        model.eval()
        m = (len(val) - 1) // T * T
        with torch.no_grad():
            logits, _ = model(val[:m].view(-1, T))
            val_loss = float(F.cross_entropy(logits.reshape(-1, V), val[1:m + 1]))
    finally:
        torch.set_num_threads(threads)
    return {"val_loss": val_loss, "bigram": bigram, "cpu_seconds": cpu, "first": losses[:20], "last": losses[-50:]}


@probe
def stand_in(nb, seed, vocab_size, block_size):
    """A language model whose logits at a position depend only on the token there (a fixed seeded table, scale
    1.5, float64). It records every context it is called with, and raises, as a GPT would, on a context longer
    than block_size."""
    import types
    import torch
    import torch.nn as nn

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = types.SimpleNamespace(block_size=block_size, vocab_size=vocab_size)
            g = torch.Generator().manual_seed(seed)
            self.table = 1.5 * torch.randn(vocab_size, vocab_size, generator=g, dtype=torch.float64)
            self.calls = []

        def forward(self, idx, targets=None):
            if idx.shape[1] > block_size:
                raise ValueError(f"the model was called with a context of {idx.shape[1]} tokens, more than its "
                                 f"block_size of {block_size}")
            self.calls.append(idx.clone())
            return self.table[idx], None

    return StandIn()


@probe
def sampling_run(nb, seed, vocab_size, block_size, context, max_new_tokens, temperature=1.0, top_k=None):
    """generate(stand_in, context, ...) with the global seed set: the output, the contexts the model received,
    and the stand-in's table of logits."""
    import torch
    model = stand_in(nb, seed, vocab_size, block_size)
    idx = torch.tensor(context, dtype=torch.long)
    torch.manual_seed(seed)
    out = nb.generate(model, idx.clone(), max_new_tokens, temperature=temperature, top_k=top_k)
    return {"out": out, "calls": model.calls, "table": model.table}


# ---------------------------------------------------------------------------------------------------------
# layer normalization
# ---------------------------------------------------------------------------------------------------------

LN_CASES = [((2, 5, 8), 1e-5), ((3, 7), 0.1), ((1, 1, 4), 0.5), ((2, 6, 3), 1.0)]


@pytest.mark.exercise("layer_norm")
def test_layer_norm_matches_nn_layernorm(student, reference, seed):
    """LayerNorm(C, eps) computes (x - mean) / sqrt(var + eps) * weight + bias like nn.LayerNorm: mean and BIASED variance (divided by C) over the LAST dimension only, eps inside the square root."""
    for shape, eps in LN_CASES:
        found = student(layernorm_case, seed=seed, shape=list(shape), eps=eps)
        expected = reference(layernorm_case, seed=seed, shape=list(shape), eps=eps, use_torch=True)
        assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-8,
                     what=f"LayerNorm({shape[-1]}, eps={eps}) on x {list(shape)} (against nn.LayerNorm)")


@pytest.mark.exercise("layer_norm")
def test_layer_norm_written_by_hand(student, reference, seed):
    """LayerNorm computes the mean, the variance and the normalization itself: it may not hand the work to PyTorch's layer norm (nn.LayerNorm, F.layer_norm), and its output and gradients are nn.LayerNorm's."""
    shape, eps = LN_CASES[0]
    found = student(layernorm_forbidden, seed=seed, shape=list(shape), eps=eps)
    check(not found["called"], f"LayerNorm called {', '.join(found['called'])}: compute the normalization with "
                               "tensor operations of your own")
    check(not found["error"], f"LayerNorm failed: {found['error']}")
    expected = reference(layernorm_case, seed=seed, shape=list(shape), eps=eps, use_torch=True)
    assert_close({k: found[k] for k in ("out", "grad_x", "grad_weight", "grad_bias")},
                 {k: expected[k] for k in ("out", "grad_x", "grad_weight", "grad_bias")}, atol=1e-9, rtol=1e-7,
                 what=f"LayerNorm({shape[-1]}, eps={eps})'s output and gradients on x {list(shape)} (against "
                      "nn.LayerNorm)")


@pytest.mark.exercise("layer_norm")
def test_layer_norm_gradients(student, reference, seed):
    """Gradients flow through LayerNorm to x, weight and bias as through nn.LayerNorm: compute with tensor operations on x (no .detach(), no .data) and let autograd do the rest."""
    for shape, eps in LN_CASES[:3]:
        found = student(layernorm_case, seed=seed, shape=list(shape), eps=eps)
        expected = reference(layernorm_case, seed=seed, shape=list(shape), eps=eps, use_torch=True)
        for key in ("grad_x", "grad_weight", "grad_bias"):
            check(found[key] is not None, f"LayerNorm({shape[-1]}) left {key[5:]}.grad empty after backward: "
                                          "is it an nn.Parameter, and does the output depend on it?")
        assert_close({k: found[k] for k in ("grad_x", "grad_weight", "grad_bias")},
                     {k: expected[k] for k in ("grad_x", "grad_weight", "grad_bias")}, atol=1e-9, rtol=1e-7,
                     what=f"the gradients of LayerNorm({shape[-1]}, eps={eps}) on x {list(shape)}")


@pytest.mark.exercise("layer_norm")
def test_layer_norm_parameters_and_default_eps(student, reference, seed):
    """LayerNorm(C) holds two nn.Parameter of shape [C], weight (ones) and bias (zeros), and its default eps is 1e-5, as nn.LayerNorm's."""
    for C in (6, 1):
        found = student(layernorm_parameters, seed=seed, C=C)
        expected = reference(layernorm_parameters, seed=seed, C=C)
        check(found["names"] == ["bias", "weight"],
              f"LayerNorm({C})'s parameters are {found['names']}, expected ['bias', 'weight']: wrap the tensors "
              "in nn.Parameter, or an optimizer never sees them")
        assert_close({"weight": found["weight"], "bias": found["bias"]},
                     {"weight": expected["weight"], "bias": expected["bias"]}, atol=0, rtol=0,
                     what=f"LayerNorm({C})'s initial weight and bias")
        assert_close(found["out"], expected["out"], atol=1e-6, rtol=1e-6,
                     what=f"LayerNorm({C}) with the default eps on an input of variance about 1e-5")


# ---------------------------------------------------------------------------------------------------------
# the feed-forward network and the block
# ---------------------------------------------------------------------------------------------------------

BLOCK_CONFIGS = [(dict(block_size=16, vocab_size=11, n_layer=1, n_head=2, n_embd=8, dropout=0.0), [2, 5, 8]),
                 (dict(block_size=16, vocab_size=11, n_layer=1, n_head=3, n_embd=12, dropout=0.0), [1, 7, 12]),
                 (dict(block_size=16, vocab_size=11, n_layer=1, n_head=1, n_embd=5, dropout=0.0), [3, 1, 5])]


@pytest.mark.exercise("block")
def test_mlp_matches_reference(student, reference, seed):
    """MLP: c_fc = nn.Linear(C, 4C), exact GELU (nn.GELU(), not ReLU, not the tanh approximation), c_proj = nn.Linear(4C, C), then dropout; applied to each position of x [N, T, C]."""
    for cfg, shape in BLOCK_CONFIGS:
        found = student(mlp_case, seed=seed, cfg=cfg, x_shape=shape)
        expected = reference(mlp_case, seed=seed, cfg=cfg, x_shape=shape)
        C = cfg["n_embd"]
        assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                     what=f"MLP's state_dict for n_embd={C} (c_fc: C -> 4C, c_proj: 4C -> C, with biases)")
        assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-8,
                     what=f"MLP's output for x {shape} with the reference's weights")


@pytest.mark.exercise("block")
def test_mlp_dropout(student, reference, seed):
    """MLP ends with nn.Dropout(config.dropout) on its output: in training mode about that fraction of the outputs is zero, in eval mode none, and eval mode computes the same as without dropout."""
    cfg = BLOCK_CONFIGS[0][0]
    found = student(mlp_dropout, seed=seed, cfg=cfg)
    expected = reference(mlp_dropout, seed=seed, cfg=cfg)
    check(abs(found["zeros_in_training"] - 0.5) < 0.05,
          f"with config.dropout = 0.5, {found['zeros_in_training']:.1%} of MLP's outputs are zero in training mode, "
          "expected about 50%: apply self.dropout to the output of c_proj")
    check(found["zeros_in_eval"] == 0 and found["eval_is_no_dropout"],
          "in eval mode MLP should compute exactly what it computes with dropout 0 (nn.Dropout switches off)")
    check(expected["eval_is_no_dropout"], "the reference disagrees with itself")


@pytest.mark.exercise("block")
def test_block_matches_direct_composition(student, reference, seed):
    """Block is pre-norm with two residual connections: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)); not LN(x + sublayer(x)), and neither sublayer may replace x."""
    for cfg, shape in BLOCK_CONFIGS:
        found = student(block_case, seed=seed, cfg=cfg, x_shape=shape)
        expected = reference(block_case, seed=seed, cfg=cfg, x_shape=shape, compose=True)
        assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                     what=f"Block's state_dict for n_embd={cfg['n_embd']} (ln_1, attn, ln_2, mlp)")
        assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-8,
                     what=f"Block's output for x {shape}, against x + attn(ln_1(x)) then + mlp(ln_2(.)) computed "
                          "directly with the same weights")


@pytest.mark.exercise("block")
def test_block_parameter_count(student, reference):
    """A block holds ln_1 and ln_2 (a weight and a bias each), the given attention and the MLP (c_fc: C -> 4C and c_proj: 4C -> C, both with biases), and nothing else; with these weights it computes the pre-norm block."""
    for cfg, shape in BLOCK_CONFIGS:
        found = student(block_case, seed=0, cfg=cfg, x_shape=shape)
        C = cfg["n_embd"]
        check(found["n_params"] == 12 * C * C + 13 * C,
              f"Block with n_embd={C} has {found['n_params']} parameters, expected {12 * C * C + 13 * C} "
              "(two layer norms, the attention and the MLP)")
        expected = reference(block_case, seed=0, cfg=cfg, x_shape=shape, compose=True)
        assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-8,
                     what=f"Block's output for x {shape}, against x + attn(ln_1(x)) then + mlp(ln_2(.)) computed "
                          "directly with the same weights")


# ---------------------------------------------------------------------------------------------------------
# the GPT
# ---------------------------------------------------------------------------------------------------------

GPT_CONFIGS = [dict(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=8, dropout=0.0),
               dict(block_size=9, vocab_size=23, n_layer=1, n_head=3, n_embd=12, dropout=0.0),
               dict(block_size=12, vocab_size=7, n_layer=3, n_head=1, n_embd=6, dropout=0.0)]


@pytest.mark.exercise("gpt")
def test_gpt_modules_and_weight_tying(student, reference):
    """GPT holds wte [vocab_size, C], wpe [block_size, C], n_layer distinct Blocks in `blocks`, ln_f (a LayerNorm), and lm_head without bias whose weight IS wte.weight (weight tying)."""
    for cfg in GPT_CONFIGS:
        found = student(gpt_modules, cfg=cfg)
        expected = reference(gpt_modules, cfg=cfg)
        label = f"GPT(vocab_size={cfg['vocab_size']}, block_size={cfg['block_size']}, n_layer={cfg['n_layer']}, " \
                f"n_embd={cfg['n_embd']})"
        assert_close(found["outside"], expected["outside"], atol=0, rtol=0,
                     what=f"{label}'s state_dict entries outside the blocks and ln_f")
        check(found["ln_f"], "ln_f should be a LayerNorm(n_embd), the final normalization")
        check(not found["head_bias"], "lm_head should be nn.Linear(n_embd, vocab_size, bias=False)")
        check(found["tied"], "lm_head.weight should be the same tensor as wte.weight (weight tying: "
                             "self.wte.weight = self.lm_head.weight)")
        for name, rows in (("wte", "vocab_size"), ("wpe", "block_size")):
            check(found["built"][name] == expected["built"][name],
                  f"{name} was built as nn.Embedding(num_embeddings={found['built'][name][0]}, "
                  f"embedding_dim={found['built'][name][1]}); expected nn.Embedding({rows}, n_embd) = "
                  f"nn.Embedding({expected['built'][name][0]}, {expected['built'][name][1]})")
        check(found["blocks"] == cfg["n_layer"] and found["distinct_blocks"] == cfg["n_layer"],
              f"{label} has {found['blocks']} blocks, {found['distinct_blocks']} of them distinct; expected "
              f"{cfg['n_layer']} different Block objects (a list [Block(config)] * n repeats ONE block)")
        check(found["n_outside"] == expected["n_outside"],
              f"{label} has {found['n_outside']} parameters outside its blocks, expected "
              f"{expected['n_outside']} (wte, shared with lm_head, and wpe)")


@pytest.mark.exercise("gpt")
def test_gpt_forward_matches_reference(student, reference, seed):
    """forward: x = wte(idx) + wpe(positions 0..T-1), through the blocks in order, then ln_f and lm_head; the loss is the mean cross-entropy over all N*T positions; without targets the loss is None."""
    for cfg, shape in zip(GPT_CONFIGS, ([3, 16], [1, 5], [2, 12])):
        found = student(gpt_forward, seed=seed, cfg=cfg, shape=shape)
        expected = reference(gpt_forward, seed=seed, cfg=cfg, shape=shape)
        check(found["loss_without_targets"] is None, "model(idx) without targets should return (logits, None)")
        assert_close(found["logits"], expected["logits"], atol=1e-9, rtol=1e-7,
                     what=f"the logits for idx {shape} with the reference's weights")
        assert_close(found["logits_without_targets"], expected["logits"], atol=1e-9, rtol=1e-7,
                     what=f"the logits for idx {shape} without targets")
        assert_close(found["loss"], expected["loss"], atol=1e-9, rtol=1e-7,
                     what=f"the loss for idx and targets {shape}")


@pytest.mark.exercise("gpt")
def test_gpt_is_causal(student, seed):
    """The logits at position t depend only on tokens 0..t of their own sequence: changing a later token, or another sequence of the batch, must leave them exactly as they were."""
    for cfg, T, t in ((GPT_CONFIGS[0], 13, 7), (GPT_CONFIGS[1], 9, 4)):
        found = student(gpt_causality, seed=seed, cfg=cfg, T=T, t=t)
        per_position = np.asarray(found["per_position"])
        early = float(per_position[:t].max())
        check(early < 1e-10, f"changing token {t} changed the logits at earlier positions (by up to {early:.3g}): "
                             "a position must not see the future")
        check(found["other_sequence"] < 1e-10, "changing a token of the first sequence changed the logits of the "
                                               f"second (by up to {found['other_sequence']:.3g})")
        check(float(per_position[t:].min()) > 1e-8, f"changing token {t} left the logits at some position >= {t} "
                                                     "unchanged: the model should read the tokens")


@pytest.mark.exercise("gpt")
def test_gpt_dropout_on_the_sum_of_the_embeddings(student, seed):
    """drop, nn.Dropout(dropout), is applied once, to the sum wte(idx) + wpe(positions), before the first block:
    at dropout 0.5 in training about half of the sum's entries reach the block as 0 and the others doubled; in
    eval mode the block gets the sum itself."""
    found = student(gpt_embedding_dropout, seed=seed)
    check(found["eval_is_sum"], "in eval mode the first block should receive wte(idx) + wpe(positions) itself")
    check(0.35 <= found["zero_fraction"] <= 0.65,
          f"with dropout 0.5, in training {found['zero_fraction']:.0%} of the entries the first block receives are "
          "0, expected about half: x = self.drop(self.wte(idx) + self.wpe(pos))")
    check(found["kept_doubled"], "in training, the entries dropout keeps should be the sum wte(idx) + wpe(pos) "
                                 "scaled by 1 / (1 - 0.5): one dropout on the sum, not one on each embedding")


@pytest.mark.exercise("gpt")
def test_gpt_runs_on_the_device_of_its_input(student, reference, seed):
    """The positions 0..T-1 are created on the device of idx (torch.arange(T, device=idx.device)): tested with the model and idx on PyTorch's "meta" device, as on a GPU; on the CPU the same model gives the reference's logits and loss."""
    found = student(gpt_on_meta, cfg=GPT_CONFIGS[0])
    check(not found["mixed"], f"with the model and idx on another device than the CPU, the model combined them with "
                              f"tensors on the CPU ({'; '.join(found['mixed'][:3])}): create the positions on "
                              "idx.device")
    check(found["logits"] == "meta" and found["loss"] == "meta",
          f"on the meta device, the GPT returned logits on {found['logits']} and a loss on {found['loss']}")
    found = student(gpt_forward, seed=seed, cfg=GPT_CONFIGS[0], shape=[2, 5])
    expected = reference(gpt_forward, seed=seed, cfg=GPT_CONFIGS[0], shape=[2, 5])
    assert_close({"logits": found["logits"], "loss": found["loss"]},
                 {"logits": expected["logits"], "loss": expected["loss"]}, atol=1e-9, rtol=1e-7,
                 what="the logits and the loss for idx [2, 5] on the CPU, with the reference's weights")


@pytest.mark.exercise("param_count")
def test_parameter_count_formula(student, reference):
    """gpt_num_params counts every parameter of the GPT from its sizes, building no model: the tied embedding once, the position embeddings, each of the L blocks (two layer norms, attention, the MLP, all with their biases), and ln_f; the number of heads does not appear."""
    configs = [[65, 64, 4, 128], [11, 16, 2, 8], [103, 32, 1, 7], [50257, 1024, 12, 768], [7, 12, 3, 6], [2, 1, 0, 5]]
    built = student(param_formula_builds)
    check(not built, f"gpt_num_params built modules ({', '.join(built)}) to count: the count should come from the "
                     "four sizes alone, with no model built")
    found = student(param_formula, configs=configs)
    expected = reference(param_formula, configs=configs)
    check(all(found["ints"]), "gpt_num_params should return an int")
    for c, n, e in zip(configs, found["counts"], expected["counts"]):
        check(n == e, f"gpt_num_params(vocab_size={c[0]}, block_size={c[1]}, n_layer={c[2]}, n_embd={c[3]}) = {n:,}, "
                      f"expected {e:,}")


@pytest.mark.exercise("gpt")
def test_trained_gpt_beats_the_bigram_baseline(student, seed):
    """Your GPT (1 block, 4 heads, n_embd 64, block_size 32) trained for 400 steps by the grader's own loop must reach a validation loss at least 0.15 below the bigram model's on the pydoc text, within the grader's time limit of 120 s (the reference: about 1.8-2.05 against 2.32, in 4 s of CPU)."""
    found = student(training_run, seed=seed, timeout=120)
    check(is_finite(found["first"] + found["last"]), "the training loss is not finite")
    margin = found["bigram"] - found["val_loss"]
    check(margin >= 0.15, f"validation loss {found['val_loss']:.3f} after training, against {found['bigram']:.3f} for "
                          f"the bigram model: expected at least 0.15 below it (the training loss went from "
                          f"{found['first'][0]:.2f} to {sum(found['last']) / len(found['last']):.2f}, in "
                          f"{found['cpu_seconds']:.1f} s of CPU)")


# ---------------------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------------------

def frequencies(tokens, vocab_size):
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=vocab_size)
    return counts / counts.sum()


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.exercise("generation")
def test_generate_appends_tokens(student, seed):
    """generate returns [N, T + max_new_tokens]: the context unchanged, then the new tokens (int64, in range); the model is called once per new token."""
    context = [[1, 4, 2], [0, 0, 5], [3, 6, 6]]
    found = student(sampling_run, seed=seed, vocab_size=7, block_size=16, context=context, max_new_tokens=6)
    out = np.asarray(found["out"])
    check(out.shape == (3, 9), f"generate on a context [3, 3] with max_new_tokens=6 returned shape {list(out.shape)}, "
                               "expected [3, 9]")
    check(out.dtype == np.int64, f"generate returned {out.dtype} tokens, expected int64 (torch.long)")
    check((out[:, :3] == np.asarray(context)).all(), "the first T tokens of the output should be the context")
    check(((out >= 0) & (out < 7)).all(), "generate returned tokens outside 0 .. vocab_size - 1")
    check(len(found["calls"]) == 6, f"the model was called {len(found['calls'])} times for 6 new tokens, expected 6")


@pytest.mark.exercise("generation")
def test_top_k_1_is_greedy(student, reference, seed):
    """With top_k=1 only the largest logit survives: generation is greedy (argmax of the last position's logits at each step), whatever the temperature."""
    context = [[0, 3], [5, 1], [2, 2], [8, 4]]
    for temperature in (0.7, 1.6):
        found = student(sampling_run, seed=seed, vocab_size=9, block_size=16, context=context, max_new_tokens=10,
                        temperature=temperature, top_k=1)
        expected = reference(sampling_run, seed=seed, vocab_size=9, block_size=16, context=context, max_new_tokens=10,
                             temperature=1.0, top_k=1)
        greedy = np.asarray(expected["out"])
        check(np.array_equal(np.asarray(found["out"]), greedy),
              f"with top_k=1 and temperature {temperature}, generate returned {np.asarray(found['out'])[0].tolist()} "
              f"for the first context, expected the greedy {greedy[0].tolist()}")


@pytest.mark.exercise("generation")
def test_top_k_samples_only_the_k_most_likely(student, seed):
    """With top_k=k, only the k LARGEST logits of the last position may be sampled, with probabilities softmax over those k (renormalized); top_k >= vocab_size keeps every token."""
    V, n = 12, 4000
    for k in (3, 5, V + 3):
        context = [[7, 2]] * n
        found = student(sampling_run, seed=seed, vocab_size=V, block_size=16, context=context, max_new_tokens=1,
                        top_k=k, timeout=60)
        logits = np.asarray(found["table"])[2]
        keep = np.argsort(-logits)[:min(k, V)]
        sampled = np.asarray(found["out"])[:, -1]
        outside = sorted(set(sampled.tolist()) - set(keep.tolist()))
        check(not outside, f"with top_k={k} the tokens {outside} were sampled, but only the {min(k, V)} most likely "
                           f"{sorted(keep.tolist())} may be")
        expected = np.zeros(V)
        expected[keep] = softmax(logits[keep])
        freq = frequencies(sampled, V)
        worst = int(np.argmax(np.abs(freq - expected)))
        check(np.abs(freq - expected).max() < 0.035,
              f"with top_k={k}, token {worst} was sampled {freq[worst]:.3f} of the time over {n} draws, expected "
              f"{expected[worst]:.3f} (the softmax of the k largest logits)")


@pytest.mark.exercise("generation")
def test_temperature_divides_the_logits(student, seed):
    """Each new token is drawn from softmax(logits[:, -1, :] / temperature): the logits of the LAST position, divided by the temperature (flatter above 1, sharper below), then softmax."""
    V, n = 6, 4000
    for temperature in (1.0, 2.0, 0.5):
        context = [[4, 1, 3]] * n
        found = student(sampling_run, seed=seed, vocab_size=V, block_size=16, context=context, max_new_tokens=1,
                        temperature=temperature, timeout=60)
        expected = softmax(np.asarray(found["table"])[3] / temperature)
        freq = frequencies(np.asarray(found["out"])[:, -1], V)
        worst = int(np.argmax(np.abs(freq - expected)))
        check(np.abs(freq - expected).max() < 0.035,
              f"with temperature {temperature}, token {worst} was sampled {freq[worst]:.3f} of the time over {n} "
              f"draws, expected {expected[worst]:.3f} = softmax(logits / temperature)")


@pytest.mark.exercise("generation")
def test_context_is_cropped_to_the_last_block_size_tokens(student, seed):
    """A model sees at most block_size tokens: when idx is longer, generate passes it idx[:, -block_size:], the LAST block_size tokens (a shorter idx is passed whole)."""
    for context, block_size in (([[1, 2, 3, 4, 5, 0, 6], [6, 5, 4, 3, 2, 1, 0]], 4), ([[3, 1]], 4)):
        found = student(sampling_run, seed=seed, vocab_size=7, block_size=block_size, context=context,
                        max_new_tokens=6)
        out, T = np.asarray(found["out"]), len(context[0])
        check(len(found["calls"]) == 6, f"the model was called {len(found['calls'])} times for 6 new tokens")
        for i, received in enumerate(found["calls"]):
            so_far = out[:, :T + i]
            wanted = so_far[:, -block_size:]
            received = np.asarray(received)
            check(received.shape == wanted.shape and np.array_equal(received, wanted),
                  f"at step {i + 1} the sequence was {so_far[0].tolist()} and block_size is {block_size}: the model "
                  f"should get {wanted[0].tolist()}, it got {received[0].tolist()}")
