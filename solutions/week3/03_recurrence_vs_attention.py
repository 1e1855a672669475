"""Week 3, notebook 03: what recurrence costs next to attention — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring) is not copied: the notebook's import cell defines what the regions use.
"""


# %% [costs]
def matmul_flops(m, k, n):
    """The FLOPs of one matrix product [m, k] @ [k, n]: m * n entries, each k multiplications and k additions."""
    return 2 * m * k * n


def lstm_cost(T, N, I, H):
    """What nn.LSTM(I, H, batch_first=True) computes in its forward pass over x [N, T, I], matrix products only.

    ->  {"flops": the FLOPs of all its matrix products, a Python int,
         "sequential": the number of matrix products in the longest chain in which each product needs the result
                       of the one before (products that can run at the same time count once)}
    """
    ### BEGIN SOLUTION
    flops = matmul_flops(N * T, I, 4 * H)     # x_t @ W_ih.T for every step at once: [N*T, I] @ [I, 4H]
    flops += T * matmul_flops(N, H, 4 * H)    # h_{t-1} @ W_hh.T, one step after the other: [N, H] @ [H, 4H]
    return {"flops": flops, "sequential": T}  # step t's product needs h_{t-1}, which needs step t-1's product
    ### END SOLUTION


def block_cost(T, N, d, n_head, d_ff):
    """The same for one transformer block, nn.TransformerEncoderLayer(d, n_head, d_ff), with causal self-attention
    over x [N, T, d] (n_head divides d): q, k and v for every position; for every head of every sequence the
    scores q @ k.T and the weighted sum of the values; the output projection; the MLP's two layers.
    All T x T scores are computed (the causal mask then sets those above the diagonal to -inf).

    ->  {"flops": a Python int, "sequential": as for lstm_cost}
    """
    ### BEGIN SOLUTION
    d_head = d // n_head
    flops = matmul_flops(N * T, d, 3 * d)                                            # q, k, v: [N*T, d] @ [d, 3d]
    flops += N * n_head * (matmul_flops(T, d_head, T) + matmul_flops(T, T, d_head))  # q k^T, then weights @ v
    flops += matmul_flops(N * T, d, d)                                               # the output projection
    flops += matmul_flops(N * T, d, d_ff) + matmul_flops(N * T, d_ff, d)             # the MLP
    return {"flops": flops, "sequential": 6}   # qkv -> scores -> weights @ v -> projection -> MLP -> MLP
    ### END SOLUTION
