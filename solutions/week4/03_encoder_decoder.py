"""Week 4, notebook 03: an encoder-decoder transformer that learns to reverse strings of digits — the reference.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring, the imports and the given tokens) is not copied: the notebook defines the same
names in its own cells.

The layers are PyTorch's nn.MultiheadAttention (the layer notebook 01's MultiHeadAttention and CrossAttention
matched), so the masks follow PyTorch's convention: a boolean mask is True where attention is FORBIDDEN — the
padding of a source (key_padding_mask [N, S]) and the later positions of a target (attn_mask [T, T]).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2          # the special tokens; digit d is token d + 3
VOCAB_SIZE = 13


# %% [masks]
def padding_mask(tokens):
    """tokens [N, L] int64  ->  bool [N, L], True where the token is PAD (nn.MultiheadAttention's key_padding_mask)."""
    ### BEGIN SOLUTION
    return tokens == PAD
    ### END SOLUTION


def future_mask(T, device=None):
    """bool [T, T] on `device`, True where key s comes after query t (s > t): nn.MultiheadAttention's attn_mask
    for a decoder, the complement of notebook 01's causal_mask."""
    ### BEGIN SOLUTION
    return torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
    ### END SOLUTION


# %% [encoder]
class EncoderLayer(nn.Module):
    """One layer of the encoder, post-norm as in Vaswani et al. (and nn.TransformerEncoderLayer's default):

        x = norm1(x + self_attn(x, x, x))               every position reads every position that is not padding
        x = norm2(x + linear2(relu(linear1(x))))        then each position on its own

    self_attn:      nn.MultiheadAttention(d_model, n_head, batch_first=True)
    linear1:        nn.Linear(d_model, d_ff);  linear2: nn.Linear(d_ff, d_model)
    norm1, norm2:   nn.LayerNorm(d_model)
    forward: x [N, S, d_model], src_pad None or bool [N, S] (True = padding: no query may read that key)
             ->  [N, S, d_model]
    """

    def __init__(self, d_model, n_head, d_ff):
        super().__init__()
        ### BEGIN SOLUTION
        self.self_attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        ### END SOLUTION

    def forward(self, x, src_pad=None):
        ### BEGIN SOLUTION
        attended, _ = self.self_attn(x, x, x, key_padding_mask=src_pad, need_weights=False)
        x = self.norm1(x + attended)
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))
        ### END SOLUTION


# %% [decoder]
class DecoderLayer(nn.Module):
    """One layer of the decoder, post-norm (nn.TransformerDecoderLayer's default):

        y = norm1(y + self_attn(y, y, y))                   causal: target position t reads positions 0..t
        y = norm2(y + multihead_attn(y, memory, memory))    cross-attention: queries from y, keys and values
                                                            from the encoder's output, its padding hidden
        y = norm3(y + linear2(relu(linear1(y))))

    self_attn, multihead_attn:  nn.MultiheadAttention(d_model, n_head, batch_first=True) each
    linear1, linear2:           nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
    norm1, norm2, norm3:        nn.LayerNorm(d_model)
    forward: y [N, T, d_model], memory [N, S, d_model], future bool [T, T] (True = a later position, which
             query t may not read), src_pad None or bool [N, S] (True = padding of the source)
             ->  [N, T, d_model]
    """

    def __init__(self, d_model, n_head, d_ff):
        super().__init__()
        ### BEGIN SOLUTION
        self.self_attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        ### END SOLUTION

    def forward(self, y, memory, future, src_pad=None):
        ### BEGIN SOLUTION
        attended, _ = self.self_attn(y, y, y, attn_mask=future, need_weights=False)
        y = self.norm1(y + attended)
        read, _ = self.multihead_attn(y, memory, memory, key_padding_mask=src_pad, need_weights=False)
        y = self.norm2(y + read)
        return self.norm3(y + self.linear2(F.relu(self.linear1(y))))
        ### END SOLUTION


# %% [model]
class Seq2Seq(nn.Module):
    """An encoder-decoder transformer over one vocabulary, with learned positions.

    embed:    nn.Embedding(vocab_size, d_model), the tokens of the source and of the target
    pos:      nn.Embedding(max_len, d_model), row p for position p, in the source and in the target alike
    encoder:  nn.ModuleList of n_layer EncoderLayer(d_model, n_head, d_ff)
    decoder:  nn.ModuleList of n_layer DecoderLayer(d_model, n_head, d_ff)
    head:     nn.Linear(d_model, vocab_size), the scores of the next target token

    encode(src [N, S])  ->  memory [N, S, d_model]
    decode(tgt [N, T], memory [N, S, d_model], src_pad bool [N, S])  ->  logits [N, T, vocab_size]
    forward(src, tgt)  ->  decode(tgt, encode(src), padding_mask(src))
    """

    def __init__(self, vocab_size=VOCAB_SIZE, max_len=16, d_model=64, n_head=4, d_ff=128, n_layer=1):
        super().__init__()
        ### BEGIN SOLUTION
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.encoder = nn.ModuleList([EncoderLayer(d_model, n_head, d_ff) for _ in range(n_layer)])
        self.decoder = nn.ModuleList([DecoderLayer(d_model, n_head, d_ff) for _ in range(n_layer)])
        self.head = nn.Linear(d_model, vocab_size)
        ### END SOLUTION

    def encode(self, src):
        ### BEGIN SOLUTION
        src_pad = padding_mask(src)
        x = self.embed(src) + self.pos(torch.arange(src.shape[1], device=src.device))   # [N, S, C]
        for layer in self.encoder:
            x = layer(x, src_pad)
        return x
        ### END SOLUTION

    def decode(self, tgt, memory, src_pad):
        ### BEGIN SOLUTION
        T = tgt.shape[1]
        y = self.embed(tgt) + self.pos(torch.arange(T, device=tgt.device))              # [N, T, C]
        future = future_mask(T, tgt.device)
        for layer in self.decoder:
            y = layer(y, memory, future, src_pad)
        return self.head(y)                                                             # [N, T, V]
        ### END SOLUTION

    def forward(self, src, tgt):
        ### BEGIN SOLUTION
        return self.decode(tgt, self.encode(src), padding_mask(src))
        ### END SOLUTION


# %% [loss]
def seq2seq_loss(model, src, tgt):
    """Teacher forcing. tgt [N, T] is BOS, the target, EOS, then PAD: the decoder reads tgt[:, :-1] (BOS and the
    true tokens so far) and is scored on tgt[:, 1:], the next token at every position. -> the mean cross-entropy
    over the positions whose next token is not PAD (a scalar tensor)."""
    ### BEGIN SOLUTION
    logits = model(src, tgt[:, :-1])                                  # [N, T-1, V]
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)
    ### END SOLUTION


# %% [greedy]
@torch.no_grad()
def greedy_decode(model, src, max_len):
    """Write the target one token at a time from BOS, always the most likely next token: src [N, S]  ->
    [N, max_len] int64 on src's device, the tokens after BOS. The source is encoded once. Once a row has
    produced EOS, the rest of that row is PAD."""
    ### BEGIN SOLUTION
    memory, src_pad = model.encode(src), padding_mask(src)
    tgt = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits = model.decode(tgt, memory, src_pad)[:, -1]           # [N, V]: the scores after the last token
        next_token = logits.argmax(dim=-1).masked_fill(done, PAD)     # a finished row only gets PAD
        tgt = torch.cat([tgt, next_token[:, None]], dim=1)
        done = done | (next_token == EOS)
    return tgt[:, 1:]
    ### END SOLUTION
