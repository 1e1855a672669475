"""Hidden tests for week1/02_backprop_and_mlp: backprop by hand, then the PyTorch way.

Every probe builds its inputs from `seed`, in float64 where the exercise allows it, with odd non-square
shapes, batches of one and random upstream gradients.
"""
import pytest

from course.testing import assert_close, check, is_finite, probe


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def linear_case(nb, seed, n, d_in, d_out):
    """Forward and backward of the affine layer on random float64 inputs and a random upstream gradient."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    W = torch.randn(d_in, d_out, generator=g, dtype=torch.float64)
    b = torch.randn(d_out, generator=g, dtype=torch.float64)
    dout = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    out = nb.linear_forward(x.clone(), W.clone(), b.clone())
    dx, dW, db = nb.linear_backward(dout.clone(), x.clone(), W.clone())
    return {"out": out, "dx": dx, "dW": dW, "db": db}


@probe
def relu_case(nb, seed, shape, zeros=False):
    """ReLU forward/backward at inputs kept at least 0.05 away from 0 (with `zeros`, every third entry exactly 0),
    with a random upstream gradient; also the arguments as each call left them."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    x = x + 0.05 * torch.where(x >= 0, 1.0, -1.0).to(x.dtype)     # no exact (or near) zeros
    if zeros:
        x.view(-1)[::3] = 0.0
    dout = torch.randn(*shape, generator=g, dtype=torch.float64)
    given = x.clone()
    out = nb.relu_forward(given)
    x_given, dout_given = x.clone(), dout.clone()
    dx = nb.relu_backward(dout_given, x_given)
    result = {"out": out, "dx": dx, "input_after_forward": given,
              "x_after_backward": x_given, "dout_after_backward": dout_given}
    if zeros:
        result["dx_at_zero"] = torch.as_tensor(dx)[x == 0]
    return result


@probe
def sigmoid_case(nb, seed, shape):
    """Sigmoid forward on random and extreme inputs; backward from the exact output s, random upstream."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(*shape, generator=g, dtype=torch.float64)
    x.view(-1)[0] = -40.0
    x.view(-1)[-1] = 40.0
    dout = torch.randn(*shape, generator=g, dtype=torch.float64)
    x_given = x.clone()
    s = nb.sigmoid_forward(x_given)
    dout_given, s_given = dout.clone(), torch.sigmoid(x)
    dx = nb.sigmoid_backward(dout_given, s_given)
    return {"s": s, "dx": dx, "x_after_forward": x_given, "dout_after_backward": dout_given,
            "s_after_backward": s_given}


@probe
def softmax_ce_case(nb, seed, n, c, scale, dtype="float64", row_offsets=0.0):
    """Loss and dlogits on random logits of a given scale, with optional large per-row offsets."""
    import torch
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    if row_offsets:
        logits = logits + row_offsets * torch.randint(-1, 2, (n, 1), generator=g).to(torch.float64)
    logits = logits.to(dt)
    y = torch.randint(0, c, (n,), generator=g)
    loss, dlogits = nb.softmax_cross_entropy(logits.clone(), y.clone())
    return {"loss": float(loss), "dlogits": torch.as_tensor(dlogits).to(torch.float64)}


@probe
def softmax_ce_loss_kind(nb, seed):
    """What softmax_cross_entropy returns as the loss on random float64 logits: its type, its shape, its value."""
    import torch
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    loss, dlogits = nb.softmax_cross_entropy(logits.clone(), y.clone())
    is_tensor = isinstance(loss, torch.Tensor)
    return {"type": type(loss).__name__, "is_tensor": is_tensor, "shape": list(loss.shape) if is_tensor else None,
            "loss": torch.as_tensor(loss, dtype=torch.float64).detach().reshape(-1),
            "dlogits": torch.as_tensor(dlogits, dtype=torch.float64)}


@probe
def softmax_ce_batch_and_shift(nb, seed):
    """The same batch twice (mean: loss unchanged, gradient halved) and per-row shifted logits."""
    import torch
    g = torch.Generator().manual_seed(seed)
    n, c = 5, 7
    logits = 2 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    shift = 50 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    loss, dlogits = nb.softmax_cross_entropy(logits.clone(), y.clone())
    loss2, dlogits2 = nb.softmax_cross_entropy(torch.cat([logits, logits]), torch.cat([y, y]))
    loss_s, dlogits_s = nb.softmax_cross_entropy(logits + shift, y.clone())
    return {"loss": float(loss), "dlogits": dlogits,
            "loss_doubled": float(loss2), "dlogits_doubled": dlogits2[:n],
            "loss_shifted": float(loss_s), "dlogits_shifted": dlogits_s}


@probe
def numgrad_case(nb, seed):
    """Numerical gradient of a random smooth function of a [3, 4] float64 tensor, and autograd's."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    A = torch.randn(3, 4, generator=g, dtype=torch.float64)
    B = torch.randn(4, 2, generator=g, dtype=torch.float64)

    def f(t):
        return (torch.sin(t) * A).sum() + ((t @ B) ** 2).sum() / 3 + 0.2 * (t ** 3).sum()

    x0 = x.clone()
    grad = nb.numerical_gradient(f, x, 1e-4)
    xa = x0.clone().requires_grad_(True)
    f(xa).backward()
    return {"grad": torch.as_tensor(grad, dtype=torch.float64), "autograd": xa.grad,
            "x_unchanged": bool(torch.equal(x, x0))}


@probe
def relative_error_case(nb, seed):
    """relative_error on random tensors, on a tensor and itself, on both scaled by 1e6 and by 1e-3 (norms below
    1), and on two zero tensors (where only the 1e-12 floor keeps the quotient defined)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64)
    b = a + 0.1 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    r = nb.relative_error(a, b)
    zero = torch.zeros(5, 3, dtype=torch.float64)
    return {"a_b": float(r), "a_a": float(nb.relative_error(a, a.clone())),
            "scaled": float(nb.relative_error(1e6 * a, 1e6 * b)), "small": float(nb.relative_error(1e-3 * a, 1e-3 * b)),
            "opposite": float(nb.relative_error(a, -a)), "zeros": float(nb.relative_error(zero, zero.clone())),
            "is_float": isinstance(r, float)}


@probe
def mlp_shapes(nb, sizes, activation, n):
    """Parameter count, number of nn.Linear layers and output shape of MLP(sizes, activation)."""
    import torch
    torch.manual_seed(0)
    model = nb.MLP(sizes, activation)
    out = model(torch.randn(n, sizes[0]))
    return {"n_params": sum(p.numel() for p in model.parameters()),
            "n_linear": sum(isinstance(m, torch.nn.Linear) for m in model.modules()),
            "shape": list(out.shape)}


@probe
def mlp_net_layers(nb, sizes, activation):
    """What MLP(sizes, activation) keeps in `self.net`: the container's type and the layers it holds, in order."""
    import torch
    model = nb.MLP(sizes, activation)
    has_net = hasattr(model, "net")
    net = getattr(model, "net", None)
    layers = None
    if isinstance(net, torch.nn.Module):
        layers = [f"Linear({m.in_features}, {m.out_features})" if isinstance(m, torch.nn.Linear) else type(m).__name__
                  for m in net.children()]
    return {"has_net": has_net, "net": type(net).__name__, "is_sequential": isinstance(net, torch.nn.Sequential),
            "layers": layers}


@probe
def mlp_forward(nb, seed, sizes, activation, n):
    """MLP output in float64 after giving its nn.Linear layers (in order) the same seeded weights."""
    import torch
    g = torch.Generator().manual_seed(seed)
    model = nb.MLP(sizes, activation).double()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin in linears:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
    x = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    return {"logits": model(x), "layer_shapes": [list(lin.weight.shape) for lin in linears]}


@probe
def evaluate_case(nb, seed):
    """Accuracy of a fixed linear model on 37 examples where a seeded number of labels were changed."""
    import torch
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(6, 4)
    with torch.no_grad():
        model.weight.copy_(torch.randn(4, 6, generator=g))
        model.bias.copy_(torch.randn(4, generator=g))
        x = torch.randn(37, 6, generator=g)
        y = model(x).argmax(dim=1)
    wrong = torch.randperm(37, generator=g)[: 3 + seed % 25]
    y[wrong] = (y[wrong] + torch.randint(1, 4, (len(wrong),), generator=g)) % 4
    acc = nb.evaluate(model, x, y)
    return {"accuracy": float(acc), "is_float": isinstance(acc, float)}


@probe
def evaluate_spy(nb, seed):
    """Records, at each forward call made by evaluate, whether autograd was on and the model's mode."""
    import torch

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 3)
            self.seen = []

        def forward(self, x):
            self.seen.append((torch.is_grad_enabled(), self.training))
            return self.lin(x)

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Spy()
    model.train()
    x, y = torch.randn(11, 5, generator=g), torch.randint(0, 3, (11,), generator=g)
    accuracy = nb.evaluate(model, x, y)
    return {"calls": len(model.seen), "grad_enabled": [s[0] for s in model.seen],
            "training": [s[1] for s in model.seen], "accuracy": float(accuracy)}


@probe
def train_epoch_case(nb, seed):
    """Three SGD steps (batches of 4, 3 and 1) on a fixed float64 network; losses and parameters after."""
    import torch
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    batches = [(torch.randn(b, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (b,), generator=g))
               for b in (4, 3, 1)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = nb.train_epoch(model, batches, optimizer, torch.nn.CrossEntropyLoss())
    return {"losses": [float(v) for v in losses], "params": [p.detach().clone() for p in model.parameters()]}


@probe
def digits_run(nb, seed):
    """The student's MLP([64, 256, 10]) trained by the student's train() on digits; accuracy measured here."""
    import time
    import torch
    from coursedata import digits
    data = digits()
    torch.manual_seed(seed)
    model = nb.MLP([64, 256, 10], "relu")
    cpu, wall = time.process_time(), time.perf_counter()
    history = nb.train(model, data, epochs=20, lr=3e-3, batch_size=32, seed=seed, progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    model.eval()
    with torch.no_grad():
        accuracy = (model(data["x_test"]).argmax(dim=1) == data["y_test"]).double().mean().item()
    return {"accuracy": accuracy, "cpu_seconds": cpu, "wall_seconds": wall,
            "loss": [float(v) for v in history["loss"]]}


@probe
def train_history(nb, seed):
    """A 3-epoch run on digits split into training, validation and test data: the history, and what the
    notebook's evaluate says of the trained model on each of the three sets."""
    import torch
    from coursedata import digits
    full = digits()
    order = torch.randperm(len(full["x_train"]), generator=torch.Generator().manual_seed(seed))
    val, keep = order[:200], order[200:]
    data = {"x_train": full["x_train"][keep], "y_train": full["y_train"][keep],
            "x_val": full["x_train"][val], "y_val": full["y_train"][val],
            "x_test": full["x_test"], "y_test": full["y_test"]}
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    scope, epochs = nb.train.__globals__, []       # the losses each call of the notebook's train_epoch returned
    train_epoch, orders = scope["train_epoch"], []  # and the order of the training examples in its batches
    fingerprint = torch.randn(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def recorded(*args, **kwargs):
        args = list(args)                       # batches materialized, so a DataLoader is iterated only once
        if "batches" in kwargs:
            kwargs["batches"] = batches = list(kwargs["batches"])
        else:
            args[1] = batches = list(args[1])
        xs = [torch.as_tensor(xb).detach().cpu().double().reshape(-1, 64) for xb, _ in batches]
        orders.append({"sizes": [len(xb) for xb in xs], "x": [float(v) for xb in xs for v in xb @ fingerprint],
                       "y": [int(v) for _, yb in batches for v in torch.as_tensor(yb).detach().cpu().reshape(-1)]})
        losses = train_epoch(*args, **kwargs)
        epochs.append([float(v) for v in losses])
        return losses

    scope["train_epoch"] = recorded
    try:
        history = nb.train(model, data, epochs=3, lr=3e-3, batch_size=32, seed=seed, progress=False)
    finally:
        scope["train_epoch"] = train_epoch
    after = {name: float(nb.evaluate(model, data[f"x_{name}"], data[f"y_{name}"])) for name in ("val", "test", "train")}
    with torch.no_grad():  # what the trained model has learned, measured here, whatever evaluate does
        learned = float((model(data["x_val"]).argmax(1) == data["y_val"]).float().mean())
    return {"keys": sorted(history), "loss": [float(v) for v in history["loss"]],
            "val_acc": [float(v) for v in history.get("val_acc", [])], "evaluate_after": after,
            "learned": learned, "step_losses": epochs, "orders": orders,
            "examples": sorted(float(v) for v in data["x_train"].double() @ fingerprint)}


@probe
def train_progress(nb, seed):
    """train for 2 epochs on 64 digits with progress=True, then with progress=False: how many tqdm bars each run
    made and how many of them were shown (not disabled), whichever tqdm class or import the notebook uses."""
    import contextlib
    import io

    import torch
    from tqdm import std

    from coursedata import digits
    full = digits()
    data = {"x_train": full["x_train"][:64], "y_train": full["y_train"][:64],
            "x_val": full["x_train"][64:96], "y_val": full["y_train"][64:96]}
    bars, init = [], std.tqdm.__init__

    def recording(self, *args, **kwargs):       # every tqdm class (tqdm.auto's, trange's) runs this __init__
        init(self, *args, **kwargs)
        bars.append(not self.disable)           # now: close() sets disable

    runs = {}
    std.tqdm.__init__ = recording
    try:
        for progress in (True, False):
            bars.clear()
            torch.manual_seed(seed)
            model = torch.nn.Linear(64, 10)
            with contextlib.redirect_stderr(io.StringIO()):     # where tqdm draws
                history = nb.train(model, data, epochs=2, lr=1e-3, batch_size=32, seed=seed, progress=progress)
            losses = history.get("loss", []) if isinstance(history, dict) else []
            runs[f"progress={progress}"] = {"bars": len(bars), "shown": sum(bars), "loss": [float(v) for v in losses]}
    finally:
        std.tqdm.__init__ = init
    return runs


# ---------------------------------------------------------------------------------------------------------
# linear layer
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("linear_layer")
def test_linear_forward(student, reference, seed):
    """linear_forward must compute x @ W + b with x [N, D_in], W [D_in, D_out], b [D_out] (b broadcast over rows)."""
    for n, d_in, d_out in [(7, 5, 3), (1, 4, 6)]:
        found = student(linear_case, seed=seed, n=n, d_in=d_in, d_out=d_out)
        expected = reference(linear_case, seed=seed, n=n, d_in=d_in, d_out=d_out)
        assert_close(found["out"], expected["out"], atol=1e-10, rtol=1e-10,
                     what=f"linear_forward's output for N={n}, D_in={d_in}, D_out={d_out}")


@pytest.mark.exercise("linear_layer")
def test_linear_backward_odd_shapes(student, reference, seed):
    """With x [7, 5] and W [5, 3]: dx = dout @ W.T, dW = x.T @ dout ([D_in, D_out], like W), db = dout summed over the batch."""
    found = student(linear_case, seed=seed, n=7, d_in=5, d_out=3)
    expected = reference(linear_case, seed=seed, n=7, d_in=5, d_out=3)
    for name in ("dx", "dW", "db"):
        assert_close(found[name], expected[name], atol=1e-10, rtol=1e-10,
                     what=f"linear_backward's {name} (x [7, 5], W [5, 3], random upstream gradient)")


@pytest.mark.exercise("linear_layer")
def test_linear_backward_batch_of_one(student, reference, seed):
    """With a batch of one example each gradient keeps its shape: dx [1, D_in], dW [D_in, D_out], db [D_out] (sum, not mean)."""
    for n, d_in, d_out in [(1, 4, 6), (3, 8, 1)]:
        found = student(linear_case, seed=seed, n=n, d_in=d_in, d_out=d_out)
        expected = reference(linear_case, seed=seed, n=n, d_in=d_in, d_out=d_out)
        for name in ("dx", "dW", "db"):
            assert_close(found[name], expected[name], atol=1e-10, rtol=1e-10,
                         what=f"linear_backward's {name} for N={n}, D_in={d_in}, D_out={d_out}")


# ---------------------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("activations")
def test_relu_forward(student, reference, seed):
    """relu_forward keeps positive entries and zeroes negative ones, without modifying its input in place."""
    found = student(relu_case, seed=seed, shape=[6, 5])
    expected = reference(relu_case, seed=seed, shape=[6, 5])
    assert_close(found["out"], expected["out"], atol=0, rtol=0, what="relu_forward's output")
    assert_close(found["input_after_forward"], expected["input_after_forward"], atol=0, rtol=0,
                 what="the tensor passed to relu_forward (it must not be changed in place)")


@pytest.mark.exercise("activations")
def test_relu_backward(student, reference, seed):
    """relu_backward(dout, x) passes dout through where the INPUT x was positive and gives 0 elsewhere, without
    modifying dout or x in place."""
    for shape in ([6, 5], [1, 7], [2, 3, 4]):
        found = student(relu_case, seed=seed, shape=shape)
        expected = reference(relu_case, seed=seed, shape=shape)
        for name in ("dout", "x"):
            assert_close(found[f"{name}_after_backward"], expected[f"{name}_after_backward"], atol=0, rtol=0,
                         what=f"the {name} passed to relu_backward (it must not be changed in place)")
        assert_close(found["dx"], expected["dx"], atol=1e-12, rtol=0,
                     what=f"relu_backward's dx for shape {shape} (random upstream gradient)")


@pytest.mark.exercise("activations")
def test_relu_backward_at_zero(student, reference, seed):
    """At an input of exactly 0 ReLU has no derivative, and the notebook (like PyTorch) takes it to be 0 there:
    relu_backward gives 0 wherever x == 0, whatever dout is."""
    for shape in ([6, 5], [1, 7]):
        found = student(relu_case, seed=seed, shape=shape, zeros=True)
        expected = reference(relu_case, seed=seed, shape=shape, zeros=True)
        assert_close(found["dx_at_zero"], expected["dx_at_zero"], atol=0, rtol=0,
                     what=f"relu_backward's dx at the inputs equal to 0 (shape {shape}, random upstream gradient)")
        assert_close(found["dx"], expected["dx"], atol=1e-12, rtol=0,
                     what=f"relu_backward's dx for shape {shape}, some inputs exactly 0")


@pytest.mark.exercise("activations")
def test_sigmoid_forward(student, reference, seed):
    """sigmoid_forward computes 1 / (1 + exp(-x)), without modifying x in place; it must give 0 and 1 (not nan) at
    x = -40 and 40."""
    found = student(sigmoid_case, seed=seed, shape=[5, 3])
    expected = reference(sigmoid_case, seed=seed, shape=[5, 3])
    assert_close(found["x_after_forward"], expected["x_after_forward"], atol=0, rtol=0,
                 what="the tensor passed to sigmoid_forward (it must not be changed in place)")
    check(is_finite(found["s"]), "sigmoid_forward returned nan or inf: check very negative and very positive x")
    assert_close(found["s"], expected["s"], atol=1e-12, rtol=1e-10, what="sigmoid_forward's output")


@pytest.mark.exercise("activations")
def test_sigmoid_backward(student, reference, seed):
    """sigmoid_backward(dout, s) receives the OUTPUT s = sigmoid(x): the local derivative is s * (1 - s), times dout;
    neither dout nor s may be modified in place."""
    for shape in ([5, 3], [1, 4]):
        found = student(sigmoid_case, seed=seed, shape=shape)
        expected = reference(sigmoid_case, seed=seed, shape=shape)
        for name in ("dout", "s"):
            assert_close(found[f"{name}_after_backward"], expected[f"{name}_after_backward"], atol=0, rtol=0,
                         what=f"the {name} passed to sigmoid_backward (it must not be changed in place)")
        assert_close(found["dx"], expected["dx"], atol=1e-12, rtol=1e-10,
                     what=f"sigmoid_backward's dx for shape {shape} (random upstream gradient)")


# ---------------------------------------------------------------------------------------------------------
# softmax cross-entropy
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_ce_values(student, reference, seed):
    """The loss is the mean over the batch of -log softmax(logits)[y], softmax taken over classes (dim 1); dlogits = (p - onehot) / N."""
    for n, c in [(7, 5), (1, 4), (3, 11)]:
        found = student(softmax_ce_case, seed=seed, n=n, c=c, scale=3.0)
        expected = reference(softmax_ce_case, seed=seed, n=n, c=c, scale=3.0)
        assert_close(found, expected, atol=1e-10, rtol=1e-8,
                     what=f"softmax_cross_entropy on {n} examples of {c} classes (loss, dlogits)")


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_ce_loss_is_0dim_tensor(student, reference, seed):
    """The loss comes back as a 0-dim torch tensor (shape []), like the losses of torch.nn: not a Python number,
    not a tensor of shape [1]. Its value is still the mean cross-entropy."""
    found = student(softmax_ce_loss_kind, seed=seed)
    check(found["is_tensor"], f"softmax_cross_entropy returned the loss as a {found['type']}, expected a 0-dim "
                              "torch tensor")
    check(found["shape"] == [], f"the loss returned by softmax_cross_entropy has shape {found['shape']}, expected "
                                "a 0-dim tensor (shape [])")
    expected = reference(softmax_ce_loss_kind, seed=seed)
    assert_close({"loss": found["loss"], "dlogits": found["dlogits"]},
                 {"loss": expected["loss"], "dlogits": expected["dlogits"]}, atol=1e-10, rtol=1e-8,
                 what="softmax_cross_entropy on 6 examples of 4 classes (loss, dlogits)")


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_ce_large_logits(student, reference, seed):
    """Logits near ±1e4 overflow exp(): subtract each ROW's maximum before exponentiating (log-sum-exp)."""
    for dtype in ("float64", "float32"):
        found = student(softmax_ce_case, seed=seed, n=6, c=5, scale=1e4, dtype=dtype, row_offsets=1e4)
        expected = reference(softmax_ce_case, seed=seed, n=6, c=5, scale=1e4, dtype=dtype, row_offsets=1e4)
        check(is_finite(found["loss"]) and is_finite(found["dlogits"]),
              f"with logits of magnitude 1e4 ({dtype}) the loss or the gradient is nan or inf: "
              "subtract the maximum of each row before exp")
        tol = 1e-8 if dtype == "float64" else 1e-3
        assert_close(found, expected, atol=tol, rtol=tol, what=f"softmax_cross_entropy at logits ~1e4 ({dtype})")


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_ce_mean_over_batch(student, reference, seed):
    """The loss is a MEAN over the batch: the same batch twice gives the same loss and half the gradient per example."""
    found = student(softmax_ce_batch_and_shift, seed=seed)
    expected = reference(softmax_ce_batch_and_shift, seed=seed)
    check(abs(found["loss_doubled"] - found["loss"]) <= 1e-9 * max(1.0, abs(found["loss"])),
          f"the loss of a batch repeated twice ({found['loss_doubled']:.6g}) differs from the loss of the batch "
          f"({found['loss']:.6g}): average over the examples rather than sum")
    for key in ("loss", "dlogits", "loss_doubled", "dlogits_doubled"):
        assert_close(found[key], expected[key], atol=1e-10, rtol=1e-8, what=f"softmax_cross_entropy: {key}")


@pytest.mark.exercise("softmax_cross_entropy")
def test_softmax_ce_shift_invariance(student, reference, seed):
    """Adding a constant to every logit of a row changes neither the softmax nor the loss nor the gradient."""
    found = student(softmax_ce_batch_and_shift, seed=seed)
    expected = reference(softmax_ce_batch_and_shift, seed=seed)
    assert_close({"loss": found["loss_shifted"], "dlogits": found["dlogits_shifted"]},
                 {"loss": found["loss"], "dlogits": found["dlogits"]}, atol=1e-9, rtol=1e-7,
                 what="softmax_cross_entropy on logits shifted row by row, compared with the unshifted logits")
    assert_close(found["dlogits_shifted"], expected["dlogits_shifted"], atol=1e-10, rtol=1e-8,
                 what="dlogits for shifted logits")


# ---------------------------------------------------------------------------------------------------------
# numerical gradient
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("gradient_check")
def test_numerical_gradient_matches_autograd(student, reference, seed):
    """Use the CENTRAL difference (f(x+eps) - f(x-eps)) / (2 eps), one coordinate at a time, restoring x[i] after each."""
    found = student(numgrad_case, seed=seed)
    expected = reference(numgrad_case, seed=seed)
    check(found["x_unchanged"], "numerical_gradient changed the tensor x it was given: work on a copy and "
                                "restore each entry after perturbing it")
    assert_close(found["grad"], found["autograd"], atol=1e-6, rtol=1e-6,
                 what="numerical_gradient (eps=1e-4) compared with torch.autograd")
    assert_close(found["grad"], expected["grad"], atol=1e-6, rtol=1e-6, what="numerical_gradient (eps=1e-4)")


@pytest.mark.exercise("gradient_check")
def test_relative_error(student, reference, seed):
    """relative_error(a, b) = ||a - b|| / max(||a|| + ||b||, 1e-12), returned as a Python float; it does not change when both are scaled, up or down, and it is defined for two zero tensors."""
    found = student(relative_error_case, seed=seed)
    expected = reference(relative_error_case, seed=seed)
    check(found["is_float"], "relative_error should return a Python float (use .item())")
    check(found["zeros"] == expected["zeros"], f"relative_error of two zero tensors is {found['zeros']}, expected "
                                               f"{expected['zeros']}: ||a|| + ||b|| is 0 there")
    keys = ("a_b", "a_a", "scaled", "small", "opposite", "zeros")
    assert_close({k: found[k] for k in keys}, {k: expected[k] for k in keys}, atol=1e-12, rtol=1e-9,
                 what="relative_error")


# ---------------------------------------------------------------------------------------------------------
# MLP module
# ---------------------------------------------------------------------------------------------------------

MLP_CONFIGS = [([64, 10], "relu", 1), ([64, 32, 10], "sigmoid", 5), ([5, 7, 3, 2], "relu", 3),
               ([64, 128, 64, 10], "tanh", 2)]


@pytest.mark.exercise("mlp_module")
def test_mlp_parameters_and_shape(student, reference):
    """MLP(sizes) has one nn.Linear per consecutive pair of sizes (with bias), registered in an nn.Sequential, and returns [N, sizes[-1]]."""
    for sizes, activation, n in MLP_CONFIGS:
        found = student(mlp_shapes, sizes=sizes, activation=activation, n=n)
        expected = reference(mlp_shapes, sizes=sizes, activation=activation, n=n)
        assert_close(found, expected, atol=0, rtol=0, what=f"MLP({sizes}, {activation!r}) on a batch of {n}")


@pytest.mark.exercise("mlp_module")
def test_mlp_layers_in_sequential_net(student, reference):
    """MLP keeps its layers in the attribute `self.net`, an nn.Sequential that holds the nn.Linear layers and the
    activations themselves, in the order the forward pass applies them."""
    for sizes, activation, _ in MLP_CONFIGS:
        found = student(mlp_net_layers, sizes=sizes, activation=activation)
        expected = reference(mlp_net_layers, sizes=sizes, activation=activation)
        check(found["has_net"], f"MLP({sizes}, {activation!r}) has no attribute `net`: keep the layers in self.net")
        check(found["is_sequential"], f"MLP({sizes}, {activation!r}).net is a {found['net']}, expected an "
                                      "nn.Sequential")
        assert_close(found["layers"], expected["layers"], atol=0, rtol=0,
                     what=f"the modules held by MLP({sizes}, {activation!r}).net, in order")


@pytest.mark.exercise("mlp_module")
def test_mlp_forward_matches_reference(student, reference, seed):
    """With the same weights, the MLP must compute Linear -> activation -> ... -> Linear, with NO activation after the last layer."""
    for sizes, activation, n in [([6, 9, 4, 3], "relu", 5), ([6, 9, 4, 3], "sigmoid", 1), ([5, 2], "relu", 4),
                                 ([3, 8, 2], "tanh", 2)]:
        found = student(mlp_forward, seed=seed, sizes=sizes, activation=activation, n=n)
        expected = reference(mlp_forward, seed=seed, sizes=sizes, activation=activation, n=n)
        assert_close(found["layer_shapes"], expected["layer_shapes"], atol=0, rtol=0,
                     what=f"the weight shapes of MLP({sizes}, {activation!r})'s nn.Linear layers")
        assert_close(found["logits"], expected["logits"], atol=1e-10, rtol=1e-10,
                     what=f"MLP({sizes}, {activation!r})'s output with the same weights")


# ---------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("evaluate_accuracy")
def test_evaluate_accuracy(student, reference, seed):
    """evaluate returns the FRACTION of examples whose largest logit (argmax over dim 1) is the label, as a Python float."""
    found = student(evaluate_case, seed=seed)
    expected = reference(evaluate_case, seed=seed)
    check(0.0 <= found["accuracy"] <= 1.0, f"evaluate returned {found['accuracy']:.6g}, not a fraction in [0, 1]")
    check(found["is_float"], "evaluate should return a Python float (use .item())")
    assert_close(found["accuracy"], expected["accuracy"], atol=1e-6, rtol=0, what="evaluate's accuracy")


@pytest.mark.exercise("evaluate_accuracy")
def test_evaluate_uses_no_grad(student, reference, seed):
    """evaluate must run the model inside `with torch.no_grad():` so that no graph is built, and still return
    the model's accuracy."""
    found = student(evaluate_spy, seed=seed)
    check(found["calls"] > 0, "evaluate never called the model")
    check(not any(found["grad_enabled"]), "evaluate ran the model with autograd on: wrap the forward pass in "
                                          "`with torch.no_grad():`")
    expected = reference(evaluate_spy, seed=seed)
    assert_close(found["accuracy"], expected["accuracy"], atol=1e-6, rtol=0, what="evaluate's accuracy")


@pytest.mark.exercise("evaluate_accuracy")
def test_evaluate_uses_eval_mode(student, reference, seed):
    """evaluate must call model.eval() before the forward pass (dropout and batch-norm behave differently in training mode), and still return the model's accuracy."""
    found = student(evaluate_spy, seed=seed)
    check(found["calls"] > 0, "evaluate never called the model")
    check(not any(found["training"]), "evaluate ran the model in training mode: call model.eval() first")
    expected = reference(evaluate_spy, seed=seed)
    assert_close(found["accuracy"], expected["accuracy"], atol=1e-6, rtol=0, what="evaluate's accuracy")


# ---------------------------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("training_loop")
def test_train_epoch_steps(student, reference, seed):
    """Each step must be zero_grad -> forward -> loss_fn(logits, yb) -> backward -> step; forgetting zero_grad makes gradients pile up."""
    found = student(train_epoch_case, seed=seed)
    expected = reference(train_epoch_case, seed=seed)
    check(len(found["losses"]) == 3, f"train_epoch returned {len(found['losses'])} losses for 3 batches")
    assert_close(found["losses"], expected["losses"], atol=1e-10, rtol=1e-9,
                 what="the list of losses train_epoch returned for 3 SGD steps")
    assert_close(found["params"], expected["params"], atol=1e-10, rtol=1e-9,
                 what="the parameters after 3 SGD steps (lr 0.5)")


@pytest.mark.exercise("training_loop")
def test_train_history(student, reference, seed):
    """train returns {"loss": [...], "val_acc": [...]} with one entry per epoch, each epoch one call of train_epoch
    and its loss the mean of that epoch's step losses; val_acc is evaluate(model,
    data["x_val"], data["y_val"]) after each epoch: the validation data, never the test or the training data.
    And the model learns: after 3 epochs it classifies at least half of the validation digits (the reference
    reaches 84% to 96%). Every epoch reshuffles: its batches are make_batches(x, y, batch_size, generator) with
    the one torch.Generator train seeds with `seed`, so each training example comes once per epoch, in an order
    that changes from epoch to epoch and is the reference's."""
    found = student(train_history, seed=seed, timeout=60)
    check({"loss", "val_acc"} <= set(found["keys"]), f"train's history has keys {found['keys']}, "
                                                      "expected 'loss' and 'val_acc'")
    check(len(found["loss"]) == 3 and len(found["val_acc"]) == 3,
          f"after 3 epochs the history holds {len(found['loss'])} losses and {len(found['val_acc'])} "
          "accuracies, expected 3 of each")
    check(is_finite(found["loss"]), f"training losses {found['loss']} are not finite")
    check(len(found["step_losses"]) == 3, f"train called train_epoch {len(found['step_losses'])} times for 3 epochs")
    means = [sum(losses) / len(losses) for losses in found["step_losses"]]
    assert_close(found["loss"], means, atol=1e-9, rtol=1e-7,
                 what="history['loss'] next to the mean of the losses each epoch's train_epoch returned")
    last, after = found["val_acc"][-1], found["evaluate_after"]
    if abs(last - after["val"]) > 1e-9:
        on = [name for name in ("test", "train") if abs(last - after[name]) <= 1e-9]
        raise AssertionError(f"the last val_acc is {last:.6g}, but evaluate on data['x_val'], data['y_val'] gives "
                             f"{after['val']:.6g} for the trained model"
                             + (f" ({last:.6g} is its accuracy on the {on[0]} data)" if on else ""))
    check(found["learned"] >= 0.5, f"after 3 epochs of train the model classifies {found['learned']:.1%} of the "
                                   "validation digits, expected at least 50%: does train update the model?")
    check_reshuffles_every_epoch(found, reference(train_history, seed=seed, timeout=60))


def check_reshuffles_every_epoch(found, expected):
    """The training examples' order in each epoch's batches (a fingerprint per row) next to the reference's."""
    examples, orders = found["examples"], found["orders"]
    for k, order in enumerate(orders, 1):
        check(len(order["x"]) == len(examples) and all(
              abs(a - b) <= 1e-9 * (1 + abs(b)) for a, b in zip(sorted(order["x"]), examples, strict=True)),
              f"the batches of epoch {k} hold {len(order['x'])} rows, expected each of the {len(examples)} "
              "training examples exactly once")
    for k in range(1, len(orders)):
        check(orders[k]["x"] != orders[k - 1]["x"],
              f"epochs {k} and {k + 1} visit the training examples in the same order: train must reshuffle every "
              "epoch (make_batches with train's generator, called once per epoch)")
    for k, (order, want) in enumerate(zip(orders, expected["orders"], strict=True), 1):
        check(order["sizes"] == want["sizes"],
              f"epoch {k} has {len(order['sizes'])} batches of {sorted(set(order['sizes']))} rows, expected the "
              f"{len(want['sizes'])} batches of {sorted(set(want['sizes']))} rows that make_batches(x, y, batch_size, "
              "generator) gives")
        same = order["y"] == want["y"] and all(abs(a - b) <= 1e-9 * (1 + abs(b))
                                               for a, b in zip(order["x"], want["x"], strict=True))
        check(same, f"the training examples of epoch {k} come in another order than make_batches(x, y, batch_size, "
                    "generator) gives with train's generator (torch.Generator().manual_seed(seed), the same one "
                    "for every epoch)")


@pytest.mark.exercise("training_loop")
def test_train_progress_bar(student, seed):
    """train shows a tqdm progress bar when progress=True (the default) and none when progress=False: a bar made
    with disable=True counts as not shown. And each run trains: its history holds 2 positive losses (a
    cross-entropy is never 0), so drawing the bar of a run that returns nothing is not enough."""
    found = student(train_progress, seed=seed, timeout=30)
    on, off = found["progress=True"], found["progress=False"]
    check(on["shown"] >= 1, f"train(progress=True) showed no tqdm progress bar ({on['bars']} made, none of them "
                            "shown)")
    check(off["shown"] == 0, f"train(progress=False) showed {off['shown']} tqdm progress bar(s), expected none "
                             "(tqdm's disable=True hides one)")
    for run in (on, off):
        check(len(run["loss"]) == 2 and all(v > 0 for v in run["loss"]),
              f"train(epochs=2) returned the losses {run['loss']}, expected 2 positive cross-entropy losses, one "
              "per epoch")


@pytest.mark.exercise("training_loop")
def test_mlp_reaches_accuracy_on_digits(student, seed):
    """MLP([64, 256, 10]) trained with train(epochs=20, lr=3e-3, batch_size=32) must reach at least 95% test accuracy on digits within 10 s of CPU."""
    found = student(digits_run, seed=seed, timeout=60)
    check(len(found["loss"]) == 20, f"train returned {len(found['loss'])} epoch losses for 20 epochs")
    check(found["loss"][-1] < found["loss"][0], f"the training loss did not go down: {found['loss']}")
    check(found["cpu_seconds"] <= 10, f"training took {found['cpu_seconds']:.1f} s of CPU, more than the 10 s "
                                      "allowed (the reference needs well under 1 s)")
    check(found["accuracy"] >= 0.95, f"test accuracy {found['accuracy']:.3f} after training, expected at least 0.95")
