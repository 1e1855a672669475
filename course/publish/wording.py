"""The feedback's sentences, written once: the terminal text, the HTML pages, the formgrader copy and
Gradescope render these and nothing else."""

from __future__ import annotations

UNSANDBOXED = "graded WITHOUT the sandbox (--allow-unsandboxed): the submission's code ran unisolated"
ALL_PASSED = "all checks passed"
NOT_GRADED = "not graded: this notebook could not be graded (the reason is above)"


def unisolated(isolation: str, sandboxed: bool) -> bool:
    """The submission's code ran with the grader's rights (--allow-unsandboxed)."""
    return isolation == "none" or (not isolation and not sandboxed)


def isolation(kinds: list[str], bounds: tuple[str, ...] | list[str] = ()) -> str:
    """Which sandbox graded ("fork server", "bubblewrap", "container" or "none") and what bounded it (a
    control group, or each process alone), once each, in order."""
    named = list(dict.fromkeys(k for k in kinds if k)) + list(dict.fromkeys(b.split(":")[0] for b in bounds if b))
    return f"graded in: {', '.join(named)}" if named else ""


def known_mistake(cause: str) -> str:
    return f"This looks like a known mistake: {cause}"


def hint(text: str) -> str:
    return f"Hint: {text}"


def failed_test(name: str, output: str) -> str:
    return f"✗ {name}: {output}"
