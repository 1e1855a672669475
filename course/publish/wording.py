"""The feedback's sentences, written once: the terminal text, the HTML pages, the formgrader copy and
Gradescope render these and nothing else."""

from __future__ import annotations

UNSANDBOXED = "graded WITHOUT the sandbox (--allow-unsandboxed): the submission's code ran unisolated"
ALL_PASSED = "all checks passed"


def known_mistake(cause: str) -> str:
    return f"This looks like a known mistake: {cause}"


def hint(text: str) -> str:
    return f"Hint: {text}"


def failed_test(name: str, output: str) -> str:
    return f"✗ {name}: {output}"
