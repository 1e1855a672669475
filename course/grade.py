"""Grading: find the submissions, run each notebook's hidden suite over them, and score the outcomes."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from course import notebooks
from course.config import Assignment, Course, Notebook
from course.errors import CourseError
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

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return sum(e.points for e in self.notebook.auto_exercises)

    def exercise_score(self, exercise_id: str) -> float:
        return round(sum(t.score for t in self.tests if t.exercise == exercise_id), 4)

    def as_json(self) -> dict:
        return {"student": self.student, "assignment": self.assignment, "notebook": self.notebook.name,
                "path": str(self.path) if self.path else None, "score": self.score, "max_score": self.max_score,
                "problem": self.problem,
                "tests": [{"name": t.name, "exercise": t.exercise, "score": round(t.score, 4),
                           "max_score": round(t.max_score, 4), "output": t.output} for t in self.tests]}


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
def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def grade_notebook(course: Course, notebook: Notebook, files: dict[str, Path | None], seed: int,
                   workers: int = 1) -> list[NotebookResult]:
    """Grade one notebook of many students with its hidden suite: in this process, or split into `workers`
    shards that each run the suite in a process of their own."""
    graded = [s for s, f in files.items() if f is not None]
    if workers > 1 and len(graded) > 1:
        return _grade_in_shards(course, notebook, files, seed, min(workers, len(graded)))
    paths = notebook.paths(course.root)
    results, candidates = {}, []
    for student, file in files.items():
        result = results[student] = NotebookResult(student, notebook.assignment, notebook, file)
        if file is None:
            result.problem = f"{notebook.name}.ipynb was not submitted"
            continue
        try:
            candidates.append(Candidate(student, notebooks.cells_to_run(notebooks.read(file))))
        except CourseError as exc:
            result.problem = str(exc)
    if candidates:
        plugin = GradingPlugin(notebook, candidates, paths.reference, course.grading, seed)
        code = pytest.main([str(paths.suite), "--rootdir", str(course.root), "--confcutdir", str(course.root / "autograder"),
                            "-c", str(Path(__file__).with_name("suite.ini")), *PYTEST_ARGS], plugins=[plugin])
        if plugin.problems:
            raise CourseError(plugin.problems[0])
        if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            raise CourseError(f"{paths.suite}: the hidden suite did not run (pytest exit status {int(code)})")
        _score(notebook, plugin, results)
    return list(results.values())


def _grade_shard(course, notebook, files, seed):
    return grade_notebook(course, notebook, files, seed, workers=1)


def _grade_in_shards(course, notebook, files, seed, shards):
    students = list(files)
    parts = [{s: files[s] for s in students[i::shards]} for i in range(shards)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(shards, mp_context=context) as pool:
        done = list(pool.map(_grade_shard, [course] * shards, [notebook] * shards, parts, [seed] * shards))
    order = {s: i for i, s in enumerate(students)}
    return sorted((r for part in done for r in part), key=lambda r: order[r.student])


def _score(notebook: Notebook, plugin: GradingPlugin, results: dict[str, NotebookResult]):
    for c in plugin.candidates:  # errors of the student's own cells; the rest only follow from them
        results[c.id].load_errors = [e for e in c.load_errors if notebooks.is_solution_label(e["cell"])]
    per_exercise: dict[str, set[str]] = {}
    for o in plugin.outcomes:
        per_exercise.setdefault(o.exercise, set()).add(o.test)
    points = {e.id: e.points for e in notebook.auto_exercises}
    for o in plugin.outcomes:
        share = points[o.exercise] / len(per_exercise[o.exercise])
        results[o.submission].tests.append(TestResult(o.test, o.exercise, share if o.passed else 0.0, share,
                                                      o.output, "" if o.passed else o.hint))


def grade(course: Course, assignment: Assignment, submissions: dict[str, dict[str, Path]],
          seed: int | None = None, workers: int = 1) -> list[list[NotebookResult]]:
    """Grade every student's notebooks; returns one list of notebook results per student."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    by_student: dict[str, list[NotebookResult]] = {s: [] for s in submissions}
    for notebook in assignment.notebooks:
        files = {s: nbs.get(notebook.name) for s, nbs in submissions.items()}
        for result in grade_notebook(course, notebook, files, seed, workers):
            by_student[result.student].append(result)
    return list(by_student.values())
