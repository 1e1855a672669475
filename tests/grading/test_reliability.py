"""A batch stopped halfway, grading twice, and bad inputs: nothing graded is lost, nothing is counted twice."""

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from course.grading.submissions import discover
from helpers import COURSE_BIN, GOOD_ADD, GOOD_SCALE, grade, run_course, sandbox_processes, submission

pytestmark = pytest.mark.slow  # grades small classes, stopped and started again

# each submission takes a second or two to load, so that a batch can be stopped in the middle
SLOW = "import time\ntime.sleep(1.5)\n"
CLASS = {
    "ana": {"add-impl": SLOW + GOOD_ADD, "scale-impl": GOOD_SCALE},
    "ben": {"add-impl": SLOW + "def add(a, b):\n    return a - b", "scale-impl": GOOD_SCALE},
    "cai": {"add-impl": SLOW + GOOD_ADD},
    "dee": {"add-impl": SLOW + GOOD_ADD, "scale-impl": "def scale(x, k):\n    return x"},
    "eli": {"add-impl": SLOW + "def add(a, b):\n    return 0"},
    "fay": {"add-impl": SLOW + GOOD_ADD, "scale-impl": GOOD_SCALE},
}


def results_on_disk(course) -> dict[str, float]:
    return {
        p.parts[-3]: json.loads(p.read_text())["score"]
        for p in (course.root / "autograded").glob("*/toy/adder.result.json")
    }


def test_a_batch_stopped_halfway_grades_the_rest_exactly_once(mini):
    for student, cells in CLASS.items():
        submission(mini, student, cells)
    tag = f"stopped-{os.getpid()}"
    batch = subprocess.Popen(
        [str(COURSE_BIN), "grade", "toy", "submitted", "--workers", "1"],
        cwd=mini.root,
        env=dict(os.environ, COURSE_GRADING_TAG=tag),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    seen_running = False
    while len(results_on_disk(mini)) < 2 and time.monotonic() < deadline and batch.poll() is None:
        seen_running |= bool(sandbox_processes(tag))  # the check below can see the batch's sandboxes
        time.sleep(0.1)
    assert seen_running
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    first = results_on_disk(mini)
    assert 2 <= len(first) < len(CLASS), first
    stamps = {p: p.stat().st_mtime_ns for p in (mini.root / "autograded").glob("*/toy/adder.result.json")}
    for _ in range(50):  # the sandboxes die with the grader
        if not sandbox_processes(tag):
            break
        time.sleep(0.1)
    assert sandbox_processes(tag) == []
    assert not list((mini.root / "autograded").glob("*/toy/.*.tmp")), "a half-written result was left behind"

    again = run_course("grade", "toy", "submitted", "--workers", "2", "--json", "scores.json", cwd=mini.root)
    assert again.returncode == 0, again.stderr
    assert f"{len(first)} of {len(CLASS)} notebook(s) were graded before" in again.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a finished result was graded again"
    scores = {s["student"]: s["score"] for s in json.loads((mini.root / "scores.json").read_text())["submissions"]}
    assert scores == {"ana": 3, "ben": 1, "cai": 2, "dee": 2, "eli": 0, "fay": 3}
    assert results_on_disk(mini) == scores

    db = sqlite3.connect(mini.root / "gradebook.db")
    per_student = dict(
        db.execute(
            "select student.id, count(*) from submitted_assignment "
            "join student on student.id = submitted_assignment.student_id group by student.id"
        )
    )
    assert per_student == dict.fromkeys(CLASS, 1)
    [[rows]] = db.execute("select count(*) from grade")
    assert rows == len(CLASS) * 3  # add, scale and the essay: one row each, never two


def test_grading_twice_gives_the_same_result(mini):
    paths = [submission(mini, s, CLASS[s]) for s in ("ben", "dee")]
    a = mini.assignment("toy")
    first, second = (grade(mini, a, discover(a, paths)) for _ in range(2))

    def as_data(results):  # everything but what the machine measured: time per test, peak memory
        data = [[r.as_json() for r in student] for student in results]
        for r in (r for student in data for r in student):
            assert (r.pop("memory_peak_mb") or 0) >= 0
            for t in r["tests"]:
                assert t.pop("seconds") >= 0
        return data

    assert as_data(first) == as_data(second)


def test_a_result_is_reused_only_for_the_same_submission_and_suite(mini):
    path = submission(mini, "gus", {"add-impl": GOOD_ADD})
    a = mini.assignment("toy")

    def graded():
        [[r]] = grade(mini, a, discover(a, [path]), journal=True)
        return r

    assert not graded().reused and graded().reused
    submission(mini, "gus", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})  # the student resubmits
    r = graded()
    assert not r.reused and r.score == 3
    suite = mini.root / "autograder" / "toy" / "test_adder.py"
    suite.write_text(suite.read_text() + "\n# the instructor changed the suite\n")
    assert not graded().reused


def test_a_broken_course_yaml_is_one_line_and_loses_nothing(mini):
    submission(mini, "ana", CLASS["ana"])
    assert run_course("grade", "toy", "submitted", cwd=mini.root).returncode == 0
    kept = {p: p.read_bytes() for p in (mini.root / "autograded").rglob("*") if p.is_file()}
    assert kept
    yaml_file = mini.root / "course.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("points: 2", "points: two"))
    out = run_course("grade", "toy", "submitted", cwd=mini.root)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "course.yaml" in out.stderr and "points" in out.stderr
    assert {p: p.read_bytes() for p in kept} == kept
