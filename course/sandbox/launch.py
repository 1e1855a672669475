"""How a worker process is started: its command line, view of the file system, user id and limits.

Every worker starts through `start_worker`, so isolation is decided in one place. With the sandbox (the
default) a worker runs under bubblewrap:

- its own PID, network, IPC and UTS namespaces: no network at all, no other process visible, and killing
  the sandbox's first process kills everything the submission started;
- a file system made only of read-only views of the system libraries, the Python installation, the virtual
  environment, the `course` package and the datasets, plus a private `/tmp` of bounded size; the course's
  `autograder/`, `solutions/`, `source/`, other submissions and the gradebook are not there at all;
- a user id of its own, not root, so that the process limit counts only this submission's processes;
- resource limits from course.yaml (CPU time, data memory, processes, file size, open files, no core dumps).
"""

from __future__ import annotations

import functools
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from course.config import Limits

UID_BASE = 1_000_000  # sandbox user ids live above the ids of real accounts
UIDS_PER_GRADER = 16  # ids a grading process cycles through; it never has that many workers alive at once


def _apply_limits(limits: Limits) -> Callable[[], None]:
    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        # RLIMIT_AS would break `import torch`, which reserves large virtual regions; cap the data segment.
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Counted per user id: it binds once the sandbox has switched to the submission's own id.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)

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
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "NO_PROXY": "*",
    }


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


def bwrap_command(limits: Limits, uid: int, argv: list[str]) -> list[str]:
    cmd = [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        # root inside bwrap only to switch to the submission's id; setpriv drops every capability after
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        *_system_args(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "01777",
        "--size",
        str(limits.scratch_mb << 20),
        "--tmpfs",
        "/tmp",
    ]
    paths = visible_paths()
    # bwrap makes missing parents with mode 0700 (so /root would hide Python): make them traversable
    parents = sorted(
        {a for p in paths for a in p.parents if a != Path("/") and not _is_system(a)}, key=lambda a: len(a.parts)
    )
    for d in parents:
        cmd += ["--perms", "0755", "--dir", str(d)]
    for p in paths:
        cmd += ["--ro-bind", str(p), str(p)]
    cmd += [
        "--chdir",
        "/tmp",
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        *argv,
    ]
    return cmd


def _is_system(path: Path) -> bool:
    return str(path) in ("/usr", "/bin", "/lib", "/lib64", "/etc") or path.is_relative_to("/usr")


_uids = itertools.count()


def _next_uid() -> int:
    return UID_BASE + (os.getpid() % 4_000_000) * UIDS_PER_GRADER + next(_uids) % UIDS_PER_GRADER


@functools.cache
def sandbox_problem() -> str | None:
    """Why no sandbox can be started on this machine, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (`apt-get install bubblewrap`, or `make setup` as root)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        return (
            "the sandbox runs each submission under a user id of its own, which needs root; "
            "run the grader as root (for example in a container)"
        )
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
        return f"bubblewrap cannot start a sandbox here ({detail})"
    return None


# -- starting a worker ---------------------------------------------------------------------------------------
@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    requests: int  # the grader writes requests here
    responses: int  # and reads answers here
    scratch: tempfile.TemporaryDirectory[str] | None = None

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()


def start_worker(limits: Limits, sandboxed: bool = True) -> WorkerProcess:
    """Start `python -m course.sandbox.server` in its own session with its limits: inside the sandbox, or (when the
    instructor accepted the risk) as a plain process with only the resource limits."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    argv = [sys.executable, "-m", "course.sandbox.server"]
    scratch = None
    if sandboxed:
        env, cwd = worker_env("/tmp"), "/"
        command = bwrap_command(limits, _next_uid(), argv)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="course-worker-")
        env, cwd = worker_env(scratch.name), scratch.name
        command = argv
    env["COURSE_CHANNEL"] = f"{req_r},{resp_w}"
    process = subprocess.Popen(
        command,
        pass_fds=(req_r, resp_w),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_apply_limits(limits),
    )
    os.close(req_r)
    os.close(resp_w)
    return WorkerProcess(process, req_w, resp_r, scratch)
