"""Naming a mistake: only when every failure of the exercise allows it and one matches it."""

from types import SimpleNamespace

from course.catalog import Variant
from course.grading import diagnosis
from course.grading.results import TestResult

MISTAKES = [Variant("a", "ex", "mistake a", "cell"), Variant("b", "ex", "mistake b", "cell")]


def failed(name, mistakes=(), undecided=()):
    return TestResult(name, "ex", 0.0, 1.0, "a check failed", mistakes=list(mistakes), undecided=list(undecided))


def names(*tests):
    return diagnosis.per_exercise(SimpleNamespace(tests=list(tests)), MISTAKES).get("ex", [])


def test_a_mistake_every_failure_matches_is_named():
    assert names(failed("t1", ["a", "b"]), failed("t2", ["a"])) == ["mistake a"]


def test_a_failure_no_mistake_explains_vetoes_every_name():
    assert names(failed("t1", ["a"]), failed("t2")) == []


def test_a_failure_that_cannot_be_compared_neither_vetoes_nor_names():
    assert names(failed("t1", ["a"]), failed("t2", undecided=["a"])) == ["mistake a"]
    assert names(failed("t1", undecided=["a"])) == []


def test_answers_measured_in_seconds_are_not_compared():
    assert diagnosis._measured_out({"loss": 1.0, "cpu_seconds": 3.2, "inner": {"seconds": 1}}) == {
        "loss": 1.0,
        "inner": {},
    }


def test_a_mistake_that_changes_none_of_the_tests_answers_is_not_what_failed_it():
    # the student's answer is off by 1e-5: within the namer's tolerance of the reference's, outside the test's
    namer = diagnosis.MistakeNamer([], SimpleNamespace(seconds_of=lambda probe, kwargs: 0.0), time_limit=5)
    answers = {("probe", "{}"): ("probe", {}, 1.00001)}
    reference = lambda probe, **kwargs: 1.0
    assert namer._same_answers(answers, lambda probe, **kwargs: 1.0, "<m>", reference) is False
    assert namer._same_answers(answers, lambda probe, **kwargs: 1.000012, "<m>", reference) is True
