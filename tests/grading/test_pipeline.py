"""The grading path on a two-exercise course: scores, messages, and submissions that misbehave."""

import json

import pytest

from course.grading.submissions import discover
from helpers import GOOD_ADD, GOOD_SCALE, grade, run_course, submission


def graded(course, paths, seed=1):
    a = course.assignment("toy")
    [results] = grade(course, a, discover(a, paths), seed=seed)
    return results[0]


def by_exercise(result):
    return {e.id: result.exercise_score(e.id) for e in result.notebook.auto_exercises}


def messages(result):
    return " | ".join(t.output for t in result.tests if not t.passed)


def test_reference_gets_full_marks(mini):
    r = graded(mini, [mini.root / "source" / "toy" / "adder.ipynb"])
    assert (r.score, r.max_score) == (3, 3), messages(r)


def test_untouched_release_gets_zero_with_reasons(mini):
    r = graded(mini, [mini.root / "release" / "toy" / "adder.ipynb"])
    assert r.score == 0 and r.max_score == 3
    assert all("not implemented yet" in t.output for t in r.tests)
    assert all(t.hint for t in r.tests)


def test_one_wrong_exercise_loses_only_its_points(mini):
    path = submission(mini, "sam", {"add-impl": "def add(a, b):\n    return a - b", "scale-impl": GOOD_SCALE})
    r = graded(mini, [path])
    assert by_exercise(r) == {"add": 0, "scale": 1}
    assert "add(a, b) is not what was expected" in messages(r) and "expected" in messages(r)


def test_infinite_loop_fails_that_test_and_the_rest_is_graded(mini):
    slow = "def add(a, b):\n    while True:\n        pass"
    r = graded(mini, [submission(mini, "loop", {"add-impl": slow, "scale-impl": GOOD_SCALE})])
    assert by_exercise(r) == {"add": 0, "scale": 1}
    assert "time limit of 2 s exceeded in `add`" in messages(r)  # the floor: the reference takes microseconds


def test_the_time_limit_counts_the_reference_call_not_its_loading(mini):
    # a reference that takes 1.5 s to load (imports, data) and microseconds per call: the loop still gets the floor
    reference = mini.root / "solutions" / "toy" / "adder.py"
    reference.write_text("import time\ntime.sleep(1.5)\n" + reference.read_text())
    slow = "def add(a, b):\n    while True:\n        pass"
    r = graded(mini, [submission(mini, "loop", {"add-impl": slow, "scale-impl": GOOD_SCALE})])
    first = next(t for t in r.tests if t.exercise == "add")
    assert "time limit of 2 s exceeded in `add`" in first.output, first.output


def test_exit_and_crash_inside_a_function(mini):
    dies = "import os\ndef add(a, b):\n    os._exit(3)"
    r = graded(mini, [submission(mini, "exit", {"add-impl": dies, "scale-impl": GOOD_SCALE})])
    assert by_exercise(r) == {"add": 0, "scale": 1}
    assert "exited with status 3" in messages(r)


def test_top_level_sys_exit_and_errors_do_not_stop_other_cells(mini):
    bad = "import sys\nsys.exit(0)\n"
    r = graded(mini, [submission(mini, "sysexit", {"add-impl": bad + GOOD_ADD, "scale-impl": GOOD_SCALE})])
    assert by_exercise(r) == {"add": 0, "scale": 1}
    assert "does not define `add`" in messages(r)
    assert any(e["type"] == "SystemExit" for e in r.load_errors)


def test_notebook_that_hangs_while_loading(mini, monkeypatch):
    from dataclasses import replace

    mini = replace(mini, grading=replace(mini.grading, notebook_timeout=3))
    r = graded(mini, [submission(mini, "hang", {"add-impl": "while True:\n    pass", "scale-impl": GOOD_SCALE})])
    assert r.score == 0
    assert all("while running the notebook's cells" in t.output for t in r.tests)


def test_printing_and_writing_to_the_channel_does_not_change_the_verdict(mini):
    noisy = (
        "import os\nprint('PASSED ' * 1000)\n"
        "for fd in range(3, 12):\n    try:\n        os.write(fd, b'\\x00\\x00\\x00\\x10{\"ok\": true}')\n"
        "    except OSError:\n        pass\n" + GOOD_ADD.replace("return a + b", "return a - b")
    )
    r = graded(mini, [submission(mini, "noisy", {"add-impl": noisy, "scale-impl": GOOD_SCALE})])
    assert by_exercise(r)["add"] == 0


def test_unsupported_return_type_is_a_failure_not_a_crash(mini):
    r = graded(
        mini, [submission(mini, "obj", {"add-impl": "def add(a, b):\n    return object()", "scale-impl": GOOD_SCALE})]
    )
    assert by_exercise(r) == {"add": 0, "scale": 1}
    assert "cannot be sent" in messages(r)


def test_batch_survives_an_unreadable_notebook(mini):
    submission(mini, "ok", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    broken = mini.root / "submitted" / "broken" / "toy" / "adder.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ this is not json")
    a = mini.assignment("toy")
    results = grade(mini, a, discover(a, [mini.root / "submitted"]), seed=3)
    scores = {r[0].student: r[0].score for r in results}
    assert scores == {"ok": 3, "broken": 0}
    [b] = [r[0] for r in results if r[0].student == "broken"]
    assert "not a readable notebook" in b.problem


def test_cli_grade_writes_json_feedback_and_gradebook(mini):
    submission(mini, "ada", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    submission(mini, "bob", {"add-impl": "def add(a, b):\n    return a * b", "scale-impl": GOOD_SCALE})
    out = run_course("grade", "toy", "submitted", "--json", "scores.json", "--seed", "5", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    assert "ada — toy: 3 / 3" in out.stdout and "bob — toy: 1 / 3" in out.stdout
    data = json.loads((mini.root / "scores.json").read_text())
    assert {s["student"]: s["score"] for s in data["submissions"]} == {"ada": 3, "bob": 1}
    for s in data["submissions"]:
        assert set(s) >= {"student", "notebook", "score", "max_score", "tests"}
        for t in s["tests"]:
            assert set(t) >= {"name", "exercise", "score", "max_score", "output", "seconds"}
            assert 0 <= t["seconds"] < 60
    page = (mini.root / "reports" / "bob" / "toy" / "adder.html").read_text()
    assert "Add two numbers" in page and "expected" in page
    assert "assert_close" not in page and "return a + b" not in page  # no test or reference code

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{mini.root / 'gradebook.db'}") as gb:
        assert gb.find_submission("toy", "bob").score == 1
        assert gb.find_grade("add", "adder", "toy", "ada").auto_score == 2
        assert gb.find_grade("scale", "adder", "toy", "bob").auto_score == 1
    assert (mini.root / "autograded" / "bob" / "toy" / "adder.ipynb").is_file()


def test_cli_errors_are_one_line(mini):
    for args, words in [
        (["grade", "nosuch", "x.ipynb"], "no assignment 'nosuch'"),
        (["grade", "toy", "missing.ipynb"], "missing.ipynb: no such file or folder"),
        (["check", "toy", "course.yaml"], "course.yaml: not a notebook"),
    ]:
        out = run_course(*args, cwd=mini.root)
        assert out.returncode == 2 and words in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_check_reports_on_the_learners_own_notebook(mini):
    path = submission(mini, "me", {"add-impl": GOOD_ADD})
    out = run_course("check", "toy", str(path), cwd=mini.root)
    assert out.returncode == 0, out.stderr
    assert "2 / 3" in out.stdout and "gradebook" not in out.stdout.lower()


def test_discover_accepts_files_student_folders_and_submitted_trees(mini):
    path = submission(mini, "kim", {"add-impl": GOOD_ADD})
    a = mini.assignment("toy")
    for given in (path, path.parent, path.parent.parent, mini.root / "submitted"):
        assert discover(a, [given]) == {"kim": {"adder": path}}, given


def test_progress_counts_every_notebook_once_with_shards(mini):
    for student in ("p1", "p2", "p3"):
        submission(mini, student, {"add-impl": GOOD_ADD})
    broken = mini.root / "submitted" / "p4" / "toy" / "adder.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("")
    a = mini.assignment("toy")
    for workers in (1, 2):
        events: list[tuple[str, bool]] = []

        def record(student: str, graded: bool, events=events) -> None:
            events.append((student, graded))

        grade(mini, a, discover(a, [mini.root / "submitted"]), workers=workers, progress=record)
        assert sorted(events) == [("p1", True), ("p2", True), ("p3", True), ("p4", False)], workers


def test_release_of_one_notebook_leaves_the_others_alone(mini):
    """`course release A --notebook NB`: an exercise author releases one notebook while another notebook of
    the same assignment is still being written."""
    from course.authoring import release

    other = mini.root / "release" / "toy" / "other.ipynb"
    other.write_text("{}")
    [path] = release.release(mini, mini.assignment("toy"), "adder")
    assert path.name == "adder.ipynb" and path.is_file() and other.read_text() == "{}"


def test_cli_options_may_come_between_the_paths():
    from course import cli

    args = cli.parse(["check", "week1", "--json", "out.json", "a.ipynb", "b.ipynb"])
    assert args.notebooks == ["a.ipynb", "b.ipynb"] and args.json == "out.json"
    args = cli.parse(["grade", "week1", "sub/ada", "--workers", "1", "sub/grace"])
    assert args.submissions == ["sub/ada", "sub/grace"] and args.workers == 1
    with pytest.raises(SystemExit):
        cli.parse(["release", "week1", "stray"])


def test_a_learner_checking_some_notebooks_is_graded_on_those_alone(mini):
    """`course check week1 01.ipynb`: the week's other notebooks are left out, not reported as missing."""
    a = mini.assignment("toy")
    assert grade(mini, a, {"sam": {}}, only_submitted=True) == [[]]
    [[missing]] = grade(mini, a, {"sam": {}})
    assert missing.problem == "adder.ipynb was not submitted"
