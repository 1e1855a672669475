"""What leaves the course repository: grades for an LMS, and the students' tree."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

from course.config import Assignment, Course
from course.errors import CourseError
from course.grading.results import rounded
from course.publish import nbgrader


# -- grades for an LMS ----------------------------------------------------------------------------------------
def grades_csv(course: Course, assignments: list[Assignment], db_url: str) -> str:
    """One row per student; per assignment its total, then one column per exercise (hand-graded ones
    included, empty until graded). Scores come from nbgrader's gradebook, manual grades and all."""
    missing = nbgrader.missing_entry()
    header = ["student"]
    for a in assignments:
        header.append(a.name)
        header += [f"{a.name}/{nb.name}/{ex.id}" for nb in a.notebooks for ex in nb.exercises]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    with nbgrader.gradebook(db_url) as gb:
        for student in sorted(s.id for s in gb.students):
            row = [student]
            for a in assignments:
                try:
                    row.append(_num(gb.find_submission(a.name, student).score))
                except missing:
                    row += [""] * (1 + sum(len(nb.exercises) for nb in a.notebooks))
                    continue
                for nb in a.notebooks:
                    for ex in nb.exercises:
                        try:
                            grade = gb.find_grade(ex.id, nb.name, a.name, student)
                            row.append(
                                ""
                                if grade.score is None or (ex.manual and grade.manual_score is None)
                                else _num(grade.score)
                            )
                        except missing:
                            row.append("")
            writer.writerow(row)
    return out.getvalue()


def _num(x: float) -> str:
    return f"{rounded(x):g}"


# -- the students' tree ---------------------------------------------------------------------------------------
STUDENT_README = """# {title}

The course's notebooks, to complete in JupyterLab. `make setup` installs what they need into `.venv`
(Python 3.11; the same as these three commands):

```bash
python3.11 -m venv .venv
.venv/bin/pip install -r requirements.txt
.venv/bin/pip install --no-deps --no-build-isolation -e .
```

{students}
"""

STUDENT_MAKEFILE = """# `make setup`: the notebooks' packages, pinned, in .venv (README.md)
PYTHON ?= python3.11

.PHONY: setup
setup: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
\t$(PYTHON) -m venv .venv
\t.venv/bin/pip install --quiet -r requirements.txt
\t.venv/bin/pip install --quiet --no-deps --no-build-isolation -e .
\ttouch $@
"""

STUDENT_PYPROJECT = """[build-system]
requires = ["setuptools==80.9.0"]
build-backend = "setuptools.build_meta"

[project]
name = "coursedata"
version = "0.1.0"
description = "The course's data loaders"
requires-python = ">=3.11"

[tool.setuptools]
packages = ["coursedata"]
package-dir = { "coursedata" = "datasets/coursedata" }
"""

NEVER_IN_STUDENT_TREE = (
    "solutions",
    "autograder",
    "source",
    "mistakes",
    "alternatives",
    "gradebook.db",
    "submitted",
    "autograded",
    "course.yaml",
)


def student_tree(course: Course, dest: Path) -> list[Path]:
    """Write the tree handed to students when this repository stays private: release/, the data loaders,
    the requirements, and the README's student section. Returns the files written."""
    dest = Path(dest)
    if dest.resolve().is_relative_to(course.root.resolve()):
        raise CourseError(f"{dest}: inside the course repository; choose a folder outside it")
    if dest.exists() and any(dest.iterdir()):
        raise CourseError(f"{dest}: exists and is not empty (choose a new folder)")
    release = course.files.release_dir()
    if not release.is_dir():
        raise CourseError(f"{release}: not found (run `course release` first)")
    shutil.copytree(release, dest / "release", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    data = course.files.datasets
    (dest / "datasets").mkdir()
    shutil.copy2(data / "registry.yaml", dest / "datasets" / "registry.yaml")
    shutil.copytree(data / "coursedata", dest / "datasets" / "coursedata", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(course.files.tooling / "requirements" / "student.txt", dest / "requirements.txt")
    (dest / "pyproject.toml").write_text(STUDENT_PYPROJECT)
    (dest / "Makefile").write_text(STUDENT_MAKEFILE)
    (dest / "README.md").write_text(
        STUDENT_README.format(title=course.title, students=_readme_section(course, "Students"))
    )
    return sorted(p for p in dest.rglob("*") if p.is_file())


def _readme_section(course: Course, title: str) -> str:
    text = course.files.readme.read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not match:
        raise CourseError(f"{course.files.readme}: no section '## {title}'")
    return f"## {title}\n{match.group(1).rstrip()}\n"
