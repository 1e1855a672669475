"""A probe's time limit counts the time the submission ran: a probe kept off the CPU by other work on the
machine still gets all of its time, one that computes forever is stopped at its limit, and one that sleeps
forever at WAIT_FACTOR times its limit, with a sentence that says which."""

import os
import signal
import threading
import time

import pytest

from course.config import Limits
from course.sandbox import launch
from course.sandbox.client import WAIT_FACTOR, StudentError, Worker

pytestmark = pytest.mark.slow  # starts sandboxed workers

PROBES = "def call(nb, fn, n):\n    return getattr(nb, fn)(n)\n"
CELLS = [
    ["1", "import time\n"],
    [
        "2, work",
        '''def work(seconds):
    """Compute for `seconds` of this process's CPU time."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return seconds
''',
    ],
    ["3, spin", "def spin(n):\n    while True:\n        n += 1\n"],
    ["4, sleep", "def sleep(n):\n    time.sleep(1000)\n"],
]
LIMITS = Limits(cpu_seconds=120, memory_mb=1024, processes=24, file_size_mb=16, open_files=256, scratch_mb=32)
MODES = [launch.FORK_SERVER, launch.BUBBLEWRAP, launch.UNSANDBOXED]  # a control group, and none


@pytest.fixture(params=MODES)
def worker(request):
    if request.param != launch.UNSANDBOXED and launch.sandbox_problem():
        pytest.fail(f"the sandbox cannot start here: {launch.sandbox_problem()}")
    w = Worker(CELLS, LIMITS, 60, isolation=request.param)
    w.start()
    w.ensure_loaded()
    assert w.proc is not None and w.proc.cpu_seconds() is not None, "the submission's CPU time is read"
    yield w
    w.stop()


def _processes(worker) -> list[int]:
    proc = worker.proc
    return proc.group.pids() if proc.group is not None else launch.descendants(proc.pid)


def _stop_for(worker, seconds: float) -> threading.Thread:
    """Keep every process of the submission off the CPU for `seconds`, as a busy machine would."""

    def pause():
        time.sleep(0.2)  # the probe has been sent
        stopped = _processes(worker)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=pause)
    thread.start()
    return thread


def test_a_probe_kept_off_the_cpu_gets_all_of_its_time(worker):
    # 0.5 s of work under a 2 s limit, held for 3 s: by the wall clock it would have been cut off
    pause = _stop_for(worker, 3.0)
    started = time.monotonic()
    assert worker.call("k", PROBES, "call", {"fn": "work", "n": 0.5}, 2) == 0.5
    pause.join()
    assert time.monotonic() - started > 3.0, "the pause did not happen during the probe"


def test_a_probe_that_computes_forever_is_stopped_at_its_limit(worker):
    started = time.monotonic()
    with pytest.raises(StudentError, match=r"^time limit of 2 s exceeded in `spin` \(cell 3, spin, line \d\)"):
        worker.call("k", PROBES, "call", {"fn": "spin", "n": 0}, 2)
    assert time.monotonic() - started < WAIT_FACTOR * 2, "stopped by its running time, not by the ceiling"
    assert worker.call("k", PROBES, "call", {"fn": "work", "n": 0.1}, 2) == 0.1, "a fresh tester answers"


def test_a_probe_that_sleeps_forever_is_stopped_at_the_ceiling(worker):
    started = time.monotonic()
    with pytest.raises(StudentError) as caught:
        worker.call("k", PROBES, "call", {"fn": "sleep", "n": 0}, 1)
    waited = time.monotonic() - started
    assert WAIT_FACTOR * 1 <= waited < WAIT_FACTOR * 1 + 3, waited
    assert str(caught.value).startswith(f"no answer after {WAIT_FACTOR:.2g} s in `sleep` (cell 4, sleep, line 2)")
    assert "of which it ran 0" in str(caught.value) and "it sleeps, or waits for" in str(caught.value)
