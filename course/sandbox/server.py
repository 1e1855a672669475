"""The worker: the process that holds a submission's code. It runs apart from the grader and answers only through the
grader's channel (two pipe descriptors named in COURSE_CHANNEL); the student's stdout, stderr, exit status
and files are never read.

Requests: {"op": "run", "cells": [[label, source], ...]}  — define the notebook's code
          {"op": "probes", "key": k, "source": s}         — load a suite's probe functions
          {"op": "call", "key": k, "name": n, "kwargs": {...}} — run one probe against the notebook
"""

from __future__ import annotations

import linecache
import os
import sys
import traceback
from types import CodeType
from typing import Any

from course.sandbox.wire import ChannelClosed, read_frame, write_frame

STUDENT_FILE = "<cell "


class MissingDefinition(AttributeError):
    pass


class Notebook:
    """The submission's globals as attributes, with a message that names what is missing."""

    def __init__(self, namespace: dict[str, Any]):
        object.__setattr__(self, "_ns", namespace)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._ns[name]
        except KeyError:
            raise MissingDefinition(f"the notebook does not define `{name}`") from None

    def __contains__(self, name: str) -> bool:
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


def serve(req_fd: int, resp_fd: int) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    probe_spaces: dict[str, dict[str, Any]] = {}
    while True:
        try:
            request = read_frame(req_fd)
        except ChannelClosed:
            return
        op = request.get("op")
        try:
            if op == "run":
                reply = {"ok": True, "errors": run_cells(request["cells"], namespace)}
            elif op == "probes":
                space = {"__name__": "probes"}
                exec(compile_code(request["source"], "<probes>"), space)
                probe_spaces[request["key"]] = space
                reply = {"ok": True}
            elif op == "call":
                fn = probe_spaces[request["key"]][request["name"]]
                result = fn(Notebook(namespace), **request["kwargs"])
                reply = {"ok": True, "result": result}
            elif op == "exit":
                return
            else:
                reply = {
                    "ok": False,
                    "error": {"type": "ProtocolError", "message": f"unknown op {op!r}", "where": None},
                }
        except BaseException as exc:
            reply = {"ok": False, "error": describe_error(exc)}
        try:
            write_frame(resp_fd, reply)
        except TypeError as exc:  # the result holds something that cannot cross the channel
            write_frame(resp_fd, {"ok": False, "error": {"type": "TypeError", "message": str(exc), "where": None}})


def main() -> None:
    req_fd, resp_fd = (int(x) for x in os.environ.pop("COURSE_CHANNEL").split(","))
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.argv = ["notebook"]
    serve(req_fd, resp_fd)
    os._exit(0)


if __name__ == "__main__":
    main()
