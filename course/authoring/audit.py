"""Proof that a hidden suite tells right from wrong.

Every cataloged mistake and every correct alternative of a notebook is written into its source notebook
and graded through the real grading path (sandbox, workers, pytest) next to the reference and the
untouched release. The result is a matrix of which tests catch which variant, and a list of failures:
a mistake that keeps full marks for its exercise (or loses points where it should not), an alternative
that loses a point, a reference below full marks, a release above zero, an exercise with fewer than
three mistakes or no alternative.

`mutation_audit` grades the mechanical mutants of the reference (`mutants.py`) the same way: each must cost
points, or be listed as equivalent to the reference with the reason why.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course import catalog, notebooks
from course.authoring import mutants, nulls, requirements
from course.config import Course, Notebook
from course.grading import pipeline
from course.grading.journal import grading_fingerprint
from course.grading.pool import Focus
from course.grading.results import NotebookResult, TestResult
from course.grading.submissions import prepare

MIN_MISTAKES = 3


@dataclass
class Row:
    label: str
    variant: catalog.Variant | None
    result: NotebookResult
    not_run: set[str] = field(default_factory=set)  # tests that cannot reach what the variant changed
    failures: list[str] = field(default_factory=list)  # a null submission's

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
    nulls: list[Row] = field(default_factory=list)  # the null submissions graded

    def of_kind(self, correct: bool) -> list[Row]:
        return [r for r in self.rows if r.variant and r.variant.correct == correct]

    def summary(self) -> str:
        wrong, right = self.of_kind(False), self.of_kind(True)
        caught = sum(_lost(r) >= {r.variant.exercise} for r in wrong if r.variant)
        accepted = sum(r.result.score == r.result.max_score for r in right)
        named = sum(r.named for r in wrong)
        share = f" ({100 * named / len(wrong):.0f}%)" if wrong else ""
        line = (
            f"{self.notebook.assignment}/{self.notebook.name}: {caught} of {len(wrong)} mistakes caught, "
            f"{accepted} of {len(right)} alternatives accepted, {named} of {len(wrong)} mistakes named "
            f"in the feedback{share}"
        )
        if self.nulls:
            zero = sum(not r.failures for r in self.nulls)
            wrongly = sum(bool(r.result.diagnosis) for r in self.nulls)
            line += f"; {zero} of {len(self.nulls)} null submissions lose what they must, {wrongly} get a mistake named"
        return line


def _lost(row: Row) -> set[str]:
    r = row.result
    return {e.id for e in r.notebook.auto_exercises if r.exercise_score(e.id) < e.points}


def audit_notebook(
    course: Course, nb: Notebook, seed: int, workers: int = 1, every_test: bool = False, with_nulls: bool = False
) -> NotebookAudit:
    """Grade the reference, the release and every variant. A variant runs only the tests whose probes, on the
    reference, reached a cell it changes or a global it defines (the others cannot tell it from the
    reference); `every_test` runs them all. `with_nulls` grades the null submissions too (`nulls.py`)."""
    paths = course.paths(nb)
    mistakes = catalog.load(nb, paths.mistakes)
    alternatives = catalog.load_alternatives(nb, paths.alternatives)
    audit = NotebookAudit(nb)
    audit.failures += requirements.check(course, nb)
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
    release = notebooks.read(paths.release)
    reference = traced_reference(course, nb, seed)
    # graded here, where a share of a class would pay a new process's start for one notebook
    [release_result] = pipeline.grade_notebook(course, nb, {"release": paths.release}, seed, 1)
    results = {"reference": reference, "release": release_result}
    ref_cells = _by_label(prepare(paths.source, release, nb).cells)
    variants: dict[str, catalog.Variant] = {}
    planned: dict[str, nulls.Null] = {}
    focus: dict[str, Focus] = {}
    with tempfile.TemporaryDirectory(prefix="course-audit-") as tmp:
        files: dict[str, Path | None] = {}
        for variant in [*mistakes, *alternatives]:
            label = f"{'alternative' if variant.correct else 'mistake'} {variant.id}"
            files[label] = file = Path(tmp) / f"{len(files)}.ipynb"
            nbformat.write(catalog.apply(source, [variant]), str(file))
            variants[label] = variant
            if not every_test:
                cells = _by_label(prepare(file, release, nb).cells)
                if (only := tests_reaching(reference, ref_cells, cells)) is not None:
                    focus[label] = Focus(only=only)
        null_submissions = nulls.submissions(source, nb) if with_nulls else []
        stubbed = [fn for null in null_submissions if null.alone for fn in null.functions]
        for null in null_submissions:
            label = f"null {null.label}"
            callers = frozenset().union(*(_callers(reference, fn) for fn in null.functions))
            if not callers:
                audit.failures.append(f"no hidden test calls `{null.functions[0].qualname}`: nothing checks it")
                continue
            files[label] = file = Path(tmp) / f"{len(files)}.ipynb"
            nbformat.write(catalog.apply(source, null.variants()), str(file))
            planned[label] = null
            if null.scope != "notebook" and not every_test:
                focus[label] = Focus(only=_null_verdict_tests(null, reference, callers, stubbed))
        shards = _shards_worth(workers, reference, focus, files)
        done = pipeline.grade_notebook(course, nb, files, seed, shards, focus=focus)
        results.update((r.student, r) for r in done)
    rows = [Row(label, variants.get(label), results[label]) for label in ["reference", "release", *files]]
    for row in rows:
        if row.label in focus:
            row.not_run = _complete(row.result, reference, focus[row.label].only or frozenset())
    audit.rows = [r for r in rows if r.label not in planned]
    audit.nulls = [r for r in rows if r.label in planned]
    for row in audit.nulls:
        audit.failures += _null_failures(row, planned[row.label], reference, stubbed)

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


_traced: dict[str, NotebookResult] = {}


def traced_reference(course: Course, nb: Notebook, seed: int) -> NotebookResult:
    """The reference graded with every test traced: which functions and globals each test's probes reach.
    The audit and the mutation audit of a notebook both start from it, so it is graded once per process for
    the same suite, notebook, settings and seed (traced, a notebook that trains takes tens of seconds)."""
    paths = course.paths(nb)
    key = grading_fingerprint(course, nb, seed) + hashlib.sha256(paths.source.read_bytes()).hexdigest()
    if key not in _traced:
        focus = {"reference": Focus(trace=True)}
        [_traced[key]] = pipeline.grade_notebook(course, nb, {"reference": paths.source}, seed, 1, focus=focus)
    return copy.deepcopy(_traced[key])


SHARD_START_SECONDS = 5.0  # what a share of the variants pays for a process of its own: torch, its fork server


def _shards_worth(
    workers: int, reference: NotebookResult, focus: dict[str, Focus], files: dict[str, Path | None]
) -> int:
    """As many shards as pay for their start: the variants' tests, timed on the reference, spread over
    `workers` processes must save more than a new process costs to start."""
    seconds = {t.name: t.seconds for t in reference.tests}
    if len(reference.tests) > 2:  # the first test also paid for loading the notebook and the solutions
        first = reference.tests[0].name
        seconds[first] = min(seconds[first], sorted(seconds.values())[len(seconds) // 2])
    work = sum(
        sum(s for name, s in seconds.items() if (f := focus.get(label)) is None or f.only is None or name in f.only)
        for label in files
    )
    return max(1, min(workers, int(work // SHARD_START_SECONDS)))


def tests_reaching(
    reference: NotebookResult, ref_cells: dict[str, str], cells: dict[str, str]
) -> frozenset[str] | None:
    """The tests that can tell a variant (its notebook's `cells`, label -> source) from the reference: those
    whose probes, traced on the reference, ran code of a cell the variant changes or looked up a global such
    a cell defines. None (run every test) unless the variant changes only the bodies of functions: a changed
    constant, import, signature, default, decorator or class attribute, a new definition or a cell that does
    not parse could reach any test."""
    changed = {label for label in ref_cells.keys() | cells.keys() if ref_cells.get(label) != cells.get(label)}
    names: set[str] = set()
    for label in changed:
        if label not in ref_cells or label not in cells:
            return None
        before, after = _parse(ref_cells[label]), _parse(cells[label])
        if before is None or after is None or _outline(before) != _outline(after):
            return None
        names |= _globals(before)
    return frozenset(
        t.name for t in reference.tests if changed.intersection(t.cells_reached) or names.intersection(t.names_used)
    )


def _by_label(cells: list[list[str]]) -> dict[str, str]:
    return {cell[0]: cell[1] for cell in cells}


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _outline(tree: ast.Module) -> str:
    """The cell with every function's body left out: what runs when the cell runs, but not when it is called."""
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.body = [ast.Pass()]
    return ast.dump(tree)


def _globals(tree: ast.Module) -> set[str]:
    """Every name the cell binds outside function bodies (class attributes too: more than needed is safe)."""
    names: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return names


def _complete(result: NotebookResult, reference: NotebookResult, ran: frozenset[str]) -> set[str]:
    """A focused variant's result, with the reference's outcome for each test it did not run (those tests
    cannot tell the two apart); returns their names."""
    mine: dict[str, list[TestResult]] = {}
    for t in result.tests:
        mine.setdefault(t.name, []).append(t)
    tests, skipped = [], set()
    for t in reference.tests:
        if t.name in ran:
            if mine.get(t.name):
                tests.append(mine[t.name].pop(0))
        else:
            tests.append(dataclasses.replace(t, seconds=0.0, reached=[], names_used=[]))
            skipped.add(t.name)
    if not result.problem:
        result.tests = tests
    return skipped


def _runs(entry: str, fn: nulls.Function) -> bool:
    """A traced entry ("cell label:qualified name") is the function, or a function defined inside it."""
    label, _, qualname = entry.rpartition(":")
    inside = qualname == fn.qualname or qualname.startswith(f"{fn.qualname}.<locals>.")
    return label.partition(", ")[2] == fn.cell and inside


def _callers(reference: NotebookResult, fn: nulls.Function) -> frozenset[str]:
    """The tests whose probes ran the function, on the traced reference."""
    return frozenset(t.name for t in reference.tests if any(_runs(e, fn) for e in t.reached))


def _only_caller(reference: NotebookResult, fn: nulls.Function, stubbed: list[nulls.Function]) -> set[str]:
    """The tests whose probes ran `fn` and no other stubbed function: nulled alone, it must fail them."""
    return {
        t.name
        for t in reference.tests
        if any(_runs(e, fn) for e in t.reached)
        and not any(_runs(e, other) for e in t.reached for other in stubbed if other != fn)
    }


def _null_verdict_tests(
    null: nulls.Null, reference: NotebookResult, callers: frozenset[str], stubbed: list[nulls.Function]
) -> frozenset[str]:
    """The tests that decide a null submission's verdict (`_null_failures`): those of its exercise that call
    its functions and, for one function alone, those that call nothing else stubbed. A test of a later
    exercise that trains on everything cannot change it, and would cost a training run per null."""
    ours = {t.name for t in reference.tests if t.exercise == null.exercise} & callers
    if null.alone:
        ours |= _only_caller(reference, null.functions[0], stubbed)
    return frozenset(ours)


def _null_failures(row: Row, null: nulls.Null, reference: NotebookResult, stubbed: list[nulls.Function]) -> list[str]:
    """What a null submission must lose. Alone: points of its function's exercise, and every test that calls
    that function and no other student function. Every function of an exercise: all of that exercise's
    points. Every function of the notebook: every point."""
    r = row.result
    if r.problem:
        return [f"null submission ({null.label}) could not be graded: {r.problem}"]
    if null.alone:
        fn = null.functions[0]
        points = next(e.points for e in r.notebook.auto_exercises if e.id == fn.exercise)
        if r.exercise_score(fn.exercise) >= points:
            row.failures.append(f"{null.label}, and {fn.exercise} keeps full marks")
        only = _only_caller(reference, fn, stubbed)
        kept = sorted({t.name for t in r.tests if t.passed and t.name in only})
        if kept:
            row.failures.append(f"{null.label}, and {', '.join(kept)} still pass: reachable by doing nothing")
        return row.failures
    exercises = [null.exercise] if null.scope == "exercise" else [e.id for e in r.notebook.auto_exercises]
    for ex in (e for e in exercises if r.exercise_score(e) > 0):
        passing = sorted({t.name for t in r.tests if t.exercise == ex and t.passed})
        row.failures.append(f"with {null.label}, {ex} keeps {r.exercise_score(ex):g} points ({', '.join(passing)})")
    return row.failures


def _failed(r: NotebookResult) -> str:
    return "; ".join(f"{t.name}: {t.output}" for t in r.tests if not t.passed)[:600] or (r.problem or "")


def matrix(audit: NotebookAudit) -> str:
    """Rows: reference, release and every variant. Columns: the hidden tests, grouped by exercise.
    x: the test failed (caught the mistake); .: it passed; -: not run, as its probes reach nothing the
    variant changes (it passes, as on the reference)."""
    reference = next(r.result for r in audit.rows if r.label == "reference")
    tests = [(t.exercise, t.name) for t in reference.tests]
    width = max(len(r.label) for r in [*audit.rows, *audit.nulls]) + 2
    everything = [*audit.rows, *audit.nulls]
    seconds = {name: sum(t.seconds for r in everything for t in r.result.tests if t.name == name) for _, name in tests}
    legend = [
        f"  {i + 1:>3}  {ex} / {name}  ({seconds[name]:.1f} s over all rows)" for i, (ex, name) in enumerate(tests)
    ]
    header = " " * width + " ".join(f"{i + 1:>3}" for i in range(len(tests)))
    key = "x: failed, .: passed, -: not run (reaches nothing the variant changes)"
    lines = [audit.summary(), "tests:", *legend, key, "", header]
    for row in [*audit.rows, *audit.nulls]:
        passed = {t.name: t.passed for t in row.result.tests}
        marks = " ".join(
            f"{'-' if name in row.not_run else '.' if passed.get(name, False) else 'x':>3}" for _, name in tests
        )
        note = ""
        if row.variant and not row.variant.correct:
            note = "  named" if row.named else ""
        elif row in audit.nulls:
            note = "  FAILS" if row.failures else ""
            named = [says for names in row.result.diagnosis.values() for says in names]
            note += f"  named: {'; '.join(named)[:80]}" if named else ""
        lines.append(f"{row.label:<{width}}{marks}{note}")
    return "\n".join(lines)


# -- mutation testing -------------------------------------------------------------------------------------------
@dataclass
class MutantRow:
    mutant: mutants.Mutant
    result: NotebookResult | None  # None: not graded (not in the sample)
    equivalent: mutants.Equivalent | None
    cataloged: bool  # its code is a cataloged mistake's
    open_design: bool = False  # a mutant of an exercise graded by outcome: keeping full marks is another design

    @property
    def killed(self) -> bool:
        r = self.result
        return bool(r and (r.problem or r.score < r.max_score))

    @property
    def survives(self) -> bool:
        """Graded, kept full marks, and not listed as equivalent."""
        return self.result is not None and not self.killed and self.equivalent is None

    @property
    def surviving(self) -> bool:
        """Survives where it must not: outside an open-design exercise, where it would be another design."""
        return self.survives and not self.open_design

    @property
    def names(self) -> list[str]:
        return [n for ns in self.result.diagnosis.values() for n in ns] if self.result else []


@dataclass
class MutationAudit:
    notebook: Notebook
    generated: mutants.Generated
    rows: list[MutantRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    sample: int | None = None
    seconds: float = 0.0

    def counts(self, exercise: str | None = None) -> dict[str, int]:
        rows = [r for r in self.rows if exercise is None or r.mutant.exercise == exercise]
        graded = [r for r in rows if r.result is not None]
        return {
            "generated": len(rows),
            "graded": len(graded),
            "killed": sum(r.killed for r in graded),
            "equivalent": sum(r.equivalent is not None for r in rows),
            "other design": sum(r.survives and r.open_design for r in graded),
            "surviving": sum(r.surviving for r in graded),
            # a mistake named for a mutant whose code is not that mistake's: right or wrong, for a person to judge
            "named": sum(bool(r.names) and not r.cataloged for r in graded),
        }

    def table(self) -> str:
        """Per exercise and in total: mutants generated, graded, killed, equivalent, surviving, and those the
        feedback names a cataloged mistake for (listed for review)."""
        exercises = [e.id for e in self.notebook.auto_exercises]
        cols = list(self.counts())
        width = max(len(e) for e in [*exercises, "total"]) + 2
        sample = f" (a sample of {self.sample})" if self.sample is not None else ""
        lines = [
            f"{self.notebook.assignment}/{self.notebook.name}: mutants{sample}; {self.generated.invalid} left out "
            f"that do not compile, {self.generated.identical} identical to the reference or another; "
            f"{self.seconds:.0f} s",
            " " * width + "".join(f"{c:>15}" for c in cols),
        ]
        for ex in [*exercises, None]:
            c = self.counts(ex)
            lines.append(f"{ex or 'total':<{width}}" + "".join(f"{c[k]:>15}" for k in cols))
        for r in self.rows:
            if r.surviving:
                lines.append(
                    f"  surviving {r.mutant.id} ({r.mutant.exercise}, line {r.mutant.lineno}): {r.mutant.says}"
                )
        for r in self.rows:
            if r.result is not None and r.names and not r.cataloged:
                lines.append(f"  named {r.mutant.id}: {r.mutant.says} -> {'; '.join(r.names)}")
        return "\n".join(lines)


def mutation_audit(
    course: Course, nb: Notebook, seed: int, workers: int = 1, sample: int | None = None
) -> MutationAudit:
    """Grade the mutants of the notebook's reference: all of them, or a fixed sample of those not listed as
    equivalent. A mutant must lose points; a listed one must keep them all; one of an open-design exercise
    (graded by what the model achieves) that keeps full marks is counted as another design, and is not in the
    sample. Each runs only the tests that can tell it from the reference (`tests_reaching`)."""
    started = time.monotonic()
    paths = course.paths(nb)
    source, release = notebooks.read(paths.source), notebooks.read(paths.release)
    generated = mutants.notebook_mutants(source, nb)
    audit = MutationAudit(nb, generated, sample=sample)
    listed = {e.key: e for e in mutants.load_equivalents(paths.equivalent)}
    known = {m.key for m in generated.mutants}
    for e in listed.values():
        if e.key not in known:
            audit.failures.append(
                f"{paths.equivalent.name}: the mutant `{e.line}` -> `{e.mutated}` ({e.cell}, {e.operator}) is no "
                "longer made from the reference: remove it or update its line"
            )
    todo = list(generated.mutants)
    open_design = {e.id for e in nb.auto_exercises if e.open_design}
    if sample is not None:
        pool = sorted((m for m in todo if m.key not in listed and m.exercise not in open_design), key=lambda m: m.id)
        todo = random.Random(f"{nb.assignment}/{nb.name}").sample(pool, min(sample, len(pool)))
    reference = traced_reference(course, nb, seed)
    if reference.score < reference.max_score:
        audit.failures.append(f"the reference loses points: {_failed(reference)}")
    ref_cells = _by_label(prepare(paths.source, release, nb).cells)
    cells = {cid: c.source for cid, c in notebooks.solution_cells(source).items()}
    mistakes = catalog.load(nb, paths.mistakes)
    with tempfile.TemporaryDirectory(prefix="course-mutants-") as tmp:
        files: dict[str, Path | None] = {}
        focus: dict[str, Focus] = {}
        for m in todo:
            files[m.id] = file = Path(tmp) / f"{len(files)}.ipynb"
            nbformat.write(catalog.apply(source, [m.variant()]), str(file))
            if (only := tests_reaching(reference, ref_cells, _by_label(prepare(file, release, nb).cells))) is not None:
                focus[m.id] = Focus(only=only)
        shards = _shards_worth(workers, reference, focus, files)
        results = {r.student: r for r in pipeline.grade_notebook(course, nb, files, seed, shards, focus=focus)}
    for mid, result in results.items():
        if mid in focus:
            _complete(result, reference, focus[mid].only or frozenset())
    for m in generated.mutants:
        row = MutantRow(
            m, results.get(m.id), listed.get(m.key), mutants.in_catalog(m, cells, mistakes), m.exercise in open_design
        )
        audit.rows.append(row)
        if row.result is None:
            continue
        if row.surviving:
            audit.failures.append(
                f"mutant {m.id} survives ({m.exercise}): {m.says}: write a test that it fails or, if it behaves as "
                f"the reference on every input the exercise allows, list it in equivalent/{paths.equivalent.name}:"
                f"\n{mutants.equivalent_entry(m)}"
            )
        elif row.killed and row.equivalent is not None:
            audit.failures.append(
                f"mutant {m.id} is listed as equivalent ({row.equivalent.reason}) but loses points: "
                f"{_failed(row.result)}; remove it from {paths.equivalent.name}"
            )
    audit.seconds = time.monotonic() - started
    return audit
