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
    assert w.proc is not None and w.proc.cpu_sample() is not None, "the submission's CPU time is read"
    yield w
    w.stop()


def _stop_for(worker, seconds: float) -> threading.Thread:
    """Keep every process of the submission off the CPU for `seconds`, as a busy machine would."""

    def pause():
        time.sleep(0.2)  # the probe has been sent
        stopped = worker.proc.pids()
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


def test_what_ended_since_the_start_of_a_probe_does_not_count_against_it():
    # the last test's processes, dying when the probe starts, are gone at its deadline: nothing negative
    tick = os.sysconf("SC_CLK_TCK")
    before = {(10, 1): 4 * tick, (11, 1): 2 * tick}  # a dying fork bomb, and the loader
    after = {(11, 1): 2 * tick, (12, 5): tick, (10, 9): tick // 2}  # the loader, a new tester, a reused pid
    assert launch.cpu_between(before, after) == pytest.approx(1.5)


BUSY = "start = time.process_time()\nwhile time.process_time() - start < 0.5:\n    pass\n"
LOAD_CELLS = [["1", "import time\n"], ["2, setup", BUSY]]
SLEEPY_CELLS = [["1", "import time\n"], ["2, setup", "time.sleep(1000)\n"]]


@pytest.mark.parametrize("mode", MODES)
def test_a_notebook_kept_off_the_cpu_while_it_loads_gets_all_of_its_time(mode):
    if mode != launch.UNSANDBOXED and launch.sandbox_problem():
        pytest.fail(f"the sandbox cannot start here: {launch.sandbox_problem()}")
    # 12 s for its cells (and, without a fork server, the imports of torch and the rest), held for longer
    w = Worker(LOAD_CELLS + CELLS[1:2], LIMITS, 12, isolation=mode)
    w.start()
    try:
        pause = _stop_for(w, 14.0)
        w.ensure_loaded()
        pause.join()
        assert w.broken is None and w.load_errors == [], (w.broken, w.load_errors)
        assert w.call("k", PROBES, "call", {"fn": "work", "n": 0.1}, 2) == 0.1
    finally:
        w.stop()


def test_a_notebook_that_sleeps_while_it_loads_is_stopped_at_the_ceiling():
    if launch.sandbox_problem():
        pytest.fail(f"the sandbox cannot start here: {launch.sandbox_problem()}")
    w = Worker(SLEEPY_CELLS, LIMITS, 1)
    w.start()
    try:
        w.ensure_loaded()
        assert w.broken is not None and w.broken.startswith(
            f"while running the notebook's cells: no answer after {WAIT_FACTOR:.2g} s, of which they ran 0"
        ), w.broken
    finally:
        w.stop()
