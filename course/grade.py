"""Grading: find the submissions, run each notebook's hidden suite over them, and score the outcomes."""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from course import mistakes, notebooks, sandbox
from course.config import Assignment, Course, Notebook
from course.errors import CourseError
from course.journal import Journal, grading_fingerprint
from course.plugin import Candidate, GradingPlugin

PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:nbval", "--assert=plain",
               "--import-mode=importlib", "-W", "ignore::DeprecationWarning"]


@dataclass
class TestResult:
    name: str
    exercise: str
    score: float
    max_score: float
    output: str
    hint: str = ""
    mistakes: list[str] = field(default_factory=list)  # ids of cataloged mistakes this failure matches
    seconds: float = 0.0                                 # how long the test ran (the slow ones are the trainings)

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass
class NotebookResult:
    student: str
    assignment: str
    notebook: Notebook
    path: Path | None
    tests: list[TestResult] = field(default_factory=list)
    problem: str | None = None          # why nothing could be graded (missing, unreadable)
    load_errors: list[dict] = field(default_factory=list)
    sandboxed: bool = True
    notes: list[str] = field(default_factory=list)  # what the grader noticed and set right (locked cells)
    reused: bool = False  # taken from the journal of an earlier run, not graded again
    diagnosis: dict[str, list[str]] = field(default_factory=dict)  # exercise -> what the mistake looks like

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return sum(e.points for e in self.notebook.auto_exercises)

    def exercise_score(self, exercise_id: str) -> float:
        return round(sum(t.score for t in self.tests if t.exercise == exercise_id), 4)

    def as_json(self, precise: bool = False) -> dict:
        num = (lambda x: x) if precise else (lambda x: round(x, 4))  # noqa: E731
        return {"student": self.student, "assignment": self.assignment, "notebook": self.notebook.name,
                "path": str(self.path) if self.path else None, "score": self.score, "max_score": self.max_score,
                "problem": self.problem, "notes": self.notes, "sandboxed": self.sandboxed,
                "load_errors": self.load_errors, "diagnosis": self.diagnosis,
                "tests": [{"name": t.name, "exercise": t.exercise, "score": num(t.score),
                           "max_score": num(t.max_score), "output": t.output, "hint": t.hint,
                           "mistakes": t.mistakes, "seconds": t.seconds} for t in self.tests]}

    @classmethod
    def from_json(cls, notebook: Notebook, data: dict) -> "NotebookResult":
        result = cls(data["student"], data["assignment"], notebook, Path(data["path"]) if data["path"] else None,
                     problem=data["problem"], load_errors=data["load_errors"], sandboxed=data["sandboxed"],
                     notes=data["notes"], diagnosis=data["diagnosis"])
        result.tests = [TestResult(t["name"], t["exercise"], t["score"], t["max_score"], t["output"], t["hint"],
                                   t["mistakes"], t.get("seconds", 0.0)) for t in data["tests"]]
        return result


# -- finding submissions ------------------------------------------------------------------------------------
def _notebook_for(assignment: Assignment, path: Path) -> Notebook:
    names = {nb.name: nb for nb in assignment.notebooks}
    if path.stem in names:
        return names[path.stem]
    if len(assignment.notebooks) == 1:
        return assignment.notebooks[0]
    raise CourseError(f"{path}: cannot tell which notebook of {assignment.name} this is "
                      f"(name it one of: {', '.join(n + '.ipynb' for n in names)})")


def discover(assignment: Assignment, paths: list[Path]) -> dict[str, dict[str, Path]]:
    """Map student -> notebook name -> file, from files, `<student>/<assignment>/` folders, or a
    `submitted/` tree as nbgrader collects it."""
    found: dict[str, dict[str, Path]] = {}

    def add(student: str, file: Path):
        nb = _notebook_for(assignment, file)
        if nb.name in found.setdefault(student, {}):
            raise CourseError(f"{file}: student {student!r} has two files for {nb.name}: "
                              f"{found[student][nb.name]} and {file}")
        found[student][nb.name] = file

    for path in paths:
        path = Path(path)
        if path.is_file():
            if path.suffix != ".ipynb":
                raise CourseError(f"{path}: not a notebook (expected a .ipynb file)")
            parts = path.resolve().parts
            student = parts[-3] if len(parts) >= 3 and parts[-2] == assignment.name else path.parent.name or "student"
            add(student, path)
        elif path.is_dir():
            direct = sorted(path.glob("*.ipynb"))
            if not direct and (path / assignment.name).is_dir():  # a <student>/ folder
                path = path / assignment.name
                direct = sorted(path.glob("*.ipynb"))
            nested = sorted(path.glob(f"*/{assignment.name}/*.ipynb"))
            if direct:
                student = path.resolve().parent.name if path.name == assignment.name else path.resolve().name
                for f in direct:
                    add(student, f)
            elif nested:
                for f in nested:
                    add(f.parent.parent.name, f)
            else:
                raise CourseError(f"{path}: no notebooks of {assignment.name} found (expected *.ipynb, or "
                                  f"<student>/{assignment.name}/*.ipynb as nbgrader collects them)")
        else:
            raise CourseError(f"{path}: no such file or folder")
    return found


# -- grading -------------------------------------------------------------------------------------------------
def require_isolation(course: Course) -> None:
    """Refuse to run submissions outside the sandbox unless the instructor asked for exactly that."""
    if course.grading.sandboxed:
        problem = sandbox.sandbox_problem()
        if problem:
            raise CourseError(f"cannot grade in a sandbox: {problem}. Grading runs the submissions' code; "
                              "pass --allow-unsandboxed to run it without isolation, at your own risk")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def grade_notebook(course: Course, notebook: Notebook, files: dict[str, Path | None], seed: int,
                   workers: int = 1, journal: Journal | None = None, progress=None) -> list[NotebookResult]:
    """Grade one notebook of many students with its hidden suite: in this process, or split into `workers`
    shards that each run the suite in a process of their own. With a journal, results already graded
    under the same conditions are reused, and each new result is saved the moment it is scored.
    `progress(student, graded)` is called once per student as each result is ready."""
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
        fresh = _grade_in_shards(course, notebook, todo, seed, workers, journal, progress)
    else:
        fresh = _grade_here(course, notebook, todo, seed, journal, fingerprint, progress)
    order = {s: i for i, s in enumerate(files)}
    return sorted([*reused.values(), *fresh], key=lambda r: order[r.student])


def _prepare_data(notebook: Notebook) -> None:
    import coursedata
    for name in notebook.datasets:
        try:
            coursedata.prepare(name)
        except coursedata.DataError as exc:
            raise CourseError(f"dataset {name!r} of {notebook.assignment}/{notebook.name}: {exc}") from None


def _grade_here(course, notebook, files, seed, journal, fingerprint, progress=None) -> list[NotebookResult]:
    paths = notebook.paths(course.root)
    if not paths.release.is_file():
        raise CourseError(f"{paths.release}: not found (run `course release {notebook.assignment}` first)")
    release = notebooks.read(paths.release)
    results, candidates = {}, []

    def finished(result: NotebookResult):
        if journal and result.path is not None:
            journal.save(result, fingerprint)
        if progress:
            progress(result.student, result.problem is None)

    for student, file in files.items():
        result = results[student] = NotebookResult(student, notebook.assignment, notebook, file,
                                                   sandboxed=course.grading.sandboxed)
        if file is None:
            result.problem = f"{notebook.name}.ipynb was not submitted"
            finished(result)
            continue
        try:
            cells = _prepare(notebooks.read(file), release, notebook, result)
        except CourseError as exc:
            result.problem = str(exc)
        if result.problem:
            finished(result)
        else:
            candidates.append(Candidate(student, cells))
    if candidates:
        catalog = mistakes.load(notebook, paths.mistakes)

        def scored(candidate: Candidate, outcomes):
            result = results[candidate.id]
            _score(notebook, candidate, outcomes, result)
            result.diagnosis = _diagnosis(result, {m.id: m.says for m in catalog})
            finished(result)

        plugin = GradingPlugin(notebook, candidates, paths.reference, course.grading, seed, on_done=scored,
                               mistakes=catalog)
        code = pytest.main([str(paths.suite), "--rootdir", str(course.root), "--confcutdir", str(course.root / "autograder"),
                            "-c", str(Path(__file__).with_name("suite.ini")), *PYTEST_ARGS], plugins=[plugin])
        if plugin.problems:
            raise CourseError(plugin.problems[0])
        if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            raise CourseError(f"{paths.suite}: the hidden suite did not run (pytest exit status {int(code)})")
    return list(results.values())


def _prepare(nb, release, notebook: Notebook, result: NotebookResult):
    """The cells to run for one submission, with locked cells as released; None when it cannot be graded."""
    if not notebooks.belongs_to(nb, release):
        result.problem = (f"this is not {notebook.assignment}'s {notebook.name}: none of its exercise cells are "
                          "there (a notebook from another assignment?)")
        return None
    changed = notebooks.tampering(nb, release)
    if changed:
        result.notes.append("locked cells were deleted or changed and are graded as released: "
                            + ", ".join(changed))
    return notebooks.cells_to_run(notebooks.restore_locked(nb, release))


def _die_with_parent():
    """A shard must not outlive the grader that started it (a batch stopped with Ctrl-C or kill)."""
    import ctypes
    import signal
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _grade_shard(course, notebook, files, seed, journal, events):
    report = functools.partial(_put, events) if events is not None else None
    return grade_notebook(course, notebook, files, seed, workers=1, journal=journal, progress=report)


def _put(queue, student, graded):
    queue.put((student, graded))


def _relay(queue, progress):
    """In the grader: pass the shards' progress events on until the closing None."""
    while (event := queue.get()) is not None:
        progress(*event)


def _grade_in_shards(course, notebook, files, seed, shards, journal, progress=None):
    students = [s for s, f in files.items() if f is not None] + [s for s, f in files.items() if f is None]
    shards = min(shards, sum(f is not None for f in files.values()))
    parts = [{s: files[s] for s in students[i::shards]} for i in range(shards)]
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        events = relay = None
        if progress:
            events = stack.enter_context(context.Manager()).Queue()
            relay = threading.Thread(target=_relay, args=(events, progress), daemon=True)
            relay.start()
        pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(shards, mp_context=context,
                                                                          initializer=_die_with_parent))
        try:
            done = pool.map(_grade_shard, [course] * shards, [notebook] * shards, parts, [seed] * shards,
                            [journal] * shards, [events] * shards)
            return [r for part in done for r in part]
        finally:
            if relay:
                events.put(None)
                relay.join()


def _score(notebook: Notebook, candidate: Candidate, outcomes, result: NotebookResult):
    """A submission's points: each exercise's points shared equally among its tests."""
    # errors of the student's own cells; the rest only follow from them
    result.load_errors = [e for e in candidate.load_errors if notebooks.is_solution_label(e["cell"])]
    per_exercise: dict[str, int] = {}
    for o in outcomes:
        per_exercise[o.exercise] = per_exercise.get(o.exercise, 0) + 1
    points = {e.id: e.points for e in notebook.auto_exercises}
    for o in outcomes:
        share = points[o.exercise] / per_exercise[o.exercise]
        result.tests.append(TestResult(o.test, o.exercise, share if o.passed else 0.0, share,
                                       o.output, "" if o.passed else o.hint, list(o.mistakes), o.seconds))


def _diagnosis(result: NotebookResult, says: dict[str, str]) -> dict[str, list[str]]:
    """Per exercise, the cataloged mistakes that every failure matched by some mistake agrees on. (A
    failure that no mistake matches, a timing test for one, does not veto the others.)"""
    out = {}
    for ex in {t.exercise for t in result.tests if not t.passed}:
        matched = [set(t.mistakes) for t in result.tests if t.exercise == ex and not t.passed and t.mistakes]
        common = set.intersection(*matched) if matched else set()
        if common:
            out[ex] = [says[m] for m in sorted(common)]
    return out


def default_seed(course: Course, assignment: Assignment) -> int:
    """The same inputs every time an assignment is graded, so that grading twice gives the same result."""
    return zlib.crc32(f"{course.id}/{assignment.name}".encode()) % (2**31)


def grade(course: Course, assignment: Assignment, submissions: dict[str, dict[str, Path]],
          seed: int | None = None, workers: int = 1, journal: Journal | None = None,
          progress=None, only_submitted: bool = False) -> list[list[NotebookResult]]:
    """Grade every student's notebooks; returns one list of notebook results per student.
    `progress(student, graded)` is called once per notebook result (graded False: it could not be).
    only_submitted: leave out the notebooks nobody submitted (a learner checking one notebook of a week)."""
    require_isolation(course)
    seed = default_seed(course, assignment) if seed is None else seed
    by_student: dict[str, list[NotebookResult]] = {s: [] for s in submissions}
    for notebook in assignment.notebooks:
        files = {s: nbs.get(notebook.name) for s, nbs in submissions.items()}
        if only_submitted and not any(files.values()):
            continue
        for result in grade_notebook(course, notebook, files, seed, workers, journal, progress):
            by_student[result.student].append(result)
    return list(by_student.values())
