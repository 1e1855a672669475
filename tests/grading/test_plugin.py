"""The grading plugin on its own, through pytest's pytester, with in-process workers instead of sandboxes."""

from pathlib import Path
from typing import Any

import pytest

from course.config import Exercise, Grading, Limits, Notebook
from course.grading.plugin import GradingPlugin
from course.grading.pool import Candidate, WorkerPool
from course.grading.references import References
from course.grading.results import TestResult
from course.sandbox.client import StudentError

pytest_plugins = ["pytester"]

NOTEBOOK = Notebook("adder", "Adding", "toy", (Exercise("add", "Add", 2.0), Exercise("neg", "Negate", 1.0)))
GRADING = Grading(notebook_timeout=5, test_timeout=5, limits=Limits(10, 512, 16, 1, 64))
REFERENCE = "def add(a, b):\n    return a + b\n\ndef neg(a):\n    return -a\n"

SUITE = '''
import pytest
from course.testing import assert_close, probe

@probe
def sums(nb, seed):
    return [nb.add(seed, 1), nb.add(-2, seed)]

@probe
def negated(nb):
    return nb.neg(3)

@pytest.mark.exercise("add")
def test_add(student, reference, seed):
    """Look at `add`."""
    assert_close(student(sums, seed=seed), reference(sums, seed=seed), what="add")

@pytest.mark.exercise("add")
def test_add_fixed(student, reference):
    """Fixed inputs."""
    assert_close(student(sums, seed=3), reference(sums, seed=3), what="add")

@pytest.mark.exercise("neg")
def test_neg(student, reference):
    """Look at `neg`."""
    assert_close(student(negated), reference(negated), what="neg")
'''


class InProcessWorker:
    """A worker without a process: the candidate's cells and the suite's probes run here."""

    def __init__(self, cells: list[list[str]]):
        self.namespace: dict[str, Any] = {}
        self.load_errors: list[dict[str, Any]] = []
        self.probes: dict[str, dict[str, Any]] = {}
        self.stopped = False
        self.isolation = "in process"
        self.bound = "none"
        self.peak_mb = None
        for _, source in cells:
            exec(source, self.namespace)

    def call(self, key: str, probes_source: str, name: str, kwargs: dict[str, Any], timeout: float) -> Any:
        from course.sandbox.server import Notebook as View

        space = self.probes.setdefault(key, {})
        if not space:
            exec(probes_source, space)
        try:
            return space[name](View(self.namespace), **kwargs)
        except Exception as exc:
            raise StudentError(f"your code raised {type(exc).__name__}", kind=type(exc).__name__) from None

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def grade(pytester, tmp_path):
    """Run a suite over submissions {id: cells source}; returns (results per id, plugin, workers)."""
    reference = tmp_path / "reference.py"
    reference.write_text(REFERENCE)

    def run(submissions: dict[str, str], suite: str = SUITE):
        pytester.makepyfile(test_suite=suite)
        candidates = [Candidate(cid, [["1", src]]) for cid, src in submissions.items()]
        started: dict[str, InProcessWorker] = {}

        def start(c: Candidate) -> InProcessWorker:
            started[c.id] = InProcessWorker(c.cells)
            return started[c.id]

        done: dict[str, list[TestResult]] = {}
        plugin = GradingPlugin(
            NOTEBOOK,
            candidates,
            WorkerPool(candidates, start),
            References(Path(reference)),
            GRADING,
            seed=7,
            on_done=lambda c, tests: done.__setitem__(c.id, tests),
        )
        pytester.inline_run("-p", "no:cacheprovider", plugins=[plugin])
        return done, plugin, started

    return run


def test_each_submission_gets_one_result_per_test_with_the_points_shared(grade):
    done, plugin, workers = grade({"right": REFERENCE, "wrong": REFERENCE.replace("a + b", "a - b")})
    assert plugin.problems == []
    assert {t.name: (t.score, t.max_score) for t in done["right"]} == {
        "test_add": (1.0, 1.0),
        "test_add_fixed": (1.0, 1.0),
        "test_neg": (1.0, 1.0),
    }
    wrong = {t.name: t for t in done["wrong"]}
    assert wrong["test_add"].score == 0 and wrong["test_neg"].score == 1
    assert "add is not what was expected" in wrong["test_add"].output and wrong["test_add"].hint == "Look at `add`."
    assert all(w.stopped for w in workers.values()), "every worker is stopped when the suite ends"


def test_a_test_that_skips_is_a_problem_of_the_suite_never_a_silent_zero(grade):
    skipping = (
        SUITE
        + """
@pytest.mark.exercise("neg")
def test_skips(student):
    pytest.skip("not today")
"""
    )
    done, plugin, _ = grade({"ana": REFERENCE}, suite=skipping)
    assert any("test_skips: the hidden test was skipped" in p for p in plugin.problems), plugin.problems
    assert "ana" not in done, "a submission with a test missing is not complete"


def test_a_fixture_that_raises_is_a_problem_of_the_suite(grade):
    broken = (
        SUITE
        + """
@pytest.fixture
def inputs():
    raise KeyError("the suite's own bug")

@pytest.mark.exercise("neg")
def test_broken_setup(student, inputs):
    pass
"""
    )
    done, plugin, _ = grade({"ana": REFERENCE}, suite=broken)
    assert any("test_broken_setup: the hidden test failed in its setup" in p for p in plugin.problems)
    assert "ana" not in done


def test_a_test_without_one_exercise_is_refused_before_anything_runs(grade):
    unmarked = SUITE + "\ndef test_unmarked(student):\n    pass\n"
    done, plugin, workers = grade({"ana": REFERENCE}, suite=unmarked)
    assert any("test_unmarked: expected one @pytest.mark.exercise" in p for p in plugin.problems)
    assert done == {} and workers == {}, "no worker starts for a suite that cannot be trusted"


def test_workers_start_one_ahead_and_stop_as_the_tests_move_on(grade):
    done, _, workers = grade({f"s{i}": REFERENCE for i in range(4)})
    assert sorted(done) == ["s0", "s1", "s2", "s3"] and sorted(workers) == ["s0", "s1", "s2", "s3"]
