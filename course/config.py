"""course.yaml: the one description of the course, checked on load.

Every problem is reported as `FILE: KEY: what was expected, what was found`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from course.errors import CourseError
from course.files import CourseFiles, NotebookPaths


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded (course.yaml's `grading` section)."""

    cpu_seconds: int
    memory_mb: int
    processes: int
    file_size_mb: int
    open_files: int
    scratch_mb: int = 256


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    points: float
    manual: bool = False
    # graded by what the submission achieves (an architecture of the student's own within a budget), not by
    # answers equal to the reference's: a mutant of its reference that keeps full marks is another design
    open_design: bool = False


@dataclass(frozen=True)
class Notebook:
    name: str
    title: str
    assignment: str
    exercises: tuple[Exercise, ...]
    datasets: tuple[str, ...] = ()

    @property
    def auto_exercises(self) -> tuple[Exercise, ...]:
        return tuple(e for e in self.exercises if not e.manual)


@dataclass(frozen=True)
class Assignment:
    name: str
    title: str
    notebooks: tuple[Notebook, ...]

    def notebook(self, name: str) -> Notebook:
        for nb in self.notebooks:
            if nb.name == name:
                return nb
        raise CourseError(
            f"assignment {self.name} has no notebook {name!r} (it has: {', '.join(n.name for n in self.notebooks)})"
        )


@dataclass(frozen=True)
class Grading:
    notebook_timeout: float
    test_timeout: float  # the most one probe may take, unless its test asks for more
    limits: Limits
    sandboxed: bool = True  # False only when an instructor passes --allow-unsandboxed ...
    container: bool = False  # ... or when a container (Gradescope's) is the boundary: see pipeline.isolate
    time_factor: float = 10.0  # a probe may take this many times what the reference took on it ...
    time_floor: float = 2.0  # ... and never less than this (seconds), never more than its test's limit

    def time_limit(self, reference_seconds: float | None, ceiling: float | None = None) -> float:
        """How long the student's code may take on a probe that the reference ran in `reference_seconds`."""
        most = ceiling or self.test_timeout
        if reference_seconds is None:
            return most
        return min(most, max(self.time_floor, self.time_factor * reference_seconds))


@dataclass(frozen=True)
class Course:
    root: Path
    id: str
    title: str
    grading: Grading
    assignments: dict[str, Assignment] = field(default_factory=dict)

    @property
    def files(self) -> CourseFiles:
        """Where everything of this course directory lives."""
        return CourseFiles(self.root)

    def paths(self, notebook: Notebook) -> NotebookPaths:
        """The files of one notebook, one per layer."""
        return self.files.notebook(notebook.assignment, notebook.name)

    def assignment(self, name: str) -> Assignment:
        try:
            return self.assignments[name]
        except KeyError:
            raise CourseError(
                f"no assignment {name!r} in {self.root / 'course.yaml'} (it has: {', '.join(self.assignments)})"
            ) from None


class _Reader:
    """Walks the parsed YAML and raises a CourseError naming the file and key on the first problem."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, key: str, expected: str, found: Any) -> NoReturn:
        shown = "nothing" if found is _MISSING else f"{found!r}"
        raise CourseError(f"{self.file}: {key}: expected {expected}, found {shown}")

    def mapping(self, data: Any, key: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail(key or "top level", "a mapping", data)
        for k in data:
            if k not in allowed:
                self.fail(f"{key}.{k}" if key else str(k), f"one of the keys {sorted(allowed)}", k)
        for k in required:
            if k not in data:
                self.fail(f"{key}.{k}" if key else k, "a value", _MISSING)
        return data

    def get(self, data: dict[str, Any], name: str, key: str, kind: Any, expected: str, default: Any = None) -> Any:
        full = f"{key}.{name}" if key else name
        value = data.get(name, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.fail(full, expected, value if name in data else _MISSING)
        return value


_MISSING = object()

_GRADING_DEFAULTS = {
    "notebook_timeout": 120,
    "test_timeout": 30,
    "cpu_seconds": 1800,
    "memory_mb": 6144,
    "processes": 256,
    "file_size_mb": 64,
    "open_files": 512,
    "scratch_mb": 256,
    "time_factor": 10,
    "time_floor": 2,
}


def yaml_problem(file: Path, exc: yaml.YAMLError) -> str:
    """`FILE:LINE:COLUMN: not valid YAML (what the parser says)`: the place of the error, not only its kind."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
    what = " ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])) or str(exc)
    return f"{where}: not valid YAML ({what.splitlines()[0]})"


def find_root(start: Path | None = None, fallback: bool = True) -> Path:
    """The course folder: $COURSE_ROOT, else the first folder from `start` (the current one) upwards that
    holds a course.yaml. Elsewhere, with `fallback`, the repository of the `course` command itself (a learner
    checking a notebook kept outside it); without, a CourseError: grading, releasing and exporting write into
    the course folder, and must not write into another one."""
    if os.environ.get("COURSE_ROOT"):
        return Path(os.environ["COURSE_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "course.yaml").is_file():
            return d
    if not fallback:
        raise CourseError(
            f"{here}: not inside a course folder (no course.yaml here or above); run `course` in the course "
            "folder, or set COURSE_ROOT to it"
        )
    return Path(__file__).resolve().parent.parent


def load(root: Path | None = None) -> Course:
    root = root or find_root()
    file = root / "course.yaml"
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise CourseError(f"{file}: not found (run `course` inside the course repository)") from None
    except yaml.YAMLError as exc:
        raise CourseError(yaml_problem(file, exc)) from None
    r = _Reader(file)
    r.mapping(data, "", {"course", "grading", "assignments"}, {"course", "assignments"})
    meta = r.mapping(data["course"], "course", {"id", "title"}, {"id", "title"})
    grading = r.mapping(data.get("grading") or {}, "grading", set(_GRADING_DEFAULTS), set())
    g = {k: r.get(grading, k, "grading", (int, float), "a positive number", v) for k, v in _GRADING_DEFAULTS.items()}
    for k, v in g.items():
        if v <= 0:
            r.fail(f"grading.{k}", "a positive number", v)
    known_data = _registered_datasets(root)
    assignments = {}
    if not isinstance(data["assignments"], dict) or not data["assignments"]:
        r.fail("assignments", "a mapping of assignment names", data["assignments"])
    for aname, adata in data["assignments"].items():
        akey = f"assignments.{aname}"
        r.mapping(adata, akey, {"title", "notebooks"}, {"title", "notebooks"})
        if not isinstance(adata["notebooks"], list) or not adata["notebooks"]:
            r.fail(f"{akey}.notebooks", "a list of notebooks", adata["notebooks"])
        notebooks = []
        for i, ndata in enumerate(adata["notebooks"]):
            nkey = f"{akey}.notebooks[{i}]"
            r.mapping(ndata, nkey, {"name", "title", "datasets", "exercises"}, {"name", "title", "exercises"})
            used = ndata.get("datasets") or []
            if not isinstance(used, list):
                r.fail(f"{nkey}.datasets", "a list of dataset names", used)
            for d in used:
                if d not in known_data:
                    r.fail(
                        f"{nkey}.datasets",
                        f"names registered in datasets/registry.yaml ({', '.join(sorted(known_data))})",
                        d,
                    )
            if not isinstance(ndata["exercises"], list) or not ndata["exercises"]:
                r.fail(f"{nkey}.exercises", "a list of exercises", ndata["exercises"])
            exercises: list[Exercise] = []
            for j, edata in enumerate(ndata["exercises"]):
                ekey = f"{nkey}.exercises[{j}]"
                r.mapping(edata, ekey, {"id", "title", "points", "manual", "open_design"}, {"id", "title", "points"})
                ex = Exercise(
                    id=r.get(edata, "id", ekey, str, "an identifier"),
                    title=r.get(edata, "title", ekey, str, "a title"),
                    points=float(r.get(edata, "points", ekey, (int, float), "a number of points")),
                    manual=r.get(edata, "manual", ekey, bool, "true or false", False),
                    open_design=r.get(edata, "open_design", ekey, bool, "true or false", False),
                )
                if ex.points <= 0:
                    r.fail(f"{ekey}.points", "a positive number of points", ex.points)
                if ex.id in {e.id for e in exercises}:
                    r.fail(f"{ekey}.id", "an id not used before in this notebook", ex.id)
                exercises.append(ex)
            notebooks.append(
                Notebook(
                    name=r.get(ndata, "name", nkey, str, "a notebook name"),
                    title=r.get(ndata, "title", nkey, str, "a title"),
                    assignment=aname,
                    exercises=tuple(exercises),
                    datasets=tuple(used),
                )
            )
        assignments[aname] = Assignment(aname, r.get(adata, "title", akey, str, "a title"), tuple(notebooks))
    limits = Limits(
        **{k: int(g[k]) for k in ("cpu_seconds", "memory_mb", "processes", "file_size_mb", "open_files", "scratch_mb")}
    )
    return Course(
        root=root,
        id=r.get(meta, "id", "course", str, "an identifier"),
        title=r.get(meta, "title", "course", str, "a title"),
        grading=Grading(
            float(g["notebook_timeout"]),
            float(g["test_timeout"]),
            limits,
            time_factor=float(g["time_factor"]),
            time_floor=float(g["time_floor"]),
        ),
        assignments=assignments,
    )


def _registered_datasets(root: Path) -> set[str]:
    registry = root / "datasets" / "registry.yaml"
    if not registry.is_file():
        return set()
    data = yaml.safe_load(registry.read_text()) or {}
    return set(data.get("datasets", {}))
