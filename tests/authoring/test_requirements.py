"""The stated requirements: each quotes its notebook and names the tests that check it, and every hidden test
checks one. A check that grades nothing, so it runs for every notebook of the course here too."""

import pytest
import yaml

from course import config
from course.authoring import requirements
from course.errors import CourseError
from helpers import REPO

COURSE = config.load(REPO)
NOTEBOOKS = [nb for a in COURSE.assignments.values() for nb in a.notebooks]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda nb: f"{nb.assignment}/{nb.name}")
def test_every_requirement_of_the_course_is_the_notebooks_and_is_tested(nb):
    assert requirements.check(COURSE, nb) == [], requirements.table(COURSE, nb)


def _write(mini, data):
    nb = mini.assignment("toy").notebooks[0]
    mini.paths(nb).requirements.write_text(yaml.safe_dump(data, sort_keys=False))
    return nb


def test_the_test_course_passes(mini):
    assert requirements.check(mini, mini.assignment("toy").notebooks[0]) == []


def test_unquoted_untested_and_misplaced_requirements_fail(mini):
    nb = _write(
        mini,
        {
            "add": [
                {"says": "Return   `a + b`.", "tests": ["test_add"]},  # whitespace and backticks aside: quoted
                {"says": "Return a - b.", "tests": ["test_add_ints", "test_nothing"]},
            ],
            "scale": [{"says": "Return the array x multiplied by k.", "tests": ["test_add"]}],
        },
    )
    failures = requirements.check(mini, nb)
    assert failures == [
        "requirements/adder.yaml: add: 'Return a - b.' is not the notebook's words (no cell says it)",
        "requirements/adder.yaml: add: 'Return a - b.' names test_nothing, which is not a hidden test",
        "requirements/adder.yaml: scale: 'Return the array x multiplied by k.' names test_add, a test of add",
        "requirements/adder.yaml: test_scale (scale) checks no listed requirement",
    ]


def test_an_exercise_without_requirements_and_a_missing_file_fail(mini):
    nb = _write(mini, {"add": [{"says": "Return a + b.", "tests": ["test_add", "test_add_ints"]}]})
    assert requirements.check(mini, nb) == [
        "requirements/adder.yaml: exercise scale lists no requirement",
        "requirements/adder.yaml: test_scale (scale) checks no listed requirement",
    ]
    mini.paths(nb).requirements.unlink()
    [missing] = requirements.check(mini, nb)
    assert missing.startswith("requirements/adder.yaml: missing")


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"nope": [{"says": "x", "tests": ["test_add"]}]}, "'nope': not an auto-graded exercise of adder"),
        ({"add": [{"says": "Return a + b."}]}, "add[0]: expected the keys says and tests"),
        ({"add": [{"says": "Return a + b.", "tests": []}]}, "add[0].tests: expected a list of hidden test names"),
        (["add"], "expected a mapping of exercise ids to requirements, found list"),
    ],
)
def test_a_malformed_file_is_one_line_that_names_it(mini, data, problem):
    nb = _write(mini, data)
    with pytest.raises(CourseError) as info:
        requirements.check(mini, nb)
    assert problem in str(info.value) and "adder.yaml" in str(info.value) and "\n" not in str(info.value)
