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

BOTH = '''

@probe
def scaled_sum(nb, seed):
    import numpy as np
    return nb.scale(np.array([nb.add(1.0, 2.0), 4.0]), 2.0)


@pytest.mark.exercise("scale")
def test_scale_of_a_sum(student, reference, seed):
    """`scale` on what `add` made."""
    assert_close(student(scaled_sum, seed=seed), reference(scaled_sum, seed=seed), what="scale(add)")
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


def test_a_null_runs_only_the_tests_that_decide_its_verdict(mini):
    """`add` nulled alone must lose add's points and fail every test that calls nothing else stubbed; a test of
    scale that also calls add cannot change that verdict, and is not run (a later exercise's training test
    would cost a training run per null). The tests of scale's own nulls, and every function nulled at once,
    still run it."""
    nb = mini.assignment("toy").notebooks[0]
    suite = mini.paths(nb).suite
    suite.write_text(suite.read_text() + BOTH)
    result = audit.audit_notebook(mini, nb, seed=2, workers=2, with_nulls=True)
    # (the new test states no listed requirement, and add's mistakes now also cost scale: not the nulls' business)
    assert not any(r.failures for r in result.nulls), audit.matrix(result)
    rows = {r.label: r for r in result.nulls}
    assert "test_scale_of_a_sum" in rows["null add does nothing"].not_run
    assert "test_add" not in rows["null add does nothing"].not_run
    assert "test_scale_of_a_sum" not in rows["null scale does nothing"].not_run
    assert not rows["null every function does nothing"].not_run
