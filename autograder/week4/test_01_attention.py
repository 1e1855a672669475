"""Hidden tests for week4/01_attention: self-attention, multi-head attention and the encoder-decoder transformer.

Every probe builds its inputs from `seed` in float64 and compares the submission with PyTorch where PyTorch
computes the same thing (F.scaled_dot_product_attention, nn.MultiheadAttention with the same weights) and with
the reference elsewhere. Shapes are chosen to expose bugs: query length != key length, size of the queries !=
size of the values, model width != head size, batches of one, masks that are neither all-True nor symmetric,
scores of size 1e4, random upstream gradients. Boolean masks are True where a query MAY attend to a key. Devices
are tested on PyTorch's "meta" device, which every machine has.
"""
import pytest

from course.testing import assert_close, check, is_finite, probe
from probes import device_mixing, forbidding


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
def make_mask(seed, kind, shape):
    """A bool mask (True = may attend) of `shape` [..., Lq, Lk], or None for kind "none".

    "causal": lower-triangular; "random": about half True, never all True in a row, and at least one True per
    row; "padding": the last two keys hidden from every query.
    """
    import torch
    if kind == "none":
        return None
    lq, lk = shape[-2:]
    if kind == "causal":
        return torch.ones(lq, lk, dtype=torch.bool).tril().expand(*shape).clone()
    if kind == "padding":
        mask = torch.ones(*shape, dtype=torch.bool)
        mask[..., lk - 2:] = False
        return mask
    g = torch.Generator().manual_seed(seed + 7)
    rank = torch.rand(*shape, generator=g).argsort(dim=-1).argsort(dim=-1)         # a random order of the keys
    allowed = torch.randint(1, max(lk, 2), (*shape[:-1], 1), generator=g)           # 1 .. lk-1 keys per query
    mask = rank < allowed
    return mask


@probe
def softmax_case(nb, seed):
    """nb.softmax on rows of scores up to 1e4 in size (some -inf), along the last dimension and along dim=1 of a
    3-D tensor, next to torch.softmax."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 9, generator=g, dtype=torch.float64) * torch.logspace(0, 4, 6, dtype=torch.float64)[:, None]
    x[1, 3] = x[4, 0] = x[4, 8] = float("-inf")
    y = torch.randn(2, 5, 3, generator=g, dtype=torch.float64) * 3
    y[0, 2, 1] = float("-inf")
    given = (x.clone(), y.clone())
    rows, along_1 = nb.softmax(x, dim=-1), nb.softmax(y, dim=1)
    return {"rows": torch.as_tensor(rows).to(torch.float64), "torch_rows": torch.softmax(given[0], dim=-1),
            "along_1": torch.as_tensor(along_1).to(torch.float64), "torch_along_1": torch.softmax(given[1], dim=1),
            "unchanged": bool(torch.equal(x, given[0]) and torch.equal(y, given[1]))}


@probe
def attention_case(nb, seed, q_shape, k_shape, v_shape, mask_kind="none", mask_shape=None, scale=1.0):
    """nb.scaled_dot_product_attention(q, k, v, mask) and F.scaled_dot_product_attention on the same inputs."""
    import torch
    import torch.nn.functional as F
    q, k, v = gaussians(seed, [q_shape, k_shape, v_shape])
    q, k = scale * q, scale * k
    mask = make_mask(seed, mask_kind, mask_shape or [q_shape[-2], k_shape[-2]])
    args = (q.clone(), k.clone(), v.clone())
    out, weights = nb.scaled_dot_product_attention(*args, mask) if mask is not None else \
        nb.scaled_dot_product_attention(*args)
    return {"out": torch.as_tensor(out).to(torch.float64), "weights": torch.as_tensor(weights).to(torch.float64),
            "torch_out": F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            "mask": torch.zeros(0) if mask is None else
            torch.broadcast_to(mask, q_shape[:-1] + [k_shape[-2]]).to(torch.float64)}


@probe
def softmax_forbidden(nb, seed):
    """nb.softmax (rows of scores up to 1e3 in size) and nb.scaled_dot_product_attention (with a random mask) on
    float64 inputs while PyTorch's softmax (torch.softmax, F.softmax, torch.special.softmax, Tensor.softmax) raises
    when called: which of them they called, the first error, and their outputs."""
    import torch
    import torch.nn.functional as F
    x = gaussians(seed, [[5, 7]])[0] * torch.logspace(0, 3, 5, dtype=torch.float64)[:, None]
    q, k, v = gaussians(seed + 1, [[2, 5, 4], [2, 6, 4], [2, 6, 3]])
    mask = make_mask(seed, "random", [5, 6])
    targets = [(owner, "softmax", label + "softmax")
               for owner, label in ((torch, "torch."), (F, "F."), (torch.special, "torch.special."), (torch.Tensor, "Tensor."))]

    def run():
        rows = torch.as_tensor(nb.softmax(x.clone(), dim=-1)).to(torch.float64)
        out, weights = nb.scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), mask)
        return rows, torch.as_tensor(out).to(torch.float64), torch.as_tensor(weights).to(torch.float64)

    called, error, found = forbidding(nb, targets, run)
    rows, out, weights = found or (torch.zeros(0),) * 3
    return {"called": called, "error": error, "rows": rows, "out": out, "weights": weights}


@probe
def attention_grads(nb, seed, q_shape, k_shape, v_shape, mask_kind):
    """Gradients of nb.scaled_dot_product_attention's output for a random upstream gradient, and autograd's
    through F.scaled_dot_product_attention."""
    import torch
    import torch.nn.functional as F
    q, k, v = gaussians(seed, [q_shape, k_shape, v_shape])
    mask = make_mask(seed, mask_kind, [q_shape[-2], k_shape[-2]])
    ours = [t.clone().requires_grad_(True) for t in (q, k, v)]
    theirs = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out, _ = nb.scaled_dot_product_attention(*ours, mask)
    expected = F.scaled_dot_product_attention(*theirs, attn_mask=mask)
    dout = gaussians(seed + 1, [list(expected.shape)])[0]
    out.backward(dout)
    expected.backward(dout)
    grad = (lambda t: torch.zeros(0) if t.grad is None else t.grad)
    return {"dq": grad(ours[0]), "dk": grad(ours[1]), "dv": grad(ours[2]),
            "torch_dq": theirs[0].grad, "torch_dk": theirs[1].grad, "torch_dv": theirs[2].grad}


@probe
def seed_parameters(module, seed):
    """Give every parameter of `module`, in sorted name order, seeded values scaled by 1/sqrt(fan-in); buffers
    (a stored mask, say) are left alone."""
    import math
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(module.named_parameters()):
            fan_in = t.shape[-1] if t.dim() > 1 else 4
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in))
    return {name: list(t.shape) for name, t in sorted(module.named_parameters())}


@probe
def causal_mask_case(nb, sizes):
    """nb.causal_mask(T) for each T: its dtype and its entries as 0.0 / 1.0."""
    import torch
    masks = [torch.as_tensor(nb.causal_mask(T)) for T in sizes]
    return {"dtypes": [str(m.dtype) for m in masks], "masks": [m.to(torch.float64) for m in masks]}


@probe
def state_shapes(nb, cls, args):
    """Names and shapes of the parameters of nb.<cls>(*args)."""
    module = getattr(nb, cls)(*args)
    return {name: list(t.shape) for name, t in sorted(module.named_parameters())}


@probe
def copy_parameters(module, values):
    """Copy `values` (a dict name -> tensor) into the parameters of `module` of the same names."""
    import torch
    mine = dict(module.named_parameters())
    missing = sorted(set(values) - set(mine))
    if missing:
        raise AttributeError(f"{type(module).__name__} has no parameter {', '.join(missing)}")
    with torch.no_grad():
        for name, t in values.items():
            mine[name].copy_(t)


@probe
def head_case(nb, seed, n_embd, head_size, n, T):
    """A float64 Head given seeded weights: its output, the gradients of a random upstream gradient, and
    F.scaled_dot_product_attention(is_causal=True) on the head's own projections."""
    import torch
    import torch.nn.functional as F
    head = nb.Head(n_embd, head_size).double()
    shapes = seed_parameters(head, seed)
    x = gaussians(seed + 1, [[n, T, n_embd]])[0].requires_grad_(True)
    out = head(x)
    out.backward(gaussians(seed + 2, [list(out.shape)])[0])
    with torch.no_grad():
        xd = x.detach()
        q, k, v = (xd @ getattr(head, name).weight.T for name in ("query", "key", "value"))
        torch_out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    grads = {name: p.grad if p.grad is not None else torch.zeros(0) for name, p in sorted(head.named_parameters())}
    return {"state_dict": shapes, "out": out.detach(), "torch_out": torch_out,
            "dx": x.grad if x.grad is not None else torch.zeros(0), "grads": grads}


@probe
def causality_case(nb, seed, kind, n_embd, size, T):
    """For each position t, change the input at t (for a Head(n_embd, size), or a MultiHeadAttention(n_embd, size)
    with a lower-triangular mask built here) and measure how much the outputs before t and at t moved; the outputs
    for the unchanged input too."""
    import torch
    if kind == "head":
        model = nb.Head(n_embd, size).double()
        run = model
    else:
        model = nb.MultiHeadAttention(n_embd, size).double()
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        run = (lambda x: model(x, mask))
    seed_parameters(model, seed)
    x = gaussians(seed + 1, [[2, T, n_embd]])[0]
    with torch.no_grad():
        base = run(x)
        before, at = [], []
        for t in range(T):
            moved = x.clone()
            moved[:, t] += gaussians(seed + 2 + t, [[2, n_embd]])[0]
            change = (run(moved) - base).abs().amax(dim=(0, 2))      # [T]: the largest change per position
            before.append(change[:t].max().item() if t > 0 else 0.0)
            at.append(change[t].item())
    return {"finite": bool(torch.isfinite(base).all()),
            "nan_rows": torch.isnan(base).any(dim=(0, 2)).nonzero().flatten().tolist(),
            "before": before, "at": at, "out": base}


@probe
def head_on_meta(nb, seed):
    """causal_mask(3, device="meta")'s device, and a Head(12, 4) run on PyTorch's "meta" device (as on a GPU):
    the device of its output and the torch functions that met tensors of two devices. Then, on the CPU,
    causal_mask(5, device="cpu") as 0.0 / 1.0 and the output of a float64 Head(12, 4) given seeded weights."""
    import torch
    try:
        mask_device = str(nb.causal_mask(3, device="meta").device)
    except Exception as error:
        mask_device = f"{type(error).__name__}: {error}"
    head = nb.Head(12, 4).to("meta")
    mode = device_mixing()
    try:
        with mode:
            out = str(head(torch.zeros(2, 5, 12, device="meta")).device)
    except RuntimeError as error:                       # two devices in one operation: recorded by the mode
        out = f"nothing ({error})"
    on_cpu = nb.Head(12, 4).double()
    seed_parameters(on_cpu, seed)
    with torch.no_grad():
        values = on_cpu(gaussians(seed + 1, [[2, 5, 12]])[0])
    return {"mask": mask_device, "out": out, "mixed": mode.mixed,
            "mask_on_cpu": torch.as_tensor(nb.causal_mask(5, device="cpu")).to(torch.float64),
            "out_on_cpu": torch.as_tensor(values).to(torch.float64)}


@probe
def split_merge_case(nb, seed, n, T, C, n_head):
    """split_heads and merge_heads on random tensors, and the split written out by slicing features."""
    import torch
    hs = C // n_head
    x, y = gaussians(seed, [[n, T, C], [n, n_head, T, hs]])
    split = nb.split_heads(x.clone(), n_head)
    by_slices = torch.stack([x[:, :, h * hs:(h + 1) * hs] for h in range(n_head)], dim=1)
    return {"split": torch.as_tensor(split).to(torch.float64), "by_slices": by_slices,
            "round_trip": torch.as_tensor(nb.merge_heads(split)).to(torch.float64), "x": x,
            "merged": torch.as_tensor(nb.merge_heads(y.clone())).to(torch.float64),
            "merged_by_cat": torch.cat(list(y.unbind(dim=1)), dim=-1)}


@probe
def torch_mha(seed, n_embd, n_head, bias):
    """A float64 nn.MultiheadAttention(batch_first=True) whose every parameter (biases included) is seeded."""
    import torch
    import torch.nn as nn
    mha = nn.MultiheadAttention(n_embd, n_head, bias=bias, batch_first=True, dtype=torch.float64)
    seed_parameters(mha, seed)
    return mha


@probe
def mha_case(nb, seed, n_embd, n_head, n, T, mask_kind="none", bias=True):
    """nb.MultiHeadAttention given nn.MultiheadAttention's weights (qkv <- in_proj, proj <- out_proj): both outputs
    for one x, with the mask (True = may attend; ~mask for PyTorch), and both sets of gradients for a random
    upstream gradient."""
    import torch
    mha = torch_mha(seed, n_embd, n_head, bias)
    ours = nb.MultiHeadAttention(n_embd, n_head, bias=bias).double()
    names = {"qkv.weight": "in_proj_weight", "qkv.bias": "in_proj_bias", "proj.weight": "out_proj.weight",
             "proj.bias": "out_proj.bias"}
    theirs = dict(mha.named_parameters())
    copy_parameters(ours, {name: theirs[t] for name, t in names.items() if t in theirs})
    x = gaussians(seed + 1, [[n, T, n_embd]])[0]
    mask = make_mask(seed, mask_kind, [T, T])
    xo, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = ours(xo) if mask is None else ours(xo, mask)
    expected = mha(xt, xt, xt, attn_mask=None if mask is None else ~mask, need_weights=False)[0]
    dout = gaussians(seed + 2, [list(expected.shape)])[0]
    out.backward(dout)
    expected.backward(dout)
    mine = dict(ours.named_parameters())
    grad = (lambda t: torch.zeros(0) if t is None or t.grad is None else t.grad)
    return {"out": out.detach(), "torch_out": expected.detach(), "dx": grad(xo), "torch_dx": xt.grad,
            "grads": {name: grad(mine.get(name)) for name, t in names.items() if t in theirs},
            "torch_grads": {name: theirs[t].grad for name, t in names.items() if t in theirs}}


@probe
def positions_case(nb, cases):
    """nb.sinusoidal_positions(T, d) for each [T, d] (its dtype, then its values in float64), and the formula of
    Vaswani et al. in float64."""
    import torch
    found, formula, dtypes = [], [], []
    for T, d in cases:
        pe = torch.as_tensor(nb.sinusoidal_positions(T, d))
        dtypes.append(str(pe.dtype))
        found.append(pe.to(torch.float64))
        pos = torch.arange(T, dtype=torch.float64)[:, None]
        angle = pos / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        formula.append(torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(T, d))
    return {"found": found, "formula": formula, "dtypes": dtypes}


@probe
def positions_speed(nb, cases, most):
    """Best times of nb.sinusoidal_positions(T, d) and of the same table built here with one broadcast, called in
    turns, for each [T, d]; too_slow: over `most` times the broadcast's time."""
    import time
    import torch

    def table(T, d):
        angle = torch.arange(T, dtype=torch.float32)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(T, d)

    found = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for T, d in cases:
            times = {"reference_seconds": [], "student_seconds": []}
            spent, rounds = 0.0, 0
            while rounds < 8 and (rounds < 3 or spent < 0.75):     # at least 3 rounds, at most 8, about 0.75 s
                for name, fn in (("reference_seconds", table), ("student_seconds", nb.sinusoidal_positions)):
                    start = time.perf_counter()
                    fn(T, d)
                    times[name].append(time.perf_counter() - start)
                    spent += times[name][-1]
                rounds += 1
            case = {name: min(t[1:]) for name, t in times.items()}    # the first round warms up
            case["too_slow"] = case["student_seconds"] > most * case["reference_seconds"]
            found[f"{T}x{d}"] = case
    finally:
        torch.set_num_threads(threads)
    return found


@probe
def cross_case(nb, seed, n_embd, n_head, n, lq, lk, mask_kind="none", bias=True):
    """nb.CrossAttention given nn.MultiheadAttention's weights (query <- in_proj[:C], key_value <- in_proj[C:],
    proj <- out_proj): both outputs for decoder states x [n, lq, C] and encoder states memory [n, lk, C], and
    both sets of gradients for a random upstream gradient."""
    import torch
    mha = torch_mha(seed, n_embd, n_head, bias)
    ours = nb.CrossAttention(n_embd, n_head, bias=bias).double()
    theirs = dict(mha.named_parameters())
    C = n_embd
    state = {"query.weight": theirs["in_proj_weight"][:C], "key_value.weight": theirs["in_proj_weight"][C:],
             "proj.weight": theirs["out_proj.weight"]}
    if bias:
        state.update({"query.bias": theirs["in_proj_bias"][:C], "key_value.bias": theirs["in_proj_bias"][C:],
                      "proj.bias": theirs["out_proj.bias"]})
    copy_parameters(ours, state)
    x, memory = gaussians(seed + 1, [[n, lq, C], [n, lk, C]])
    mask = make_mask(seed, mask_kind, [lq, lk])
    xo, mo = x.clone().requires_grad_(True), memory.clone().requires_grad_(True)
    xt, mt = x.clone().requires_grad_(True), memory.clone().requires_grad_(True)
    out = ours(xo, mo) if mask is None else ours(xo, mo, mask)
    expected = mha(xt, mt, mt, attn_mask=None if mask is None else ~mask, need_weights=False)[0]
    dout = gaussians(seed + 2, [list(expected.shape)])[0]
    out.backward(dout)
    expected.backward(dout)
    grad = (lambda t: torch.zeros(0) if t is None or t.grad is None else t.grad)
    mine = dict(ours.named_parameters())
    return {"out": out.detach(), "torch_out": expected.detach(), "dx": grad(xo), "torch_dx": xt.grad,
            "dmemory": grad(mo), "torch_dmemory": mt.grad,
            "dweight_q": grad(mine.get("query.weight")), "torch_dweight_q": theirs["in_proj_weight"].grad[:C],
            "dweight_kv": grad(mine.get("key_value.weight")), "torch_dweight_kv": theirs["in_proj_weight"].grad[C:]}


@probe
def cross_dependence(nb, seed, n_embd, n_head, lq, lk):
    """How much each output of a seeded CrossAttention moves when one decoder position i changes ([lq, lq]: row i,
    column p), and when one encoder position changes ([lk, lq]); the outputs for the unchanged inputs too."""
    import torch
    model = nb.CrossAttention(n_embd, n_head).double()
    seed_parameters(model, seed)
    x, memory = gaussians(seed + 1, [[1, lq, n_embd], [1, lk, n_embd]])
    with torch.no_grad():
        base = model(x, memory)
        by_query, by_key = [], []
        for i in range(lq):
            moved = x.clone()
            moved[:, i] += gaussians(seed + 2 + i, [[n_embd]])[0]
            by_query.append((model(moved, memory) - base).abs().amax(dim=(0, 2)).tolist())
        for j in range(lk):
            moved = memory.clone()
            moved[:, j] += gaussians(seed + 50 + j, [[n_embd]])[0]
            by_key.append((model(x, moved) - base).abs().amax(dim=(0, 2)).tolist())
    return {"shape": list(base.shape), "by_query": by_query, "by_key": by_key, "out": base}


# ---------------------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------------------

def _agree_with_torch(student, reference, case, names=("out",), tol=1e-10, what="scaled_dot_product_attention",
                      **kwargs):
    found = student(case, **kwargs)
    expected = reference(case, **kwargs)
    where = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "seed")
    for name in names:
        assert_close(expected[name], expected[f"torch_{name}"], atol=tol, rtol=tol,
                     what=f"the reference's {name} against PyTorch")
        assert_close(found[name], expected[f"torch_{name}"], atol=tol, rtol=tol,
                     what=f"{what}'s {name} for {where}, next to PyTorch")
    return found, expected


@pytest.mark.exercise("attention")
def test_softmax_is_stable(student, reference, seed):
    """softmax(x, dim) must subtract the maximum of each slice along `dim` (not of the whole tensor) before exp: scores of 1e4 overflow exp otherwise; -inf entries get weight 0."""
    found = student(softmax_case, seed=seed)
    check(found["unchanged"], "softmax changed its input in place: compute on a new tensor")
    check(is_finite(found["rows"]), "softmax returned nan or inf on rows of scores up to 1e4 in size: subtract each "
                                    "row's own maximum (amax over `dim`, keepdim=True) before exp")
    for name in ("rows", "along_1"):
        assert_close(found[name], found[f"torch_{name}"], atol=1e-12, rtol=1e-10,
                     what=f"softmax ({'dim=-1, scores up to 1e4 and some -inf' if name == 'rows' else 'dim=1 of a 3-D tensor'}) next to torch.softmax")


@pytest.mark.exercise("attention")
def test_softmax_is_written_by_hand(student, reference, seed):
    """softmax is written by hand and the attention uses it: neither may call PyTorch's own softmax (torch.softmax, F.softmax or x.softmax), which is only there to compare with."""
    found = student(softmax_forbidden, seed=seed)
    check(not found["called"], f"softmax or scaled_dot_product_attention called {', '.join(found['called'])}: compute "
                               "the softmax yourself and use your softmax in the attention")
    check(not found["error"], f"softmax or scaled_dot_product_attention failed: {found['error']}")
    expected = reference(softmax_forbidden, seed=seed)
    assert_close(found["rows"], expected["rows"], atol=1e-12, rtol=1e-10,
                 what="softmax of rows of scores up to 1e3 in size (dim=-1)")
    assert_close({"out": found["out"], "weights": found["weights"]},
                 {"out": expected["out"], "weights": expected["weights"]}, atol=1e-10, rtol=1e-10,
                 what="scaled_dot_product_attention for q [2, 5, 4], k [2, 6, 4], v [2, 6, 3] with a random mask")


@pytest.mark.exercise("attention")
def test_attention_matches_sdpa(student, reference, seed):
    """scaled_dot_product_attention(q, k, v) must equal F.scaled_dot_product_attention: softmax(q kᵀ / sqrt(d_k)) v, with batch and head dimensions in front (or none), query length != key length."""
    cases = [dict(q_shape=[2, 3, 5, 6], k_shape=[2, 3, 7, 6], v_shape=[2, 3, 7, 4]),
             dict(q_shape=[4, 6], k_shape=[5, 6], v_shape=[5, 3]),
             dict(q_shape=[1, 1, 3], k_shape=[1, 8, 3], v_shape=[1, 8, 5])]
    for case in cases:
        _agree_with_torch(student, reference, attention_case, seed=seed, **case)


@pytest.mark.exercise("attention")
def test_attention_weights_are_a_softmax_over_keys(student, reference, seed):
    """The weights [..., Lq, Lk] are the softmax of the scaled scores over the KEYS (the last dimension): each row, one query, is non-negative and sums to 1."""
    case = dict(q_shape=[2, 5, 6], k_shape=[2, 8, 6], v_shape=[2, 8, 3])
    found = student(attention_case, seed=seed, **case)
    expected = reference(attention_case, seed=seed, **case)
    w = found["weights"]
    check(tuple(w.shape) == (2, 5, 8), f"the weights for q [2, 5, 6], k [2, 8, 6] should have shape [2, 5, 8] "
                                       f"(queries x keys), found {list(w.shape)}")
    rows, columns = w.sum(axis=-1), w.sum(axis=-2)
    if abs(rows - 1).max() > 1e-9 and abs(columns - 1).max() < 1e-9:
        raise AssertionError("the columns of the weights (one key each) sum to 1, not the rows: the softmax runs over "
                             "the queries; take it over the keys, the last dimension")
    check(abs(rows - 1).max() < 1e-9 and w.min() >= 0, f"each row of the weights should be non-negative and sum to "
                                                        f"1, found row sums from {rows.min():.4g} to {rows.max():.4g}")
    assert_close(w, expected["weights"], atol=1e-10, rtol=1e-10, what="the attention weights for q [2, 5, 6], k [2, 8, 6]")


@pytest.mark.exercise("attention")
def test_attention_scaling(student, reference, seed):
    """The scores are divided by sqrt(d_k), d_k = q.shape[-1], the size of one query or key (the head size): not by d_k, not by the size of the values, and not left unscaled."""
    cases = [dict(q_shape=[2, 5, 64], k_shape=[2, 6, 64], v_shape=[2, 6, 3]),
             dict(q_shape=[3, 4, 9], k_shape=[3, 4, 9], v_shape=[3, 4, 16]),
             dict(q_shape=[2, 4, 1], k_shape=[2, 5, 1], v_shape=[2, 5, 2])]
    for case in cases:
        _agree_with_torch(student, reference, attention_case, seed=seed, **case)


@pytest.mark.exercise("attention")
def test_attention_mask_polarity(student, reference, seed):
    """A mask is True where a query MAY attend (F.scaled_dot_product_attention's convention, the opposite of nn.MultiheadAttention's): fill the scores where it is False with -inf before the softmax, so those weights are exactly 0."""
    cases = [dict(q_shape=[2, 3, 5, 4], k_shape=[2, 3, 8, 4], v_shape=[2, 3, 8, 3], mask_kind="random"),
             dict(q_shape=[2, 3, 6, 4], k_shape=[2, 3, 7, 4], v_shape=[2, 3, 7, 5], mask_kind="random",
                  mask_shape=[2, 1, 6, 7]),
             dict(q_shape=[1, 6, 5], k_shape=[1, 6, 5], v_shape=[1, 6, 2], mask_kind="causal")]
    for case in cases:
        found = student(attention_case, seed=seed, **case)
        w, allowed = found["weights"], found["mask"] > 0.5
        check(w.shape == allowed.shape, f"the weights have shape {list(w.shape)}, expected {list(allowed.shape)}")
        on_forbidden, on_allowed = abs(w[~allowed]).max(initial=0), abs(w[allowed]).max(initial=0)
        if on_forbidden > 0 and on_allowed == 0:
            raise AssertionError("the weights are 0 exactly where the mask is True: the mask is inverted. Here True "
                                 "means MAY attend (as in F.scaled_dot_product_attention); nn.MultiheadAttention's "
                                 "boolean masks mean the opposite")
        check(on_forbidden == 0, f"keys the mask forbids (False) still get weights up to {on_forbidden:.3g}: set "
                                 "their scores to -inf before the softmax (0 is an ordinary score, exp(0) = 1)")
        _agree_with_torch(student, reference, attention_case, seed=seed, **case)


@pytest.mark.exercise("attention")
def test_attention_large_scores(student, reference, seed):
    """Scores of size 1e4 must not give nan or inf: the softmax subtracts each row's maximum before exp (exp overflows above 709 in float64)."""
    case = dict(q_shape=[2, 5, 4], k_shape=[2, 7, 4], v_shape=[2, 7, 3], scale=100.0)
    found = student(attention_case, seed=seed, **case)
    check(is_finite(found["out"]) and is_finite(found["weights"]),
          "with scores of size 1e4 the attention returned nan or inf: subtract each row's maximum before exp")
    _agree_with_torch(student, reference, attention_case, seed=seed, tol=1e-9, **case)
    case = dict(q_shape=[3, 6, 2], k_shape=[3, 6, 2], v_shape=[3, 6, 2], scale=100.0, mask_kind="causal")
    _agree_with_torch(student, reference, attention_case, seed=seed, tol=1e-9, **case)


@pytest.mark.exercise("attention")
def test_attention_gradients(student, reference, seed):
    """Gradients of the output with respect to q, k and v, for a random upstream gradient, must equal autograd's through F.scaled_dot_product_attention: use differentiable tensor operations (no .detach(), .data or in-place writes on what autograd saved)."""
    for kind in ("none", "random"):
        _agree_with_torch(student, reference, attention_grads, names=("dq", "dk", "dv"), seed=seed,
                          q_shape=[2, 2, 5, 6], k_shape=[2, 2, 7, 6], v_shape=[2, 2, 7, 3], mask_kind=kind)


# ---------------------------------------------------------------------------------------------------------
# causal_head
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("causal_head")
def test_causal_mask(student, reference):
    """causal_mask(T) is a bool [T, T] tensor, True on and below the diagonal: position i may attend to j <= i (itself included), never to j > i."""
    sizes = [1, 2, 3, 6, 9]
    found = student(causal_mask_case, sizes=sizes)
    expected = reference(causal_mask_case, sizes=sizes)
    check(all(d == "torch.bool" for d in found["dtypes"]), f"causal_mask should return a bool tensor, found "
                                                          f"{found['dtypes'][-1]}")
    for T, f, e in zip(sizes, found["masks"], expected["masks"]):
        check(f.shape == e.shape, f"causal_mask({T}) has shape {list(f.shape)}, expected [{T}, {T}]")
        if (f != e).any():
            i, j = [int(a[0]) for a in (f != e).nonzero()]
            raise AssertionError(f"causal_mask({T})[{i}, {j}] is {bool(f[i, j])}, expected {bool(e[i, j])}: True "
                                 "exactly where j <= i (the diagonal included)")


@pytest.mark.exercise("causal_head")
def test_head_parameters(student, reference):
    """Head(n_embd, head_size) holds query, key and value: nn.Linear(n_embd, head_size, bias=False) each, and nothing else."""
    for args in ([12, 5], [7, 7], [16, 3]):
        found = student(state_shapes, cls="Head", args=args)
        expected = reference(state_shapes, cls="Head", args=args)
        check(sorted(found) == sorted(expected), f"Head{tuple(args)} holds {sorted(found)}, expected "
                                                 f"{sorted(expected)} (bias=False)")
        assert_close(found, expected, atol=0, rtol=0, what=f"the shapes of Head{tuple(args)}'s weights")


@pytest.mark.exercise("causal_head")
def test_head_forward(student, reference, seed):
    """Head.forward projects x to q, k, v of head_size features and returns the causal attention of them, scaled by 1/sqrt(head_size) (not the model width): compared with F.scaled_dot_product_attention(is_causal=True) on the head's own projections."""
    for n_embd, head_size, n, T in [(12, 5, 3, 7), (16, 3, 1, 1), (10, 10, 2, 9)]:
        found = student(head_case, seed=seed, n_embd=n_embd, head_size=head_size, n=n, T=T)
        expected = reference(head_case, seed=seed, n_embd=n_embd, head_size=head_size, n=n, T=T)
        assert_close(expected["out"], expected["torch_out"], atol=1e-10, rtol=1e-10, what="the reference's head")
        assert_close(found["out"], found["torch_out"], atol=1e-10, rtol=1e-10,
                     what=f"Head({n_embd}, {head_size}) on x [{n}, {T}, {n_embd}], next to "
                          "F.scaled_dot_product_attention(q, k, v, is_causal=True)")


@pytest.mark.exercise("causal_head")
def test_head_is_causal(student, reference, seed):
    """Changing the input at position t must leave every output before t unchanged (no peeking at the future) and change the output at t (a position sees itself); the outputs are the causal attention of the head's projections."""
    found = student(causality_case, seed=seed, kind="head", n_embd=12, size=5, T=7)
    check(found["finite"], f"the head's output is nan at positions {found['nan_rows']}: every position must be allowed "
                           "to attend to at least itself (keep the diagonal of the mask)")
    for t, (before, at) in enumerate(zip(found["before"], found["at"])):
        check(before <= 1e-12, f"changing the token at position {t} changed the outputs before it (by up to "
                               f"{before:.3g}): an earlier position attends to a later one")
        check(at > 1e-9, f"changing the token at position {t} left the output at {t} unchanged")
    expected = reference(causality_case, seed=seed, kind="head", n_embd=12, size=5, T=7)
    assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-10,
                 what="Head(12, 5) on x [2, 7, 12], with the reference's weights")


@pytest.mark.exercise("causal_head")
def test_head_gradients(student, reference, seed):
    """Backpropagating a random upstream gradient through Head gives the reference's gradients for x and for the query, key and value weights."""
    for n_embd, head_size, n, T in [(12, 5, 2, 6), (8, 4, 1, 3)]:
        found = student(head_case, seed=seed, n_embd=n_embd, head_size=head_size, n=n, T=T)
        expected = reference(head_case, seed=seed, n_embd=n_embd, head_size=head_size, n=n, T=T)
        assert_close({"dx": found["dx"], "grads": found["grads"]}, {"dx": expected["dx"], "grads": expected["grads"]},
                     atol=1e-10, rtol=1e-9, what=f"the gradients of Head({n_embd}, {head_size}) on x [{n}, {T}, {n_embd}]")


@pytest.mark.exercise("causal_head")
def test_causal_mask_and_head_on_the_device_of_their_input(student, reference, seed):
    """causal_mask(T, device) creates its mask on `device`, and Head builds its mask on the device of x (causal_mask(T, x.device)): tested on PyTorch's "meta" device, as on a GPU; on the CPU the mask and the head's output are the reference's."""
    found = student(head_on_meta, seed=seed)
    check(found["mask"] == "meta", f"causal_mask(3, device='meta') returned a mask on {found['mask']}: create it "
                                   "with device=device")
    check(not found["mixed"], f"on another device than the CPU, the head combined its tensors with a mask on the CPU "
                              f"({'; '.join(found['mixed'][:3])}): build the mask on x.device")
    check(found["out"] == "meta", f"Head on x on the meta device returned its output on {found['out']}")
    expected = reference(head_on_meta, seed=seed)
    assert_close(found["mask_on_cpu"], expected["mask_on_cpu"], atol=0, rtol=0,
                 what="causal_mask(5, device='cpu') (1: True, 0: False)")
    assert_close(found["out_on_cpu"], expected["out_on_cpu"], atol=1e-10, rtol=1e-10,
                 what="Head(12, 4) on x [2, 5, 12] on the CPU, with the reference's weights")


# ---------------------------------------------------------------------------------------------------------
# multi_head
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("multi_head")
def test_split_and_merge_heads(student, seed):
    """split_heads gives head h the features h*hs .. (h+1)*hs - 1 of every position, as [N, n_head, T, hs] (view as [N, T, n_head, hs], then transpose(1, 2)); merge_heads puts them back side by side: merge_heads(split_heads(x)) == x."""
    for n, T, C, n_head in [(2, 5, 12, 3), (1, 4, 8, 4), (3, 2, 6, 1)]:
        found = student(split_merge_case, seed=seed, n=n, T=T, C=C, n_head=n_head)
        assert_close(found["split"], found["by_slices"], atol=0, rtol=0,
                     what=f"split_heads(x [{n}, {T}, {C}], {n_head}) next to slicing x's features head by head")
        assert_close(found["merged"], found["merged_by_cat"], atol=0, rtol=0,
                     what=f"merge_heads of [{n}, {n_head}, {T}, {C // n_head}] next to concatenating the heads' features")
        assert_close(found["round_trip"], found["x"], atol=0, rtol=0, what="merge_heads(split_heads(x))")


@pytest.mark.exercise("multi_head")
def test_multi_head_parameters(student, reference):
    """MultiHeadAttention(n_embd, n_head, bias) holds qkv = nn.Linear(n_embd, 3 * n_embd) and proj = nn.Linear(n_embd, n_embd), both with bias=bias, and nothing else."""
    for args in ([12, 4, True], [12, 3, False], [8, 1, True]):
        found = student(state_shapes, cls="MultiHeadAttention", args=args)
        expected = reference(state_shapes, cls="MultiHeadAttention", args=args)
        check(sorted(found) == sorted(expected), f"MultiHeadAttention{tuple(args)} holds {sorted(found)}, expected "
                                                 f"{sorted(expected)}")
        assert_close(found, expected, atol=0, rtol=0, what=f"the shapes of MultiHeadAttention{tuple(args)}'s tensors")


@pytest.mark.exercise("multi_head")
def test_multi_head_matches_nn_multihead(student, reference, seed):
    """With nn.MultiheadAttention's weights copied in (qkv <- in_proj_weight, in_proj_bias; proj <- out_proj), MultiHeadAttention gives its output: q, k, v chunked in this order, split into heads, attention per head (scaled by the head size), heads merged, then the output projection."""
    for C, h, n, T, bias in [(12, 4, 3, 7, True), (20, 5, 1, 5, True), (8, 1, 2, 6, True), (12, 3, 2, 4, False)]:
        _agree_with_torch(student, reference, mha_case, what="MultiHeadAttention", seed=seed, n_embd=C, n_head=h,
                          n=n, T=T, bias=bias)


@pytest.mark.exercise("multi_head")
def test_multi_head_mask_matches_nn_multihead(student, reference, seed):
    """MultiHeadAttention(x, mask) passes the mask [T, T] (True = may attend) to the attention of every head; nn.MultiheadAttention gets ~mask, since its boolean masks mean the opposite."""
    for C, h, n, T, kind in [(12, 4, 2, 6, "causal"), (12, 3, 3, 7, "random")]:
        _agree_with_torch(student, reference, mha_case, what="MultiHeadAttention", seed=seed, n_embd=C, n_head=h,
                          n=n, T=T, mask_kind=kind)


@pytest.mark.exercise("multi_head")
def test_multi_head_is_causal_with_causal_mask(student, reference, seed):
    """With a lower-triangular mask, changing the input at position t leaves the outputs before t unchanged, in every head; the outputs are those of the heads' masked attention, merged and projected."""
    found = student(causality_case, seed=seed, kind="multi_head", n_embd=12, size=4, T=6)
    check(found["finite"], f"MultiHeadAttention's output is nan at positions {found['nan_rows']}")
    for t, before in enumerate(found["before"]):
        check(before <= 1e-12, f"with a causal mask, changing the input at position {t} changed the outputs before "
                               f"it (by up to {before:.3g}): is the mask applied to every head?")
    expected = reference(causality_case, seed=seed, kind="multi_head", n_embd=12, size=4, T=6)
    assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-10,
                 what="MultiHeadAttention(12, 4) with a causal mask on x [2, 6, 12], with the reference's weights")


@pytest.mark.exercise("multi_head")
def test_multi_head_gradients(student, reference, seed):
    """Backpropagating a random upstream gradient through MultiHeadAttention gives nn.MultiheadAttention's gradients for x, for qkv (in_proj) and for proj (out_proj)."""
    for C, h, n, T, kind in [(12, 4, 2, 5, "none"), (12, 6, 1, 6, "causal")]:
        _agree_with_torch(student, reference, mha_case, names=("dx", "grads"), what="MultiHeadAttention", seed=seed,
                          n_embd=C, n_head=h, n=n, T=T, mask_kind=kind)


# ---------------------------------------------------------------------------------------------------------
# cross_attention
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("cross_attention")
def test_sinusoidal_positions(student):
    """sinusoidal_positions(T, d) is a float32 [T, d] table: PE[pos, 2i] = sin(pos / 10000^(2i/d)) on the even features and PE[pos, 2i+1] = cos(pos / 10000^(2i/d)) on the odd ones, positions counted from 0: the exponent is 2i/d, the same for both members of a pair."""
    cases = [[7, 6], [1, 4], [50, 16], [13, 10], [3, 2]]
    found = student(positions_case, cases=cases)
    for (T, d), dtype in zip(cases, found["dtypes"], strict=True):
        check(dtype == "torch.float32", f"sinusoidal_positions({T}, {d}) returned {dtype}, expected torch.float32 "
                                        "(the dtype of the embeddings it is added to)")
    for (T, d), f, e in zip(cases, found["found"], found["formula"]):
        check(f.shape == e.shape, f"sinusoidal_positions({T}, {d}) has shape {list(f.shape)}, expected [{T}, {d}]")
        assert_close(f, e, atol=1e-4, rtol=0, what=f"sinusoidal_positions({T}, {d})")


@pytest.mark.exercise("cross_attention")
def test_sinusoidal_positions_has_no_loop(student):
    """sinusoidal_positions builds its table without a Python loop: a column of positions times a row of frequencies (broadcasting) gives every angle at once, and a loop over the positions or the pairs of features is many times slower where there are many (4096 positions; 4096 features)."""
    cases = [[4096, 64], [4, 4096]]
    found = student(positions_speed, cases=cases, most=20)
    for T, d in cases:
        t = found[f"{T}x{d}"]
        ratio = t["student_seconds"] / max(t["reference_seconds"], 1e-9)
        check(not t["too_slow"], f"sinusoidal_positions({T}, {d}) took {1e3 * t['student_seconds']:.2f} ms, {ratio:.0f} "
                                 f"times the {1e3 * t['reference_seconds']:.2f} ms of one broadcast (at most 20 times "
                                 "allowed): build the angle table from a column of positions and a row of frequencies, "
                                 "without a Python loop")
    found = student(positions_case, cases=[[50, 16]])
    assert_close(found["found"][0], found["formula"][0], atol=1e-4, rtol=0, what="sinusoidal_positions(50, 16)")


@pytest.mark.exercise("cross_attention")
def test_cross_attention_parameters(student, reference):
    """CrossAttention(n_embd, n_head, bias) holds query = nn.Linear(n_embd, n_embd), key_value = nn.Linear(n_embd, 2 * n_embd) and proj = nn.Linear(n_embd, n_embd), all with bias=bias."""
    for args in ([12, 4, True], [12, 3, False]):
        found = student(state_shapes, cls="CrossAttention", args=args)
        expected = reference(state_shapes, cls="CrossAttention", args=args)
        check(sorted(found) == sorted(expected), f"CrossAttention{tuple(args)} holds {sorted(found)}, expected "
                                                 f"{sorted(expected)}")
        assert_close(found, expected, atol=0, rtol=0, what=f"the shapes of CrossAttention{tuple(args)}'s tensors")


@pytest.mark.exercise("cross_attention")
def test_cross_attention_matches_nn_multihead(student, reference, seed):
    """With nn.MultiheadAttention's weights split in two (query <- in_proj[:C], key_value <- in_proj[C:]), CrossAttention(x, memory) equals mha(x, memory, memory): queries from the decoder x, keys and values (in this order) from the encoder's memory, with Lq != Lk."""
    for C, h, n, lq, lk, bias in [(12, 4, 2, 5, 9, True), (8, 2, 1, 4, 1, True), (12, 3, 3, 1, 6, False),
                                  (10, 5, 2, 7, 3, True)]:
        _agree_with_torch(student, reference, cross_case, what="CrossAttention", seed=seed, n_embd=C, n_head=h,
                          n=n, lq=lq, lk=lk, bias=bias)


@pytest.mark.exercise("cross_attention")
def test_cross_attention_mask(student, reference, seed):
    """CrossAttention(x, memory, mask) applies a mask [Lq, Lk] (True = may attend), for instance one that hides the padding at the end of the source."""
    for kind in ("padding", "random"):
        _agree_with_torch(student, reference, cross_case, what="CrossAttention", seed=seed, n_embd=12, n_head=4,
                          n=2, lq=5, lk=8, mask_kind=kind)


@pytest.mark.exercise("cross_attention")
def test_cross_attention_reads_the_encoder(student, reference, seed):
    """Each output of cross-attention depends on its own query x[:, i] and on the whole memory, never on other decoder positions: keys and values come from memory (the encoder), not from x; the outputs are the attention of x's queries over memory."""
    found = student(cross_dependence, seed=seed, n_embd=12, n_head=4, lq=4, lk=6)
    check(found["shape"] == [1, 4, 12], f"CrossAttention on x [1, 4, 12] and memory [1, 6, 12] returned "
                                        f"{found['shape']}, expected [1, 4, 12]: one output per query (decoder position)")
    for i, row in enumerate(found["by_query"]):
        others = max(v for p, v in enumerate(row) if p != i)
        check(others <= 1e-12, f"changing the decoder input at position {i} changed the outputs of other positions "
                               f"(by up to {others:.3g}): the keys and values must come from memory, not from x")
        check(row[i] > 1e-9, f"changing the decoder input at position {i} left its own output unchanged: the queries "
                             "come from x")
    for j, row in enumerate(found["by_key"]):
        check(min(row) > 1e-9, f"changing the encoder output at position {j} left some outputs unchanged: every query "
                               "attends to all of memory")
    expected = reference(cross_dependence, seed=seed, n_embd=12, n_head=4, lq=4, lk=6)
    assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-10,
                 what="CrossAttention(12, 4) on x [1, 4, 12] and memory [1, 6, 12], with the reference's weights")


@pytest.mark.exercise("cross_attention")
def test_cross_attention_gradients(student, reference, seed):
    """Backpropagating a random upstream gradient through CrossAttention gives nn.MultiheadAttention's gradients for x, for memory, and for the query and key_value weights."""
    names = ("dx", "dmemory", "dweight_q", "dweight_kv")
    for C, h, n, lq, lk, kind in [(12, 4, 2, 5, 7, "none"), (8, 2, 1, 3, 6, "padding")]:
        _agree_with_torch(student, reference, cross_case, names=names, what="CrossAttention", seed=seed, n_embd=C,
                          n_head=h, n=n, lq=lq, lk=lk, mask_kind=kind)
