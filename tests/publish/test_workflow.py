"""nbgrader's workflow around `course grade`: when nbgrader collected each submission, its due date, extensions
and late penalty, formgrader's queue, and nbgrader's own autograde refused."""

import csv
import io
import shutil
import sqlite3

import pytest

from helpers import GOOD_ADD, GOOD_SCALE, REPO, collected, nbgrader, run_course

pytestmark = pytest.mark.slow
DUE = "2025-01-10 12:00:00"


@pytest.fixture
def graded(mini):
    """A class with a due date and one extension: on time, 12 minutes late, late within an extension, and a
    notebook that is not valid JSON; graded once."""
    shutil.copyfile(REPO / "nbgrader_config.py", mini.root / "nbgrader_config.py")
    done = nbgrader(mini.root, "db", "assignment", "add", "toy", f"--duedate={DUE} UTC")
    assert done.returncode == 0, done.stderr[-2000:]
    full = {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE}
    collected(mini, "ada", full, "2025-01-10 11:50:00")
    collected(mini, "bob", full, "2025-01-10 12:12:00")
    collected(mini, "cy", full, "2025-01-11 09:00:00")
    broken = collected(mini, "dee", full, "2025-01-10 11:00:00")
    broken.write_text("{ not json")
    out = run_course("extension", "toy", "cy", "24", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    out = run_course("grade", "toy", "submitted", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    return mini


def query(mini, sql):
    with sqlite3.connect(mini.root / "gradebook.db") as con:
        return con.execute(sql).fetchall()


def test_collection_times_and_late_penalties_reach_the_gradebook(graded):
    rows = dict(
        query(
            graded,
            "select s.id, a.timestamp from submitted_assignment a join student s on s.id = a.student_id",
        )
    )
    assert rows["ada"].startswith("2025-01-10 11:50:00") and rows["bob"].startswith("2025-01-10 12:12:00")
    assert (graded.root / "autograded" / "bob" / "toy" / "timestamp.txt").read_text().startswith("2025-01-10 12:12")
    penalties = dict(
        query(
            graded,
            "select s.id, n.late_submission_penalty from submitted_notebook n join submitted_assignment a "
            "on a.id = n.assignment_id join student s on s.id = a.student_id",
        )
    )
    # nbgrader's LateSubmissionPlugin, as nbgrader_config.py sets it ("zero"): bob's 3 points are taken back;
    # cy was late too, but within the extension
    assert penalties["bob"] == 3 and not penalties["ada"] and not penalties["cy"]
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(graded.root)
    config.CourseDirectory.db_url = f"sqlite:///{graded.root / 'gradebook.db'}"
    api = NbGraderAPI(config=config)
    # formgrader's "needs autograding" is gone: its timestamps and ours agree, for every student
    assert api.get_autograded_students("toy") == {"ada", "bob", "cy", "dee"}
    # nbgrader's own export and ours show the penalty
    assert nbgrader(graded.root, "export").returncode == 0
    grades = {r["student_id"]: r for r in csv.DictReader((graded.root / "grades.csv").open())}
    assert float(grades["bob"]["late_submission_penalty"]) == 3 and grades["bob"]["timestamp"]
    out = run_course("export", "csv", "toy", cwd=graded.root)
    lms = {r["student"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert lms["bob"]["toy"] == "0" and lms["ada"]["toy"] == "3"


def test_formgrader_queue_empties_once_the_written_answers_are_graded(graded):
    def waiting():
        return sorted(
            query(
                graded,
                "select s.id, c.name from grade g join base_cell c on c.id = g.cell_id join submitted_notebook n "
                "on n.id = g.notebook_id join submitted_assignment a on a.id = n.assignment_id "
                "join student s on s.id = a.student_id where g.needs_manual_grade",
            )
        )

    # the auto-graded cells are not in the queue; the written answers are; dee's notebook could not be graded
    assert waiting() == [("ada", "essay"), ("bob", "essay"), ("cy", "essay")]
    with sqlite3.connect(graded.root / "gradebook.db") as con:  # as formgrader does when a grader scores them
        con.execute("update grade set manual_score = 1, needs_manual_grade = 0 where needs_manual_grade")
    assert waiting() == []


def test_a_notebook_that_could_not_be_graded_is_in_formgrader_and_says_why(graded):
    copy = (graded.root / "autograded" / "dee" / "toy" / "adder.ipynb").read_text()
    assert "Not graded" in copy and "not a readable notebook" in copy
    page = (graded.root / "reports" / "dee" / "toy" / "adder.html").read_text()
    assert "all checks passed" not in page and "not graded" in page
    assert "all checks passed" in (graded.root / "reports" / "ada" / "toy" / "adder.html").read_text()


def test_reports_are_readable_and_indexed(graded):
    reports = graded.root / "reports"
    for page in reports.rglob("*.html"):
        assert page.stat().st_mode & 0o044 == 0o044, f"{page}: {oct(page.stat().st_mode)}"
    index = (reports / "index.html").read_text()
    for student in ("ada", "bob", "cy", "dee"):
        assert f'href="{student}/toy/adder.html"' in index


def test_nbgrader_autograde_refuses_and_changes_nothing(graded):
    autograded = graded.root / "autograded" / "ada" / "toy"
    before = {p.name: p.read_bytes() for p in autograded.iterdir()}
    done = nbgrader(graded.root, "autograde", "toy", "--force")
    assert done.returncode != 0
    assert "course grade toy submitted" in done.stderr + done.stdout
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", str(graded.root)).load_config()
    config.CourseDirectory.root = str(graded.root)
    config.CourseDirectory.db_url = f"sqlite:///{graded.root / 'gradebook.db'}"
    result = NbGraderAPI(config=config).autograde("toy", "ada")  # formgrader's Autograde button
    assert not result["success"] and "course grade toy submitted" in result["error"] + result.get("log", "")
    assert {p.name: p.read_bytes() for p in autograded.iterdir()} == before
