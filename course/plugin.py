"""The pytest plugin that grades submissions with a hidden suite.

It parametrizes every test by submission, orders the tests submission by submission so that only one or
two workers are alive at a time, gives tests the `student`, `reference` and `seed` fixtures, and records
each outcome with the message a student will read.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
import signal
import threading
import zlib
from dataclasses import dataclass, field

import pytest

from course.mistakes import apply_to_reference
from course.protocol import from_plain, to_plain
from course.runner import StudentError, Worker
from course.testing import differences, module_probes
from course.worker import Notebook as NotebookView


@dataclass
class Outcome:
    submission: str
    test: str
    exercise: str
    passed: bool
    output: str
    hint: str
    mistakes: tuple[str, ...] = ()  # cataloged mistakes whose answers this failure matches
    seconds: float = 0.0            # the test's own run: the student's probes and the reference's (uncached)


@dataclass
class Candidate:
    """One notebook to grade: an id (the student), and the code cells the grader runs."""
    id: str
    cells: list
    worker: Worker | None = None
    load_errors: list = field(default_factory=list)


@dataclass(frozen=True)
class Raised:
    """What a student's call raised, recorded in place of an answer."""
    kind: str | None


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """A cataloged mistake runs in the grader's process: never let one hang the grading."""
    def expire(signum, frame):
        raise _TooSlow()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_key(probe, kwargs) -> tuple:
    return probe.name, json.dumps(kwargs, sort_keys=True, default=repr)


def _hint(fn) -> str:
    doc = (fn.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


class GradingPlugin:
    def __init__(self, notebook, candidates: list[Candidate], reference_path, grading, seed: int,
                 prefetch: int = 1, on_done=None, mistakes=()):
        self.notebook = notebook
        self.candidates = candidates
        self.by_id = {c.id: i for i, c in enumerate(candidates)}
        self.reference_path = reference_path
        self.grading = grading
        self.base_seed = seed
        self.prefetch = prefetch
        self.on_done = on_done  # called with (candidate, its outcomes) once all its tests have run
        self.mistakes = list(mistakes)  # cataloged mistakes, to name the one a failing submission made
        self._mistake_spaces: dict = {}
        self.outcomes: list[Outcome] = []
        self.tests_each = 0
        self.problems: list[str] = []
        self._reference_ns = None
        self._reference_cache: dict = {}
        self._probe_spaces: dict = {}

    # -- collection -------------------------------------------------------------------------------------
    def pytest_configure(self, config):
        config.addinivalue_line("markers", "exercise(id): the exercise of course.yaml this test grades")

    def pytest_generate_tests(self, metafunc):
        if "submission" in metafunc.fixturenames:
            metafunc.parametrize("submission", [c.id for c in self.candidates], ids=[c.id for c in self.candidates])

    def pytest_collectreport(self, report):
        if report.failed:
            lines = str(report.longrepr).strip().splitlines() or ["(no detail)"]
            self.problems.append(f"{report.nodeid or 'the hidden suite'}: cannot be collected: {lines[-1]}")

    def pytest_collection_modifyitems(self, session, config, items):
        known = {e.id for e in self.notebook.auto_exercises}
        seen = set()
        for item in items:
            marks = list(item.iter_markers("exercise"))
            if len(marks) != 1 or not marks[0].args or marks[0].args[0] not in known:
                found = [m.args[0] if m.args else None for m in marks]
                self.problems.append(f"{item.path.name}::{item.originalname}: expected one "
                                     f"@pytest.mark.exercise(...) naming one of {sorted(known)}, found {found}")
            else:
                seen.add(marks[0].args[0])
            if "submission" not in item.fixturenames:
                self.problems.append(f"{item.path.name}::{item.originalname}: a hidden test must use the "
                                     "`student` fixture")
        for missing in sorted(known - seen):
            self.problems.append(f"exercise {missing!r} of {self.notebook.name} has no hidden test")
        if self.problems:
            items[:] = []
            return
        self.tests_each = len(items) // max(1, len(self.candidates))
        # submission by submission, keeping the suite's own order within each
        items.sort(key=lambda it: self.by_id[it.callspec.params["submission"]])

    # -- fixtures ---------------------------------------------------------------------------------------
    @pytest.fixture
    def seed(self, request):
        return (self.base_seed + zlib.crc32(request.node.originalname.encode())) % (2**31)

    @pytest.fixture
    def student(self, submission, request):
        worker = self._worker(submission)
        key, source = self._probes(request.module)
        answers = request.node.student_answers = {}  # kept to compare with the cataloged mistakes

        def run(probe, timeout=None, **kwargs):
            try:
                result = worker.call(key, source, probe.name, kwargs, timeout or self.grading.test_timeout)
            except StudentError as exc:
                answers[_call_key(probe, kwargs)] = (probe, kwargs, Raised(exc.kind))
                raise
            answers[_call_key(probe, kwargs)] = (probe, kwargs, copy.deepcopy(result))
            return result
        return run

    @pytest.fixture
    def reference(self, request):
        return self._runner(request.module, "reference", self._reference)

    def _runner(self, module, name: str, load):
        """A `reference`-like fixture value: runs probes in this process against a trusted namespace
        (the reference, or the reference with one cataloged mistake), caching each answer."""
        key, source = self._probes(module)
        space = self._probe_spaces.setdefault(key, {})
        if not space:
            space["__name__"] = "probes"
            exec(compile(source, "<probes>", "exec"), space)

        def run(probe, timeout=None, **kwargs):
            cache_key = (name, key, _call_key(probe, kwargs))
            if cache_key not in self._reference_cache:
                arrays = []
                plain = to_plain(space[probe.name](NotebookView(load()), **kwargs), arrays)
                self._reference_cache[cache_key] = (plain, arrays)
            plain, arrays = self._reference_cache[cache_key]
            return from_plain(plain, [a.copy() for a in arrays])
        return run

    # -- naming the mistake ----------------------------------------------------------------------------
    def _mistaken(self, mistake) -> dict:
        if mistake.id not in self._mistake_spaces:
            ns = {"__name__": "reference"}
            text = apply_to_reference(self.reference_path.read_text(), mistake)
            exec(compile(text, f"<mistake {mistake.id}>", "exec", dont_inherit=True), ns)
            self._mistake_spaces[mistake.id] = ns
        return self._mistake_spaces[mistake.id]

    def _diagnose(self, item, exercise: str) -> tuple[str, ...]:
        """The cataloged mistakes of this exercise that this failure matches:
        the reference with that mistake gives the student's answers to every call the test made, or
        raises what the student's code raised; or the test passes when it compares the student's answers
        with that mistaken reference."""
        answers = getattr(item, "student_answers", None)
        if not answers:
            return ()
        found = []
        for m in self.mistakes:
            if m.exercise != exercise:  # a mistake is named at its own exercise, not where it cascades
                continue
            mistaken = self._runner(item.module, f"mistake:{m.id}", functools.partial(self._mistaken, m))
            if self._same_answers(answers, mistaken) or self._passes_against(item, answers, mistaken):
                found.append(m.id)
        return tuple(found)

    def _same_answers(self, answers: dict, mistaken) -> bool:
        for probe, kwargs, answer in answers.values():
            if isinstance(answer, Raised) and answer.kind is None:
                return False  # a hang or a crash: nothing to compare, and the mistake might hang here too
            try:
                with _time_limit(self.grading.test_timeout):
                    theirs = mistaken(probe, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the mistake may make the code raise
                if not (isinstance(answer, Raised) and answer.kind == type(exc).__name__):
                    return False
                continue
            if isinstance(answer, Raised) or differences(answer, theirs, atol=1e-6, rtol=1e-4):
                return False
        return True

    def _passes_against(self, item, answers: dict, mistaken) -> bool:
        if any(isinstance(a, Raised) for _, _, a in answers.values()):
            return False

        def replay(probe, timeout=None, **kwargs):
            return copy.deepcopy(answers[_call_key(probe, kwargs)][2])  # KeyError: the test asked for more

        args = {n: item.funcargs[n] for n in inspect.signature(item.obj).parameters}
        args.update(student=replay, reference=mistaken)
        try:
            with _time_limit(self.grading.test_timeout):
                item.obj(**args)
        except Exception:  # noqa: BLE001 - any failure means: not this mistake
            return False
        return True

    @pytest.fixture
    def submission(self):  # replaced by parametrization; here so pytest knows the name
        raise RuntimeError("the grader did not parametrize this test by submission")

    # -- workers ----------------------------------------------------------------------------------------
    def _worker(self, submission_id: str) -> Worker:
        index = self.by_id[submission_id]
        for i, c in enumerate(self.candidates):
            if c.worker and i < index:
                self._retire(c)
        for c in self.candidates[index:index + 1 + self.prefetch]:
            if c.worker is None:
                c.worker = Worker(c.cells, self.grading.limits, self.grading.notebook_timeout, self.grading.sandboxed)
                c.worker.start()
        return self.candidates[index].worker

    def _retire(self, c: Candidate):
        c.load_errors = c.worker.load_errors
        c.worker.stop()
        c.worker = False  # graded: never start again
        outcomes = [o for o in self.outcomes if o.submission == c.id]
        if self.on_done and len(outcomes) == self.tests_each:  # not when a batch was stopped halfway
            self.on_done(c, outcomes)

    def pytest_sessionfinish(self, session):
        for c in self.candidates:
            if c.worker:
                self._retire(c)

    def _reference(self) -> dict:
        if self._reference_ns is None:
            ns = {"__name__": "reference"}
            exec(compile(self.reference_path.read_text(), str(self.reference_path), "exec", dont_inherit=True), ns)
            self._reference_ns = ns
        return self._reference_ns

    def _probes(self, module):
        probes = module_probes(module)
        return module.__name__, "\n\n".join(p.source for p in probes.values())

    # -- outcomes ---------------------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        if "submission" not in getattr(getattr(item, "callspec", None), "params", {}):
            return
        if report.when == "call" or (report.when == "setup" and report.failed):
            exc = call.excinfo.value if call.excinfo else None
            exercise = item.get_closest_marker("exercise").args[0]
            named = ()
            if report.passed:
                output = "passed"
            elif isinstance(exc, AssertionError):
                output = str(exc) or "a check failed"
                if report.when == "call":
                    named = self._diagnose(item, exercise)
            else:
                output = (f"the grader could not check the result: {type(exc).__name__}: {exc} "
                          "(does your function return what the exercise describes?)")
            self.outcomes.append(Outcome(item.callspec.params["submission"], item.originalname, exercise,
                                         report.passed, output, _hint(item.function), named,
                                         round(report.duration, 3)))
