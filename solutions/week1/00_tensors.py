"""Week 1, notebook 00: tensors, broadcasting and views — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import torch


# %% [broadcast]
def normalize_rows(x):
    """Each row of x divided by its own sum, without modifying x.

    x: [N, D] with nonzero row sums  ->  [N, D] whose rows sum to 1
    """
    ### BEGIN SOLUTION
    return x / x.sum(dim=1, keepdim=True)         # [N, D] / [N, 1]: each row by its own sum
    ### END SOLUTION


def pairwise_sq_dists(a, b):
    """Squared Euclidean distance between every row of a and every row of b, computed by broadcasting.

    a: [N, D], b: [M, D]  ->  [N, M] with out[i, j] = sum over k of (a[i, k] - b[j, k]) ** 2
    """
    ### BEGIN SOLUTION
    diff = a.unsqueeze(1) - b.unsqueeze(0)        # [N, 1, D] - [1, M, D] -> [N, M, D]
    return (diff ** 2).sum(dim=2)
    ### END SOLUTION


# %% [index]
def pick(scores, y):
    """The entry y[i] of each row i:  out[i] = scores[i, y[i]].

    scores: [N, C], y: [N] int64 with values in 0..C-1  ->  [N]
    """
    ### BEGIN SOLUTION
    rows = torch.arange(len(y), device=y.device)
    return scores[rows, y]                        # pairs (rows[i], y[i]): one entry per row
    ### END SOLUTION


def one_hot(y, num_classes):
    """y: [N] int64 with values in 0..num_classes-1  ->  [N, num_classes] float32, 1 at (i, y[i]) and 0 elsewhere,
    on the device of y."""
    ### BEGIN SOLUTION
    out = torch.zeros(len(y), num_classes, device=y.device)
    out[torch.arange(len(y), device=y.device), y] = 1.0
    return out
    ### END SOLUTION


# %% [views]
def to_pixel_rows(images):
    """images [N, C, H, W]  ->  [N, H * W, C]: one row per pixel, in reading order (row h, then column w),
    holding that pixel's C channel values:  out[n, h * W + w, c] == images[n, c, h, w].

    images may be non-contiguous (a transposed or sliced view, for example).
    """
    ### BEGIN SOLUTION
    N, C, H, W = images.shape
    return images.permute(0, 2, 3, 1).reshape(N, H * W, C)   # [N, H, W, C], then merge H and W
    ### END SOLUTION


def from_pixel_rows(rows, H, W):
    """The inverse of to_pixel_rows:  rows [N, H * W, C]  ->  images [N, C, H, W]."""
    ### BEGIN SOLUTION
    N, _, C = rows.shape
    return rows.reshape(N, H, W, C).permute(0, 3, 1, 2)
    ### END SOLUTION
