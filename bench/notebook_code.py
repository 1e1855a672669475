"""The code a benchmark measures: a notebook's reference solution, and functions taken from its source
notebook's cells, so that a benchmark runs what a learner runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import nbformat

REPO = Path(__file__).resolve().parent.parent


def reference(notebook: str) -> ModuleType:
    """solutions/<notebook>.py (for instance "week2/02_cnn_classification"), imported as a module."""
    spec = importlib.util.spec_from_file_location("reference", REPO / "solutions" / f"{notebook}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook_functions(notebook: str, names: tuple[str, ...], given: dict) -> dict:
    """The functions `names`, defined by executing the source notebook's cells that define them. `given` is what
    those cells expect earlier cells to have set (imports, `device`)."""
    ns = dict(given)
    for cell in nbformat.read(str(REPO / "source" / f"{notebook}.ipynb"), as_version=4).cells:
        if cell.cell_type == "code" and any(f"def {name}(" in cell.source for name in names):
            exec(compile(cell.source, f"<{notebook} cell>", "exec"), ns)
    missing = [name for name in names if name not in ns]
    if missing:
        raise SystemExit(f"the source notebook {notebook} defines no {', '.join(missing)}")
    return {name: ns[name] for name in names}
