"""Week 4, notebook 01: self-attention, multi-head attention and the encoder-decoder transformer — the reference.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's setup cell defines the same names.

The one mask convention of the notebook: a boolean mask is True where a query MAY attend to a key, as in
F.scaled_dot_product_attention (nn.MultiheadAttention's boolean masks mean the opposite).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# %% [sdpa]
def softmax(x, dim=-1):
    """exp(x) / sum(exp(x)) along `dim`, written by hand and stable for scores of any size.

    x: any shape, every slice along `dim` holding at least one finite entry (-inf entries get weight exactly 0)
    ->  the same shape, non-negative, every slice along `dim` summing to 1
    """
    ### BEGIN SOLUTION
    x = x - x.amax(dim=dim, keepdim=True)       # the largest entry of each slice becomes 0: exp cannot overflow
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)
    ### END SOLUTION


def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q kᵀ / sqrt(d_k)) v over the last two dimensions; the leading ones (batch, heads) broadcast.

    q: [..., Lq, d_k], k: [..., Lk, d_k], v: [..., Lk, d_v]
    mask: None, or a bool tensor broadcastable to [..., Lq, Lk], True where query i MAY attend to key j
          (every query must be allowed at least one key)
    ->  (out [..., Lq, d_v], weights [..., Lq, Lk]): each row of weights sums to 1 over the keys
    """
    ### BEGIN SOLUTION
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)          # [..., Lq, Lk], variance about 1
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))      # exp(-inf) = 0: no weight on a forbidden key
    weights = softmax(scores, dim=-1)                          # over the keys: one distribution per query
    return weights @ v, weights
    ### END SOLUTION


# %% [head]
def causal_mask(T, device=None):
    """The mask of a decoder: position i may attend to itself and the positions before it, never after.

    ->  bool [T, T], True on and below the diagonal (lower-triangular)
    """
    ### BEGIN SOLUTION
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()
    ### END SOLUTION


class Head(nn.Module):
    """One head of causal self-attention.

    query, key, value: nn.Linear(n_embd, head_size, bias=False) each: no bias (MultiHeadAttention below has biases)
    forward: x [N, T, n_embd]  ->  [N, T, head_size], position t attending to positions 0..t only
    """

    def __init__(self, n_embd, head_size):
        super().__init__()
        ### BEGIN SOLUTION
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        ### END SOLUTION

    def forward(self, x):
        T = x.shape[1]
        ### BEGIN SOLUTION
        q, k, v = self.query(x), self.key(x), self.value(x)       # [N, T, head_size] each
        out, _ = scaled_dot_product_attention(q, k, v, causal_mask(T, x.device))
        return out
        ### END SOLUTION


# %% [mha]
def split_heads(x, n_head):
    """[N, T, C]  ->  [N, n_head, T, C // n_head]: head h receives features h*hs .. (h+1)*hs - 1 of every position."""
    ### BEGIN SOLUTION
    N, T, C = x.shape
    return x.view(N, T, n_head, C // n_head).transpose(1, 2)      # cut the features, then bring heads forward
    ### END SOLUTION


def merge_heads(x):
    """[N, n_head, T, hs]  ->  [N, T, n_head * hs], the inverse of split_heads: the heads side by side again."""
    ### BEGIN SOLUTION
    N, n_head, T, hs = x.shape
    return x.transpose(1, 2).reshape(N, T, n_head * hs)           # reshape copies: the transpose is not contiguous
    ### END SOLUTION


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention, all heads in one batched computation, with nn.MultiheadAttention's parameters.

    qkv:  nn.Linear(n_embd, 3 * n_embd, bias=bias): queries, keys and values of all heads at once; its weight
          [3C, C] stacks W_q, W_k, W_v in this order, like nn.MultiheadAttention's in_proj_weight
    proj: nn.Linear(n_embd, n_embd, bias=bias), the output projection (nn.MultiheadAttention's out_proj)
    forward: x [N, T, n_embd], mask None or bool [T, T] (True = may attend)  ->  [N, T, n_embd]
    """

    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be a multiple of n_head"
        self.n_head = n_head
        ### BEGIN SOLUTION
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x, mask=None):
        ### BEGIN SOLUTION
        q, k, v = self.qkv(x).chunk(3, dim=-1)                         # [N, T, C] each
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))      # [N, n_head, T, hs] each
        out, _ = scaled_dot_product_attention(q, k, v, mask)            # the mask broadcasts over N and the heads
        return self.proj(merge_heads(out))                              # mix the heads: [N, T, C]
        ### END SOLUTION


# %% [cross]
def sinusoidal_positions(T, d):
    """Vaswani et al.'s positional encodings: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same).

    T positions 0..T-1, d features (even)  ->  [T, d] float32
    """
    ### BEGIN SOLUTION
    pos = torch.arange(T, dtype=torch.float32)[:, None]            # [T, 1]
    i = torch.arange(d // 2, dtype=torch.float32)                    # [d/2], the index of a (sin, cos) pair
    angle = pos / 10000 ** (2 * i / d)                               # [T, d/2]: wavelengths 2π .. 10000·2π
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(angle)                                   # even features
    pe[:, 1::2] = torch.cos(angle)                                   # odd features
    return pe
    ### END SOLUTION


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from x (the decoder), keys and values from memory (the encoder's output).

    query:     nn.Linear(n_embd, n_embd, bias=bias), W_q (nn.MultiheadAttention's in_proj_weight[:C])
    key_value: nn.Linear(n_embd, 2 * n_embd, bias=bias), W_k and W_v stacked in this order (in_proj_weight[C:])
    proj:      nn.Linear(n_embd, n_embd, bias=bias), the output projection
    forward: x [N, Lq, n_embd], memory [N, Lk, n_embd], mask None or bool [Lq, Lk] (True = may attend)
             ->  [N, Lq, n_embd], one output per query
    """

    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be a multiple of n_head"
        self.n_head = n_head
        ### BEGIN SOLUTION
        self.query = nn.Linear(n_embd, n_embd, bias=bias)
        self.key_value = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x, memory, mask=None):
        ### BEGIN SOLUTION
        q = split_heads(self.query(x), self.n_head)                                  # [N, n_head, Lq, hs]
        k, v = (split_heads(t, self.n_head) for t in self.key_value(memory).chunk(2, dim=-1))  # [N, n_head, Lk, hs]
        out, _ = scaled_dot_product_attention(q, k, v, mask)                         # [N, n_head, Lq, hs]
        return self.proj(merge_heads(out))                                           # [N, Lq, C]
        ### END SOLUTION
