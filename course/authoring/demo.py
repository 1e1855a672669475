"""The demo class: three example submissions of an assignment, made from its source notebooks and its
mistake catalogs — complete (ada), with two realistic mistakes in each notebook (grace), untouched (linus)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import nbformat

from course import catalog, notebooks
from course.config import Assignment, Course


def make_submissions(course: Course, assignment: Assignment) -> tuple[Path, list[str]]:
    """Write the demo's submissions under demo/submitted; returns the folder and what grace got wrong."""
    out = course.files.demo
    shutil.rmtree(out, ignore_errors=True)
    rng = random.Random(0)
    described = []
    for nb in assignment.notebooks:
        paths = course.paths(nb)
        source = notebooks.read(paths.source)
        # one mistake in each of two exercises: the student loses those exercises' points and keeps the rest
        chosen: dict[str, catalog.Variant] = {}
        for m in catalog.load(nb, paths.mistakes):
            chosen.setdefault(m.exercise, m)
        picked = rng.sample(sorted(chosen.values(), key=lambda m: m.id), k=min(2, len(chosen)))
        for student, made in (
            ("ada", source),
            ("grace", catalog.apply(source, picked)),
            ("linus", notebooks.read(paths.release)),
        ):
            dest = out / student / assignment.name / f"{nb.name}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(made, str(dest))
        described.append(f"grace's {nb.name} has these mistakes: " + "; ".join(m.says for m in picked))
    return out, described
