"""`course report`: the class report, from what `course grade` saved and nbgrader's gradebook."""

import csv
import io
import re
import shutil

import pytest

from helpers import GOOD_ADD, GOOD_SCALE, REPO, collected, nbgrader, run_course

DUE = "2025-01-10 12:00:00"
MULTIPLIES = "def add(a, b):\n    return a * b"
SCALE_ADDS = "import numpy as np\ndef scale(x, k):\n    return np.asarray(x, dtype=np.float64) + k"
SCALE_IGNORES = "import numpy as np\ndef scale(x, k):\n    return np.asarray(x, dtype=np.float64)"


@pytest.fixture
def graded(mini):
    """Five students, graded with a due date: ada full marks on time; bob's add multiplies, 12 minutes late;
    cy's add multiplies and scale adds k, late within an extension; dee's notebook is not JSON; eve's scale
    ignores k. Then ada's written answer gets 1 point by hand, bob's 0; cy's and eve's wait."""
    shutil.copyfile(REPO / "nbgrader_config.py", mini.root / "nbgrader_config.py")
    assert nbgrader(mini.root, "db", "assignment", "add", "toy", f"--duedate={DUE} UTC").returncode == 0
    collected(mini, "ada", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE}, "2025-01-10 11:50:00")
    collected(mini, "bob", {"add-impl": MULTIPLIES, "scale-impl": GOOD_SCALE}, "2025-01-10 12:12:00")
    collected(mini, "cy", {"add-impl": MULTIPLIES, "scale-impl": SCALE_ADDS}, "2025-01-11 09:00:00")
    collected(mini, "dee", {}, "2025-01-10 11:00:00").write_text("{ not json")
    collected(mini, "eve", {"add-impl": GOOD_ADD, "scale-impl": SCALE_IGNORES}, "2025-01-10 11:59:00")
    assert run_course("extension", "toy", "cy", "24", cwd=mini.root).returncode == 0
    out = run_course("grade", "toy", "submitted", cwd=mini.root)
    assert out.returncode == 0, out.stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{mini.root / 'gradebook.db'}") as gb:  # as formgrader does when a grader scores them
        for student, score in (("ada", 1), ("bob", 0)):
            grade = gb.find_grade("essay", "adder", "toy", student)
            grade.manual_score, grade.needs_manual_grade = score, False
        gb.db.commit()
    return mini


def rows_of(html, table_id):
    """The text of each cell of each body row of the table with this id."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert table, f"no table {table_id}"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    return [
        [" ".join(re.sub(r"<[^>]+>", "", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


@pytest.mark.slow
def test_the_class_report_ranks_mistakes_and_losses_and_lists_failed_and_late_work(graded):
    out = run_course("report", "toy", cwd=graded.root)
    assert out.returncode == 0, out.stderr
    folder = graded.root / "reports" / "_class" / "toy"
    html = (folder / "index.html").read_text()

    # exercises by points lost: add (bob and cy lose 2 each), scale (cy, eve 1 each), the essay (bob's 1);
    # dee's notebook could not be graded and counts in none of them
    lost = rows_of(html, "lost-table")
    assert [(r[1], r[3], r[5]) for r in lost] == [
        ("Add two numbers", "4", "2 of 4"),
        ("Scale an array", "2", "2 of 4"),
        ("Say why (written)", "1", "1 of 2"),
    ]
    assert "Say why (2: cy, eve)" in html  # the written answers still to grade, and whose

    # named mistakes, most students first, in the catalog's words
    mistakes = rows_of(html, "mistakes-table")
    assert [(r[0], r[1], r[3]) for r in mistakes] == [
        ("2", "add multiplies a and b (multiplies)", "bob, cy"),
        ("1", "scale adds k instead of multiplying by it (scale-adds)", "cy"),
        ("1", "scale returns x unchanged (scale-ignores-k)", "eve"),
    ]

    [failed] = rows_of(html, "ungraded-table")
    assert failed[:2] == ["dee", "adder"] and "not a readable notebook" in failed[2]

    # late: bob alone (cy was late within the extension); nbgrader's "zero" policy takes back his 1 point
    [late] = rows_of(html, "late-table")
    assert late[0] == "bob" and late[1].startswith("2025-01-10 12:12") and late[2] == "12 min" and late[3] == "1"

    # one histogram per exercise with scores, beside the page, described in words
    plots = sorted(p.name for p in folder.glob("hist-*.png"))
    assert len(plots) == 3 and all((folder / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    for p in plots:
        assert f'src="{p}"' in html
    assert "Scores for Add two numbers, out of 2: 2 students with 2; 2 students with 0" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from a network
    for f in folder.iterdir():
        assert f.stat().st_mode & 0o644 == 0o644, f"{f}: {oct(f.stat().st_mode)}"
    assert 'href="_class/toy/index.html"' in (graded.root / "reports" / "index.html").read_text()

    rows = list(csv.DictReader(io.StringIO((folder / "class.csv").read_text())))
    assert len(rows) == 5 * 3  # a row per student and exercise
    by = {(r["student"], r["exercise"]): r for r in rows}
    assert by[("bob", "add")]["score"] == "0" and by[("bob", "add")]["mistakes"] == "multiplies"
    assert by[("cy", "scale")]["mistakes"] == "scale-adds" and by[("ada", "add")]["score"] == "2"
    assert by[("ada", "essay")]["score"] == "1" and by[("eve", "essay")]["status"] == "written answer not graded yet"
    assert by[("dee", "add")]["score"] == "" and by[("dee", "add")]["status"].startswith("not graded: ")


def test_the_class_report_says_what_is_missing(mini):
    out = run_course("report", "nope", cwd=mini.root)
    assert out.returncode == 2 and "no assignment 'nope'" in out.stderr and len(out.stderr.splitlines()) == 1
    out = run_course("report", "toy", cwd=mini.root)
    assert out.returncode == 2 and "toy: nothing graded yet" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (mini.root / "reports" / "_class").exists()
