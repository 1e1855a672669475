"""Mutants of a solution cell, made without grading anything; the reviewed list of equivalent ones."""

import pytest
import yaml

from course.authoring import mutants
from course.authoring.nulls import BEGIN, END
from course.errors import CourseError

CELL = '''import torch


def normalize(x, scores, y):
    """Rows divided by their sums."""
    scale = 2  # given: outside the student's part
    ### BEGIN SOLUTION
    total = x.sum(dim=1, keepdim=True)         # [N, 1]
    out = torch.zeros(3, device=x.device, dtype=x.dtype)
    out += x.detach() * scale - 1.5
    if y.min() < 0:
        out = out.clone()
    torch.gather(scores, 1, y)
    return out / total ** 2
    ### END SOLUTION
'''


def generated(text=CELL):
    return mutants.cell_mutants("norm", "broadcasting", text)


def by_operator(found):
    out = {}
    for m in found.mutants:
        out.setdefault(m.operator, []).append((m.line, m.mutated))
    return out


def test_every_operator_applies_inside_the_student_part_only():
    ops = by_operator(generated())
    assert set(ops) == set(mutants.OPERATORS)
    assert ("total = x.sum(dim=1, keepdim=True)", "total = x.sum(dim=1)") in ops["keepdim"]
    assert ("total = x.sum(dim=1, keepdim=True)", "total = x.sum(dim=0, keepdim=True)") in ops["dim"]
    assert ("total = x.sum(dim=1, keepdim=True)", "total = x.sum(dim=-1, keepdim=True)") in ops["dim"]
    assert ("out += x.detach() * scale - 1.5", "out = x.detach() * scale - 1.5") in ops["assign"]
    assert ("out += x.detach() * scale - 1.5", "out -= x.detach() * scale - 1.5") in ops["arithmetic"]
    assert ("out += x.detach() * scale - 1.5", "out += x * scale - 1.5") in ops["copy"]
    assert ("out += x.detach() * scale - 1.5", "out += x.detach() * scale - 2.5") in ops["constant"]
    assert ("if y.min() < 0:", "if y.min() <= 0:") in ops["comparison"]
    assert ("out = out.clone()", "out = out") in ops["copy"]
    assert ("torch.gather(scores, 1, y)", "torch.gather(1, scores, y)") in ops["arguments"]
    assert ("return out / total ** 2", "return out / total * 2") in ops["arithmetic"]
    assert ("return out / total ** 2", "") in ops["statement"]
    dropped = {m for line, m in ops["device"]}
    assert dropped == {"out = torch.zeros(3, dtype=x.dtype)", "out = torch.zeros(3, device=x.device)"}
    lines = {line for pairs in ops.values() for line, _ in pairs}
    assert not any("scale = 2" in line or "import" in line for line in lines), "scaffolding is never mutated"


def test_a_mutant_keeps_comments_and_the_solution_markers():
    m = next(m for m in generated().mutants if m.operator == "keepdim")
    assert m.source.count(BEGIN) == 1 and m.source.count(END) == 1
    assert "total = x.sum(dim=1)         # [N, 1]" in m.source
    assert m.source.replace("total = x.sum(dim=1)", "total = x.sum(dim=1, keepdim=True)") == CELL.rstrip("\n") + "\n"
    assert m.function == "normalize" and m.exercise == "broadcasting" and m.lineno == 8


def test_a_deleted_statement_becomes_pass_and_keeps_the_begin_marker():
    m = next(m for m in generated().mutants if m.operator == "statement" and m.line.startswith("total ="))
    assert "### BEGIN SOLUTION\n    pass         # [N, 1]\n" in m.source


def test_mutants_are_distinct_and_different_from_the_reference():
    found = generated()
    sources = [m.source for m in found.mutants]
    assert len(set(sources)) == len(sources) and CELL not in sources
    twins = generated(CELL.replace("    torch.gather(scores, 1, y)\n", "    torch.maximum(x, x)\n"))
    assert twins.identical == 1, "swapping x and x changes nothing: left out"


def test_names_survive_an_unrelated_edit_and_tell_repeated_lines_apart():
    before = {m.key: m.id for m in generated().mutants}
    edited = CELL.replace(
        '    """Rows divided by their sums."""\n', '    """Rows divided by their sums.\n\n    More.\n    """\n'
    )
    after = {m.key: m.id for m in generated(edited).mutants}
    assert before == after and len(set(before.values())) == len(before)
    twice = CELL.replace("    return out / total ** 2\n", "    out = out.clone()\n    return out / total ** 2\n")
    keys = [m.key for m in generated(twice).mutants if m.line == "out = out.clone()" and m.operator == "copy"]
    assert [k[-1] for k in keys] == [0, 1]


def test_a_cell_without_a_student_part_has_no_mutants():
    assert generated("def f(x):\n    return x + 1\n").mutants == []


def test_equivalent_entries_load_and_a_bad_one_is_one_line(tmp_path):
    m = next(m for m in generated().mutants if m.operator == "dim" and m.mutated.endswith("dim=-1, keepdim=True)"))
    path = tmp_path / "nb.yaml"
    entry = yaml.safe_load(mutants.equivalent_entry(m))
    entry[0]["reason"] = "x is [N, D]: dim -1 is dim 1"
    path.write_text(yaml.safe_dump(entry))
    [e] = mutants.load_equivalents(path)
    assert e.key == m.key and e.reason == "x is [N, D]: dim -1 is dim 1"
    path.write_text(yaml.safe_dump([{**entry[0], "operator": "nope"}]))
    with pytest.raises(CourseError, match="operator: expected one of") as info:
        mutants.load_equivalents(path)
    assert "\n" not in str(info.value) and "nb.yaml" in str(info.value)
    path.write_text(yaml.safe_dump([{k: v for k, v in entry[0].items() if k != "reason"}]))
    with pytest.raises(CourseError, match="expected the keys cell, operator, line, mutant, reason"):
        mutants.load_equivalents(path)


# -- the mutation audit, on the two-exercise test course --------------------------------------------------------
def test_a_surviving_mutant_fails_the_audit_until_it_is_reviewed_as_equivalent(mini):
    import nbformat

    from course import notebooks
    from course.authoring import audit

    nb = mini.assignment("toy").notebooks[0]
    paths = mini.paths(nb)
    source = notebooks.read(paths.source)
    cell = notebooks.solution_cells(source)["scale-impl"]
    cell.source = cell.source.replace("    return np.asarray", "    k = k + 0\n    return np.asarray")
    nbformat.write(source, str(paths.source))  # `k + 0` -> `k - 0`, or the line deleted, changes nothing

    first = audit.mutation_audit(mini, nb, seed=3, workers=2)
    survivors = [r.mutant for r in first.rows if not r.killed and r.equivalent is None]
    assert sorted(m.mutated for m in survivors) == ["", "k = k - 0"], first.table()
    assert first.counts()["equivalent"] == 1  # the test course's own reviewed entry (the dtype)
    assert len(first.failures) == 2 and all("list it in equivalent/adder.yaml" in f for f in first.failures)
    assert f"mutant {survivors[0].id} survives (scale)" in first.failures[0]
    killed = next(r.mutant for r in first.rows if r.killed)

    entries = yaml.safe_load(paths.equivalent.read_text())
    for m in (*survivors, killed):
        entries.append({**yaml.safe_load(mutants.equivalent_entry(m))[0], "reason": "k + 0 is k"})
    entries.append({**entries[-1], "line": "return x"})  # a line the reference no longer has
    paths.equivalent.write_text(yaml.safe_dump(entries, sort_keys=False))
    second = audit.mutation_audit(mini, nb, seed=3, workers=2)
    assert second.counts()["equivalent"] == 4 and second.counts()["surviving"] == 0, second.table()
    problems = "\n".join(second.failures)
    assert len(second.failures) == 2, problems
    assert f"mutant {killed.id} is listed as equivalent (k + 0 is k) but loses points" in problems
    assert "the mutant `return x` -> " in problems and "is no longer made from the reference" in problems

    sampled = audit.mutation_audit(mini, nb, seed=3, workers=2, sample=2)
    assert sampled.counts()["graded"] == 2 and all(r.equivalent is None for r in sampled.rows if r.result)


def test_a_mutant_of_an_open_design_exercise_that_keeps_its_marks_is_another_design(mini):
    import nbformat

    from course import config, notebooks
    from course.authoring import audit

    text = (mini.root / "course.yaml").read_text()
    marked = "{id: scale, title: Scale an array, points: 1, open_design: true}"
    (mini.root / "course.yaml").write_text(text.replace("{id: scale, title: Scale an array, points: 1}", marked))
    mini = config.load(mini.root)
    nb = mini.assignment("toy").notebooks[0]
    assert [e.id for e in nb.auto_exercises if e.open_design] == ["scale"]
    paths = mini.paths(nb)
    source = notebooks.read(paths.source)
    cell = notebooks.solution_cells(source)["scale-impl"]
    cell.source = cell.source.replace("    return np.asarray", "    k = k + 0\n    return np.asarray")
    nbformat.write(source, str(paths.source))

    found = audit.mutation_audit(mini, nb, seed=3, workers=2)
    assert found.counts("scale")["other design"] == 2 and found.counts()["surviving"] == 0, found.table()
    assert not found.failures, found.failures
    assert "surviving" not in found.table().split("\n", 2)[2]  # the survivors are not listed as gaps
    sampled = audit.mutation_audit(mini, nb, seed=3, workers=2, sample=50)
    assert {r.mutant.exercise for r in sampled.rows if r.result} == {"add"}, sampled.table()
