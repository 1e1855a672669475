"""What leaves the course repository: grades for an LMS, the students' tree, and a Gradescope autograder."""
from __future__ import annotations

import csv
import io
import re
import shutil
import stat
import zipfile
from pathlib import Path

from course.config import Assignment, Course
from course.errors import CourseError


# -- grades for an LMS ----------------------------------------------------------------------------------------
def grades_csv(course: Course, assignments: list[Assignment], db_url: str) -> str:
    """One row per student; per assignment its total, then one column per exercise (hand-graded ones
    included, empty until graded). Scores come from nbgrader's gradebook, manual grades and all."""
    from nbgrader.api import Gradebook, MissingEntry

    from course.release import alembic_on_path
    alembic_on_path()
    header = ["student"]
    for a in assignments:
        header.append(a.name)
        header += [f"{a.name}/{nb.name}/{ex.id}" for nb in a.notebooks for ex in nb.exercises]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    with Gradebook(db_url) as gb:
        for student in sorted(s.id for s in gb.students):
            row = [student]
            for a in assignments:
                try:
                    row.append(_num(gb.find_submission(a.name, student).score))
                except MissingEntry:
                    row += [""] * (1 + sum(len(nb.exercises) for nb in a.notebooks))
                    continue
                for nb in a.notebooks:
                    for ex in nb.exercises:
                        try:
                            grade = gb.find_grade(ex.id, nb.name, a.name, student)
                            row.append("" if grade.score is None or (ex.manual and grade.manual_score is None)
                                       else _num(grade.score))
                        except MissingEntry:
                            row.append("")
            writer.writerow(row)
    return out.getvalue()


def _num(x: float) -> str:
    return f"{x:g}"


# -- the students' tree ---------------------------------------------------------------------------------------
STUDENT_README = """# {title}

The course's notebooks, to complete in JupyterLab.

```bash
python3.11 -m venv .venv
.venv/bin/pip install -r requirements.txt
.venv/bin/pip install --no-deps --no-build-isolation -e .
.venv/bin/jupyter lab release/week1
```

{students}
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
package-dir = {{ "coursedata" = "datasets/coursedata" }}
"""

NEVER_IN_STUDENT_TREE = ("solutions", "autograder", "source", "mistakes", "alternatives", "gradebook.db",
                         "submitted", "autograded", "course.yaml")


def student_tree(course: Course, dest: Path) -> list[Path]:
    """Write the tree handed to students when this repository stays private: release/, the data loaders,
    the requirements, and the README's student section. Returns the files written."""
    dest = Path(dest)
    if dest.resolve().is_relative_to(course.root.resolve()):
        raise CourseError(f"{dest}: inside the course repository; choose a folder outside it")
    if dest.exists() and any(dest.iterdir()):
        raise CourseError(f"{dest}: exists and is not empty (choose a new folder)")
    release = course.root / "release"
    if not release.is_dir():
        raise CourseError(f"{release}: not found (run `course release` first)")
    shutil.copytree(release, dest / "release", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    data = course.root / "datasets"
    (dest / "datasets").mkdir()
    shutil.copy2(data / "registry.yaml", dest / "datasets" / "registry.yaml")
    shutil.copytree(data / "coursedata", dest / "datasets" / "coursedata",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(course.root / "requirements.txt", dest / "requirements.txt")
    (dest / "pyproject.toml").write_text(STUDENT_PYPROJECT)
    (dest / "README.md").write_text(STUDENT_README.format(title=course.title, students=_readme_section(course, "Students")))
    return sorted(p for p in dest.rglob("*") if p.is_file())


def _readme_section(course: Course, title: str) -> str:
    text = (course.root / "README.md").read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not match:
        raise CourseError(f"{course.root / 'README.md'}: no section '## {title}'")
    return f"## {title}\n{match.group(1).rstrip()}\n"


# -- Gradescope -----------------------------------------------------------------------------------------------
SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y python3.11 python3.11-venv bubblewrap
cd /autograder/source
python3.11 -m venv .venv
.venv/bin/pip install --disable-pip-version-check -r requirements.txt
.venv/bin/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades /autograder/submission with the course's hidden
# suites, in the same sandbox as `course grade`, and writes /autograder/results/results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SRC="$ROOT/source"
PYTHON="${{COURSE_PYTHON:-$SRC/.venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$SRC"
PYTHONPATH="$SRC:$SRC/datasets" COURSE_ROOT="$SRC" exec "$PYTHON" -m course.gradescope "$ROOT" {assignment}
"""

TOOLING_FILES = ("requirements.txt", "pyproject.toml")
COURSE_FILES = ("course.yaml", "nbgrader_config.py", "datasets/registry.yaml")


def gradescope_zip(course: Course, assignment: Assignment, dest: Path) -> Path:
    """A Gradescope autograder: setup.sh, run_autograder, and what grading needs (the tooling, the
    assignment's hidden suites, references and released notebooks) — never the source notebooks."""
    import course as tooling
    import coursedata
    dest = Path(dest)
    root = course.root
    code = Path(tooling.__file__).parent.parent  # the repository of the `course` command itself
    members: list[tuple[Path, str]] = []
    for package, name in ((Path(tooling.__file__).parent, "course"),
                          (Path(coursedata.__file__).parent, "datasets/coursedata")):
        members += [(p, f"{name}/{p.relative_to(package).as_posix()}") for p in sorted(package.rglob("*"))
                    if p.is_file() and "__pycache__" not in p.parts]
    members += [(code / f, f) for f in TOOLING_FILES if (code / f).is_file()]
    members += [(root / f, f) for f in COURSE_FILES if (root / f).is_file()]
    for layer in ("autograder", "solutions", "release"):
        folder = root / layer / assignment.name
        if not folder.is_dir():
            raise CourseError(f"{folder}: not found (is {assignment.name} released?)")
        members += [(p, p.relative_to(root).as_posix()) for p in sorted(folder.rglob("*"))
                    if p.is_file() and "__pycache__" not in p.parts]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment.name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            z.writestr(info, text)
        for path, name in members:
            z.write(path, name)
    return dest
