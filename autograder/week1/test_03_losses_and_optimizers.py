"""Hidden tests for week1/03_losses_and_optimizers: two losses on a sigmoid output, gradient descent, and
SGD with momentum and Adam/AdamW as torch.optim.Optimizers.

The optimizers are graded against PyTorch's own: the same probe runs the submission's optimizer in the worker and
torch.optim.SGD / Adam / AdamW on the grader's side, from the same parameters, on the same loss, and the two
parameter trajectories are compared step by step (float64). Inputs come from `seed`: odd shapes, a 0-dim
parameter, exact zeros and logits far beyond where exp overflows.
"""
import pytest

from course.testing import assert_close, check, is_finite, probe


# -- probes -----------------------------------------------------------------------------------------------------
@probe
def loss_case(nb, seed, fn, n, scale, dtype="float64", extreme=False):
    """`fn` ("sigmoid_mse" or "sigmoid_bce") on seeded logits of a given scale (the first one exactly 0) and 0/1
    targets; with `extreme`, logits of +-1e4, +-1000, +-100 and +-30 on both sides of each label."""
    import torch
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    if extreme:
        z = torch.tensor([1e4, -1e4, 1e3, -1e3, 100.0, -100.0, 30.0, -30.0, 1e4, -1e4, 100.0, -100.0],
                         dtype=torch.float64)
        y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    else:
        z = scale * torch.randn(n, generator=g, dtype=torch.float64)
        z[0] = 0.0
        y = torch.randint(0, 2, (n,), generator=g).to(torch.float64)
    loss, dz = getattr(nb, fn)(z.to(dt), y.to(dt))
    return {"loss": float(loss), "dz": torch.as_tensor(dz).detach().to(torch.float64)}


@probe
def loss_types(nb, seed):
    """Whether each loss is a 0-dim tensor and each dz has the shape [N] of the logits; and their values."""
    import torch
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (6,), generator=g).to(torch.float64)
    types, values = {}, {}
    for fn in ("sigmoid_mse", "sigmoid_bce"):
        loss, dz = getattr(nb, fn)(z.clone(), y.clone())
        types[fn] = {"loss is a 0-dim tensor": bool(torch.is_tensor(loss) and loss.dim() == 0),
                     "dz shape": list(torch.as_tensor(dz).shape)}
        values[fn] = {"loss": float(loss), "dz": torch.as_tensor(dz).to(torch.float64)}
    return {"types": types, "values": values}


@probe
def descent_case(nb, seed, surface, lr, steps, dim=3):
    """gradient_descent on a seeded surface: "quadratic" (A x - b, A symmetric positive definite and not
    diagonal), "quartic" (a gradient that changes along the way) or "constant" (the same gradient everywhere).
    The trajectory, and whether x0 was left as it was."""
    import torch
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    A = M @ M.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    c = torch.randn(dim, generator=g, dtype=torch.float64)
    grads = {"quadratic": lambda x: A @ x - b,
             "quartic": lambda x: x ** 3 + 0.5 * x - b,
             "constant": lambda x: c.clone()}
    x0 = torch.randn(dim, generator=g, dtype=torch.float64)
    given = x0.clone()
    path = nb.gradient_descent(grads[surface], given, lr, steps)
    return {"path": torch.as_tensor(path).to(torch.float64), "x0_unchanged": bool(torch.equal(given, x0))}


@probe
def trajectory(nb, seed, optimizer, settings, extra=None, group2=None, steps=8, scale=1.0, skip_at=None,
               halve_lr_at=None):
    """The parameters after each step of `optimizer` ("SGDMomentum" or "Adam": the notebook's classes;
    "torch.SGD", "torch.Adam", "torch.AdamW": PyTorch's) on a fixed loss of three parameters, [3, 4], [5] and a
    0-dim one, multiplied by `scale`. `extra` goes to the notebook's class only (decoupled_weight_decay);
    `group2` puts the last two parameters in a second group with these settings; at step `skip_at` the [5]
    parameter has no gradient; at step `halve_lr_at` every group's lr is halved before the step."""
    import torch
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), ()]
    params = [(0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_(True) for s in shapes]
    targets = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    weights = [0.5 + torch.rand((), generator=g, dtype=torch.float64) for _ in shapes]

    def fix(d):
        return {k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()}
    groups = [{"params": params}] if group2 is None else [{"params": params[:1]}, {"params": params[1:], **fix(group2)}]
    if optimizer.startswith("torch."):
        opt = getattr(torch.optim, optimizer[len("torch."):])(groups, **fix(settings))
    else:
        opt = getattr(nb, optimizer)(groups, **fix(settings), **fix(extra))
    path = []
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss = sum(w * ((p - q) ** 2).sum() + 0.1 * (p ** 3).sum() for w, p, q in zip(weights, params, targets))
        loss = loss + 0.2 * params[0].sum() * params[1].sum()
        (scale * loss).backward()
        if t == skip_at:
            params[1].grad = None
        if t == halve_lr_at:
            for group in opt.param_groups:
                group["lr"] = group["lr"] / 2
        opt.step()
        path.append(torch.cat([p.detach().reshape(-1) for p in params]).clone())
    # how many tensors shaped like each parameter its entry of opt.state holds (the optimizer's memory)
    kept = [sum(torch.is_tensor(v) and v.shape == p.shape for v in opt.state[p].values()) for p in params]
    return {"path": torch.stack(path), "state tensors per parameter": kept}


def same_trajectory(student, reference, seed, ours, theirs, what, **kwargs):
    found = student(trajectory, seed=seed, optimizer=ours, **kwargs)
    expected = reference(trajectory, seed=seed, optimizer=theirs, **kwargs)
    check(is_finite(found["path"]), f"{what}: the parameters became nan or inf")
    assert_close(found["path"], expected["path"], atol=1e-10, rtol=1e-8,
                 what=f"{what}: the parameters after each step (rows: steps) compared with {theirs.replace('torch.', 'torch.optim.')}'s")
    return found


# -- sigmoid_losses ---------------------------------------------------------------------------------------------
@pytest.mark.exercise("sigmoid_losses")
def test_sigmoid_mse(student, reference, seed):
    """sigmoid_mse is the MEAN of (sigmoid(z) - y)**2 and dz = 2 (p - y) p (1 - p) / N: the chain rule through the
    sigmoid (its derivative p (1 - p)), and the 1/N of the mean."""
    for n, scale in [(7, 3.0), (1, 2.0), (12, 0.5)]:
        found = student(loss_case, seed=seed, fn="sigmoid_mse", n=n, scale=scale)
        expected = reference(loss_case, seed=seed, fn="sigmoid_mse", n=n, scale=scale)
        assert_close(found, expected, atol=1e-12, rtol=1e-10, what=f"sigmoid_mse on {n} logits of scale {scale}")


@pytest.mark.exercise("sigmoid_losses")
def test_sigmoid_mse_saturated(student, reference, seed):
    """sigmoid_mse at logits of +-1e4 and +-100 (where exp overflows): p is exactly 0 or 1, the loss is finite and the
    gradient vanishes. Compute the sigmoid as 1 / (1 + exp(-z)) or torch.sigmoid, not exp(z) / (1 + exp(z))."""
    for dtype in ("float64", "float32"):
        found = student(loss_case, seed=seed, fn="sigmoid_mse", n=0, scale=0, dtype=dtype, extreme=True)
        expected = reference(loss_case, seed=seed, fn="sigmoid_mse", n=0, scale=0, dtype=dtype, extreme=True)
        check(is_finite(found["loss"]) and is_finite(found["dz"]),
              f"sigmoid_mse at logits of 1e4 ({dtype}) gave nan or inf")
        assert_close(found, expected, atol=1e-6, rtol=1e-6, what=f"sigmoid_mse at logits up to 1e4 ({dtype})")


@pytest.mark.exercise("sigmoid_losses")
def test_sigmoid_bce(student, reference, seed):
    """sigmoid_bce is the MEAN of -[y log p + (1 - y) log(1 - p)] with p = sigmoid(z), and dz = (p - y) / N
    (no sigmoid derivative left: it cancels)."""
    for n, scale in [(7, 3.0), (1, 2.0), (12, 0.5)]:
        found = student(loss_case, seed=seed, fn="sigmoid_bce", n=n, scale=scale)
        expected = reference(loss_case, seed=seed, fn="sigmoid_bce", n=n, scale=scale)
        assert_close(found, expected, atol=1e-9, rtol=1e-9, what=f"sigmoid_bce on {n} logits of scale {scale}")


@pytest.mark.exercise("sigmoid_losses")
def test_sigmoid_bce_large_logits(student, reference, seed):
    """sigmoid_bce must stay finite and exact at logits of +-1e4 (float64) and +-100 (float32, where exp(100)
    overflows): compute it from the logits as max(z, 0) - y z + log1p(exp(-|z|)), never as log(sigmoid(z)) or
    log1p(exp(-z)). A confidently wrong example costs about |z|."""
    for dtype in ("float64", "float32"):
        found = student(loss_case, seed=seed, fn="sigmoid_bce", n=0, scale=0, dtype=dtype, extreme=True)
        expected = reference(loss_case, seed=seed, fn="sigmoid_bce", n=0, scale=0, dtype=dtype, extreme=True)
        check(is_finite(found["loss"]) and is_finite(found["dz"]),
              f"sigmoid_bce at logits of 1e4 ({dtype}) gave nan or inf: compute it from the logits")
        assert_close(found, expected, atol=1e-6, rtol=1e-6, what=f"sigmoid_bce at logits up to 1e4 ({dtype})")


@pytest.mark.exercise("sigmoid_losses")
def test_losses_return_a_0dim_tensor_and_dz_like_z(student, reference, seed):
    """Each loss is returned as a 0-dim tensor (a mean, not a Python float or a [1] tensor) and dz has the shape
    [N] of the logits, holding the loss and its gradient."""
    found = student(loss_types, seed=seed)
    expected = reference(loss_types, seed=seed)
    assert_close(found["types"], expected["types"], what="the types and shapes that sigmoid_mse and sigmoid_bce return")
    assert_close(found["values"], expected["values"], atol=1e-10, rtol=1e-8,
                 what="the losses and gradients that sigmoid_mse and sigmoid_bce return")


# -- gradient_descent -------------------------------------------------------------------------------------------
@pytest.mark.exercise("gradient_descent")
def test_gradient_descent_trajectory(student, reference, seed):
    """gradient_descent returns [steps + 1, D]: x0 first, then x <- x - lr * grad_fn(x) after every step, with the
    gradient taken at the current point each time."""
    for surface, lr, steps in [("quadratic", 0.3, 12), ("quartic", 0.1, 9), ("constant", 0.5, 4)]:
        found = student(descent_case, seed=seed, surface=surface, lr=lr, steps=steps)
        expected = reference(descent_case, seed=seed, surface=surface, lr=lr, steps=steps)
        assert_close(found["path"], expected["path"], atol=1e-12, rtol=1e-10,
                     what=f"the trajectory on a {surface} surface (lr {lr}, {steps} steps)")


@pytest.mark.exercise("gradient_descent")
def test_gradient_descent_edges(student, reference, seed):
    """0 steps give the trajectory [1, D] holding x0 alone; a 1-dimensional problem gives [steps + 1, 1]."""
    for steps, dim in [(0, 3), (5, 1)]:
        found = student(descent_case, seed=seed, surface="quadratic", lr=0.2, steps=steps, dim=dim)
        expected = reference(descent_case, seed=seed, surface="quadratic", lr=0.2, steps=steps, dim=dim)
        assert_close(found["path"], expected["path"], atol=1e-12, rtol=1e-10,
                     what=f"the trajectory of {steps} steps in {dim} dimension(s)")


@pytest.mark.exercise("gradient_descent")
def test_gradient_descent_leaves_x0(student, reference, seed):
    """gradient_descent must not modify x0 (update a copy, not x0 in place), and still return the trajectory."""
    found = student(descent_case, seed=seed, surface="quadratic", lr=0.3, steps=5)
    check(found["x0_unchanged"], "gradient_descent changed the tensor x0 it was given: start from x0.clone() and "
                                 "make a new tensor at every step")
    expected = reference(descent_case, seed=seed, surface="quadratic", lr=0.3, steps=5)
    assert_close(found["path"], expected["path"], atol=1e-12, rtol=1e-10,
                 what="the trajectory on a quadratic surface (lr 0.3, 5 steps)")


# -- sgd_momentum -----------------------------------------------------------------------------------------------
@pytest.mark.exercise("sgd_momentum")
def test_sgd_momentum_matches_torch(student, reference, seed):
    """SGDMomentum(lr, momentum) takes the steps of torch.optim.SGD(lr, momentum): v = momentum * v + g (v starts
    at 0), p = p - lr * v, with v kept in self.state[p] between steps. With momentum 0 it is plain SGD."""
    for settings in [dict(lr=0.05, momentum=0.9), dict(lr=0.1, momentum=0.5), dict(lr=0.1, momentum=0.0)]:
        same_trajectory(student, reference, seed, "SGDMomentum", "torch.SGD", f"SGDMomentum({settings})",
                        settings=settings)


@pytest.mark.exercise("sgd_momentum")
def test_sgd_velocity_kept_in_state(student, reference, seed):
    """The velocity of each parameter is kept in self.state[p] (the per-parameter dict that torch.optim.Optimizer
    provides, and that optimizer.state_dict() saves with a checkpoint), as a tensor of the parameter's shape."""
    found = same_trajectory(student, reference, seed, "SGDMomentum", "torch.SGD", "SGDMomentum(lr=0.05, momentum=0.9)",
                            settings=dict(lr=0.05, momentum=0.9), steps=3)
    check(all(n >= 1 for n in found["state tensors per parameter"]),
          "after 3 steps, self.state[p] should hold p's velocity, a tensor of p's shape, for every parameter p; found "
          f"{found['state tensors per parameter']} such tensors for the three parameters")


@pytest.mark.exercise("sgd_momentum")
def test_sgd_weight_decay(student, reference, seed):
    """With weight_decay, the decay goes into the gradient before the momentum: g = p.grad + weight_decay * p, as
    in torch.optim.SGD (L2 decay, not a separate shrink of p)."""
    for settings in [dict(lr=0.05, momentum=0.9, weight_decay=0.1), dict(lr=0.1, momentum=0.0, weight_decay=0.3)]:
        same_trajectory(student, reference, seed, "SGDMomentum", "torch.SGD", f"SGDMomentum({settings})",
                        settings=settings)


@pytest.mark.exercise("sgd_momentum")
def test_sgd_groups_schedule_and_missing_gradients(student, reference, seed):
    """Each parameter group uses its own lr, momentum and weight_decay, read from the group at every step (here the
    lr is halved before step 6, as a scheduler would), and a parameter whose .grad is None is skipped."""
    same_trajectory(student, reference, seed, "SGDMomentum", "torch.SGD",
                    "SGDMomentum with two groups, a missing gradient at step 3 and the lr halved at step 6",
                    settings=dict(lr=0.05, momentum=0.9, weight_decay=0.01), group2=dict(lr=0.02, momentum=0.6),
                    skip_at=3, halve_lr_at=6)


# -- adam -------------------------------------------------------------------------------------------------------
@pytest.mark.exercise("adam")
def test_adam_matches_torch(student, reference, seed):
    """Adam(lr) takes the steps of torch.optim.Adam(lr): m and v as running means of g and g**2 (starting at 0),
    bias-corrected by 1 - beta**t with the parameter's own step count t, then p -= lr * m_hat / (sqrt(v_hat) + eps)."""
    for settings in [dict(lr=0.01), dict(lr=0.1)]:
        same_trajectory(student, reference, seed, "Adam", "torch.Adam", f"Adam({settings})", settings=settings)


@pytest.mark.exercise("adam")
def test_adam_moments_kept_in_state(student, reference, seed):
    """m and v of each parameter are kept in self.state[p], as tensors of the parameter's shape (with its step
    count t), so that optimizer.state_dict() saves them with a checkpoint."""
    found = same_trajectory(student, reference, seed, "Adam", "torch.Adam", "Adam(lr=0.01)", settings=dict(lr=0.01),
                            steps=3)
    check(all(n >= 2 for n in found["state tensors per parameter"]),
          "after 3 steps, self.state[p] should hold m and v, tensors of p's shape, for every parameter p; found "
          f"{found['state tensors per parameter']} such tensors for the three parameters")


@pytest.mark.exercise("adam")
def test_adam_betas_and_eps(student, reference, seed):
    """Other betas, and gradients of size 1e-6, where the place of eps matters: it is added to sqrt(v_hat), not
    under the square root."""
    same_trajectory(student, reference, seed, "Adam", "torch.Adam", "Adam with betas (0.8, 0.99)",
                    settings=dict(lr=0.05, betas=[0.8, 0.99]))
    same_trajectory(student, reference, seed, "Adam", "torch.Adam", "Adam on gradients of size 1e-6",
                    settings=dict(lr=0.01), scale=1e-6)


@pytest.mark.exercise("adam")
def test_adam_l2_weight_decay(student, reference, seed):
    """With decoupled_weight_decay=False, weight_decay is L2 decay added to the gradient before the moments,
    g = p.grad + weight_decay * p, as in torch.optim.Adam(weight_decay=...)."""
    same_trajectory(student, reference, seed, "Adam", "torch.Adam", "Adam(lr=0.05, weight_decay=0.2)",
                    settings=dict(lr=0.05, weight_decay=0.2))


@pytest.mark.exercise("adam")
def test_adamw_decoupled_weight_decay(student, reference, seed):
    """With decoupled_weight_decay=True it is AdamW: p = p - lr * weight_decay * p, applied to p before the Adam
    update, while the moments see the loss gradient alone (torch.optim.AdamW)."""
    for settings in [dict(lr=0.05, weight_decay=0.2), dict(lr=0.01, weight_decay=0.0)]:
        same_trajectory(student, reference, seed, "Adam", "torch.AdamW", f"Adam({settings}, decoupled_weight_decay=True)",
                        settings=settings, extra=dict(decoupled_weight_decay=True))


@pytest.mark.exercise("adam")
def test_adam_groups_schedule_and_missing_gradients(student, reference, seed):
    """Each parameter group uses its own lr and betas, read at every step (the lr is halved before step 6); a
    parameter whose .grad is None is skipped and its own step count t does not advance (t is per parameter)."""
    same_trajectory(student, reference, seed, "Adam", "torch.Adam",
                    "Adam with two groups, a missing gradient at step 3 and the lr halved at step 6",
                    settings=dict(lr=0.05), group2=dict(lr=0.02, betas=[0.5, 0.9]), skip_at=3, halve_lr_at=6)
    same_trajectory(student, reference, seed, "Adam", "torch.Adam", "Adam with a missing gradient at step 2",
                    settings=dict(lr=0.1), skip_at=2)
