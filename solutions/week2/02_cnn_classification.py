"""Week 2, notebook 02: training, seeing and designing a CNN — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring, the imports and `pair`) is not copied: the notebook's setup cell defines the same
names.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


def pair(v):
    """An int or an (h, w) pair  ->  an (h, w) tuple: pair(2) == (2, 2), pair((1, 3)) == (1, 3)."""
    return (v, v) if isinstance(v, int) else tuple(v)


# %% [cnn]
class CNN(nn.Module):
    """Two convolution stages, then a linear classifier.

    conv1: nn.Conv2d(in_channels, 32, kernel_size=3, padding=1), then ReLU, then 2x2 max pooling (self.pool)
    conv2: nn.Conv2d(32, 64, kernel_size=3, padding=1), then ReLU, then 2x2 max pooling (self.pool again)
    fc:    nn.Linear(64 * (image_size // 4) ** 2, num_classes), on the flattened feature maps; no activation
    forward: x [N, in_channels, image_size, image_size]  ->  logits [N, num_classes]
    """

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)   # padding 1 keeps H x W
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)                                         # halves H and W (rounding down)
        size = image_size // 2 // 2                                         # after two poolings
        self.fc = nn.Linear(64 * size * size, num_classes)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = self.pool(F.relu(self.conv1(x)))    # [N, 32, H/2, W/2]
        x = self.pool(F.relu(self.conv2(x)))    # [N, 64, H/4, W/4]
        x = x.flatten(1)                        # [N, 64 * H/4 * W/4], one row per image
        return self.fc(x)                       # logits [N, num_classes]
        ### END SOLUTION


# %% [train]
def evaluate(model, x, y, batch_size=500):
    """Fraction of the examples whose largest logit is the true class, a Python float in [0, 1].

    x: [N, ...] float, y: [N] int64. Runs the model in eval mode, without building a graph, batch_size examples
    at a time (a whole test set of larger images would not fit in memory at once).
    """
    device = next(model.parameters()).device
    correct = 0
    ### BEGIN SOLUTION
    model.eval()
    with torch.no_grad():
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            logits = model(xb.to(device))
            correct += (logits.argmax(dim=1) == yb.to(device)).sum().item()
    ### END SOLUTION
    return correct / len(x)


def train(model, data, epochs=10, lr=3e-3, batch_size=32, seed=0, augment=None, progress=True):
    """Train `model` with Adam and cross-entropy on data["x_train"], data["y_train"]; validate on data["x_val"],
    data["y_val"] after every epoch.

    Each epoch: model.train(), then for each mini-batch of `batches` (given below): xb = augment(xb, generator)
    when augment is not None, then zero_grad, forward, loss, backward, step. After the epoch's batches: one
    scheduler.step(), then the history gets one entry per key:
      "loss":      the mean of the epoch's mini-batch losses
      "train_acc": the fraction of the epoch's training examples whose logits (those of the step) were right
      "val_acc":   evaluate(model, data["x_val"], data["y_val"])
    Returns the history, a dict of three lists of length `epochs`.
    """
    device = next(model.parameters()).device
    x, y = data["x_train"].to(device), data["y_train"].to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # lr -> 0 on a half cosine
    loss_fn = nn.CrossEntropyLoss()
    history = {"loss": [], "train_acc": [], "val_acc": []}
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for epoch in bar:
        order = torch.randperm(len(x), generator=generator).to(device)   # a new shuffle every epoch
        batches = order.split(batch_size)                                 # the index tensors of the mini-batches
        ### BEGIN SOLUTION
        model.train()                       # evaluate() left the model in eval mode after the last epoch
        losses, correct = [], 0
        for idx in batches:
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, generator)
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)      # raw logits: CrossEntropyLoss applies log-softmax itself
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            correct += (logits.argmax(dim=1) == yb).sum().item()
        scheduler.step()
        history["loss"].append(sum(losses) / len(losses))
        history["train_acc"].append(correct / len(x))
        history["val_acc"].append(evaluate(model, data["x_val"], data["y_val"]))
        ### END SOLUTION
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val_acc=f"{history['val_acc'][-1]:.3f}")
    return history


# %% [features]
def first_layer_filters(model):
    """The learned filters of the first convolution, model.conv1: a detached tensor [C_out, C_in, k, k]."""
    ### BEGIN SOLUTION
    return model.conv1.weight.detach().clone()
    ### END SOLUTION


def feature_maps(model, x):
    """What the first stage detects in x [N, C_in, H, W]: relu(model.conv1(x)), BEFORE pooling.

    ->  [N, C_out, H, W] (same H and W: padding 1), computed without building a graph.
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        return F.relu(model.conv1(x))
    ### END SOLUTION


# %% [fields]
def receptive_field(layers, axis=0):
    """The receptive field of the outputs of each layer of `layers`, applied one after another, along one axis.

    layers: modules in the order the input goes through them (a list, or a flat nn.Sequential). nn.Conv2d,
    nn.MaxPool2d and nn.AvgPool2d slide a window: their kernel_size, stride, padding (numbers or (h, w) pairs)
    and, for nn.Conv2d and nn.MaxPool2d, dilation decide the field. Every other module (ReLU, BatchNorm2d,
    Dropout) works position by position and leaves it as it is.
    axis: 0 for the height (the first entry of each (h, w) pair), 1 for the width.
    ->  a list with one (size, jump, start) tuple of ints per layer:
        size:  how many input pixels one output of the layer sees along the axis
        jump:  how many input pixels apart the fields of two neighbouring outputs begin
        start: the input pixel where the field of output 0 begins (negative: it reaches into the padding)
    so that output i of the layer sees input pixels start + i * jump, ..., start + i * jump + size - 1.
    """
    size, jump, start = 1, 1, 0                 # before any layer, each position is one input pixel
    fields = []
    for layer in layers:
        ### BEGIN SOLUTION
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = (pair(v)[axis] for v in (layer.kernel_size, layer.stride, layer.padding))
            d = pair(getattr(layer, "dilation", 1))[axis]    # nn.AvgPool2d has no dilation
            start -= p * jump                   # the first window begins p positions of the input before pixel 0
            size += d * (k - 1) * jump          # k taps d positions apart, each position `jump` pixels wide
            jump *= s                           # after the size: the window's taps are spaced by the old jump
        ### END SOLUTION
        fields.append((size, jump, start))
    return fields


# %% [design]
def build_model():
    """Your architecture for the lost digits: a new, untrained model each time it is called.

    forward: x [N, 1, 16, 16]  ->  logits [N, 10]. At most 100,000 parameters, and trained by this section's
    recipe, train(model, data, epochs=20, lr=3e-3, batch_size=32), in at most 10 s of CPU on one thread.
    """
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # [N, 16, 8, 8]
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),                    # [N, 32, 8, 8], fields 8x8
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),                    # [N, 64, 8, 8], fields 12x12
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),     # [N, 64]: each detector's strongest response, wherever it is
        nn.Linear(64, 10),
    )
    ### END SOLUTION


# %% [cnn1d]
class CNN1D(nn.Module):
    """A 1-D CNN for sequences x [N, length] (one channel): three stages of conv -> ReLU -> pool, then a classifier.

    conv1: nn.Conv1d(1, channels, kernel_size=3, padding=1), then ReLU, then max pooling by 2 (self.pool)
    conv2: nn.Conv1d(channels, channels, kernel_size=3, padding=1), then ReLU, then max pooling by 2
    conv3: nn.Conv1d(channels, channels, kernel_size=3, padding=1), then ReLU, then max pooling by 2
    fc:    nn.Linear(channels * (length // 8), num_classes), on the flattened feature maps; no activation
    forward: x [N, length]  ->  logits [N, num_classes]
    """

    def __init__(self, length=40, channels=32, num_classes=10):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv1d(1, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.pool = nn.MaxPool1d(2)
        self.fc = nn.Linear(channels * (length // 2 // 2 // 2), num_classes)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = x.unsqueeze(1)                      # [N, 1, L]: Conv1d wants [batch, channels, length]
        x = self.pool(F.relu(self.conv1(x)))    # [N, C, L/2]
        x = self.pool(F.relu(self.conv2(x)))    # [N, C, L/4]
        x = self.pool(F.relu(self.conv3(x)))    # [N, C, L/8]
        return self.fc(x.flatten(1))            # [N, num_classes]
        ### END SOLUTION
