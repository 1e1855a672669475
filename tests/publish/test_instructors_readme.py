"""The README's Instructors section, run as written on a fresh course directory.

The section's commands are read from README.md: the lines of its command block and every command in
backticks in its prose. The test runs each one, in the order an instructor would, with the venv's bin/
first on PATH (as after `source .venv/bin/activate`) and `.venv` linked into the course directory, so that
both spellings run as printed. Only placeholders are filled in (STUDENT, K/N, DIR, the example due date,
[SUBMISSION...]). The course directory is the repository's course cut to week 1's first notebook and week 2's
convolution notebook, with nothing released yet. Four students hand in through nbgrader's exchange (one correct,
one with a cataloged mistake, one late, one late within an extension). A command that the README gains and
this test does not run fails it, and so does one it runs that the README no longer gives."""

import csv
import html
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from course import notebooks
from helpers import REPO, ReadablePython, answers, course_directory, mistake

pytestmark = pytest.mark.slow  # releases, an audit, a class graded in shards, a Jupyter server

COURSE_ID = "dl-first-principles"
CUT = {"week1": ("00_tensors",), "week2": ("01_convolution",)}
NOTEBOOK = "00_tensors"
MISTAKE = "normalize-without-keepdim"
COMMAND_WORDS = ("course ", "nbgrader ", "jupyter ", ".venv/bin/")


# -- what the README says --------------------------------------------------------------------------------------
def instructors_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Instructors\n")
    return text[start : text.index("\n## ", start + 1)]


def readme_commands(section: str) -> set[str]:
    """Every command the section gives: each line of its ```bash block (without its comment) and each span in
    backticks, in the block's comments or the prose, that starts with a command; whitespace made single."""
    found, comments = set(), []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            command, _, comment = line.partition("#")
            if command.strip():
                found.add(command.strip())
            comments.append(comment)
    prose = re.sub(r"```.*?```", "", section, flags=re.S) + "\n".join(comments)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if span.startswith(COMMAND_WORDS):
            found.add(span)
    return found


def _bare(command: str) -> str:
    return command.removeprefix(".venv/bin/")


# -- the class -------------------------------------------------------------------------------------------------
class Instructor:
    """Runs the README's commands in the course directory and remembers which it ran."""

    def __init__(self, course: Path, section: str, env: dict[str, str]):
        self.course, self.commands, self.env = course, readme_commands(section), env
        self.ran: set[str] = set()

    def run(self, command: str, *, fill: dict[str, str] | None = None, expect: int = 0, timeout: float = 600) -> str:
        """`command` as the README prints it (it must be one of the section's), placeholders filled in."""
        assert command in self.commands, f"the README's Instructors section does not give `{command}`"
        self.ran.add(command)
        line = command
        for placeholder, value in (fill or {}).items():
            assert placeholder in line, (placeholder, line)
            line = line.replace(placeholder, value)
        done = subprocess.run(
            ["bash", "-c", line], cwd=self.course, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        out = done.stdout + done.stderr
        assert done.returncode == expect, f"`{line}` exited {done.returncode}:\n{out[-4000:]}"
        return out

    def student(self, name: str, *args: str) -> None:
        """nbgrader's student side, in the student's own folder (what the assignment list does for them)."""
        home = self.course.parent / "students" / name
        done = subprocess.run(
            [str(self.course / ".venv" / "bin" / "nbgrader"), *args], cwd=home, env=self.env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (name, args, done.stdout[-2000:], done.stderr[-2000:])


def _gradebook(course: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(course / "gradebook.db") as con:
        return con.execute(sql).fetchall()


def _auto_scores(course: Path) -> dict[tuple[str, str], float]:
    rows = _gradebook(
        course,
        "select s.id, c.name, g.auto_score from grade g join base_cell c on c.id = g.cell_id "
        "join submitted_notebook n on n.id = g.notebook_id join submitted_assignment a on a.id = n.assignment_id "
        "join student s on s.id = a.student_id",
    )
    return {(s, cell): score for s, cell, score in rows}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def classroom(tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o1777)
    course = course_directory(tmp_path / "course", CUT, exchange=exchange, released=False)
    (course / ".venv").symlink_to(Path(sys.prefix))
    jupyter = tmp_path / "jupyter"  # the user's Jupyter settings (~/.jupyter): root may serve, on a free port
    jupyter.mkdir()
    (jupyter / "jupyter_server_config.py").write_text(
        "c = get_config()  # noqa\nc.ServerApp.allow_root = True\nc.ServerApp.open_browser = False\n"
    )
    for name in ("ada", "bob", "cy", "dan"):
        home = tmp_path / "students" / name
        home.mkdir(parents=True)
        (home / "nbgrader_config.py").write_text(
            f"c = get_config()  # noqa\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
        )
    env = {
        "PATH": f"{course / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "JUPYTER_CONFIG_DIR": str(jupyter),
        "JUPYTER_PORT": str(_free_port()),
        "JUPYTER_TOKEN": "readme-test",
        "BROWSER": "true",
    }
    for key in ("COURSE_ALLOW_UNSANDBOXED", "COURSE_GRADING_TAG", "PYTHONPATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    return Instructor(course, instructors_section(), env), exchange


def _hand_in(instructor: Instructor, name: str, mistake_id: str | None = None) -> None:
    """The student fetches week 1, writes the reference's answers (or those with a mistake) and submits."""
    instructor.student(name, "fetch_assignment", "week1")
    path = instructor.course.parent / "students" / name / "week1" / f"{NOTEBOOK}.ipynb"
    nb = notebooks.read(path)
    cells, written = notebooks.solution_cells(nb), answers("week1", NOTEBOOK, mistake_id)
    assert set(cells) == set(written), (sorted(cells), sorted(written))
    for cid, source in written.items():
        cells[cid].source = source
    nbformat.write(nb, str(path))
    instructor.student(name, "submit", "week1", "--student", name)


def _formgrader_lists(instructor: Instructor, port: str, token: str) -> list[dict]:
    """`jupyter lab` as the README runs it: formgrader's own API, once the server answers."""
    server = subprocess.Popen(
        ["bash", "-c", "exec .venv/bin/jupyter lab"], cwd=instructor.course, env=instructor.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/formgrader/api/assignments", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return json.loads(answer.read())
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, f"jupyter lab exited {server.returncode}"
                assert time.monotonic() < deadline, "jupyter lab did not answer within 120 s"
                time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_every_command_of_the_instructors_section_runs_as_written(classroom, tmp_path):
    teacher, exchange = classroom
    course = teacher.course

    out = teacher.run(".venv/bin/course release week1")
    assert "released release/week1/00_tensors.ipynb" in out, out
    out = teacher.run(".venv/bin/course release week2 --notebook 01_convolution")
    assert (course / "release" / "week2" / "01_convolution.ipynb").is_file(), out
    out = teacher.run(".venv/bin/course release --check")
    assert "week1: release/ is up to date" in out and "week2: release/ is up to date" in out, out
    out = teacher.run(".venv/bin/course audit week1")
    assert "every mistake is caught" in out, out

    teacher.run("nbgrader release_assignment week1")
    assert (exchange / COURSE_ID / "outbound" / "week1" / f"{NOTEBOOK}.ipynb").is_file()
    _hand_in(teacher, "ada")
    _hand_in(teacher, "bob", MISTAKE)
    due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    teacher.run('nbgrader db assignment add week1 --duedate="2026-10-05 23:59 UTC"',
                fill={"2026-10-05 23:59": f"{due:%Y-%m-%d %H:%M:%S}"})  # fmt: skip
    teacher.run("course extension week1 STUDENT 24", fill={"STUDENT": "dan"})
    while datetime.now(UTC) < due + timedelta(seconds=1):
        time.sleep(0.1)
    _hand_in(teacher, "cy")
    _hand_in(teacher, "dan")
    teacher.run(".venv/bin/nbgrader collect week1")
    for s in ("ada", "bob", "cy", "dan"):
        folder = course / "submitted" / s / "week1"
        assert (folder / f"{NOTEBOOK}.ipynb").is_file() and (folder / "timestamp.txt").is_file(), s

    # the class in two jobs, then the gradebook from their results; `course grade` after them grades nothing
    for k in ("1/2", "2/2"):
        teacher.run("course grade week1 submitted --shard K/N", fill={"K/N": k})
    results = sorted((course / "autograded").glob(f"*/week1/{NOTEBOOK}.result.json"))
    assert [r.parent.parent.name for r in results] == ["ada", "bob", "cy", "dan"], results
    teacher.run("course grade week1 submitted --merge")
    saved = {r: r.stat().st_mtime_ns for r in results}
    teacher.run(".venv/bin/course grade week1 submitted")
    assert {r: r.stat().st_mtime_ns for r in results} == saved  # every result reused
    scores = _auto_scores(course)
    exercises = ("broadcasting", "indexing", "views_and_reshape")
    for s in ("ada", "cy", "dan"):
        assert [scores[s, e] for e in exercises] == [1, 1, 1], scores
    assert scores["bob", "broadcasting"] < 1 and [scores["bob", e] for e in exercises[1:]] == [1, 1], scores
    penalties = dict(
        _gradebook(
            course,
            "select s.id, n.late_submission_penalty from submitted_notebook n join submitted_assignment a "
            "on a.id = n.assignment_id join student s on s.id = a.student_id",
        )
    )
    assert penalties["cy"] == 3 and not penalties["ada"] and not penalties["bob"] and not penalties["dan"]

    listed = _formgrader_lists(teacher, teacher.env["JUPYTER_PORT"], teacher.env["JUPYTER_TOKEN"])
    teacher.ran.add(".venv/bin/jupyter lab")
    week1 = next(a for a in listed if a["name"] == "week1")
    assert week1["num_submissions"] == 4, week1

    teacher.run(".venv/bin/course report week1")
    rows = list(csv.DictReader((course / "reports" / "_class" / "week1" / "class.csv").open()))
    assert {r["student"] for r in rows} == {"ada", "bob", "cy", "dan"}
    assert [r["mistakes"] for r in rows if r["student"] == "bob" and r["exercise"] == "broadcasting"] == [MISTAKE]
    assert (course / "reports" / "_class" / "week1" / "index.html").is_file()
    teacher.run(".venv/bin/course similarity week1")
    teacher.run("course similarity week1 [SUBMISSION...]", fill={" [SUBMISSION...]": " submitted/ada submitted/cy"})
    pairs = list(csv.DictReader((course / "reports" / "_class" / "week1" / "similarity" / "pairs.csv").open()))
    assert len(pairs) == 1 and {pairs[0]["student_a"], pairs[0]["student_b"]} == {"ada", "cy"}, pairs

    teacher.run(".venv/bin/nbgrader generate_feedback week1")
    says = mistake("week1", NOTEBOOK, MISTAKE).says
    for s in ("ada", "bob", "cy", "dan"):
        page = html.unescape(
            re.sub(r"<[^>]+>", "", (course / "feedback" / s / "week1" / f"{NOTEBOOK}.html").read_text())
        )
        assert "Test cell (Score" in page and (says in page) == (s == "bob"), s
    teacher.run(".venv/bin/nbgrader release_feedback week1")
    assert len(list((exchange / COURSE_ID / "feedback").glob("*.html"))) == 4

    teacher.run(".venv/bin/nbgrader export")
    grades = {r["student_id"]: r for r in csv.DictReader((course / "grades.csv").open())}
    assert float(grades["cy"]["late_submission_penalty"]) == 3 and float(grades["ada"]["score"]) == 3, grades
    teacher.run(".venv/bin/course export csv week1 --out grades-lms.csv")
    lms = {r["student"]: r for r in csv.DictReader((course / "grades-lms.csv").open())}
    assert lms["ada"]["week1"] == "3" and lms["cy"]["week1"] == "0", lms
    teacher.run(".venv/bin/course export canvas week1 --out canvas.csv")
    teacher.run(".venv/bin/course export moodle week1 --out moodle.csv")
    canvas = (course / "canvas.csv").read_text().splitlines()
    moodle = (course / "moodle.csv").read_text().splitlines()
    assert "Points Possible" in canvas[1] and len(canvas) == 6, canvas  # header, points possible, 4 students
    assert len(moodle) == 5, moodle

    # nbgrader's own autograde refuses, and the hidden tests' scores stay
    # (the README names it without an assignment; nbgrader asks for one)
    out = teacher.run("nbgrader autograde", fill={"autograde": "autograde week1"}, expect=1)
    assert "course grade" in out, out[-3000:]
    assert _auto_scores(course) == scores

    student_tree = tmp_path / "for-students"
    teacher.run("course export student DIR", fill={"DIR": str(student_tree)})
    assert (student_tree / "release" / "week1" / f"{NOTEBOOK}.ipynb").is_file()
    assert not (student_tree / "solutions").exists() and not (student_tree / "autograder").exists()
    teacher.run("course export gradescope week1")
    with zipfile.ZipFile(course / "week1-gradescope.zip") as bundle:
        assert any(n.endswith(f"test_{NOTEBOOK}.py") for n in bundle.namelist()), bundle.namelist()

    _students_environment(teacher)

    mentions = {c for c in teacher.commands - teacher.ran if any(_bare(r).startswith(_bare(c)) for r in teacher.ran)}
    assert teacher.commands - mentions == teacher.ran, sorted(teacher.commands - mentions - teacher.ran)


def _students_environment(teacher: Instructor) -> None:
    """The two commands for the students' environment, run in a copy of the venv's Jupyter settings (they
    change the environment they run in): formgrader and the instructor tools are off there afterwards."""
    readable = ReadablePython(venv_binds=((Path(sys.prefix) / "share", "share"),))
    try:
        shutil.copytree(Path(sys.prefix) / "etc" / "jupyter", readable.venv / "etc" / "jupyter")
        lab = next(c for c in teacher.commands if c.startswith("jupyter labextension disable"))
        server = next(c for c in teacher.commands if c.startswith("jupyter server extension disable"))
        for command in (lab, server):
            teacher.ran.add(command)
            done = subprocess.run(readable.command(command), env=readable.environment(), capture_output=True,
                                  text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, (command, done.stderr[-2000:])
        listing = subprocess.run(
            readable.command("jupyter labextension list 2>&1; jupyter server extension list 2>&1"),
            env=readable.environment(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout)  # the listing's colours
        assert "Disabled extensions:" in text, text[-3000:]
        disabled = text.split("Disabled extensions:")[1]
        for plugin in lab.split()[3:]:
            assert plugin in disabled, (plugin, text[-3000:])
        assert re.search(r"nbgrader\.server_extensions\.formgrader\s+disabled", text), text[-3000:]
    finally:
        readable.close()
