"""The console script: every registered command has --help with examples; errors exit cleanly."""
import subprocess
import sys

import pytest

from skugen import cli, config
from skugen.errors import SkugenError


def test_top_level_help_lists_all_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, c in cli.COMMANDS.items():
        assert (name in out) != c.hidden, name


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_help_with_examples(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    assert "Example" in capsys.readouterr().out, f"`skugen {name} --help` has no examples"


def test_user_error_exits_without_traceback():
    r = subprocess.run([sys.executable, "-m", "skugen.cli", "info", "/nonexistent/bundle"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_settings_are_documented(monkeypatch):
    names = {s["name"] for s in config.settings_table()}
    assert {"SKUGEN_FMNIST_DIR", "SKUGEN_GROCERY_DIR", "SKUGEN_CACHE_DIR"} <= names
    assert all(s["doc"] for s in config.settings_table())
    monkeypatch.setenv("SKUGEN_NUM_THREADS", "3")
    assert config.get_int("SKUGEN_NUM_THREADS") == 3


def test_error_tree():
    from skugen import errors
    for cls in (errors.InputError, errors.DataError, errors.BundleError, errors.IntegrityError,
                errors.BackendUnavailable, errors.EngineMismatch, errors.ModelError, errors.BudgetError):
        assert issubclass(cls, SkugenError)
    assert issubclass(errors.IntegrityError, errors.BundleError)
    e = errors.need_extra("TensorRT", "tensorrt")
    assert "pip install 'skugen[tensorrt]'" in str(e)


def test_hidden_kernels_command_parses_but_is_not_listed(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and "kernels" not in capsys.readouterr().out
    hidden = [name for name, c in cli.COMMANDS.items() if c.hidden]
    assert hidden == ["kernels"]
    for name in hidden:
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        assert e.value.code == 0 and "Example" in capsys.readouterr().out


def test_missing_toolchain_names_the_extra(monkeypatch, capsys):
    """A runtime-only install: the toolchain does not import, so the command says which extra to install."""
    monkeypatch.setitem(sys.modules, "skugen.export.compress", None)  # import fails as without torch
    rc = cli.main(["compress", "fmnist-cgan", "--target-macs", "0.25", "--out", "runs/never"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "skugen compress: error:" in err and "pip install 'skugen[export]'" in err


def test_help_shows_defaults_where_asked(capsys):
    for name, flag in (("compress", "--preset"), ("pipeline", "--iters")):
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "(default: " in out, f"`skugen {name} --help` shows no defaults"
    assert "(default: fast)" in out and "(default: 30)" in out
