"""The README's examples as a new user runs them.

Every ```python block runs as written, in a fresh working directory where `runs/bundle` is a
fixture generator bundle and `runs/diffusion-bundle` a fixture diffusion bundle (the README's example paths). Every `skugen SUBCMD` named in a ```bash
block must be a real sub-command: `skugen SUBCMD --help` exits 0 (the commands themselves are
not run: they train, download or need a GPU).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}[ \t]*\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def _subcommands() -> list[str]:
    """First word after `skugen` (or `-m skugen.cli`) on each command line of the bash blocks."""
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^(?:\$\s+)?skugen\s+([a-z][\w-]*)", line) or re.search(r"-m\s+skugen\.cli\s+([a-z][\w-]*)", line)
            if m and m.group(1) not in cmds:
                cmds.append(m.group(1))
    return cmds


PY_BLOCKS = _blocks("python")
SUBCOMMANDS = _subcommands()


def test_readme_has_examples():
    # guards the extraction itself: a changed fence style must not turn the tests below into no-ops
    assert PY_BLOCKS, "no ```python block found in README.md"
    assert len(SUBCOMMANDS) >= 10, SUBCOMMANDS


@pytest.mark.parametrize("i", range(len(PY_BLOCKS)))
def test_python_block_runs(i, cgan_bundle, diffusion_bundle, tmp_path):
    shutil.copytree(cgan_bundle, tmp_path / "runs" / "bundle")
    shutil.copytree(diffusion_bundle, tmp_path / "runs" / "diffusion-bundle")
    script = tmp_path / f"readme_block_{i}.py"
    script.write_text(PY_BLOCKS[i], encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"README python block {i} failed:\n{PY_BLOCKS[i]}\n{r.stderr[-3000:]}"


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_bash_block_subcommand_exists(cmd, capsys):
    from skugen import cli

    with pytest.raises(SystemExit) as ei:
        cli.main([cmd, "--help"])
    assert ei.value.code == 0, f"`skugen {cmd} --help` exited {ei.value.code}: {capsys.readouterr().err[-500:]}"
    assert cmd in capsys.readouterr().out
