"""The feedback's sentences, written once: the terminal text, the HTML pages, the formgrader copy and
Gradescope render these and nothing else."""

from __future__ import annotations

UNSANDBOXED = "graded WITHOUT the sandbox (--allow-unsandboxed): the submission's code ran unisolated"
ALL_PASSED = "all checks passed"
NOT_GRADED = "not graded: this notebook could not be graded (the reason is above)"


def isolation(kinds: list[str]) -> str:
    """Which sandbox graded: "fork server", "bubblewrap" or "none", once each, in order."""
    named = list(dict.fromkeys(k for k in kinds if k))
    return f"graded in: {', '.join(named)}" if named else ""


def known_mistake(cause: str) -> str:
    return f"This looks like a known mistake: {cause}"


def hint(text: str) -> str:
    return f"Hint: {text}"


def failed_test(name: str, output: str) -> str:
    return f"✗ {name}: {output}"
