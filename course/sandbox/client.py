"""The grader's side of a worker: start it, load a submission, run probes with deadlines, restart after a
hang or a crash. Every answer is checked here; a missing or late answer is a failure, never a pass."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

from course.config import Limits
from course.sandbox.launch import WorkerProcess, start_worker
from course.sandbox.wire import ChannelClosed, ChannelTimeout, read_frame, write_frame


class StudentError(AssertionError):
    """The submission raised, hung or crashed while a test was using it. `kind` names the exception the
    student's code raised, when it raised one."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind


def explain(error: dict[str, Any], limits: Limits | None = None) -> str:
    """One sentence about an exception raised in the student's code, naming the limit it ran into."""
    kind, message, where, code = error["type"], error["message"], error.get("where"), error.get("errno")
    place = ""
    if where:
        fn = f"`{where['function']}`" if where["function"] != "<module>" else "the cell"
        place = f" in {fn} (cell {where['cell']}, line {where['line']}: `{where['code']}`)"
    if kind == "NotImplementedError":
        return f"not implemented yet: NotImplementedError raised{place}"
    if kind == "MissingDefinition":
        return f"{message}: run every cell of the exercise and keep the names the notebook asks for"
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


class Worker:
    def __init__(self, cells: list[list[str]], limits: Limits, load_timeout: float, sandboxed: bool = True):
        self.cells = cells
        self.limits = limits
        self.sandboxed = sandboxed
        self.load_timeout = load_timeout
        self.proc: WorkerProcess | None = None
        self.loaded = False
        self._started = self._sent = 0.0
        self.load_errors: list[dict[str, Any]] = []
        self.loaded_probes: set[str] = set()
        self.broken: str | None = None

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the process and send the notebook's cells; the answer is collected by `ensure_loaded`."""
        self.loaded_probes = set()
        self.loaded = False
        self._started = self._sent = time.monotonic()
        try:
            self.proc = proc = start_worker(self.limits, self.sandboxed)
            write_frame(proc.requests, {"op": "run", "cells": self.cells})
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
        try:
            reply = self._answer(self._started + self.load_timeout)
            self.load_errors = reply.get("errors", [])
        except StudentError as exc:
            self.broken = f"while running the notebook's cells: {exc}"

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.process.wait()
        for fd in (self.proc.requests, self.proc.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.cleanup()
        self.proc = None

    # -- requests ---------------------------------------------------------------------------------------
    def _running(self) -> WorkerProcess:
        assert self.proc is not None, "the worker is not running"
        return self.proc

    def _answer(self, deadline: float) -> dict[str, Any]:
        try:
            reply = read_frame(self._running().responses, deadline)
        except ChannelTimeout:
            seconds = deadline - self._sent
            self.stop()
            raise StudentError(
                f"time limit of {seconds:.0f} s exceeded: an infinite loop, or far too slow "
                "(is something recomputed inside a loop?)"
            ) from None
        except ChannelClosed as exc:
            code = self.proc.process.poll() if self.proc else None
            if code is None and self.proc:
                time.sleep(0.2)
                code = self.proc.process.poll()
            self.stop()
            raise StudentError(_death(code, str(exc), self.limits)) from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self.stop()
            raise StudentError("the worker sent an answer that is not well formed")
        return reply

    def call(self, key: str, probes_source: str, name: str, kwargs: dict[str, Any], timeout: float) -> Any:
        self.ensure_loaded()
        if self.broken:
            raise StudentError(self.broken)
        self._sent = time.monotonic()
        deadline = self._sent + timeout
        try:
            if key not in self.loaded_probes:
                write_frame(self._running().requests, {"op": "probes", "key": key, "source": probes_source})
                reply = self._answer(deadline)
                if not reply["ok"]:
                    raise StudentError(
                        "the grader's probes could not be loaded next to this notebook: "
                        + explain(reply["error"], self.limits)
                    )
                self.loaded_probes.add(key)
            write_frame(self._running().requests, {"op": "call", "key": key, "name": name, "kwargs": kwargs})
        except OSError:
            code = self.proc.process.poll() if self.proc else None
            self.stop()
            raise StudentError(_death(code, "broken pipe", self.limits)) from None
        reply = self._answer(deadline)
        if not reply["ok"]:
            raise StudentError(explain(reply["error"], self.limits), kind=reply["error"].get("type"))
        return reply["result"]


def _death(code: int | None, detail: str, limits: Limits) -> str:
    if code is not None and code < 0:
        sig = signal.Signals(-code).name
        why = {
            "SIGKILL": "killed (out of memory, or a limit was reached)",
            "SIGXCPU": f"out of CPU time (the limit is {limits.cpu_seconds} s)",
            "SIGSEGV": "crashed (segmentation fault)",
            "SIGXFSZ": "wrote a file larger than allowed",
        }
        return f"the notebook's process stopped: {why.get(sig, sig)}"
    if code is not None:
        return f"the notebook's process exited with status {code} (does the code call exit()?)"
    return f"the notebook's process stopped answering ({detail})"
