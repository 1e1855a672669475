"""How a submission's worker starts: where it runs, what it can see, its user id and its limits.

Every worker starts through `start_worker`, so isolation is decided in one place. There are three ways,
and each result records which one graded it:

- **fork server** (the default): one sandboxed process per grader has imported torch and the worker's code
  once (`zygote.py`), and forks each submission from that state into namespaces, a user id and limits of
  its own (the zygote's docstring lists them);
- **bubblewrap**: where the fork server cannot start, each worker is a new Python under bubblewrap, with
  the same view, namespaces, user id and limits;
- **none**: a plain process with the resource limits only, when the instructor passed
  `--allow-unsandboxed` (or a learner checks their own notebook where no sandbox can start).

What every sandboxed worker gets: its own PID, network, IPC and UTS namespaces (no network, no other
process visible, and killing its first process kills everything it started); a file system made only of
read-only views of the system libraries, the Python installation, the virtual environment, the `course`
package and the datasets, plus a private `/tmp` of bounded size (`autograder/`, `solutions/`, `source/`,
other submissions and the gradebook are not there at all); a user id of its own, not root, so that the
process limit counts only this submission's processes; the resource limits of course.yaml.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from course.config import Limits
from course.sandbox import cgroups
from course.sandbox.cgroups import Group
from course.sandbox.wire import ChannelClosed, ChannelTimeout, read_frame, write_frame

UID_BASE = 1_000_000  # sandbox user ids live above the ids of real accounts
ROOTLESS_UID = 1000  # without root, a submission's user id inside its own user namespace (the grader's outside)
UIDS_PER_GRADER = 16  # ids a grading process cycles through; it never has that many workers alive at once
# imported once by the fork server (and by each bubblewrap worker before the notebook runs): what the
# course's notebooks import, what `torch.optim` loads the first time an optimizer is made, and what the
# data loaders import when first called (scikit-learn's alone takes about 2 s: paid by the first probe that
# loads data, it would count against the student's time limit, which follows the reference's warm time)
PRELOAD = ("numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo", "matplotlib",
           "matplotlib.pyplot", "tqdm.auto", "coursedata", "sklearn.datasets", "sklearn.model_selection",
           "mnist1d.data", "course.sandbox.server")  # fmt: skip
PRELOAD_MB = 2048  # what the preload may map before the worker caps its data segment at that plus memory_mb
FORK_SERVER, BUBBLEWRAP, CONTAINER, UNSANDBOXED = "fork server", "bubblewrap", "container", "none"


def rootless() -> bool:
    """Grading without root: each sandbox is an unprivileged user namespace of its own (bubblewrap's
    --unshare-user), where a submission's processes are counted apart from the grader's."""
    return os.geteuid() != 0


def _apply_limits(limits: Limits, group: Group | None = None) -> Callable[[], None]:
    def set_limits() -> None:
        if group is not None:
            group.add(os.getpid())  # before exec: everything the worker starts is in its group
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        # RLIMIT_AS would break `import torch`, which reserves large virtual regions; cap the data segment.
        # The worker lowers it to its preload plus memory_mb before any student code (server.limit_data).
        resource.setrlimit(resource.RLIMIT_DATA, ((limits.memory_mb + PRELOAD_MB) << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Counted per user id: it binds once the sandbox has switched to the submission's own id. Without root,
        # the count is per user namespace: the worker lowers it once inside its own (see server.main), so that
        # the namespace is not made with a bound on every process of the grader's user.
        if not rootless():
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc(limits, group),) * 2)

    return set_limits


def worker_env(home: str) -> dict[str, str]:
    import course
    import coursedata

    # the data cache, and a tag that lets an operator find the processes of one grading run
    data = {k: os.environ[k] for k in ("COURSE_DATA_CACHE", "COURSE_GRADING_TAG") if os.environ.get(k)}
    # the worker imports `course` and `coursedata` from where the grader did (an installed copy, or a bundle)
    packages = [str(Path(str(m.__file__)).parent.parent) for m in (course, coursedata)]
    return {
        **data,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(packages)),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "USER": "student",
        "LOGNAME": "student",
        "MPLCONFIGDIR": home,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "NO_PROXY": "*",
        "COURSE_PRELOAD": ",".join(PRELOAD),
    }


def nproc(limits: Limits, group: Group | None) -> int:
    """RLIMIT_NPROC for a worker: the process limit itself, or, where a control group counts the
    submission's processes, twice that as a backstop behind the group."""
    return limits.processes * (2 if group is not None else 1)


def _rlimits_inside(limits: Limits, group: Group | None) -> dict[str, str]:
    """The limits a worker sets on itself once it is in its own user namespace (rootless mode)."""
    return {"COURSE_NPROC": str(nproc(limits, group))} if rootless() else {}


# -- what the sandbox can see -------------------------------------------------------------------------------
def visible_paths() -> list[Path]:
    """The directories a worker needs, read-only: Python, the virtual environment, the worker's own package
    and the course datasets (public data and the `coursedata` loaders)."""
    import course
    import coursedata

    paths = [
        Path(sys.base_prefix),
        Path(sys.prefix),
        Path(course.__file__).parent,
        Path(coursedata.__file__).parent.parent,
    ]
    cache = os.environ.get("COURSE_DATA_CACHE")
    if cache and Path(cache).is_dir():
        paths.append(Path(cache))
    resolved: list[Path] = []
    for p in paths:
        for q in (p, p.resolve()):  # both the path Python reports and the one symlinks lead to
            if q not in resolved and not any(q.is_relative_to(r) for r in resolved):
                resolved.append(q)
    return resolved


def _system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    return args


def _view(scratch_mb: int) -> list[str]:
    """The file system every worker sees: read-only system, Python, venv, course package and datasets; a
    private /tmp; a minimal /dev and /proc."""
    args = [*_system_args(), "--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "01777", "--size", str(scratch_mb << 20), "--tmpfs", "/tmp"]
    paths = visible_paths()
    # bwrap makes missing parents with mode 0700 (so /root would hide Python): make them traversable
    parents = sorted(
        {a for p in paths for a in p.parents if a != Path("/") and not _is_system(a)}, key=lambda a: len(a.parts)
    )
    for d in parents:
        args += ["--perms", "0755", "--dir", str(d)]
    for p in paths:
        args += ["--ro-bind", str(p), str(p)]
    return [*args, "--chdir", "/tmp"]


def bwrap_command(limits: Limits, uid: int, argv: list[str]) -> list[str]:
    namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if rootless():  # a user namespace of its own, no capabilities in it, and no further user namespaces
        return ["bwrap", *namespaces, "--unshare-user", "--uid", str(ROOTLESS_UID), "--gid", str(ROOTLESS_UID),
                "--disable-userns", "--die-with-parent", "--new-session", "--hostname", "sandbox",
                *_view(limits.scratch_mb), "--", "setpriv", "--no-new-privs", *argv]  # fmt: skip
    return [
        "bwrap", *namespaces, "--die-with-parent", "--new-session", "--hostname", "sandbox",
        # root inside bwrap only to switch to the submission's id; setpriv drops every capability after
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
        *_view(limits.scratch_mb), "--",
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        "--no-new-privs", *argv,
    ]  # fmt: skip


def zygote_command(argv: list[str]) -> list[str]:
    """The fork server's sandbox: the workers' view and no network; the capabilities it needs to make each
    child's namespaces and mounts and to give it its user id (the children drop them all); the host's PID
    namespace, so that the grader can find each child (each gets a PID namespace of its own). Without root,
    these capabilities hold in a user namespace of its own, and each child makes a nested one."""
    user = ["--unshare-user", "--uid", str(ROOTLESS_UID), "--gid", str(ROOTLESS_UID)] if rootless() else []
    return [
        "bwrap", *user, "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
        "--new-session", "--hostname", "sandbox",
        "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
        *_view(1), "--", *argv,
    ]  # fmt: skip


def _is_system(path: Path) -> bool:
    return str(path) in ("/usr", "/bin", "/lib", "/lib64", "/etc") or path.is_relative_to("/usr")


_uids = itertools.count()


def _next_uid() -> int:
    return UID_BASE + (os.getpid() % 4_000_000) * UIDS_PER_GRADER + next(_uids) % UIDS_PER_GRADER


@functools.cache
def sandbox_problem() -> str | None:
    """Why no sandbox can be started on this machine, or None when it can."""
    if os.environ.get("COURSE_SANDBOX") == CONTAINER:
        return "COURSE_SANDBOX=container: this container holds one submission and is its boundary"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (`apt-get install bubblewrap`, or `make setup` as root)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    limits = Limits(cpu_seconds=10, memory_mb=1024, processes=16, file_size_mb=1, open_files=256, scratch_mb=1)
    try:
        trial = subprocess.run(
            bwrap_command(limits, _next_uid(), [sys.executable, "-c", "import course.sandbox.server, coursedata"]),
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=_apply_limits(limits),
            env=worker_env("/tmp"),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be started ({exc})"
    if trial.returncode != 0:
        detail = (trial.stderr.strip().splitlines() or [f"exit status {trial.returncode}"])[-1]
        how = " without root (unprivileged user namespaces may be disabled here)" if rootless() else ""
        return f"bubblewrap cannot start a sandbox here{how} ({detail})"
    return None


@functools.cache
def container_problem() -> str | None:
    """Why the container boundary cannot be used (the grader as root, each submission's code as an
    unprivileged user of its own that cannot read the course's sources), or None when it can."""
    if os.geteuid() != 0:
        return "the container boundary runs each submission as a user of its own, which needs root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    return None


@functools.cache
def _own_network_namespace() -> bool:
    """Whether this machine lets a worker start in a network namespace of its own (no network) without
    bubblewrap (util-linux's unshare); a container may refuse it."""
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# -- what one submission may use, all its processes together ---------------------------------------------------
_controllers: cgroups.Controllers | str | None = None


def bound_problem() -> str | None:
    """Why submissions are bounded per process here instead of by a control group each, or None."""
    global _controllers
    if _controllers is None:
        _controllers = cgroups.find()
    return _controllers if isinstance(_controllers, str) else None


def _group(limits: Limits, preloads: bool = False) -> cgroups.Group | None:
    """The submission's control group. A worker that `preloads` imports torch and the rest itself, in the
    group (the fork server's children share the zygote's copy instead): its memory gets room for that."""
    if bound_problem() is not None:
        return None
    assert isinstance(_controllers, cgroups.Controllers)
    try:
        return _controllers.create(limits.memory_mb + (PRELOAD_MB if preloads else 0), limits.processes)
    except cgroups.GroupError:
        return None


# -- a started worker -----------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces): state, ppid, ..."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    try:
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    return text[text.rindex(b")") + 2 :].decode().split()


def descendants(root: int) -> list[int]:
    """`root` and every process below it (a scan of /proc: the kernels here do not list children)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue  # it has exited meanwhile
    found, frontier = {root}, [root]
    while frontier:
        below = [pid for pid, parent in parents.items() if parent in frontier and pid not in found]
        found.update(below)
        frontier = below
    return sorted(found)


CpuSample = dict[tuple[int, int], int]  # (pid, start time) -> user and system clock ticks so far


def cpu_sample(pids: list[int]) -> CpuSample | None:
    """The CPU time each of these live processes has used, keyed by pid and start time (a pid can be used
    again); None when none of them could be read (all gone, or a /proc that hides them)."""
    sample: CpuSample = {}
    for pid in pids:
        try:
            fields = _stat(pid)
            sample[(pid, int(fields[19]))] = int(fields[11]) + int(fields[12])  # starttime; utime + stime
        except PermissionError:
            return None
        except (OSError, ValueError, IndexError):
            continue  # it has exited meanwhile
    return sample or None


def cpu_between(before: CpuSample, after: CpuSample) -> float:
    """Seconds of CPU the processes of `after` used since `before` (all of it, for one started since). What
    exited in between adds nothing: its time would come back as its parent's once reaped, all at once, and
    could charge a probe for a dead process's earlier work; so this can only undercount."""
    ticks = sum(max(0, used - before.get(key, 0)) for key, used in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """A submission's first process (its loader), as the grader holds it: the grader's end of the loader's
    control socket, a way to kill everything the submission started, and the control group that holds it
    (None: each of its processes is bounded alone)."""

    isolation = UNSANDBOXED

    def __init__(self, control: int, group: Group | None = None):
        self.control = control
        self.group = group
        self.peak_mb: float | None = None  # the most memory the submission held at once, when a group measured it

    @property
    def bound(self) -> str:
        """What bounded the submission's memory and processes."""
        if self.group is not None:
            return f"{self.group.bound}: memory and processes counted for the whole submission"
        return "per process: memory counted for each process alone"

    @property
    def pid(self) -> int:
        """The loader's process id, as the grader sees it."""
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def exit_code(self, wait: float = 0.0) -> int | None:
        """How the loader ended (negative: the signal that killed it), or None if it has not (yet)."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The submission's processes: those of its control group, or else the loader and its descendants."""
        return self.group.pids() if self.group is not None else descendants(self.pid)

    def cpu_sample(self) -> CpuSample | None:
        """The CPU time each live process of the submission has had so far; None where it cannot be read."""
        return cpu_sample(self.pids())

    def close(self) -> None:
        self.kill()
        try:
            os.close(self.control)
        except OSError:
            pass
        if self.group is not None:
            peak = self.group.peak_bytes()
            self.peak_mb = round(peak / 2**20, 1) if peak is not None else None
            self.group.remove_soon()


class PopenWorker(WorkerProcess):
    """A worker that is a new Python: under bubblewrap, or a plain process."""

    def __init__(self, control: int, process: subprocess.Popen[bytes], isolation: str,
                 scratch: tempfile.TemporaryDirectory[str] | None = None, group: Group | None = None):  # fmt: skip
        super().__init__(control, group)
        self.process = process
        self.isolation = isolation
        self.scratch = scratch

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None

    def exit_code(self, wait: float = 0.0) -> int | None:
        try:
            return self.process.wait(wait) if wait else self.process.poll()
        except subprocess.TimeoutExpired:
            return None


class ForkedWorker(WorkerProcess):
    isolation = FORK_SERVER

    def __init__(self, control: int, pid: int, server: ForkServer, group: Group | None = None):
        super().__init__(control, group)
        self._pid = pid
        self.server = server

    @property
    def pid(self) -> int:
        return self._pid

    def kill(self) -> None:
        self.server.kill(self.pid)

    def exit_code(self, wait: float = 0.0) -> int | None:
        return self.server.exit_code(self.pid, wait)


def _channel() -> tuple[int, int]:
    """The control socket: the grader's end and the loader's (inheritable) end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.set_inheritable(True)
    return ours.detach(), theirs.detach()


def _start_process(limits: Limits, isolation: str) -> PopenWorker:
    """`python -m course.sandbox.server` in its own session with its limits and control group: under
    bubblewrap; as an unprivileged user of its own (the container boundary, where bubblewrap cannot start);
    or (when the instructor accepted the risk) as a plain process with only the resource limits."""
    ours, theirs = _channel()
    argv = [sys.executable, "-m", "course.sandbox.server"]
    scratch = None
    group = _group(limits, preloads=True)
    if isolation == BUBBLEWRAP:
        env, cwd = {**worker_env("/tmp"), **_rlimits_inside(limits, group)}, "/"
        command = bwrap_command(limits, _next_uid(), argv)
    elif isolation == CONTAINER:
        uid = _next_uid()
        scratch = tempfile.TemporaryDirectory(prefix="course-worker-")
        os.chown(scratch.name, uid, uid)
        os.chmod(scratch.name, 0o700)
        env, cwd = worker_env(scratch.name), scratch.name
        network = ["unshare", "--net"] if _own_network_namespace() else []
        command = [*network, "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--no-new-privs", *argv]  # fmt: skip
    else:
        scratch = tempfile.TemporaryDirectory(prefix="course-worker-")
        env, cwd = worker_env(scratch.name), scratch.name
        command = argv
    env["COURSE_CHANNEL"] = str(theirs)
    env["COURSE_MEMORY_MB"] = str(limits.memory_mb)  # the worker caps its data segment with it (limit_data)
    if isolation == BUBBLEWRAP:
        env["COURSE_SWEEP"] = "1"  # alone in the sandbox's PID namespace: it may kill what a tester left
    try:
        process = subprocess.Popen(command, pass_fds=(theirs,), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_apply_limits(limits, group))  # fmt: skip
    except OSError:
        os.close(ours)
        if group is not None:
            group.remove()
        raise
    finally:
        os.close(theirs)
    return PopenWorker(ours, process, isolation, scratch, group)


# -- the fork server ------------------------------------------------------------------------------------------
class ForkServer:
    """The grader's side of `zygote.py`: starts it, asks it for children, and keeps their exit status."""

    def __init__(self) -> None:
        self.view = _view_key()  # what its children see; a grader whose view changed needs a new server
        self.lock = threading.Lock()
        self.exited: dict[int, int] = {}  # child pid -> wait status
        self.process: subprocess.Popen[bytes] | None = None
        self.socket = -1
        self.problem: str | None = None

    def start(self, timeout: float = 120) -> str | None:
        """Start the fork server; why it cannot start, or None."""
        ours, theirs = _channel()
        env = {**worker_env("/tmp"), "COURSE_ZYGOTE": str(theirs)}
        log = os.environ.get("COURSE_SANDBOX_LOG")  # where the fork server says why a child could not start
        try:
            with open(log, "ab") if log else open(os.devnull, "wb") as errors:
                self.process = subprocess.Popen(zygote_command([sys.executable, "-m", "course.sandbox.zygote"]),
                                                pass_fds=(theirs,), env=env, cwd="/", stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=errors,
                                                start_new_session=True)  # fmt: skip
        except OSError as exc:
            os.close(ours)
            return f"bubblewrap could not be started ({exc})"
        finally:
            os.close(theirs)
        self.socket = ours
        try:
            hello = read_frame(ours, time.monotonic() + timeout)
        except (ChannelClosed, ChannelTimeout):
            self.stop()
            return "the fork server did not start"
        if not (isinstance(hello, dict) and hello.get("ready")):
            self.stop()
            threads = hello.get("threads") if isinstance(hello, dict) else "?"
            return f"the fork server runs {threads} threads after its imports, and a fork copies only one"
        return None

    def _ask(self, request: dict[str, object], fds: tuple[int, ...] = (), timeout: float = 30) -> dict[str, object]:
        """Send a request, and read frames until its answer (recording the exit events on the way)."""
        write_frame(self.socket, request, fds=fds)
        deadline = time.monotonic() + timeout
        while True:
            reply = read_frame(self.socket, deadline)
            if not isinstance(reply, dict):
                raise ChannelClosed("the fork server sent something that is not an answer")
            if reply.get("event") == "exited":
                self.exited[int(reply["pid"])] = int(reply["status"])
                continue
            return reply

    def spawn(self, limits: Limits, uid: int, group: Group | None = None) -> ForkedWorker:
        """A new child: its loader listens on the returned control socket. It is put in `group` before it
        makes its namespaces (so that everything it starts is counted there)."""
        ours, theirs = _channel()
        request = {"op": "spawn", "uid": uid, "limits": dataclasses.asdict(limits), "nproc": nproc(limits, group),
                   "rootless": rootless()}  # fmt: skip
        try:
            with self.lock:
                pid = int(str(self._ask(request, fds=(theirs,))["pid"]))
                if group is not None:
                    group.add(pid)
                self._ask({"op": "go", "pid": pid})
        except BaseException:
            os.close(ours)
            if group is not None:
                group.remove()
            raise
        finally:
            os.close(theirs)
        return ForkedWorker(ours, pid, self, group)

    def kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)  # the grader sees the child's pid: no need to ask
        except (ProcessLookupError, PermissionError):
            pass

    def exit_code(self, pid: int, wait: float = 0.0) -> int | None:
        deadline = time.monotonic() + wait
        with self.lock:
            while pid not in self.exited:
                try:
                    event = read_frame(self.socket, deadline)
                except (ChannelClosed, ChannelTimeout):
                    return None
                if isinstance(event, dict) and event.get("event") == "exited":
                    self.exited[int(event["pid"])] = int(event["status"])
            return os.waitstatus_to_exitcode(self.exited.pop(pid))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            self.process = None
        if self.socket >= 0:
            os.close(self.socket)
            self.socket = -1


_fork_server: ForkServer | None = None


def _view_key() -> tuple[object, ...]:
    """What a fork server's children see and inherit, fixed when it starts: the file system and the env."""
    return tuple(visible_paths()), tuple(sorted(worker_env("/tmp").items()))


def fork_server_problem() -> str | None:
    """Why this grader has no fork server (it then starts a bubblewrap worker per submission), or None."""
    global _fork_server
    if os.environ.get("COURSE_SANDBOX") == BUBBLEWRAP:
        return "COURSE_SANDBOX=bubblewrap asks for a new sandbox per worker"
    if _fork_server is not None and _fork_server.view != _view_key():
        _fork_server.stop()  # the data cache moved, say: start one that sees it
        _fork_server = None
    if _fork_server is not None and _fork_server.alive():
        return None
    if _fork_server is not None and _fork_server.problem:
        return _fork_server.problem
    server = ForkServer()
    server.problem = server.start()
    _fork_server = server
    return server.problem


def start_worker(limits: Limits, isolation: str = FORK_SERVER) -> WorkerProcess:
    """Start a submission's worker (its loader, listening on the control socket it returns): in the fork
    server where it runs (bubblewrap per worker otherwise), or behind the boundary asked for (CONTAINER,
    UNSANDBOXED)."""
    if isolation == FORK_SERVER and fork_server_problem() is None:
        assert _fork_server is not None
        try:
            return _fork_server.spawn(limits, _next_uid(), _group(limits))
        except (ChannelClosed, ChannelTimeout, OSError) as exc:
            _fork_server.problem = f"the fork server stopped answering ({exc})"
            _fork_server.stop()
    return _start_process(limits, BUBBLEWRAP if isolation == FORK_SERVER else isolation)
