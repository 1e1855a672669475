"""The worker: the processes that hold a submission's code. They run apart from the grader and answer only
through the grader's sockets; the student's stdout, stderr, exit status and files are never read.

One submission is two processes, both started before any of its tests:

- the *loader* runs the notebook's cells once (its definitions), then forks
- a *tester* for the tests to use: it answers the grader's probes on its own Unix socket, from the loaded
  state. When the tester dies (os._exit, a crash) or hangs and the grader asks for it to be stopped, the
  loader reaps it, kills whatever else the submission left running, and forks a fresh tester: the next
  test pays a fork, not a new Python that imports torch and runs the notebook again.

The loader speaks on the control socket:
  {"op": "run", "cells": [[label, source], ...]}  -> {"ok": true, "errors": [...]}   define the notebook's code
  {"op": "disable", "cell", "function", "reason"} -> {"ok": true, "found": n}        make a function raise at once
  {"op": "tester"} -> {"event": "ready"} + the grader's end of the new tester's socket; then, once it has died,
                      {"event": "exited", "status": S, "where": W}  (S: its wait status; W: its innermost
                      student frame, when its stack could be read)
  {"op": "stop"}   (while a tester runs) stop it: it hung
The tester speaks on its own socket:
  {"op": "probes", "key": k, "source": s}            load a suite's probe functions
  {"op": "call", "key": k, "name": n, "kwargs": {}}  run one probe against the notebook
      (with "trace": true, the reply also holds "reached": the notebook's functions the probe ran, as
      "cell label:qualified name", and "names": the globals it looked up; the audit traces the reference)

This module is the trust boundary: it imports only the standard library and the wire protocol.
"""

from __future__ import annotations

import faulthandler
import linecache
import os
import re
import select
import signal
import socket
import sys
import threading
import traceback
from types import CodeType, FunctionType
from typing import Any

from course.sandbox.wire import ChannelClosed, read_frame, write_frame

STUDENT_FILE = "<cell "
DUMP_SIGNAL = signal.SIGUSR1  # the loader asks a hanging tester where it is before it is stopped
PR_SET_PDEATHSIG = 1
DISABLED = "__course_disabled__"  # the name a disabled function's stub raises, in the notebook's namespace


class MissingDefinition(AttributeError):
    pass


class DisabledFunction(Exception):
    """Raised by a student function that killed or hung its tester too often to be run again."""


class Notebook:
    """The submission's globals as attributes, with a message that names what is missing."""

    def __init__(self, namespace: dict[str, Any], seen: set[str] | None = None):
        object.__setattr__(self, "_ns", namespace)
        object.__setattr__(self, "_seen", seen)  # a traced call: every name looked up

    def __getattr__(self, name: str) -> Any:
        if self._seen is not None:
            self._seen.add(name)
        try:
            return self._ns[name]
        except KeyError:
            raise MissingDefinition(f"the notebook does not define `{name}`") from None

    def __contains__(self, name: str) -> bool:
        if self._seen is not None:
            self._seen.add(name)
        return name in self._ns


def compile_code(source: str, filename: str) -> CodeType:
    """Compile a notebook cell, a suite's probes or a reference module the same way, as Jupyter does: with
    nothing inherited from this module (no `from __future__ import annotations`)."""
    return compile(source, filename, "exec", dont_inherit=True)


def strip_magics(source: str) -> str:
    """IPython magics and shell escapes mean nothing to the grader: comment them out."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(
        ("pass  # " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Say where in the student's code an exception came from, in words a student can act on."""
    frames = traceback.extract_tb(exc.__traceback__)
    student = [f for f in frames if f.filename.startswith(STUDENT_FILE)]
    where = None
    if student:
        f = student[-1]
        where = {
            "cell": f.filename[len(STUDENT_FILE) : -1],
            "line": f.lineno,
            "function": f.name,
            "code": (f.line or "").strip(),
        }
    errno = getattr(exc, "errno", None)
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "where": where,
        "errno": errno if isinstance(errno, int) else None,
    }


def run_cells(cells: list[list[str]], namespace: dict[str, Any]) -> list[dict[str, Any]]:
    errors = []
    for label, source in cells:
        filename = f"{STUDENT_FILE}{label}>"
        source = strip_magics(source)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile_code(source, filename), namespace)
        except BaseException as exc:
            errors.append({"cell": label, **describe_error(exc)})
    return errors


def preload(modules: list[str]) -> None:
    """Import what every notebook needs before the first fork, so that each tester shares it."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def limit_data(budget_mb: int) -> None:
    """Cap the data segment (RLIMIT_DATA) at what is mapped now, the interpreter and the preloaded modules,
    plus the submission's own budget: what the course imports for every notebook is not the student's
    allocation, and a module added to the preload must not shrink every submission's memory."""
    import resource

    with open("/proc/self/status") as status:
        loaded_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    limit = (loaded_kb << 10) + (budget_mb << 20)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


# -- the tester ------------------------------------------------------------------------------------------------
def serve_tests(sock: int, namespace: dict[str, Any]) -> None:
    """Answer the grader's probe calls until the socket closes."""
    probe_spaces: dict[str, dict[str, Any]] = {}
    while True:
        try:
            request = read_frame(sock)
        except ChannelClosed:
            return
        op = request.get("op") if isinstance(request, dict) else None
        try:
            if op == "probes":
                space: dict[str, Any] = {"__name__": "probes"}
                exec(compile_code(request["source"], "<probes>"), space)
                probe_spaces[request["key"]] = space
                reply: dict[str, Any] = {"ok": True}
            elif op == "call" and request.get("trace") is True:
                fn = probe_spaces[request["key"]][request["name"]]
                reply = traced_call(fn, namespace, request["kwargs"])
            elif op == "call":
                fn = probe_spaces[request["key"]][request["name"]]
                reply = {"ok": True, "result": fn(Notebook(namespace), **request["kwargs"])}
            else:
                reply = {"ok": False, "error": {"type": "ProtocolError", "message": f"unknown op {op!r}"}}
        except BaseException as exc:
            reply = {"ok": False, "error": describe_error(exc)}
        try:
            write_frame(sock, reply)
        except TypeError as exc:  # the result holds something that cannot cross the channel
            write_frame(sock, {"ok": False, "error": {"type": "TypeError", "message": str(exc), "where": None}})
        except OSError:
            return


def traced_call(fn: Any, namespace: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A probe call that also says which of the notebook's functions it ran and which globals it looked up."""
    reached: set[str] = set()
    seen: set[str] = set()

    def hook(frame: Any, event: str, arg: Any) -> None:
        # called once per new frame; returning None leaves the frame's lines untraced (cheap)
        code = frame.f_code
        if code.co_filename.startswith(STUDENT_FILE):
            reached.add(f"{code.co_filename[len(STUDENT_FILE) : -1]}:{code.co_qualname}")

    sys.settrace(hook)
    threading.settrace(hook)  # and the threads the probe's code starts
    try:
        reply: dict[str, Any] = {"ok": True, "result": fn(Notebook(namespace, seen), **kwargs)}
    except BaseException as exc:
        reply = {"ok": False, "error": describe_error(exc)}
    finally:
        sys.settrace(None)
        threading.settrace(None)
    reply["reached"], reply["names"] = sorted(reached), sorted(seen)
    return reply


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_tester(ctl: int, namespace: dict[str, Any]) -> tuple[int, int, int]:
    """Fork a tester; returns (its pid, the grader's end of its socket, the read end of its stack dumps)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    dump_r, dump_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _die_with_parent()
            if os.getppid() != parent:
                os._exit(1)
            os.close(ctl)
            os.close(dump_r)
            theirs.close()
            # where the tester was when it crashed or hung: the loader reads it, names the function
            faulthandler.enable(file=dump_w, all_threads=False)
            faulthandler.register(DUMP_SIGNAL, file=dump_w, all_threads=False, chain=False)
            serve_tests(ours.fileno(), namespace)
        finally:
            os._exit(0)
    ours.close()
    os.close(dump_w)
    return pid, theirs.detach(), dump_r


def _read_dump(fd: int) -> dict[str, Any] | None:
    """The innermost student frame of a faulthandler dump: {"cell", "line", "function"}, or None."""
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    for line in data.decode(errors="replace").splitlines():  # most recent call first
        m = re.match(r'\s*File "<cell (.+)>", line (\d+) in (\S+)', line)
        if m:
            return {"cell": m.group(1), "line": int(m.group(2)), "function": m.group(3)}
    return None


def _sweep() -> None:
    """Kill every process of the submission but this one (and its namespace's init), and reap them: what a
    dead tester started does not live on into the next one. kill(-1) reaches every process of the PID
    namespace at once, so a fork bomb cannot outrun it."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(1000):  # a killed process takes a moment to become a zombie
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            select.select([], [], [], 0.005)


def disable(namespace: dict[str, Any], cell: str, function: str, reason: str) -> int:
    """Make every function of the notebook defined as `function` in `cell` raise DisabledFunction(reason)
    when called, wherever it is referenced from. Returns how many were found."""
    namespace[DISABLED] = DisabledFunction
    found = 0
    for fn in _functions(namespace):
        code = fn.__code__
        if code.co_filename == f"{STUDENT_FILE}{cell}>" and code.co_name == function:
            fn.__code__ = _raising_code(code, reason)
            found += 1
    return found


def _functions(namespace: dict[str, Any]) -> list[FunctionType]:
    """The notebook's functions: top-level ones and the methods of its classes."""
    out: list[FunctionType] = []
    for value in list(namespace.values()):
        candidates = [value]
        if isinstance(value, type) and value.__module__ == "__main__":
            candidates += list(vars(value).values())
        for c in candidates:
            c = getattr(c, "__func__", c)  # staticmethod, classmethod
            c = getattr(c, "fget", c)  # property
            if isinstance(c, FunctionType) and c not in out:
                out.append(c)
    return out


def _raising_code(code: CodeType, reason: str) -> CodeType:
    """A code object with the same free variables as `code` that raises DisabledFunction(reason)."""
    names = [f"_v{i}" for i in range(len(code.co_freevars))]
    body = "".join(f"    {v} = None\n" for v in names) + "    def stub(*args, **kwargs):\n"
    body += f"        ({', '.join(names)},)\n" if names else ""
    body += f"        raise {DISABLED}({reason!r})\n    return stub\n"
    space: dict[str, Any] = {}
    exec(compile_code("def outer():\n" + body, code.co_filename), space)
    stub: CodeType = space["outer"]().__code__
    return stub.replace(co_name=code.co_name, co_qualname=code.co_qualname)


# -- the loader ------------------------------------------------------------------------------------------------
def serve_submission(ctl: int, sweep: bool) -> None:
    """Answer the grader's control requests until it hangs up: run the cells, disable a function, start a
    tester (and watch it until it dies or the grader has it stopped). `sweep`: the loader is alone in a PID
    namespace of its own, so that what a dead tester left running can be killed."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        try:
            request = read_frame(ctl)
        except ChannelClosed:
            return
        op = request.get("op") if isinstance(request, dict) else None
        if op == "run":
            write_frame(ctl, {"ok": True, "errors": run_cells(request["cells"], namespace)})
        elif op == "disable":
            found = disable(namespace, str(request["cell"]), str(request["function"]), str(request["reason"]))
            write_frame(ctl, {"ok": True, "found": found})
        elif op == "tester":
            try:
                pid, theirs, dump = _start_tester(ctl, namespace)
            except OSError:  # out of processes: what the last tester left is still dying
                if sweep:
                    _sweep()
                pid, theirs, dump = _start_tester(ctl, namespace)
            write_frame(ctl, {"event": "ready"}, fds=(theirs,))
            os.close(theirs)
            status = _watch(ctl, pid)
            if status is None:  # the grader hung up
                return
            if sweep:
                _sweep()
            write_frame(ctl, {"event": "exited", "status": status, "where": _read_dump(dump)})
        else:
            write_frame(ctl, {"ok": False, "error": {"type": "ProtocolError", "message": f"unknown op {op!r}"}})


def _watch(ctl: int, pid: int) -> int | None:
    """Wait for the tester to die, or for the grader to have it stopped: its wait status, or None when the
    grader hung up."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready = select.select([ctl, pidfd], [], [])[0]
            if pidfd in ready:
                return os.waitpid(pid, 0)[1]
            try:
                request = read_frame(ctl)
            except ChannelClosed:
                os.kill(pid, signal.SIGKILL)
                return None
            if isinstance(request, dict) and request.get("op") == "stop":
                _stop(pid, pidfd)
    finally:
        os.close(pidfd)


def _stop(pid: int, pidfd: int) -> None:
    """Ask the tester where it is (its stack goes to the dump pipe), then kill it."""
    try:
        os.kill(pid, DUMP_SIGNAL)
        select.select([pidfd], [], [], 0.25)  # a dump takes microseconds; a tester that ignores it is killed
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    """`python -m course.sandbox.server`: one submission's loader, in a sandbox of its own."""
    ctl = int(os.environ.pop("COURSE_CHANNEL"))
    sweep = os.environ.pop("COURSE_SWEEP", "") == "1"  # set only inside a sandbox's PID namespace
    if "COURSE_NPROC" in os.environ:  # without root: the process limit binds once inside our user namespace
        import resource

        n = int(os.environ.pop("COURSE_NPROC"))
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
    preload([m for m in os.environ.pop("COURSE_PRELOAD", "").split(",") if m])
    limit_data(int(os.environ.pop("COURSE_MEMORY_MB")))
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.argv = ["notebook"]
    serve_submission(ctl, sweep)
    os._exit(0)


if __name__ == "__main__":
    main()
