"""Hidden tests for week1/04_universal_approximation: the ReLU network that draws a polyline, and the hinges of a
one-hidden-layer network.

hinge_net is graded by the function its network computes (many weight settings draw the same polyline): at the
knots, between them, left of the first and beyond the last, on knots that are not evenly spaced. hinge_locations
is graded on networks whose weights the probe sets, negative and exactly zero ones included.
"""
import pytest

from course.testing import assert_close, check, probe


# -- probes -----------------------------------------------------------------------------------------------------
@probe
def polyline_case(nb, seed, k, dtype="float64"):
    """hinge_net on k seeded, unevenly spaced knots and values; the network evaluated at the knots, halfway
    between them, at seeded points inside, left of the first knot and beyond the last; its structure."""
    import torch
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    gaps = 0.3 + 1.2 * torch.rand(k - 1, generator=g, dtype=torch.float64)
    knots = torch.cat([torch.zeros(1, dtype=torch.float64), gaps.cumsum(0)]) - 1.5
    values = 2 * torch.randn(k, generator=g, dtype=torch.float64)
    net = nb.hinge_net(knots.to(dt), values.to(dt))
    inside = knots[0] + (knots[-1] - knots[0]) * torch.rand(9, generator=g, dtype=torch.float64)
    points = {"knots": knots, "halfway": (knots[1:] + knots[:-1]) / 2, "inside": inside,
              "left of the first knot": knots[0] - torch.tensor([0.25, 1.0, 3.0], dtype=torch.float64),
              "beyond the last knot": knots[-1] + torch.tensor([0.25, 1.0, 3.0], dtype=torch.float64)}
    out = {}
    with torch.no_grad():
        for name, x in points.items():
            out[name] = net(x.to(dt).unsqueeze(1)).squeeze(1).to(torch.float64)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    structure = {"hidden units": linears[0].out_features if linears else 0,
                 "parameter dtypes": sorted({str(p.dtype) for p in net.parameters()})}
    return {"values": out, "structure": structure}


@probe
def hinges_case(nb, seed, h):
    """hinge_locations of a Sequential(Linear(1, h), ReLU, Linear(h, 1)) with seeded weights of both signs, one
    weight exactly 0 (with a nonzero bias) when h > 2, and one exactly 0 bias; whether the result is detached."""
    import torch
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(1, h), torch.nn.ReLU(), torch.nn.Linear(h, 1))
    with torch.no_grad():
        w = torch.randn(h, 1, generator=g)
        w = torch.where(w.abs() < 0.1, torch.full_like(w, 0.5), w)
        b = torch.randn(h, generator=g)
        if h > 2:
            w[1, 0], b[1] = 0.0, 0.7
        b[0] = 0.0
        net[0].weight.copy_(w)
        net[0].bias.copy_(b)
    found = nb.hinge_locations(net)
    t = torch.as_tensor(found)
    return {"hinges": t.detach().to(torch.float64), "shape": list(t.shape),
            "detached": not t.requires_grad}


# -- hinge_net --------------------------------------------------------------------------------------------------
@pytest.mark.exercise("hinge_net")
def test_hinge_net_passes_through_the_points(student, reference, seed):
    """f(knots[i]) = values[i]: unit i is relu(x - knots[i]), its output weight the change of slope at knot i
    (slopes as rise over run, (values[i+1] - values[i]) / (knots[i+1] - knots[i])), and the output bias values[0]."""
    for k in (4, 7):
        found = student(polyline_case, seed=seed, k=k)
        expected = reference(polyline_case, seed=seed, k=k)
        assert_close(found["values"]["knots"], expected["values"]["knots"], atol=1e-9, rtol=1e-9,
                     what=f"the network at its {k} knots (they should give the values)")


@pytest.mark.exercise("hinge_net")
def test_hinge_net_between_and_outside_the_knots(student, reference, seed):
    """Straight lines between the knots; values[0] everywhere left of the first knot (every unit off there); the
    last segment's slope continued beyond the last knot."""
    for k in (4, 7):
        found = student(polyline_case, seed=seed, k=k)
        expected = reference(polyline_case, seed=seed, k=k)
        assert_close(found["values"], expected["values"], atol=1e-9, rtol=1e-9,
                     what=f"the network built from {k} knots, at points between, left of and beyond them")


@pytest.mark.exercise("hinge_net")
def test_hinge_net_two_knots(student, reference, seed):
    """Two knots: one hidden unit, one straight segment (constant values[0] to its left)."""
    found = student(polyline_case, seed=seed, k=2)
    expected = reference(polyline_case, seed=seed, k=2)
    assert_close(found, expected, atol=1e-9, rtol=1e-9, what="hinge_net from two knots")


@pytest.mark.exercise("hinge_net")
def test_hinge_net_structure_and_dtype(student, reference, seed):
    """K knots give K - 1 hidden units, and the network takes the knots' dtype (float32 knots, float32
    parameters; float64 knots, float64 parameters)."""
    for dtype in ("float64", "float32"):
        found = student(polyline_case, seed=seed, k=5, dtype=dtype)
        expected = reference(polyline_case, seed=seed, k=5, dtype=dtype)
        assert_close(found["structure"], expected["structure"], what=f"the network built from 5 {dtype} knots")
        assert_close(found["values"], expected["values"], atol=1e-4, rtol=1e-4,
                     what=f"the network built from 5 {dtype} knots, at points between, left of and beyond them")


# -- hinge_locations --------------------------------------------------------------------------------------------
@pytest.mark.exercise("hinge_locations")
def test_hinge_locations_values(student, reference, seed):
    """The hinge of unit k is -b_k / w_k (where w_k x + b_k = 0), for weights of either sign; a bias of 0 puts
    the hinge at 0."""
    for h in (2, 6, 1):
        found = student(hinges_case, seed=seed, h=h)
        expected = reference(hinges_case, seed=seed, h=h)
        assert_close(found, expected, atol=1e-6, rtol=1e-6, what=f"hinge_locations of a network with {h} hidden units")


@pytest.mark.exercise("hinge_locations")
def test_hinge_locations_zero_weight_is_nan(student, reference, seed):
    """A unit whose weight is exactly 0 is constant and has no hinge: its entry is nan (not inf, whatever the bias)."""
    found = student(hinges_case, seed=seed, h=5)
    expected = reference(hinges_case, seed=seed, h=5)
    assert_close(found["hinges"], expected["hinges"], atol=1e-6, rtol=1e-6,
                 what="hinge_locations of a network with a zero weight (unit 1)")


@pytest.mark.exercise("hinge_locations")
def test_hinge_locations_is_detached(student, reference, seed):
    """hinge_locations returns the hinges as a tensor [H] detached from the graph (read the weights through
    .detach() or under torch.no_grad()), so that it can be plotted and compared."""
    found = student(hinges_case, seed=seed, h=4)
    check(found["shape"] == [4], f"hinge_locations of 4 units returned shape {found['shape']}, expected [4]")
    check(found["detached"], "hinge_locations returned a tensor that requires grad: detach the weights first")
    expected = reference(hinges_case, seed=seed, h=4)
    assert_close(found["hinges"], expected["hinges"], atol=1e-6, rtol=1e-6, what="hinge_locations of 4 units")
