"""Week 2, notebook 01: convolution and pooling by hand — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring, the imports and `pair`) is not copied: the notebook's setup cell defines the
same names.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def pair(v):
    """An int or an (h, w) pair  ->  an (h, w) tuple: pair(2) == (2, 2), pair((1, 3)) == (1, 3)."""
    return (v, v) if isinstance(v, int) else tuple(v)


# %% [conv_loops]
def conv_output_size(n, k, stride=1, padding=0):
    """Number of positions of a window of size k sliding with `stride` over n + 2*padding entries (ints)."""
    ### BEGIN SOLUTION
    return (n + 2 * padding - k) // stride + 1
    ### END SOLUTION


def conv2d_naive(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation, as nn.Conv2d computes it, with Python loops over the output positions.

    x: [N, C_in, H, W], w: [C_out, C_in, kH, kW], b: [C_out] or None
    stride, padding: an int or an (h, w) pair; padding adds zeros on all four sides
    ->  out: [N, C_out, H_out, W_out] with H_out = conv_output_size(H, kH, stride_h, padding_h), W_out alike
    """
    N, C_in, H, W = x.shape
    C_out, _, kH, kW = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    ### BEGIN SOLUTION
    H_out, W_out = conv_output_size(H, kH, sh, ph), conv_output_size(W, kW, sw, pw)
    xp = F.pad(x, (pw, pw, ph, ph))                          # zeros left, right, top, bottom
    out = x.new_zeros(N, C_out, H_out, W_out)
    for i in range(H_out):
        for j in range(W_out):
            patch = xp[:, :, i * sh : i * sh + kH, j * sw : j * sw + kW]   # [N, C_in, kH, kW]
            for o in range(C_out):
                out[:, o, i, j] = (patch * w[o]).sum(dim=(1, 2, 3))      # sum over C_in, kH, kW
    if b is not None:
        out += b.view(1, C_out, 1, 1)                        # one bias per output channel
    ### END SOLUTION
    return out


# %% [conv_unfold]
def conv2d_unfold(x, w, b=None, stride=1, padding=0):
    """The same convolution as conv2d_naive, as one matrix product on the unfolded input (im2col).

    x: [N, C_in, H, W], w: [C_out, C_in, kH, kW], b: [C_out] or None, stride, padding: int or (h, w)
    ->  out: [N, C_out, H_out, W_out]. No Python loop over positions, channels or examples.
    """
    N, C_in, H, W = x.shape
    C_out, _, kH, kW = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    H_out, W_out = conv_output_size(H, kH, sh, ph), conv_output_size(W, kW, sw, pw)
    ### BEGIN SOLUTION
    cols = F.unfold(x, (kH, kW), padding=(ph, pw), stride=(sh, sw))   # [N, C_in*kH*kW, H_out*W_out]
    out = w.reshape(C_out, -1) @ cols                                 # [C_out, C_in*kH*kW] @ -> [N, C_out, L]
    if b is not None:
        out += b.view(1, C_out, 1)                                    # b[o] at every position
    ### END SOLUTION
    return out.view(N, C_out, H_out, W_out)


# %% [maxpool]
def pool_windows(x, kernel, stride):
    """The windows of a pooling layer, as a view of x (no copy).

    x: [N, C, H, W]  ->  [N, C, H_out, W_out, kH, kW], windows[n, c, i, j] = x[n, c, i*sh : i*sh+kH, j*sw : j*sw+kW]
    """
    (kH, kW), (sh, sw) = pair(kernel), pair(stride)
    return x.unfold(2, kH, sh).unfold(3, kW, sw)


def maxpool2d_forward(x, kernel, stride=None):
    """Max pooling without padding, like F.max_pool2d(x, kernel, stride).

    x: [N, C, H, W]; kernel, stride: int or (h, w), stride=None means stride=kernel
    ->  out: [N, C, H_out, W_out], the maximum of each window
    """
    stride = kernel if stride is None else stride
    ### BEGIN SOLUTION
    return pool_windows(x, kernel, stride).amax(dim=(-2, -1))
    ### END SOLUTION


def maxpool2d_backward(dout, x, kernel, stride=None):
    """Gradient of max pooling: each window's dout goes to the position of its maximum (the first one, in
    row-major order, on ties), and a position that is the maximum of several windows receives their sum.

    dout: [N, C, H_out, W_out], x: [N, C, H, W] (the forward input)  ->  dx: [N, C, H, W]
    """
    stride = kernel if stride is None else stride
    (kH, kW), (sh, sw) = pair(kernel), pair(stride)
    ### BEGIN SOLUTION
    windows = pool_windows(x, kernel, stride)                              # [N, C, H_out, W_out, kH, kW]
    first_max = windows.flatten(-2).argmax(dim=-1)                          # [N, C, H_out, W_out], in 0..kH*kW-1
    mask = F.one_hot(first_max, kH * kW).view(windows.shape).to(x.dtype)   # 1 at each window's maximum
    H_out, W_out = dout.shape[-2:]
    dx = torch.zeros_like(x)
    for u in range(kH):              # the windows' entries at offset (u, v) form a strided grid of x:
        for v in range(kW):          # x[:, :, u + i*sh, v + j*sw] over the output positions (i, j)
            dx[:, :, u : u + sh * H_out : sh, v : v + sw * W_out : sw] += mask[..., u, v] * dout
    ### END SOLUTION
    return dx


# %% [conv_grad]
def conv2d_backward(dout, x, w, stride=1, padding=0):
    """Gradients of out = conv2d(x, w, b, stride, padding), given dout = dL/d(out). No autograd.

    dout: [N, C_out, H_out, W_out], x: [N, C_in, H, W], w: [C_out, C_in, kH, kW]
    ->  (dx: [N, C_in, H, W], dw: [C_out, C_in, kH, kW], db: [C_out])
    """
    N, C_in, H, W = x.shape
    C_out, _, kH, kW = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    dout = dout.reshape(N, C_out, -1)                                  # [N, C_out, L]
    ### BEGIN SOLUTION
    cols = F.unfold(x, (kH, kW), padding=(ph, pw), stride=(sh, sw))   # [N, C_in*kH*kW, L], as in the forward
    db = dout.sum(dim=(0, 2))                                          # b was added at every n and position
    dw = (dout @ cols.transpose(1, 2)).sum(dim=0).view_as(w)           # sum_n dout_n cols_n^T
    dcols = w.reshape(C_out, -1).T @ dout                              # [N, C_in*kH*kW, L]
    dx = F.fold(dcols, (H, W), (kH, kW), padding=(ph, pw), stride=(sh, sw))   # adds up each pixel's copies
    ### END SOLUTION
    return dx, dw, db


# %% [conv_function]
class Conv2dFunction(torch.autograd.Function):
    """F.conv2d's forward with the backward pass of conv2d_backward.

    Conv2dFunction.apply(x, w, b, stride, padding) with x [N, C_in, H, W], w [C_out, C_in, kH, kW],
    b [C_out] or None  ->  [N, C_out, H_out, W_out]
    """

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, b is not None
        ### END SOLUTION
        return F.conv2d(x, w, b, pair(stride), pair(padding))

    @staticmethod
    def backward(ctx, dout):
        """One gradient per input of forward, in its order: x, w, b, stride, padding (None for the ints)."""
        ### BEGIN SOLUTION
        x, w = ctx.saved_tensors
        dx, dw, db = conv2d_backward(dout, x, w, ctx.stride, ctx.padding)
        return dx, dw, (db if ctx.has_bias else None), None, None
        ### END SOLUTION


class Conv2dLayer(nn.Module):
    """A convolution layer like nn.Conv2d, computed by Conv2dFunction.

    Parameters `weight` [out_channels, in_channels, kH, kW] and `bias` [out_channels] (None when bias=False),
    both uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] with fan_in = in_channels * kH * kW, as in nn.Conv2d.
    forward: x [N, in_channels, H, W]  ->  [N, out_channels, H_out, W_out]
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        kH, kW = pair(kernel_size)
        ### BEGIN SOLUTION
        bound = 1 / math.sqrt(in_channels * kH * kW)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kH, kW).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return Conv2dFunction.apply(x, self.weight, self.bias, self.stride, self.padding)
        ### END SOLUTION
