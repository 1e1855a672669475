"""Probes run against trusted code in the grader's own process: the reference, or the reference with one
cataloged mistake written in. Each answer is cached per probe and arguments, and handed out as a copy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from course.catalog import Variant, apply_to_reference
from course.sandbox.server import Notebook as NotebookView
from course.sandbox.server import compile_code
from course.sandbox.wire import from_plain, to_plain
from course.testing import Probe, module_probes

Runner = Callable[..., Any]  # runner(probe, timeout=None, **kwargs) -> the probe's answer


def call_key(probe: Probe, kwargs: dict[str, Any]) -> tuple[str, str]:
    return probe.name, json.dumps(kwargs, sort_keys=True, default=repr)


def suite_probes(module: ModuleType) -> tuple[str, str]:
    """A suite's probes as (key, source): what a worker receives before its first call."""
    probes = module_probes(module)
    return module.__name__, "\n\n".join(p.source for p in probes.values())


class References:
    """The reference module of one notebook, and its mistaken variants, each loaded once."""

    def __init__(self, reference_path: Path):
        self.reference_path = reference_path
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._probe_spaces: dict[str, dict[str, Any]] = {}
        self._answers: dict[tuple[Any, ...], tuple[Any, list[Any]]] = {}
        self._seconds: dict[tuple[Any, ...], float | None] = {}  # how long the reference took on each call

    def namespace(self, variant: Variant | None = None) -> dict[str, Any]:
        """The reference's globals, with `variant` written into its region when given."""
        name = "reference" if variant is None else f"mistake:{variant.id}"
        if name not in self._namespaces:
            text = self.reference_path.read_text()
            filename = _filename(self.reference_path, variant)
            if variant is not None:
                text = apply_to_reference(text, variant)
            ns: dict[str, Any] = {"__name__": "reference"}
            exec(compile_code(text, filename), ns)
            self._namespaces[name] = ns
        return self._namespaces[name]

    def runner(self, module: ModuleType, variant: Variant | None = None) -> Runner:
        """A `reference`-like fixture value: runs the suite's probes against the trusted namespace."""
        key, source = suite_probes(module)
        space = self._probe_spaces.setdefault(key, {})
        if not space:
            space["__name__"] = "probes"
            exec(compile_code(source, "<probes>"), space)
        name = "reference" if variant is None else f"mistake:{variant.id}"

        def run(probe: Probe, timeout: float | None = None, **kwargs: Any) -> Any:
            cache_key = (name, key, call_key(probe, kwargs))
            if cache_key not in self._answers:
                arrays: list[Any] = []
                self._seconds[cache_key] = None
                namespace = self.namespace(variant)  # loaded once, before the clock starts: a call is timed alone
                start = time.perf_counter()
                plain = to_plain(space[probe.name](NotebookView(namespace), **kwargs), arrays)
                self._seconds[cache_key] = time.perf_counter() - start
                self._answers[cache_key] = (plain, arrays)
            plain, arrays = self._answers[cache_key]
            return from_plain(plain, [a.copy() for a in arrays])

        return run

    def filename(self, variant: Variant | None = None) -> str:
        """The file name that tracebacks show for the reference's code, or for `variant`'s."""
        return _filename(self.reference_path, variant)

    def seconds_of(self, probe: Probe, kwargs: dict[str, Any]) -> float:
        """How long the reference took on this call in any suite module, if it has run (else +inf); runs
        nothing."""
        key = call_key(probe, kwargs)
        times = [s for (name, _, call), s in self._seconds.items() if name == "reference" and call == key and s]
        return min(times, default=float("inf"))

    def seconds(self, module: ModuleType, probe: Probe, kwargs: dict[str, Any]) -> float | None:
        """How long the reference takes on this call (running it now if it has not run yet), or None when
        the reference raises on it."""
        cache_key = ("reference", suite_probes(module)[0], call_key(probe, kwargs))
        if cache_key not in self._seconds:
            try:
                self.runner(module)(probe, **kwargs)
            except Exception:
                pass
        return self._seconds.get(cache_key)


def _filename(reference_path: Path, variant: Variant | None) -> str:
    return str(reference_path) if variant is None else f"<mistake {variant.id}>"
