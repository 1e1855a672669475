"""The course itself: release/ is fresh, solution cells are the reference, and every hidden suite gives the
reference full marks, the untouched release zero, each cataloged mistake a loss in its exercise, and a sample of
the mechanical mutants of each reference a loss."""

import os

import pytest

from course import config
from course.authoring import audit, release
from course.grading import pipeline
from helpers import REPO

pytestmark = pytest.mark.slow  # grades every notebook of the course

COURSE = config.load(REPO)
NOTEBOOKS = [nb for a in COURSE.assignments.values() for nb in a.notebooks]
# an audit's shards: the cores this test has to itself, as pytest-xdist's `-n` shares them out
WORKERS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


@pytest.mark.parametrize("name", list(COURSE.assignments))
def test_release_is_up_to_date(name):
    assert release.stale(COURSE, COURSE.assignment(name)) == []


@pytest.mark.parametrize("name", list(COURSE.assignments))
def test_grade_cells_carry_the_points_of_course_yaml(name):
    release.check_points(COURSE, COURSE.assignment(name))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda nb: f"{nb.assignment}/{nb.name}")
def test_hidden_suite_passes_its_audit(nb):
    """The reference gets full marks, the untouched release 0, every cataloged mistake loses points in its
    exercise (and only where it says), every correct alternative keeps every point, every null submission
    loses what it must, and the feedback names at least 80% of the mistakes: `course audit --nulls`, through
    the real grading path."""
    seed = pipeline.default_seed(COURSE, COURSE.assignment(nb.assignment))
    result = audit.audit_notebook(COURSE, nb, seed, workers=WORKERS, with_nulls=True)
    assert result.failures == [], audit.matrix(result) + "\n" + "\n".join(result.failures)
    wrong = result.of_kind(correct=False)
    assert sum(r.named for r in wrong) >= 0.8 * len(wrong), audit.matrix(result)


MUTANT_SAMPLE = 4  # per notebook; `course audit --mutate` grades them all


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda nb: f"{nb.assignment}/{nb.name}")
def test_a_sample_of_the_reference_mutants_loses_points(nb):
    """A fixed sample of the mechanical mutants of the reference (those not reviewed as equivalent) each
    loses points, and every mutant listed as equivalent is still made from the reference."""
    seed = pipeline.default_seed(COURSE, COURSE.assignment(nb.assignment))
    result = audit.mutation_audit(COURSE, nb, seed, workers=WORKERS, sample=MUTANT_SAMPLE)
    assert result.counts()["graded"] == MUTANT_SAMPLE, result.table()
    assert result.failures == [], result.table() + "\n" + "\n".join(result.failures)
