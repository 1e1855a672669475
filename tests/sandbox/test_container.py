"""Gradescope's container, where bubblewrap may not start: the container holds one submission and is its
boundary, and the submission's code runs as a user of its own that cannot read the course's sources."""

import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from helpers import GOOD_ADD, GOOD_SCALE, run_course, run_with_readable_python, submission

pytestmark = pytest.mark.slow  # builds the Gradescope bundle and grades with it

READS_THE_REFERENCE = """
def add(a, b):
    open(AUTOGRADER + "/source/solutions/toy/adder.py").read()  # the reference: it must not be readable
    return a + b
"""

WRITES_THE_RESULTS = """
def add(a, b):
    with open(AUTOGRADER + "/results/results.json", "w") as f:  # Gradescope's results: not writable
        f.write('{"score": 100}')
    return a + b
"""


@pytest.fixture
def bundle(mini, tmp_path):
    zip_path = tmp_path / "toy.zip"
    assert run_course("export", "gradescope", "toy", "--out", str(zip_path), cwd=mini.root).returncode == 0
    return zip_path


def graded_in_container(bundle: Path, notebook: Path, root: Path) -> dict:
    """Run the bundle's run_autograder as Gradescope would, as root, at `root`, with no sandbox to be had."""
    zipfile.ZipFile(bundle).extractall(root / "source")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    shutil.copy(notebook, root / "submission" / "adder.ipynb")
    subprocess.run(["chmod", "-R", "a+rwX", str(root)], check=True)  # as open as an image could leave it
    done = run_with_readable_python(
        f'COURSE_PYTHON="$COURSE_VENV/bin/python" bash {root}/source/run_autograder',
        cwd=root.parent,
        env={"AUTOGRADER_ROOT": str(root), "COURSE_SANDBOX": "container"},
        user=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture
def stage():
    """A folder every user may traverse, as / is in Gradescope's container (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="course-container-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_container_boundary_grades_and_keeps_the_sources_out_of_reach(mini, bundle, stage):
    honest = submission(mini, "ann", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    data = graded_in_container(bundle, honest, stage / "ann")
    assert data["score"] == 3, data
    assert "graded in: container" in data["output"]

    for name, attack in (("eve", READS_THE_REFERENCE), ("mallory", WRITES_THE_RESULTS)):
        root = stage / name
        hostile = submission(mini, name, {"add-impl": f"AUTOGRADER = {str(root)!r}\n" + attack})
        data = graded_in_container(bundle, hostile, root)
        assert data["score"] == 0, (name, data)
        add = [t for t in data["tests"] if "Add two numbers" in t["name"]]
        assert add and all("opened a file that grading does not provide" in t["output"] for t in add), add
