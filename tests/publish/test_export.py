"""What leaves the repository: LMS grades, nbgrader's own workflow, the students' tree, a Gradescope bundle."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

from course import config, notebooks
from course.publish import export
from helpers import GOOD_ADD, GOOD_SCALE, REPO, run_course, submission

VENV_BIN = os.path.dirname(sys.executable)


def _graded_class(mini):
    submission(mini, "ada", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    submission(mini, "bob", {"add-impl": "def add(a, b):\n    return a * b"})
    out = run_course("grade", "toy", "submitted", cwd=mini.root)
    assert out.returncode == 0, out.stderr


def test_csv_has_a_row_per_student_and_a_column_per_exercise(mini):
    _graded_class(mini)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{mini.root / 'gradebook.db'}") as gb:
        gb.find_grade("essay", "adder", "toy", "ada").manual_score = 1
        gb.db.commit()
    out = run_course("export", "csv", "toy", "--out", "lms.csv", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO((mini.root / "lms.csv").read_text())))
    assert rows[0] == ["student", "toy", "toy/late_penalty", "toy/adder/add", "toy/adder/scale", "toy/adder/essay"]
    assert rows[1:] == [["ada", "4", "0", "2", "1", "1"], ["bob", "0", "0", "0", "0", "ungraded"]]

    # Canvas: its five identity columns, a Points Possible row; bob's essay is not graded yet: no grade
    out = run_course("export", "canvas", "toy", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    assert list(csv.reader(io.StringIO(out.stdout))) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "toy"],
        ["Points Possible", "", "", "", "", "4"],
        ["ada", "", "", "ada", "", "4"],
        ["bob", "", "", "bob", "", ""],
    ]
    assert "written answers still to grade: bob: toy" in out.stderr
    out = run_course("export", "moodle", "toy", cwd=mini.root)
    assert list(csv.reader(io.StringIO(out.stdout))) == [
        ["Username", "First name", "Last name", "toy"],
        ["ada", "", "", "4"],
        ["bob", "", "", ""],
    ]


def test_nbgrader_feedback_and_export_work_on_the_graded_course(mini, tmp_path):
    """collect (submitted/<student>/<assignment>/, with nbgrader submit's secret) -> course grade -> nbgrader
    generate_feedback -> release_feedback -> export."""
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    settings = (REPO / "nbgrader_config.py").read_text() + f"c.Exchange.root = {str(exchange)!r}\n"
    (mini.root / "nbgrader_config.py").write_text(settings)
    secrets = {"ada": "a1" * 64, "bob": "b2" * 64}
    for student, secret in secrets.items():
        folder = mini.root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        (folder / "submission_secret.txt").write_text(secret)
        (folder / "timestamp.txt").write_text("2025-01-10 11:50:00.000000 UTC")
    _graded_class(mini)
    assert (mini.root / "autograded" / "bob" / "toy" / "submission_secret.txt").read_text() == secrets["bob"]
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    for args in (["generate_feedback", "toy"], ["release_feedback", "toy"], ["export"]):
        done = subprocess.run(
            [os.path.join(VENV_BIN, "nbgrader"), *args],
            cwd=mini.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    page = (mini.root / "feedback" / "bob" / "toy" / "adder.html").read_text()
    assert "Hidden tests" in page and "This looks like a known mistake: add multiplies a and b" in page
    for secret in ("assert_close", "def test_", "@probe", "rng.uniform"):  # nothing of the hidden suite
        assert secret not in page, secret
    from nbgrader.utils import notebook_hash

    released = {p.name for p in exchange.glob("*/feedback/*")}  # named as the students' fetch_feedback looks
    assert released == {f"{notebook_hash(secret=s, notebook_id='adder')}.html" for s in secrets.values()}
    grades = {r["student_id"]: r for r in csv.DictReader((mini.root / "grades.csv").open())}
    assert float(grades["ada"]["score"]) == 3 and float(grades["bob"]["score"]) == 0


def test_student_tree_holds_nothing_secret(tmp_path):
    course = config.load(REPO)
    dest = tmp_path / "students"
    out = run_course("export", "student", str(dest), cwd=REPO)
    assert out.returncode == 0, out.stderr
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    assert "release/week1/01_autograd_engine.ipynb" in names and "datasets/coursedata/__init__.py" in names
    assert not [n for n in names for part in n.split("/") if part in export.NEVER_IN_STUDENT_TREE]
    project = tomllib.loads((dest / "pyproject.toml").read_text())  # the tree installs: its project file parses
    assert project["tool"]["setuptools"]["package-dir"] == {"coursedata": "datasets/coursedata"}
    assert "torch==" in (dest / "requirements.txt").read_text()
    # the README's `make setup` is a target of the tree's own Makefile (a dry run: nothing is installed)
    assert "make setup" in (dest / "README.md").read_text()
    dry = subprocess.run(["make", "-n", "setup"], cwd=dest, capture_output=True, text=True)
    assert dry.returncode == 0 and "pip install" in dry.stdout, dry.stdout + dry.stderr

    secrets = set()
    for a in course.assignments.values():
        for nb in a.notebooks:
            paths = course.paths(nb)
            for region in notebooks.regions(paths.reference).values():
                if "### BEGIN SOLUTION" in region:
                    body = region.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
                    secrets |= {line.strip() for line in body.splitlines() if len(line.strip()) > 25}
            secrets |= {line.strip() for line in paths.suite.read_text().splitlines() if line.startswith("def test_")}
    # a line that a notebook gives students in its own code (a provided helper, a model to train) is public
    # by design, even when a solution elsewhere happens to have the same line
    given = "\n".join(
        cell.source
        for path in (REPO / "release").glob("*/*.ipynb")
        for cell in notebooks.read(path).cells
        if not notebooks.nbgrader_meta(cell).get("solution")
    )
    secrets = {s for s in secrets if s not in given}
    texts = {p: p.read_text(errors="replace") for p in dest.rglob("*") if p.is_file()}
    leaked = {(str(p.relative_to(dest)), s) for p, t in texts.items() for s in secrets if s in t}
    assert not leaked, sorted(leaked)[:5]
    readme = (dest / "README.md").read_text()
    assert "## Students" in readme and "## Instructors" not in readme and "course grade" not in readme


def test_student_export_refuses_a_folder_in_the_repository(tmp_path):
    out = run_course("export", "student", "release", cwd=REPO)
    assert out.returncode == 2 and "inside the course repository" in out.stderr


def test_student_export_names_what_the_course_directory_lacks(mini, tmp_path):
    # the test course has a data registry but no data loaders: one line that names them, and no half tree
    dest = tmp_path / "students"
    out = run_course("export", "student", str(dest), cwd=mini.root)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().endswith("coursedata: not found, and the students' tree is made from it"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not dest.exists()


def test_gradescope_bundle_runs_like_gradescope(mini, tmp_path):
    zip_path = tmp_path / "toy.zip"
    out = run_course("export", "gradescope", "toy", "--out", str(zip_path), cwd=mini.root)
    assert out.returncode == 0, out.stderr
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"setup.sh", "run_autograder", "course/sandbox/server.py", "autograder/toy/test_adder.py"} <= set(names)
    assert not [n for n in names if n.startswith(("source/", "submitted/")) or n.endswith("gradebook.db")]

    def run(student_notebook):
        root = tmp_path / f"autograder-{len(list(tmp_path.iterdir()))}"
        zipfile.ZipFile(zip_path).extractall(root / "source")
        shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
        (root / "submission").mkdir()
        if student_notebook:
            shutil.copy(student_notebook, root / "submission" / "my work.ipynb")
        env = dict(os.environ, AUTOGRADER_ROOT=str(root), COURSE_PYTHON=sys.executable)
        env.pop("COURSE_ROOT", None)
        done = subprocess.run(
            ["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((root / "results" / "results.json").read_text())

    bob = submission(mini, "bob", {"add-impl": "def add(a, b):\n    return a * b", "scale-impl": GOOD_SCALE})
    data = run(bob)
    assert data["score"] == 1
    assert [t["name"] for t in data["tests"]] == [
        "adder · Add two numbers · test_add",
        "adder · Add two numbers · test_add_ints",
        "adder · Scale an array · test_scale",
    ]
    for t in data["tests"]:
        assert set(t) == {"name", "score", "max_score", "output", "visibility"}
    assert "This looks like a known mistake: add multiplies a and b" in data["tests"][0]["output"]
    assert sum(t["max_score"] for t in data["tests"]) == 3

    empty = run(None)
    assert empty["score"] == 0 and "no notebook of this assignment" in empty["output"]
