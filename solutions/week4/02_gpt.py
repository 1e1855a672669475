"""Week 4, notebook 02: a GPT from scratch, trained and sampled — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring, the imports and the provided classes) is not copied: the notebook defines the same
names in its own cells (the configuration and the attention are given to the learner, as they are here). The
batch size is N, as in every notebook of the course: token ids [N, T], activations [N, T, C].
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class GPTConfig:
    """The notebook's GPTConfig dataclass with the same fields and defaults, written as a plain class: the grader
    compiles this module with string annotations and outside sys.modules, where @dataclass cannot run."""

    def __init__(self, block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0):
        self.block_size = block_size     # the longest context the model sees, in tokens
        self.vocab_size = vocab_size     # the number of distinct tokens (characters here)
        self.n_layer = n_layer           # transformer blocks
        self.n_head = n_head             # attention heads per block
        self.n_embd = n_embd             # the width of the residual stream, C
        self.dropout = dropout


class CausalSelfAttention(nn.MultiheadAttention):
    """Multi-head causal self-attention, x [N, T, C] -> [N, T, C]: PyTorch's nn.MultiheadAttention (the layer
    notebook 01's MultiHeadAttention matched), given x as query, key and value, with the future masked out."""

    def __init__(self, config):
        super().__init__(config.n_embd, config.n_head, dropout=config.dropout, batch_first=True)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        future = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        out, _ = super().forward(x, x, x, attn_mask=future, is_causal=True, need_weights=False)
        return self.resid_dropout(out)

    @torch.no_grad()
    def weights(self, x):
        """The attention weights of every head under the causal mask: [N, n_head, T, T], each row summing to 1."""
        future = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        return super().forward(x, x, x, attn_mask=future, need_weights=True, average_attn_weights=False)[1]


# %% [layernorm]
class LayerNorm(nn.Module):
    """Layer normalization over the last dimension, as nn.LayerNorm(ndim, eps):

        y = (x - mean) / sqrt(var + eps) * weight + bias

    mean and var are taken over the last dimension of x [..., ndim]; var is the biased variance (divided by
    ndim, not ndim - 1). weight (ones) and bias (zeros) are learnable: nn.Parameter of shape [ndim].
    """

    def __init__(self, ndim, eps=1e-5):
        super().__init__()
        self.eps = eps
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)        # biased: divide by ndim
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        ### END SOLUTION


# %% [transformer_block]
class MLP(nn.Module):
    """The position-wise feed-forward network: x [N, T, C] -> [N, T, C], each position on its own.

    c_fc:    nn.Linear(C, 4 * C), then GELU (exact: nn.GELU())
    c_proj:  nn.Linear(4 * C, C), then dropout (self.dropout, nn.Dropout(config.dropout)) on the output
    """

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))
        ### END SOLUTION


class Block(nn.Module):
    """A pre-norm transformer block: x [N, T, C] -> [N, T, C].

        x = x + attn(ln_1(x))       communication: each position reads from the earlier ones
        x = x + mlp(ln_2(x))        computation: each position on its own

    ln_1, ln_2: LayerNorm(C); attn: CausalSelfAttention(config); mlp: MLP(config).
    """

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        self.ln_1 = LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd)
        self.mlp = MLP(config)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x
        ### END SOLUTION


# %% [gpt_model]
class GPT(nn.Module):
    """A decoder-only transformer language model.

    wte:     nn.Embedding(vocab_size, n_embd), the token embeddings
    wpe:     nn.Embedding(block_size, n_embd), the position embeddings (row t for position t)
    drop:    nn.Dropout(dropout), on the sum of the two embeddings
    blocks:  nn.ModuleList of n_layer Blocks
    ln_f:    LayerNorm(n_embd), the final normalization
    lm_head: nn.Linear(n_embd, vocab_size, bias=False), whose weight IS wte's weight (weight tying)

    forward: idx [N, T] int64 (T <= block_size), targets [N, T] int64 or None
        ->  logits [N, T, vocab_size] and the mean cross-entropy of the targets (None without targets)
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        ### BEGIN SOLUTION
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight     # one [vocab_size, n_embd] matrix: embedding in, scores out
        ### END SOLUTION
        self.apply(self._init_weights)
        for name, p in self.named_parameters():   # the layers that write into the residual stream: smaller
            if name.endswith(("c_proj.weight", "out_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.MultiheadAttention):    # its queries', keys' and values' weights: one [3C, C] tensor
            nn.init.normal_(module.in_proj_weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.in_proj_bias)

    def forward(self, idx, targets=None):
        N, T = idx.shape
        assert T <= self.config.block_size, f"a sequence of {T} tokens is longer than block_size={self.config.block_size}"
        ### BEGIN SOLUTION
        pos = torch.arange(T, device=idx.device)                 # [T]: 0, 1, ..., T - 1
        x = self.drop(self.wte(idx) + self.wpe(pos))             # [N, T, C] + [T, C]
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))                      # [N, T, vocab_size]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(N * T, -1), targets.view(N * T))
        return logits, loss
        ### END SOLUTION


# %% [param_formula]
def gpt_num_params(vocab_size, block_size, n_layer, n_embd):
    """The number of parameters of GPT(GPTConfig(block_size, vocab_size, n_layer, n_head, n_embd)), counted from
    the four sizes alone (it does not depend on n_head); an int. Build no model."""
    ### BEGIN SOLUTION
    V, T, L, C = vocab_size, block_size, n_layer, n_embd
    embeddings = V * C + T * C                    # wte (shared with lm_head) and wpe
    attention = (C * 3 * C + 3 * C) + (C * C + C)  # in_proj and out_proj, with biases
    mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)    # c_fc and c_proj, with biases
    block = 2 * C + attention + 2 * C + mlp        # ln_1, attn, ln_2, mlp: 12 C^2 + 13 C
    return embeddings + L * block + 2 * C          # and ln_f
    ### END SOLUTION


# %% [sampling]
@torch.no_grad()
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None):
    """Extend idx [N, T] by max_new_tokens tokens, sampled one at a time: -> [N, T + max_new_tokens].

    model(idx_cond) returns (logits [N, T', vocab_size], loss); the model sees at most model.config.block_size
    tokens, so idx_cond is the LAST block_size tokens of idx when idx is longer. Each new token is sampled from
    softmax(logits of the last position / temperature), keeping only the top_k largest logits when top_k is set
    (all of them when top_k >= vocab_size).
    """
    block_size = model.config.block_size
    for _ in range(max_new_tokens):
        ### BEGIN SOLUTION
        idx_cond = idx if idx.size(1) <= block_size else idx[:, -block_size:]
        logits, _ = model(idx_cond)
        logits = logits[:, -1, :] / temperature                     # [N, vocab_size]
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))    # v[:, -1] is the k-th largest logit
            logits[logits < v[:, [-1]]] = float("-inf")
        probs = F.softmax(logits, dim=-1)
        idx_next = torch.multinomial(probs, num_samples=1)          # [N, 1]
        idx = torch.cat((idx, idx_next), dim=1)
        ### END SOLUTION
    return idx
