"""What a hidden suite imports: probes, and comparisons whose failure message explains itself."""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np


class Probe:
    """A function that runs next to the code under test and returns plain data.

    Its source travels to the worker; the grader never sends the test that uses it.
    """

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.name = fn.__name__
        self.module = fn.__module__
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
        while lines and lines[0].lstrip().startswith("@"):
            lines.pop(0)
        self.source = "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<probe {self.name}>"


def probe(fn: Callable[..., Any]) -> Probe:
    return Probe(fn)


def module_probes(module: ModuleType) -> dict[str, Probe]:
    return {p.name: p for p in vars(module).values() if isinstance(p, Probe)}


def check(condition: object, message: str) -> None:
    """Assert with a message written for the student."""
    if not condition:
        raise AssertionError(message)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, np.ndarray):
        return f"array of shape {tuple(x.shape)}"
    if isinstance(x, (list, dict)):
        return f"a {type(x).__name__} of {len(x)} items"
    return repr(x)


def _differences(found: Any, expected: Any, path: str, atol: float, rtol: float, out: list[str]) -> None:
    """Append one line per place where `found` and `expected` disagree."""
    if isinstance(expected, dict):
        if not isinstance(found, dict):
            out.append(f"{path or 'the result'}: expected a dict, found {_fmt(found)}")
            return
        for key in expected:
            if key not in found:
                out.append(f"{path}{'.' if path else ''}{key}: missing")
            else:
                _differences(found[key], expected[key], f"{path}{'.' if path else ''}{key}", atol, rtol, out)
        return
    if isinstance(expected, list) and not all(isinstance(e, (int, float)) for e in expected):
        if not isinstance(found, list) or len(found) != len(expected):
            out.append(f"{path or 'the result'}: expected {_fmt(expected)}, found {_fmt(found)}")
            return
        for i, (f, e) in enumerate(zip(found, expected, strict=False)):
            _differences(f, e, f"{path}[{i}]", atol, rtol, out)
        return
    if isinstance(expected, (str, type(None), bool)):
        if not (isinstance(found, type(expected)) and found == expected):
            out.append(f"{path or 'the result'}: expected {expected!r}, found {found!r}")
        return
    _compare_numbers(found, expected, path or "the result", atol, rtol, out)


def _compare_numbers(found: Any, expected: Any, where: str, atol: float, rtol: float, out: list[str]) -> None:
    try:
        f = np.asarray(found, dtype=np.float64) if not isinstance(found, np.ndarray) else found
        e = np.asarray(expected, dtype=np.float64) if not isinstance(expected, np.ndarray) else expected
        f = f.astype(np.complex128 if np.iscomplexobj(f) else np.float64)
        e = e.astype(np.complex128 if np.iscomplexobj(e) else np.float64)
    except (TypeError, ValueError):
        out.append(f"{where}: expected a number or an array, found {_fmt(found)}")
        return
    if f.shape != e.shape:
        out.append(f"{where}: expected shape {tuple(e.shape)}, found shape {tuple(f.shape)}")
        return
    bad = ~np.isclose(f, e, atol=atol, rtol=rtol, equal_nan=True)
    if not bad.any():
        return
    gap = np.where(bad, np.abs(np.nan_to_num(f - e, nan=np.inf)), -1.0)
    worst = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.ndim else ()
    at = f" at index {list(map(int, worst))}" if gap.ndim else ""
    scope = f"{int(bad.sum())} of {bad.size} values differ; " if bad.size > 1 else ""
    expected_text, found_text = _apart(e[worst].item(), f[worst].item())
    out.append(f"{where}: {scope}expected {expected_text}, found {found_text}{at}")


def _apart(expected: Any, found: Any) -> tuple[str, str]:
    """Both numbers with 6 significant digits, or with as many more as it takes to show that they differ."""
    if isinstance(expected, float) and isinstance(found, float) and expected != found:
        for digits in range(6, 18):
            a, b = f"{expected:.{digits}g}", f"{found:.{digits}g}"
            if a != b:
                return a, b
    return _fmt(expected), _fmt(found)


def differences(found: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5) -> list[str]:
    out: list[str] = []
    _differences(found, expected, "", atol, rtol, out)
    return out


def assert_close(
    found: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5, what: str = "the result"
) -> None:
    """Compare nested results (dicts, lists, numbers, arrays); fail naming what differs and by how much."""
    diffs = differences(found, expected, atol=atol, rtol=rtol)
    if diffs:
        more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
        raise AssertionError(
            f"{what} is not what was expected — "
            + "; ".join(diffs[:3])
            + more
            + f" (tolerance atol={atol:g}, rtol={rtol:g})"
        )


def is_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64)))) if not isinstance(x, float) else math.isfinite(x)
