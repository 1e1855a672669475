"""`course audit` and the feedback that names a cataloged mistake, on the two-exercise test course."""

import pytest
import yaml

from course import catalog as mistakes
from course.authoring import audit
from course.errors import CourseError
from course.grading.submissions import discover
from course.publish import report
from helpers import GOOD_SCALE, grade, run_course, submission


def test_audit_passes_and_prints_the_matrix(mini):
    out = run_course("audit", "toy", "--workers", "2", cwd=mini.root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 of 6 mistakes caught, 2 of 2 alternatives accepted, 6 of 6 mistakes named" in out.stdout
    rows = {
        line.split("  ")[0]: line for line in out.stdout.splitlines() if line.startswith(("mistake", "alternative"))
    }
    # add's two tests catch it; scale's test never calls add, so it is not run on this variant
    assert rows["mistake subtracts"].split()[2:5] == ["x", "x", "-"]
    assert rows["alternative scale-loop"].split()[2:5] == ["-", "-", "."]
    reference = next(line for line in out.stdout.splitlines() if line.startswith("reference "))
    assert reference.split()[1:4] == [".", ".", "."]


def test_tests_left_out_of_a_variant_change_no_verdict(mini):
    """The audit that runs on each variant only the tests reaching what it changed gives every row the same
    scores, lost exercises and names as the audit that runs every test."""
    nb = mini.assignment("toy").notebooks[0]
    focused = audit.audit_notebook(mini, nb, seed=3, workers=2)
    every = audit.audit_notebook(mini, nb, seed=3, workers=2, every_test=True)

    def verdicts(a):
        return {r.label: (r.result.score, sorted(audit._lost(r)), r.named, r.result.diagnosis) for r in a.rows}

    assert verdicts(focused) == verdicts(every)
    assert sum(len(r.not_run) for r in focused.rows) >= 4  # the focus left tests out
    assert not any(r.not_run for r in every.rows)


def _reference(tests):
    from course.grading.results import NotebookResult, TestResult

    r = NotebookResult("reference", "a", None, None)  # type: ignore[arg-type]
    r.tests = [TestResult(name, "e", 1, 1, "passed", reached=c, names_used=n) for name, c, n in tests]
    return r


def test_only_changes_inside_function_bodies_narrow_the_tests():
    ref = _reference([("t_f", ["1, f:f"], ["f"]), ("t_g", ["2, g:g"], ["g"]), ("t_k", [], ["K"])])
    cells = {"1, f": "K = 2\ndef f(x):\n    return x * K", "2, g": "def g(x):\n    return x"}
    body = {**cells, "1, f": "K = 2\ndef f(x):\n    return x + K"}
    assert audit.tests_reaching(ref, cells, body) == {"t_f", "t_k"}  # K is a global of the changed cell
    assert audit.tests_reaching(ref, cells, cells) == set()
    for outside in [
        "K = 3\ndef f(x):\n    return x * K",  # a constant any test may read
        "K = 2\ndef f(x, y=1):\n    return x * K",  # a signature
        "K = 2\ndef f(x):\n    return x * K\ndef g(x):\n    return 0",  # a new definition shadowing g
        "K = 2\ndef f(x):\n    return x *",  # does not parse
    ]:
        assert audit.tests_reaching(ref, cells, {**cells, "1, f": outside}) is None, outside
    assert audit.tests_reaching(ref, cells, {"2, g": cells["2, g"]}) is None  # a cell gone


def _add(path, entry):
    data = yaml.safe_load(path.read_text()) if path.is_file() else []
    path.write_text(yaml.safe_dump([*data, entry], sort_keys=False))


def test_audit_fails_on_an_uncaught_mistake_and_a_rejected_alternative(mini):
    paths = mini.paths(mini.assignment("toy").notebooks[0])
    _add(
        paths.mistakes,
        {
            "id": "commutes",
            "exercise": "add",
            "says": "b + a (not a mistake at all)",
            "cell": "add-impl",
            "replace": "return a + b",
            "with": "return b + a",
        },
    )
    _add(
        paths.alternatives,
        {
            "id": "scale-twice",
            "exercise": "scale",
            "says": "claims to be right",
            "cell": "scale-impl",
            "replace": "* k",
            "with": "* k * 2",
        },
    )
    out = run_course("audit", "toy", cwd=mini.root)
    assert out.returncode == 1
    assert "FAIL toy/adder: mistake commutes (b + a (not a mistake at all)) keeps full marks for add" in out.stdout
    assert "FAIL toy/adder: alternative scale-twice (claims to be right) loses points: test_scale" in out.stdout


def test_audit_asks_for_three_mistakes_and_an_alternative_per_exercise(mini):
    nb = mini.assignment("toy").notebooks[0]
    paths = mini.paths(nb)
    kept = [m for m in yaml.safe_load(paths.mistakes.read_text()) if m["id"] != "scale-adds"]
    paths.mistakes.write_text(yaml.safe_dump(kept))
    paths.alternatives.unlink()
    result = audit.audit_notebook(mini, nb, seed=1)
    assert "exercise scale has 2 cataloged mistakes in adder.yaml; at least 3 are needed" in result.failures
    assert any("exercise add has no correct alternative" in f for f in result.failures)


def test_feedback_names_the_mistake_a_submission_made(mini):
    a = mini.assignment("toy")
    path = submission(mini, "sam", {"add-impl": "def add(a, b):\n    return a * b", "scale-impl": GOOD_SCALE})
    [[r]] = grade(mini, a, discover(a, [path]))
    assert r.diagnosis == {"add": ["add multiplies a and b"]}
    assert "→ This looks like a known mistake: add multiplies a and b" in report.text([r])
    assert "This looks like a known mistake: add multiplies a and b" in report.feedback_html(r, "t")


def test_an_unknown_mistake_is_not_named(mini):
    a = mini.assignment("toy")
    path = submission(mini, "kim", {"add-impl": "def add(a, b):\n    return a + b + 1"})
    [[r]] = grade(mini, a, discover(a, [path]))
    assert r.exercise_score("add") == 0 and r.diagnosis == {}
    assert "known mistake" not in report.text([r])


def test_a_mistake_that_raises_is_named_only_for_the_same_exception(mini):
    """Two exceptions of one type are the same answer only with the same message: a shape slip and a missing
    return both raise TypeError or RuntimeError."""
    a = mini.assignment("toy")
    _add(
        mini.paths(a.notebooks[0]).mistakes,
        {
            "id": "adds-none",
            "exercise": "add",
            "says": "adds None to a",
            "cell": "add-impl",
            "replace": "return a + b",
            "with": "return a + None",
        },
    )
    same = submission(mini, "ann", {"add-impl": "def add(a, b):\n    return a + None"})
    other = submission(mini, "bob", {"add-impl": "def add(a, b):\n    raise TypeError('not today')"})
    [[named], [unnamed]] = grade(mini, a, discover(a, [same, other]))
    assert named.diagnosis == {"add": ["adds None to a"]}
    assert unnamed.exercise_score("add") == 0 and unnamed.diagnosis == {}


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"id": "x", "exercise": "add", "says": "s", "cell": "add-impl"}, "either replace and with or source"),
        (
            {"id": "x", "exercise": "add", "says": "s", "cell": "add-impl", "replace": "a", "with": "b", "source": "c"},
            "either replace and with or source",
        ),
        ({"id": "x", "exercise": "nope", "says": "s", "cell": "add-impl", "source": "c"}, "found 'nope'"),
    ],
)
def test_a_bad_catalog_entry_is_one_line(mini, entry, words):
    nb = mini.assignment("toy").notebooks[0]
    path = mini.paths(nb).alternatives
    path.write_text(yaml.safe_dump([entry]))
    with pytest.raises(CourseError, match=words) as info:
        mistakes.load_alternatives(nb, path)
    assert "\n" not in str(info.value) and "alternatives/adder.yaml" in str(info.value)
