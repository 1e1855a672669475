"""Helpers shared by the tooling tests."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from course import notebooks
from course.grading import pipeline
from course.sandbox.launch import UID_BASE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COURSE_BIN = Path(sys.executable).with_name("course")


def grade(course, assignment, submissions, progress=None, **options):
    """Grade as `course grade` does, with these GradingOptions (seed, workers, journal, ...)."""
    return pipeline.grade(course, assignment, submissions, pipeline.GradingOptions(**options), progress=progress)


def submission(course, student: str, cells: dict[str, str], *, base="release", folder=None) -> Path:
    """Write `<folder>/<student>/toy/adder.ipynb`: the release notebook with some solution cells replaced."""
    nb = notebooks.read(course.root / base / "toy" / "adder.ipynb")
    sol = notebooks.solution_cells(nb)
    for cid, src in cells.items():
        sol[cid].source = src
    out = (folder or course.root / "submitted") / student / "toy" / "adder.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


def run_course(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([str(COURSE_BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sandbox_processes(tag: str) -> list[str]:
    """Processes still running under a sandbox user id, started by graders whose COURSE_GRADING_TAG was
    `tag` (other gradings may be running on the machine at the same time)."""
    alive = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields.get("Uid", "0").split()[0]) >= UID_BASE and f"COURSE_GRADING_TAG={tag}".encode() in environ:
            alive.append(f"{status.parent.name} {fields.get('Name', '').strip()}")
    return alive


GOOD_ADD = "def add(a, b):\n    return a + b"
GOOD_SCALE = "import numpy as np\ndef scale(x, k):\n    return np.asarray(x) * k"


# -- an instructor without root -------------------------------------------------------------------------------
INSTRUCTOR = "course-instructor"  # a user the tests create, to grade without root


def instructor_account() -> tuple[int, int]:
    """(uid, gid) of an unprivileged account for the tests, created if missing (the tests run as root)."""
    import pwd

    if os.geteuid() != 0:
        raise RuntimeError("creating a user to grade without root needs root")
    try:
        entry = pwd.getpwnam(INSTRUCTOR)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INSTRUCTOR],
                       check=True, capture_output=True)  # fmt: skip
        entry = pwd.getpwnam(INSTRUCTOR)
    return entry.pw_uid, entry.pw_gid


def run_with_readable_python(
    command: str, cwd: Path, env: dict[str, str] | None = None, user: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a shell `command` where a process that is not root can run this project's Python: as the
    unprivileged instructor (`user`), or as root whose workers run as other users (a container's grader).
    Root's home (mode 700) holds the venv's Python here, so the command runs in a mount namespace of its own
    where the repository is bound at a reachable path, and Debian's Python 3.11 runs a venv whose
    site-packages are this venv's (the packages are the same; only the interpreter differs). In the command,
    $COURSE_VENV is that venv and $COURSE_REPO the repository."""
    stage = Path(tempfile.mkdtemp(prefix="course-python-"))
    stage.chmod(0o755)
    repo, home, venv = stage / "repo", stage / "home", stage / "venv"
    repo.mkdir()
    home.mkdir()
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
    switch = ""
    if user:
        uid, gid = instructor_account()
        os.chown(home, uid, gid)
        switch = f"setpriv --reuid={uid} --regid={gid} --clear-groups "
    binds = f"mount --bind {REPO} {repo} && mount --bind {site} {venv}/lib/python3.11/site-packages"
    script = f"{binds} && exec {switch}sh -c {shlex.quote(command)}"
    environment = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": f"{repo}:{repo}/datasets",  # the course package from the bound repository
        "COURSE_VENV": str(venv),
        "COURSE_REPO": str(repo),
        **(env or {}),
    }
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=cwd,
                              env=environment, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_as_instructor(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    """`course ARGS...` run by the unprivileged instructor, as one who set the course up for themselves."""
    return run_with_readable_python(f'"$COURSE_VENV/bin/python" -m course.cli {shlex.join(args)}', cwd, env,
                                    user=True, timeout=timeout)  # fmt: skip
