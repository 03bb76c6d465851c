"""The layering contract (.importlinter), checked by import-linter on every test run.

import-linter (grimp) finds a package's submodules from its directory, but skugen is three trees mapped
onto one import name (sdk/ -> skugen, export/ -> skugen.export, kernels/ -> skugen.kernels: pyproject's
package-dir). So the test lays the three trees out as one package in a temp dir, as a wheel installs them,
and runs `lint-imports` on that copy (it holds under any install; `make install`'s strict editable mode makes a
bare `lint-imports` in the checkout see the same layout).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"


def _stage(dest: Path) -> Path:
    root = dest / "skugen"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "zoo")
    shutil.copytree(REPO / "sdk", root, ignore=ignore)
    shutil.copytree(REPO / "export", root / "export", ignore=ignore)
    shutil.copytree(REPO / "kernels", root / "kernels", ignore=ignore)
    return dest


def _lint(stage: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    return subprocess.run([str(exe), "--no-cache", "--no-logo", str(CONFIG)], cwd=stage,
                          env={**os.environ, "PYTHONPATH": str(stage)}, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold(tmp_path):
    r = _lint(_stage(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 4 kept, 0 broken." in r.stdout, r.stdout  # every contract was read and checked


def test_the_contract_catches_a_forbidden_import(tmp_path):
    """A runtime module that imports the toolchain breaks the contract (the check is not vacuous)."""
    stage = _stage(tmp_path)
    tiling = stage / "skugen" / "tiling.py"
    tiling.write_text(tiling.read_text() + "\nimport skugen.export.data  # noqa: E402,F401\n")
    r = _lint(stage)
    assert r.returncode != 0 and "skugen.tiling -> skugen.export.data" in r.stdout, r.stdout
