"""How a worker process is started: its command line, environment and resource limits.

Every worker starts through `start_worker`, so isolation is decided in one place.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_mb: int
    processes: int
    file_size_mb: int
    open_files: int


def _apply_limits(limits: Limits):
    def set_limits():
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        # RLIMIT_AS would break `import torch`, which reserves large virtual regions; cap the data segment.
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return set_limits


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
    env.update({
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "NO_PROXY": "*",
    })
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    requests: int      # the grader writes requests here
    responses: int     # and reads answers here
    scratch: tempfile.TemporaryDirectory


def start_worker(limits: Limits) -> WorkerProcess:
    """Start `python -m course.worker` in its own session, with its own scratch directory and limits."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    scratch = tempfile.TemporaryDirectory(prefix="course-worker-")
    env = worker_env()
    env["COURSE_CHANNEL"] = f"{req_r},{resp_w}"
    env["HOME"] = scratch.name
    env["MPLCONFIGDIR"] = scratch.name
    process = subprocess.Popen(
        [sys.executable, "-m", "course.worker"],
        pass_fds=(req_r, resp_w), env=env, cwd=scratch.name,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_apply_limits(limits),
    )
    os.close(req_r)
    os.close(resp_w)
    return WorkerProcess(process, req_w, resp_r, scratch)
