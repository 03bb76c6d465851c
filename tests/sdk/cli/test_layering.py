"""The CLI is one package: only sdk/cli/ parses arguments, and no library module imports the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TREES = ("sdk", "export", "kernels")
CLI = REPO / "sdk" / "cli"
# Files still owed a move, each with its reason. The test fails once one of them no longer
# imports argparse, so the list can only shrink.
PENDING: dict[str, str] = {}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by `path` (relative imports resolved against the skugen tree)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO)
    pkg = ["skugen"] + {"sdk": [], "export": ["export"], "kernels": ["kernels"]}[rel.parts[0]] + list(rel.parts[1:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            out.add(str(node.args[0].value))
    return out


def _library_files() -> list[Path]:
    files = [f for t in TREES for f in (REPO / t).rglob("*.py") if "__pycache__" not in f.parts]
    assert len(files) > 20, "the source trees were not found"
    return [f for f in files if CLI not in f.parents]


def test_only_the_cli_package_imports_argparse():
    offenders = sorted(str(f.relative_to(REPO)) for f in _library_files()
                       if any(m == "argparse" or m.startswith("argparse.") for m in _imports(f)))
    assert [f for f in offenders if f not in PENDING] == [], "argument parsing belongs in sdk/cli/"
    done = sorted(set(PENDING) - set(offenders))
    assert done == [], f"{done} no longer import argparse: remove them from PENDING"


def test_no_library_module_imports_the_cli():
    offenders = sorted(str(f.relative_to(REPO)) for f in _library_files()
                       if any(m == "skugen.cli" or m.startswith("skugen.cli.") for m in _imports(f)))
    assert offenders == [], "the runtime and the toolchain never import skugen.cli"


def test_the_checks_see_the_cli_package():
    """The import scan works: it finds argparse in the CLI package itself."""
    assert "argparse" in _imports(CLI / "__init__.py")
    assert "skugen.export.compress" in _imports(CLI / "toolchain.py")
