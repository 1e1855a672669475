"""Null submissions (`course audit --nulls`): each function of a solution made to do nothing, return None,
zeros or its input, alone and all at once, on the two-exercise test course."""

from course import notebooks
from course.authoring import audit, nulls

SHAPE_ONLY = '''

@pytest.mark.exercise("scale")
def test_scale_shape(student, reference, seed):
    """`scale` keeps the shape of x."""
    import numpy as np
    assert np.shape(student(scaled, seed=seed)) == np.shape(reference(scaled, seed=seed))
'''


def test_every_function_is_nulled_in_each_way_that_applies(mini):
    nb = mini.assignment("toy").notebooks[0]
    made = nulls.submissions(notebooks.read(mini.paths(nb).source), nb)
    labels = [n.label for n in made]
    for fn in ("add", "scale"):
        assert [label for label in labels if label.startswith(f"{fn} ")] == [
            f"{fn} {says}" for says in nulls.KINDS.values()
        ]
    assert [n.label for n in made if n.scope == "notebook"] == [f"every function {s}" for s in nulls.KINDS.values()]
    nothing = next(n for n in made if n.label == "add does nothing")
    assert "pass" in nothing.cells["add-impl"] and "return a + b" not in nothing.cells["add-impl"]
    zeros = next(n for n in made if n.label == "scale returns zeros of the reference's shapes")
    assert "@__course_null__.zeros" in zeros.cells["scale-impl"]


def test_the_suite_passes_its_null_submissions(mini):
    nb = mini.assignment("toy").notebooks[0]
    result = audit.audit_notebook(mini, nb, seed=2, workers=2, with_nulls=True)
    assert result.failures == [], audit.matrix(result)
    assert len(result.nulls) == 12
    everything = [r for r in result.nulls if r.label.startswith("null every function")]
    assert len(everything) == 4 and all(r.result.score == 0 for r in everything)
    add_alone = [r for r in result.nulls if r.label.startswith("null add ")]
    assert len(add_alone) == 4 and all(r.result.exercise_score("add") == 0 for r in add_alone)


def test_a_test_that_doing_nothing_passes_is_reported(mini):
    nb = mini.assignment("toy").notebooks[0]
    suite = mini.paths(nb).suite
    suite.write_text(suite.read_text() + SHAPE_ONLY)
    result = audit.audit_notebook(mini, nb, seed=2, workers=2, with_nulls=True)
    assert (
        "scale returns zeros of the reference's shapes, and test_scale_shape still pass: reachable by doing nothing"
        in result.failures
    )
    assert any(
        f.startswith("with every function returns zeros of the reference's shapes, scale keeps")
        for f in result.failures
    )
    assert not any("add " in f for f in result.failures)  # add's tests check values
