import pytest

from course.testing import assert_close, probe


@probe
def sums(nb, seed):
    import random
    rng = random.Random(seed)
    pairs = [(rng.uniform(-5, 5), rng.uniform(-5, 5)) for _ in range(5)]
    return [nb.add(a, b) for a, b in pairs]


@probe
def scaled(nb, seed):
    import numpy as np
    x = np.random.default_rng(seed).normal(size=(3, 2))
    return nb.scale(x, 3.0)


@pytest.mark.exercise("add")
def test_add(student, reference, seed):
    """Look at the return statement of `add`."""
    assert_close(student(sums, seed=seed), reference(sums, seed=seed), what="add(a, b)")


@pytest.mark.exercise("add")
def test_add_ints(student, reference):
    """Integers must add up too."""
    assert_close(student(sums, seed=1), reference(sums, seed=1), what="add on fixed inputs")


@pytest.mark.exercise("scale")
def test_scale(student, reference, seed):
    """`scale` multiplies every entry by k."""
    assert_close(student(scaled, seed=seed), reference(scaled, seed=seed), what="scale(x, 3)")
