"""assert_close explains a failure in words a student can act on."""

import numpy as np
import pytest

from course.testing import assert_close, check, differences


def message(found, expected, **kw):
    with pytest.raises(AssertionError) as e:
        assert_close(found, expected, **kw)
    return str(e.value)


def test_equal_within_tolerance_passes():
    assert_close({"a": [1.0, 2.0], "b": np.ones((2, 2))}, {"a": [1.0, 2.0 + 1e-9], "b": np.ones((2, 2))})


def test_names_the_entry_the_values_and_the_count():
    exp = np.zeros((3, 4))
    found = exp.copy()
    found[2, 1] = 0.5
    found[0, 0] = 0.1
    text = message({"dW": found}, {"dW": exp}, what="the weight gradient")
    assert "the weight gradient" in text and "dW" in text and "2 of 12 values differ" in text
    assert "expected 0, found 0.5 at index [2, 1]" in text


def test_shape_and_structure_mismatches():
    assert "expected shape (3, 4), found shape (4, 3)" in message(np.zeros((4, 3)), np.zeros((3, 4)))
    assert "grads: missing" in message({}, {"grads": 1.0})
    assert "expected a dict" in message(3.0, {"x": 1.0})
    assert "expected a list of 2 items" in message([{"a": 1}], [{"a": 1}, {"a": 2}])


def test_nan_is_never_close_to_a_number():
    assert differences(float("nan"), 1.0) and differences([float("nan")], [float("nan")]) == []


def test_check():
    check(True, "unused")
    with pytest.raises(AssertionError, match="rows must sum to 1"):
        check(False, "rows must sum to 1")


def test_an_array_where_a_string_or_none_was_expected_is_a_difference():
    import numpy as np

    from course.testing import differences

    assert differences(np.zeros(2), None) and differences(np.zeros(2), "relu") and differences(1, True)
    assert differences(None, None) == [] and differences("relu", "relu") == []


def test_values_that_differ_past_six_digits_print_enough_digits_to_show_it():
    with pytest.raises(AssertionError) as caught:
        assert_close(-10.308812345, -10.30881, atol=0, rtol=1e-9)
    assert "expected -10.30881, found -10.308812" in str(caught.value)
    with pytest.raises(AssertionError) as caught:
        assert_close(0.5, 0.25)
    assert "expected 0.25, found 0.5" in str(caught.value)
