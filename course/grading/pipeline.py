"""The grading service: what `course grade`, `course check`, the demo, the audit and the Gradescope runner
all call.

The path of one assignment, in order:

1. `isolate` applies the isolation policy: grading refuses without a sandbox, a learner's own check falls
   back to a plain process with a note, `--allow-unsandboxed` turns it off.
2. `grade` takes the notebooks one at a time; for each, `grade_notebook` reuses what the journal already
   holds, prepares the notebook's datasets, and grades the rest here or in shards (one process each).
3. `run_suite` is the one place a hidden suite runs: each submission is prepared (`submissions.prepare`),
   pytest runs the suite with the `GradingPlugin`, and each result is scored, named and saved the moment
   its last test has run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from course import catalog, notebooks
from course.config import Assignment, Course, Notebook
from course.errors import CourseError
from course.grading import diagnosis
from course.grading.journal import Journal, grading_fingerprint
from course.grading.plugin import GradingPlugin
from course.grading.pool import Candidate, Focus, WorkerLike, WorkerPool
from course.grading.references import References
from course.grading.results import NotebookResult, TestResult
from course.grading.submissions import Submissions, not_submitted, prepare
from course.sandbox import launch
from course.sandbox.client import Worker

PYTEST_ARGS = [
    "-p",
    "no:cacheprovider",
    "-p",
    "no:terminal",
    "-p",
    "no:nbval",
    "-p",
    "no:xdist",  # where pytest-xdist is installed (the course's own tests): a hidden suite runs in one process
    "--assert=plain",
    "--import-mode=importlib",
    "-W",
    "ignore::DeprecationWarning",
]

Isolation = Literal["required", "preferred", "container", "off"]
Progress = Callable[[str, bool], None]  # progress(student, graded) once per notebook result


@dataclass(frozen=True)
class GradingOptions:
    isolation: Isolation = "required"  # required: refuse without a sandbox; preferred: fall back, with a
    #   note (a learner's own code); container: where no sandbox starts, a container that holds one submission
    #   (Gradescope's) is the boundary, with its code run as a user of its own; off: --allow-unsandboxed
    seed: int | None = None  # None: the seed fixed per assignment
    workers: int = 1
    journal: bool = False  # keep each result in autograded/ and reuse it while nothing it depends on changed
    regrade: bool = False  # with the journal: grade again even what was graded before
    only_submitted: bool = False  # leave out the notebooks nobody submitted (a learner checking one notebook)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def default_seed(course: Course, assignment: Assignment) -> int:
    """The same inputs every time an assignment is graded, so that grading twice gives the same result."""
    return zlib.crc32(f"{course.id}/{assignment.name}".encode()) % (2**31)


def seed_for(course: Course, assignment: Assignment, options: GradingOptions) -> int:
    return default_seed(course, assignment) if options.seed is None else options.seed


def isolate(course: Course, policy: Isolation) -> tuple[Course, str | None]:
    """The course as it will be graded under the isolation policy, and a note to show when grading falls
    back to a plain process. Refuses (CourseError) when a sandbox is required and none can start."""
    if policy == "off" or not course.grading.sandboxed:
        return _unsandboxed(course), None
    problem = launch.sandbox_problem()
    if not problem:
        return course, None
    if policy == "preferred":
        # a learner checking their own notebook runs their own code: no sandbox needed, but say so
        return _unsandboxed(course), f"note: no sandbox here ({problem}); your notebook runs as a plain process\n"
    if policy == "container" and launch.container_problem() is None:
        grading = dataclasses.replace(course.grading, sandboxed=False, container=True)
        return dataclasses.replace(course, grading=grading), (
            f"note: no sandbox here ({problem}); the container is the boundary: the submission runs as a user of "
            "its own that cannot read the course's sources\n"
        )
    raise CourseError(
        f"cannot grade in a sandbox: {problem}. Grading runs the submissions' code; "
        "pass --allow-unsandboxed to run it without isolation, at your own risk"
    )


def _unsandboxed(course: Course) -> Course:
    return dataclasses.replace(course, grading=dataclasses.replace(course.grading, sandboxed=False))


def grade(
    course: Course,
    assignment: Assignment,
    submissions: Submissions,
    options: GradingOptions = GradingOptions(),
    progress: Progress | None = None,
    say: Callable[[str], None] = print,
) -> list[list[NotebookResult]]:
    """Grade every student's notebooks; returns one list of notebook results per student."""
    notebooks.check_description(course, assignment)
    course, note = isolate(course, options.isolation)
    if note:
        say(note)
    seed = seed_for(course, assignment, options)
    journal = Journal(course.files, reuse=not options.regrade) if options.journal else None
    by_student: dict[str, list[NotebookResult]] = {s: [] for s in submissions}
    for notebook in assignment.notebooks:
        files = {s: nbs.get(notebook.name) for s, nbs in submissions.items()}
        if options.only_submitted and not any(files.values()):
            continue
        for result in grade_notebook(course, notebook, files, seed, options.workers, journal, progress):
            by_student[result.student].append(result)
    return list(by_student.values())


def saved(
    course: Course, assignment: Assignment, submissions: Submissions, options: GradingOptions = GradingOptions()
) -> tuple[list[list[NotebookResult]], list[str]]:
    """The results the journal holds for these submissions, graded from their present bytes under the present
    suite, reference, release, limits and seed (what the shards of a class wrote), without grading anything;
    and `student/notebook` for each submitted notebook that has none yet."""
    seed = seed_for(course, assignment, options)
    journal = Journal(course.files)
    by_student: dict[str, list[NotebookResult]] = {s: [] for s in submissions}
    missing = []
    for notebook in assignment.notebooks:
        fingerprint = grading_fingerprint(course, notebook, seed)
        for student, nbs in submissions.items():
            file = nbs.get(notebook.name)
            if file is None:
                result = NotebookResult(student, assignment.name, notebook, None, problem=not_submitted(notebook))
            elif (found := journal.load(notebook, student, file, fingerprint)) is not None:
                result = found
            else:
                missing.append(f"{student}/{notebook.name}")
                continue
            by_student[student].append(result)
    return list(by_student.values()), missing


def grade_notebook(
    course: Course,
    notebook: Notebook,
    files: dict[str, Path | None],
    seed: int,
    workers: int = 1,
    journal: Journal | None = None,
    progress: Progress | None = None,
    focus: dict[str, Focus] | None = None,
) -> list[NotebookResult]:
    """Grade one notebook of many students with its hidden suite: in this process, or split into `workers`
    shards that each run the suite in a process of their own. With a journal, results already graded
    under the same conditions are reused, and each new result is saved the moment it is scored. `focus`
    (the audit's) says, per notebook, which tests run and whether they are traced."""
    fingerprint = grading_fingerprint(course, notebook, seed) if journal else ""
    reused = {}
    if journal:
        for student, file in files.items():
            if file is not None and (done := journal.load(notebook, student, file, fingerprint)):
                reused[student] = done
                if progress:
                    progress(student, done.problem is None)
    todo = {s: f for s, f in files.items() if s not in reused}
    _prepare_data(notebook)
    if workers > 1 and sum(f is not None for f in todo.values()) > 1:
        fresh = _run_in_shards(course, notebook, todo, seed, workers, journal, fingerprint, progress, focus)
    else:
        fresh = run_suite(course, notebook, todo, seed, journal, fingerprint, progress, focus=focus)
    order = {s: i for i, s in enumerate(files)}
    return sorted([*reused.values(), *fresh], key=lambda r: order[r.student])


def _prepare_data(notebook: Notebook) -> None:
    import coursedata

    for name in notebook.datasets:
        try:
            coursedata.prepare(name)
        except coursedata.DataError as exc:
            raise CourseError(f"dataset {name!r} of {notebook.assignment}/{notebook.name}: {exc}") from None


def run_suite(
    course: Course,
    notebook: Notebook,
    files: dict[str, Path | None],
    seed: int,
    journal: Journal | None = None,
    fingerprint: str = "",
    progress: Progress | None = None,
    start: Callable[[Candidate], WorkerLike] | None = None,
    focus: dict[str, Focus] | None = None,
) -> list[NotebookResult]:
    """Run the notebook's hidden suite over these submissions (None: not submitted)."""
    paths = course.paths(notebook)
    if not paths.release.is_file():
        raise CourseError(f"{paths.release}: not found (run `course release {notebook.assignment}` first)")
    release = notebooks.read(paths.release)
    results: dict[str, NotebookResult] = {}
    candidates = []

    def finished(result: NotebookResult) -> None:
        if journal and result.path is not None:
            journal.save(result, fingerprint)
        if progress:
            progress(result.student, result.problem is None)

    for student, file in files.items():
        prepared = prepare(file, release, notebook)
        result = results[student] = NotebookResult(
            student,
            notebook.assignment,
            notebook,
            file,
            problem=prepared.problem,
            notes=prepared.notes,
            sandboxed=course.grading.sandboxed,
        )
        if prepared.problem:
            finished(result)
        else:
            candidates.append(Candidate(student, prepared.cells, focus=(focus or {}).get(student, Focus())))
    if not candidates:
        return list(results.values())

    mistakes = catalog.load(notebook, paths.mistakes)

    def scored(candidate: Candidate, tests: list[TestResult]) -> None:
        result = results[candidate.id]
        # errors of the student's own cells; the rest only follow from them
        result.load_errors = [e for e in candidate.load_errors if notebooks.is_solution_label(e["cell"])]
        result.tests = tests
        result.isolation, result.bound, result.memory_peak_mb = candidate.isolation, candidate.bound, candidate.peak_mb
        result.diagnosis = diagnosis.per_exercise(result, mistakes)
        finished(result)

    grading = course.grading
    references = References(paths.reference)
    pool = WorkerPool(candidates, start or _start_worker(course))
    plugin = GradingPlugin(
        notebook,
        candidates,
        pool,
        references,
        grading,
        seed,
        on_done=scored,
        namer=diagnosis.MistakeNamer(mistakes, references, grading.test_timeout),
    )
    sys.modules.pop("probes", None)  # the shared probes of this course, not of one graded before
    before = set(sys.modules)
    code = pytest.main(
        [
            str(paths.suite),
            "--rootdir",
            str(course.root),
            "--confcutdir",
            str(course.files.autograder),
            "-c",
            str(Path(__file__).with_name("suite.ini")),
            "-o",
            f"pythonpath={course.files.autograder}",
            *PYTEST_ARGS,
        ],
        plugins=[plugin],
    )
    # pytest (--import-mode=importlib) would hand the next run in this process the suite modules of this one,
    # whatever course directory or suite file that run grades
    for name in set(sys.modules) - before:
        if _within(getattr(sys.modules[name], "__file__", None), course.files.autograder):
            del sys.modules[name]
    if plugin.problems:
        raise CourseError(plugin.problems[0])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise CourseError(f"{paths.suite}: the hidden suite did not run (pytest exit status {int(code)})")
    return list(results.values())


def _within(file: str | None, folder: Path) -> bool:
    return file is not None and Path(file).resolve().is_relative_to(folder.resolve())


def _start_worker(course: Course) -> Callable[[Candidate], WorkerLike]:
    grading = course.grading

    isolation = (
        launch.FORK_SERVER if grading.sandboxed else launch.CONTAINER if grading.container else launch.UNSANDBOXED
    )

    def start(c: Candidate) -> WorkerLike:
        worker = Worker(c.cells, grading.limits, grading.notebook_timeout, isolation)
        worker.start()
        return worker

    return start


# -- shards: one process each, a share of the students --------------------------------------------------------
def _die_with_parent() -> None:
    """A shard must not outlive the grader that started it (a batch stopped with Ctrl-C or kill)."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _shard(
    course: Course,
    notebook: Notebook,
    files: dict[str, Path | None],
    seed: int,
    journal: Journal | None,
    fingerprint: str,
    events: queue.Queue[Any] | None,
    focus: dict[str, Focus] | None = None,
) -> list[dict[str, Any]]:
    def report(student: str, graded: bool) -> None:
        assert events is not None
        events.put((student, graded))

    progress = report if events is not None else None
    results = run_suite(course, notebook, files, seed, journal, fingerprint, progress, focus=focus)
    return [r.as_json(precise=True) for r in results]


def _relay(events: queue.Queue[Any], progress: Progress) -> None:
    """In the grader: pass the shards' progress events on until the closing None."""
    while (event := events.get()) is not None:
        progress(*event)


def _run_in_shards(
    course: Course,
    notebook: Notebook,
    files: dict[str, Path | None],
    seed: int,
    shards: int,
    journal: Journal | None,
    fingerprint: str,
    progress: Progress | None,
    focus: dict[str, Focus] | None = None,
) -> list[NotebookResult]:
    students = [s for s, f in files.items() if f is not None] + [s for s, f in files.items() if f is None]
    shards = min(shards, sum(f is not None for f in files.values()))
    parts = [{s: files[s] for s in students[i::shards]} for i in range(shards)]
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        events: queue.Queue[Any] | None = None
        relay = None
        if progress:
            events = stack.enter_context(context.Manager()).Queue()
            relay = threading.Thread(target=_relay, args=(events, progress), daemon=True)
            relay.start()
        pool = stack.enter_context(
            concurrent.futures.ProcessPoolExecutor(shards - 1, mp_context=context, initializer=_die_with_parent)
        )
        try:
            others = [
                pool.submit(_shard, course, notebook, part, seed, journal, fingerprint, events, focus)
                for part in parts[1:]
            ]
            # the first share is graded here: this process has imported torch and started its fork server
            # already, or will reuse them for the next notebook; a new process pays both again
            here_progress = progress if events is None else lambda s, graded: events.put((s, graded))
            here = run_suite(course, notebook, parts[0], seed, journal, fingerprint, here_progress, focus=focus)
            return here + [NotebookResult.from_json(notebook, data) for f in others for data in f.result()]
        finally:
            if relay and events is not None:
                events.put(None)
                relay.join()
