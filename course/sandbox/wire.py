"""The wire between the grader and a worker: length-prefixed frames of JSON plus raw numeric arrays.

Nothing is ever unpickled. A frame is a 4-byte big-endian header length, a JSON header, and the bytes of
the arrays the header lists (dtype, shape). Tensors travel as numpy arrays; tuples become lists.
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import struct
import time
from typing import Any

import numpy as np

MAX_FRAME = 1 << 30  # one answer may carry at most 1 GiB of arrays
MAX_FDS = 4  # descriptors one control frame may carry
_NUMERIC_KINDS = set("biufc")  # bool, int, uint, float, complex: no object arrays, ever


class ChannelClosed(Exception):
    """The other side closed the channel or sent something that is not a frame."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


def to_plain(obj: Any, arrays: list[np.ndarray]) -> Any:
    """Turn a probe's result into JSON-able data, moving arrays and tensors into `arrays`."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.generic):
        return to_plain(obj.item(), arrays)
    if isinstance(obj, (list, tuple)):
        return [to_plain(x, arrays) for x in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("a dictionary sent across the channel must have string keys")
        return {"__dict__": {k: to_plain(v, arrays) for k, v in obj.items()}}
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        obj = obj.detach().cpu().resolve_conj().resolve_neg().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"only numeric arrays can be sent, not dtype {obj.dtype}")
        arrays.append(np.ascontiguousarray(obj))
        return {"__array__": len(arrays) - 1}
    raise TypeError(f"a value of type {type(obj).__name__} cannot be sent across the channel")


def from_plain(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [from_plain(x, arrays) for x in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: from_plain(v, arrays) for k, v in obj["__dict__"].items()}
    return obj


def encode(message: dict[str, Any]) -> bytes:
    arrays: list[np.ndarray] = []
    body = to_plain(message, arrays)
    header = json.dumps({"body": body, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}).encode()
    return b"".join([struct.pack(">I", len(header)), header, *(a.tobytes() for a in arrays)])


def _receive(fd: int, n: int, fds: list[int] | None) -> bytes:
    """Up to n bytes; on a socket, with the descriptors that came with them appended to `fds`."""
    try:
        if fds is None:
            return os.read(fd, n)
        sock = socket.socket(fileno=fd)
        try:
            data, passed, _, _ = socket.recv_fds(sock, n, MAX_FDS)
        finally:
            sock.detach()
        fds.extend(passed)
        return data
    except ConnectionError:
        return b""


def _read_exact(fd: int, n: int, deadline: float | None, fds: list[int] | None = None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            # past the deadline, still take what is already there: a prefetched worker's reply may have
            # been waiting since long before the grader came to read it
            left = max(deadline - time.monotonic(), 0)
            if not select.select([fd], [], [], left)[0]:
                raise ChannelTimeout()
        chunk = _receive(fd, min(n - got, 1 << 20), fds)
        if not chunk:
            raise ChannelClosed("the channel was closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None, fds: list[int] | None = None) -> Any:
    """One frame. With `fds` (a list), `fd` is a Unix socket and the descriptors passed with the frame's
    bytes (SCM_RIGHTS) are appended to it."""
    (size,) = struct.unpack(">I", _read_exact(fd, 4, deadline, fds))
    if size > MAX_FRAME:
        raise ChannelClosed("a frame header was larger than allowed")
    try:
        header = json.loads(_read_exact(fd, size, deadline, fds))
        arrays = []
        for dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            if dt.kind not in _NUMERIC_KINDS or dt.hasobject:
                raise ValueError(dtype)
            count = math.prod(shape)
            if count * dt.itemsize > MAX_FRAME:
                raise ValueError("array too large")
            raw = _read_exact(fd, count * dt.itemsize, deadline)
            arrays.append(np.frombuffer(raw, dtype=dt).reshape(shape).copy())
        return from_plain(header["body"], arrays)
    except (ValueError, KeyError, TypeError) as exc:
        raise ChannelClosed(f"malformed frame: {exc}") from None


def write_frame(fd: int, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """Send one frame; `fds` (on a Unix socket) travel with its first bytes."""
    data = memoryview(encode(message))
    if fds:
        sock = socket.socket(fileno=fd)
        try:
            data = data[socket.send_fds(sock, [data], list(fds)) :]
        finally:
            sock.detach()
    while data:
        data = data[os.write(fd, data) :]
