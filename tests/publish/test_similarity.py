"""`course similarity`: pairs of students whose solution code is alike, through copydetect."""

import csv
import io
import re
import socket

import pytest

from course.publish import similarity
from helpers import run_course, submission

# one solution, then the same with every name changed, then two written independently of it and of each other
ANN = '''def add(a, b):
    """Return a + b."""
    total = 0
    values = [a, b]
    for value in values:
        if value is None:
            raise ValueError("add needs two numbers")
        total = total + value
    result = total
    return result'''
BEN = '''def add(a, b):
    """Return a + b."""
    acc = 0
    items = [a, b]
    for item in items:
        if item is None:
            raise ValueError("both must be numbers")
        acc = acc + item
    out = acc
    return out'''
CAT = '''def add(a, b):
    """Return a + b."""
    import operator
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return operator.add(float(a), float(b))
    return operator.add(a, b)'''
DAN = '''def add(a, b):
    """Return a + b."""
    import numpy as np
    return np.sum(np.array([a, b], dtype=float)).item() if a is not b else 2 * a'''
SCALE_ANN = '''import numpy as np


def scale(x, k):
    """Return the array x multiplied by k."""
    arr = np.asarray(x, dtype=np.float64)
    factor = float(k)
    scaled = arr * factor
    return scaled'''
SCALE_BEN = SCALE_ANN.replace("arr", "data").replace("factor", "kk").replace("scaled", "res")
SCALE_CAT = '''import numpy as np


def scale(x, k):
    """Return the array x multiplied by k."""
    return np.multiply(np.array(x, dtype=float), k)'''


def class_of(mini):
    submission(mini, "ann", {"add-impl": ANN, "scale-impl": SCALE_ANN})
    submission(mini, "ben", {"add-impl": BEN, "scale-impl": SCALE_BEN})
    submission(mini, "cat", {"add-impl": CAT, "scale-impl": SCALE_CAT})
    submission(mini, "dan", {"add-impl": DAN})
    submission(mini, "eve", {})  # untouched: the release's stubs alone
    submission(mini, "fay", {})


def test_a_copy_with_renamed_variables_is_the_most_alike_pair(mini):
    class_of(mini)
    submission(mini, "gus", {}).write_text("{ not json")  # not compared, and the page says why
    out = run_course("similarity", "toy", "submitted", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    folder = mini.root / "reports" / "_class" / "toy" / "similarity"
    rows = list(csv.DictReader(io.StringIO((folder / "pairs.csv").read_text())))
    assert len(rows) == 6 * 5 // 2  # every pair of the six, for the one notebook
    sim = {(r["student_a"], r["student_b"]): float(r["similarity"]) for r in rows}
    assert (rows[0]["student_a"], rows[0]["student_b"]) == ("ann", "ben")
    assert sim[("ann", "ben")] > 0.8
    # written independently: far below the copy
    for pair in (("ann", "cat"), ("cat", "dan"), ("ann", "dan"), ("ben", "cat")):
        assert sim[pair] < sim[("ann", "ben")] - 0.5, (pair, sim[pair])
    # the released stubs are copydetect's boilerplate: two untouched notebooks share nothing, nor do they with
    # anyone who kept the stubs' signatures and docstrings
    assert sim[("eve", "fay")] == 0 and sim[("ann", "eve")] == 0 and sim[("dan", "fay")] == 0
    page = (folder / "index.html").read_text()
    assert "ann · ben" in page and "<mark>" in page
    assert "eve, fay" in page  # listed as holding nothing beyond the released stubs
    assert re.search(r"gus: \S*adder.ipynb: not a readable notebook", page)
    assert "http://" not in page and "https://" not in page


def test_copydetect_needs_no_network(mini, monkeypatch):
    class_of(mini)

    def refuse(*args, **kwargs):
        raise AssertionError("the similarity report tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    found = similarity.write(mini, mini.assignment("toy"), [mini.root / "submitted"])
    assert found.pairs[0].a == "ann" and found.pairs[0].b == "ben"


def test_similarity_says_when_there_is_nothing_to_compare(mini):
    out = run_course("similarity", "toy", cwd=mini.root)
    assert out.returncode == 2 and "no submissions to compare" in out.stderr


@pytest.mark.slow
def test_by_default_it_compares_what_was_graded(mini):
    """Without paths: the files the saved results were graded from (after `course grade`)."""
    class_of(mini)
    out = run_course("grade", "toy", "submitted", "--no-gradebook", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    found = similarity.find(mini, mini.assignment("toy"))
    assert sorted(found.notebooks[0].students) == ["ann", "ben", "cat", "dan", "eve", "fay"]
    assert sorted(found.notebooks[0].stubs_only) == ["eve", "fay"]
