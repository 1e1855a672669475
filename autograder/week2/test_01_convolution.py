"""Hidden tests for week2/01_convolution: convolution and pooling by hand.

Every probe builds its inputs from `seed` in float64: odd, non-square images and kernels, different strides and
paddings per dimension, batches of one, in-channels different from out-channels, bias on and off, random
upstream gradients, and (for pooling) values without ties in no particular order. What the notebook forbids
(PyTorch's own convolution in the hand-written forward passes, autograd in the backward pass) is checked by
making those calls raise, and by running the backward pass under torch.inference_mode().
"""
import pytest

from course.testing import assert_close, check, probe

# Convolution configurations: (N, C_in, H, W), (C_out, kH, kW), stride, padding, bias.
BASIC = dict(n=2, c_in=3, h=7, w=9, c_out=4, kh=3, kw=2, stride=1, padding=0, bias=True)
STRIDED = [
    dict(n=2, c_in=2, h=9, w=8, c_out=3, kh=3, kw=3, stride=2, padding=1, bias=True),
    dict(n=1, c_in=3, h=8, w=11, c_out=2, kh=2, kw=3, stride=[2, 3], padding=[1, 2], bias=True),
    dict(n=2, c_in=2, h=10, w=7, c_out=3, kh=4, kw=3, stride=[3, 1], padding=[0, 1], bias=False),
]
CHANNELS = [
    dict(n=1, c_in=3, h=6, w=5, c_out=5, kh=3, kw=3, stride=1, padding=1, bias=True),
    dict(n=3, c_in=4, h=5, w=7, c_out=2, kh=2, kw=2, stride=1, padding=0, bias=False),
    dict(n=2, c_in=1, h=6, w=7, c_out=3, kh=3, kw=1, stride=1, padding=[1, 0], bias=True),
]
# Pooling configurations: (N, C, H, W), kernel, stride (None: the kernel).
POOL_DISJOINT = [
    dict(n=2, c=3, h=8, w=9, kernel=2, stride=None),
    dict(n=1, c=2, h=7, w=10, kernel=[2, 3], stride=[2, 3]),
]
POOL_OVERLAPPING = [
    dict(n=2, c=2, h=9, w=7, kernel=3, stride=2),
    dict(n=1, c=3, h=6, w=8, kernel=[3, 2], stride=[1, 2]),
    dict(n=2, c=1, h=7, w=7, kernel=3, stride=1),
]


def _cfg(cfg):
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def _agree(student, reference, case_probe, cases, names, what, against_torch=False, tol=1e-10, **kwargs):
    """Run `case_probe` on each case for the student and the reference and compare the answers' entries `names`:
    with the reference's, or (against_torch) with PyTorch's `torch_<name>`, once the reference agrees with it."""
    for cfg in cases:
        found = student(case_probe, **kwargs, **cfg)
        expected = reference(case_probe, **kwargs, **cfg)
        for name in names:
            target = expected[f"torch_{name}"] if against_torch else expected[name]
            if against_torch:
                assert_close(expected[name], target, atol=tol, rtol=tol, what=f"the reference's {name} against PyTorch")
            assert_close(found[name], target, atol=tol, rtol=tol,
                         what=f"{what}'s {name} for {_cfg(cfg)}{' next to PyTorch' if against_torch else ''}")


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def conv_inputs(seed, n, c_in, h, w, c_out, kh, kw, stride, padding, bias):
    """float64 input, weights and bias of a convolution, and its stride and padding as ints or tuples."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64) if bias else None
    as_pair = (lambda v: tuple(v) if isinstance(v, list) else v)
    return x, weight, b, as_pair(stride), as_pair(padding)


@probe
def conv_case(nb, fn, seed, **cfg):
    """nb.<fn>(x, w, b, stride, padding) for conv2d_naive or conv2d_unfold, and F.conv2d on the same inputs."""
    import torch
    import torch.nn.functional as F
    x, weight, b, stride, padding = conv_inputs(seed, **cfg)
    given = x.clone()
    out = getattr(nb, fn)(x, weight.clone(), None if b is None else b.clone(), stride, padding)
    pair = (lambda v: v if isinstance(v, tuple) else (v, v))
    return {"out": torch.as_tensor(out).to(torch.float64),
            "torch_out": F.conv2d(given, weight, b, pair(stride), pair(padding)),
            "input_unchanged": bool(torch.equal(x, given))}


@probe
def output_sizes(nb, cases):
    """conv_output_size(n, k, stride, padding) for each [n, k, stride, padding] of `cases`."""
    return [int(nb.conv_output_size(n, k, s, p)) for n, k, s, p in cases]


# Each shape makes one kind of Python loop slow and leaves the others cheap: what a loop would run over, x's shape,
# the number of 3x3 filters (padding 1), and the most times one F.unfold and one matrix product's time allowed.
# Measured on one thread of a loaded 2-core machine, as times the reference's: a loop over the positions ~100x; an
# F.unfold per example 15-25x; a product per filter 90-260x; an F.unfold per input channel 35-55x (on [1, 512, 4, 4]
# with one filter it was 19-28x, and CI once saw it under a limit of 20: few filters make the reference's product
# slow and the loop's cheap). The correct alternatives (strided views and einsum; a product per kernel offset) stay
# under 10x, and under 2x on the many examples and the many input channels: hence the lower limits there.
SPEED_CASES = [
    ("output positions", (1, 3, 64, 64), 4, 20),
    ("examples", (1024, 1, 2, 2), 2, 5),
    ("output channels", (1, 1, 8, 8), 2048, 30),
    ("input channels", (1, 1024, 2, 2), 8, 8),
]


@probe
def unfold_speed(nb, seed, cases):
    """Best times of nb.conv2d_unfold and of one F.unfold and one matrix product (written here), called in
    turns on one thread, for each case (x's shape, the number of 3x3 filters, padding 1); too_slow: over the
    case's most times the product's time."""
    import time
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)

    def unfold_once(x, weight, b, stride, padding):
        N, _, H, W = x.shape
        cols = F.unfold(x, (3, 3), padding=padding, stride=stride)
        return (weight.reshape(len(weight), -1) @ cols + b.view(1, -1, 1)).view(N, -1, H, W)

    found = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for what, shape, filters, most in cases:
            x = torch.randn(*shape, generator=g)
            weight, b = torch.randn(filters, shape[1], 3, 3, generator=g), torch.randn(filters, generator=g)
            times = {"reference_seconds": [], "student_seconds": []}
            spent, rounds = 0.0, 0
            while rounds < 8 and (rounds < 3 or spent < 0.75):     # at least 3 rounds, at most 8, about 0.75 s
                for name, fn in (("reference_seconds", unfold_once), ("student_seconds", nb.conv2d_unfold)):
                    start = time.perf_counter()
                    fn(x, weight, b, 1, 1)
                    times[name].append(time.perf_counter() - start)
                    spent += times[name][-1]
                rounds += 1
            found[what] = {name: min(t[1:]) for name, t in times.items()}    # the first round warms up
            # the verdict travels with the times, so that a mistake's feedback can be matched on it
            found[what]["too_slow"] = found[what]["student_seconds"] > most * found[what]["reference_seconds"]
    finally:
        torch.set_num_threads(threads)
    return found


@probe
def pool_input(seed, n, c, h, w):
    """Distinct values in random order (no ties, not monotonic along any axis), float64."""
    import torch
    g = torch.Generator().manual_seed(seed)
    size = n * c * h * w
    return (torch.randperm(size, generator=g).to(torch.float64) / size).view(n, c, h, w)


@probe
def pool_case(nb, seed, n, c, h, w, kernel, stride, backward):
    """maxpool2d_forward, or maxpool2d_backward on a random upstream gradient, next to F.max_pool2d through autograd."""
    import torch
    import torch.nn.functional as F
    as_pair = (lambda v: tuple(v) if isinstance(v, list) else v)
    kernel, stride = as_pair(kernel), as_pair(stride)
    x = pool_input(seed, n, c, h, w)
    xt = x.clone().requires_grad_(True)
    out_t = F.max_pool2d(xt, kernel, stride)
    g = torch.Generator().manual_seed(seed + 1)
    dout = torch.randn(out_t.shape, generator=g, dtype=torch.float64)
    out_t.backward(dout)
    if backward:
        dx = nb.maxpool2d_backward(dout.clone(), x.clone(), kernel, stride)
        return {"dx": torch.as_tensor(dx).to(torch.float64), "torch_dx": xt.grad}
    out = nb.maxpool2d_forward(x.clone(), kernel, stride)
    return {"out": torch.as_tensor(out).to(torch.float64), "torch_out": out_t.detach()}


@probe
def pool_speed(nb, seed, most):
    """Best times of nb.maxpool2d_forward and nb.maxpool2d_backward, and of the same work vectorized here (strided
    windows, their maximum; a one-hot mask of each window's first maximum added back at each of the kernel's
    offsets), called in turns on one thread, for x [1, 1, 128, 128] and kernel 2 (4096 windows); too_slow: over
    `most` times the time of the vectorized work."""
    import time
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, 128, 128, generator=g, dtype=torch.float64)
    dout = torch.randn(1, 1, 64, 64, generator=g, dtype=torch.float64)

    def forward(x, kernel, stride):
        return x.unfold(2, 2, 2).unfold(3, 2, 2).amax(dim=(-2, -1))

    def backward(dout, x, kernel, stride):
        windows = x.unfold(2, 2, 2).unfold(3, 2, 2)
        mask = F.one_hot(windows.flatten(-2).argmax(dim=-1), 4).view(windows.shape).to(x.dtype)
        dx = torch.zeros_like(x)
        for u in range(2):
            for v in range(2):
                dx[:, :, u::2, v::2] += mask[..., u, v] * dout
        return dx

    calls = {
        "forward": ((forward, nb.maxpool2d_forward), (x, 2, 2)),
        "backward": ((backward, nb.maxpool2d_backward), (dout, x, 2, 2)),
    }
    found = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for what, ((mine, theirs), args) in calls.items():
            times = {"reference_seconds": [], "student_seconds": []}
            spent, rounds = 0.0, 0
            while rounds < 8 and (rounds < 3 or spent < 0.75):     # at least 3 rounds, at most 8, about 0.75 s
                for name, fn in (("reference_seconds", mine), ("student_seconds", theirs)):
                    start = time.perf_counter()
                    fn(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
                    times[name].append(time.perf_counter() - start)
                    spent += times[name][-1]
                rounds += 1
            found[what] = {name: min(t[1:]) for name, t in times.items()}    # the first round warms up
            # the verdict travels with the times, so that a mistake's feedback can be matched on it
            found[what]["too_slow"] = found[what]["student_seconds"] > most * found[what]["reference_seconds"]
    finally:
        torch.set_num_threads(threads)
    return found


@probe
def conv_backward_speed(nb, seed, cases):
    """Best times of nb.conv2d_backward and of the same gradients from one F.unfold, matrix products and one F.fold
    (written here), called in turns on one thread, for each case of SPEED_CASES (padding 1); too_slow: over the
    case's most times the time of the products."""
    import time
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)

    def by_products(dout, x, weight, stride, padding):
        N, _, H, W = x.shape
        dout = dout.reshape(N, len(weight), -1)
        cols = F.unfold(x, (3, 3), padding=padding, stride=stride)
        dw = (dout @ cols.transpose(1, 2)).sum(dim=0).view_as(weight)
        dx = F.fold(weight.reshape(len(weight), -1).T @ dout, (H, W), (3, 3), padding=padding, stride=stride)
        return dx, dw, dout.sum(dim=(0, 2))

    found = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for what, shape, filters, most in cases:
            x = torch.randn(*shape, generator=g)
            weight = torch.randn(filters, shape[1], 3, 3, generator=g)
            dout = torch.randn(shape[0], filters, shape[2], shape[3], generator=g)
            times = {"reference_seconds": [], "student_seconds": []}
            spent, rounds = 0.0, 0
            while rounds < 8 and (rounds < 3 or spent < 0.75):     # at least 3 rounds, at most 8, about 0.75 s
                for name, fn in (("reference_seconds", by_products), ("student_seconds", nb.conv2d_backward)):
                    start = time.perf_counter()
                    fn(dout, x, weight, 1, 1)
                    times[name].append(time.perf_counter() - start)
                    spent += times[name][-1]
                rounds += 1
            found[what] = {name: min(t[1:]) for name, t in times.items()}    # the first round warms up
            found[what]["too_slow"] = found[what]["student_seconds"] > most * found[what]["reference_seconds"]
    finally:
        torch.set_num_threads(threads)
    return found


@probe
def conv_backward_case(nb, seed, **cfg):
    """conv2d_backward on a random upstream gradient, and autograd's gradients through F.conv2d."""
    import torch
    import torch.nn.functional as F
    x, weight, b, stride, padding = conv_inputs(seed, **{**cfg, "bias": True})
    pair = (lambda v: v if isinstance(v, tuple) else (v, v))
    xt, wt, bt = (t.clone().requires_grad_(True) for t in (x, weight, b))
    out = F.conv2d(xt, wt, bt, pair(stride), pair(padding))
    g = torch.Generator().manual_seed(seed + 1)
    dout = torch.randn(out.shape, generator=g, dtype=torch.float64)
    out.backward(dout)
    dx, dw, db = nb.conv2d_backward(dout.clone(), x.clone(), weight.clone(), stride, padding)
    return {"dx": dx, "dw": dw, "db": db, "torch_dx": xt.grad, "torch_dw": wt.grad, "torch_db": bt.grad}


@probe
def function_case(nb, seed, **cfg):
    """Conv2dFunction.apply(x, w, b, stride, padding), then .backward of a random upstream gradient."""
    import torch
    x, weight, b, stride, padding = conv_inputs(seed, **cfg)
    x.requires_grad_(True)
    weight.requires_grad_(True)
    if b is not None:
        b.requires_grad_(True)
    out = nb.Conv2dFunction.apply(x, weight, b, stride, padding)
    g = torch.Generator().manual_seed(seed + 1)
    out.backward(torch.randn(out.shape, generator=g, dtype=torch.float64))
    grad = (lambda t: torch.zeros(0) if t is None or t.grad is None else t.grad)    # never None: plain arrays
    return {"out": out.detach(), "dx": grad(x), "dw": grad(weight), "db": grad(b)}


@probe
def layer_case(nb, seed, n, c_in, h, w, c_out, kernel, stride, padding, bias):
    """A float64 Conv2dLayer given seeded weights: its output, the gradients of a random upstream gradient,
    and the name of the autograd node that produced the output."""
    import torch
    as_pair = (lambda v: tuple(v) if isinstance(v, list) else v)
    layer = nb.Conv2dLayer(c_in, c_out, as_pair(kernel), stride=as_pair(stride), padding=as_pair(padding),
                           bias=bias).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (layer.weight, layer.bias):     # by name: the order of registration is the student's choice
            if p is not None:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    out.backward(torch.randn(out.shape, generator=g, dtype=torch.float64))
    tensors = {"dx": x, "dweight": layer.weight, "dbias": layer.bias}
    received = {name: t is not None and t.grad is not None for name, t in tensors.items()}
    return {"out": out.detach(), "node": type(out.grad_fn).__name__ if out.grad_fn is not None else "none",
            "received": received, **{name: t.grad if received[name] else torch.zeros(0) for name, t in tensors.items()}}


@probe
def layer_parameters(nb, c_in, c_out, kernel, bias):
    """Names and shapes of Conv2dLayer's parameters."""
    as_pair = (lambda v: tuple(v) if isinstance(v, list) else v)
    layer = nb.Conv2dLayer(c_in, c_out, as_pair(kernel), bias=bias)
    return {name: list(p.shape) for name, p in layer.named_parameters()}


@probe
def layer_init(nb, seed):
    """Initial weight and bias of Conv2dLayer(32, 256, (3, 2)), measured in units of 1/sqrt(fan_in)."""
    import math
    import torch
    torch.manual_seed(seed)
    layer = nb.Conv2dLayer(32, 256, (3, 2))
    scale = math.sqrt(32 * 3 * 2)      # 1 / bound
    stats = {}
    for name in ("weight", "bias"):
        t = getattr(layer, name).detach().to(torch.float64) * scale
        stats[name] = {"max_abs": t.abs().max().item(), "mean": t.mean().item(),
                       "std_times_sqrt3": t.std().item() * math.sqrt(3)}
    return stats


@probe
def forbidden_calls(nb, fn, seed, **cfg):
    """nb.<fn> on a convolution's inputs while PyTorch's convolutions (F.conv2d, F.conv_transpose2d and their
    torch.* twins) and, for conv2d_naive, F.unfold raise when called: which of them it called. conv2d_backward
    runs under torch.inference_mode() instead, where autograd cannot record a graph."""
    import torch
    import torch.nn.functional as F
    x, weight, b, stride, padding = conv_inputs(seed, **cfg)
    names = {"conv2d_naive": ["conv2d", "conv_transpose2d", "unfold"], "conv2d_unfold": ["conv2d", "conv_transpose2d"],
             "conv2d_backward": []}[fn]
    called = []
    saved = {(module, name): getattr(module, name) for module in (F, torch) for name in names if hasattr(module, name)}

    def forbid(label):
        def raiser(*args, **kwargs):
            called.append(label)
            raise RuntimeError(f"{label} may not be used here")
        return raiser

    for (module, name) in saved:
        setattr(module, name, forbid(("F." if module is F else "torch.") + name))
    error = ""
    try:
        if fn == "conv2d_backward":
            pair = (lambda v: v if isinstance(v, tuple) else (v, v))
            H_out = (x.shape[2] + 2 * pair(padding)[0] - weight.shape[2]) // pair(stride)[0] + 1
            W_out = (x.shape[3] + 2 * pair(padding)[1] - weight.shape[3]) // pair(stride)[1] + 1
            g = torch.Generator().manual_seed(seed + 1)
            dout = torch.randn(x.shape[0], weight.shape[0], H_out, W_out, generator=g, dtype=torch.float64)
            with torch.inference_mode():
                nb.conv2d_backward(dout, x, weight, stride, padding)
        else:
            getattr(nb, fn)(x, weight, b, stride, padding)
    except Exception as exc:                       # reported: a forbidden call, or autograd in inference mode
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
    return {"called": sorted(set(called)), "error": error}

# ---------------------------------------------------------------------------------------------------------
# conv_naive
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("conv_naive")
def test_conv_output_size(student, reference):
    """conv_output_size(n, k, stride, padding) = floor((n + 2*padding - k) / stride) + 1: count the window's starting positions."""
    cases = [[7, 3, 1, 0], [7, 3, 2, 1], [8, 3, 2, 1], [5, 5, 1, 2], [10, 4, 3, 0], [9, 2, 4, 3], [1, 1, 1, 0],
             [6, 3, 5, 0], [28, 5, 1, 2]]
    found = student(output_sizes, cases=cases)
    expected = reference(output_sizes, cases=cases)
    for case, f, e in zip(cases, found, expected):
        check(f == e, f"conv_output_size(n={case[0]}, k={case[1]}, stride={case[2]}, padding={case[3]}) "
                      f"returned {f}, expected {e}")


@pytest.mark.exercise("conv_naive")
def test_conv2d_naive_matches_F_conv2d(student, reference, seed):
    """conv2d_naive must compute what F.conv2d computes: a cross-correlation (the kernel is NOT flipped) summed over all input channels, plus one bias per output channel."""
    found = student(conv_case, fn="conv2d_naive", seed=seed, **BASIC)
    check(found["input_unchanged"], "conv2d_naive changed its input x in place: pad a copy (F.pad returns one)")
    _agree(student, reference, conv_case, [BASIC], ["out"], "conv2d_naive", against_torch=True, fn="conv2d_naive",
           seed=seed)

@pytest.mark.exercise("conv_naive")
def test_conv2d_naive_computes_the_sums_itself(student, reference, seed):
    """conv2d_naive computes each window's sum itself, with tensor operations on the window: no F.conv2d and no F.unfold."""
    found = student(forbidden_calls, fn="conv2d_naive", seed=seed, **BASIC)
    check(not found["called"], f"conv2d_naive called {', '.join(found['called'])}: compute each output from its window "
                               "with Python loops over the positions and output channels")
    check(not found["error"], f"conv2d_naive failed: {found['error']}")
    _agree(student, reference, conv_case, [BASIC], ["out"], "conv2d_naive", fn="conv2d_naive", seed=seed)


@pytest.mark.exercise("conv_naive")
def test_conv2d_naive_stride_and_padding(student, reference, seed):
    """Strides and paddings may differ between height and width ((s_h, s_w), (p_h, p_w)): the window at output (i, j) starts at row i*s_h and column j*s_w of the input padded with p_h rows and p_w columns of zeros on each side."""
    _agree(student, reference, conv_case, STRIDED, ["out"], "conv2d_naive", fn="conv2d_naive", seed=seed)


@pytest.mark.exercise("conv_naive")
def test_conv2d_naive_channels_and_bias(student, reference, seed):
    """Each output channel o sums w[o, c] * window over EVERY input channel c, then adds b[o] once per position (nothing when b is None); check a batch of one and C_in != C_out."""
    _agree(student, reference, conv_case, CHANNELS, ["out"], "conv2d_naive", fn="conv2d_naive", seed=seed)


# ---------------------------------------------------------------------------------------------------------
# conv_vectorized
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("conv_vectorized")
def test_conv2d_unfold_matches_F_conv2d(student, reference, seed):
    """conv2d_unfold must agree with F.conv2d: F.unfold gives [N, C_in*kH*kW, L], w.reshape(C_out, -1) @ it gives [N, C_out, L], reshaped to [N, C_out, H_out, W_out]."""
    _agree(student, reference, conv_case, [BASIC, CHANNELS[0]], ["out"], "conv2d_unfold", against_torch=True,
           fn="conv2d_unfold", seed=seed)


@pytest.mark.exercise("conv_vectorized")
def test_conv2d_unfold_stride_padding_channels_bias(student, reference, seed):
    """Pass padding and stride as (h, w) pairs to F.unfold, add b[o] to every position of output channel o (b.view(1, C_out, 1)), and skip it when b is None."""
    _agree(student, reference, conv_case, STRIDED + CHANNELS[1:], ["out"], "conv2d_unfold", fn="conv2d_unfold",
           seed=seed)


@pytest.mark.exercise("conv_vectorized")
def test_conv2d_unfold_is_vectorized(student, reference, seed):
    """conv2d_unfold must not loop in Python over output positions, examples or channels: one F.unfold and one matrix product do all the work, and a loop is many times slower where it runs over many (4096 positions, 1024 examples, 2048 filters, 1024 input channels)."""
    found = student(unfold_speed, seed=seed, cases=SPEED_CASES)
    for what, shape, filters, most in SPEED_CASES:
        t = found[what]
        ratio = t["student_seconds"] / max(t["reference_seconds"], 1e-9)
        x = "x [" + ", ".join(map(str, shape)) + "]"
        check(not t["too_slow"], f"conv2d_unfold took {1e3 * t['student_seconds']:.2f} ms on {x} with {filters} filters "
                             f"3x3 (many {what}), {ratio:.0f} times the {1e3 * t['reference_seconds']:.2f} ms of one "
                             f"F.unfold and one matrix product (at most {most} times allowed): remove the Python "
                             f"loops (is there one over the {what}?)")
    _agree(student, reference, conv_case, [BASIC], ["out"], "conv2d_unfold", fn="conv2d_unfold", seed=seed)


@pytest.mark.exercise("conv_vectorized")
def test_conv2d_unfold_uses_unfold_and_a_product(student, reference, seed):
    """conv2d_unfold does the work with F.unfold and a matrix product, not by calling F.conv2d."""
    found = student(forbidden_calls, fn="conv2d_unfold", seed=seed, **STRIDED[1])
    check(not found["called"], f"conv2d_unfold called {', '.join(found['called'])}: unfold the input and multiply it "
                               "by w.reshape(C_out, -1)")
    check(not found["error"], f"conv2d_unfold failed: {found['error']}")
    _agree(student, reference, conv_case, [STRIDED[1]], ["out"], "conv2d_unfold", fn="conv2d_unfold", seed=seed)


# ---------------------------------------------------------------------------------------------------------
# max_pooling
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("max_pooling")
def test_maxpool_forward(student, reference, seed):
    """maxpool2d_forward takes the MAXIMUM of each kH x kW window, windows starting every (s_h, s_w) entries (stride None means stride = kernel); rows or columns that do not fill a window are dropped."""
    _agree(student, reference, pool_case, POOL_DISJOINT + POOL_OVERLAPPING, ["out"], "maxpool2d_forward",
           against_torch=True, tol=0, seed=seed, backward=False)


@pytest.mark.exercise("max_pooling")
def test_maxpool_backward_routes_to_the_maximum(student, reference, seed):
    """With stride = kernel every input is in at most one window: dx is dout of that window at the position of the window's maximum and 0 everywhere else (also in rows or columns no window covers)."""
    _agree(student, reference, pool_case, POOL_DISJOINT, ["dx"], "maxpool2d_backward", against_torch=True, tol=1e-12,
           seed=seed, backward=True)


@pytest.mark.exercise("max_pooling")
def test_maxpool_backward_overlapping_windows(student, reference, seed):
    """With stride < kernel the windows overlap and one input can be the maximum of several windows: its gradient is the SUM of their dout (accumulate with +=, do not overwrite)."""
    _agree(student, reference, pool_case, POOL_OVERLAPPING, ["dx"], "maxpool2d_backward", against_torch=True,
           tol=1e-12, seed=seed, backward=True)


@pytest.mark.exercise("max_pooling")
def test_maxpool_has_no_loop_over_positions(student, reference, seed):
    """maxpool2d_forward and maxpool2d_backward must not loop in Python over the output positions (the windows): the windows are one strided view, their maximum one amax, and the backward pass needs at most a loop over the kH*kW offsets inside a window (and the results are max pooling's)."""
    found = student(pool_speed, seed=seed, most=20)
    for what in ("forward", "backward"):
        t = found[what]
        ratio = t["student_seconds"] / max(t["reference_seconds"], 1e-9)
        check(not t["too_slow"], f"maxpool2d_{what} took {1e3 * t['student_seconds']:.2f} ms on x [1, 1, 128, 128] with "
                           f"kernel 2 (4096 windows), {ratio:.0f} times the {1e3 * t['reference_seconds']:.2f} ms of "
                           "the same work on strided windows (at most 20 times allowed): remove the Python loop "
                           "over the output positions")
    _agree(student, reference, pool_case, POOL_DISJOINT[:1], ["out"], "maxpool2d_forward", against_torch=True, tol=0,
           seed=seed, backward=False)
    _agree(student, reference, pool_case, POOL_OVERLAPPING[:1], ["dx"], "maxpool2d_backward", against_torch=True,
           tol=1e-12, seed=seed, backward=True)


# ---------------------------------------------------------------------------------------------------------
# conv_backward
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("conv_backward")
def test_conv2d_backward_matches_autograd(student, reference, seed):
    """dw = sum over the batch of dout_n @ cols_n^T (reshaped like w), db = dout summed over batch and positions, dx = F.fold(w_mat.T @ dout): compare with autograd through F.conv2d."""
    _agree(student, reference, conv_backward_case, [BASIC, CHANNELS[0]], ["dx", "dw", "db"], "conv2d_backward",
           against_torch=True, seed=seed)


@pytest.mark.exercise("conv_backward")
def test_conv2d_backward_strides_and_batches(student, reference, seed):
    """With strides, paddings and batches of several examples: dw and db are SUMS over the batch (not means), and dx sums the contributions of every window that covered a pixel."""
    _agree(student, reference, conv_backward_case, STRIDED + CHANNELS[1:], ["dx", "dw", "db"], "conv2d_backward",
           seed=seed)

@pytest.mark.exercise("conv_backward")
def test_conv2d_backward_by_hand(student, reference, seed):
    """conv2d_backward computes the gradients by hand, without autograd: it must work under torch.inference_mode(), where autograd records nothing, and give the gradients."""
    for cfg in (BASIC, STRIDED[1]):
        found = student(forbidden_calls, fn="conv2d_backward", seed=seed, **cfg)
        check(not found["error"], f"conv2d_backward failed under torch.inference_mode(), where autograd records "
                                  f"nothing ({found['error']}): compute the gradients without autograd")
        _agree(student, reference, conv_backward_case, [cfg], ["dx", "dw", "db"], "conv2d_backward", seed=seed)


@pytest.mark.exercise("conv_backward")
def test_conv2d_backward_has_no_loop(student, reference, seed):
    """conv2d_backward must not loop in Python over positions, examples or channels: F.unfold, two matrix products and F.fold give dw and dx, and a loop is many times slower where it runs over many (4096 positions, 1024 examples, 2048 filters, 1024 input channels)."""
    found = student(conv_backward_speed, seed=seed, cases=SPEED_CASES)
    for what, shape, filters, most in SPEED_CASES:
        t = found[what]
        ratio = t["student_seconds"] / max(t["reference_seconds"], 1e-9)
        x = "x [" + ", ".join(map(str, shape)) + "]"
        check(not t["too_slow"], f"conv2d_backward took {1e3 * t['student_seconds']:.2f} ms on {x} with {filters} "
                                 f"filters 3x3 (many {what}), {ratio:.0f} times the {1e3 * t['reference_seconds']:.2f} "
                                 f"ms of F.unfold, matrix products and F.fold (at most {most} times allowed): remove "
                                 f"the Python loops (is there one over the {what}?)")
    _agree(student, reference, conv_backward_case, [STRIDED[1]], ["dx", "dw", "db"], "conv2d_backward", seed=seed)


@pytest.mark.exercise("conv_backward")
def test_conv2d_function_gradients(student, reference, seed):
    """Conv2dFunction.backward must return one gradient per input of forward, in order (dx, dw, db, None, None), with db None when b is None."""
    _agree(student, reference, function_case, [STRIDED[1], CHANNELS[1]], ["out", "dx", "dw", "db"], "Conv2dFunction",
           seed=seed)


@pytest.mark.exercise("conv_backward")
def test_conv2d_layer_parameters(student, reference):
    """Conv2dLayer registers nn.Parameters named `weight` [C_out, C_in, kH, kW] and `bias` [C_out] (no bias when bias=False), like nn.Conv2d."""
    for c_in, c_out, kernel, bias in [(3, 5, 3, True), (2, 4, [3, 1], False), (1, 1, [2, 5], True)]:
        found = student(layer_parameters, c_in=c_in, c_out=c_out, kernel=kernel, bias=bias)
        expected = reference(layer_parameters, c_in=c_in, c_out=c_out, kernel=kernel, bias=bias)
        check(sorted(found) == sorted(expected), f"Conv2dLayer({c_in}, {c_out}, {kernel}, bias={bias}) has the "
                                                 f"parameters {sorted(found)}, expected {sorted(expected)}")
        assert_close(found, expected, atol=0, rtol=0,
                     what=f"the parameter shapes of Conv2dLayer({c_in}, {c_out}, {kernel}, bias={bias})")


@pytest.mark.exercise("conv_backward")
def test_conv2d_layer_init(student, seed):
    """Like nn.Conv2d, weight and bias start uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in = in_channels * kH * kW."""
    found = student(layer_init, seed=seed)
    for name in ("weight", "bias"):
        s = found[name]
        check(s["max_abs"] <= 1 + 1e-6, f"Conv2dLayer(32, 256, (3, 2)).{name} has entries up to "
                                        f"{s['max_abs']:.3g} / sqrt(fan_in), expected at most 1 / sqrt(fan_in)")
        check(abs(s["std_times_sqrt3"] - 1) < 0.25 and abs(s["mean"]) < 0.2,
              f"Conv2dLayer(32, 256, (3, 2)).{name} has mean {s['mean']:.3g} and standard deviation "
              f"{s['std_times_sqrt3'] / 3 ** 0.5:.3g} in units of 1 / sqrt(fan_in), expected 0 and 1/sqrt(3) = 0.577 "
              "(uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)])")


@pytest.mark.exercise("conv_backward")
def test_conv2d_layer_forward_backward(student, reference, seed):
    """Conv2dLayer.forward must return Conv2dFunction.apply(x, self.weight, self.bias, stride, padding), so that x, weight and bias all receive gradients."""
    cases = [dict(n=2, c_in=3, h=8, w=7, c_out=4, kernel=[3, 2], stride=[2, 1], padding=[1, 0], bias=True),
             dict(n=1, c_in=2, h=5, w=6, c_out=3, kernel=3, stride=1, padding=1, bias=False)]
    for cfg in cases:
        found = student(layer_case, seed=seed, **cfg)
        expected = reference(layer_case, seed=seed, **cfg)
        check(found["node"] == expected["node"], f"the output of Conv2dLayer comes from {found['node']}, expected "
                                                 f"{expected['node']}: call Conv2dFunction.apply in forward")
        for name, got in expected["received"].items():
            check(found["received"][name] or not got, f"Conv2dLayer ({_cfg(cfg)}): {name[1:]} received no "
                                                      "gradient; is it detached (.data, .detach()) on the way in?")
        assert_close(found, expected, atol=1e-10, rtol=1e-10,
                     what=f"Conv2dLayer's output and gradients for {_cfg(cfg)}")
