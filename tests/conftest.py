import os
import shutil

import pytest

from course import config
from helpers import HERE


@pytest.fixture(scope="session")
def released_mini(tmp_path_factory):
    """The two-exercise test course, released once per session (nbgrader's release takes seconds)."""
    root = tmp_path_factory.mktemp("released") / "mini"
    shutil.copytree(HERE / "minicourse", root, ignore=shutil.ignore_patterns("release", "gradebook.db"))
    from course.authoring import release

    course = config.load(root)
    release.release(course, course.assignment("toy"))
    return root


@pytest.fixture
def mini(released_mini, tmp_path, monkeypatch):
    """A fresh copy of the released two-exercise test course, as the current course."""
    root = tmp_path / "mini"
    shutil.copytree(released_mini, root)
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.chdir(root)
    return config.load(root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (whole notebooks audited, hostile batches, a class graded): spread over `-n`
    workers, the longest are taken first and the short ones fill the gaps, so no worker is left with an audit
    while the others are done."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one process: the order of the files, as written
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
