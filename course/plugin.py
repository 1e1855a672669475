"""The pytest plugin that grades submissions with a hidden suite.

It parametrizes every test by submission, orders the tests submission by submission so that only one or
two workers are alive at a time, gives tests the `student`, `reference` and `seed` fixtures, and records
each outcome with the message a student will read.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import pytest

from course.protocol import from_plain, to_plain
from course.runner import StudentError, Worker
from course.testing import module_probes
from course.worker import Notebook as NotebookView


@dataclass
class Outcome:
    submission: str
    test: str
    exercise: str
    passed: bool
    output: str
    hint: str


@dataclass
class Candidate:
    """One notebook to grade: an id (the student), and the code cells the grader runs."""
    id: str
    cells: list
    worker: Worker | None = None
    load_errors: list = field(default_factory=list)


def _hint(fn) -> str:
    doc = (fn.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


class GradingPlugin:
    def __init__(self, notebook, candidates: list[Candidate], reference_path, grading, seed: int,
                 prefetch: int = 1, on_done=None):
        self.notebook = notebook
        self.candidates = candidates
        self.by_id = {c.id: i for i, c in enumerate(candidates)}
        self.reference_path = reference_path
        self.grading = grading
        self.base_seed = seed
        self.prefetch = prefetch
        self.on_done = on_done  # called with (candidate, its outcomes) once all its tests have run
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

        def run(probe, timeout=None, **kwargs):
            return worker.call(key, source, probe.name, kwargs, timeout or self.grading.test_timeout)
        return run

    @pytest.fixture
    def reference(self, request):
        namespace = NotebookView(self._reference())
        key, source = self._probes(request.module)
        space = self._probe_spaces.setdefault(key, {})
        if not space:
            space["__name__"] = "probes"
            exec(compile(source, "<probes>", "exec"), space)

        def run(probe, timeout=None, **kwargs):
            cache_key = (key, probe.name, json.dumps(kwargs, sort_keys=True, default=repr))
            if cache_key not in self._reference_cache:
                arrays = []
                plain = to_plain(space[probe.name](namespace, **kwargs), arrays)
                self._reference_cache[cache_key] = (plain, arrays)
            plain, arrays = self._reference_cache[cache_key]
            return from_plain(plain, [a.copy() for a in arrays])
        return run

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
            exec(compile(self.reference_path.read_text(), str(self.reference_path), "exec"), ns)
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
            if report.passed:
                output = "passed"
            elif isinstance(exc, AssertionError):
                output = str(exc) or "a check failed"
            else:
                output = (f"the grader could not check the result: {type(exc).__name__}: {exc} "
                          "(does your function return what the exercise describes?)")
            self.outcomes.append(Outcome(item.callspec.params["submission"], item.originalname,
                                         item.get_closest_marker("exercise").args[0], report.passed,
                                         output, _hint(item.function)))
