"""Control groups: a submission's processes are bounded together, for memory and for their number."""

import os
import time
from pathlib import Path

import pytest

from course.config import Limits
from course.sandbox import cgroups, launch
from course.sandbox.client import StudentError, Worker

pytestmark = pytest.mark.slow  # starts sandboxed workers and makes them run out of memory

PROBES = "def call(nb, fn, n):\n    return getattr(nb, fn)(n)\n"
CELLS = [
    ["1", "import os, time\n"],
    [
        "2, children",
        '''def children(n):
    """n children, each holding 600 MB (under the limit for one process), until they are killed."""
    for _ in range(n):
        if os.fork() == 0:
            block = bytearray(600 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(60)
            os._exit(0)
    time.sleep(5)
    return n
''',
    ],
    [
        "3, forks",
        '''def forks(n):
    """As many sleeping children as it may start, up to n."""
    made = 0
    try:
        while made < n:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            made += 1
    except OSError:
        pass
    return made
''',
    ],
    ["4, double", "def double(n):\n    return 2 * n\n"],
]
LIMITS = Limits(cpu_seconds=120, memory_mb=2048, processes=24, file_size_mb=16, open_files=256, scratch_mb=32)


@pytest.fixture
def worker():
    if launch.sandbox_problem() or launch.bound_problem():
        pytest.fail(f"no sandbox or no control group here: {launch.sandbox_problem() or launch.bound_problem()}")
    w = Worker(CELLS, LIMITS, 60)
    w.start()
    yield w
    w.stop()


def test_children_that_together_exceed_the_memory_are_stopped_with_one_sentence(worker):
    assert worker.call("k", PROBES, "call", {"fn": "double", "n": 2}, 30) == 4
    assert worker.bound.startswith("cgroup v")
    with pytest.raises(StudentError, match=r"^ran out of memory: the limit of 2048 MB for the submission$"):
        worker.call("k", PROBES, "call", {"fn": "children", "n": 4}, 60)
    assert worker.call("k", PROBES, "call", {"fn": "double", "n": 3}, 30) == 6, "a fresh tester answers"
    worker.stop()
    assert worker.peak_mb is not None and 1000 < worker.peak_mb <= 2048, worker.peak_mb


def test_a_fork_bomb_is_bounded_by_the_group(worker):
    made = worker.call("k", PROBES, "call", {"fn": "forks", "n": 500}, 60)
    group = worker.proc.group
    # the loader and the tester are two of the group's processes
    assert made <= LIMITS.processes - 2 and group.forks_refused() > 0, (made, group.forks_refused())


def test_no_group_is_left_once_the_submission_is_graded(worker):
    worker.call("k", PROBES, "call", {"fn": "forks", "n": 5}, 60)
    dirs = list(worker.proc.group.dirs.values())
    assert all(d.is_dir() for d in dirs)
    group = worker.proc.group
    worker.stop()
    # killed at once; the folders go once the killed processes have exited, while grading goes on
    for _ in range(100):
        if not any(d.exists() for d in dirs):
            break
        time.sleep(0.05)
    assert not any(d.exists() for d in dirs), group.pids()


def test_a_grader_that_is_killed_leaves_no_group(tmp_path):
    """The watchdog removes a grader's groups, and kills what is left in them, when the grader dies."""
    script = tmp_path / "grader.py"
    script.write_text(
        "import subprocess, time\n"
        "from course.sandbox import cgroups\n"
        "c = cgroups.find()\n"
        "g = c.create(256, 8)\n"
        "member = subprocess.Popen(['sleep', '600'])\n"
        "g.add(member.pid)\n"
        "print(c.bases['pids'], flush=True)\n"
        "time.sleep(600)\n"
    )
    import subprocess
    import sys
    import time

    grader = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    base = Path(grader.stdout.readline().strip())
    assert (base / "0").is_dir()
    grader.kill()
    grader.wait()
    for _ in range(100):
        if not base.exists():
            break
        time.sleep(0.1)
    assert not base.exists(), sorted(p.name for p in base.iterdir())


def test_without_a_writable_controller_grading_says_so(tmp_path):
    found = cgroups.find(tmp_path)
    assert isinstance(found, str) and "control groups" in found
    assert os.geteuid() == 0 or isinstance(cgroups.find(), str)
