"""Import a Python file that is not on sys.path (a benchmark or script, a user's factory file, a Triton model.py)
as a module: the one spelling of importlib's spec_from_file_location dance for the tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_file(path: str | Path, name: str | None = None, *, register: bool = False) -> ModuleType:
    """The module run from `path`, named `name` (default: a name unique to the path). register=True also puts it
    in sys.modules, which pickling classes defined there needs."""
    path = Path(path)
    name = name or f"_skugen_test_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
