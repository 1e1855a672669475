"""The submissions' worker processes during one run of a suite: the current submission's worker and the
next one's, started ahead so that its notebook loads while the current one is tested.

Tests run submission by submission, so a worker is retired (stopped, its load errors kept) as soon as the
tests move on to a later submission. The factory that starts a worker is injectable: the tooling's own
tests grade with an in-process fake, without any sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from course.sandbox.client import Reach


class WorkerLike(Protocol):
    load_errors: list[dict[str, Any]]
    isolation: str  # which sandbox ran it (launch.FORK_SERVER, BUBBLEWRAP, CONTAINER, UNSANDBOXED)
    bound: str  # what bounded its memory and processes
    peak_mb: float | None  # the most memory it held at once, where a control group measured it
    reached: Reach  # what the last traced call touched of the notebook

    def call(
        self, key: str, probes_source: str, name: str, kwargs: dict[str, Any], timeout: float, trace: bool = False
    ) -> Any: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Focus:
    """How the audit grades a notebook it wrote itself: the tests to run (by name; None: all of them), and
    whether each call records what it touched of the notebook."""

    only: frozenset[str] | None = None
    trace: bool = False


@dataclass
class Candidate:
    """One notebook to grade: an id (the student), and the code cells the grader runs."""

    id: str
    cells: list[list[str]]
    load_errors: list[dict[str, Any]] = field(default_factory=list)
    isolation: str = ""
    bound: str = ""
    peak_mb: float | None = None
    focus: Focus = Focus()


class WorkerPool:
    def __init__(
        self,
        candidates: list[Candidate],
        start: Callable[[Candidate], WorkerLike],
        prefetch: int = 1,
        on_retire: Callable[[Candidate], None] | None = None,
    ):
        self.candidates = candidates
        self.index = {c.id: i for i, c in enumerate(candidates)}
        self.start = start
        self.prefetch = prefetch
        self.on_retire = on_retire
        self.workers: dict[str, WorkerLike] = {}
        self.retired: set[str] = set()

    def worker(self, candidate_id: str) -> WorkerLike:
        """The worker of this submission; earlier ones are retired, the next ones started."""
        index = self.index[candidate_id]
        for c in self.candidates[:index]:
            if c.id in self.workers:
                self.retire(c)
        for c in self.candidates[index : index + 1 + self.prefetch]:
            if c.id not in self.workers and c.id not in self.retired:
                self.workers[c.id] = self.start(c)
        return self.workers[candidate_id]

    def retire(self, c: Candidate) -> None:
        worker = self.workers.pop(c.id)
        worker.stop()
        c.load_errors, c.isolation = worker.load_errors, worker.isolation
        c.bound, c.peak_mb = worker.bound, worker.peak_mb
        self.retired.add(c.id)  # graded: never started again
        if self.on_retire:
            self.on_retire(c)

    def close(self) -> None:
        for c in self.candidates:
            if c.id in self.workers:
                self.retire(c)
