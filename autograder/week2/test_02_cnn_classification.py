"""Hidden tests for week2/02_cnn_classification: training, seeing and designing a CNN.

Models are compared with the reference by giving both the same weights, by name, in float64; the training loop
is replayed step by step on a tiny problem; the student's CNN trained by the student's loop must reach a stated
accuracy on digits within a CPU budget, and the student's CNN1D one on MNIST-1D (with the probe's own loop).
Receptive fields are compared with the reference's on stacks of real layers. The student's own architecture for
the lost digits is not compared with anything: trained by the probe's copy of the notebook's recipe, it must
reach a stated test accuracy within a parameter and CPU budget.
"""
import pytest

from course.testing import assert_close, check, is_finite, probe
from probes import seeded_weights


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def module_shapes(nb, cls, args, x_shape):
    """Parameter count, state_dict shapes and output shape of the notebook's `cls`(*args) on a batch of x_shape,
    and the output shape of each of its layers with parameters (conv1, conv2, fc: names fixed by the state_dict),
    recorded on the way even when a later layer raises."""
    import torch
    torch.manual_seed(0)
    model = getattr(nb, cls)(*args)
    layers = {}

    def record(name):
        def hook(module, inputs, output):     # returns None: the output is left as it is
            layers.setdefault(name, list(getattr(output, "shape", [])))
        return hook

    for name, child in model.named_children():
        if any(True for _ in child.parameters()):
            child.register_forward_hook(record(name))
    try:
        shape = list(model(torch.randn(*x_shape)).shape)
    except (RuntimeError, ValueError) as e:   # a layer given the wrong shape: what it got is in `layers`
        shape = f"{type(e).__name__}: {e}"
    return {"layers": layers, "n_params": sum(p.numel() for p in model.parameters()),
            "state_dict": {name: list(t.shape) for name, t in sorted(model.state_dict().items())},
            "shape": shape}


@probe
def module_forward(nb, seed, cls, args, x_shape):
    """The logits of the notebook's `cls`(*args) in float64, after giving it seeded weights by name."""
    import torch
    model = getattr(nb, cls)(*args).double()
    shapes = seeded_weights(nb, model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    return {"state_dict": shapes, "logits": model(torch.randn(*x_shape, generator=g, dtype=torch.float64))}


@probe
def tiny_problem(nb, seed):
    """A float64 problem of 29 training and 11 validation 6x6 images of 3 classes; validation labels are random."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 1, 6, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0, :3].sum(dim=(1, 2)) > 0).long() + (x[:, 0, 3:].sum(dim=(1, 2)) > 1).long()   # learnable labels
    return {"x_train": x[:29], "y_train": y[:29], "x_val": x[29:], "y_val": torch.randint(0, 3, (11,), generator=g)}


@probe
def tiny_cnn(nb, seed):
    """conv (3 channels) -> ReLU -> pool -> linear, in float64, for 6x6 images of 3 classes."""
    import torch
    import torch.nn as nn
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(27, 3)).double()


@probe
def train_replay(nb, seed):
    """train() for 3 epochs (batches of 8 of 29, the last one of 5) with a noise augmentation drawn from the
    generator: the history, the parameters, and the final model's accuracy on the validation and training data."""
    import torch

    def noisy(xb, generator):
        return xb + 0.3 * torch.randn(xb.shape, generator=generator, dtype=xb.dtype)

    data = tiny_problem(nb, seed)
    model = tiny_cnn(nb, seed)
    history = nb.train(model, data, epochs=3, lr=0.02, batch_size=8, seed=seed, augment=noisy, progress=False)
    model.eval()
    with torch.no_grad():
        val = (model(data["x_val"]).argmax(dim=1) == data["y_val"]).double().mean().item()
        on_train = (model(data["x_train"]).argmax(dim=1) == data["y_train"]).double().mean().item()
    return {"keys": sorted(history), "history": {k: [float(v) for v in history.get(k, [])]
                                                 for k in ("loss", "train_acc", "val_acc")},
            "params": [p.detach().clone() for p in model.parameters()],
            "val_acc_here": val, "train_set_acc_here": on_train}


@probe
def train_modes(nb, seed):
    """train() for 3 epochs on a model with dropout and batch norm that records, at every call, whether autograd
    was on, whether it was in training mode, and whether the batch came from the training or validation data."""
    import torch
    import torch.nn as nn

    data = {k: v.float() if v.is_floating_point() else v for k, v in tiny_problem(nb, seed).items()}

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                     nn.Dropout(0.5), nn.Linear(64, 3))
            self.calls = []

        def forward(self, x):
            rows = x.detach().flatten(1)
            source = "other"
            for name in ("x_train", "x_val"):
                if (rows[:, None] == data[name].flatten(1)[None]).all(dim=2).any(dim=1).all():
                    source = name[2:]
            self.calls.append([bool(torch.is_grad_enabled()), bool(self.training), source])
            return self.net(x)

    torch.manual_seed(seed)
    model = Recorder()
    history = nb.train(model, data, epochs=3, lr=0.01, batch_size=8, seed=seed, progress=False)
    return {"calls": model.calls, "epochs": len(history.get("val_acc", []))}


@probe
def evaluate_case(nb, seed):
    """evaluate on 23 examples of a linear model whose predictions are known, with batch sizes 5 and 500."""
    import torch
    import torch.nn as nn

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 4)
            self.calls = []

        def forward(self, x):
            self.calls.append([bool(torch.is_grad_enabled()), bool(self.training), int(len(x))])
            return self.lin(x)

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Recorder()
    x = torch.randn(23, 6, generator=g)
    with torch.no_grad():
        y = model.lin(x).argmax(dim=1)
    wrong = torch.randperm(23, generator=g)[:9]
    y[wrong] = (y[wrong] + 1) % 4                       # 14 of 23 right
    model.train()
    acc5 = nb.evaluate(model, x, y, batch_size=5)
    calls5 = list(model.calls)
    model.calls.clear()
    model.train()
    acc_all = nb.evaluate(model, x, y)
    return {"acc5": acc5, "acc_all": acc_all, "is_float": isinstance(acc5, float), "calls5": calls5,
            "calls_all": model.calls}


@probe
def digits_run(nb, seed):
    """The student's CNN(1, 10, 8) trained by the student's train() for 15 epochs on digits (200 images held out
    for validation, no augmentation), on one thread; test accuracy and CPU time measured here."""
    import time
    import torch
    import coursedata
    images = coursedata.images("digits")
    order = torch.randperm(len(images["x_train"]), generator=torch.Generator().manual_seed(seed))
    data = {"x_train": images["x_train"][order[200:]], "y_train": images["y_train"][order[200:]],
            "x_val": images["x_train"][order[:200]], "y_val": images["y_train"][order[:200]]}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nb.CNN(1, 10, 8)
        cpu = time.process_time()
        history = nb.train(model, data, epochs=15, lr=3e-3, batch_size=32, seed=seed, progress=False)
        cpu = time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        accuracy = (model(images["x_test"]).argmax(dim=1) == images["y_test"]).double().mean().item()
    return {"accuracy": accuracy, "cpu_seconds": cpu, "loss": [float(v) for v in history["loss"]]}


@probe
def mnist1d_run(nb, seed):
    """The student's CNN1D() trained by this probe's own loop (Adam, lr 1e-2, cosine schedule, 15 epochs,
    batches of 64) on MNIST-1D's 4,000 training sequences, on one thread; test accuracy and CPU time."""
    import time
    import torch
    import torch.nn.functional as F
    import coursedata
    raw = coursedata.mnist1d()
    x, y = torch.from_numpy(raw["x_train"]), torch.from_numpy(raw["y_train"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nb.CNN1D()
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=15)
        cpu = time.process_time()
        for _ in range(15):
            model.train()
            for idx in torch.randperm(len(x), generator=generator).split(64):
                optimizer.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                optimizer.step()
            scheduler.step()
        cpu = time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(raw["x_test"]))
    accuracy = (logits.argmax(dim=1) == torch.from_numpy(raw["y_test"])).double().mean().item()
    return {"accuracy": accuracy, "cpu_seconds": cpu}


@probe
def stand_in_cnn(nb, seed, in_channels, size, n):
    """A stand-in CNN (conv1, pool, conv2, fc, as documented) in float64 whose conv1 bias is shifted so that
    about half of conv1's outputs are negative, and a batch x [n, in_channels, size, size]."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(6, 5, kernel_size=3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(5 * (size // 4) ** 2, 4)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            return self.fc(x.flatten(1))

    torch.manual_seed(seed)
    model = StandIn().double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.conv1.bias.copy_(torch.randn(6, generator=g, dtype=torch.float64) - 0.3)
    return model, torch.rand(n, in_channels, size, size, generator=g, dtype=torch.float64)


@probe
def filters_case(nb, seed, in_channels, size):
    """first_layer_filters of the stand-in CNN, and whether they still require grad."""
    model, _ = stand_in_cnn(nb, seed, in_channels, size, 1)
    filters = nb.first_layer_filters(model)
    return {"filters": filters, "requires_grad": bool(getattr(filters, "requires_grad", False))}


@probe
def maps_case(nb, seed, in_channels, size, n):
    """feature_maps of the stand-in CNN for a random batch, and whether they still require grad."""
    model, x = stand_in_cnn(nb, seed, in_channels, size, n)
    maps = nb.feature_maps(model, x)
    return {"maps": maps, "requires_grad": bool(getattr(maps, "requires_grad", False))}


# ---------------------------------------------------------------------------------------------------------
# the CNN module
# ---------------------------------------------------------------------------------------------------------

def check_shapes(student, reference, cls, args, x_shape):
    found = student(module_shapes, cls=cls, args=args, x_shape=x_shape)
    expected = reference(module_shapes, cls=cls, args=args, x_shape=x_shape)
    model = f"{cls}({', '.join(map(str, args))})"
    assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                 what=f"{model}'s state_dict (names and shapes of its tensors)")
    assert_close(found, expected, atol=0, rtol=0, what=f"{model} on a batch {x_shape}")


def check_forward(student, reference, seed, cls, args, x_shape):
    found = student(module_forward, seed=seed, cls=cls, args=args, x_shape=x_shape)
    expected = reference(module_forward, seed=seed, cls=cls, args=args, x_shape=x_shape)
    model = f"{cls}({', '.join(map(str, args))})"
    assert_close(found["state_dict"], expected["state_dict"], atol=0, rtol=0,
                 what=f"{model}'s state_dict (names and shapes of its tensors)")
    assert_close(found["logits"], expected["logits"], atol=1e-10, rtol=1e-8,
                 what=f"{model}'s logits for {x_shape} with the reference's weights")


@pytest.mark.exercise("cnn_module")
def test_cnn_parameters_and_shapes(student, reference):
    """CNN(in_channels, num_classes, image_size) holds conv1 (in -> 32, 3x3), conv2 (32 -> 64, 3x3) and fc (64 * (image_size // 4) ** 2 -> num_classes) and returns [N, num_classes]."""
    for c, k, size, n in [(1, 10, 8, 5), (1, 10, 8, 1), (3, 7, 12, 2), (2, 10, 10, 3), (1, 10, 28, 2)]:
        check_shapes(student, reference, "CNN", [c, k, size], [n, c, size, size])


@pytest.mark.exercise("cnn_module")
def test_cnn_forward_matches_reference(student, reference, seed):
    """With the same weights, CNN.forward is conv1 -> ReLU -> pool -> conv2 -> ReLU -> pool -> flatten(1) (channel, row, column order) -> fc, with no activation on the logits."""
    for c, k, size, n in [(1, 10, 8, 4), (3, 5, 12, 1), (1, 4, 10, 3)]:
        check_forward(student, reference, seed, "CNN", [c, k, size], [n, c, size, size])


# ---------------------------------------------------------------------------------------------------------
# the training loop
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("training")
def test_evaluate_accuracy_and_batches(student, reference, seed):
    """evaluate returns the fraction (a Python float) of examples whose largest logit is the label, going through the data batch_size examples at a time, in eval mode and under torch.no_grad()."""
    found = student(evaluate_case, seed=seed)
    expected = reference(evaluate_case, seed=seed)
    check(found["is_float"], "evaluate should return a Python float")
    assert_close([found["acc5"], found["acc_all"]], [expected["acc5"], expected["acc_all"]], atol=1e-9, rtol=0,
                 what="evaluate's accuracy on 23 examples (14 right) with batch_size=5 and the default")
    sizes = [size for _, _, size in found["calls5"]]
    check(sizes == [5, 5, 5, 5, 3], f"evaluate(batch_size=5) on 23 examples called the model on batches of "
                                    f"{sizes}, expected [5, 5, 5, 5, 3]")
    calls = found["calls5"] + found["calls_all"]
    check(not any(grad for grad, _, _ in calls), "evaluate ran the model with autograd on: wrap the loop in "
                                                  "`with torch.no_grad():`")
    check(not any(training for _, training, _ in calls), "evaluate ran the model in training mode: call "
                                                         "model.eval() first")


@pytest.mark.exercise("training")
def test_train_replays_reference_steps(student, reference, seed):
    """Each epoch: model.train(); per batch of `batches`: augment(xb, generator), zero_grad, forward, CrossEntropyLoss on the raw logits, backward, step; then one scheduler.step() and the history entries (mean batch loss, training accuracy, validation accuracy)."""
    found = student(train_replay, seed=seed)
    expected = reference(train_replay, seed=seed)
    check(found["keys"] == expected["keys"], f"train's history has keys {found['keys']}, expected {expected['keys']}")
    for key in ("loss", "train_acc", "val_acc"):
        check(len(found["history"][key]) == 3, f"history[{key!r}] holds {len(found['history'][key])} values after "
                                               "3 epochs, expected one per epoch")
    check(is_finite(found["history"]["loss"]), f"the training losses {found['history']['loss']} are not finite")
    assert_close(found["history"], expected["history"], atol=1e-9, rtol=1e-7,
                 what="the history of 3 epochs on a tiny problem (Adam, lr 0.02, batches of 8, noise augmentation)")
    assert_close(found["params"], expected["params"], atol=1e-9, rtol=1e-7,
                 what="the parameters after 3 epochs")


@pytest.mark.exercise("training")
def test_val_acc_is_measured_on_validation_data(student, seed):
    """history["val_acc"] is evaluate(model, data["x_val"], data["y_val"]) after the epoch: the validation data, never the training data."""
    found = student(train_replay, seed=seed)
    val = found["history"]["val_acc"]
    check(len(val) == 3, f"history['val_acc'] holds {len(val)} values after 3 epochs, expected 3")
    if abs(val[-1] - found["val_acc_here"]) > 1e-9 and abs(val[-1] - found["train_set_acc_here"]) < 1e-9:
        raise AssertionError(f"the last val_acc, {val[-1]:.4f}, is the accuracy on the TRAINING data; on "
                             f"data['x_val'] the model scores {found['val_acc_here']:.4f}")
    check(abs(val[-1] - found["val_acc_here"]) <= 1e-9,
          f"the last val_acc is {val[-1]:.4f}, but the trained model's accuracy on data['x_val'] is "
          f"{found['val_acc_here']:.4f}")


@pytest.mark.exercise("training")
def test_train_switches_modes(student, seed):
    """Training steps run in training mode with autograd on (model.train() at the start of EVERY epoch, since evaluate switches to eval mode); evaluation runs in eval mode under no_grad."""
    found = student(train_modes, seed=seed)
    steps = [c for c in found["calls"] if c[0] and c[2] == "train"]        # forward passes of training steps
    evaluations = [c for c in found["calls"] if c[2] == "val"]             # passes over the validation data
    check(len(steps) == 12, f"train ran {len(steps)} forward passes with autograd on over training batches in 3 "
                            "epochs of 4 batches, expected 12 (one per batch)")
    in_eval = sum(not training for _, training, _ in steps)
    check(in_eval == 0, f"{in_eval} of the 12 training steps ran in eval mode (dropout off, batch norm frozen): "
                        "call model.train() at the start of every epoch, since evaluate() switches to eval mode")
    check(evaluations, "train never ran the model on the validation data: history['val_acc'] comes from "
                       "evaluate(model, data['x_val'], data['y_val']) after each epoch")
    check(all(not grad and not training for grad, training, _ in evaluations),
          "the validation passes should run in eval mode under torch.no_grad() (see evaluate)")
    check(found["epochs"] == 3, f"history['val_acc'] holds {found['epochs']} values after 3 epochs, expected 3")


@pytest.mark.exercise("training")
def test_cnn_trained_on_digits_reaches_accuracy(student, seed):
    """CNN(1, 10, 8) trained with train(epochs=15, lr=3e-3, batch_size=32) must reach at least 96% test accuracy on digits within 20 s of CPU (the reference: about 98% in under 2 s)."""
    found = student(digits_run, seed=seed, timeout=120)
    check(len(found["loss"]) == 15, f"train returned {len(found['loss'])} epoch losses for 15 epochs")
    check(is_finite(found["loss"]) and found["loss"][-1] < found["loss"][0],
          f"the training loss did not go down: {[round(v, 4) for v in found['loss']]}")
    check(found["cpu_seconds"] <= 20, f"training took {found['cpu_seconds']:.1f} s of CPU, more than the 20 s "
                                      "allowed (the reference needs under 2 s)")
    check(found["accuracy"] >= 0.96, f"test accuracy {found['accuracy']:.4f} after training, expected at least 0.96")


# ---------------------------------------------------------------------------------------------------------
# filters and feature maps
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("feature_maps")
def test_first_layer_filters(student, reference, seed):
    """first_layer_filters returns the weights of model.conv1 (not conv2), [C_out, C_in, k, k], detached from autograd."""
    for c, size in [(1, 8), (3, 12)]:
        found = student(filters_case, seed=seed, in_channels=c, size=size)
        expected = reference(filters_case, seed=seed, in_channels=c, size=size)
        check(not found["requires_grad"], "the filters still require grad: return model.conv1.weight.detach() "
                                          "(a plot needs plain numbers)")
        assert_close(found["filters"], expected["filters"], atol=0, rtol=0,
                     what=f"the filters of the first layer ({c} input channels)")


@pytest.mark.exercise("feature_maps")
def test_feature_maps(student, reference, seed):
    """feature_maps(model, x) is relu(model.conv1(x)): after the ReLU, BEFORE pooling ([N, C_out, H, W]), computed under torch.no_grad()."""
    for c, size, n in [(1, 8, 3), (3, 10, 1)]:
        found = student(maps_case, seed=seed, in_channels=c, size=size, n=n)
        expected = reference(maps_case, seed=seed, in_channels=c, size=size, n=n)
        check(not found["requires_grad"], "the feature maps require grad: compute them inside `with torch.no_grad():`")
        assert_close(found["maps"], expected["maps"], atol=1e-12, rtol=1e-10,
                     what=f"the feature maps of [{n}, {c}, {size}, {size}] (after conv1 and ReLU, before pooling)")


# ---------------------------------------------------------------------------------------------------------
# receptive fields
# ---------------------------------------------------------------------------------------------------------

@probe
def fields_case(nb, layers, axis, as_list=False):
    """receptive_field of the stack described by `layers` ([nn class name, keyword arguments] each), given as an
    nn.Sequential (or a list), with axis=`axis` (None: the default); the fields as lists, and their types."""
    import torch.nn as nn
    built = [getattr(nn, kind)(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
             for kind, kwargs in layers]
    stack = built if as_list else nn.Sequential(*built)
    fields = nb.receptive_field(stack) if axis is None else nb.receptive_field(stack, axis=axis)
    return {"is_list": isinstance(fields, list), "n": len(fields),
            "types": [[type(v).__name__ for v in f] for f in fields],
            "fields": [[int(v) for v in f] for f in fields]}


CNN_STACK = [["Conv2d", dict(in_channels=1, out_channels=32, kernel_size=3, padding=1)], ["ReLU", {}],
             ["MaxPool2d", dict(kernel_size=2)], ["Conv2d", dict(in_channels=32, out_channels=64, kernel_size=3, padding=1)],
             ["ReLU", {}], ["MaxPool2d", dict(kernel_size=2)]]
STRIDED_STACK = [["Conv2d", dict(in_channels=1, out_channels=4, kernel_size=5, stride=2, padding=2)],
                 ["BatchNorm2d", dict(num_features=4)], ["AvgPool2d", dict(kernel_size=3, stride=2, padding=1)],
                 ["Dropout", dict(p=0.5)], ["Conv2d", dict(in_channels=4, out_channels=4, kernel_size=3, stride=3)],
                 ["MaxPool2d", dict(kernel_size=2, stride=1)], ["Conv2d", dict(in_channels=4, out_channels=2, kernel_size=1)]]
DILATED_STACK = [["Conv2d", dict(in_channels=1, out_channels=3, kernel_size=3, padding=2, dilation=2)], ["ReLU", {}],
                 ["MaxPool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2)],
                 ["Conv2d", dict(in_channels=3, out_channels=3, kernel_size=3, stride=2, padding=3, dilation=3)]]
NON_SQUARE_STACK = [["Conv2d", dict(in_channels=1, out_channels=2, kernel_size=[3, 5], stride=[1, 2], padding=[1, 2])],
                    ["MaxPool2d", dict(kernel_size=[2, 3], stride=[2, 1], padding=[0, 1])],
                    ["Conv2d", dict(in_channels=2, out_channels=2, kernel_size=[1, 3], dilation=[1, 2], padding=[0, 3])],
                    ["AvgPool2d", dict(kernel_size=[3, 2], stride=[1, 2])]]


def check_fields(student, reference, layers, axis, what, as_list=False):
    found = student(fields_case, layers=layers, axis=axis, as_list=as_list)
    expected = reference(fields_case, layers=layers, axis=axis, as_list=as_list)
    check(found["is_list"], f"receptive_field should return a list, one entry per layer, for {what}")
    check(found["n"] == expected["n"], f"receptive_field returned {found['n']} entries for the {expected['n']} layers of "
                                       f"{what}, expected one per layer")
    check(all(t == ["int"] * 3 for t in found["types"]),
          f"each entry should be a (size, jump, start) tuple of three ints, found the types {found['types']} for {what}")
    for k, (f, e) in enumerate(zip(found["fields"], expected["fields"])):
        check(f == e, f"{what}: after layer {k} ({layers[k][0]}) the (size, jump, start) is {tuple(f)}, expected "
                      f"{tuple(e)} (all the layers' fields: {[tuple(v) for v in expected['fields']]})")


@pytest.mark.exercise("receptive_field")
def test_fields_of_the_notebooks_cnn(student, reference):
    """The CNN of section 2 along the height (the default axis): each 3x3 convolution adds 2 jumps to the size, each 2x2 pooling 1 jump, and doubles the jump; padding 1 moves the start one jump back; ReLU changes nothing."""
    check_fields(student, reference, CNN_STACK, None, "the CNN's layers (default axis)")
    check_fields(student, reference, CNN_STACK, 1, "the CNN's layers, given as a list, along the width", as_list=True)


@pytest.mark.exercise("receptive_field")
def test_fields_with_strides_and_position_wise_layers(student, reference):
    """With strides above 2 and average pooling: the size grows by (k - 1) times the jump BEFORE this layer's stride multiplies the jump; the start moves back by padding times the jump; BatchNorm2d and Dropout change nothing."""
    check_fields(student, reference, STRIDED_STACK, 0, "conv(5, stride 2, padding 2), batch norm, avgpool(3, stride 2, "
                                                         "padding 1), dropout, conv(3, stride 3), maxpool(2, stride 1), "
                                                         "conv(1)")


@pytest.mark.exercise("receptive_field")
def test_fields_with_dilation(student, reference):
    """A dilation d spreads the k taps d positions apart: the window covers d * (k - 1) + 1 positions, for convolutions and max pooling alike."""
    check_fields(student, reference, DILATED_STACK, 0, "dilated convolutions and a dilated max pooling")


@pytest.mark.exercise("receptive_field")
def test_fields_along_each_axis(student, reference):
    """Kernel sizes, strides, paddings and dilations given as (h, w) pairs: axis=0 uses their first entries (the height), axis=1 their second (the width)."""
    for axis, name in ((0, "height"), (1, "width")):
        check_fields(student, reference, NON_SQUARE_STACK, axis, f"non-square kernels along the {name} (axis={axis})")
    found = student(fields_case, layers=[], axis=0)
    check(found["is_list"] and found["n"] == 0, f"receptive_field of no layers should be [], got {found['fields']}")


# ---------------------------------------------------------------------------------------------------------
# the architecture for the lost digits
# ---------------------------------------------------------------------------------------------------------

DESIGN_ACCURACY, DESIGN_CPU_SECONDS, DESIGN_PARAMS = 0.90, 10.0, 100_000


@probe
def lost_digits(seed):
    """The notebook's lost_digits(coursedata.images("digits"), seed): each 8x8 digit pasted at a random position
    of a 16x16 canvas, plus Gaussian noise of standard deviation 0.1; 600 training digits, 300 validation digits
    and every test digit twice. Must stay the same as the notebook's (bench/week2_training.py --design uses that)."""
    import torch
    import coursedata
    images = coursedata.images("digits")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images["x_train"]), generator=g)
    picks = {"train": order[:600], "val": order[600:900]}

    def paste(x):
        n, c, h, w = x.shape
        out = torch.zeros(n, c, 16, 16)
        rows, cols = torch.randint(0, 16 - h + 1, (2, n), generator=g).tolist()
        for k, (r, col) in enumerate(zip(rows, cols)):
            out[k, :, r:r + h, col:col + w] = x[k]
        return out + 0.1 * torch.randn(out.shape, generator=g)

    data = {}
    for split, idx in picks.items():
        data[f"x_{split}"], data[f"y_{split}"] = paste(images["x_train"][idx]), images["y_train"][idx]
    data["x_test"], data["y_test"] = paste(images["x_test"].repeat(2, 1, 1, 1)), images["y_test"].repeat(2)
    return data


@probe
def design_interface(nb, seed):
    """What build_model() returns: its type, whether a second call gives another object, its parameter count,
    and the shapes of its logits in eval mode for batches [1, 1, 16, 16] and [5, 1, 16, 16]."""
    import torch
    import torch.nn as nn
    torch.manual_seed(seed)
    first, second = nb.build_model(), nb.build_model()
    if not isinstance(first, nn.Module):
        return {"module": False, "type": type(first).__name__}
    first.eval()
    shapes, outputs = [], []
    with torch.no_grad():
        for n in (1, 5):
            logits = first(torch.randn(n, 1, 16, 16))
            shapes.append(list(logits.shape))
            outputs.append(logits)
        varies = bool((outputs[1] - outputs[1][:1]).abs().max() > 0) if shapes[1] == [5, 10] else True
    return {"module": True, "type": type(first).__name__, "new_each_call": first is not second,
            "params": sum(p.numel() for p in first.parameters()), "shapes": shapes, "varies": varies}


@probe
def design_run(nb, seed, max_params, cpu_budget):
    """A new build_model() trained on the lost digits of `seed` by this probe's own copy of the notebook's recipe
    (train(model, data, epochs=20, lr=3e-3, batch_size=32, seed=seed): Adam, cross-entropy, a cosine schedule
    stepped per epoch, model.train() every epoch), on one thread; its test accuracy, and the CPU seconds when
    they are over the budget (0 otherwise). Stops early when the model is over the parameter budget or the CPU
    budget is spent."""
    import time
    import torch
    import torch.nn.functional as F
    data = lost_digits(seed)
    torch.manual_seed(seed)
    model = nb.build_model()
    params = sum(p.numel() for p in model.parameters())
    if params > max_params:
        return {"params": params, "epochs": 0, "cpu_seconds_over_budget": 0.0, "accuracy": 0.0, "loss": []}
    x, y = data["x_train"], data["y_train"]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses, epochs = [], 0
    try:
        cpu = time.process_time()
        for _ in range(20):
            model.train()
            total, count = 0.0, 0
            for idx in torch.randperm(len(x), generator=generator).split(32):
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                total, count = total + loss.item(), count + 1
            scheduler.step()
            losses.append(total / count)
            epochs += 1
            if time.process_time() - cpu > cpu_budget:
                break
        cpu = time.process_time() - cpu
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(xb) for xb in data["x_test"].split(500)])
    finally:
        torch.set_num_threads(threads)
    accuracy = (logits.argmax(dim=1) == data["y_test"]).double().mean().item()
    over = cpu if cpu > cpu_budget else 0.0     # the seconds only when over: the answers of a run stay reproducible
    return {"params": params, "epochs": epochs, "cpu_seconds_over_budget": over, "accuracy": accuracy, "loss": losses}


@pytest.mark.exercise("architecture")
def test_design_interface(student, seed):
    """build_model() returns a new nn.Module at each call (not one shared object), with at most 100,000 parameters, whose forward maps [N, 1, 16, 16] to logits [N, 10], for N = 1 too, that depend on the image."""
    found = student(design_interface, seed=seed)
    check(found["module"], f"build_model() returned a {found['type']}, expected an nn.Module")
    check(found["new_each_call"], "build_model() returned the same object twice: return a new model at each call, "
                                  "so that every run starts from fresh weights")
    check(found["params"] <= DESIGN_PARAMS, f"the design has {found['params']:,} parameters, more than the "
                                            f"{DESIGN_PARAMS:,} allowed")
    check(found["shapes"] == [[1, 10], [5, 10]], f"the logits for batches [1, 1, 16, 16] and [5, 1, 16, 16] have the "
                                                 f"shapes {found['shapes']}, expected [[1, 10], [5, 10]]")
    check(found["varies"], "build_model()'s fresh model gives the same logits for five different images: are its "
                           "weights initialized (not zero) and is its output computed from the input?")


@pytest.mark.exercise("architecture")
def test_design_reaches_accuracy_on_lost_digits(student, seed):
    """A new build_model() trained with the notebook's recipe (20 epochs, Adam lr 3e-3, batches of 32) on lost digits drawn with the grader's seed must reach at least 90% test accuracy within 10 s of CPU on one thread (the reference design: 94-96% in about 2 s; the baseline CNN: 48-66%)."""
    found = student(design_run, seed=seed, max_params=DESIGN_PARAMS, cpu_budget=DESIGN_CPU_SECONDS, timeout=120)
    check(found["params"] <= DESIGN_PARAMS, f"the design has {found['params']:,} parameters, more than the "
                                            f"{DESIGN_PARAMS:,} allowed: it was not trained")
    check(found["epochs"] == 20 and not found["cpu_seconds_over_budget"],
          f"the recipe took {found['cpu_seconds_over_budget']:.1f} s of CPU for {found['epochs']} of its 20 epochs, "
          f"more than the {DESIGN_CPU_SECONDS:.0f} s allowed: choose a cheaper design (fewer channels at full "
          "resolution)")
    check(is_finite(found["loss"]), f"the training losses are not finite: {found['loss']}")
    check(found["accuracy"] >= DESIGN_ACCURACY,
          f"test accuracy {found['accuracy']:.4f} on the lost digits after training, expected at least "
          f"{DESIGN_ACCURACY:.2f} (the baseline CNN gets about 0.6): see the notebook's questions about what the "
          "classifier reads and about receptive fields")

# ---------------------------------------------------------------------------------------------------------
# the 1-D CNN
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("cnn_1d")
def test_cnn1d_parameters_and_shapes(student, reference):
    """CNN1D(length, channels, num_classes) holds conv1 (1 -> channels), conv2 and conv3 (channels -> channels), all of kernel 3 with padding 1, and fc (channels * (length // 8) -> num_classes); x [N, length] -> [N, num_classes]."""
    for length, ch, k, n in [(40, 32, 10, 6), (40, 32, 10, 1), (44, 8, 3, 2), (24, 5, 4, 3), (63, 16, 10, 2)]:
        check_shapes(student, reference, "CNN1D", [length, ch, k], [n, length])


@pytest.mark.exercise("cnn_1d")
def test_cnn1d_forward_matches_reference(student, reference, seed):
    """With the same weights, CNN1D.forward is unsqueeze(1) to [N, 1, L], then (conv -> ReLU -> pool) three times, flatten(1) and fc, with no activation on the logits."""
    for length, ch, k, n in [(40, 32, 10, 4), (44, 8, 3, 1), (27, 6, 5, 3)]:
        check_forward(student, reference, seed, "CNN1D", [length, ch, k], [n, length])


@pytest.mark.exercise("cnn_1d")
def test_cnn1d_trains_on_mnist1d(student, seed):
    """CNN1D() trained for 15 epochs (Adam, lr 1e-2, batches of 64, the grader's own loop) must reach at least 92% test accuracy on MNIST-1D within 20 s of CPU (the reference: about 95% in 2 s)."""
    found = student(mnist1d_run, seed=seed, timeout=120)
    check(found["cpu_seconds"] <= 20, f"training took {found['cpu_seconds']:.1f} s of CPU, more than the 20 s "
                                      "allowed (the reference needs about 2 s)")
    check(found["accuracy"] >= 0.92, f"test accuracy {found['accuracy']:.4f} on MNIST-1D after training, "
                                     "expected at least 0.92")
