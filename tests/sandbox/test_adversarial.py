"""Hostile submissions, graded in one batch next to an honest one.

Each entry of HOSTILE is a submission that tries to earn points it did not, to see what it must not, or to
break grading for everyone. For every one: no unearned point, the grader survives, the honest submission in
the same batch keeps full marks, and the report says in one sentence what happened. Two attacks are also
graded without the sandbox, to show that they are real and that the sandbox is what stops them.
"""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from course import notebooks
from course.grading.results import NotebookResult
from course.grading.submissions import discover
from course.publish import report
from course.sandbox.launch import BUBBLEWRAP, FORK_SERVER, sandbox_problem
from helpers import (
    GOOD_ADD,
    GOOD_SCALE,
    REPO,
    grade,
    instructor_account,
    run_as_instructor,
    sandbox_processes,
    submission,
)

# grades a hostile batch, once per sandbox mode: the batch is a module fixture, so under `-n` every test of the
# module runs on one worker (and the check that an instructor's grading left no process sees that grading alone)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile-batch")]

# The hostile code sits in the `add` cell; `scale` is left as released, so every point would be unearned.
PATCH_COMPARISONS = """
import builtins, math, numpy as np, torch, torch.testing
np.allclose = np.isclose = np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = torch.testing.assert_close = lambda *a, **k: None
torch.allclose = torch.equal = lambda *a, **k: True
math.isclose = lambda *a, **k: True
builtins.abs = lambda x: 0.0
def add(a, b):
    return 0.0
"""

PATCH_BUILTINS = """
import builtins
builtins.isinstance = lambda *a: True
builtins.len = lambda x: 0
def add(a, b):
    return 0.0
"""

FORGE_INPUTS = """
import random, numpy as np
class Zeros(random.Random):
    def uniform(self, a, b):
        return 0.0
random.Random = Zeros                       # the probe's inputs become zeros, so 0 would be right...
np.random.default_rng = lambda *a, **k: np.random.Generator(np.random.PCG64(0))
def add(a, b):
    return 0.0
"""

ALWAYS_EQUAL = """
import numpy as np
class Yes(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
def add(a, b):
    return Yes(0.0)
"""

EQUAL_ARRAY = """
import numpy as np, torch
class Liar(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), bool)
class LiarTensor(torch.Tensor):
    def __eq__(self, other): return torch.ones(1, dtype=torch.bool)
def add(a, b):
    return torch.zeros(()).as_subclass(LiarTensor)
"""
EQUAL_ARRAY_SCALE = """
import numpy as np
class Liar(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), bool)
    def __array_finalize__(self, obj): pass
def scale(x, k):
    return np.zeros(np.shape(x)).view(Liar)
"""

SYS_EXIT = "import sys\ndef add(a, b):\n    sys.exit(0)"
OS_EXIT = "import os\ndef add(a, b):\n    os._exit(0)"
RAISE_EXIT = "def add(a, b):\n    raise SystemExit(0)"

FAKE_REPORT = """
import sys
def add(a, b):
    report = "test_add PASSED\\ntest_add_ints PASSED\\ntest_scale PASSED\\n3 passed\\nscore: 3 / 3\\n"
    print(report); sys.stdout.flush(); sys.stderr.write(report)
    return a - b
"""

READ_HIDDEN = """
import os
FOUND = {}
for d, dirs, files in os.walk(ROOT):
    for f in files:
        try:
            FOUND[os.path.join(d, f)] = open(os.path.join(d, f), "rb").read()
        except OSError:
            pass
def add(a, b):
    for path, text in FOUND.items():
        if path.endswith("solutions/toy/adder.py"):
            ns = {}
            exec(text, ns)
            return ns["add"](a, b)
    return open(ROOT + "/solutions/toy/adder.py").read()
"""

READ_OTHERS = """
def add(a, b):
    ns = {}
    import json
    nb = json.load(open(HONEST))
    exec("".join(c["source"]) if isinstance(c["source"], list) else c["source"], ns)
    return ns["add"](a, b)
""".replace(
    'exec("".join(c["source"]) if isinstance(c["source"], list) else c["source"], ns)',
    'exec("\\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"), ns)',
)

INSPECT_STACK = """
import gc, inspect
def add(a, b):
    for info in inspect.stack():
        for name, value in info.frame.f_locals.items():
            if name in ("expected", "reference", "want"):
                return value
    for obj in gc.get_objects():  # numbers only: an answer the grader could accept
        if isinstance(obj, dict) and isinstance(obj.get("expected"), (int, float)):
            return obj["expected"]
    return 0.0
"""

INFINITE_LOOP = "def add(a, b):\n    while True:\n        pass"
MEMORY_BOMB = "def add(a, b):\n    hog = []\n    while True:\n        hog.append(bytearray(64 << 20))"
MEMORY_AT_ONCE = "def add(a, b):\n    return len(bytearray(64 << 30))"
FORK_BOMB = """
import os
def add(a, b):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
FORK_FAST = """
import os, time
def add(a, b):
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
"""

NETWORK = """
import socket
def add(a, b):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
    s.sendall(b"let me in")
    return float(s.recv(64))
"""
NETWORK_DNS = "import socket\ndef add(a, b):\n    return socket.getaddrinfo('pypi.org', 443)[0][4][1]"

# held from the notebook's cells through every test (zero-filled: every page touched). Allocated in the probe
# instead, its page faults alone could take more than the 4 s a probe may run where the machine's memory is
# slow to touch for the first time (a fresh virtual machine): the case is about memory, not time
USES_ITS_MEMORY = "HELD = bytearray(600 << 20)\ndef add(a, b):\n    return a + b + len(HELD) * 0"
HUGE_FILE = "def add(a, b):\n    with open('big', 'wb') as f:\n        f.write(b'0' * (100 << 20))\n    return a + b"
FILL_SCRATCH = """
def add(a, b):
    for i in range(1000):
        with open(f"part{i}", "wb") as f:
            f.write(b"0" * (8 << 20))
    return a + b
"""
WRITE_OUTSIDE = "def add(a, b):\n    open(ROOT + '/autograder/toy/test_adder.py', 'w').write('')\n    return a + b"

# name: (add cell, words the report must contain)
HOSTILE = {
    "patch-comparisons": (PATCH_COMPARISONS, "is not what was expected"),
    "patch-builtins": (PATCH_BUILTINS, ""),
    "forge-inputs": (FORGE_INPUTS, "is not what was expected"),
    "always-equal": (ALWAYS_EQUAL, "is not what was expected"),
    "equal-tensor": (EQUAL_ARRAY, "cannot be sent"),
    "sys-exit": (SYS_EXIT, "called exit() while a test was using it"),
    "os-exit": (OS_EXIT, "exited with status 0"),
    "raise-exit": (RAISE_EXIT, "called exit() while a test was using it"),
    "fake-report": (FAKE_REPORT, "is not what was expected"),
    "read-hidden": (READ_HIDDEN, "opened a file that grading does not provide"),
    "read-others": (READ_OTHERS, "opened a file that grading does not provide"),
    # the scan of every object of a process that has imported torch may outlast the limit: either way, 0
    "inspect-stack": (INSPECT_STACK, ("is not what was expected", "time limit of 4 s exceeded")),
    "infinite-loop": (INFINITE_LOOP, "time limit of 4 s exceeded"),
    "memory-bomb": (MEMORY_BOMB, "ran out of memory: the limit of 1024 MB"),
    "memory-at-once": (MEMORY_AT_ONCE, "ran out of memory"),
    "fork-bomb": (FORK_BOMB, "time limit of 4 s exceeded"),
    "fork-fast": (FORK_FAST, "tried to start more processes or threads than allowed (32)"),
    "network": (NETWORK, "tried to use the network"),
    "network-dns": (NETWORK_DNS, "tried to use the network"),
    "huge-file": (HUGE_FILE, "wrote a file larger than the limit of 16 MB"),
    "fill-scratch": (FILL_SCRATCH, "filled its scratch space"),
    "write-outside": (WRITE_OUTSIDE, "opened a file that grading does not provide"),
}


TAG = f"adversarial-{os.getpid()}"


def strict(course, sandboxed=True):
    """The course with small limits, so that every attack reaches one quickly."""
    limits = dataclasses.replace(
        course.grading.limits, memory_mb=1024, processes=32, file_size_mb=16, scratch_mb=48, cpu_seconds=120
    )
    # every probe gets 4 s (the floor is the ceiling): the attacks' messages name one limit
    grading = dataclasses.replace(
        course.grading, limits=limits, test_timeout=4, time_floor=4, notebook_timeout=30, sandboxed=sandboxed
    )
    return dataclasses.replace(course, grading=grading)


class Listener:
    """A server on the grader's loopback that records whether anyone connected."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(b"0")
            conn.close()

    def close(self):
        self.stopped = True
        self.sock.close()


def hostile_batch(course, folder: Path, port: int) -> Path:
    honest = submission(course, "honest", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE}, folder=folder)
    constants = f"ROOT = {str(course.root)!r}\nHONEST = {str(honest)!r}\nPORT = {port}\n"
    for name, (code, _) in HOSTILE.items():
        cells = {"add-impl": constants + code}
        if name == "equal-tensor":
            cells["scale-impl"] = EQUAL_ARRAY_SCALE
        submission(course, name, cells, folder=folder)

    # honest, using 600 of its 1024 MB: what the sandbox preloaded (torch maps about 900 MB) is not its own
    submission(course, "uses-its-memory", {"add-impl": USES_ITS_MEMORY, "scale-impl": GOOD_SCALE}, folder=folder)

    # a wrong answer whose locked test cells and nbgrader metadata were edited or deleted to claim points
    tampered = submission(course, "tampered", {"add-impl": "def add(a, b):\n    return a - b"}, folder=folder)
    nb = notebooks.read(tampered)
    for cell in nb.cells:
        meta = notebooks.nbgrader_meta(cell)
        if meta.get("grade_id") == "add-impl":
            meta.update(grade=True, points=100)
        if meta.get("grade_id") == "scale":
            cell.source = "assert True"
    nb.cells = [c for c in nb.cells if notebooks.nbgrader_meta(c).get("grade_id") != "add"]
    nbformat.write(nb, str(tampered))

    for name, content in {"not-json": "{ this is not json", "empty": ""}.items():
        path = folder / name / "toy" / "adder.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(content)
    other = folder / "other-assignment" / "toy" / "adder.ipynb"
    other.parent.mkdir(parents=True)
    shutil.copyfile(REPO / "release" / "week1" / "02_backprop_and_mlp.ipynb", other)
    return folder


ROOTLESS = "without root"
STRICT = {"memory_mb": 1024, "processes": 32, "file_size_mb": 16, "scratch_mb": 48, "cpu_seconds": 120,
          "test_timeout": 4, "time_floor": 4, "notebook_timeout": 30}  # fmt: skip


@pytest.fixture(scope="module", params=[FORK_SERVER, BUBBLEWRAP, ROOTLESS])
def batch(tmp_path_factory, request):
    """Grade the whole hostile corpus once, in one batch, with two workers, as `course grade` would: with the
    fork server, with a bubblewrap sandbox per worker (the fallback where no fork server starts), and as an
    instructor without root (`course grade` run as an unprivileged user: user namespaces instead of uids)."""
    if sandbox_problem():
        pytest.fail(f"the sandbox cannot start here: {sandbox_problem()}")
    backend = request.param
    from course import config
    from course.authoring import release

    # pytest's temporary folders are root's alone (mode 700): an instructor without root works in their own
    base = Path(tempfile.mkdtemp(prefix="course-adversarial-")) if backend == ROOTLESS else tmp_path_factory.mktemp("a")
    base.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True) if backend == ROOTLESS else None)
    root = base / "mini"
    shutil.copytree(REPO / "tests" / "minicourse", root, ignore=shutil.ignore_patterns("release", "gradebook.db"))
    settings = yaml.safe_load((root / "course.yaml").read_text())
    settings["grading"] = {**settings.get("grading", {}), **STRICT}
    (root / "course.yaml").write_text(yaml.safe_dump(settings))
    course = config.load(root)
    assert course.grading == strict(course).grading
    release.release(course, course.assignment("toy"))
    listener = Listener()
    try:
        folder = hostile_batch(course, root / "submitted", listener.port)
        a = course.assignment("toy")
        if backend == ROOTLESS:
            graded = _graded_without_root(course, root)
        else:
            os.environ["COURSE_GRADING_TAG"] = TAG
            if backend == BUBBLEWRAP:
                os.environ["COURSE_SANDBOX"] = BUBBLEWRAP
            try:
                graded = {r[0].student: r[0] for r in grade(course, a, discover(a, [folder]), seed=11, workers=2)}
            finally:
                del os.environ["COURSE_GRADING_TAG"]
                os.environ.pop("COURSE_SANDBOX", None)
    finally:
        listener.close()
    ran = {r.isolation for r in graded.values() if r.problem is None}
    assert ran == {BUBBLEWRAP if backend == BUBBLEWRAP else FORK_SERVER}, f"graded in {ran}, not as {backend} alone"
    return graded, listener, course


def _graded_without_root(course, root: Path) -> dict:
    """`course grade` run by an unprivileged user on the batch, without any flag; its results, read back."""
    uid, gid = instructor_account()
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(root)], check=True)
    out = run_as_instructor(["grade", "toy", "submitted", "--seed", "11", "--workers", "2", "--json", "s.json"],
                            cwd=root)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for _ in range(100):  # what the grader started dies with it, a moment after
        left = [_described(p) for p in Path("/proc").glob("[0-9]*") if _owner(p) == uid]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"processes of the grading were left: {left}"
    nb = course.assignment("toy").notebooks[0]
    data = json.loads((root / "s.json").read_text())
    return {s["student"]: NotebookResult.from_json(nb, s) for s in data["submissions"]}


def _described(proc: Path) -> str:
    try:
        return f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}"
    except OSError:
        return proc.name


def _owner(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def _report(result) -> str:
    return report.text([result])


def test_the_honest_submission_keeps_full_marks(batch):
    results, _, _ = batch
    honest = results["honest"]
    assert honest.score == honest.max_score == 3, _report(honest)


def test_the_memory_limit_is_the_submissions_own(batch):
    """memory_mb bounds what the submission allocates, not what the sandbox imported for every notebook."""
    results, _, _ = batch
    r = results["uses-its-memory"]
    assert r.score == r.max_score == 3, _report(r)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_no_unearned_point_and_the_report_says_what_happened(batch, name):
    results, _, _ = batch
    r = results[name]
    assert r.score == 0, _report(r)
    words = HOSTILE[name][1] if isinstance(HOSTILE[name][1], tuple) else (HOSTILE[name][1],)
    failed = [t for t in r.tests if t.exercise == "add"]
    assert failed and not any(t.passed for t in failed)
    assert all(any(w in t.output for w in words) for t in failed), _report(r)
    assert all(t.output.count(". ") <= 1 and "\n" not in t.output for t in failed), _report(r)


def test_tampered_locked_cells_are_restored_and_named(batch):
    results, _, _ = batch
    r = results["tampered"]
    assert r.score == 0 and r.max_score == 3, _report(r)
    [note] = r.notes
    assert "add (deleted)" in note and "scale (edited)" in note and "add-impl (nbgrader metadata changed)" in note


@pytest.mark.parametrize(
    "name, words",
    [
        ("not-json", "not a readable notebook"),
        ("empty", "not a readable notebook"),
        ("other-assignment", "a notebook from another assignment"),
    ],
)
def test_files_that_are_not_this_notebook(batch, name, words):
    results, _, _ = batch
    r = results[name]
    assert r.score == 0 and not r.tests and words in r.problem, r.problem


def test_nothing_reached_the_network_and_nothing_is_left_running(batch):
    _, listener, _ = batch
    assert listener.connections == 0
    assert sandbox_processes(TAG) == []


def test_the_course_files_are_untouched(batch):
    _, _, course = batch
    suite = course.root / "autograder" / "toy" / "test_adder.py"
    assert "def test_add" in suite.read_text()


def test_without_the_sandbox_the_same_attacks_succeed(tmp_path, mini):
    """The attacks are real: with isolation switched off, reading the reference earns the points and the
    network is reachable. The sandbox is what stops them."""
    listener = Listener()
    try:
        constants = f"ROOT = {str(mini.root)!r}\nPORT = {listener.port}\n"
        course = strict(mini, sandboxed=False)
        a = course.assignment("toy")
        for name in ("read-hidden", "network"):
            submission(course, name, {"add-impl": constants + HOSTILE[name][0]}, folder=tmp_path / "s")
        results = {r[0].student: r[0] for r in grade(course, a, discover(a, [tmp_path / "s"]), seed=2)}
    finally:
        listener.close()
    assert results["read-hidden"].exercise_score("add") == 2, _report(results["read-hidden"])
    assert listener.connections > 0
    assert not results["network"].sandboxed and "WITHOUT the sandbox" in _report(results["network"])


def test_grading_refuses_to_run_unsandboxed_unless_asked(mini, monkeypatch):
    from course.errors import CourseError
    from course.sandbox import launch as sandbox

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap is not installed")
    a = mini.assignment("toy")
    path = submission(mini, "x", {"add-impl": GOOD_ADD})
    with pytest.raises(
        CourseError, match=r"cannot grade in a sandbox: bubblewrap is not installed.*--allow-unsandboxed"
    ):
        grade(mini, a, discover(a, [path]), seed=1)


def test_json_scores_record_whether_the_sandbox_was_on(batch, tmp_path):
    results, _, _ = batch
    report.write_json([[results["honest"]]], tmp_path / "s.json", 11)
    [entry] = json.loads((tmp_path / "s.json").read_text())["submissions"]
    assert entry["sandboxed"] is True and os.path.basename(entry["path"]) == "adder.ipynb"


# -- what one submission leaves behind, and the next one graded by the same fork server --------------------------
LEAVES_BEHIND = """
import os, signal, socket, threading, time
if os.fork() == 0:  # a daemon: a new session, its parent gone
    os.setsid()
    if os.fork() == 0:
        time.sleep(600)
    os._exit(0)
for place in ("/tmp", "/dev/shm"):
    with open(f"{place}/left-behind", "w") as f:
        f.write("a note for the next submission")
import numpy, torch
numpy.left_behind = torch.left_behind = True
signal.signal(signal.SIGUSR2, lambda *a: None)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
note = socket.socket(socket.AF_UNIX)
note.bind("\\0course-left-behind")
note.listen()
def add(a, b):
    return a + b
"""

LOOKS_FOR_THE_SERVER = """
import os, socket
found = []
for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
    found.append(f"process {pid}")  # the fork server, or another submission
for fd in range(4, 1024):  # a descriptor that is not its own loader's channel (or stdio)
    try:
        os.fstat(fd)
        found.append(f"descriptor {fd}")
    except OSError:
        pass
def add(a, b):
    if found:
        raise RuntimeError("found " + ", ".join(found))
    return a + b
"""

SCRIBBLES_ON_EVERYTHING = """
import os, signal
for fd in range(3, 1024):  # every descriptor it holds, its own loader's channel first
    try:
        os.write(fd, bytes(64))
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)  # everything it may signal: only its own processes
except OSError:
    pass
def add(a, b):
    return a + b
"""

LOOKS_FOR_LEFTOVERS = """
import os, signal, socket, threading
seen = []
views = [line.split()[4] for line in open("/proc/self/mountinfo")]  # read-only views bound under /tmp
files = [f"{top}/{name}" for top in ("/tmp", "/dev/shm") for name in os.listdir(top)]
files = [f for f in files if not any(v == f or v.startswith(f + "/") for v in views)]
if files:
    seen.append("a file (" + ", ".join(files) + ")")
mine = {os.getpid(), os.getppid(), 1}
if any(int(p) not in mine for p in os.listdir("/proc") if p.isdigit()):
    seen.append("a process")
import numpy, torch
if getattr(numpy, "left_behind", False) or getattr(torch, "left_behind", False):
    seen.append("a patched module")
if signal.getsignal(signal.SIGUSR2) is not signal.SIG_DFL:
    seen.append("a signal handler")
if threading.active_count() > 1 or len(os.listdir("/proc/self/task")) > 1:
    seen.append("a thread")
try:
    socket.socket(socket.AF_UNIX).connect("\\0course-left-behind")
    seen.append("a socket")
except OSError:
    pass
def add(a, b):
    if seen:
        raise RuntimeError("left behind: " + ", ".join(seen))
    return a + b
"""


def test_nothing_passes_from_one_submission_to_the_next(mini, tmp_path):
    """One fork server grades them all, one after the other: the first leaves a process, files in /tmp and
    /dev/shm, patched modules, a signal handler, a thread and a listening socket; the second looks for the
    server's processes and descriptors; the third writes into every descriptor it has and kills everything it
    may (it breaks itself alone); the ones after see none of it, and are graded in full."""
    course = strict(mini)
    a = course.assignment("toy")
    folder = tmp_path / "s"
    batch = {
        "a-leaves-behind": LEAVES_BEHIND,
        "b-looks-for-the-server": LOOKS_FOR_THE_SERVER,
        "c-scribbles-on-everything": SCRIBBLES_ON_EVERYTHING,
        "d-looks-for-leftovers": LOOKS_FOR_LEFTOVERS,
        "e-looks-again": LOOKS_FOR_LEFTOVERS,
    }
    for name, code in batch.items():
        submission(course, name, {"add-impl": code, "scale-impl": GOOD_SCALE}, folder=folder)
    results = {r[0].student: r[0] for r in grade(course, a, discover(a, [folder]), seed=5, workers=1)}
    assert {r.isolation for r in results.values()} == {FORK_SERVER}
    for name in ("a-leaves-behind", "b-looks-for-the-server", "d-looks-for-leftovers", "e-looks-again"):
        assert results[name].score == 3, _report(results[name])
    assert results["c-scribbles-on-everything"].score == 0, _report(results["c-scribbles-on-everything"])


HOARDS_PROCESSES = """
import os, time
def _hoard():
    for _ in range(60):  # sleeping children, from every function, as many as it may
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
        except OSError:
            pass
def add(a, b):
    _hoard()
    return a + b
def scale(x, k):
    _hoard()
    return x
"""

HOARDS_MEMORY = """
import os, time
def _hoard():
    for _ in range(12):  # children that each take what one process may: 12 times the submission's memory
        if os.fork() == 0:
            try:
                block = bytearray(900 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
            except MemoryError:
                pass
            time.sleep(600)
            os._exit(0)
    time.sleep(3)
def add(a, b):
    _hoard()
    return a + b
def scale(x, k):
    _hoard()
    return x
"""


def test_the_grader_ends_with_exit_0_and_a_report_whatever_the_submissions_did(mini, tmp_path):
    """`course grade` on submissions that leave 60 children from every function, or take many times their
    memory through children, next to an honest one: exit status 0, a result for each, and nothing left."""
    settings = yaml.safe_load((mini.root / "course.yaml").read_text())
    settings["grading"] = {**settings.get("grading", {}), **STRICT}
    (mini.root / "course.yaml").write_text(yaml.safe_dump(settings))
    for name, code in (("hoards-processes", HOARDS_PROCESSES), ("hoards-memory", HOARDS_MEMORY)):
        submission(mini, name, {"add-impl": code, "scale-impl": "scale = scale"})
    submission(mini, "honest", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    tag = f"hoarders-{os.getpid()}"
    out = subprocess.run([str(Path(sys.executable).with_name("course")), "grade", "toy", "submitted", "--json",
                          "s.json", "--workers", "2"], cwd=mini.root, capture_output=True, text=True,
                         env={**os.environ, "COURSE_GRADING_TAG": tag}, timeout=600)  # fmt: skip
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    scores = {s["student"]: s["score"] for s in json.loads((mini.root / "s.json").read_text())["submissions"]}
    assert scores == {"hoards-processes": 0, "hoards-memory": 0, "honest": 3}, scores
    for _ in range(50):
        if not sandbox_processes(tag):
            break
        time.sleep(0.1)
    assert sandbox_processes(tag) == []
