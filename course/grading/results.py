"""What grading produces: one result per student and notebook, with one entry per hidden test.

These are the types every consumer reads (reports, the gradebook, exports, the audit); they depend on
nothing but course.yaml's description of the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.config import Notebook

PLACES = 2  # every score is a multiple of 1/100 of a point: tests' shares, exercises, notebooks, exports


def rounded(x: float) -> float:
    """A score as every output shows and stores it: to the hundredth of a point, once, the same way."""
    return round(x + 0.0, PLACES) + 0.0


def split_points(points: float, n: int) -> list[float]:
    """An exercise's points shared among its n tests, in hundredths that add up to the points exactly (the
    first tests carry the remainder: 2 points over 3 tests are 0.67, 0.67 and 0.66)."""
    cents = round(points * 10**PLACES)
    base, extra = divmod(cents, n)
    return [(base + (i < extra)) / 10**PLACES for i in range(n)]


@dataclass
class TestResult:
    name: str
    exercise: str
    score: float
    max_score: float
    output: str
    hint: str = ""
    mistakes: list[str] = field(default_factory=list)  # ids of cataloged mistakes this failure matches
    seconds: float = 0.0  # how long the test ran (the slow ones are the trainings)
    # a traced test (the audit's reference): the notebook's functions its probes ran ("cell label:qualified
    # name"), and the globals they looked up
    reached: list[str] = field(default_factory=list)
    names_used: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)  # mistakes this failure cannot be compared with (a hang)

    @property
    def cells_reached(self) -> set[str]:
        return {f.rpartition(":")[0] for f in self.reached}

    __test__ = False  # not a pytest test class, whatever its name

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass
class NotebookResult:
    student: str
    assignment: str
    notebook: Notebook
    path: Path | None
    tests: list[TestResult] = field(default_factory=list)
    problem: str | None = None  # why nothing could be graded (missing, unreadable)
    load_errors: list[dict[str, Any]] = field(default_factory=list)
    sandboxed: bool = True
    isolation: str = ""  # the sandbox that ran it: "fork server", "bubblewrap", "container" or "none"
    bound: str = ""  # what bounded its memory and processes: a control group, or each process alone
    memory_peak_mb: float | None = None  # the most memory the submission held at once (its control group's)
    notes: list[str] = field(default_factory=list)  # what the grader noticed and set right (locked cells)
    reused: bool = False  # taken from the journal of an earlier run, not graded again
    diagnosis: dict[str, list[str]] = field(default_factory=dict)  # exercise -> what the mistake looks like

    @property
    def score(self) -> float:
        return rounded(sum(t.score for t in self.tests))

    @property
    def max_score(self) -> float:
        return rounded(sum(e.points for e in self.notebook.auto_exercises))

    def exercise_score(self, exercise_id: str) -> float:
        return rounded(sum(t.score for t in self.tests if t.exercise == exercise_id))

    def as_json(self, precise: bool = False) -> dict[str, Any]:
        def num(x: float) -> float:
            return x if precise else rounded(x)

        return {
            "student": self.student,
            "assignment": self.assignment,
            "notebook": self.notebook.name,
            "path": str(self.path) if self.path else None,
            "score": self.score,
            "max_score": self.max_score,
            "problem": self.problem,
            "notes": self.notes,
            "sandboxed": self.sandboxed,
            "isolation": self.isolation,
            "bound": self.bound,
            "memory_peak_mb": self.memory_peak_mb,
            "load_errors": self.load_errors,
            "diagnosis": self.diagnosis,
            "tests": [
                {
                    "name": t.name,
                    "exercise": t.exercise,
                    "score": num(t.score),
                    "max_score": num(t.max_score),
                    "output": t.output,
                    "hint": t.hint,
                    "mistakes": t.mistakes,
                    "undecided": t.undecided,
                    "seconds": t.seconds,
                    **_trace(t),
                }
                for t in self.tests
            ],
        }

    @classmethod
    def from_json(cls, notebook: Notebook, data: dict[str, Any]) -> NotebookResult:
        result = cls(
            data["student"],
            data["assignment"],
            notebook,
            Path(data["path"]) if data["path"] else None,
            problem=data["problem"],
            load_errors=data["load_errors"],
            sandboxed=data["sandboxed"],
            isolation=data.get("isolation", ""),
            bound=data.get("bound", ""),
            memory_peak_mb=data.get("memory_peak_mb"),
            notes=data["notes"],
            diagnosis=data["diagnosis"],
        )
        result.tests = [
            TestResult(
                t["name"],
                t["exercise"],
                t["score"],
                t["max_score"],
                t["output"],
                t["hint"],
                t["mistakes"],
                t.get("seconds", 0.0),
                t.get("reached", []),
                t.get("names_used", []),
                t.get("undecided", []),
            )
            for t in data["tests"]
        ]
        return result


def _trace(t: TestResult) -> dict[str, list[str]]:
    """What a traced test reached, in its JSON; nothing for the untraced (every student's)."""
    return {"reached": t.reached, "names_used": t.names_used} if t.reached or t.names_used else {}
