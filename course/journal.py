"""Graded results on disk: one file per student and notebook, written atomically the moment it is scored.

A batch stopped halfway and started again grades only what is missing; a result is reused only while the
submission, the hidden suite, the reference, the released notebook, the limits and the seed are the ones it
was graded with. Every file is replaced whole (`os.replace`), so a crash never leaves half a result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from course.config import Course, Notebook


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(hashlib.sha256(c).digest())
    return h.hexdigest()


def grading_fingerprint(course: Course, notebook: Notebook, seed: int) -> str:
    """What a result depends on besides the submission itself."""
    p = notebook.paths(course.root)
    files = [p.suite, p.reference, p.release]
    settings = json.dumps({"grading": dataclasses.asdict(course.grading), "seed": seed,
                           "exercises": [dataclasses.asdict(e) for e in notebook.exercises]}, sort_keys=True)
    return _sha(*(f.read_bytes() for f in files), settings.encode())


class Journal:
    def __init__(self, root: Path, reuse: bool = True):
        self.root = Path(root)
        self.reuse = reuse  # False: grade everything again, still saving each result

    def path(self, student: str, assignment: str, notebook: str) -> Path:
        return self.root / student / assignment / f"{notebook}.result.json"

    @staticmethod
    def key(submission: Path, fingerprint: str) -> str:
        return _sha(Path(submission).read_bytes(), fingerprint.encode())

    def load(self, notebook: Notebook, student: str, submission: Path, fingerprint: str):
        """The stored result for this exact submission and grading, or None."""
        from course.grade import NotebookResult
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

    def save(self, result, fingerprint: str) -> None:
        data = result.as_json(precise=True)
        data["key"] = self.key(result.path, fingerprint)
        atomic_write(self.path(result.student, result.assignment, result.notebook.name),
                     json.dumps(data, indent=1) + "\n")
