"""The requirements a notebook states, as data, each tied to the hidden tests that check it.

`autograder/<A>/requirements/<NB>.yaml` maps each auto-graded exercise to what its notebook asks, in the
notebook's own words, and the hidden tests that check each requirement:

    broadcasting:
      - says: "without modifying its input in place"
        tests: [test_normalize_rows_leaves_input]

The check needs no grading, so it is cheap enough for every `course audit` and the fast tests. It fails
when an exercise lists no requirement, when a requirement is not the notebook's words (quoted from any
cell: the prose, a docstring, a comment; whitespace, backticks and asterisks aside), when it names a test
that the suite does not have or that belongs to another exercise, and when a hidden test checks no listed
requirement (a test must check something the notebook asks).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from course import config, notebooks
from course.config import Course, Notebook
from course.errors import CourseError


@dataclass(frozen=True)
class Requirement:
    exercise: str
    says: str  # the notebook's own words
    tests: tuple[str, ...]  # the hidden tests of that exercise that check it


def load(path: Path, nb: Notebook) -> list[Requirement]:
    """The notebook's requirements (autograder/A/requirements/NB.yaml); [] if the file is missing."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CourseError(config.yaml_problem(path, exc)) from None
    if not isinstance(data, dict):
        raise CourseError(f"{path}: expected a mapping of exercise ids to requirements, found {type(data).__name__}")
    known = {e.id for e in nb.auto_exercises}
    out = []
    for exercise, items in data.items():
        if exercise not in known:
            raise CourseError(f"{path}: {exercise!r}: not an auto-graded exercise of {nb.name} ({', '.join(known)})")
        if not isinstance(items, list) or not items:
            raise CourseError(f"{path}: {exercise}: expected a list of requirements (says:, tests:)")
        for i, item in enumerate(items):
            where = f"{path}: {exercise}[{i}]"
            if not isinstance(item, dict) or set(item) != {"says", "tests"}:
                raise CourseError(f"{where}: expected the keys says and tests, found {item!r}"[:300])
            says, tests = item["says"], item["tests"]
            if not isinstance(says, str) or not says.strip():
                raise CourseError(f"{where}.says: expected the notebook's words, found {says!r}"[:300])
            if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
                raise CourseError(f"{where}.tests: expected a list of hidden test names, found {tests!r}"[:300])
            out.append(Requirement(exercise, says.strip(), tuple(tests)))
    return out


def suite_tests(suite: Path) -> dict[str, str]:
    """Test name -> the exercise its `@pytest.mark.exercise(...)` gives, read from the suite's source."""
    out = {}
    for node in ast.parse(suite.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Attribute)
                    and deco.func.attr == "exercise"
                    and deco.args
                    and isinstance(deco.args[0], ast.Constant)
                ):
                    out[node.name] = str(deco.args[0].value)
    return out


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[`*]", "", text)).strip()


def check(course: Course, nb: Notebook) -> list[str]:
    """What is wrong with the notebook's requirements (see the module's docstring); [] when nothing is."""
    paths = course.paths(nb)
    name = f"requirements/{paths.requirements.name}"
    requirements = load(paths.requirements, nb)
    if not requirements:
        return [f"{name}: missing: each exercise lists what the notebook asks and the tests that check it"]
    text = _words("\n".join(c.source for c in notebooks.read(paths.source).cells))
    exercise_of = suite_tests(paths.suite)
    failures = []
    for ex in nb.auto_exercises:
        if not any(r.exercise == ex.id for r in requirements):
            failures.append(f"{name}: exercise {ex.id} lists no requirement")
    for r in requirements:
        if _words(r.says) not in text:
            failures.append(f"{name}: {r.exercise}: {r.says!r} is not the notebook's words (no cell says it)")
        for t in r.tests:
            if t not in exercise_of:
                failures.append(f"{name}: {r.exercise}: {r.says!r} names {t}, which is not a hidden test")
            elif exercise_of[t] != r.exercise:
                failures.append(f"{name}: {r.exercise}: {r.says!r} names {t}, a test of {exercise_of[t]}")
    named = {t for r in requirements for t in r.tests}
    for t in sorted(set(exercise_of) - named):
        failures.append(f"{name}: {t} ({exercise_of[t]}) checks no listed requirement")
    return failures


def table(course: Course, nb: Notebook) -> str:
    """Each exercise's requirements and the tests that check them, for a person to read."""
    lines = [f"{nb.assignment}/{nb.name}: stated requirements"]
    for r in load(course.paths(nb).requirements, nb):
        lines.append(f"  {r.exercise}: {r.says}  <-  {', '.join(r.tests)}")
    return "\n".join(lines)
