"""The grader's side of a worker: start it, load a submission, run probes with deadlines, and recover after a
hang or a crash. Every answer is checked here; a missing or late answer is a failure, never a pass.

A submission's loader runs its cells once; each test talks to a tester forked from that state. When a
tester dies or hangs, the next call gets a fresh tester (a fork, not a restart). When the same student
function kills or hangs its tester twice, the loader is asked to make that function raise at once with
the same reason, so that the tests still to come that call it fail without waiting, and the others are
graded in full.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import Any

from course.config import Limits
from course.sandbox.launch import FORK_SERVER, WorkerProcess, cpu_between, start_worker
from course.sandbox.wire import ChannelClosed, ChannelTimeout, read_frame, write_frame

STRIKES = 2  # a function that kills or hangs its tester twice is not run again
EVENT_WAIT = 10.0  # seconds the loader has to report what became of a tester
WAIT_FACTOR = 4  # a probe that runs less than its limit is still stopped after this many times the limit


class ProbeClock:
    """How long one probe (or the loading of a notebook) may take. Its limit counts the time the
    submission's processes ran on a CPU, so that one kept waiting by other work on the machine (the rest of
    a batch, a loaded machine) still gets all of its time; one that does not run (it sleeps, or waits on a
    pipe that never answers) is stopped after WAIT_FACTOR times its limit. Where the submission's CPU
    time cannot be read, the limit is wall-clock time."""

    def __init__(self, limit: float, worker: WorkerProcess):
        self.limit = limit
        self.worker = worker
        self.sent = time.monotonic()
        self.deadline = self.sent + limit
        self.start = worker.cpu_sample()
        self.ceiling = self.sent + (WAIT_FACTOR * limit if self.start is not None else limit)
        self.idle: tuple[float, float] | None = None

    def wait(self, fd: int) -> None:
        """Return when `fd` has something to read; ChannelTimeout once the probe has run its limit, or has
        reached the ceiling (then `idle` holds the seconds it waited and the seconds of them it ran)."""
        while not select.select([fd], [], [], max(0.0, self.deadline - time.monotonic()))[0]:
            now = time.monotonic()
            sample = self.worker.cpu_sample()
            if sample is None or self.start is None:
                raise ChannelTimeout("the probe's time is up")
            ran = cpu_between(self.start, sample)
            left = self.limit - ran
            if left <= 0.01 * self.limit:
                raise ChannelTimeout("the probe's time is up")
            if now >= self.ceiling:
                self.idle = (now - self.sent, ran)
                raise ChannelTimeout("the probe waited too long")
            self.deadline = min(self.ceiling, now + left)


@dataclass(frozen=True)
class Reach:
    """What a traced probe call touched of the notebook: the functions that ran ("cell label:qualified
    name"), the globals looked up."""

    functions: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, reply: dict[str, Any]) -> Reach:
        def strings(key: str) -> frozenset[str]:
            value = reply.get(key)
            return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()

        return cls(strings("reached"), strings("names"))

    def __or__(self, other: Reach) -> Reach:
        return Reach(self.functions | other.functions, self.names | other.names)


class StudentError(AssertionError):
    """The submission raised, hung or crashed while a test was using it. `kind` names the exception the
    student's code raised, when it raised one, `detail` is that exception's own message and `function` the
    student function it came out of (None when it was raised outside the student's code)."""

    def __init__(self, message: str, kind: str | None = None, detail: str | None = None, function: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.detail = detail
        self.function = function


def _place(where: dict[str, Any] | None) -> str:
    if not where:
        return ""
    fn = f"`{where['function']}`" if where["function"] != "<module>" else "the cell"
    code = f": `{where['code']}`" if where.get("code") else ""
    return f" in {fn} (cell {where['cell']}, line {where['line']}{code})"


def explain(error: dict[str, Any], limits: Limits | None = None) -> str:
    """One sentence about an exception raised in the student's code, naming the limit it ran into."""
    kind, message, code = error["type"], error["message"], error.get("errno")
    place = _place(error.get("where"))
    if kind == "NotImplementedError":
        return f"not implemented yet: NotImplementedError raised{place}"
    if kind == "MissingDefinition":
        return f"{message}: run every cell of the exercise and keep the names the notebook asks for"
    if kind == "DisabledFunction":
        return str(message)
    text = f"{kind}: {message}" if message else kind
    limit = _limit_reached(kind, message, code, limits)
    if limit:
        return f"{limit}{place} ({text})"
    return f"your code raised {text}{place}"


def _limit_reached(kind: str, message: str, code: int | None, limits: Limits | None) -> str | None:
    def mb(name: str) -> str:
        return f" of {getattr(limits, name)} MB" if limits else ""

    if kind == "MemoryError":
        return f"ran out of memory: the limit{mb('memory_mb')} per process was reached"
    if code == errno.EAGAIN or "can't start new thread" in message:
        n = f" ({limits.processes})" if limits else ""
        return f"tried to start more processes or threads than allowed{n}"
    if code in (errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.ECONNREFUSED) or kind == "gaierror":
        return "tried to use the network: grading runs without one"
    if code == errno.EFBIG:
        return f"wrote a file larger than the limit{mb('file_size_mb')}"
    if code == errno.ENOSPC:
        return f"filled its scratch space: the limit{mb('scratch_mb')} was reached"
    if code == errno.EROFS:
        return "tried to write outside its scratch directory /tmp: everything else is read-only"
    if code in (errno.ENOENT, errno.EACCES) and kind in ("FileNotFoundError", "PermissionError"):
        return (
            "opened a file that grading does not provide: only Python, the course's packages and "
            "datasets, and the scratch directory /tmp are there"
        )
    if kind == "SystemExit":
        return "called exit() while a test was using it"
    return None


def _signal_name(status: int) -> str:
    try:
        return signal.Signals(-status).name
    except ValueError:
        return f"signal {-status}"


def _killed_by(code: int, limits: Limits) -> str:
    sig = _signal_name(code)
    why = {
        "SIGKILL": "killed (out of memory, or a limit was reached)",
        "SIGXCPU": f"out of CPU time (the limit is {limits.cpu_seconds} s)",
        "SIGSEGV": "crashed (segmentation fault)",
        "SIGXFSZ": "wrote a file larger than allowed",
    }
    return why.get(sig, sig)


def death(code: int | None, detail: str, limits: Limits) -> str:
    """Why a process of the submission stopped, from its exit code (negative: the signal)."""
    if code is not None and code < 0:
        return f"the notebook's process stopped: {_killed_by(code, limits)}"
    if code is not None:
        return f"the notebook's process exited with status {code} (does the code call exit()?)"
    return f"the notebook's process stopped answering ({detail})"


class Worker:
    """One submission, graded: its loader (started by `launch.start_worker`) and the current tester."""

    def __init__(self, cells: list[list[str]], limits: Limits, load_timeout: float, isolation: str = FORK_SERVER):
        self.cells = cells
        self.limits = limits
        self.isolation = isolation  # asked for; once started, the one that runs it
        self.load_timeout = load_timeout
        self.proc: WorkerProcess | None = None
        self.tester = -1  # the grader's end of the current tester's socket
        self.loaded = False
        self.asked = False  # a tester was asked for and its ready event is still to come
        self._started = 0.0
        self.loading: ProbeClock | None = None  # the time the notebook's cells may take, from `start`
        self.load_errors: list[dict[str, Any]] = []
        self.loaded_probes: set[str] = set()
        self.broken: str | None = None
        self.strikes: dict[tuple[str, str], int] = {}  # (cell, function) -> testers it killed or hung
        self.bound = ""  # what bounded its memory and processes
        self.peak_mb: float | None = None
        self.reached = Reach()  # what the last traced call touched

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loader, send the notebook's cells and ask for a first tester; the answers are read by
        `ensure_loaded` and the first call."""
        self._started = time.monotonic()
        try:
            self.proc = proc = start_worker(self.limits, self.isolation)
            self.loading = ProbeClock(self.load_timeout, proc)
            self.isolation, self.bound = proc.isolation, proc.bound
            write_frame(proc.control, {"op": "run", "cells": self.cells})
            write_frame(proc.control, {"op": "tester"})
            self.asked = True
        except OSError as exc:
            self.broken = f"the worker process could not be started ({exc})"

    def ensure_loaded(self) -> None:
        """Wait for the notebook's cells to finish. A notebook that cannot load stays broken: every test
        that needs it fails at once rather than waiting again."""
        if self.broken:
            return
        if self.proc is None:
            self.start()
        if self.loaded or self.broken:
            return
        self.loaded = True
        clock = self.loading
        assert clock is not None
        try:
            clock.wait(self._running().control)
        except ChannelTimeout:
            self.stop()
            if clock.idle is not None:
                waited, ran = clock.idle
                why = (f"no answer after {waited:.2g} s, of which they ran {ran:.2g} s (they may run "
                       f"{clock.limit:.3g} s): they sleep, or wait for something that does not come")  # fmt: skip
            else:
                why = f"time limit of {clock.limit:.0f} s exceeded while running the notebook's cells"
            self.broken = f"while running the notebook's cells: {why}"
            return
        try:
            reply = self._control(clock.ceiling)
            self.load_errors = reply.get("errors", [])
        except StudentError as exc:
            self.broken = f"while running the notebook's cells: {exc}"

    def stop(self) -> None:
        self._close_tester()
        if self.proc is not None:
            self.proc.close()
            if self.proc.peak_mb is not None:
                self.peak_mb = max(self.peak_mb or 0.0, self.proc.peak_mb)
            self.proc = None
        self.asked = False

    def _close_tester(self) -> None:
        if self.tester >= 0:
            os.close(self.tester)
            self.tester = -1
        self.loaded_probes = set()

    # -- the control socket -----------------------------------------------------------------------------
    def _running(self) -> WorkerProcess:
        assert self.proc is not None, "the worker is not running"
        return self.proc

    def _control(self, deadline: float, fds: list[int] | None = None) -> dict[str, Any]:
        """The loader's next frame. A loader that dies or stops answering takes the submission down: the
        next call starts it again."""
        proc = self._running()
        try:
            reply = read_frame(proc.control, deadline, fds=fds if fds is not None else [])
        except ChannelTimeout:
            self.stop()
            raise StudentError(
                f"time limit of {deadline - self._started:.0f} s exceeded while running the notebook's cells"
            ) from None
        except ChannelClosed as exc:
            code = proc.exit_code(wait=1.0)
            self.stop()
            self.loaded = False
            raise StudentError(death(code, str(exc), self.limits)) from None
        if not isinstance(reply, dict):
            self.stop()
            raise StudentError("the worker sent an answer that is not well formed")
        return reply

    def _get_tester(self, deadline: float) -> int:
        if self.tester >= 0:
            return self.tester
        proc = self._running()
        if not self.asked:
            write_frame(proc.control, {"op": "tester"})
            self.asked = True
        fds: list[int] = []
        reply = self._control(deadline, fds)
        self.asked = False
        if reply.get("event") != "ready" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.stop()
            raise StudentError("the worker sent an answer that is not well formed")
        self.tester = fds[0]
        return self.tester

    def _oom_kills(self) -> int:
        group = self.proc.group if self.proc is not None else None
        return group.oom_kills() if group is not None else 0

    def _out_of_memory(self) -> StudentError:
        """The submission went over its memory, all its processes together: the kernel killed one of them.
        Whatever the tester answers after that is not graded; a fresh one is started."""
        if self.tester >= 0:
            self._close_tester()
            write_frame(self._running().control, {"op": "stop"})
        if not self.asked:
            self._control(time.monotonic() + EVENT_WAIT)  # what became of the tester
            write_frame(self._running().control, {"op": "tester"})
            self.asked = True
        return StudentError(f"ran out of memory: the limit of {self.limits.memory_mb} MB for the submission")

    def _tester_gone(self, hung: bool, seconds: float, idle: tuple[float, float] | None = None) -> StudentError:
        """The tester died (or hung and was stopped): what became of it, a strike against the function it was
        in, and a fresh tester asked for."""
        self._close_tester()
        proc = self._running()
        if hung:
            write_frame(proc.control, {"op": "stop"})
        event = self._control(time.monotonic() + EVENT_WAIT)
        where = event.get("where") if event.get("event") == "exited" else None
        status = event.get("status")
        if hung and idle is not None:  # it was not computing: it slept, or waited for what never came
            why = (f"no answer after {idle[0]:.2g} s{_place(where)}, of which it ran {idle[1]:.2g} s (a probe may "
                   f"run {seconds:.3g} s): it sleeps, or waits for something that does not come")  # fmt: skip
            strike = f"hung its worker twice (no answer after {idle[0]:.2g} s)"
        elif hung:
            why = f"time limit of {seconds:.3g} s exceeded{_place(where)}: an infinite loop, or far too slow"
            strike = f"hung its worker twice (time limit of {seconds:.3g} s exceeded)"
        else:
            code = os.waitstatus_to_exitcode(status) if isinstance(status, int) else None
            why = death(code, "the tester closed its socket", self.limits) + _place(where)
            ended = _killed_by(code, self.limits) if code is not None and code < 0 else f"exit status {code}"
            strike = f"brought its worker down twice ({ended})"
        if where:
            self._strike(proc, where, strike)
        write_frame(proc.control, {"op": "tester"})
        self.asked = True
        return StudentError(why)

    def _strike(self, proc: WorkerProcess, where: dict[str, Any], what: str) -> None:
        key = (str(where["cell"]), str(where["function"]))
        self.strikes[key] = self.strikes.get(key, 0) + 1
        if self.strikes[key] == STRIKES:
            reason = f"`{key[1]}` (cell {key[0]}) was not run again: it {what}"
            write_frame(proc.control, {"op": "disable", "cell": key[0], "function": key[1], "reason": reason})
            self._control(time.monotonic() + EVENT_WAIT)

    # -- requests ---------------------------------------------------------------------------------------
    def _answer(self, clock: ProbeClock) -> dict[str, Any]:
        try:
            clock.wait(self.tester)
            reply = read_frame(self.tester, clock.ceiling)
        except ChannelTimeout:
            raise self._tester_gone(hung=True, seconds=clock.limit, idle=clock.idle) from None
        except ChannelClosed:
            raise self._tester_gone(hung=False, seconds=0) from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self.stop()
            raise StudentError("the worker sent an answer that is not well formed")
        return reply

    def call(
        self, key: str, probes_source: str, name: str, kwargs: dict[str, Any], timeout: float, trace: bool = False
    ) -> Any:
        """Run one probe. With `trace`, `reached` then holds the cells whose code it ran and the notebook
        globals it looked up (the audit traces the reference's tests)."""
        self.reached = Reach()
        self.ensure_loaded()
        if self.broken:
            raise StudentError(self.broken)
        ooms = self._oom_kills()
        try:
            result = self._call(key, probes_source, name, kwargs, timeout, trace)
        except StudentError:
            if self.proc is not None and self._oom_kills() > ooms:
                raise self._out_of_memory() from None
            raise
        if self._oom_kills() > ooms:
            raise self._out_of_memory()
        return result

    def _call(
        self, key: str, probes_source: str, name: str, kwargs: dict[str, Any], timeout: float, trace: bool
    ) -> Any:
        clock = ProbeClock(timeout, self._running())
        tester = self._get_tester(max(clock.deadline, clock.sent + EVENT_WAIT))
        try:
            if key not in self.loaded_probes:
                write_frame(tester, {"op": "probes", "key": key, "source": probes_source})
                reply = self._answer(clock)
                if not reply["ok"]:
                    raise StudentError(
                        "the grader's probes could not be loaded next to this notebook: "
                        + explain(reply["error"], self.limits)
                    )
                self.loaded_probes.add(key)
            request = {"op": "call", "key": key, "name": name, "kwargs": kwargs, **({"trace": True} if trace else {})}
            write_frame(tester, request)
        except OSError:
            raise self._tester_gone(hung=False, seconds=0) from None
        reply = self._answer(clock)
        if trace:
            self.reached = Reach.of(reply)
        if not reply["ok"]:
            kind = reply["error"].get("type")
            # a disabled function's refusal is the grader's, not an exception of the student's code: no
            # cataloged mistake raises it, so there is nothing to compare (and nothing worth running again)
            kind = None if kind == "DisabledFunction" else kind
            detail, where = reply["error"].get("message"), reply["error"].get("where")
            function = where.get("function") if isinstance(where, dict) else None
            raise StudentError(
                explain(reply["error"], self.limits),
                kind=kind,
                detail=detail if isinstance(detail, str) else None,
                function=function if isinstance(function, str) else None,
            )
        return reply["result"]
