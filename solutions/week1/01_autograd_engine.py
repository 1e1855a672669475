"""Week 1, notebook 01: a scalar autograd engine (micrograd) — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import math
import random

from tqdm.auto import tqdm


# %% [value]
class Value:
    """A scalar that remembers how it was made, so that gradients can flow back through it.

    data:      the number
    grad:      d(output)/d(this value), filled in by `backward()`; 0.0 until then
    _prev:     the Values this one was computed from (its children in the graph)
    _op:       the operation that produced it, for display ('+', '*', 'tanh', ...)
    _backward: a function that adds this node's gradient into its children's `.grad`
    """

    def __init__(self, data, _children=(), _op=''):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None   # a leaf has nothing to pass on
        self._prev = set(_children)
        self._op = _op

    def __repr__(self):
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"

    def __add__(self, other):
        """self + other.   Local derivatives: d/dself = 1, d/dother = 1."""
        other = other if isinstance(other, Value) else Value(other)
        ### BEGIN SOLUTION
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        ### END SOLUTION
        return out

    def __mul__(self, other):
        """self * other.   Local derivatives: d/dself = other, d/dother = self."""
        other = other if isinstance(other, Value) else Value(other)
        ### BEGIN SOLUTION
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        ### END SOLUTION
        return out

    def __pow__(self, k):
        """self ** k for a constant k (int or float).   Local derivative: k * self**(k-1)."""
        assert isinstance(k, (int, float)), "only int/float powers are supported"
        ### BEGIN SOLUTION
        out = Value(self.data ** k, (self,), f'**{k}')

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        ### END SOLUTION
        return out

    # The rest is built from the three operations above: no new derivatives to write.
    def __neg__(self):          # -self
        ### BEGIN SOLUTION
        return self * -1
        ### END SOLUTION

    def __sub__(self, other):   # self - other
        ### BEGIN SOLUTION
        return self + (-other)
        ### END SOLUTION

    def __truediv__(self, other):   # self / other
        ### BEGIN SOLUTION
        return self * other ** -1
        ### END SOLUTION

    def __radd__(self, other):  # other + self, when other is a plain number
        ### BEGIN SOLUTION
        return self + other
        ### END SOLUTION

    def __rmul__(self, other):  # other * self
        ### BEGIN SOLUTION
        return self * other
        ### END SOLUTION

    def __rsub__(self, other):  # other - self
        ### BEGIN SOLUTION
        return other + (-self)
        ### END SOLUTION

    def __rtruediv__(self, other):  # other / self
        ### BEGIN SOLUTION
        return other * self ** -1
        ### END SOLUTION

# %% [activation_fns]
def exp(self):
    """e ** self.   Local derivative: exp(x)' = exp(x)."""
    ### BEGIN SOLUTION
    out = Value(math.exp(self.data), (self,), 'exp')

    def _backward():
        self.grad += out.data * out.grad
    out._backward = _backward
    ### END SOLUTION
    return out


def tanh(self):
    """tanh(self).   Local derivative: tanh(x)' = 1 - tanh(x)**2."""
    ### BEGIN SOLUTION
    t = math.tanh(self.data)
    out = Value(t, (self,), 'tanh')

    def _backward():
        self.grad += (1 - t ** 2) * out.grad
    out._backward = _backward
    ### END SOLUTION
    return out


def relu(self):
    """max(0, self).   Local derivative: 1 where x > 0, else 0."""
    ### BEGIN SOLUTION
    out = Value(self.data if self.data > 0 else 0.0, (self,), 'relu')

    def _backward():
        self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
    out._backward = _backward
    ### END SOLUTION
    return out


def sigmoid(self):
    """1 / (1 + e ** -self).   Local derivative: sigmoid(x)' = s * (1 - s) with s = sigmoid(x)."""
    ### BEGIN SOLUTION
    s = 1.0 / (1.0 + math.exp(-self.data))
    out = Value(s, (self,), 'sigmoid')

    def _backward():
        self.grad += s * (1 - s) * out.grad
    out._backward = _backward
    ### END SOLUTION
    return out


Value.exp = exp
Value.tanh = tanh
Value.relu = relu
Value.sigmoid = sigmoid

# %% [backward]
def topo_sort(root):
    """Every node of the graph that ends at `root`, each listed after all the nodes it was computed from.

    root: a Value  ->  a list of Values, each appearing once, `root` last.
    """
    order, visited = [], set()

    def visit(v):
        ### BEGIN SOLUTION
        if v not in visited:
            visited.add(v)
            for child in v._prev:
                visit(child)
            order.append(v)
        ### END SOLUTION
    visit(root)
    return order


def backward(self):
    """Fill `.grad` of every node of the graph with d(self)/d(node)."""
    ### BEGIN SOLUTION
    self.grad = 1.0                     # d self / d self
    for v in reversed(topo_sort(self)):
        v._backward()                   # v has all of its gradient: pass it on to its children
    ### END SOLUTION


def zero_grad(self):
    """Set `.grad` to 0 on every node of the graph that ends at `self`."""
    ### BEGIN SOLUTION
    for v in topo_sort(self):
        v.grad = 0.0
    ### END SOLUTION


Value.backward = backward
Value.zero_grad = zero_grad

# %% [nn]
class Module:
    """What every part of a network has: its parameters, and a way to zero their gradients."""

    def parameters(self):
        return []

    def zero_grad(self):
        """Set the gradient of every parameter to 0."""
        ### BEGIN SOLUTION
        for p in self.parameters():
            p.grad = 0.0
        ### END SOLUTION


class Neuron(Module):
    """activation(w · x + b) for an input x of `nin` numbers.   activation: 'tanh', 'relu', 'sigmoid' or 'linear'."""

    def __init__(self, nin, activation='tanh'):
        assert activation in ('tanh', 'relu', 'sigmoid', 'linear'), activation
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.activation = activation

    def __call__(self, x):
        """x: a list of nin numbers or Values  ->  one Value."""
        ### BEGIN SOLUTION
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if self.activation == 'tanh':
            return act.tanh()
        if self.activation == 'relu':
            return act.relu()
        if self.activation == 'sigmoid':
            return act.sigmoid()
        return act
        ### END SOLUTION

    def parameters(self):
        """The nin weights, then the bias: nin + 1 Values."""
        ### BEGIN SOLUTION
        return self.w + [self.b]
        ### END SOLUTION

    def __repr__(self):
        return f"{self.activation} Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons that all read the same input of `nin` numbers."""

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        """x: a list of nin numbers or Values  ->  a list of nout Values (a list even when nout == 1)."""
        ### BEGIN SOLUTION
        return [n(x) for n in self.neurons]
        ### END SOLUTION

    def parameters(self):
        """The parameters of each neuron in turn: nin * nout + nout Values."""
        ### BEGIN SOLUTION
        return [p for n in self.neurons for p in n.parameters()]
        ### END SOLUTION

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of sizes nin -> nouts[0] -> ... -> nouts[-1]. Hidden layers use `activation`; the last is linear."""

    def __init__(self, nin, nouts, activation='tanh'):
        """Store the layers, in order, in `self.layers`."""
        ### BEGIN SOLUTION
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], activation=activation if i < len(nouts) - 1 else 'linear')
                       for i in range(len(nouts))]
        ### END SOLUTION

    def __call__(self, x):
        """x: a list of nin numbers  ->  a single Value when nouts[-1] == 1, else a list of nouts[-1] Values."""
        ### BEGIN SOLUTION
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x
        ### END SOLUTION

    def parameters(self):
        """The parameters of each layer in turn."""
        ### BEGIN SOLUTION
        return [p for layer in self.layers for p in layer.parameters()]
        ### END SOLUTION

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"

# %% [train]
def hinge_loss(scores, ys):
    """Mean max-margin loss:  (1/N) * sum_i max(0, 1 - y_i * s_i).

    scores: a list of N Values, ys: a list of N labels, each +1 or -1  ->  one Value.
    """
    ### BEGIN SOLUTION
    losses = [(1 - yi * si).relu() for yi, si in zip(ys, scores)]
    return sum(losses) * (1.0 / len(losses))
    ### END SOLUTION


def train(model, X, y, steps=100, lr=0.1, progress=False):
    """Full-batch gradient descent on the hinge loss; returns the loss of every step (before its update).

    X: a list of N points (lists of numbers), y: a list of N labels in {+1, -1}  ->  a list of `steps` floats.
    One step: the scores of all N points; loss = hinge_loss(scores, y); set every parameter's gradient to 0;
    loss.backward(); then p.data -= lr * p.grad for every parameter.
    """
    losses = []
    for _ in tqdm(range(steps), desc="training", disable=not progress):
        ### BEGIN SOLUTION
        scores = [model(x) for x in X]
        loss = hinge_loss(scores, y)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        ### END SOLUTION
        losses.append(loss.data)
    return losses


def accuracy(model, X, y):
    """Fraction of the points predicted right (+1 when model(x).data > 0, else -1): a float in [0, 1]."""
    ### BEGIN SOLUTION
    correct = [(model(x).data > 0) == (yi > 0) for x, yi in zip(X, y)]
    return sum(correct) / len(correct)
    ### END SOLUTION
