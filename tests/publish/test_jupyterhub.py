"""A class on JupyterHub, end to end: a hub on 127.0.0.1 whose single-user servers run as the students' own
Unix users, nbgrader's exchange between them and the instructor, and `course grade` in the middle.

The instructor releases week 1 with nbgrader; three students fetch it through their servers' assignment
list, write their answers through the contents API (one correct, one with a cataloged mistake, one correct
but after the due date) and submit; the instructor collects, grades with `course grade` (sandboxed, without
root, as an instructor account grades), generates and releases the feedback; each student fetches it. The
course is week 1 cut to its first notebook, so that the grading takes seconds; every command is the one the
README gives. `make hub` installs the hub's proxy (configurable-http-proxy, from npm) into .hub/."""

import ast
import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

import helpers
from course import notebooks
from helpers import REPO, ReadablePython, course_directory

pytestmark = pytest.mark.slow  # a hub, three servers, a graded class

PROXY = REPO / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE_ID = "dl-first-principles"
ASSIGNMENT = "week1"
NOTEBOOK = "00_tensors"
MISTAKE = "normalize-without-keepdim"  # a cataloged mistake of the broadcasting exercise
STUDENTS = ("ada", "grace", "linus")  # correct, a mistake, late


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


# -- processes and accounts ------------------------------------------------------------------------------------
def _processes_of(uids: set[int]) -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            line = next(x for x in status.read_text().splitlines() if x.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(line.split()[1]) in uids:
            pids.append(int(status.parent.name))
    return pids


def _end(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def base():
    """A folder every user may traverse (pytest's own temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="course-hub-"))
    folder.chmod(0o755)
    (folder / "home").mkdir(mode=0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def accounts(base):
    """Unix users made for this test, removed afterwards with their homes: the instructor and the students."""
    if os.geteuid() != 0:
        raise RuntimeError("the JupyterHub test creates Unix users: it needs root")
    tag = secrets.token_hex(3)
    made: dict[str, Account] = {}
    try:
        for role in ("teacher", *STUDENTS):
            name = f"chub{tag}-{role}"
            home = base / "home" / name
            done = subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stderr
            entry = pwd.getpwnam(name)
            made[role] = Account(name, entry.pw_uid, entry.pw_gid, home)
        yield made
    finally:
        uids = {a.uid for a in made.values()}
        for _ in range(50):  # what a test left running as these users, by process id
            left = _processes_of(uids)
            if not left:
                break
            _end(left)
            time.sleep(0.1)
        for a in made.values():
            subprocess.run(["userdel", "--remove", a.name], capture_output=True, timeout=60)


# -- the students' environment and the hub ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost only, whatever the environment
_opener.handlers = [h for h in _opener.handlers if not isinstance(h, urllib.request.HTTPRedirectHandler)]


def _http(method: str, url: str, token: str, form: dict | None = None, body=None, timeout: float = 60):
    """(status, decoded JSON or text) of one request; redirects are not followed."""
    headers = {"Authorization": f"token {token}"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Hub:
    """JupyterHub as root in a mount namespace where the project's Python is readable (`ReadablePython`), so
    that LocalProcessSpawner's servers, started as the students, can run it."""

    def __init__(self, base: Path, readable: ReadablePython):
        self.dir = base / "hub"
        self.dir.mkdir(mode=0o700)
        self.readable = readable
        self.token = secrets.token_hex(32)
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = self.dir / "jupyterhub.log"
        students_env = {"PATH": f"{readable.venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        settings = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{_free_port()}",
            "JupyterHub.db_url": f"sqlite:///{self.dir / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.dir / "cookie_secret"),
            "JupyterHub.pid_file": str(self.dir / "jupyterhub.pid"),
            "JupyterHub.authenticator_class": "null",  # nobody logs in: the test holds each student's token
            "JupyterHub.spawner_class": "localprocess",
            "JupyterHub.services": [{"name": "course-test", "api_token": self.token}],
            "JupyterHub.load_roles": [{"name": "admin", "services": ["course-test"]}],
            "JupyterHub.cleanup_servers": True,
            "ConfigurableHTTPProxy.command": [str(PROXY)],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{_free_port()}",
            "ConfigurableHTTPProxy.auth_token": secrets.token_hex(32),
            "ConfigurableHTTPProxy.pid_file": str(self.dir / "proxy.pid"),
            "Spawner.cmd": [str(readable.venv / "bin" / "jupyterhub-singleuser")],
            "Spawner.environment": students_env,
            "Spawner.start_timeout": 90,
            "Spawner.http_timeout": 90,
        }
        lines = ["c = get_config()  # noqa"] + [f"c.{k} = {v!r}" for k, v in settings.items()]
        (self.dir / "jupyterhub_config.py").write_text("\n".join(lines) + "\n")
        command = f"exec {sys.executable} -m jupyterhub -f {self.dir / 'jupyterhub_config.py'}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(readable.command(command), cwd=self.dir, env=readable.environment(),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.wait(lambda: _http("GET", f"{self.url}/hub/api/", self.token, timeout=5)[0] == 200, 90, "the hub to start")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait(self, ready, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the hub exited while waiting for {what}:\n{self.tail()}"
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"waited {seconds} s for {what}:\n{self.tail()}")

    def api(self, method: str, path: str, body=None):
        return _http(method, f"{self.url}/hub/api{path}", self.token, body=body)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)  # the hub stops the servers and the proxy
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        pid_file = self.dir / "proxy.pid"
        if pid_file.is_file():  # a proxy the hub could not stop
            pid = int(pid_file.read_text().strip() or 0)
            try:
                if pid and "configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_text():
                    _end([pid])
            except OSError:
                pass


@pytest.fixture
def classroom(base, accounts):
    """The exchange, the students' environment (the venv's Jupyter config, nbgrader's exchange, formgrader
    turned off as the README says), the instructor's course directory, and the hub with a server per student."""
    if not PROXY.is_file():
        raise RuntimeError(f"{PROXY} is missing: `make hub` installs JupyterHub's proxy")
    exchange = base / "exchange"
    exchange.mkdir()
    exchange.chmod(0o1777)  # as nbgrader asks of its exchange: every user writes, nobody removes another's files
    readable = ReadablePython(venv_binds=((Path(sys.prefix) / "share", "share"),))  # JupyterLab's files
    try:
        etc = readable.venv / "etc" / "jupyter"  # a copy: the step below changes it
        shutil.copytree(Path(sys.prefix) / "etc" / "jupyter", etc)
        (etc / "nbgrader_config.py").write_text(f"c = get_config()  # noqa\nc.Exchange.root = {str(exchange)!r}\n")
        # the README's step for the students' environment: no formgrader for them
        off = subprocess.run(
            readable.command("jupyter server extension disable nbgrader.server_extensions.formgrader"),
            env=readable.environment(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert off.returncode == 0, off.stderr[-2000:]
        teacher = accounts["teacher"]
        course = course_directory(teacher.home / "course", {ASSIGNMENT: (NOTEBOOK,)}, exchange=exchange)
        subprocess.run(["chown", "-R", f"{teacher.uid}:{teacher.gid}", str(course)], check=True, timeout=60)
        hub = Hub(base, readable)
        try:
            yield Classroom(hub, readable, accounts, course, exchange)
        finally:
            hub.stop()
    finally:
        readable.close()


@dataclass
class Classroom:
    hub: Hub
    readable: ReadablePython
    accounts: dict[str, Account]
    course: Path
    exchange: Path

    def instructor(self, command: str, timeout: float = 300) -> str:
        """A shell command run by the instructor in the course directory; its output (it must succeed)."""
        t = self.accounts["teacher"]
        env = {"HOME": str(t.home), "USER": t.name, "LOGNAME": t.name, "MPLBACKEND": "Agg"}
        done = subprocess.run(
            self.readable.command(f"cd {self.course} && {command}", (t.uid, t.gid)),
            env=self.readable.environment(env), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}:\n{out[-4000:]}"
        return out


class Student:
    """One student, through the hub's proxy to their own server, with their own token."""

    def __init__(self, hub: Hub, account: Account, token: str):
        self.hub, self.account, self.token = hub, account, token
        self.server = f"{hub.url}/user/{account.name}"

    def assignments(self, action: str) -> dict:
        """nbgrader's assignment list: POST /assignments/<fetch|submit|fetch_feedback>."""
        status, answer = _http("POST", f"{self.server}/assignments/{action}", self.token,
                               form={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT})  # fmt: skip
        assert status == 200 and isinstance(answer, dict), (action, status, answer, self.hub.tail())
        assert answer["success"], (action, answer.get("value"))
        return answer

    def listed(self) -> list[dict]:
        status, answer = _http("GET", f"{self.server}/assignments?course_id={COURSE_ID}", self.token)
        assert status == 200 and answer["success"], answer
        return [a for a in answer["value"] if a["assignment_id"] == ASSIGNMENT]

    def contents(self, path: str) -> dict:
        status, answer = _http("GET", f"{self.server}/api/contents/{urllib.parse.quote(path)}?content=1", self.token)
        assert status == 200, (path, status, answer)
        return answer

    def save(self, path: str, nb) -> None:
        body = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))}
        status, answer = _http("PUT", f"{self.server}/api/contents/{urllib.parse.quote(path)}", self.token, body=body)
        assert status in (200, 201), (path, status, answer)


def _start_servers(hub: Hub, accounts: dict[str, Account]) -> dict[str, Student]:
    names = [accounts[s].name for s in STUDENTS]
    status, answer = hub.api("POST", "/users", {"usernames": names})
    assert status == 201, (status, answer)
    for name in names:
        status, answer = hub.api("POST", f"/users/{name}/server")
        assert status in (201, 202), (name, status, answer, hub.tail())

    def ready(name):
        status, user = hub.api("GET", f"/users/{name}")
        return status == 200 and (user.get("servers") or {}).get("", {}).get("ready")

    for name in names:
        hub.wait(lambda name=name: ready(name), 120, f"the server of {name}")
    students = {}
    for s in STUDENTS:
        status, answer = hub.api("POST", f"/users/{accounts[s].name}/tokens", {"note": "hub test", "expires_in": 1800})
        assert status == 201, (status, answer)
        students[s] = Student(hub, accounts[s], answer["token"])
    return students


# -- what the students write -----------------------------------------------------------------------------------
def _answer(student: Student, kind: str) -> None:
    path = f"{ASSIGNMENT}/{NOTEBOOK}.ipynb"
    nb = nbformat.from_dict(student.contents(path)["content"])
    cells = notebooks.solution_cells(nb)
    answers = helpers.answers(ASSIGNMENT, NOTEBOOK, MISTAKE if kind == "mistake" else None)
    assert set(cells) == set(answers), (sorted(cells), sorted(answers))
    for cid, src in answers.items():
        cells[cid].source = src
    student.save(path, nb)


def _code_lines_of_suite() -> list[str]:
    """The hidden suite's code, without its docstrings (a test's docstring is the hint a report shows)."""
    tree = ast.parse((REPO / "autograder" / ASSIGNMENT / f"test_{NOTEBOOK}.py").read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]
    lines = {line.strip() for line in ast.unparse(tree).splitlines()}
    return sorted(line for line in lines if len(line) >= 24 and not line.startswith(("import ", "from ", "@")))


def _text(page: str) -> str:
    """What a reader of an HTML page sees: tags out, entities decoded (highlighted code is one string again)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _gradebook(course: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(course / "gradebook.db") as con:
        return con.execute(sql).fetchall()


# -- the test --------------------------------------------------------------------------------------------------
def test_a_class_on_jupyterhub_from_release_to_feedback(classroom):
    hub, accounts, course = classroom.hub, classroom.accounts, classroom.course
    name = {s: accounts[s].name for s in STUDENTS}

    classroom.instructor(f"nbgrader release_assignment {ASSIGNMENT}")
    assert (classroom.exchange / COURSE_ID / "outbound" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file()

    students = _start_servers(hub, accounts)
    ada, grace, linus = (students[s] for s in STUDENTS)
    # each token opens its own server and no other; the students' environment serves no formgrader
    status, _ = _http("GET", f"{grace.server}/api/contents/", ada.token)
    assert status == 403, status
    status, _ = _http("GET", f"{ada.server}/formgrader", ada.token)
    assert status == 404, status

    for s, kind in ((ada, "correct"), (grace, "mistake"), (linus, "correct")):
        s.assignments("fetch")
        fetched = [a for a in s.listed() if a["status"] == "fetched"]
        assert [nb["notebook_id"] for a in fetched for nb in a["notebooks"]] == [NOTEBOOK], fetched
        notebook = s.account.home / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        assert notebook.stat().st_uid == s.account.uid  # written by the student's server, as the student
        _answer(s, kind)

    ada.assignments("submit")
    grace.assignments("submit")
    due = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    classroom.instructor(f'nbgrader db assignment add {ASSIGNMENT} --duedate="{due:%Y-%m-%d %H:%M:%S} UTC"')
    while datetime.now(UTC) < due + timedelta(seconds=1):
        time.sleep(0.1)
    linus.assignments("submit")
    submitted = [x for x in linus.listed() if x["status"] == "submitted"]
    assert len(submitted) == 1 and len(submitted[0]["submissions"]) == 1, submitted

    collected = classroom.instructor(f"nbgrader collect {ASSIGNMENT}")
    assert "cheating attempt" not in collected, collected  # each submission is owned by the student it names
    for s in STUDENTS:
        folder = course / "submitted" / name[s] / ASSIGNMENT
        assert (folder / f"{NOTEBOOK}.ipynb").is_file() and (folder / "timestamp.txt").is_file(), s

    graded = classroom.instructor(f"course grade {ASSIGNMENT} submitted", timeout=600)
    assert "graded in: unsandboxed" not in graded and "graded in:" in graded, graded[-3000:]
    classroom.instructor(f"nbgrader generate_feedback {ASSIGNMENT}")
    classroom.instructor(f"nbgrader release_feedback {ASSIGNMENT}")
    released = sorted((classroom.exchange / COURSE_ID / "feedback").glob("*.html"))
    assert len(released) == len(STUDENTS), released

    # the gradebook: full points on time, the broadcasting exercise lost to the mistake, the late one's penalty
    scores = {
        (s, cell): score
        for s, cell, score in _gradebook(
            course,
            "select s.id, c.name, g.auto_score from grade g join base_cell c on c.id = g.cell_id "
            "join submitted_notebook n on n.id = g.notebook_id join submitted_assignment a on a.id = n.assignment_id "
            "join student s on s.id = a.student_id",
        )
    }
    exercises = ("broadcasting", "indexing", "views_and_reshape")
    for s in ("ada", "linus"):
        assert [scores[name[s], e] for e in exercises] == [1, 1, 1], scores
    assert scores[name["grace"], "broadcasting"] < 1, scores
    assert [scores[name["grace"], e] for e in exercises[1:]] == [1, 1], scores
    penalties = dict(
        _gradebook(
            course,
            "select s.id, n.late_submission_penalty from submitted_notebook n join submitted_assignment a "
            "on a.id = n.assignment_id join student s on s.id = a.student_id",
        )
    )
    assert penalties[name["linus"]] == 3, penalties
    assert not penalties[name["ada"]] and not penalties[name["grace"]], penalties

    # each student fetches feedback through their server, and holds their own alone
    suite = _code_lines_of_suite()
    assert suite, "no code read from the hidden suite"
    reference = "return x / x.sum(dim=1, keepdim=True)"  # the line MISTAKE changes
    pages = {}
    for s, student in students.items():
        student.assignments("fetch_feedback")
        folder = student.contents(f"{ASSIGNMENT}/feedback")["content"]
        assert len(folder) == 1, folder  # one submission, one feedback folder
        files = student.contents(folder[0]["path"])["content"]
        assert [f["name"] for f in files] == [f"{NOTEBOOK}.html"], files
        page = student.contents(files[0]["path"])["content"]
        pages[s] = _text(page)
        on_disk = sorted(p.name for p in (student.account.home / ASSIGNMENT / "feedback").rglob("*") if p.is_file())
        assert on_disk == [f"{NOTEBOOK}.html"], on_disk
        listed = [x for x in student.listed() if x["status"] == "submitted"]
        assert [sub["has_local_feedback"] for x in listed for sub in x["submissions"]] == [True], listed

    def scores_shown(s):  # nbgrader's feedback: the notebook's total, then each exercise's grade cell
        total = re.search(rf"{NOTEBOOK} \(Score: ([\d.]+) / 3\.0\)", pages[s])
        cells = re.findall(r"Test cell \(Score: ([\d.]+) / 1\.0\)", pages[s])
        return float(total.group(1)) if total else None, [float(c) for c in cells]

    assert scores_shown("ada") == (3.0, [1.0, 1.0, 1.0]), scores_shown("ada")
    total, cells = scores_shown("grace")
    assert total is not None and total < 3 and cells[0] < 1 and cells[1:] == [1.0, 1.0], (total, cells)
    assert scores_shown("linus") == (0.0, [1.0, 1.0, 1.0]), scores_shown("linus")
    assert "Late submission penalty (Score: -3.0)" in pages["linus"], pages["linus"][:3000]
    assert "Late submission penalty" not in pages["ada"] + pages["grace"]
    for s, text in pages.items():
        for other in STUDENTS:
            if other != s:
                assert name[other] not in text, (s, other)
        leaked = [line for line in suite if line in text]
        assert not leaked, (s, leaked[:5])
    assert reference in pages["ada"]  # her own code, as she wrote it: the check below can see code
    assert reference not in pages["grace"]  # she wrote the mistake; the reference's line is not shown to her
    says = helpers.mistake(ASSIGNMENT, NOTEBOOK, MISTAKE).says
    assert says in pages["grace"], pages["grace"][-3000:]  # what went wrong, in plain words
