"""The tooling's shape: the trust boundary of the sandbox, and the layers (`make lint` runs import-linter)."""

import ast
import sys
from pathlib import Path

import pytest

from helpers import REPO

SANDBOX = REPO / "course" / "sandbox"
# what each module on the untrusted side may import: the standard library, and these
# (the fork server holds no secret either: its children, which run student code, are forks of it)
ALLOWED = {
    "server.py": {"course.sandbox.wire"},
    "wire.py": {"numpy"},
    "zygote.py": {"course.sandbox", "course.sandbox.server", "course.sandbox.wire"},
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: a relative import ({node.module})"
            found.add(node.module or "")
    return found


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_the_worker_imports_only_the_wire_and_the_standard_library(name):
    """The worker runs student code, and the fork server's memory is what each worker starts from: whatever
    they import is within a student's reach, so they import nothing of the grader's (no suites, references,
    paths, gradebook), only the wire protocol."""
    outside = {m for m in imports(SANDBOX / name) if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= ALLOWED[name], f"{name} imports {sorted(outside - ALLOWED[name])}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\ndef f():\n    from course.grading import pipeline\n")
    assert imports(probe) == {"os", "course.grading"}


def test_the_device_rules_import_only_torch_and_the_standard_library():
    """Probes import course.devices in the worker, next to student code: it holds nothing of the grader's."""
    outside = {m for m in imports(REPO / "course" / "devices.py") if m.split(".")[0] not in sys.stdlib_module_names}
    assert {m.split(".")[0] for m in outside} <= {"torch"}, f"devices.py imports {sorted(outside)}"
