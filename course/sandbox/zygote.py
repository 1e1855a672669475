"""The fork server: one process that has imported what every notebook needs (numpy, torch, the worker's own
code) once, and forks each submission's loader from that state, so that no submission pays for
`import torch` again.

It runs inside a bubblewrap sandbox of its own (`launch.ForkServer`): the read-only view of the file system
that every worker gets, no network, the capabilities it needs to set children up (CAP_SYS_ADMIN,
CAP_SETUID, CAP_SETGID) and nothing else; it dies with the grader. It never runs student code, receives no
hidden test, reference or expected value (only the user id and limits of each child), and holds nothing a
child could learn from.

Each child, before any student code runs, gets what a bubblewrap worker gets:

- new PID, network, IPC, UTS and mount namespaces: it is PID 1 of its own namespace (when it dies, every
  process it started dies too), it has no network (not even loopback shared with another submission), no
  System V or POSIX IPC in common with anyone, and a private `/tmp` and `/dev/shm` (fresh tmpfs of the
  scratch size) and `/proc` (its own processes only) over the fork server's read-only view;
- a user id of its own (the grader chooses it), no supplementary groups, no capabilities at all (every
  set cleared, the bounding set included), no_new_privs, and the resource limits of course.yaml; without
  root, a user namespace of its own instead of a user id (its processes are counted apart all the same),
  in which it may make no further user namespace;
- death with its parent (PR_SET_PDEATHSIG), all the fork server's descriptors closed but its control
  socket, standard streams on /dev/null, a new session.

Nothing passes from one child to the next: each is a fork of the same state, which no child can write
(separate memory, separate namespaces, separate uids, nothing writable in common on the file system).

Requests (a Unix socket from the grader, one frame each):
  {"op": "spawn", "uid": U, "limits": {...}} + the loader's control socket -> {"pid": P} (P: the child's
  pid, as the grader sees it); the child then waits for
  {"op": "go", "pid": P} (the grader has put P in its control groups) -> {"ok": true}
and, unasked, {"event": "exited", "pid": P, "status": S} when a child has died (S: its wait status).
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from course.sandbox import server
from course.sandbox.wire import ChannelClosed, read_frame, write_frame

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)  # fmt: skip
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 1 << 14, 1 << 18)  # fmt: skip
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None), f"mount {target}")  # fmt: skip


def _clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (capset(2), version 3: two 32-bit words)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")


def apply_limits(limits: dict[str, int], nproc: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_mb"] << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    # RLIMIT_AS would break `import torch`, which reserves large virtual regions; cap the data segment above
    # what the zygote preloaded (the child shares it copy-on-write)
    server.limit_data(limits["memory_mb"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # counted per user id: the child's own id, so it counts only this submission's processes
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _mounts_under(top: str) -> list[str]:
    """The mount points below `top` in this mount namespace (read-only views bound there, such as a data
    cache or a course kept under /tmp), outermost first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(top + "/"):
            points.append(point)
    return sorted(set(points), key=len)


def _fresh_tmpfs(top: str, options: str) -> None:
    """A new, empty tmpfs on `top`, with the read-only views that were bound inside it bound again."""
    kept = [(p, os.open(p, os.O_PATH)) for p in _mounts_under(top)]
    _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for point, fd in kept:
        os.makedirs(point, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", point, None, MS_BIND | MS_REC)
        _mount("none", point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)


def _own_user_namespace(uid: int) -> None:
    """Without root: a user namespace of the child's own, in which it is `uid` (the grader's user outside).
    Its processes are counted apart from every other submission's (RLIMIT_NPROC is per user namespace), as
    long as the limit is set once inside (see apply_limits), not before."""
    outside_uid, outside_gid = os.getuid(), os.getgid()  # once unshared, these read as unmapped
    _check(libc.unshare(CLONE_NEWUSER), "unshare a user namespace")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {outside_uid} 1\n")
    Path("/proc/self/gid_map").write_text(f"{uid} {outside_gid} 1\n")


def _become_submission(uid: int, limits: dict[str, int], nproc: int, rootless: bool) -> None:
    """In the child, PID 1 of its new namespaces: the private mounts, then every privilege dropped."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    scratch = f"size={limits['scratch_mb']}m,mode=1777"
    _fresh_tmpfs("/tmp", scratch)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, scratch)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    socket.sethostname("sandbox")
    os.setsid()
    os.chdir("/tmp")
    apply_limits(limits, nproc)
    for cap in range(int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1):  # the bounding set too
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop the capability bounding set")
    if rootless:
        Path("/proc/sys/user/max_user_namespaces").write_text("0")  # and no user namespace of its own making
    else:
        os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _clear_capabilities()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _close_all_but(ctl: int, lifeline: int) -> tuple[int, int]:
    """Only the loader's control socket and its lifeline stay open (as descriptors 3 and 4), with stdio on
    /dev/null."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    moved = [os.dup(fd) for fd in (ctl, lifeline)]  # above 4 first, so that neither overwrites the other
    os.dup2(moved[0], 3)
    os.dup2(moved[1], 4)
    os.closerange(5, 1 << 20)
    return 3, 4


def _child(request: dict[str, Any], ctl: int, go: int, control: socket.socket) -> None:
    """The intermediate process: waits for the grader's go, makes the new namespaces, forks the loader
    into them, and ends as the loader ended (its exit code, or the same signal)."""
    server._die_with_parent()
    control.close()
    os.read(go, 1)
    os.close(go)
    rootless = bool(request.get("rootless"))
    uid = os.getuid() if rootless else int(request["uid"])  # without root, no other id can be mapped
    if rootless:
        _own_user_namespace(uid)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    lifeline, held = os.pipe()  # the loader sees it close if this process dies
    pid = os.fork()
    if pid == 0:
        os.close(held)
        try:
            _become_submission(uid, request["limits"], int(request.get("nproc", request["limits"]["processes"])),
                               rootless)  # fmt: skip
        except OSError:
            traceback.print_exc()  # to the fork server's log (COURSE_SANDBOX_LOG), then give up
            os._exit(1)
        ctl, lifeline = _close_all_but(ctl, lifeline)
        # a change of user id clears the parent-death signal: set it now, then make sure the parent did not
        # die before it was set (its end of the lifeline would be closed)
        server._die_with_parent()
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(1)
        os.close(lifeline)
        server.serve_submission(ctl, sweep=True)
        os._exit(0)
    os.close(ctl)
    os.close(lifeline)
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def serve(control: socket.socket) -> None:
    fd = control.fileno()
    waiting: dict[int, int] = {}  # child pid -> the write end of its go pipe
    while True:
        ready = select.select([fd], [], [], 0.2)[0]
        _reap(fd)
        if not ready:
            continue
        fds: list[int] = []
        try:
            request = read_frame(fd, fds=fds)
        except ChannelClosed:
            return
        op = request.get("op") if isinstance(request, dict) else None
        if op == "spawn" and len(fds) == 1:
            go_r, go_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(go_w)
                    _child(request, fds[0], go_r, control)
                except BaseException:
                    traceback.print_exc()  # to the fork server's log (COURSE_SANDBOX_LOG)
                finally:
                    os._exit(1)
            os.close(go_r)
            os.close(fds[0])
            waiting[pid] = go_w
            write_frame(fd, {"pid": pid})
            continue
        for extra in fds:
            os.close(extra)
        pid = int(request.get("pid", 0)) if isinstance(request, dict) else 0
        if op == "go" and pid in waiting:
            os.write(waiting[pid], b"g")
            os.close(waiting.pop(pid))
        write_frame(fd, {"ok": True})


def _reap(fd: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        write_frame(fd, {"event": "exited", "pid": pid, "status": status})


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def main() -> None:
    """`python -m course.sandbox.zygote`, inside its sandbox: preload, then serve the grader's socket."""
    control = socket.socket(fileno=int(os.environ.pop("COURSE_ZYGOTE")))
    server.preload([m for m in os.environ.get("COURSE_PRELOAD", "").split(",") if m])
    sys.argv = ["notebook"]
    # a fork copies only the forking thread: a second one (a BLAS pool, say) could hold a lock forever
    alive = threads()
    write_frame(control.fileno(), {"ready": alive == 1 and threading.active_count() == 1, "threads": alive})
    if alive == 1:
        serve(control)
    os._exit(0)


if __name__ == "__main__":
    main()
