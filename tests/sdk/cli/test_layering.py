"""The CLI is one package: only sdk/cli/ parses arguments, and no library module imports the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TREES = ("sdk", "export", "kernels")
CLI = REPO / "sdk" / "cli"


def _imports(path: Path, module_level_only: bool = False) -> set[str]:
    """Absolute module names imported by `path` (relative imports resolved against the skugen tree)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO)
    pkg = ["skugen"] + {"sdk": [], "export": ["export"], "kernels": ["kernels"]}[rel.parts[0]] + list(rel.parts[1:-1])
    out = set()
    for node in (_module_level(tree) if module_level_only else ast.walk(tree)):
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


def _module_level(tree: ast.Module):
    """Nodes that run at import time: everything outside function bodies (classes, if/try blocks included)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _library_files() -> list[Path]:
    files = [f for t in TREES for f in (REPO / t).rglob("*.py") if "__pycache__" not in f.parts]
    assert len(files) > 20, "the source trees were not found"
    return [f for f in files if CLI not in f.parents]


def test_only_the_cli_package_imports_argparse():
    offenders = sorted(str(f.relative_to(REPO)) for f in _library_files()
                       if any(m == "argparse" or m.startswith("argparse.") for m in _imports(f)))
    assert offenders == [], "argument parsing belongs in sdk/cli/"


def test_no_library_module_imports_the_cli():
    offenders = sorted(str(f.relative_to(REPO)) for f in _library_files()
                       if any(m == "skugen.cli" or m.startswith("skugen.cli.") for m in _imports(f)))
    assert offenders == [], "the runtime and the toolchain never import skugen.cli"


def test_the_checks_see_the_cli_package():
    """The import scan works: it finds argparse in the CLI package itself."""
    assert "argparse" in _imports(CLI / "__init__.py")
    assert "skugen.export.compress" in _imports(CLI / "toolchain.py")


def test_the_runtime_imports_the_toolchain_only_lazily():
    """sdk/ and kernels/ (the CLI aside) never import skugen.export at module level (DESIGN: layers point down)."""
    runtime = [f for f in _library_files() if f.relative_to(REPO).parts[0] in ("sdk", "kernels")]
    offenders = sorted(str(f.relative_to(REPO)) for f in runtime
                       if any(m == "skugen.export" or m.startswith("skugen.export.")
                              for m in _imports(f, module_level_only=True)))
    assert offenders == [], "import the toolchain inside the function that needs it (and name the extra)"
    # the scan is not vacuous: a lazy import is seen by the full scan but not by the module-level one
    torch_backend = REPO / "sdk" / "backends" / "torch.py"
    assert any(m.startswith("skugen.export") for m in _imports(torch_backend))
    assert not any(m.startswith("skugen.export") for m in _imports(torch_backend, module_level_only=True))
