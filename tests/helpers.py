"""Helpers shared by the tooling tests."""

import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

from course import catalog, config, notebooks
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


def nbgrader(root, *args):
    """nbgrader's own command, from this venv, in the course folder `root`."""
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    return subprocess.run(
        [os.path.join(bindir, "nbgrader"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def collected(course, student, cells, when):
    """As `nbgrader collect` leaves it: the notebook and nbgrader's timestamp.txt beside it."""
    path = submission(course, student, cells)
    (path.parent / "timestamp.txt").write_text(f"{when}.000000 UTC")
    return path


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


def course_directory(
    root: Path, cut: dict[str, tuple[str, ...]], *, exchange: Path | None = None, released: bool = True
) -> Path:
    """The repository's course as a fresh nbgrader course directory at `root`, cut to the notebooks
    `cut` names per assignment (so that releasing, auditing and grading take seconds): its course.yaml,
    nbgrader_config.py (with nbgrader's exchange at `exchange`), README, the shared probes, the data registry
    and loaders, and each notebook's source, solution, hidden suite, catalogs and requirements, with its release
    unless `released` is false."""
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    kept = {}
    for name, names in cut.items():
        week = data["assignments"][name]
        week["notebooks"] = [nb for nb in week["notebooks"] if nb["name"] in names]
        kept[name] = week
    data["assignments"] = kept
    root.mkdir(parents=True)
    (root / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    settings = (REPO / "nbgrader_config.py").read_text()
    if exchange is not None:
        settings += f"c.Exchange.root = {str(exchange)!r}\n"
    (root / "nbgrader_config.py").write_text(settings)
    files = ["datasets/registry.yaml", "autograder/probes.py"]
    for a, names in cut.items():
        for nb in names:
            files += [f"source/{a}/{nb}.ipynb", f"solutions/{a}/{nb}.py", f"autograder/{a}/test_{nb}.py",
                      f"autograder/{a}/mistakes/{nb}.yaml", f"autograder/{a}/alternatives/{nb}.yaml"]  # fmt: skip
            files += [f"release/{a}/{nb}.ipynb"] if released else []
            files += [f for f in (f"autograder/{a}/requirements/{nb}.yaml", f"autograder/{a}/equivalent/{nb}.yaml")
                      if (REPO / f).is_file()]  # fmt: skip
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, root / f)
    shutil.copy(REPO / "README.md", root / "README.md")
    shutil.copytree(REPO / "datasets" / "coursedata", root / "datasets" / "coursedata",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return root


def mistake(assignment: str, notebook: str, mistake_id: str) -> catalog.Variant:
    """A cataloged mistake of the repository's course."""
    course = config.load(REPO)
    nb = course.assignment(assignment).notebook(notebook)
    return next(m for m in catalog.load(nb, course.paths(nb).mistakes) if m.id == mistake_id)


def answers(assignment: str, notebook: str, mistake_id: str | None = None) -> dict[str, str]:
    """Solution cell id -> source: the source notebook's solutions, or those with the mistake written in."""
    course = config.load(REPO)
    source = notebooks.read(course.paths(course.assignment(assignment).notebook(notebook)).source)
    if mistake_id:
        source = catalog.apply(source, [mistake(assignment, notebook, mistake_id)])
    return {cid: c.source for cid, c in notebooks.solution_cells(source).items()}


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


class ReadablePython:
    """A place where a process that is not root can run this project's Python: as the unprivileged
    instructor, as the students of a JupyterHub, or as root whose workers run as other users (a container's
    grader). Root's home (mode 700) holds the venv's Python here, so each command runs in a mount namespace
    of its own where the repository is bound at a reachable path (`repo`), and Debian's Python 3.11 runs a
    venv (`venv`) whose site-packages are this venv's (the packages are the same; only the interpreter
    differs; the venv's commands, `nbgrader`, `course`, `jupyter` and the others, are written anew for it).
    `venv_binds` are more folders of that venv bound the same way: (source, path in the venv)."""

    def __init__(self, venv_binds: tuple[tuple[Path, str], ...] = ()):
        self.stage = Path(tempfile.mkdtemp(prefix="course-python-"))
        self.stage.chmod(0o755)
        self.repo, self.home, self.venv = self.stage / "repo", self.stage / "home", self.stage / "venv"
        self.repo.mkdir()
        self.home.mkdir()
        subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(self.venv)], check=True)
        self.python = self.venv / "bin" / "python"
        for entry in importlib.metadata.entry_points(group="console_scripts"):
            script = self.venv / "bin" / entry.name
            if not script.exists():  # as pip writes them, for this venv's Python
                name = entry.attr.split(".")[0]
                script.write_text(f"#!{self.python}\nimport sys\nfrom {entry.module} import {name}\n\n"
                                  f"if __name__ == '__main__':\n    sys.exit({entry.attr}())\n")  # fmt: skip
                script.chmod(0o755)
        site = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
        self.binds = ((REPO, self.repo), (site, self.venv / "lib" / "python3.11" / "site-packages"))
        self.binds += tuple((source, self.venv / inside) for source, inside in venv_binds)
        for _, target in self.binds:
            target.mkdir(parents=True, exist_ok=True)

    def command(self, command: str, user: tuple[int, int] | None = None) -> list[str]:
        """The argv that runs the shell `command` there, as root or as the user (uid, gid)."""
        switch = f"setpriv --reuid={user[0]} --regid={user[1]} --clear-groups " if user else ""
        binds = " && ".join(f"mount --bind {shlex.quote(str(s))} {shlex.quote(str(t))}" for s, t in self.binds)
        script = f"{binds} && exec {switch}sh -c {shlex.quote(command)}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a command there; in it, $COURSE_VENV is the venv and $COURSE_REPO the repository."""
        return {
            "PATH": f"{self.venv}/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{self.repo}:{self.repo}/datasets",  # the course package from the bound repository
            "COURSE_VENV": str(self.venv),
            "COURSE_REPO": str(self.repo),
            **(env or {}),
        }

    def close(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def run_with_readable_python(
    command: str, cwd: Path, env: dict[str, str] | None = None, user: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a shell `command` with `ReadablePython`: as the unprivileged instructor (`user`), or as root."""
    readable = ReadablePython()
    try:
        account = None
        if user:
            account = instructor_account()
            os.chown(readable.home, *account)
        return subprocess.run(readable.command(command, account), cwd=cwd, env=readable.environment(env),
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    finally:
        readable.close()


def run_as_instructor(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    """`course ARGS...` run by the unprivileged instructor, as one who set the course up for themselves."""
    return run_with_readable_python(f'"$COURSE_VENV/bin/python" -m course.cli {shlex.join(args)}', cwd, env,
                                    user=True, timeout=timeout)  # fmt: skip
