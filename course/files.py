"""The course directory's layout: every path the tooling reads or writes comes from `CourseFiles`.

The directory is an nbgrader course directory with the course's own layers beside nbgrader's:

    course.yaml                          the description of the course
    source/<A>/<NB>.ipynb                instructor notebooks (nbgrader source)
    release/<A>/<NB>.ipynb               student notebooks, made by `course release`
    solutions/<A>/<NB>.py                references, in regions that become the solution cells
    autograder/<A>/test_<NB>.py          hidden suites
    autograder/<A>/mistakes/<NB>.yaml    cataloged mistakes
    autograder/<A>/alternatives/<NB>.yaml  correct alternatives
    autograder/<A>/equivalent/<NB>.yaml    mutants of the reference reviewed as equivalent to it
    autograder/<A>/requirements/<NB>.yaml  what the notebook asks, and the hidden tests that check it
    datasets/                            the data registry and its loaders
    submitted/<S>/<A>/                   what nbgrader collected
    autograded/<S>/<A>/<NB>.ipynb        the submission with the hidden tests' results, for formgrader
    autograded/<S>/<A>/<NB>.result.json  the graded result, reused while nothing it depends on changes
    reports/<S>/<A>/<NB>.html            the report page a student reads
    reports/index.html                   every report page, by student (for the instructor)
    reports/_class/<A>/                  the class report: index.html, its plots and class.csv
    reports/_class/<A>/similarity/       the similarity report: index.html and pairs.csv
    feedback/                            nbgrader's generate_feedback output
    gradebook.db                         nbgrader's gradebook (SQLite, unless a database URL is given)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part. The file gets
    the mode a plain open() would give it (0644 under the usual umask), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclass(frozen=True)
class NotebookPaths:
    """The files of one notebook, one per layer."""

    source: Path
    release: Path
    reference: Path
    suite: Path
    mistakes: Path
    alternatives: Path
    equivalent: Path  # the reviewed mutants of the reference that behave as it does
    requirements: Path  # what the notebook asks, in its words, and the hidden tests that check each


@dataclass(frozen=True)
class CourseFiles:
    root: Path

    # -- the course's own layers --------------------------------------------------------------------------
    @property
    def tooling(self) -> Path:
        """The repository of the `course` command itself (its requirements, its pyproject.toml)."""
        return Path(__file__).resolve().parent.parent

    @property
    def course_yaml(self) -> Path:
        return self.root / "course.yaml"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def autograder(self) -> Path:
        return self.root / "autograder"

    @property
    def shared_probes(self) -> Path:
        return self.autograder / "probes.py"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def registry(self) -> Path:
        return self.datasets / "registry.yaml"

    def release_dir(self, assignment: str | None = None) -> Path:
        return self.root / "release" / assignment if assignment else self.root / "release"

    def layer(self, name: str, assignment: str) -> Path:
        """One assignment's folder of one layer (`autograder`, `solutions`, `release`, `source`)."""
        return self.root / name / assignment

    def notebook(self, assignment: str, name: str) -> NotebookPaths:
        grader = self.autograder / assignment
        return NotebookPaths(
            source=self.root / "source" / assignment / f"{name}.ipynb",
            release=self.release_dir(assignment) / f"{name}.ipynb",
            reference=self.root / "solutions" / assignment / f"{name}.py",
            suite=grader / f"test_{name}.py",
            mistakes=grader / "mistakes" / f"{name}.yaml",
            alternatives=grader / "alternatives" / f"{name}.yaml",
            equivalent=grader / "equivalent" / f"{name}.yaml",
            requirements=grader / "requirements" / f"{name}.yaml",
        )

    # -- what grading writes --------------------------------------------------------------------------------
    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def demo(self) -> Path:
        return self.root / "demo" / "submitted"

    def result(self, student: str, assignment: str, notebook: str) -> Path:
        return self.autograded / student / assignment / f"{notebook}.result.json"

    def autograded_notebook(self, student: str, assignment: str, notebook: str) -> Path:
        return self.autograded / student / assignment / f"{notebook}.ipynb"

    @staticmethod
    def report_page(reports: Path, student: str, assignment: str, notebook: str) -> Path:
        return reports / student / assignment / f"{notebook}.html"

    @staticmethod
    def report_index(reports: Path) -> Path:
        return reports / "index.html"

    def class_report(self, assignment: str) -> Path:
        return self.reports / "_class" / assignment

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"
