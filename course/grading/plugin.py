"""The pytest plugin that grades submissions with a hidden suite.

It parametrizes every test by submission, orders the tests submission by submission (so that only the
current worker and the next are alive), gives tests the `student`, `reference` and `seed` fixtures, and
records each outcome as the `TestResult` a student will read. Workers come from a `WorkerPool`, mistake
names from a `MistakeNamer`; a submission is done when every test collected for it has an outcome.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Generator
from typing import Any

import pytest

from course.config import Grading, Notebook
from course.grading.diagnosis import Answers, MistakeNamer, Raised
from course.grading.pool import Candidate, WorkerPool
from course.grading.references import References, call_key, suite_probes
from course.grading.results import TestResult, split_points
from course.sandbox.client import Reach, StudentError
from course.testing import Probe


def _hint(fn: Callable[..., Any]) -> str:
    doc = (fn.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


class GradingPlugin:
    def __init__(
        self,
        notebook: Notebook,
        candidates: list[Candidate],
        pool: WorkerPool,
        references: References,
        grading: Grading,
        seed: int,
        namer: MistakeNamer | None = None,
        on_done: Callable[[Candidate, list[TestResult]], None] | None = None,
    ):
        self.notebook = notebook
        self.candidates = candidates
        self.by_id = {c.id: i for i, c in enumerate(candidates)}
        self.pool = pool
        pool.on_retire = self._retired
        self.references = references
        self.grading = grading
        self.base_seed = seed
        self.namer = namer
        self.on_done = on_done  # called with (candidate, its results) once all its tests have run
        self.results: dict[str, list[TestResult]] = {c.id: [] for c in candidates}
        self.expected: dict[str, set[tuple[str, str]]] = {c.id: set() for c in candidates}
        self.recorded: dict[str, set[tuple[str, str]]] = {c.id: set() for c in candidates}
        self.shares: dict[tuple[str, str], float] = {}  # a test (of any submission) -> the points it carries
        self.problems: list[str] = []

    # -- collection -------------------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "exercise(id): the exercise of course.yaml this test grades")
        # a failure's report is read from its exception, never from pytest's traceback; the default (long)
        # traceback parses the source of every frame, a third of the grader's own time on a small notebook
        config.option.tbstyle = "native"

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "submission" in metafunc.fixturenames:
            ids = [c.id for c in self.candidates]
            metafunc.parametrize("submission", ids, ids=ids)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            lines = str(report.longrepr).strip().splitlines() or ["(no detail)"]
            self.problems.append(f"{report.nodeid or 'the hidden suite'}: cannot be collected: {lines[-1]}")

    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        known = {e.id for e in self.notebook.auto_exercises}
        seen: set[str] = set()
        for item in items:
            assert isinstance(item, pytest.Function)
            marks = list(item.iter_markers("exercise"))
            if len(marks) != 1 or not marks[0].args or marks[0].args[0] not in known:
                found = [m.args[0] if m.args else None for m in marks]
                self.problems.append(
                    f"{item.path.name}::{item.originalname}: expected one "
                    f"@pytest.mark.exercise(...) naming one of {sorted(known)}, found {found}"
                )
            else:
                seen.add(marks[0].args[0])
            if "submission" not in item.fixturenames:
                self.problems.append(
                    f"{item.path.name}::{item.originalname}: a hidden test must use the `student` fixture"
                )
        for missing in sorted(known - seen):
            self.problems.append(f"exercise {missing!r} of {self.notebook.name} has no hidden test")
        if self.problems:
            items[:] = []
            return
        first: dict[str, list[tuple[str, str]]] = {e: [] for e in known}  # the tests of one submission
        for item in items:
            assert isinstance(item, pytest.Function)
            if self.by_id[_submission(item)] == 0:
                first[_exercise(item)].append(_key(item))
        points = {e.id: e.points for e in self.notebook.auto_exercises}
        for exercise, tests in first.items():
            self.shares.update(zip(tests, split_points(points[exercise], len(tests)), strict=True))
        # the audit's focus: a notebook it wrote runs only the tests that can reach what it changed
        kept = [it for it in items if self._focused(it)]
        if len(kept) < len(items):
            config.hook.pytest_deselected(items=[it for it in items if it not in kept])
            items[:] = kept
        for item in items:
            assert isinstance(item, pytest.Function)
            self.expected[_submission(item)].add(_key(item))
        # submission by submission, keeping the suite's own order within each
        items.sort(key=lambda it: self.by_id[it.callspec.params["submission"]])  # type: ignore[attr-defined]

    def _focused(self, item: pytest.Item) -> bool:
        assert isinstance(item, pytest.Function)
        only = self.candidates[self.by_id[_submission(item)]].focus.only
        return only is None or item.originalname in only

    # -- fixtures ---------------------------------------------------------------------------------------
    @pytest.fixture
    def seed(self, request: pytest.FixtureRequest) -> int:
        return (self.base_seed + zlib.crc32(request.node.originalname.encode())) % (2**31)

    @pytest.fixture
    def student(self, submission: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
        worker = self.pool.worker(submission)
        key, source = suite_probes(request.module)
        answers: Answers = {}
        request.node.student_answers = answers  # kept to compare with the cataloged mistakes
        trace = {"trace": True} if self.candidates[self.by_id[submission]].focus.trace else {}
        request.node.reached = Reach()

        def run(probe: Probe, timeout: float | None = None, **kwargs: Any) -> Any:
            # as long as the reference needed for the same call, times a generous factor: a hang costs
            # seconds, and a correct but slower solution is never cut off
            limit = self.grading.time_limit(self.references.seconds(request.module, probe, kwargs), timeout)
            try:
                result = worker.call(key, source, probe.name, kwargs, limit, **trace)
            except StudentError as exc:
                answers[call_key(probe, kwargs)] = (probe, kwargs, Raised(exc.kind, exc.detail, exc.function))
                raise
            finally:
                if trace:
                    request.node.reached |= worker.reached
            answers[call_key(probe, kwargs)] = (probe, kwargs, copy.deepcopy(result))
            return result

        return run

    @pytest.fixture
    def reference(self, request: pytest.FixtureRequest) -> Callable[..., Any]:
        return self.references.runner(request.module)

    @pytest.fixture
    def submission(self) -> str:  # replaced by parametrization; here so pytest knows the name
        raise RuntimeError("the grader did not parametrize this test by submission")

    # -- outcomes ---------------------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        report = (yield).get_result()
        if not isinstance(item, pytest.Function) or not hasattr(item, "callspec"):
            return
        if "submission" not in item.callspec.params:
            return
        if report.skipped or (report.when == "setup" and report.failed):
            # the suite itself went wrong (a skip, a fixture that raised): never a silent 0 for the student
            how = "was skipped" if report.skipped else "failed in its setup"
            detail = (str(report.longrepr).strip().splitlines() or ["(no detail)"])[-1]
            self.problems.append(
                f"{item.path.name}::{item.originalname}: the hidden test {how} ({detail}); "
                "a hidden test must pass or fail"
            )
            return
        if report.when == "call":
            exc = call.excinfo.value if call.excinfo else None
            exercise = _exercise(item)
            cid = _submission(item)
            self.recorded[cid].add(_key(item))
            named: tuple[str, ...] = ()
            undecided: tuple[str, ...] = ()
            if report.passed:
                output = "passed"
            elif isinstance(exc, AssertionError):
                output = str(exc) or "a check failed"
                if report.when == "call" and self.namer:
                    named, undecided = self.namer.matches(item, exercise, getattr(item, "student_answers", {}))
            else:
                output = (
                    f"the grader could not check the result: {type(exc).__name__}: {exc} "
                    "(does your function return what the exercise describes?)"
                )
            share = self.shares[_key(item)]
            reached: Reach = getattr(item, "reached", Reach())
            self.results[cid].append(
                TestResult(
                    item.originalname,
                    exercise,
                    share if report.passed else 0.0,
                    share,
                    output,
                    "" if report.passed else _hint(item.function),
                    list(named),
                    round(report.duration, 3),
                    sorted(reached.functions),
                    sorted(reached.names),
                    list(undecided),
                )
            )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.pool.close()

    def _retired(self, c: Candidate) -> None:
        # complete: every test collected for this submission has an outcome (not when a batch was stopped)
        if self.on_done and self.expected[c.id] and self.recorded[c.id] == self.expected[c.id]:
            self.on_done(c, self.results[c.id])


def _submission(item: pytest.Function) -> str:
    return str(item.callspec.params["submission"])


def _key(item: pytest.Function) -> tuple[str, str]:
    """A test of one submission: its name and its parameters other than the submission."""
    params = {k: v for k, v in item.callspec.params.items() if k != "submission"}
    return item.originalname, repr(sorted(params.items()))


def _exercise(item: pytest.Function) -> str:
    marker = item.get_closest_marker("exercise")
    assert marker is not None
    return str(marker.args[0])
