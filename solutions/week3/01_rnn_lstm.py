"""Week 3, notebook 01: recurrence, vanishing gradients and the LSTM cell — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's setup cell defines the same names.
"""
import math

import torch
import torch.nn as nn


# %% [rnn]
def rnn_cell(x, h, W_xh, W_hh, b):
    """One step of a tanh RNN: h_new = tanh(x @ W_xh + h @ W_hh + b).

    x: [N, I] (the inputs of one time step), h: [N, H] (the previous hidden state)
    W_xh: [I, H], W_hh: [H, H], b: [H]  ->  h_new: [N, H]
    """
    ### BEGIN SOLUTION
    return torch.tanh(x @ W_xh + h @ W_hh + b)
    ### END SOLUTION


def rnn_forward(x, W_xh, W_hh, b, h0=None):
    """The RNN unrolled over a batch of sequences, batch first; the same weights at every step.

    x: [N, T, I], W_xh: [I, H], W_hh: [H, H], b: [H], h0: [N, H] or None (None: zeros)
    ->  (hs: [N, T, H], the hidden states h_1 ... h_T, and h_T: [N, H], the last one)
    """
    N, T, _ = x.shape
    H = W_hh.shape[0]
    h = x.new_zeros(N, H) if h0 is None else h0
    ### BEGIN SOLUTION
    hs = []
    for t in range(T):
        h = rnn_cell(x[:, t], h, W_xh, W_hh, b)   # the state carries over to the next step
        hs.append(h)
    hs = torch.stack(hs, dim=1)                   # [N, T, H]: time is the second axis
    ### END SOLUTION
    return hs, h


# %% [gradnorms]
def step_gradient_norms(loss_fn, x):
    """How much the loss depends on the inputs of each time step.

    loss_fn: a function of a batch x [N, T, I] that returns a scalar loss
    x: [N, T, I], left as it is (no gradient is stored in it)
    ->  norms: [T], norms[t] = the Euclidean norm of d loss / d x[:, t], over the batch and the inputs together
    """
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)   # a fresh leaf: the caller's tensor gets no .grad
    (grad,) = torch.autograd.grad(loss_fn(x), x)  # [N, T, I]
    return grad.norm(dim=(0, 2))
    ### END SOLUTION


# %% [cell]
def lstm_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
    """One step of an LSTM, with PyTorch's weight layout: the rows of the weights are the gates i, f, g, o.

    x: [N, I], state: (h [N, H], c [N, H])
    weight_ih: [4H, I], weight_hh: [4H, H], bias_ih: [4H], bias_hh: [4H]
    ->  (h_new [N, H], c_new [N, H])
    """
    h, c = state
    ### BEGIN SOLUTION
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh   # [N, 4H], all four gates at once
    i, f, g, o = gates.chunk(4, dim=1)                               # [N, H] each, in PyTorch's order
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)  # gates: how much, in (0, 1)
    g = torch.tanh(g)                                                # candidate values, in (-1, 1)
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    ### END SOLUTION
    return h_new, c_new


class LSTMCell(nn.Module):
    """An LSTM cell with nn.LSTMCell's parameters, so that their weights copy over by name.

    weight_ih [4H, I], weight_hh [4H, H], bias_ih [4H], bias_hh [4H], all uniform in [-1/sqrt(H), 1/sqrt(H)]
    forward(x [N, I], state (h, c) or None (None: zeros))  ->  (h_new [N, H], c_new [N, H])
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        ### BEGIN SOLUTION
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))
        ### END SOLUTION

    def forward(self, x, state=None):
        ### BEGIN SOLUTION
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return lstm_cell(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        ### END SOLUTION


# %% [layer]
class LSTM(nn.Module):
    """A one-layer LSTM over a batch of sequences, batch first, with the parameters of
    nn.LSTM(input_size, hidden_size, batch_first=True): weight_ih_l0 [4H, I], weight_hh_l0 [4H, H], bias_ih_l0 [4H],
    bias_hh_l0 [4H], all uniform in [-1/sqrt(H), 1/sqrt(H)].

    forward(x [N, T, I], state (h0 [N, H], c0 [N, H]) or None (None: zeros))
    ->  (output [N, T, H], the hidden states h_1 ... h_T, and (h_T [N, H], c_T [N, H]))
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        ### BEGIN SOLUTION
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))
        ### END SOLUTION

    def forward(self, x, state=None):
        N, T, _ = x.shape
        ### BEGIN SOLUTION
        if state is None:
            zeros = x.new_zeros(N, self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        outputs = []
        for t in range(T):
            h, c = lstm_cell(x[:, t], (h, c), self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)
        ### END SOLUTION


# %% [trace]
def lstm_trace(lstm, x, state=None):
    """A one-layer LSTM run step by step, recording what happens inside it at every step.

    lstm: a module with nn.LSTM's parameters weight_ih_l0 [4H, I], weight_hh_l0 [4H, H], bias_ih_l0 [4H] and
          bias_hh_l0 [4H], gates in the order i, f, g, o (nn.LSTM(I, H, batch_first=True), or your LSTM)
    x: [N, T, I], state: (h0 [N, H], c0 [N, H]) or None (None: zeros)
    ->  a dict of six tensors [N, T, H], entry [n, t - 1] for step t = 1 ... T of sequence n:
        "i", "f", "o": the gates, after their sigmoid; "g": the candidate, after its tanh;
        "c": the cell state c_t after the step; "h": the hidden state h_t
    Computed under torch.no_grad(): a record to look at, not a graph to train through.
    """
    N, T, _ = x.shape
    H = lstm.weight_hh_l0.shape[1]
    h, c = (x.new_zeros(N, H), x.new_zeros(N, H)) if state is None else state
    record = {name: [] for name in ("i", "f", "g", "o", "c", "h")}
    with torch.no_grad():
        ### BEGIN SOLUTION
        for t in range(T):
            gates = x[:, t] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
            i, f, g, o = gates.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            for name, value in zip(("i", "f", "g", "o", "c", "h"), (i, f, g, o, c, h)):
                record[name].append(value)
        ### END SOLUTION
    return {name: torch.stack(values, dim=1) for name, values in record.items()}
