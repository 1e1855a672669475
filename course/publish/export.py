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
UNGRADED = "ungraded"  # a written answer nobody has graded yet (course's own CSV)
LMS_FORMATS = ("csv", "canvas", "moodle")


def grades_csv(course: Course, assignments: list[Assignment], db_url: str, lms: str = "csv") -> str:
    """The gradebook's grades as CSV, rounded once (to the hundredth), late penalties taken off.

    - csv: one row per student; per assignment its total, the late penalty, then one column per exercise
      (`ungraded` for a written answer nobody has graded yet; an assignment not submitted is empty).
    - canvas: Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then one column per
      assignment, and a "Points Possible" row first. The student's id goes in SIS Login ID.
    - moodle: Moodle's grade import: a Username column to map to the users, names, one column per assignment.

    In the LMS shapes, an assignment whose written answers are not all graded yet is left empty (no grade
    rather than a partial one); `ungraded_students` says whose."""
    if lms not in LMS_FORMATS:
        raise CourseError(f"export: {lms!r}: expected one of {', '.join(LMS_FORMATS)}")
    grades = nbgrader.class_grades(db_url, assignments)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    possible = [_num(sum(ex.points for nb in a.notebooks for ex in nb.exercises)) for a in assignments]

    def total(s: nbgrader.StudentGrades, a: Assignment) -> str:
        g = s.assignments.get(a.name)
        return "" if g is None or g.ungraded else _num(g.total)

    if lms == "canvas":
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *(a.name for a in assignments)])
        writer.writerow(["Points Possible", "", "", "", "", *possible])
        for s in grades:
            name = ", ".join(n for n in (s.last_name, s.first_name) if n) or s.id
            writer.writerow([name, "", "", s.id, "", *(total(s, a) for a in assignments)])
    elif lms == "moodle":
        writer.writerow(["Username", "First name", "Last name", *(a.name for a in assignments)])
        for s in grades:
            writer.writerow([s.id, s.first_name, s.last_name, *(total(s, a) for a in assignments)])
    else:
        header = ["student"]
        for a in assignments:
            header += [a.name, f"{a.name}/late_penalty"]
            header += [f"{a.name}/{nb.name}/{ex.id}" for nb in a.notebooks for ex in nb.exercises]
        writer.writerow(header)
        for s in grades:
            row = [s.id]
            for a in assignments:
                g = s.assignments.get(a.name)
                if g is None:
                    row += [""] * (2 + sum(len(nb.exercises) for nb in a.notebooks))
                    continue
                row += [_num(g.total), _num(g.penalty)]
                row += [UNGRADED if v is None else _num(v) for v in g.scores.values()]
            writer.writerow(row)
    return out.getvalue()


def ungraded_students(course: Course, assignments: list[Assignment], db_url: str) -> list[str]:
    """`student: assignment` for each submission with written answers still to grade."""
    return [
        f"{s.id}: {name}"
        for s in nbgrader.class_grades(db_url, assignments)
        for name, g in s.assignments.items()
        if g.ungraded
    ]


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
    "equivalent",
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
    data = course.files.datasets
    needed = (data / "registry.yaml", data / "coursedata", course.files.readme)
    for path in needed:  # checked before anything is written, so that a failure leaves no half tree behind
        if not path.exists():
            raise CourseError(f"{path}: not found, and the students' tree is made from it")
    shutil.copytree(release, dest / "release", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
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
