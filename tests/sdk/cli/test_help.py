"""What `--help` and the export command print (#19): defaults shown, only zoo models that exist, no Python reprs."""
from __future__ import annotations

import argparse
import re

import pytest

from skugen import cli

pytest.importorskip("torch")  # the toolchain commands (pipeline, compress, export) need the export extra


def _sub(name: str) -> argparse.ArgumentParser:
    p = cli.build_parser(only=name)
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _help(name: str, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name", ["pipeline", "compress"])
def test_every_option_with_a_default_shows_it(name, capsys):
    sp = _sub(name)
    fmt = sp._get_formatter()
    shown = [a for a in sp._actions if a.option_strings and a.help != argparse.SUPPRESS
             and not any(a.default is v for v in (None, False, argparse.SUPPRESS)) and a.dest != "help"]
    assert len(shown) >= {"pipeline": 8, "compress": 3}[name], [a.dest for a in shown]
    missing = [a.option_strings[-1] for a in shown if "default" not in fmt._expand_help(a)]
    assert not missing, f"`skugen {name} --help`: no default shown for {missing}"
    out = _help(name, capsys)
    expected = {"pipeline": ("--preset {fast,full} fast: the demo (minutes; FP32 + gated INT8 only); full: the shipped",
                             "OpenVINO INT8 IR) (default: fast)",
                             "(default: 0.25)", "(default: 0.1)", "(default: 128)", "(default: bicubic)"),
                "compress": ("(default: fast)", "(default: l1)", "(default 0.25)", "(default: 0)")}[name]
    for e in expected:
        assert e in out, f"`skugen {name} --help` lacks {e!r}"


def test_help_names_only_zoo_models_that_exist(capsys):
    from skugen.export import zoo

    names = set(zoo.names())
    assert {"fmnist-cgan", "grocery-sr2x"} <= names
    seen = {}
    for name in ("export", "pipeline", "compress", "eval", "deploy"):
        if name not in cli.COMMANDS:
            continue
        out = _help(name, capsys)
        for m in re.findall(r"\b(?:fmnist|grocery)-[a-z0-9-]*[a-z0-9]", out):
            seen.setdefault(m, name)
    assert "grocery-sr2x" in seen  # the examples do name zoo models
    assert not {n: c for n, c in seen.items() if n not in names}, f"help names zoo models that do not exist: {seen}"


def test_export_prints_no_python_reprs(sr_model_dir, tmp_path, capsys):
    """The export command's text output: lines a human reads, not a dict or list repr (the #19 complaint)."""
    rc = cli.main(["export", str(sr_model_dir), "--out", str(tmp_path / "b"), "--int8", "--no-openvino", "--no-fp16", "--calib", "16",
                   "--eval-n", "8"])
    out = capsys.readouterr().out
    assert rc == 0 and f"wrote {tmp_path / 'b'}" in out and "int8:" in out
    reprs = re.findall(r"\{'[^']*': |\[\{|\{\"|\b(?:None|True|False)\b", out)
    assert not reprs, f"export printed Python reprs {reprs}:\n{out}"
