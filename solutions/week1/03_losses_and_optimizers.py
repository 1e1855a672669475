"""Week 1, notebook 03: loss functions, gradient descent, momentum and Adam — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import torch


# %% [sigmoid_losses_cell]
def sigmoid_mse(z, y):
    """Mean squared error between p = sigmoid(z) and the targets, and its gradient with respect to the logits.

    z: [N] float logits, y: [N] float targets in {0, 1}
    ->  (loss: 0-dim tensor, the mean over i of (p_i - y_i) ** 2;  dz: [N], d(loss)/dz)
    """
    ### BEGIN SOLUTION
    p = torch.sigmoid(z)
    loss = ((p - y) ** 2).mean()
    dz = 2 * (p - y) * p * (1 - p) / len(z)      # chain rule through the sigmoid: sigma' = p (1 - p)
    ### END SOLUTION
    return loss, dz


def sigmoid_bce(z, y):
    """Mean binary cross-entropy of p = sigmoid(z), -[y log p + (1 - y) log(1 - p)], and its gradient.

    z: [N] float logits, y: [N] float targets in {0, 1}
    ->  (loss: 0-dim tensor, the mean over the N examples;  dz: [N], d(loss)/dz)
    Computed from the logits, so that it stays finite and exact for |z| as large as 1e4.
    """
    ### BEGIN SOLUTION
    # -log p = log(1 + e^-z) and -log(1 - p) = log(1 + e^z); both are max(., 0) + log(1 + e^-|z|)
    loss = (torch.clamp(z, min=0) - y * z + torch.log1p(torch.exp(-z.abs()))).mean()
    dz = (torch.sigmoid(z) - y) / len(z)          # prediction minus target: no sigma' left to vanish
    ### END SOLUTION
    return loss, dz


# %% [gd]
def gradient_descent(grad_fn, x0, lr, steps):
    """Plain gradient descent x <- x - lr * grad_fn(x), started at x0, for `steps` steps.

    grad_fn: maps a point [D] to the gradient of the loss there, [D];  x0: [D], left unchanged
    ->  the trajectory [steps + 1, D]: x0 first, then the point after each step
    """
    ### BEGIN SOLUTION
    xs = [x0.clone()]
    for _ in range(steps):
        xs.append(xs[-1] - lr * grad_fn(xs[-1]))
    return torch.stack(xs)
    ### END SOLUTION


# %% [sgd_momentum_cell]
class SGDMomentum(torch.optim.Optimizer):
    """SGD with momentum and L2 weight decay, computed as torch.optim.SGD(params, lr, momentum, weight_decay):

        g = p.grad + weight_decay * p
        v = momentum * v + g              (v starts at 0, so v = g after a parameter's first step)
        p = p - lr * v

    Each parameter group uses its own lr, momentum and weight_decay, read at every step (a scheduler may change
    group["lr"] between steps). A parameter whose .grad is None is skipped. The velocity of p is kept in
    self.state[p].
    """

    def __init__(self, params, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        ### BEGIN SOLUTION
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(group["momentum"]).add_(g)          # in place: the state keeps the new velocity
                p.sub_(group["lr"] * v)
        ### END SOLUTION


# %% [adam_cell]
class Adam(torch.optim.Optimizer):
    """Adam, computed as torch.optim.Adam(params, lr, betas, eps, weight_decay) or, with
    decoupled_weight_decay=True, as torch.optim.AdamW(params, lr, betas, eps, weight_decay):

        t = t + 1                                           (each parameter counts its own steps)
        g = p.grad + weight_decay * p                       (L2: the decay goes through the moments)
          or, decoupled:  g = p.grad  and  p = p - lr * weight_decay * p
        m = beta1 * m + (1 - beta1) * g                     (m and v start at 0)
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1**t),   v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    Each parameter group uses its own settings, read at every step; a parameter whose .grad is None is skipped
    (and its step count does not advance). m, v and t of p are kept in self.state[p].
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay))

    @torch.no_grad()
    def step(self):
        ### BEGIN SOLUTION
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                if group["decoupled_weight_decay"]:
                    g = p.grad
                    p.mul_(1 - lr * wd)                     # AdamW: shrink p itself, outside the moments
                else:
                    g = p.grad + wd * p
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** t)                # bias correction: m and v started at 0
                v_hat = v / (1 - beta2 ** t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
        ### END SOLUTION
