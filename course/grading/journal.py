"""Graded results on disk: one file per student and notebook, written atomically the moment it is scored.

A batch stopped halfway and started again grades only what is missing; a result is reused only while the
submission, the hidden suite, the reference, the released notebook, the limits and the seed are the ones it
was graded with. Every file is replaced whole (`os.replace`), so a crash never leaves half a result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from course import testing
from course.config import Course, Notebook
from course.files import CourseFiles, atomic_write
from course.grading.results import PLACES, NotebookResult

# the rules that turn test outcomes into points (results.split_points, results.rounded): a result saved under
# other rules is graded again
SCORING = f"shares in 1/{10**PLACES} of a point, rounded once"


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(hashlib.sha256(c).digest())
    return h.hexdigest()


def grading_fingerprint(course: Course, notebook: Notebook, seed: int) -> str:
    """What a result depends on besides the submission itself."""
    p = course.paths(notebook)
    # the suite, and what it is made of besides its own file: every module it can import from autograder/
    # (the shared probes among them), the conftest files pytest loads beside it, the testing helpers; and the
    # mistakes catalog, which names what a failure looks like
    autograder = course.files.autograder
    shared = [*sorted(autograder.glob("*.py")), p.suite.parent / "conftest.py", Path(testing.__file__), p.mistakes]
    files = [p.suite, p.reference, p.release, *(f for f in shared if f.is_file())]
    settings = json.dumps(
        {
            "scoring": SCORING,
            "grading": dataclasses.asdict(course.grading),
            "seed": seed,
            "exercises": [dataclasses.asdict(e) for e in notebook.exercises],
        },
        sort_keys=True,
    )
    return _sha(*(f.read_bytes() for f in files), settings.encode())


class Journal:
    def __init__(self, files: CourseFiles, reuse: bool = True):
        self.files = files
        self.reuse = reuse  # False: grade everything again, still saving each result

    def path(self, student: str, assignment: str, notebook: str) -> Path:
        return self.files.result(student, assignment, notebook)

    @staticmethod
    def key(submission: Path, fingerprint: str) -> str:
        return _sha(Path(submission).read_bytes(), fingerprint.encode())

    def load(self, notebook: Notebook, student: str, submission: Path, fingerprint: str) -> NotebookResult | None:
        """The stored result for this exact submission and grading, or None."""
        if not self.reuse:
            return None
        path = self.path(student, notebook.assignment, notebook.name)
        try:
            data = json.loads(path.read_text())
            if data.get("key") != self.key(submission, fingerprint):
                return None
            result = NotebookResult.from_json(notebook, data)
            result.reused = True
            return result
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, from another grading, or unreadable: grade again

    def save(self, result: NotebookResult, fingerprint: str) -> None:
        assert result.path is not None
        data = result.as_json(precise=True)
        data["key"] = self.key(result.path, fingerprint)
        atomic_write(
            self.path(result.student, result.assignment, result.notebook.name), json.dumps(data, indent=1) + "\n"
        )
