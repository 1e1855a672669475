"""A class graded in shards, as the jobs of a cluster run them (`course grade --shard K/N`, then `--merge`):
separate processes, one killed halfway and run again, one run twice; every submission graded exactly once,
and the gradebook and the reports the same as when one machine grades the class. On SQLite (the merge
writes the gradebook) and on a real PostgreSQL server (the shards write it at the same time)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import COURSE_BIN, GOOD_ADD, GOOD_SCALE, run_course, submission

pytestmark = pytest.mark.slow

SLOW = "import time\ntime.sleep(1.5)\n"  # so that a shard can be stopped between two submissions
CLASS = {
    "ana": {"add-impl": SLOW + GOOD_ADD, "scale-impl": GOOD_SCALE},
    "ben": {"add-impl": SLOW + "def add(a, b):\n    return a - b", "scale-impl": GOOD_SCALE},
    "cai": {"add-impl": SLOW + GOOD_ADD},
    "dee": {"add-impl": SLOW + GOOD_ADD, "scale-impl": "def scale(x, k):\n    return x"},
    "eli": {"add-impl": SLOW + "def add(a, b):\n    return 0"},
    "fay": {"add-impl": SLOW + GOOD_ADD, "scale-impl": GOOD_SCALE},
    "gus": {"add-impl": SLOW + "def add(a, b):\n    return a * b", "scale-impl": GOOD_SCALE},
}
SHARDS = 3  # shard 1: ana, dee, gus; shard 2: ben, eli; shard 3: cai, fay


def make_class(course):
    for student, cells in CLASS.items():
        submission(course, student, cells)
    (course.root / "submitted" / "dee" / "toy" / "adder.ipynb").write_text("not a notebook")


def gradebook_rows(db_url):
    """Every grade of the gradebook, by student, notebook and cell; and the number of submissions each
    student has (one per assignment, whoever wrote it)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        grades = sorted(
            (s.id, nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
            for s in gb.students
            for sub in s.submissions
            for nb in sub.notebooks
            for g in nb.grades
        )
        submissions = {s.id: len(s.submissions) for s in gb.students}
    return grades, submissions


def pages(root):
    reports = root / "reports"
    return {p.relative_to(reports).as_posix(): p.read_text() for p in reports.rglob("*.html")}


def result_files(course):
    """result file -> (inode, mtime): a file written again (a submission graded twice) changes both."""
    return {
        p.parts[-3]: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (course.root / "autograded").glob("*/toy/adder.result.json")
    }


def shard(course, k, *extra):
    return subprocess.Popen(
        [str(COURSE_BIN), "grade", "toy", "submitted", "--shard", f"{k}/{SHARDS}", "--workers", "1", *extra],
        cwd=course.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process):
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-3000:]
    return out


@pytest.fixture
def one_machine(mini, tmp_path):
    """The same class graded in one process, in a copy of the course: what the shards must reproduce."""
    make_class(mini)
    alone = tmp_path / "alone"
    shutil.copytree(mini.root, alone)
    out = run_course("grade", "toy", "submitted", cwd=alone, env=dict(os.environ, COURSE_ROOT=str(alone)))
    assert out.returncode == 0, out.stderr
    return alone


def grade_in_shards(course, db_args=()):
    """Shards 1..N at once; shard 1 killed after its first result, then run again; shard 2 run twice."""
    running = {k: shard(course, k, *db_args) for k in range(1, SHARDS + 1)}
    deadline = time.monotonic() + 300
    while not {"ana", "gus"} & result_files(course).keys():
        assert running[1].poll() is None, "shard 1 ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(running[1].pid, signal.SIGKILL)
    running[1].wait()
    first = result_files(course)
    assert len({"ana", "gus"} & first.keys()) == 1, first  # stopped halfway
    finish(running[2]), finish(running[3])

    merged = run_course("grade", "toy", "submitted", "--merge", *db_args, cwd=course.root)
    assert merged.returncode == 2 and "have no result" in merged.stderr  # shard 1 is not done: nothing merged

    finish(shard(course, 1, *db_args))  # grades only what it was missing
    again = finish(shard(course, 2, *db_args))  # grades nothing
    assert "2 of 2 notebook(s) were graded before" in again
    files = result_files(course)
    assert files.keys() == set(CLASS)
    assert {s: files[s] for s in first} == first  # nothing graded twice
    for _ in range(2):  # the merge is idempotent
        merged = run_course("grade", "toy", "submitted", "--merge", *db_args, cwd=course.root)
        assert merged.returncode == 0, merged.stderr
    assert result_files(course) == files


def test_shards_and_merge_give_what_one_machine_gives(mini, one_machine):
    grade_in_shards(mini)
    url = f"sqlite:///{mini.root / 'gradebook.db'}"
    assert gradebook_rows(url) == gradebook_rows(f"sqlite:///{one_machine / 'gradebook.db'}")
    assert pages(mini.root) == pages(one_machine)


# -- PostgreSQL -------------------------------------------------------------------------------------------------
def _pg_bin(name):
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    assert found, f"{name}: PostgreSQL's server is needed (Debian's postgresql package; `make setup` installs it)"
    return found


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own in a temporary folder, on a Unix socket only; yields its SQLAlchemy URL
    for a new database. The server runs as the `postgres` user (it refuses root), and is stopped after."""
    import pwd

    user = pwd.getpwnam("postgres")
    # pytest's own temporary folders are root's alone (mode 700): the server's folder lies outside them
    home = Path(tempfile.mkdtemp(prefix="course-pg-"))
    os.chown(home, user.pw_uid, user.pw_gid)

    def as_postgres(*args, **kw):
        return subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *args],
            capture_output=True,
            text=True,
            timeout=120,
            **kw,
        )

    done = as_postgres(_pg_bin("initdb"), "-D", str(home / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert done.returncode == 0, done.stderr
    options = f"-c listen_addresses='' -k {home} -p 5499 -c max_connections=50"
    done = as_postgres(
        _pg_bin("pg_ctl"), "-D", str(home / "data"), "-o", options, "-l", str(home / "log"), "-w", "start"
    )
    assert done.returncode == 0, done.stderr + (home / "log").read_text()
    try:
        done = as_postgres(_pg_bin("createdb"), "-h", str(home), "-p", "5499", "-U", "postgres", "gradebook")
        assert done.returncode == 0, done.stderr
        yield f"postgresql+psycopg2://postgres@/gradebook?host={home}&port=5499"
    finally:
        as_postgres(_pg_bin("pg_ctl"), "-D", str(home / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_shards_write_one_postgresql_gradebook_at_once(mini, one_machine, postgres):
    grade_in_shards(mini, ("--db", postgres))
    rows, submissions = gradebook_rows(postgres)
    assert (rows, submissions) == gradebook_rows(f"sqlite:///{one_machine / 'gradebook.db'}")
    assert set(submissions.values()) == {1}  # one submission per student, whichever process wrote it first
