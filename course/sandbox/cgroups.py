"""Control groups: every process of one submission counted together, for memory (RSS and swap) and for
the number of processes, whatever it forks.

Each grading process keeps its submissions' groups under one folder of its own,
`<controller>/course-grading/<grader pid>/`, and a watchdog (`python -m course.sandbox.cgroups PID
FOLDER...`, started with the first group) removes that folder when the grader ends, however it ends:
killed, interrupted or done. A group's processes are killed as soon as its submission is graded, and the
group is removed by a background thread once they have exited; the watchdog is for the grader that cannot.
Where no group can be made (no controller mounted, none writable), grading falls back to the per-process
limits, and says so once.

cgroup v2 is used where memory and pids are enabled on the unified hierarchy (a root at /sys/fs/cgroup, or
a delegated subtree such as a systemd user slice, for a grader without root); cgroup v1 where those two
controllers are mounted on their own (as on these machines).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
FOLDER = "course-grading"


class GroupError(OSError):
    """A group could not be made or used here."""


class Group:
    """One submission's control group: its directories, one per controller (v1) or one (v2)."""

    def __init__(self, dirs: dict[str, Path], version: int, memory_mb: int, processes: int):
        self.dirs = dirs
        self.version = version
        self.memory_mb = memory_mb
        self.processes = processes

    @property
    def bound(self) -> str:
        return f"cgroup v{self.version}"

    def _file(self, controller: str, v1: str, v2: str) -> Path:
        return self.dirs[controller] / (v1 if self.version == 1 else v2)

    def add(self, pid: int) -> None:
        """Put a process (and so everything it will start) in the group."""
        for d in dict.fromkeys(self.dirs.values()):
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in dict.fromkeys(self.dirs.values()):
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes of the group the kernel killed for going over its memory."""
        try:
            text = self._file("memory", "memory.oom_control", "memory.events").read_text()
        except OSError:
            return 0
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", 0))

    def forks_refused(self) -> int:
        """How many times the group refused a new process or thread (its process limit was reached)."""
        try:
            text = (self.dirs["pids"] / "pids.events").read_text()
        except OSError:
            return 0
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("max", 0))

    def peak_bytes(self) -> int | None:
        """The most memory the group has held at once (RSS, page cache and kernel memory of it)."""
        try:
            return int(self._file("memory", "memory.max_usage_in_bytes", "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.dirs["memory"] / "cgroup.kill").write_text("1")
        for _ in range(3):  # v1 has no cgroup.kill: what forks while it is being killed is killed next time
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self, wait: float = 5.0) -> None:
        """Kill what is left in the group, and remove it."""
        deadline = time.monotonic() + wait
        self.kill()
        for d in dict.fromkeys(self.dirs.values()):
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still busy: its last processes are exiting
                    if time.monotonic() > deadline:
                        break
                    self.kill()
                    time.sleep(0.01)

    def remove_soon(self) -> None:
        """Kill what is left in the group now, and remove it once its processes have exited (a killed
        process that has imported torch takes tens of milliseconds to go), while grading goes on."""
        self.kill()
        _removals().put(self)


_removal_queue: queue.SimpleQueue[Group] | None = None


def _removals() -> queue.SimpleQueue[Group]:
    """The groups waiting to be removed, and the thread that removes them (what it has not removed when
    the grader exits, the watchdog does)."""
    global _removal_queue
    if _removal_queue is None:
        _removal_queue = queue.SimpleQueue()
        threading.Thread(target=_remove_queued, args=(_removal_queue,), daemon=True).start()
    return _removal_queue


def _remove_queued(pending: queue.SimpleQueue[Group]) -> None:
    while True:
        pending.get().remove()


class Controllers:
    """Where this grader's groups are made, and how."""

    def __init__(self, version: int, bases: dict[str, Path]):
        self.version = version
        self.bases = bases  # controller -> this grader's folder
        self.count = itertools.count()
        self.watchdog: subprocess.Popen[bytes] | None = None

    def create(self, memory_mb: int, processes: int) -> Group:
        name = str(next(self.count))
        dirs = {c: b / name for c, b in self.bases.items()}
        try:
            for d in dict.fromkeys(dirs.values()):
                d.mkdir()
            group = Group(dirs, self.version, memory_mb, processes)
            limit = str(memory_mb << 20)
            if self.version == 1:
                (dirs["memory"] / "memory.limit_in_bytes").write_text(limit)
                swap = dirs["memory"] / "memory.memsw.limit_in_bytes"  # RSS and swap together, where accounted
                if swap.exists():
                    swap.write_text(limit)
                (dirs["pids"] / "pids.max").write_text(str(processes))
            else:
                (dirs["memory"] / "memory.max").write_text(limit)
                swap = dirs["memory"] / "memory.swap.max"
                if swap.exists():
                    swap.write_text("0")
                (dirs["pids"] / "pids.max").write_text(str(processes))
        except OSError as exc:
            for d in dirs.values():
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise GroupError(exc.errno or 0, f"cannot make a control group: {exc}") from None
        if self.watchdog is None:
            self.watchdog = _start_watchdog(list(self.bases.values()))
        return group


def _v1(root: Path) -> dict[str, Path] | None:
    bases = {c: root / c for c in ("memory", "pids")}
    if all((b / "cgroup.procs").exists() and os.access(b, os.W_OK) for b in bases.values()):
        return bases
    return None


def _v2(root: Path) -> Path | None:
    """A writable v2 folder with memory and pids for our children: the root, or our own (delegated) group."""
    if not (root / "cgroup.controllers").exists():
        unified = root / "unified"
        if not (unified / "cgroup.controllers").exists():
            return None
        root = unified
    candidates = [root]
    with contextlib.suppress(OSError):
        own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        candidates.append(root / own.lstrip("/"))
    for base in candidates:
        with contextlib.suppress(OSError):
            enabled = set((base / "cgroup.subtree_control").read_text().split())
            if {"memory", "pids"} <= enabled and os.access(base, os.W_OK):
                return base
            if {"memory", "pids"} <= set((base / "cgroup.controllers").read_text().split()) and base == root:
                (base / "cgroup.subtree_control").write_text("+memory +pids")
                return base
    return None


def find(root: Path = CGROUP) -> Controllers | str:
    """This grader's controllers, or why there are none."""
    mine = f"{FOLDER}/{os.getpid()}"
    v2 = _v2(root)
    if v2 is not None:
        base = v2 / mine
        try:
            base.mkdir(parents=True, exist_ok=True)
            for parent in (v2 / FOLDER, base):
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            return Controllers(2, {"memory": base, "pids": base})
        except OSError:
            pass
    v1 = _v1(root)
    if v1 is None:
        return "no memory and pids control groups that this user may write (cgroup v2 delegated, or v1 as root)"
    bases = {c: b / mine for c, b in v1.items()}
    try:
        for b in bases.values():
            b.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot make control groups ({exc})"
    return Controllers(1, bases)


def _start_watchdog(bases: list[Path]) -> subprocess.Popen[bytes]:
    """A small process that outlives this grader only to remove its groups."""
    return subprocess.Popen([sys.executable, "-m", "course.sandbox.cgroups", str(os.getpid()), *map(str, bases)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def remove_tree(base: Path) -> None:
    """Kill every process left in a grader's groups, and remove them and its folder."""
    if not base.is_dir():
        return
    for d in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True):
        Group({"memory": d}, 1, 0, 0).remove(wait=10.0)
    with contextlib.suppress(OSError):
        base.rmdir()


def watch(grader: int, bases: list[Path]) -> None:
    """Wait for the grader to end (its stdin pipe closes), then remove its groups."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal: outlive it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    for base in bases:
        remove_tree(base)


if __name__ == "__main__":
    watch(int(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
