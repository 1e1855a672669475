"""Hidden tests for week1/01_autograd_engine: a scalar autograd engine in the style of micrograd.

Where a test is not about some part of the engine, its probe uses its own trusted version of that part: graphs
whose operations are not under test are made of nodes the probe builds itself (`nb.Value(data, children, op)`
with a `_backward` the probe writes), and gradients are propagated by the probe's own topological walk unless
the test is about `backward()`. A mistake in one exercise therefore costs the points of that exercise only.
Expected gradients come from torch.autograd (float64) or from the reference, never from the submission.
"""
import math
import random

import pytest

from course.testing import probe, assert_close, check

ATOL, RTOL = 1e-9, 1e-7

VALUE_OPS = ["add", "mul", "sub", "div", "addc", "mulc", "subc", "divc", "pow",
             "radd", "rmul", "rsub", "rdiv", "neg"]
ACTIVATIONS = ["exp", "tanh", "relu", "sigmoid"]
ALL_OPS = VALUE_OPS + ACTIVATIONS
# how the arguments of each step are read: node indices (i, j) or constants (c, k)
BINARY = {"add", "mul", "sub", "div"}                     # [op, i, j]
CONST_RIGHT = {"addc", "mulc", "subc", "divc", "pow"}      # [op, i, c]    x op c
CONST_LEFT = {"radd", "rmul", "rsub", "rdiv"}              # [op, c, i]    c op x
UNARY = {"neg", "exp", "tanh", "relu", "sigmoid"}          # [op, i]


# -- inputs, built in the grader from the seed -----------------------------------------------------------------
_FLOAT_OPS = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b, "div": lambda a, b: a / b,
    "addc": lambda a, c: a + c, "mulc": lambda a, c: a * c, "subc": lambda a, c: a - c, "divc": lambda a, c: a / c,
    "pow": lambda a, k: a ** k, "radd": lambda c, a: c + a, "rmul": lambda c, a: c * a, "rsub": lambda c, a: c - a,
    "rdiv": lambda c, a: c / a, "neg": lambda a: -a, "exp": math.exp, "tanh": math.tanh,
    "relu": lambda a: max(a, 0.0), "sigmoid": lambda a: 1 / (1 + math.exp(-a)),
}


def _value(op, args, vals):
    """The float result of one step, or None when it would be a pathological input (ties, overflow, 0 / 0)."""
    if op in BINARY:
        inputs = [vals[args[0]], vals[args[1]]]
    elif op in CONST_RIGHT:
        inputs = [vals[args[0]], args[1]]
    elif op in CONST_LEFT:
        inputs = [args[0], vals[args[1]]]
    else:
        inputs = [vals[args[0]]]
    x = inputs[0] if op not in CONST_LEFT else inputs[1]          # the node the op reads (or the left one)
    bad = {"div": abs(inputs[-1]) < 0.4, "rdiv": abs(x) < 0.4,
           "pow": op == "pow" and ((inputs[1] != int(inputs[1]) and x < 0.2) or (inputs[1] < 0 and abs(x) < 0.4)),
           "exp": not -8 < x < 2.5, "tanh": abs(x) > 3, "relu": abs(x) < 0.05, "sigmoid": abs(x) > 8}
    if bad.get(op, False):
        return None
    r = _FLOAT_OPS[op](*inputs)
    return r if abs(r) <= 30 else None


def _constant(rng, op):
    if op == "pow":
        return rng.choice([2, 3, -1, -2, 0.5, 1.5, 2.5])
    c = rng.choice([rng.choice([-3, -2, 2, 3]), round(rng.uniform(0.3, 2.0) * rng.choice([-1, 1]), 6)])
    return c


def random_program(seed, ops, n_leaves=5, n_steps=30):
    """A random expression graph that uses every op of `ops` at least once, reuses nodes (a + a, a * a, a node
    feeding several later ones) and ends in a weighted sum of several nodes (random upstream gradients)."""
    rng = random.Random(seed)
    leaves = [round(rng.uniform(0.5, 1.5) * s, 6) for s in [1, -1] + [rng.choice([-1, 1]) for _ in range(n_leaves - 2)]]
    vals, steps = list(leaves), []

    def pick():
        return len(vals) - 1 if rng.random() < 0.4 else rng.randrange(len(vals))

    def attempt(op):
        i = pick()
        if op in BINARY:
            args = [i, i if rng.random() < 0.2 else pick()]
        elif op in CONST_RIGHT:
            args = [i, _constant(rng, op)]
        elif op in CONST_LEFT:
            args = [_constant(rng, op), i]
        else:
            args = [i]
        r = _value(op, args, vals)
        return None if r is None else (args, r)

    wanted = list(ops)
    rng.shuffle(wanted)
    wanted += [rng.choice(ops) for _ in range(max(0, n_steps - len(ops)))]
    for op in wanted:
        for _ in range(200):
            got = attempt(op)
            if got:
                break
        else:  # leaf 0 (between 0.5 and 1.5) is a safe input for every op
            args = [0, 0] if op in BINARY else [0, 2] if op in CONST_RIGHT else [2, 0] if op in CONST_LEFT else [0]
            got = (args, _value(op, args, vals))
        steps.append([op, *got[0]])
        vals.append(got[1])
    n = len(vals)
    chosen = sorted({n - 1, n - 2, n - 3, rng.randrange(n_leaves), rng.randrange(n_leaves), rng.randrange(n),
                     rng.randrange(n)})
    out = [[i, round(rng.uniform(0.5, 1.5) * rng.choice([-1, 1]), 6)] for i in chosen]
    return {"leaves": leaves, "steps": steps, "out": out}


def reused_nodes_program(seed):
    """a + a, a * a, and nodes that each feed several later nodes."""
    rng = random.Random(seed)
    a, b = round(rng.uniform(0.5, 1.1), 6) * rng.choice([-1, 1]), round(rng.uniform(0.5, 1.5), 6)
    steps = [["add", 0, 0],        # 2: a + a
             ["mul", 0, 0],        # 3: a * a
             ["mul", 2, 3],        # 4: (a + a) * (a * a)
             ["sigmoid", 4],       # 5
             ["add", 5, 1],        # 6: ... + b
             ["mul", 6, 2],        # 7: uses (a + a) again
             ["sub", 7, 0],        # 8: uses a again
             ["tanh", 3],          # 9: uses a * a again
             ["mul", 9, 9]]        # 10: t * t
    return {"leaves": [a, b], "steps": steps,
            "out": [[8, 1.0], [10, round(rng.uniform(0.5, 1.5), 6)], [3, -0.7], [1, round(rng.uniform(0.5, 1.5), 6)]]}


def chain_program(seed, links=100):
    """A deep chain m -> h1 -> ... -> hN from m = x * w, with shortcut edges: the output also reads m and two
    nodes in the middle of the chain, and the chain adds an earlier node of itself once. Only a walk in
    topological order gives each node all of its gradient before passing it on."""
    rng = random.Random(seed)
    leaves = [round(rng.uniform(0.5, 1.5), 6), round(rng.uniform(0.5, 1.5), 6) * rng.choice([-1, 1])]
    steps, vals = [["mul", 0, 1]], [*leaves, leaves[0] * leaves[1]]
    marks = {}
    for k in range(links):
        c = round(rng.uniform(0.95, 1.05) * rng.choice([-1, 1]), 6)
        if abs(vals[-1]) > 3:
            c = round(c / abs(vals[-1]), 6)
        d = round(rng.uniform(-0.1, 0.1), 6)
        steps += [["rmul", c, len(vals) - 1]]
        vals.append(c * vals[-1])
        steps += [["radd", d, len(vals) - 1]]
        vals.append(d + vals[-1])
        if k == 30:
            steps += [["add", len(vals) - 1, marks[10]]]
            vals.append(vals[-1] + vals[marks[10]])
        marks[k] = len(vals) - 1
    m = 2
    out = [[len(vals) - 1, 1.0], [m, round(rng.uniform(0.5, 1.5), 6)],
           [marks[40], round(rng.uniform(0.5, 1.5), 6)], [marks[80], -round(rng.uniform(0.5, 1.5), 6)]]
    return {"leaves": leaves, "steps": steps, "out": out}


def local_cases(seed, ops):
    """One op on fresh leaves whose .grad already holds something (so `=` instead of `+=` shows), with a random
    upstream gradient (so forgetting `* out.grad` shows)."""
    rng = random.Random(seed)

    def sgn():
        return rng.choice([-1, 1])
    cases = []
    for op in ops:
        for _ in range(3):
            x = [round(rng.uniform(0.3, 1.8) * sgn(), 6), round(rng.uniform(0.3, 1.8) * sgn(), 6)]
            case = {"op": op, "x": x, "pre": [round(rng.uniform(0.1, 1.0) * sgn(), 6) for _ in x],
                    "g": round(rng.uniform(0.5, 2.0) * sgn(), 6)}
            if op == "pow":
                case["k"] = rng.choice([2, 3, -1, -2, 0.5, 1.5])
                x[0] = abs(x[0])
            if op == "relu":
                x[0] = round(rng.uniform(0.2, 2.0), 6) * (1 if len(cases) % 2 else -1)
            cases.append(case)
    return cases


def moons(seed, n=60, noise=0.1):
    """Two interleaving half circles (as scikit-learn's make_moons), labels -1 (upper) and +1 (lower)."""
    rng = random.Random(seed)
    X, y = [], []
    for i in range(n):
        t = math.pi * (i // 2) / (n // 2 - 1)
        if i % 2 == 0:
            p, label = [math.cos(t), math.sin(t)], -1
        else:
            p, label = [1 - math.cos(t), 0.5 - math.sin(t)], 1
        X.append([round(v + rng.gauss(0, noise), 6) for v in p])
        y.append(label)
    return X, y


# -- probes: they run next to the notebook's code --------------------------------------------------------------
@probe
def backprop(nb, root, seed_grad=1.0):
    """The probe's own back-propagation: a topological order over `_prev`, then each `_backward` in reverse.
    It zeroes nothing, so gradients already in the leaves stay and are added to."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
        elif id(v) not in seen:
            seen.add(id(v))
            stack.append((v, True))
            stack.extend((c, False) for c in v._prev if id(c) not in seen)
    root.grad = seed_grad
    for v in reversed(order):
        v._backward()
    return order


@probe
def run_program(nb, program, student_ops, backprop_by="probe"):
    """Build `program` with nb.Value: the ops named in `student_ops` use the notebook's operators and methods,
    the others are nodes the probe makes itself. Gradients by the probe ("probe"), by `root.backward()`
    ("student") or none ("none"). Returns every program node's value and gradient."""
    import math
    V = nb.Value

    def node(data, children, op, local):
        out = V(data, tuple(children), op)

        def _backward():
            for child, d in local:
                child.grad += d * out.grad
        out._backward = _backward
        return out

    def sig(x):
        return 1 / (1 + math.exp(-x))
    trusted = {
        "add": lambda a, b: node(a.data + b.data, (a, b), "+", [(a, 1.0), (b, 1.0)]),
        "mul": lambda a, b: node(a.data * b.data, (a, b), "*", [(a, b.data), (b, a.data)]),
        "sub": lambda a, b: node(a.data - b.data, (a, b), "-", [(a, 1.0), (b, -1.0)]),
        "div": lambda a, b: node(a.data / b.data, (a, b), "/", [(a, 1 / b.data), (b, -a.data / b.data ** 2)]),
        "addc": lambda a, c: node(a.data + c, (a,), "+c", [(a, 1.0)]),
        "mulc": lambda a, c: node(a.data * c, (a,), "*c", [(a, c)]),
        "subc": lambda a, c: node(a.data - c, (a,), "-c", [(a, 1.0)]),
        "divc": lambda a, c: node(a.data / c, (a,), "/c", [(a, 1 / c)]),
        "pow": lambda a, k: node(a.data ** k, (a,), "**", [(a, k * a.data ** (k - 1))]),
        "radd": lambda c, a: node(c + a.data, (a,), "c+", [(a, 1.0)]),
        "rmul": lambda c, a: node(c * a.data, (a,), "c*", [(a, c)]),
        "rsub": lambda c, a: node(c - a.data, (a,), "c-", [(a, -1.0)]),
        "rdiv": lambda c, a: node(c / a.data, (a,), "c/", [(a, -c / a.data ** 2)]),
        "neg": lambda a: node(-a.data, (a,), "neg", [(a, -1.0)]),
        "exp": lambda a: node(math.exp(a.data), (a,), "exp", [(a, math.exp(a.data))]),
        "tanh": lambda a: node(math.tanh(a.data), (a,), "tanh", [(a, 1 - math.tanh(a.data) ** 2)]),
        "relu": lambda a: node(max(a.data, 0.0), (a,), "relu", [(a, 1.0 if a.data > 0 else 0.0)]),
        "sigmoid": lambda a: node(sig(a.data), (a,), "sigmoid", [(a, sig(a.data) * (1 - sig(a.data)))]),
    }
    student = {
        "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b, "div": lambda a, b: a / b,
        "addc": lambda a, c: a + c, "mulc": lambda a, c: a * c, "subc": lambda a, c: a - c,
        "divc": lambda a, c: a / c, "pow": lambda a, k: a ** k,
        "radd": lambda c, a: c + a, "rmul": lambda c, a: c * a, "rsub": lambda c, a: c - a,
        "rdiv": lambda c, a: c / a, "neg": lambda a: -a,
        "exp": lambda a: a.exp(), "tanh": lambda a: a.tanh(), "relu": lambda a: a.relu(),
        "sigmoid": lambda a: a.sigmoid(),
    }
    nodes = [V(float(x)) for x in program["leaves"]]
    for op, *args in program["steps"]:
        fn = student[op] if op in student_ops else trusted[op]
        if op in ("radd", "rmul", "rsub", "rdiv"):
            nodes.append(fn(args[0], nodes[args[1]]))
        elif op in ("addc", "mulc", "subc", "divc", "pow"):
            nodes.append(fn(nodes[args[0]], args[1]))
        else:
            nodes.append(fn(*(nodes[i] for i in args)))
    picked = [(nodes[i], c) for i, c in program["out"]]
    root = node(sum(n.data * c for n, c in picked), [n for n, _ in picked], "sum", picked)
    if backprop_by == "probe":
        backprop(nb, root)
    elif backprop_by == "student":
        root.backward()
    return {"value": [float(n.data) for n in nodes], "grad": [float(n.grad) for n in nodes]}


@probe
def run_program_torch(nb, program):
    """The same program in torch.autograd, float64: the expected values and gradients."""
    import torch
    nodes = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in program["leaves"]]
    f = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b, "div": lambda a, b: a / b,
         "addc": lambda a, c: a + c, "mulc": lambda a, c: a * c, "subc": lambda a, c: a - c,
         "divc": lambda a, c: a / c, "pow": lambda a, k: a ** k,
         "radd": lambda c, a: c + a, "rmul": lambda c, a: c * a, "rsub": lambda c, a: c - a,
         "rdiv": lambda c, a: c / a, "neg": lambda a: -a, "exp": torch.exp, "tanh": torch.tanh,
         "relu": torch.relu, "sigmoid": torch.sigmoid}
    for op, *args in program["steps"]:
        if op in ("radd", "rmul", "rsub", "rdiv"):
            t = f[op](args[0], nodes[args[1]])
        elif op in ("addc", "mulc", "subc", "divc", "pow"):
            t = f[op](nodes[args[0]], args[1])
        else:
            t = f[op](*(nodes[i] for i in args))
        t.retain_grad()
        nodes.append(t)
    root = sum(nodes[i] * c for i, c in program["out"])
    root.backward()
    return {"value": [n.item() for n in nodes],
            "grad": [n.grad.item() if n.grad is not None else 0.0 for n in nodes]}


@probe
def local_backward(nb, cases):
    """Each case: fresh leaves whose .grad already holds `pre`, one op, then back-propagation from its output
    with upstream gradient `g` (by the probe). Returns the output's value and the leaves' gradients."""
    results = []
    for case in cases:
        leaves = [nb.Value(float(x)) for x in case["x"]]
        for leaf, pre in zip(leaves, case["pre"]):
            leaf.grad = float(pre)
        a, b, op = leaves[0], leaves[1], case["op"]
        if op == "add":
            out = a + b
        elif op == "add_self":
            out = a + a
        elif op == "mul":
            out = a * b
        elif op == "mul_self":
            out = a * a
        elif op == "pow":
            out = a ** case["k"]
        else:
            out = getattr(a, op)()
        value = float(out.data)
        backprop(nb, out, float(case["g"]))
        results.append({"out": value, "grads": [float(leaf.grad) for leaf in leaves]})
    return results


@probe
def zero_then_backward_again(nb, program):
    """backward(), zero_grad(), backward() again on a graph of the probe's nodes: the grads of every node after
    each stage (the node list comes from the probe's own walk, so it includes intermediate nodes)."""
    V = nb.Value
    nodes = [V(float(x)) for x in program["leaves"]]

    def node(data, children, local):
        out = V(data, tuple(children), "")

        def _backward():
            for child, d in local:
                child.grad += d * out.grad
        out._backward = _backward
        return out
    for op, i, j in program["steps"]:
        a, b = nodes[i], nodes[j]
        nodes.append(node(a.data + b.data, (a, b), [(a, 1.0), (b, 1.0)]) if op == "add"
                     else node(a.data * b.data, (a, b), [(a, b.data), (b, a.data)]))
    picked = [(nodes[i], c) for i, c in program["out"]]
    root = node(sum(n.data * c for n, c in picked), [n for n, _ in picked], picked)
    everything = nodes + [root]
    root.backward()
    first = [float(n.grad) for n in everything]
    for k, n in enumerate(everything):  # gradients that are not 0 whatever backward did: zero_grad must clear them
        n.grad = 1.0 + k
    root.zero_grad()
    zeroed = [float(n.grad) for n in everything]
    root.backward()
    second = [float(n.grad) for n in everything]
    return {"first": first, "zeroed": zeroed, "second": second}


@probe
def set_weights(nb, neurons, rng):
    """Give each neuron weights in [-1, 1] and a bias in [-0.5, 0.5], in order."""
    for n in neurons:
        for w in n.w:
            w.data = rng.uniform(-1, 1)
        n.b.data = rng.uniform(-0.5, 0.5)


@probe
def mlp_structure(nb):
    """Sizes of parameters() for neurons, layers and MLPs, and whether they are exactly the weights and biases."""
    out = {}
    for nin in (1, 5):
        out[f"Neuron({nin})"] = len(nb.Neuron(nin).parameters())
    for nin, nout in ((3, 4), (2, 1), (1, 3)):
        layer = nb.Layer(nin, nout)
        out[f"Layer({nin}, {nout})"] = len(layer.parameters())
    for nin, nouts in ((3, [4, 5, 1]), (2, [3, 2]), (1, [1])):
        model = nb.MLP(nin, nouts)
        params = model.parameters()
        expected = [p for layer in model.layers for n in layer.neurons for p in n.w + [n.b]]
        key = f"MLP({nin}, {nouts})"
        out[key] = {"layers": len(model.layers), "neurons per layer": [len(layer.neurons) for layer in model.layers],
                    "inputs per layer": [len(layer.neurons[0].w) for layer in model.layers],
                    "parameters": len(params),
                    "parameters are the weights and biases": sorted(map(id, params)) == sorted(map(id, expected))}
    return out


@probe
def mlp_outputs(nb, seed):
    """Outputs of neurons (each activation), layers (nout > 1 and == 1) and MLPs with weights set by the probe."""
    import random
    rng = random.Random(seed)
    xs = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(4)]
    out = {}
    for act in ("tanh", "relu", "sigmoid", "linear"):
        n = nb.Neuron(3, activation=act)
        set_weights(nb, [n], rng)
        out[f"Neuron(3, {act!r})"] = [float(n(x).data) for x in xs]
    layer = nb.Layer(3, 4, activation="tanh")
    set_weights(nb, layer.neurons, rng)
    out["Layer(3, 4)"] = [[float(v.data) for v in layer(x)] for x in xs]
    single = nb.Layer(3, 1, activation="relu")
    set_weights(nb, single.neurons, rng)
    out["Layer(3, 1) returns a list of one Value"] = [[float(v.data) for v in single(x)] for x in xs]
    model = nb.MLP(3, [4, 5, 1])
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    out["MLP(3, [4, 5, 1])"] = [float(model(x).data) for x in xs]
    model = nb.MLP(3, [4, 2], activation="relu")
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    out["MLP(3, [4, 2], activation='relu')"] = [[float(v.data) for v in model(x)] for x in xs]
    model = nb.MLP(3, [1, 3, 1])
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    out["MLP(3, [1, 3, 1]) (a hidden layer of one neuron)"] = [float(model(x).data) for x in xs]
    model = nb.MLP(3, [3, 2, 1], activation="sigmoid")
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    out["MLP(3, [3, 2, 1], activation='sigmoid')"] = [float(model(x).data) for x in xs]
    return out


@probe
def mlp_gradients(nb, seed):
    """Gradient of an MLP's output with respect to every weight and bias (propagated by the probe)."""
    import random
    rng = random.Random(seed)
    model = nb.MLP(3, [4, 4, 1])
    neurons = [n for layer in model.layers for n in layer.neurons]
    set_weights(nb, neurons, rng)
    x = [rng.uniform(-2, 2) for _ in range(3)]
    backprop(nb, model(x), rng.uniform(0.5, 2.0))
    return [[float(w.grad) for w in n.w] + [float(n.b.grad)] for n in neurons]


@probe
def module_zero_grad(nb, seed):
    """Gradients after zero_grad() on an MLP, a layer and a neuron whose parameters held gradients."""
    import random
    rng = random.Random(seed)
    out = {}
    for name, module in (("MLP(2, [3, 1])", nb.MLP(2, [3, 1])), ("Layer(2, 3)", nb.Layer(2, 3)),
                         ("Neuron(4)", nb.Neuron(4))):
        for p in module.parameters():
            p.grad = rng.uniform(-1, 1)
        module.zero_grad()
        out[name] = [float(p.grad) for p in module.parameters()]
    return out


@probe
def hinge_loss_values(nb, seed):
    """hinge_loss on scores with margins away from the kink, and its gradient with respect to each score."""
    import random
    rng = random.Random(seed)
    out = []
    for n in (1, 7):
        ys = [rng.choice([-1, 1]) for _ in range(n)]
        margins = [rng.choice([-1, 1]) * rng.uniform(0.1, 1.5) for _ in range(n)]   # 1 - y*s, never near 0
        scores = [nb.Value(y * (1 - m)) for y, m in zip(ys, margins)]
        loss = nb.hinge_loss(scores, ys)
        value = float(loss.data)
        backprop(nb, loss)
        out.append({"loss": value, "grads": [float(s.grad) for s in scores]})
    return out


@probe
def accuracy_values(nb, seed):
    """accuracy() of an MLP with weights set by the probe, on random points and labels; then of a stand-in model
    whose score is the point's first coordinate, with scores of both signs on both sides of 1 in size, and of exactly
    0 (which predicts -1)."""
    import random
    rng = random.Random(seed)
    model = nb.MLP(2, [4, 1])
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    out = []
    for n in (1, 5, 23):
        X = [[rng.uniform(-2, 2), rng.uniform(-2, 2)] for _ in range(n)]
        y = [rng.choice([-1, 1]) for _ in range(n)]
        out.append(float(nb.accuracy(model, X, y)))
    X = [[0.5, 0.0], [-0.5, 0.0], [2.0, 0.0], [-3.0, 0.0], [0.25, 0.0], [-0.75, 0.0]]
    y = [1, -1, 1, 1, 1, -1]
    out.append(float(nb.accuracy(lambda x: nb.Value(x[0]), X, y)))
    # a score of exactly 0 predicts -1: right for the first two points, wrong for the third
    X = [[0.0, 1.0], [0.0, -2.0], [0.0, 0.5], [1.5, 0.0]]
    y = [-1, -1, 1, 1]
    out.append(float(nb.accuracy(lambda x: nb.Value(x[0]), X, y)))
    return out


@probe
def train_few_steps(nb, seed, steps, lr):
    """train() for a few steps from weights set by the probe, on a model whose parameters hold stale gradients:
    the losses it returns and the parameters after."""
    import random
    rng = random.Random(seed)
    model = nb.MLP(2, [4, 4, 1])
    neurons = [n for layer in model.layers for n in layer.neurons]
    set_weights(nb, neurons, rng)
    X = [[rng.uniform(-2, 2), rng.uniform(-2, 2)] for _ in range(12)]
    y = [1 if x0 * x1 > 0 else -1 for x0, x1 in X]
    for p in model.parameters():
        p.grad = rng.uniform(-5, 5)      # stale gradients from earlier work: train must not use them
    losses = nb.train(model, X, y, steps=steps, lr=lr)
    return {"losses": [float(v) for v in losses],
            "parameters": [[float(w.data) for w in n.w] + [float(n.b.data)] for n in neurons]}


@probe
def train_on_moons(nb, X, y, steps, lr, seed):
    """train() an MLP(2, [16, 1]) on a fixed moons dataset; the accuracy is measured by the probe."""
    import gc
    import random
    rng = random.Random(seed)
    model = nb.MLP(2, [16, 1])
    set_weights(nb, [n for layer in model.layers for n in layer.neurons], rng)
    for n in model.layers[-1].neurons + model.layers[0].neurons:
        n.b.data = 0.0
    # every Value and its _backward closure form a cycle: keep the collector off everything older than the
    # training, and let it scan the young graphs every 500,000 allocations instead of 700 (bench/moons_gc.py)
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(500_000, 1, 1000)
    try:
        losses = [float(v) for v in nb.train(model, X, y, steps=steps, lr=lr)]
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
    correct = sum((model(x).data > 0) == (label > 0) for x, label in zip(X, y))
    return {"losses": losses, "accuracy": correct / len(X)}


# -- value_ops ------------------------------------------------------------------------------------------------
@pytest.mark.exercise("value_ops")
def test_value_ops_forward(student, reference, seed):
    """The values of +, -, *, /, ** and unary minus, with Values and plain numbers on either side (`2 - a`,
    `3 / a`...): check the forward computation of each operator, and `__rsub__`/`__rtruediv__` (other - self,
    other / self: the order matters)."""
    program = random_program(seed, VALUE_OPS, n_steps=40)
    found = student(run_program, program=program, student_ops=VALUE_OPS, backprop_by="none")
    expected = reference(run_program_torch, program=program)
    assert_close(found["value"], expected["value"], atol=ATOL, rtol=RTOL, what="the values of the expression nodes")


@pytest.mark.exercise("value_ops")
def test_value_ops_local_backward(student, reference, seed):
    """The `_backward` of +, * and ** on their own, with an upstream gradient that is not 1 and inputs whose .grad
    already holds something: each input must get `+=` local derivative * out.grad (d(a*b)/da = b,
    d(a**k)/da = k * a**(k-1)), and `a + a`, `a * a` must give a both contributions."""
    cases = local_cases(seed, ["add", "add_self", "mul", "mul_self", "pow"])
    found = student(local_backward, cases=cases)
    expected = reference(local_backward, cases=cases)
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="values and input gradients of single operations")


@pytest.mark.exercise("value_ops")
def test_value_ops_gradients_match_torch(student, reference, seed):
    """Gradients through random expressions of +, -, *, /, ** and unary minus (numbers on either side, nodes used
    several times) compared with torch.autograd: check that -, / and the reflected operators are built from
    +, * and ** correctly, and that every `_backward` accumulates with `+=`."""
    for s in (seed, seed + 1):
        program = random_program(s, VALUE_OPS, n_steps=40)
        found = student(run_program, program=program, student_ops=VALUE_OPS, backprop_by="probe")
        expected = reference(run_program_torch, program=program)
        assert_close(found["grad"], expected["grad"], atol=ATOL, rtol=RTOL,
                     what="the gradients of the expression nodes (torch.autograd gives the expected ones)")


# -- activations ----------------------------------------------------------------------------------------------
@pytest.mark.exercise("activations")
def test_activation_values(student, reference, seed):
    """The values of exp, tanh, relu and sigmoid (relu of negative and positive inputs): check the forward
    formula of each."""
    rng = random.Random(seed)
    leaves = [round(rng.uniform(-2.5, 2.4), 6) for _ in range(12)]
    leaves = [x if abs(x) > 0.05 else 0.5 for x in leaves] + [-1.3, 0.7]
    steps = [[op, i] for i in range(len(leaves)) for op in ACTIVATIONS]
    program = {"leaves": leaves, "steps": steps, "out": [[len(leaves), 1.0]]}
    found = student(run_program, program=program, student_ops=ACTIVATIONS, backprop_by="none")
    expected = reference(run_program_torch, program=program)
    assert_close(found["value"], expected["value"], atol=ATOL, rtol=RTOL, what="exp, tanh, relu and sigmoid values")


@pytest.mark.exercise("activations")
def test_activation_local_backward(student, reference, seed):
    """Each activation's `_backward` alone, with an upstream gradient that is not 1 and an input whose .grad
    already holds something: the input must get `+=` local derivative * out.grad, with exp' = exp(x),
    tanh' = 1 - tanh(x)**2, relu' = 1 if x > 0 else 0, sigmoid' = s * (1 - s)."""
    cases = local_cases(seed, ACTIVATIONS)
    found = student(local_backward, cases=cases)
    expected = reference(local_backward, cases=cases)
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="values and input gradients of the activations")


@pytest.mark.exercise("activations")
def test_activation_gradients_match_torch(student, reference, seed):
    """Gradients through random expressions where exp, tanh, relu and sigmoid (yours) feed and are fed by other
    nodes, compared with torch.autograd: check each activation's local derivative and that it uses `+=`."""
    for s in (seed, seed + 1):
        program = random_program(s, ALL_OPS + ACTIVATIONS * 2, n_steps=40)
        found = student(run_program, program=program, student_ops=ACTIVATIONS, backprop_by="probe")
        expected = reference(run_program_torch, program=program)
        assert_close(found["grad"], expected["grad"], atol=ATOL, rtol=RTOL,
                     what="the gradients of the expression nodes (torch.autograd gives the expected ones)")


@pytest.mark.exercise("activations")
def test_relu_derivative_at_zero(student, reference, seed):
    """relu has no derivative at exactly x = 0, and the notebook takes it to be 0 there: relu(0) = 0, and an input
    of exactly 0 gets nothing from out.grad (an input above 0 gets all of it, one below 0 nothing)."""
    rng = random.Random(seed)
    cases = [{"op": "relu", "x": [x0, round(rng.uniform(0.3, 1.8), 6)],
              "pre": [round(rng.uniform(0.1, 1.0) * rng.choice([-1, 1]), 6) for _ in range(2)],
              "g": round(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]), 6)}
             for x0 in (0.0, 0.0, round(rng.uniform(0.2, 2.0), 6), -round(rng.uniform(0.2, 2.0), 6))]
    found = student(local_backward, cases=cases)
    expected = reference(local_backward, cases=cases)
    assert_close(found[:2], expected[:2], atol=ATOL, rtol=RTOL,
                 what="relu's value and its input's gradient at x = 0 (the input's .grad held something already)")
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="relu's values and input gradients at 0, above and below")


# -- backprop -------------------------------------------------------------------------------------------------
@pytest.mark.exercise("backprop")
def test_backward_random_graphs_match_torch(student, reference, seed):
    """`out.backward()` on random expression graphs (every kind of operation, nodes used several times), compared
    with torch.autograd: check that backward sets out.grad = 1, then calls `_backward` of every node exactly
    once, in reverse topological order."""
    for s in (seed, seed + 1, seed + 2):
        program = random_program(s, ALL_OPS)
        found = student(run_program, program=program, student_ops=[], backprop_by="student")
        expected = reference(run_program_torch, program=program)
        assert_close(found["grad"], expected["grad"], atol=ATOL, rtol=RTOL,
                     what="the gradients after out.backward() (torch.autograd gives the expected ones)")


@pytest.mark.exercise("backprop")
def test_backward_deep_chain_with_shortcuts(student, reference, seed):
    """A chain of 200 nodes whose output also reads the chain's start and middle directly (shortcut edges):
    a node may call its `_backward` only once it has received the gradient from every node that uses it. Walk
    the nodes in reverse topological order (children appended after all their inputs), not in the order a plain
    recursion or a breadth-first search meets them."""
    program = chain_program(seed)
    found = student(run_program, program=program, student_ops=[], backprop_by="student")
    expected = reference(run_program_torch, program=program)
    assert_close(found["grad"], expected["grad"], atol=ATOL, rtol=RTOL,
                 what="the gradients along a deep chain with shortcut edges")


@pytest.mark.exercise("backprop")
def test_backward_reused_nodes(student, reference, seed):
    """Nodes used several times (`a + a`, `a * a`, a node feeding several later ones) must appear once in the
    topological order: keep a `visited` set, so that no `_backward` runs twice."""
    program = reused_nodes_program(seed)
    found = student(run_program, program=program, student_ops=[], backprop_by="student")
    expected = reference(run_program_torch, program=program)
    assert_close(found["grad"], expected["grad"], atol=ATOL, rtol=RTOL,
                 what="the gradients of a graph with reused nodes")


@pytest.mark.exercise("backprop")
def test_zero_grad_clears_every_node(student, reference, seed):
    """After `out.zero_grad()` every node of the graph, inputs and intermediate nodes included, has .grad == 0:
    walk the whole graph (the same topological order as backward), not just `out`."""
    program = random_program(seed, ["add", "mul"], n_steps=20)
    found = student(zero_then_backward_again, program=program)
    expected = reference(zero_then_backward_again, program=program)
    assert_close(found["zeroed"], expected["zeroed"], atol=0, rtol=0, what="the gradients after zero_grad()")


@pytest.mark.exercise("backprop")
def test_backward_twice_after_zero_grad(student, reference, seed):
    """backward(), zero_grad(), backward() must give the same gradients twice: gradients accumulate with `+=`, so
    zero_grad must clear every node of the graph before the second backward."""
    program = random_program(seed + 7, ["add", "mul"], n_steps=20)
    found = student(zero_then_backward_again, program=program)
    expected = reference(zero_then_backward_again, program=program)
    assert_close({"first": found["first"], "second": found["second"]},
                 {"first": expected["first"], "second": expected["second"]}, atol=ATOL, rtol=RTOL,
                 what="the gradients after backward(), then after zero_grad() and backward() again")


# -- mlp ------------------------------------------------------------------------------------------------------
@pytest.mark.exercise("mlp")
def test_parameter_counts(student, reference):
    """parameters() of a Neuron(nin) holds nin + 1 Values, of a Layer(nin, nout) nin * nout + nout, of an MLP the
    sum over its layers, and they must be exactly the neurons' `w` and `b` (a flat list, not a list of lists).
    Check also that MLP(nin, nouts) makes one Layer per entry of nouts, the first reading nin inputs."""
    found = student(mlp_structure)
    expected = reference(mlp_structure)
    assert_close(found, expected, what="the structure and parameter counts")


@pytest.mark.exercise("mlp")
def test_outputs_with_given_weights(student, reference, seed):
    """With the weights set by the grader: a neuron computes activation(w · x + b) with its own activation
    ('tanh', 'relu', 'sigmoid' or 'linear'); a layer always returns a list (of one Value when it has one neuron); an MLP
    applies its hidden layers with `activation` and a *linear* last layer, and returns a single Value when the last
    layer has one neuron."""
    found = student(mlp_outputs, seed=seed)
    expected = reference(mlp_outputs, seed=seed)
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="the outputs of neurons, layers and MLPs")


@pytest.mark.exercise("mlp")
def test_gradients_reach_every_parameter(student, reference, seed):
    """The gradient of an MLP's output with respect to each weight and bias: build the neuron's output from the
    Values `w` and `b` with Value operations (never from `.data`), so that the graph reaches every parameter."""
    found = student(mlp_gradients, seed=seed)
    expected = reference(mlp_gradients, seed=seed)
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="the parameters' gradients (one row per neuron)")


@pytest.mark.exercise("mlp")
def test_module_zero_grad(student, reference, seed):
    """Module.zero_grad() sets the .grad of every parameter returned by parameters() to 0."""
    found = student(module_zero_grad, seed=seed)
    expected = reference(module_zero_grad, seed=seed)
    assert_close(found, expected, atol=0, rtol=0, what="the parameters' gradients after zero_grad()")


# -- training -------------------------------------------------------------------------------------------------
@pytest.mark.exercise("training")
def test_hinge_loss(student, reference, seed):
    """hinge_loss is the *mean* over the points of max(0, 1 - y_i * s_i) (use relu), built from Value
    operations so that each score gets the gradient -y_i / N where its margin is violated and 0 elsewhere."""
    found = student(hinge_loss_values, seed=seed)
    expected = reference(hinge_loss_values, seed=seed)
    assert_close(found, expected, atol=ATOL, rtol=RTOL, what="the hinge loss and its gradients (N = 1, then N = 7)")


@pytest.mark.exercise("training")
def test_accuracy(student, reference, seed):
    """accuracy returns the *fraction* (0 to 1) of the points predicted right, the prediction being +1 when the score
    model(x).data is > 0 and -1 otherwise (a score of exactly 0 predicts -1)."""
    found = student(accuracy_values, seed=seed)
    expected = reference(accuracy_values, seed=seed)
    assert_close(found, expected, atol=1e-12, rtol=0,
                 what="the accuracies (on 1, 5 and 23 points, then on 6 points whose scores are given, then on 4 "
                      "points, 3 of them scored exactly 0)")


@pytest.mark.exercise("training")
def test_train_steps_are_gradient_descent(student, reference, seed):
    """Three steps of train() from given weights must match plain gradient descent: each step computes the loss
    on all points, sets every parameter's gradient to 0 *before* backward (otherwise old gradients are added in),
    calls backward, then updates every parameter with p.data -= lr * p.grad, and records loss.data."""
    found = student(train_few_steps, seed=seed, steps=3, lr=0.2)
    expected = reference(train_few_steps, seed=seed, steps=3, lr=0.2)
    assert_close(found, expected, atol=1e-8, rtol=1e-6, what="the losses and the parameters after 3 steps of train()")


@pytest.mark.exercise("training")
def test_train_learns_moons(student, seed):
    """train() on 50 points of two moons with an MLP(2, [16, 1]) for 60 steps at lr = 1.0 must reach 80%
    accuracy and at least halve the loss (over 40 seeds the reference reaches 86% or more, and under a third of
    the loss): check the update direction (p.data -= lr * p.grad), that gradients are zeroed every step, and
    that train returns one loss per step."""
    # 50 points x 60 steps (not 60 x 100), in every graded row. The reference's run costs 3.8 s of CPU with
    # the collector's default thresholds and 2.1 s (+83 MB) with the probe's (bench/moons_gc.py, median of 3)
    X, y = moons(seed, n=50)
    result = student(train_on_moons, X=X, y=y, steps=60, lr=1.0, seed=seed, timeout=90)
    losses = result["losses"]
    check(len(losses) == 60, f"train(steps=60) returned {len(losses)} losses, expected one per step (60)")
    check(all(math.isfinite(v) for v in losses), "the loss became infinite or NaN during training")
    check(losses[-1] <= 0.5 * losses[0], f"the loss went from {losses[0]:.3f} to {losses[-1]:.3f} in 60 steps; "
                                         "it should at least halve")
    check(result["accuracy"] >= 0.80, f"accuracy after training is {result['accuracy']:.2f}, expected at least 0.80")
