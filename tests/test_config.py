"""course.yaml is checked on load; every error names the file, the key and what was expected."""

import shutil

import pytest
import yaml

from course import config
from course.errors import CourseError
from helpers import HERE, REPO


@pytest.fixture
def root(tmp_path):
    shutil.copytree(HERE / "minicourse", tmp_path / "c")
    return tmp_path / "c"


def edit(root, change):
    data = yaml.safe_load((root / "course.yaml").read_text())
    change(data)
    (root / "course.yaml").write_text(yaml.safe_dump(data))


def error(root) -> str:
    with pytest.raises(CourseError) as e:
        config.load(root)
    return str(e.value)


def test_the_course_loads():
    course = config.load(REPO)
    assert "week1" in course.assignments
    for a in course.assignments.values():
        for nb in a.notebooks:
            assert course.paths(nb).source.is_file(), course.paths(nb).source


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.update(colour="red"), "course.yaml: colour: expected one of the keys"),
        (
            lambda d: d["grading"].update(test_timeout="soon"),
            "grading.test_timeout: expected a positive number, found 'soon'",
        ),
        (lambda d: d["grading"].update(memory_mb=-1), "grading.memory_mb: expected a positive number, found -1"),
        (
            lambda d: d["assignments"]["toy"]["notebooks"][0]["exercises"][0].update(points="two"),
            "assignments.toy.notebooks[0].exercises[0].points: expected a number of points, found 'two'",
        ),
        (
            lambda d: d["assignments"]["toy"]["notebooks"][0]["exercises"][1].update(id="add"),
            "exercises[1].id: expected an id not used before in this notebook, found 'add'",
        ),
        (
            lambda d: d["assignments"]["toy"]["notebooks"][0].update(datasets=["imagenet"]),
            "assignments.toy.notebooks[0].datasets: expected names registered in datasets/registry.yaml",
        ),
        (
            lambda d: d["assignments"]["toy"]["notebooks"][0].pop("title"),
            "assignments.toy.notebooks[0].title: expected a value, found nothing",
        ),
        (
            lambda d: d["assignments"]["toy"]["notebooks"][0]["exercises"][2].update(manual="yes"),
            "exercises[2].manual: expected true or false, found 'yes'",
        ),
    ],
)
def test_errors_name_file_key_and_expectation(root, change, words):
    edit(root, change)
    message = error(root)
    assert str(root / "course.yaml") in message and words in message, message
    assert "\n" not in message


def test_not_yaml(root):
    (root / "course.yaml").write_text("course: [unclosed")
    assert "not valid YAML" in error(root)


def test_unknown_assignment_lists_the_known_ones(root):
    with pytest.raises(CourseError, match=r"no assignment 'week9'.*it has: toy"):
        config.load(root).assignment("week9")
