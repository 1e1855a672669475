"""Proof that a hidden suite tells right from wrong.

Every cataloged mistake and every correct alternative of a notebook is written into its source notebook
and graded through the real grading path (sandbox, workers, pytest) next to the reference and the
untouched release. The result is a matrix of which tests catch which variant, and a list of failures:
a mistake that keeps full marks for its exercise (or loses points where it should not), an alternative
that loses a point, a reference below full marks, a release above zero, an exercise with fewer than
three mistakes or no alternative.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course import catalog, notebooks
from course.config import Course, Notebook
from course.grading import pipeline
from course.grading.results import NotebookResult

MIN_MISTAKES = 3


@dataclass
class Row:
    label: str
    variant: catalog.Variant | None
    result: NotebookResult

    @property
    def named(self) -> bool:
        """The report of this mistake's submission names it."""
        v = self.variant
        return bool(v and not v.correct and v.says in self.result.diagnosis.get(v.exercise, []))


@dataclass
class NotebookAudit:
    notebook: Notebook
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def of_kind(self, correct: bool) -> list[Row]:
        return [r for r in self.rows if r.variant and r.variant.correct == correct]

    def summary(self) -> str:
        wrong, right = self.of_kind(False), self.of_kind(True)
        caught = sum(_lost(r) >= {r.variant.exercise} for r in wrong if r.variant)
        accepted = sum(r.result.score == r.result.max_score for r in right)
        named = sum(r.named for r in wrong)
        share = f" ({100 * named / len(wrong):.0f}%)" if wrong else ""
        return (
            f"{self.notebook.assignment}/{self.notebook.name}: {caught} of {len(wrong)} mistakes caught, "
            f"{accepted} of {len(right)} alternatives accepted, {named} of {len(wrong)} mistakes named "
            f"in the feedback{share}"
        )


def _lost(row: Row) -> set[str]:
    r = row.result
    return {e.id for e in r.notebook.auto_exercises if r.exercise_score(e.id) < e.points}


def audit_notebook(course: Course, nb: Notebook, seed: int, workers: int = 1) -> NotebookAudit:
    paths = course.paths(nb)
    mistakes = catalog.load(nb, paths.mistakes)
    alternatives = catalog.load_alternatives(nb, paths.alternatives)
    audit = NotebookAudit(nb)
    for ex in nb.auto_exercises:
        n = sum(m.exercise == ex.id for m in mistakes)
        if n < MIN_MISTAKES:
            audit.failures.append(
                f"exercise {ex.id} has {n} cataloged mistakes in {paths.mistakes.name}; "
                f"at least {MIN_MISTAKES} are needed"
            )
        if not any(a.exercise == ex.id for a in alternatives):
            audit.failures.append(
                f"exercise {ex.id} has no correct alternative in alternatives/{paths.alternatives.name}"
            )

    source = notebooks.read(paths.source)
    with tempfile.TemporaryDirectory(prefix="course-audit-") as tmp:
        files: dict[str, Path | None] = {"reference": paths.source, "release": paths.release}
        variants: dict[str, catalog.Variant] = {}
        for variant in [*mistakes, *alternatives]:
            label = f"{'alternative' if variant.correct else 'mistake'} {variant.id}"
            files[label] = file = Path(tmp) / f"{len(files)}.ipynb"
            nbformat.write(catalog.apply(source, [variant]), str(file))
            variants[label] = variant
        results = {r.student: r for r in pipeline.grade_notebook(course, nb, files, seed, workers)}
    audit.rows = [Row(label, variants.get(label), results[label]) for label in files]

    for row in audit.rows:
        r, v, lost = row.result, row.variant, _lost(row)
        if row.label == "reference" and r.score < r.max_score:
            audit.failures.append(f"the reference loses points: {_failed(r)}")
        elif row.label == "release" and (r.score > 0 or r.problem):
            audit.failures.append(
                f"the untouched release gets {r.score} points{f' ({r.problem})' if r.problem else ''}"
            )
        elif v and v.correct and r.score < r.max_score:
            audit.failures.append(f"alternative {v.id} ({v.says}) loses points: {_failed(r)}")
        elif v and not v.correct:
            if v.exercise not in lost:
                audit.failures.append(f"mistake {v.id} ({v.says}) keeps full marks for {v.exercise}")
            if lost - {v.exercise, *v.also}:
                audit.failures.append(
                    f"mistake {v.id} also loses points in {sorted(lost - {v.exercise, *v.also})} "
                    "(list them under also: if they build on this exercise)"
                )
    return audit


def _failed(r: NotebookResult) -> str:
    return "; ".join(f"{t.name}: {t.output}" for t in r.tests if not t.passed)[:600] or (r.problem or "")


def matrix(audit: NotebookAudit) -> str:
    """Rows: reference, release and every variant. Columns: the hidden tests, grouped by exercise.
    x: the test failed (caught the mistake); .: it passed."""
    reference = next(r.result for r in audit.rows if r.label == "reference")
    tests = [(t.exercise, t.name) for t in reference.tests]
    width = max(len(r.label) for r in audit.rows) + 2
    seconds = {name: sum(t.seconds for r in audit.rows for t in r.result.tests if t.name == name) for _, name in tests}
    legend = [
        f"  {i + 1:>3}  {ex} / {name}  ({seconds[name]:.1f} s over all rows)" for i, (ex, name) in enumerate(tests)
    ]
    header = " " * width + " ".join(f"{i + 1:>3}" for i in range(len(tests)))
    lines = [audit.summary(), "tests:", *legend, "", header]
    for row in audit.rows:
        passed = {t.name: t.passed for t in row.result.tests}
        marks = " ".join(f"{'.' if passed.get(name, False) else 'x':>3}" for _, name in tests)
        note = ""
        if row.variant and not row.variant.correct:
            note = "  named" if row.named else ""
        lines.append(f"{row.label:<{width}}{marks}{note}")
    return "\n".join(lines)
