"""The course's own tooling: release, grade, check and audit the notebooks described by course.yaml."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
