"""Hidden tests for week1/00_tensors: broadcasting, advanced indexing, permute/reshape/view.

Inputs are built from `seed` in float64, with square shapes (where a missing keepdim or a transposed result
still runs), batches of one, and non-contiguous inputs where the notebook says they may come.
"""
import re

import pytest

from course.testing import assert_close, check, probe


# -- probes -----------------------------------------------------------------------------------------------------
@probe
def normalize_case(nb, seed, n, d):
    """normalize_rows on positive float64 rows; whether the input was left as it was."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64) + 0.2
    given = x.clone()
    out = nb.normalize_rows(given)
    return {"out": out, "input_unchanged": bool(torch.equal(given, x))}


@probe
def pairwise_case(nb, seed, n, m, d, same=False):
    """pairwise_sq_dists on random float64 points (b = a when `same`)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = a.clone() if same else torch.randn(m, d, generator=g, dtype=torch.float64)
    return {"out": nb.pairwise_sq_dists(a, b)}


@probe
def pick_case(nb, seed, n, c):
    """pick on random scores and labels (every label value appears in some shapes, repeats in others)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    return {"out": nb.pick(scores, y)}


@probe
def one_hot_case(nb, seed, n, c):
    """one_hot of random labels drawn below c - 1, so that the last class never occurs; its dtype."""
    import torch
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, max(c - 1, 1), (n,), generator=g)
    out = nb.one_hot(y, c)
    return {"out": torch.as_tensor(out).to(torch.float64), "dtype": str(torch.as_tensor(out).dtype)}


@probe
def pixel_rows_case(nb, seed, n, c, h, w, layout="contiguous"):
    """to_pixel_rows and from_pixel_rows on distinct values; `layout` "transposed" or "sliced" gives a
    non-contiguous input of the same shape."""
    import torch
    g = torch.Generator().manual_seed(seed)
    if layout == "transposed":
        images = torch.randn(n, c, w, h, generator=g, dtype=torch.float64).transpose(2, 3)
    elif layout == "sliced":
        images = torch.randn(n, c, h, 2 * w, generator=g, dtype=torch.float64)[..., ::2]
    else:
        images = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    rows = nb.to_pixel_rows(images)
    return {"rows": rows, "contiguous_input": bool(images.is_contiguous())}


@probe
def from_pixel_rows_case(nb, seed, n, c, h, w):
    """from_pixel_rows on random rows [N, H * W, C]."""
    import torch
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, h * w, c, generator=g, dtype=torch.float64)
    return {"images": nb.from_pixel_rows(rows, h, w)}


# -- broadcasting -----------------------------------------------------------------------------------------------
@pytest.mark.exercise("broadcasting")
def test_normalize_rows(student, reference, seed):
    """normalize_rows divides each ROW by its own sum: x / x.sum(dim=1, keepdim=True). Without keepdim the sums
    [N] line up with the columns: an error for N != D and silently wrong for a square matrix."""
    for n, d in [(4, 7), (5, 5), (1, 3), (6, 2)]:
        found = student(normalize_case, seed=seed, n=n, d=d)
        expected = reference(normalize_case, seed=seed, n=n, d=d)
        assert_close(found["out"], expected["out"], atol=1e-12, rtol=1e-10, what=f"normalize_rows of a [{n}, {d}] x")


@pytest.mark.exercise("broadcasting")
def test_normalize_rows_leaves_input(student, reference, seed):
    """normalize_rows returns the normalized rows as a new tensor and leaves x as it was (no in-place
    division)."""
    found = student(normalize_case, seed=seed, n=3, d=4)
    check(found["input_unchanged"], "normalize_rows changed the tensor it was given: return x / ..., "
                                    "do not divide x in place")
    expected = reference(normalize_case, seed=seed, n=3, d=4)
    assert_close(found["out"], expected["out"], atol=1e-12, rtol=1e-10, what="normalize_rows of a [3, 4] x")


@pytest.mark.exercise("broadcasting")
def test_pairwise_sq_dists(student, reference, seed):
    """pairwise_sq_dists(a [N, D], b [M, D]) is [N, M] with out[i, j] = sum_k (a[i, k] - b[j, k])**2: squared
    (no square root), row i of a against row j of b, summed over the feature dimension."""
    for n, m, d in [(5, 3, 4), (1, 6, 2), (4, 4, 4), (7, 2, 1)]:
        found = student(pairwise_case, seed=seed, n=n, m=m, d=d)
        expected = reference(pairwise_case, seed=seed, n=n, m=m, d=d)
        assert_close(found["out"], expected["out"], atol=1e-9, rtol=1e-9,
                     what=f"pairwise_sq_dists of a [{n}, {d}] and b [{m}, {d}]")


@pytest.mark.exercise("broadcasting")
def test_pairwise_sq_dists_of_a_set_with_itself(student, reference, seed):
    """pairwise_sq_dists(a, a): zero on the diagonal and symmetric."""
    found = student(pairwise_case, seed=seed, n=6, m=6, d=3, same=True)
    expected = reference(pairwise_case, seed=seed, n=6, m=6, d=3, same=True)
    assert_close(found["out"], expected["out"], atol=1e-9, rtol=1e-9, what="pairwise_sq_dists(a, a)")


# -- indexing ---------------------------------------------------------------------------------------------------
@pytest.mark.exercise("indexing")
def test_pick(student, reference, seed):
    """pick(scores [N, C], y [N]) is [N] with out[i] = scores[i, y[i]]: index with the pair (torch.arange(N), y).
    scores[:, y] is [N, N] and scores[y] picks rows."""
    for n, c in [(6, 4), (1, 3), (5, 5), (9, 2)]:
        found = student(pick_case, seed=seed, n=n, c=c)
        expected = reference(pick_case, seed=seed, n=n, c=c)
        assert_close(found["out"], expected["out"], atol=0, rtol=0, what=f"pick on scores [{n}, {c}]")


@pytest.mark.exercise("indexing")
def test_one_hot_values(student, reference, seed):
    """one_hot(y, num_classes) is [N, num_classes] with a single 1 per row, in column y[i]; its width is
    num_classes even when the largest classes never occur in y."""
    for n, c in [(7, 5), (1, 3), (4, 4), (10, 2)]:
        found = student(one_hot_case, seed=seed, n=n, c=c)
        expected = reference(one_hot_case, seed=seed, n=n, c=c)
        assert_close(found["out"], expected["out"], atol=0, rtol=0, what=f"one_hot of {n} labels, {c} classes")


@pytest.mark.exercise("indexing")
def test_one_hot_dtype(student, reference, seed):
    """one_hot returns its rows in float32 (F.one_hot gives int64: convert it with .float())."""
    found = student(one_hot_case, seed=seed, n=5, c=4)
    check(found["dtype"] == "torch.float32", f"one_hot returned {found['dtype']}, expected torch.float32")
    expected = reference(one_hot_case, seed=seed, n=5, c=4)
    assert_close(found["out"], expected["out"], atol=0, rtol=0, what="one_hot of 5 labels, 4 classes")


# -- views and reshape ------------------------------------------------------------------------------------------
@pytest.mark.exercise("views_and_reshape")
def test_to_pixel_rows(student, reference, seed):
    """to_pixel_rows: [N, C, H, W] -> [N, H * W, C] with out[n, h * W + w, c] = images[n, c, h, w]. Move the
    channels last (permute(0, 2, 3, 1)) before merging H and W; a reshape alone scrambles the values."""
    for n, c, h, w in [(2, 3, 4, 5), (1, 1, 3, 2), (3, 2, 4, 4), (1, 4, 1, 3)]:
        found = student(pixel_rows_case, seed=seed, n=n, c=c, h=h, w=w)
        expected = reference(pixel_rows_case, seed=seed, n=n, c=c, h=h, w=w)
        assert_close(found["rows"], expected["rows"], atol=0, rtol=0,
                     what=f"to_pixel_rows of images [{n}, {c}, {h}, {w}]")


@pytest.mark.exercise("views_and_reshape")
def test_to_pixel_rows_non_contiguous(student, reference, seed):
    """to_pixel_rows must accept non-contiguous images (a transposed view, a strided slice): after permute the
    tensor is not contiguous, and `view` fails where `reshape` (or contiguous().view) works."""
    for layout in ("transposed", "sliced"):
        found = student(pixel_rows_case, seed=seed, n=2, c=3, h=4, w=5, layout=layout)
        expected = reference(pixel_rows_case, seed=seed, n=2, c=3, h=4, w=5, layout=layout)
        assert_close(found["rows"], expected["rows"], atol=0, rtol=0,
                     what=f"to_pixel_rows of a {layout} (non-contiguous) batch [2, 3, 4, 5]")


@pytest.mark.exercise("views_and_reshape")
def test_from_pixel_rows(student, reference, seed):
    """from_pixel_rows(rows [N, H * W, C], H, W) is [N, C, H, W], the inverse of to_pixel_rows: split H * W into
    [H, W] first, then move the channels back to dim 1."""
    for n, c, h, w in [(2, 3, 4, 5), (1, 2, 3, 3), (3, 1, 2, 6)]:
        found = student(from_pixel_rows_case, seed=seed, n=n, c=c, h=h, w=w)
        expected = reference(from_pixel_rows_case, seed=seed, n=n, c=c, h=h, w=w)
        assert_close(found["images"], expected["images"], atol=0, rtol=0,
                     what=f"from_pixel_rows of rows [{n}, {h * w}, {c}] with H={h}, W={w}")


# -- on a GPU -----------------------------------------------------------------------------------------------------
@probe
def indexing_on_gpu_case(nb, seed, n, c):
    """pick and one_hot with their inputs on cuda:0 (course.devices.FakeGPU, CUDA's device rules on the CPU): for
    each, the DeviceMismatch it met (None when it ran), the device of its result and the result itself."""
    import torch

    from course.devices import DeviceMismatch, FakeGPU
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)

    def attempt(fn, *args):
        try:
            out = fn(*args)
        except DeviceMismatch as e:
            return {"mismatch": str(e), "device": None, "out": None}
        if not isinstance(out, torch.Tensor):
            return {"mismatch": None, "device": f"not a tensor ({type(out).__name__})", "out": None}
        return {"mismatch": None, "device": str(out.device), "out": out.detach().cpu().to(torch.float64)}

    with FakeGPU() as gpu:
        return {"pick": attempt(nb.pick, gpu.put(scores), gpu.put(y)),
                "one_hot": attempt(nb.one_hot, gpu.put(y), c)}


def check_on_gpu(found, fn, arg):
    """The verdict on one function of a probe run on cuda:0: no tensor met the input on the CPU, the result is
    on cuda:0."""
    check(found["mismatch"] is None,
          f"{fn} created a tensor on the CPU while its input is on cuda:0: pass device={arg}.device (or use "
          f"torch.zeros_like / {arg}.new_zeros). On a GPU, PyTorch says: "
          f"{re.split(r'! |[.] A tensor', str(found['mismatch']))[0]}")
    check(found["device"] == "cuda:0",
          f"{fn} returned its result on {found['device']} while its input is on cuda:0: keep it on the input's device")


@pytest.mark.exercise("indexing")
def test_indexing_on_a_gpu(student, reference, seed):
    """pick and one_hot with their inputs on a GPU: a tensor made inside (torch.arange, torch.zeros) lives on the
    CPU unless it is given device=y.device, and CUDA refuses to mix the two; the results stay on y's device."""
    found = student(indexing_on_gpu_case, seed=seed, n=5, c=4)
    expected = reference(indexing_on_gpu_case, seed=seed, n=5, c=4)
    for fn, arg in [("pick", "y"), ("one_hot", "y")]:
        check_on_gpu(found[fn], fn, arg)
        assert_close(found[fn]["out"], expected[fn]["out"], atol=0, rtol=0, what=f"{fn} on cuda:0")
