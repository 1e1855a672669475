"""The course itself: release/ is fresh, solution cells are the reference, and every hidden suite gives the
reference full marks, the untouched release zero, and each cataloged mistake a loss in its exercise."""
import nbformat
import pytest

from course import config, grade, mistakes, notebooks, release
from helpers import REPO

COURSE = config.load(REPO)
NOTEBOOKS = [nb for a in COURSE.assignments.values() for nb in a.notebooks]


@pytest.mark.parametrize("name", list(COURSE.assignments))
def test_release_is_up_to_date(name):
    assert release.stale(COURSE, COURSE.assignment(name)) == []


@pytest.mark.parametrize("name", list(COURSE.assignments))
def test_grade_cells_carry_the_points_of_course_yaml(name):
    release.check_points(COURSE, COURSE.assignment(name))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda nb: f"{nb.assignment}/{nb.name}")
def test_hidden_suite_tells_right_from_wrong(nb, tmp_path):
    paths = nb.paths(REPO)
    catalog = mistakes.load(nb, paths.mistakes)
    exercises = {e.id: e.points for e in nb.auto_exercises}
    assert {m.exercise for m in catalog} == set(exercises), "every exercise needs cataloged mistakes"
    source = notebooks.read(paths.source)
    files = {"reference": paths.source, "release": paths.release}
    for m in catalog:
        files[f"mistake-{m.id}"] = tmp_path / f"{m.id}.ipynb"
        nbformat.write(mistakes.apply(source, [m]), str(files[f"mistake-{m.id}"]))
    results = {r.student: r for r in grade.grade_notebook(COURSE, nb, files, seed=20261124, workers=2)}

    ref = results["reference"]
    assert ref.score == ref.max_score, [t.output for t in ref.tests if not t.passed]
    rel = results["release"]
    assert rel.score == 0 and rel.problem is None
    assert all(t.output and t.output != "passed" for t in rel.tests)

    for m in catalog:
        r = results[f"mistake-{m.id}"]
        lost = {ex for ex, pts in exercises.items() if r.exercise_score(ex) < pts}
        assert m.exercise in lost, f"mistake {m.id} ({m.says}) keeps full marks for {m.exercise}"
        assert lost <= {m.exercise, *m.also}, f"mistake {m.id} also loses points in {sorted(lost - {m.exercise, *m.also})}"
