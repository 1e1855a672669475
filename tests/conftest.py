import shutil

import pytest

from course import config
from helpers import HERE


@pytest.fixture
def mini(tmp_path, monkeypatch):
    """A copy of the two-exercise test course, released, as the current course."""
    root = tmp_path / "mini"
    shutil.copytree(HERE / "minicourse", root, ignore=shutil.ignore_patterns("release", "gradebook.db"))
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.chdir(root)
    course = config.load(root)
    from course.authoring import release

    release.release(course, course.assignment("toy"))
    return course
