"""Hidden tests for week3/01_rnn_lstm: recurrence, vanishing gradients and the LSTM cell.

Every probe works in float64 on seeded inputs: batches of one and more, hidden sizes of one and more, input sizes
different from the hidden size, sequences of one step and longer, initial states given and absent, both LSTM bias
vectors non-zero, and random upstream gradients (never a plain .sum()). The RNN is compared with a direct
computation written in the probe; the LSTM cell and layer with nn.LSTMCell and nn.LSTM, their weights copied by name.
"""
import re

import pytest

from course.testing import assert_close, check, probe

TOL = dict(atol=1e-10, rtol=1e-8)

# (N, T, I, H): batch, sequence length, input size, hidden size
RNN_CASES = [dict(n=3, t=5, i=4, h=6), dict(n=1, t=7, i=2, h=1), dict(n=2, t=1, i=3, h=5)]
CELL_CASES = [dict(n=4, i=3, h=5), dict(n=1, i=2, h=1), dict(n=3, i=6, h=2)]
LAYER_CASES = [dict(n=3, t=6, i=4, h=5), dict(n=1, t=1, i=2, h=1), dict(n=2, t=9, i=1, h=3), dict(n=1, t=4, i=3, h=2)]


def _cfg(cfg):
    return ", ".join(f"{k.upper() if len(k) == 1 else k}={v}" for k, v in cfg.items())


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def rnn_inputs(seed, n, t, i, h):
    """float64 x [N, T, I], W_xh [I, H], W_hh [H, H], b [H] and h0 [N, H], of moderate scale (no saturation)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, i, generator=g, dtype=torch.float64)
    W_xh = torch.randn(i, h, generator=g, dtype=torch.float64) / i ** 0.5
    W_hh = torch.randn(h, h, generator=g, dtype=torch.float64) / h ** 0.5
    b = 0.5 * torch.randn(h, generator=g, dtype=torch.float64)
    h0 = torch.randn(n, h, generator=g, dtype=torch.float64)
    return x, W_xh, W_hh, b, h0


@probe
def rnn_cell_case(nb, seed, n, i, h):
    """nb.rnn_cell on one step, and the same step computed here."""
    import torch
    x, W_xh, W_hh, b, h0 = rnn_inputs(seed, n, 1, i, h)
    x = x[:, 0]
    out = nb.rnn_cell(x.clone(), h0.clone(), W_xh.clone(), W_hh.clone(), b.clone())
    return {"h": torch.as_tensor(out).to(torch.float64), "direct_h": torch.tanh(x @ W_xh + h0 @ W_hh + b)}


@probe
def rnn_forward_case(nb, seed, n, t, i, h, initial):
    """nb.rnn_forward with h0 given (initial=True) or None, the same unrolling computed here step by step, and
    whether the inputs were left unchanged."""
    import torch
    x, W_xh, W_hh, b, h0 = rnn_inputs(seed, n, t, i, h)
    given = [x.clone(), h0.clone()]
    hs, h_T = nb.rnn_forward(x, W_xh, W_hh, b, h0 if initial else None)
    state, direct = (h0 if initial else torch.zeros(n, h, dtype=torch.float64)), []
    for step in range(t):
        state = torch.tanh(x[:, step] @ W_xh + state @ W_hh + b)
        direct.append(state)
    return {"hs": torch.as_tensor(hs).detach().to(torch.float64), "h_T": torch.as_tensor(h_T).detach().to(torch.float64),
            "direct_hs": torch.stack(direct, dim=1), "direct_h_T": state,
            "inputs_unchanged": bool(torch.equal(x, given[0]) and torch.equal(h0, given[1]))}


@probe
def rnn_gradient_case(nb, seed, n, t, i, h):
    """Gradients through nb.rnn_forward (h0 given) of sum(hs * G) + sum(h_T * G_T), G and G_T random: with respect
    to x, h0, W_xh, W_hh and b (an empty tensor where none arrived)."""
    import torch
    tensors = [v.clone().requires_grad_(True) for v in rnn_inputs(seed, n, t, i, h)]
    x, W_xh, W_hh, b, h0 = tensors
    hs, h_T = nb.rnn_forward(x, W_xh, W_hh, b, h0)
    g = torch.Generator().manual_seed(seed + 1)
    G = torch.randn(n, t, h, generator=g, dtype=torch.float64)
    G_T = torch.randn(n, h, generator=g, dtype=torch.float64)
    ((hs * G).sum() + (h_T * G_T).sum()).backward()
    names = ["dx", "dW_xh", "dW_hh", "db", "dh0"]
    return {name: v.grad if v.grad is not None else torch.zeros(0) for name, v in zip(names, tensors)}


@probe
def norms_known_case(nb, seed, n, t, i):
    """nb.step_gradient_norms for loss = sum over n, t, k of w[t] * sin(x[n, t, k]), whose gradient is
    w[t] * cos(x); w has a zero entry and entries of both signs."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, i, generator=g, dtype=torch.float64)
    w = torch.randn(t, generator=g, dtype=torch.float64)
    w[t // 2] = 0.0

    def loss_fn(x):
        return (w.view(1, t, 1) * torch.sin(x)).sum()

    norms = nb.step_gradient_norms(loss_fn, x)
    return {"norms": torch.as_tensor(norms).detach().to(torch.float64),
            "direct": (w.view(1, t, 1) * torch.cos(x)).norm(dim=(0, 2))}


@probe
def norms_rnn_case(nb, seed, n, t, i, h):
    """nb.step_gradient_norms of the cross-entropy, at the last step, of a float64 nn.RNN with a linear classifier."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(seed)
    rnn, head = nn.RNN(i, h, batch_first=True).double(), nn.Linear(h, 3).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, i, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)

    def loss_fn(x):
        return F.cross_entropy(head(rnn(x)[0][:, -1]), y)

    norms = nb.step_gradient_norms(loss_fn, x)
    return {"norms": torch.as_tensor(norms).detach().to(torch.float64)}


@probe
def norms_side_effects(nb, seed):
    """Two calls of nb.step_gradient_norms on the same x (a plain tensor, then a leaf that requires a gradient):
    the results, and what the calls left in x."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)

    def loss_fn(x):
        return (w * x ** 2).sum()

    out = {}
    for kind in ("plain", "leaf"):
        xs = x.clone().requires_grad_(kind == "leaf")
        first = torch.as_tensor(nb.step_gradient_norms(loss_fn, xs)).detach().to(torch.float64)
        second = torch.as_tensor(nb.step_gradient_norms(loss_fn, xs)).detach().to(torch.float64)
        out[kind] = {"first": first, "second": second, "requires_grad": bool(xs.requires_grad),
                     "grad_left": xs.grad is not None, "unchanged": bool(torch.equal(xs.detach(), x))}
    return out


@probe
def seeded_lstm_weights(seed, i, h):
    """float64 weight_ih [4H, I], weight_hh [4H, H], bias_ih [4H], bias_hh [4H]: both biases clearly non-zero."""
    import torch
    g = torch.Generator().manual_seed(seed)
    return {"weight_ih": torch.randn(4 * h, i, generator=g, dtype=torch.float64) / i ** 0.5,
            "weight_hh": torch.randn(4 * h, h, generator=g, dtype=torch.float64) / h ** 0.5,
            "bias_ih": torch.randn(4 * h, generator=g, dtype=torch.float64),
            "bias_hh": torch.randn(4 * h, generator=g, dtype=torch.float64)}


@probe
def lstm_cell_case(nb, seed, n, i, h):
    """nb.lstm_cell on seeded weights and state, nn.LSTMCell with the same weights, and the gradients of both for
    random upstream gradients of h and c, with respect to x, h, c and the four weights."""
    import torch
    import torch.nn as nn
    weights = seeded_lstm_weights(seed, i, h)
    g = torch.Generator().manual_seed(seed + 1)
    x, h_prev, c_prev = (torch.randn(n, size, generator=g, dtype=torch.float64) for size in (i, h, h))
    dh, dc = torch.randn(n, h, generator=g, dtype=torch.float64), torch.randn(n, h, generator=g, dtype=torch.float64)
    names = ["x", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]

    def run(fn):
        leaves = [v.clone().requires_grad_(True) for v in [x, h_prev, c_prev, *weights.values()]]
        h_new, c_new = fn(*leaves)
        ((h_new * dh).sum() + (c_new * dc).sum()).backward()
        grads = {f"d{name}": v.grad if v.grad is not None else torch.zeros(0) for name, v in zip(names, leaves)}
        return {"h": h_new.detach(), "c": c_new.detach(), **grads}

    torch_cell = nn.LSTMCell(i, h).double()
    mine = run(lambda x, h, c, *w: nb.lstm_cell(x, (h, c), *w))

    def with_torch(x, h, c, *w):
        with torch.no_grad():
            for name, value in zip(["weight_ih", "weight_hh", "bias_ih", "bias_hh"], w):
                getattr(torch_cell, name).copy_(value)
        torch_cell.zero_grad()
        h_new, c_new = torch_cell(x, (h, c))
        return h_new, c_new

    theirs = run(with_torch)
    theirs.update({f"d{name}": getattr(torch_cell, name).grad for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]})
    return {"mine": mine, "torch": theirs}


@probe
def cell_module_parameters(nb, i, h):
    """Names and shapes of the parameters of nb.LSTMCell(i, h)."""
    return {name: list(p.shape) for name, p in nb.LSTMCell(i, h).named_parameters()}


@probe
def cell_module_case(nb, seed, n, i, h, state_given):
    """nb.LSTMCell(i, h) in float64 with seeded weights copied in by name, called on x with (h, c) or with None;
    and nn.LSTMCell with the same weights on the same call."""
    import torch
    import torch.nn as nn
    weights = seeded_lstm_weights(seed, i, h)
    cell, torch_cell = nb.LSTMCell(i, h).double(), nn.LSTMCell(i, h).double()
    with torch.no_grad():
        for name, value in weights.items():
            getattr(cell, name).copy_(value)
            getattr(torch_cell, name).copy_(value)
    g = torch.Generator().manual_seed(seed + 2)
    x, h0, c0 = (torch.randn(n, size, generator=g, dtype=torch.float64) for size in (i, h, h))
    state = (h0, c0) if state_given else None
    with torch.no_grad():
        h_new, c_new = cell(x, state)
        h_t, c_t = torch_cell(x, state)
    return {"h": h_new, "c": c_new, "torch_h": h_t, "torch_c": c_t}


@probe
def zero_state_on_gpu_case(nb, seed, cls):
    """nb.<cls>(3, 4) (LSTMCell on x [2, 3], LSTM on x [2, 5, 3]) with seeded weights, called with state None on
    the CPU, then again with the module and x on cuda:0 (course.devices.FakeGPU, CUDA's device rules on the CPU):
    the DeviceMismatch it met (None when it ran), the devices of what it returned, and the values of both runs."""
    import torch

    from course.devices import DeviceMismatch, FakeGPU
    module = getattr(nb, cls)(3, 4)
    with torch.no_grad():
        for name, value in seeded_lstm_weights(seed, 3, 4).items():
            getattr(module, name if cls == "LSTMCell" else f"{name}_l0").copy_(value.float())
    g = torch.Generator().manual_seed(seed + 5)
    x = torch.randn(*([2, 3] if cls == "LSTMCell" else [2, 5, 3]), generator=g)
    flat = (lambda out: [out[0], out[1]] if cls == "LSTMCell" else [out[0], *out[1]])
    with torch.no_grad():
        on_cpu = flat(module(x.clone(), None))
    mismatch, devices, on_gpu = None, [], []
    with FakeGPU() as gpu, torch.no_grad():
        moved = gpu.put(module)
        try:
            out = flat(moved(gpu.put(x.clone()), None))
            devices = [str(o.device) for o in out]
            on_gpu = [o.cpu() for o in out]
        except DeviceMismatch as e:
            mismatch = str(e)
    return {"mismatch": mismatch, "devices": devices, "on_gpu": on_gpu, "on_cpu": on_cpu}


@probe
def module_init(nb, cls, seed, i, h):
    """Each parameter of nb.<cls>(i, h), measured in units of 1/sqrt(h): largest size, mean, and standard
    deviation times sqrt(3) (1 for a uniform distribution on [-1, 1])."""
    import math
    import torch
    torch.manual_seed(seed)
    module = getattr(nb, cls)(i, h)
    stats = {}
    for name, p in module.named_parameters():
        t = p.detach().to(torch.float64) * math.sqrt(h)
        stats[name] = {"max_abs": t.abs().max().item(), "mean": t.mean().item(),
                       "std_times_sqrt3": t.std().item() * math.sqrt(3)}
    return stats


@probe
def layer_parameters(nb, i, h):
    """Names and shapes of the parameters of nb.LSTM(i, h)."""
    return {name: list(p.shape) for name, p in nb.LSTM(i, h).named_parameters()}


@probe
def layer_case(nb, seed, n, t, i, h, initial, upstream):
    """nb.LSTM(i, h) in float64 with seeded weights copied in by name, and nn.LSTM(i, h, batch_first=True) with the
    same weights: outputs and final states on x [N, T, I], with (h0, c0) or None; with upstream=True, the gradients
    of random upstream gradients of the output, h_T and c_T with respect to x, h0, c0 and the four weights."""
    import torch
    import torch.nn as nn
    weights = seeded_lstm_weights(seed, i, h)
    layer, torch_lstm = nb.LSTM(i, h).double(), nn.LSTM(i, h, batch_first=True).double()
    with torch.no_grad():
        for name, value in weights.items():
            getattr(layer, f"{name}_l0").copy_(value)
            getattr(torch_lstm, f"{name}_l0").copy_(value)
    g = torch.Generator().manual_seed(seed + 3)
    x = torch.randn(n, t, i, generator=g, dtype=torch.float64)
    h0, c0 = torch.randn(n, h, generator=g, dtype=torch.float64), torch.randn(n, h, generator=g, dtype=torch.float64)
    d_out = torch.randn(n, t, h, generator=g, dtype=torch.float64)
    dh, dc = torch.randn(n, h, generator=g, dtype=torch.float64), torch.randn(n, h, generator=g, dtype=torch.float64)
    given = [x.clone(), h0.clone(), c0.clone()]
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]

    def run(module, batch_states):
        leaves = [v.clone().requires_grad_(upstream) for v in (x, h0, c0)]
        xs, hs, cs = leaves
        if batch_states:      # ours: [N, H]
            output, (h_T, c_T) = module(xs, (hs, cs) if initial else None)
        else:                 # nn.LSTM: [1, N, H]
            output, (h_T, c_T) = module(xs, (hs[None], cs[None]) if initial else None)
            h_T, c_T = h_T[0], c_T[0]
        result = {"output": output.detach(), "h_T": h_T.detach(), "c_T": c_T.detach()}
        if upstream:
            module.zero_grad()
            ((output * d_out).sum() + (h_T * dh).sum() + (c_T * dc).sum()).backward()
            for name, v in zip(["dx", "dh0", "dc0"], leaves):
                if initial or name == "dx":
                    result[name] = v.grad if v.grad is not None else torch.zeros(0)
            for name in names:
                p = getattr(module, name)
                result[f"d{name}"] = p.grad if p.grad is not None else torch.zeros(0)
        return result

    mine = run(layer, True)
    mine["inputs_unchanged"] = bool(all(torch.equal(a, b) for a, b in zip((x, h0, c0), given)))
    return {"mine": mine, "torch": run(torch_lstm, False)}


# ---------------------------------------------------------------------------------------------------------
# rnn_cell
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("rnn_cell")
def test_rnn_cell_one_step(student, reference, seed):
    """rnn_cell computes tanh(x @ W_xh + h @ W_hh + b): the input goes through W_xh [I, H], the previous state through W_hh [H, H], the bias is added once, and the tanh comes last."""
    for cfg in CELL_CASES:
        found = student(rnn_cell_case, seed=seed, **cfg)
        expected = reference(rnn_cell_case, seed=seed, **cfg)
        assert_close(expected["h"], expected["direct_h"], **TOL, what="the reference's rnn_cell against the formula")
        assert_close(found["h"], expected["h"], **TOL, what=f"rnn_cell for {_cfg(cfg)}")


@pytest.mark.exercise("rnn_cell")
def test_rnn_forward_without_initial_state(student, reference, seed):
    """rnn_forward starts from zeros when h0 is None, feeds each step the state of the step before, and returns hs [N, T, H] (time on axis 1, the states h_1 ... h_T) and h_T [N, H]."""
    for cfg in RNN_CASES:
        found = student(rnn_forward_case, seed=seed, initial=False, **cfg)
        expected = reference(rnn_forward_case, seed=seed, initial=False, **cfg)
        assert_close([expected["hs"], expected["h_T"]], [expected["direct_hs"], expected["direct_h_T"]], **TOL,
                     what="the reference's rnn_forward against the direct computation")
        check(found["inputs_unchanged"], "rnn_forward changed its input x in place")
        assert_close({"hs": found["hs"], "h_T": found["h_T"]}, {"hs": expected["hs"], "h_T": expected["h_T"]}, **TOL,
                     what=f"rnn_forward without an initial state for {_cfg(cfg)}")


@pytest.mark.exercise("rnn_cell")
def test_rnn_forward_with_initial_state(student, reference, seed):
    """When h0 is given, the first step starts from h0 (not from zeros); every later step starts from the state the step before produced."""
    for cfg in RNN_CASES:
        found = student(rnn_forward_case, seed=seed, initial=True, **cfg)
        expected = reference(rnn_forward_case, seed=seed, initial=True, **cfg)
        assert_close([expected["hs"], expected["h_T"]], [expected["direct_hs"], expected["direct_h_T"]], **TOL,
                     what="the reference's rnn_forward against the direct computation")
        check(found["inputs_unchanged"], "rnn_forward changed its input x or h0 in place")
        assert_close({"hs": found["hs"], "h_T": found["h_T"]}, {"hs": expected["hs"], "h_T": expected["h_T"]}, **TOL,
                     what=f"rnn_forward with an initial state h0 for {_cfg(cfg)}")


@pytest.mark.exercise("rnn_cell")
def test_rnn_backpropagation_through_time(student, reference, seed):
    """Autograd must see the whole chain: gradients reach x, h0 and the weights through every step, so no .detach(), no .data and no torch.no_grad() anywhere in rnn_cell or rnn_forward."""
    for cfg in [RNN_CASES[0], RNN_CASES[1]]:
        found = student(rnn_gradient_case, seed=seed, **cfg)
        expected = reference(rnn_gradient_case, seed=seed, **cfg)
        assert_close(found, expected, **TOL, what=f"the gradients through rnn_forward (random upstream) for {_cfg(cfg)}")


# ---------------------------------------------------------------------------------------------------------
# step_gradients
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("step_gradients")
def test_norms_of_a_known_gradient(student, reference, seed):
    """norms[t] is the Euclidean norm (the square root of the sum of squares) of d loss / d x[:, t], over the batch and the inputs together: shape [T], one number per time step."""
    for n, t, i in [(3, 6, 2), (1, 5, 1), (4, 3, 5)]:
        found = student(norms_known_case, seed=seed, n=n, t=t, i=i)
        expected = reference(norms_known_case, seed=seed, n=n, t=t, i=i)
        assert_close(expected["norms"], expected["direct"], **TOL, what="the reference's norms against the formula")
        assert_close(found["norms"], expected["norms"], **TOL,
                     what=f"step_gradient_norms for loss = sum of w[t] * sin(x), x [N={n}, T={t}, I={i}]")


@pytest.mark.exercise("step_gradients")
def test_norms_through_an_rnn(student, reference, seed):
    """Through a recurrent network, the gradient of the last step's loss reaches every earlier step: take it with torch.autograd.grad (or backward) with respect to a copy of x that requires a gradient."""
    for cfg in [dict(n=5, t=8, i=3, h=4), dict(n=1, t=12, i=2, h=6)]:
        found = student(norms_rnn_case, seed=seed, **cfg)
        expected = reference(norms_rnn_case, seed=seed, **cfg)
        assert_close(found, expected, **TOL, what=f"step_gradient_norms through nn.RNN for {_cfg(cfg)}")


@pytest.mark.exercise("step_gradients")
def test_norms_leave_x_alone(student, reference, seed):
    """Work on x.detach().clone().requires_grad_(True): the caller's x must not be changed, must not receive a .grad, and a second call must give the same norms (gradients must not accumulate between calls)."""
    found = student(norms_side_effects, seed=seed)
    expected = reference(norms_side_effects, seed=seed)
    for kind, what in [("plain", "a tensor that does not require a gradient"), ("leaf", "a leaf that requires a gradient")]:
        f = found[kind]
        check(f["unchanged"], f"step_gradient_norms changed the values of x ({what})")
        check(f["requires_grad"] == expected[kind]["requires_grad"],
              f"step_gradient_norms changed x.requires_grad of the caller's x ({what}): work on a detached copy")
        check(not f["grad_left"], f"after step_gradient_norms, the caller's x ({what}) has a .grad: the gradient must "
                                  "be taken with respect to a copy")
        assert_close([f["first"], f["second"]], [expected[kind]["first"], expected[kind]["second"]], **TOL,
                     what=f"two calls of step_gradient_norms on the same x ({what})")


# ---------------------------------------------------------------------------------------------------------
# lstm_cell
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_matches_nn_lstmcell(student, reference, seed):
    """gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh (BOTH biases), split into i, f, g, o in that order; sigmoid on i, f, o and tanh on g; c_new = f * c + i * g and h_new = o * tanh(c_new)."""
    for cfg in CELL_CASES:
        found = student(lstm_cell_case, seed=seed, **cfg)
        expected = reference(lstm_cell_case, seed=seed, **cfg)
        assert_close(expected["mine"], expected["torch"], **TOL, what="the reference's lstm_cell against nn.LSTMCell")
        assert_close({"h": found["mine"]["h"], "c": found["mine"]["c"]},
                     {"h": expected["mine"]["h"], "c": expected["mine"]["c"]}, **TOL,
                     what=f"lstm_cell's (h, c) for {_cfg(cfg)}, next to nn.LSTMCell with the same weights")


@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_gradients(student, reference, seed):
    """With random upstream gradients of h and c, the gradients with respect to x, h, c and all four weights must be nn.LSTMCell's: every weight and bias takes part, and nothing is detached."""
    for cfg in CELL_CASES[:2]:
        found = student(lstm_cell_case, seed=seed, **cfg)
        expected = reference(lstm_cell_case, seed=seed, **cfg)
        assert_close(found["mine"], expected["mine"], **TOL, what=f"lstm_cell's outputs and gradients for {_cfg(cfg)}")


@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_module_parameters(student, reference):
    """LSTMCell registers nn.Parameters with nn.LSTMCell's names and shapes: weight_ih [4H, I], weight_hh [4H, H], bias_ih [4H], bias_hh [4H]."""
    for i, h in [(3, 5), (2, 1), (6, 2)]:
        found = student(cell_module_parameters, i=i, h=h)
        expected = reference(cell_module_parameters, i=i, h=h)
        check(sorted(found) == sorted(expected),
              f"LSTMCell({i}, {h}) has the parameters {sorted(found)}, expected {sorted(expected)}")
        assert_close(found, expected, atol=0, rtol=0, what=f"the parameter shapes of LSTMCell({i}, {h})")


@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_module_forward(student, reference, seed):
    """LSTMCell.forward(x, state) uses the (h, c) it is given, and zeros for both when state is None, as nn.LSTMCell does; it computes with its own four parameters."""
    for cfg in CELL_CASES:
        for state_given in (True, False):
            found = student(cell_module_case, seed=seed, state_given=state_given, **cfg)
            expected = reference(cell_module_case, seed=seed, state_given=state_given, **cfg)
            assert_close([expected["h"], expected["c"]], [expected["torch_h"], expected["torch_c"]], **TOL,
                         what="the reference's LSTMCell against nn.LSTMCell")
            assert_close({"h": found["h"], "c": found["c"]}, {"h": expected["h"], "c": expected["c"]}, **TOL,
                         what=f"LSTMCell with state {'(h, c)' if state_given else 'None'} for {_cfg(cfg)}")


@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_zero_state_on_the_device_of_its_input(student, seed):
    """With state None, LSTMCell.forward makes its zero state on the device of x (x.new_zeros(N, H), or torch.zeros(N, H, device=x.device)): with the module and x on a GPU, nothing it computes meets a tensor on the CPU, and its results are those it gives on the CPU."""
    found = student(zero_state_on_gpu_case, seed=seed, cls="LSTMCell")
    check(found["mismatch"] is None,
          "LSTMCell.forward(x, None) met a tensor on the CPU together with one on cuda:0, for x and the parameters on "
          f"cuda:0. On a GPU, PyTorch says: {re.split(r'! |[.] A tensor', str(found['mismatch']))[0]}. Create the "
          "zero state on x's device: x.new_zeros(N, H), or torch.zeros(N, H, device=x.device)")
    check(all(d.startswith("cuda") for d in found["devices"]),
          f"LSTMCell.forward(x, None) on cuda:0 returned tensors on {', '.join(found['devices'])}")
    assert_close(found["on_gpu"], found["on_cpu"], atol=0, rtol=0,
                 what="LSTMCell(3, 4) with state None on cuda:0, next to the same module on the CPU")


@pytest.mark.exercise("lstm_cell")
def test_lstm_cell_module_init(student, seed):
    """Like nn.LSTMCell, every parameter starts uniform in [-1/sqrt(H), 1/sqrt(H)], H the hidden size (not the input size)."""
    found = student(module_init, cls="LSTMCell", seed=seed, i=10, h=64)
    check(len(found) == 4, f"LSTMCell(10, 64) has {len(found)} parameters, expected 4")
    for name, s in found.items():
        check(s["max_abs"] <= 1 + 1e-6, f"LSTMCell(10, 64).{name} has entries up to {s['max_abs']:.3g} / sqrt(H), "
                                        "expected at most 1 / sqrt(H)")
        check(abs(s["std_times_sqrt3"] - 1) < 0.25 and abs(s["mean"]) < 0.2,
              f"LSTMCell(10, 64).{name} has mean {s['mean']:.3g} and standard deviation "
              f"{s['std_times_sqrt3'] / 3 ** 0.5:.3g} in units of 1 / sqrt(H), expected 0 and 1/sqrt(3) = 0.577 "
              "(uniform in [-1/sqrt(H), 1/sqrt(H)])")


# ---------------------------------------------------------------------------------------------------------
# lstm_layer
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_parameters(student, reference):
    """LSTM registers nn.Parameters with the names and shapes of a one-layer nn.LSTM: weight_ih_l0 [4H, I], weight_hh_l0 [4H, H], bias_ih_l0 [4H], bias_hh_l0 [4H]."""
    for i, h in [(4, 5), (1, 3), (2, 1)]:
        found = student(layer_parameters, i=i, h=h)
        expected = reference(layer_parameters, i=i, h=h)
        check(sorted(found) == sorted(expected),
              f"LSTM({i}, {h}) has the parameters {sorted(found)}, expected {sorted(expected)}")
        assert_close(found, expected, atol=0, rtol=0, what=f"the parameter shapes of LSTM({i}, {h})")


@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_init(student, seed):
    """Like nn.LSTM, every parameter starts uniform in [-1/sqrt(H), 1/sqrt(H)], H the hidden size (not the input size)."""
    found = student(module_init, cls="LSTM", seed=seed, i=10, h=64)
    check(len(found) == 4, f"LSTM(10, 64) has {len(found)} parameters, expected 4")
    for name, s in found.items():
        check(s["max_abs"] <= 1 + 1e-6, f"LSTM(10, 64).{name} has entries up to {s['max_abs']:.3g} / sqrt(H), "
                                        "expected at most 1 / sqrt(H)")
        check(abs(s["std_times_sqrt3"] - 1) < 0.25 and abs(s["mean"]) < 0.2,
              f"LSTM(10, 64).{name} has mean {s['mean']:.3g} and standard deviation "
              f"{s['std_times_sqrt3'] / 3 ** 0.5:.3g} in units of 1 / sqrt(H), expected 0 and 1/sqrt(3) = 0.577 "
              "(uniform in [-1/sqrt(H), 1/sqrt(H)])")


def _layer_agrees(student, reference, seed, initial, upstream, cases, what):
    for cfg in cases:
        found = student(layer_case, seed=seed, initial=initial, upstream=upstream, **cfg)
        expected = reference(layer_case, seed=seed, initial=initial, upstream=upstream, **cfg)
        mine = {k: v for k, v in expected["mine"].items() if k != "inputs_unchanged"}
        assert_close(mine, expected["torch"], **TOL, what="the reference's LSTM against nn.LSTM")
        check(found["mine"]["inputs_unchanged"], "LSTM.forward changed its input x (or h0, c0) in place")
        assert_close(found["mine"], expected["mine"], **TOL, what=f"LSTM {what} for {_cfg(cfg)}, next to nn.LSTM")


@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_without_initial_state(student, reference, seed):
    """With state None, h and c both start at zeros; every step starts from the (h, c) the step before produced; output [N, T, H] stacks h_1 ... h_T along axis 1, and the final state is (h_T, c_T), each [N, H]."""
    _layer_agrees(student, reference, seed, False, False, LAYER_CASES, "without an initial state")


@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_with_initial_state(student, reference, seed):
    """With state (h0, c0), the first step starts from h0 AND c0; then both states carry over from step to step."""
    _layer_agrees(student, reference, seed, True, False, LAYER_CASES, "with an initial state (h0, c0)")


@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_zero_state_on_the_device_of_its_input(student, seed):
    """With state None, LSTM.forward makes its zero state on the device of x (x.new_zeros(N, H), or torch.zeros(N, H, device=x.device)): with the module and x on a GPU, nothing it computes meets a tensor on the CPU, and its results are those it gives on the CPU."""
    found = student(zero_state_on_gpu_case, seed=seed, cls="LSTM")
    check(found["mismatch"] is None,
          "LSTM.forward(x, None) met a tensor on the CPU together with one on cuda:0, for x and the parameters on "
          f"cuda:0. On a GPU, PyTorch says: {re.split(r'! |[.] A tensor', str(found['mismatch']))[0]}. Create the "
          "zero state on x's device: x.new_zeros(N, H), or torch.zeros(N, H, device=x.device)")
    check(all(d.startswith("cuda") for d in found["devices"]),
          f"LSTM.forward(x, None) on cuda:0 returned tensors on {', '.join(found['devices'])}")
    assert_close(found["on_gpu"], found["on_cpu"], atol=0, rtol=0,
                 what="LSTM(3, 4) with state None on cuda:0, next to the same module on the CPU")


@pytest.mark.exercise("lstm_layer")
def test_lstm_layer_gradients(student, reference, seed):
    """With random upstream gradients of the output, h_T and c_T, the gradients of x, h0, c0 and the four weights must be nn.LSTM's: the same weights at every step, both biases, and nothing detached."""
    _layer_agrees(student, reference, seed, True, True, [LAYER_CASES[0], LAYER_CASES[2]], "gradients")
    _layer_agrees(student, reference, seed, False, True, [LAYER_CASES[3]], "gradients without an initial state")


# ---------------------------------------------------------------------------------------------------------
# lstm_gates
# ---------------------------------------------------------------------------------------------------------

TRACE_CASES = [dict(n=3, t=6, i=4, h=5), dict(n=1, t=1, i=2, h=1), dict(n=2, t=9, i=1, h=3)]


@probe
def trace_case(nb, seed, n, t, i, h, initial, holder):
    """nb.lstm_trace on float64 x [N, T, I] with seeded weights, given to it in an nn.LSTM (holder="nn.LSTM") or in
    a bare module that holds only the four parameters by name (holder="bare"); with (h0, c0) or None. Next to it,
    nn.LSTM with the same weights: its outputs, and its final cell state after every prefix x[:, :k], k = 1..T."""
    import torch
    import torch.nn as nn
    weights = seeded_lstm_weights(seed, i, h)
    torch_lstm = nn.LSTM(i, h, batch_first=True).double()
    holder_module = torch_lstm if holder == "nn.LSTM" else nn.Module()
    for name, value in weights.items():
        if holder == "nn.LSTM":
            with torch.no_grad():
                getattr(torch_lstm, f"{name}_l0").copy_(value)
        else:
            setattr(holder_module, f"{name}_l0", nn.Parameter(value.clone()))
            with torch.no_grad():
                getattr(torch_lstm, f"{name}_l0").copy_(value)
    g = torch.Generator().manual_seed(seed + 5)
    x = torch.randn(n, t, i, generator=g, dtype=torch.float64)
    h0, c0 = torch.randn(n, h, generator=g, dtype=torch.float64), torch.randn(n, h, generator=g, dtype=torch.float64)
    given = [x.clone(), h0.clone(), c0.clone()]
    record = nb.lstm_trace(holder_module, x, (h0, c0) if initial else None)
    found = {"is_dict": isinstance(record, dict), "keys": sorted(record) if isinstance(record, dict) else []}
    if isinstance(record, dict):
        for name, value in record.items():
            value = torch.as_tensor(value)
            found[f"shape_{name}"] = list(value.shape)
            found[f"graph_{name}"] = bool(value.requires_grad)
            found[name] = value.detach().to(torch.float64)
    found["inputs_unchanged"] = bool(all(torch.equal(a, b) for a, b in zip((x, h0, c0), given)))
    with torch.no_grad():
        state = (h0[None], c0[None]) if initial else None
        output, _ = torch_lstm(x, state)
        cells = [torch_lstm(x[:, :k], state)[1][1][0] for k in range(1, t + 1)]
    found["torch_h"], found["torch_c"] = output, torch.stack(cells, dim=1)
    return found


def _trace(student, reference, seed, cfg, initial=False, holder="nn.LSTM"):
    found = student(trace_case, seed=seed, initial=initial, holder=holder, **cfg)
    expected = reference(trace_case, seed=seed, initial=initial, holder=holder, **cfg)
    assert_close([expected["h"], expected["c"]], [expected["torch_h"], expected["torch_c"]], **TOL,
                 what="the reference's trace against nn.LSTM")
    check(found["is_dict"], "lstm_trace should return a dict of tensors")
    check(found["keys"] == expected["keys"], f"lstm_trace returned the keys {found['keys']}, expected "
                                             f"{expected['keys']}")
    return found, expected


@pytest.mark.exercise("lstm_gates")
def test_trace_states_match_nn_lstm(student, reference, seed):
    """trace["h"] is h_t and trace["c"] is c_t, the cell state AFTER step t's update, at every step: they must be nn.LSTM's, with the gates split in the order i, f, g, o, both biases added, and (h, c) carried from step to step."""
    for cfg in TRACE_CASES:
        for initial in (False, True):
            found, expected = _trace(student, reference, seed, cfg, initial)
            where = f"{_cfg(cfg)}, {'with' if initial else 'without'} an initial state"
            assert_close(found["h"], expected["torch_h"], **TOL, what=f"trace['h'] next to nn.LSTM's output for {where}")
            assert_close(found["c"], expected["torch_c"], **TOL,
                         what=f"trace['c'] next to nn.LSTM's cell state after each step for {where}")


@pytest.mark.exercise("lstm_gates")
def test_trace_gates(student, reference, seed):
    """trace["i"], ["f"] and ["o"] are the gates after their sigmoid, trace["g"] the candidate after its tanh: rows 0:H, H:2H, 2H:3H and 3H:4H of x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh, at every step."""
    for cfg in TRACE_CASES:
        for initial in (False, True):
            found, expected = _trace(student, reference, seed, cfg, initial)
            assert_close({k: found[k] for k in "ifgo"}, {k: expected[k] for k in "ifgo"}, **TOL,
                         what=f"the gates i, f, g, o for {_cfg(cfg)}, {'with' if initial else 'without'} an initial "
                              "state")


@pytest.mark.exercise("lstm_gates")
def test_trace_reads_the_parameters_by_name(student, reference, seed):
    """lstm_trace reads lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 and lstm.bias_hh_l0 and nothing else of the module: it must work on any module that holds these four parameters, not only on nn.LSTM."""
    for cfg in TRACE_CASES[:2]:
        found, expected = _trace(student, reference, seed, cfg, True, holder="bare")
        assert_close({k: found[k] for k in "ifgoch"}, {k: expected[k] for k in "ifgoch"}, **TOL,
                     what=f"the trace of a module that holds only the four parameters, {_cfg(cfg)}")


@pytest.mark.exercise("lstm_gates")
def test_trace_shapes_and_no_graph(student, reference, seed):
    """Each of the six entries is a tensor [N, T, H] (one row per sequence, one column per step) holding the step's gates and states, computed under torch.no_grad(), so none of them requires a gradient; x, h0 and c0 are left unchanged."""
    for cfg in TRACE_CASES:
        found, expected = _trace(student, reference, seed, cfg, True)
        for name in "ifgoch":
            check(found[f"shape_{name}"] == expected[f"shape_{name}"],
                  f"trace[{name!r}] has shape {found[f'shape_{name}']} for {_cfg(cfg)}, expected "
                  f"{expected[f'shape_{name}']} ([N, T, H])")
            check(not found[f"graph_{name}"], f"trace[{name!r}] requires a gradient: the record must be computed "
                                              "under torch.no_grad()")
        check(found["inputs_unchanged"], "lstm_trace changed x, h0 or c0 in place")
        assert_close({k: found[k] for k in "ifgoch"}, {k: expected[k] for k in "ifgoch"}, **TOL,
                     what=f"the six entries of the trace for {_cfg(cfg)}, with an initial state")
