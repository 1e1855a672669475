"""Week 1, notebook 02: backprop by hand, then the PyTorch way — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


# %% [linear]
def linear_forward(x, W, b):
    """Affine layer: out = x @ W + b.

    x: [N, D_in], W: [D_in, D_out], b: [D_out]  ->  out: [N, D_out]
    """
    ### BEGIN SOLUTION
    return x @ W + b
    ### END SOLUTION


def linear_backward(dout, x, W):
    """Gradients of the affine layer, given dout = dL/d(out).

    dout: [N, D_out], x: [N, D_in], W: [D_in, D_out]
    ->  (dx: [N, D_in], dW: [D_in, D_out], db: [D_out])
    """
    ### BEGIN SOLUTION
    dx = dout @ W.T          # [N, D_out] @ [D_out, D_in]
    dW = x.T @ dout          # [D_in, N] @ [N, D_out]: one outer product per example, summed
    db = dout.sum(dim=0)     # b was broadcast over the batch, so its gradient is summed over it
    ### END SOLUTION
    return dx, dW, db


# %% [relu]
def relu_forward(x):
    """ReLU, elementwise: max(x, 0).   x: any shape  ->  same shape"""
    ### BEGIN SOLUTION
    return torch.clamp(x, min=0)
    ### END SOLUTION


def relu_backward(dout, x):
    """Gradient of ReLU, given dout = dL/d(relu(x)) and the layer's input x.

    dout, x: the same shape  ->  dx: that shape
    """
    ### BEGIN SOLUTION
    return dout * (x > 0)    # the gradient flows only where the input was positive
    ### END SOLUTION


# %% [sigmoid]
def sigmoid_forward(x):
    """Logistic sigmoid, elementwise: 1 / (1 + exp(-x)).   x: any shape  ->  s: same shape"""
    ### BEGIN SOLUTION
    return 1 / (1 + torch.exp(-x))
    ### END SOLUTION


def sigmoid_backward(dout, s):
    """Gradient of the sigmoid, given dout = dL/ds and the forward pass's OUTPUT s = sigmoid(x).

    dout, s: the same shape  ->  dx: that shape
    """
    ### BEGIN SOLUTION
    return dout * s * (1 - s)    # sigma'(x) = sigma(x) (1 - sigma(x))
    ### END SOLUTION


# %% [softmax_ce]
def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits: [N, C] float, y: [N] int64 with values in 0..C-1
    ->  (loss: 0-dim tensor, the mean over the N examples; dlogits: [N, C], d(loss)/d(logits))
    Must stay finite for logits as large as 1e4.
    """
    N, C = logits.shape
    ### BEGIN SOLUTION
    shifted = logits - logits.max(dim=1, keepdim=True).values                    # [N, C], each row's max is 0
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))  # log softmax, [N, C]
    loss = -log_probs[torch.arange(N), y].mean()
    onehot = F.one_hot(y, num_classes=C).to(logits.dtype)                         # [N, C]
    dlogits = (torch.exp(log_probs) - onehot) / N
    ### END SOLUTION
    return loss, dlogits


# %% [numgrad]
def numerical_gradient(f, x, eps=1e-6):
    """Central finite differences: grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).

    f: a function of a tensor shaped like x returning a scalar (float or 0-dim tensor)
    x: any shape (use float64)  ->  grad: the same shape as x. x itself is left unchanged.
    Perturb one entry flat[i] at a time, evaluate f twice, put the entry back, and fill grad_flat[i].
    """
    x = x.detach().clone().contiguous()
    grad = torch.zeros_like(x)
    flat, grad_flat = x.view(-1), grad.view(-1)    # views: writing flat[i] changes x
    for i in range(flat.numel()):
        ### BEGIN SOLUTION
        old = flat[i].item()
        flat[i] = old + eps
        f_plus = float(f(x))
        flat[i] = old - eps
        f_minus = float(f(x))
        flat[i] = old                              # restore before moving to the next coordinate
        grad_flat[i] = (f_plus - f_minus) / (2 * eps)
        ### END SOLUTION
    return grad


def relative_error(a, b):
    """||a - b|| / max(||a|| + ||b||, 1e-12), Euclidean norms over all entries.

    a, b: tensors of the same shape  ->  a Python float
    """
    ### BEGIN SOLUTION
    return ((a - b).norm() / torch.clamp(a.norm() + b.norm(), min=1e-12)).item()
    ### END SOLUTION


def grad_check(f, x, analytic_grad, eps=1e-6):
    """Relative error between `analytic_grad` and the numerical gradient of f at x (below ~1e-7 is good)."""
    return relative_error(numerical_gradient(f, x, eps), analytic_grad)


# %% [mlp]
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Multi-layer perceptron: Linear -> activation -> ... -> Linear, no activation after the last layer.

    sizes: [D_in, H_1, ..., H_k, D_out], e.g. [64, 128, 10] (one hidden layer of 128 units)
    activation: a key of ACTIVATIONS ("relu", "sigmoid", "tanh")
    The nn.Linear layers and the activations are kept, in order, in `self.net`, an nn.Sequential.
    forward: x [N, D_in]  ->  logits [N, D_out]
    """

    def __init__(self, sizes, activation="relu"):
        super().__init__()
        ### BEGIN SOLUTION
        act = ACTIVATIONS[activation]
        layers = []
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(d_in, d_out), act()]
        self.net = nn.Sequential(*layers[:-1])    # drop the last activation: the output is logits
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.net(x)
        ### END SOLUTION


# %% [evaluate]
def evaluate(model, x, y):
    """Fraction of the examples whose largest logit is the true class.

    model: maps [N, D] to logits [N, C]; x: [N, D] float; y: [N] int64  ->  accuracy, a Python float in [0, 1]
    Evaluates in eval mode (dropout and batch-norm behave as at test time) without building a graph.
    """
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    ### BEGIN SOLUTION
    model.eval()
    with torch.no_grad():
        predictions = model(x).argmax(dim=1)
    return (predictions == y).float().mean().item()
    ### END SOLUTION


# %% [train]
def make_batches(x, y, batch_size, generator=None):
    """Shuffle (x [N, D], y [N]) and cut them into a list of mini-batches (xb [B, D], yb [B])."""
    order = torch.randperm(len(x), generator=generator).to(x.device)
    return [(x[idx], y[idx]) for idx in order.split(batch_size)]


def train_epoch(model, batches, optimizer, loss_fn):
    """One pass over `batches`, one optimizer step per batch.

    batches: an iterable of (xb [B, D], yb [B]) — a list from make_batches or a DataLoader
    loss_fn: maps (logits [B, C], yb [B]) to a 0-dim loss, e.g. nn.CrossEntropyLoss()
    ->  the list of the steps' loss values (Python floats)
    """
    model.train()
    losses = []
    for xb, yb in batches:
        ### BEGIN SOLUTION
        optimizer.zero_grad()          # .grad accumulates: clear the previous step's gradients
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        ### END SOLUTION
        losses.append(loss.item())     # `loss`: this step's loss, computed above
    return losses


def train(model, data, epochs=20, lr=3e-3, batch_size=32, seed=0, optimizer_cls=torch.optim.Adam,
          progress=True):
    """Train `model` with cross-entropy on data["x_train"] [N, D], data["y_train"] [N].

    Uses optimizer_cls(model.parameters(), lr=lr), reshuffles every epoch (torch.Generator seeded with `seed`),
    shows a tqdm progress bar unless progress=False; each epoch is one call of train_epoch on make_batches(...).
    Returns the history, a dict of lists with one entry per epoch: "loss" (the mean of the epoch's step losses)
    and, when data has "x_val"/"y_val", "val_acc" (evaluate on the validation data after the epoch). The test
    data, if data holds any, is not used: it is kept for one last measurement of the chosen model.
    """
    device = next(model.parameters()).device
    x, y = data["x_train"].to(device), data["y_train"].to(device)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": [], "val_acc": []}
    ### BEGIN SOLUTION
    optimizer = optimizer_cls(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for _ in bar:
        losses = train_epoch(model, make_batches(x, y, batch_size, generator), optimizer, loss_fn)
        history["loss"].append(sum(losses) / len(losses))
        if "x_val" in data:
            history["val_acc"].append(evaluate(model, data["x_val"], data["y_val"]))
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val_acc=f"{history['val_acc'][-1]:.3f}")
    ### END SOLUTION
    return history
