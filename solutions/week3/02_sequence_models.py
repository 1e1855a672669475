"""Week 3, notebook 02: classifying sequences and a character-level language model — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


# %% [classifier]
class LSTMClassifier(nn.Module):
    """An LSTM reads a sequence one value per step; a linear layer classifies a summary of its hidden states.

    lstm: nn.LSTM(input_size=1, hidden_size=hidden_size, batch_first=True)
    fc:   nn.Linear(hidden_size, num_classes); no activation on the logits
    pool: "last": the hidden state after the last step, out[:, -1]
          "max":  the largest value of each hidden unit over all the steps
    forward: x [N, T] (one feature per step)  ->  logits [N, num_classes]
    """

    def __init__(self, hidden_size=64, num_classes=10, pool="last"):
        super().__init__()
        self.pool = pool
        ### BEGIN SOLUTION
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out, (h_n, c_n) = self.lstm(x.unsqueeze(-1))   # [N, T, 1] in; out [N, T, H]: the hidden state after each step
        if self.pool == "max":
            summary = out.max(dim=1).values             # over time: which features fired, wherever they fired
        else:
            summary = out[:, -1]                        # after the last step, the state has read the whole sequence
        return self.fc(summary)                         # [N, num_classes]
        ### END SOLUTION


# %% [bigram]
def bigram_counts(names, stoi):
    """N [V, V] int64, V = len(stoi): N[a, b] counts how often token b follows token a when each name is read as
    '.' + name + '.' (the token '.', index 0, marks both the start and the end of a name)."""
    V = len(stoi)
    N = torch.zeros(V, V, dtype=torch.int64)
    ### BEGIN SOLUTION
    for name in names:
        tokens = [0] + [stoi[c] for c in name] + [0]
        for a, b in zip(tokens, tokens[1:]):
            N[a, b] += 1
    ### END SOLUTION
    return N


def bigram_nll(counts, names, stoi, alpha=1.0):
    """The mean negative log-likelihood of `names`, in nats per predicted token, under the smoothed bigram model

        P[a, b] = (N[a, b] + alpha) / sum over b' of (N[a, b'] + alpha)        (each row a sums to 1)

    Every character of a name and its end token are predicted: len(name) + 1 tokens per name. A Python float.
    """
    ### BEGIN SOLUTION
    smoothed = counts.double() + alpha                                # add-alpha: no pair gets probability 0
    P = smoothed / smoothed.sum(dim=1, keepdim=True)                  # normalise each row: P[a] sums to 1
    nll, n = 0.0, 0
    for name in names:
        tokens = [0] + [stoi[c] for c in name] + [0]
        for a, b in zip(tokens, tokens[1:]):
            nll -= math.log(P[a, b])
            n += 1
    return nll / n
    ### END SOLUTION


# %% [encode]
def encode_names(names, stoi):
    """Inputs and targets for next-token prediction, one row per name, padded to T = longest name + 1.

    For a name c1 ... cn:   inputs   .   c1  c2 ... cn        targets  c1  c2 ... cn  .
    (the target at step t is the input at step t + 1, and the last target is the end token '.').
    Padding: inputs with 0, targets with -1 (a target the loss ignores).
    Returns x [N, T] int64, y [N, T] int64.
    """
    T = max(len(name) for name in names) + 1
    x = torch.zeros(len(names), T, dtype=torch.int64)
    y = torch.full((len(names), T), -1, dtype=torch.int64)
    ### BEGIN SOLUTION
    for i, name in enumerate(names):
        ids = [stoi[c] for c in name]
        n = len(ids)
        x[i, 1:n + 1] = torch.tensor(ids, dtype=torch.int64)   # x[i, 0] stays 0: the start token
        y[i, :n] = torch.tensor(ids, dtype=torch.int64)        # shifted by one: predict the next character
        y[i, n] = 0                                            # then the end token, so that names can stop
    ### END SOLUTION
    return x, y


# %% [charlstm]
class CharLSTM(nn.Module):
    """embedding -> LSTM -> linear: the logits of the next token after every step.

    emb:  nn.Embedding(vocab_size, embed_size)
    lstm: nn.LSTM(embed_size, hidden_size, batch_first=True)
    fc:   nn.Linear(hidden_size, vocab_size)
    forward(idx [N, T] int64, state=None) -> (logits [N, T, vocab_size], state), where state is the LSTM's (h, c),
    each [1, N, hidden_size]; passing it back in continues the sequences where they stopped (sampling does this).
    """

    def __init__(self, vocab_size=27, embed_size=16, hidden_size=128):
        super().__init__()
        ### BEGIN SOLUTION
        self.emb = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, vocab_size)
        ### END SOLUTION

    def forward(self, idx, state=None):
        ### BEGIN SOLUTION
        out, state = self.lstm(self.emb(idx), state)   # [N, T, E] -> [N, T, H]; state=None starts from zeros
        return self.fc(out), state                     # a prediction after every step: [N, T, V]
        ### END SOLUTION


# %% [training]
def lm_loss(logits, y):
    """The mean cross-entropy over every target that is not -1: logits [N, T, V], y [N, T] -> a scalar tensor."""
    ### BEGIN SOLUTION
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), ignore_index=-1)   # one row per (name, step)
    ### END SOLUTION


def evaluate_lm(model, x, y):
    """lm_loss of the model on x, y in eval mode, without building a graph: a Python float."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        logits, _ = model(x.to(device))
        return lm_loss(logits, y.to(device)).item()


def train_char_model(model, data, epochs=10, lr=1e-2, batch_size=64, clip=1.0, seed=0, progress=True):
    """Train a CharLSTM with Adam on lm_loss over mini-batches of data["x_train"], data["y_train"].

    Each step: zero_grad, forward, loss, backward, then clip the gradient with
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip), which rescales it to norm `clip` when it is longer
    and returns its norm BEFORE clipping (clip=None: no clipping; measure the norm with max_norm=float("inf")),
    then optimizer.step() and scheduler.step() (the learning rate decays to 0 on a cosine over all the steps).
    After each epoch's batches the history gets one entry per key:
      "loss":      the mean of the epoch's batch losses
      "grad_norm": the mean of the epoch's gradient norms, before clipping
      "val_loss":  evaluate_lm(model, data["x_val"], data["y_val"])
    Returns the history, a dict of three lists of length `epochs`.
    """
    device = next(model.parameters()).device
    x, y = data["x_train"].to(device), data["y_train"].to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)   # stepped after every batch
    history = {"loss": [], "grad_norm": [], "val_loss": []}
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for epoch in bar:
        batches = torch.randperm(len(x), generator=generator).to(device).split(batch_size)
        ### BEGIN SOLUTION
        model.train()
        losses, norms = [], []
        for idx in batches:
            optimizer.zero_grad()
            logits, _ = model(x[idx])
            loss = lm_loss(logits, y[idx])
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else float("inf"))
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            norms.append(norm.item())
        history["loss"].append(sum(losses) / len(losses))
        history["grad_norm"].append(sum(norms) / len(norms))
        history["val_loss"].append(evaluate_lm(model, data["x_val"], data["y_val"]))
        ### END SOLUTION
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", val_loss=f"{history['val_loss'][-1]:.4f}")
    return history


# %% [sampler]
def sample(model, itos, num_samples=10, temperature=1.0, max_len=20, generator=None):
    """Names drawn from a language model, one token at a time, all num_samples of them in one batch.

    Every sequence starts with the token '.' (index 0). At each step, feed the last token and the LSTM state to
    the model, turn the logits of that step into probabilities softmax(logits / temperature), and draw the next
    token on the CPU, where `generator` (a torch.Generator(), or None for the global one) lives:
    torch.multinomial(probs.cpu(), 1, generator=generator). (On a GPU the probabilities are on the GPU, and
    drawing from them there with a CPU generator raises an error.) Feed the drawn token back on the model's
    device. A name ends at its first '.' (not part of the name) or after max_len characters. temperature > 0:
    near 0 this is the argmax at every step. Returns a list of num_samples strings.
    """
    device = next(model.parameters()).device
    model.eval()
    tokens = torch.zeros(num_samples, max_len, dtype=torch.int64)
    ### BEGIN SOLUTION
    idx = torch.zeros(num_samples, 1, dtype=torch.int64, device=device)   # the start token
    state = None
    with torch.no_grad():
        for t in range(max_len):
            logits, state = model(idx, state)                           # only the new token: the state holds the rest
            probs = F.softmax(logits[:, -1] / temperature, dim=-1)      # [num_samples, V]: over the vocabulary
            drawn = torch.multinomial(probs.cpu(), 1, generator=generator)   # [num_samples, 1], on the CPU
            tokens[:, t] = drawn[:, 0]
            idx = drawn.to(device)                                        # back to the model's device
    ### END SOLUTION
    names = []
    for row in tokens.tolist():
        end = row.index(0) if 0 in row else max_len
        names.append("".join(itos[i] for i in row[:end]))
    return names
