"""Bad command lines get a clear error and exit code, never a traceback, a silent success or half-written outputs.

Each case comes from a CLI audit that found it crashing, passing silently or writing part of its outputs.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from skugen import cli
from skugen.errors import InputError


def _usage_error(argv, capsys) -> str:
    """argparse refuses the value: exit 2 before anything runs; returns stderr."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [
    (["kernels", "emulate", "--cases", "-1"], "--cases: must be an integer >= 1, got -1"),
    (["train", "fmnist-cgan", "--steps", "0"], "--steps: must be an integer >= 1, got 0"),
    (["train", "fmnist-cgan", "--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
    (["train", "fmnist-cgan", "--threads", "0"], "--threads: must be an integer >= 1, got 0"),  # was: all cores
    (["generate", "b", "--out", "g.png", "--threads", "-2"], "--threads: must be an integer >= 1, got -2"),
    (["distill", "--teacher", "t", "--student", "s", "--out", "o", "--w-pixel", "nan"],
     "--w-pixel: must be a finite number >= 0, got nan"),
    (["distill", "--teacher", "t", "--student", "s", "--out", "o", "--ckpt-every", "0"], "--ckpt-every: must be"),
    (["distill", "--teacher", "t", "--student", "s", "--out", "o", "--lr", "-1"], "--lr: must be a finite number > 0"),
    (["export", "m", "--out", "o", "--min-psnr-db", "nan"], "--min-psnr-db: must be a finite number, got nan"),
    (["export", "m", "--out", "o", "--max-float-fraction", "-1"], "must be a finite number >= 0 and <= 1"),
    (["export", "m", "--out", "o", "--calib", "0"], "--calib: must be an integer >= 1"),
    (["compress", "m", "--w-adv", "inf"], "--w-adv: must be a finite number >= 0, got inf"),
    (["pipeline", "--model", "m", "--out", "o", "--batch", "a"], "--batch: must be an integer >= 1, got 'a'"),
    (["pipeline", "--model", "m", "--out", "o", "--batch", "1,0"], "--batch: must be an integer >= 1, got 0"),
    (["tune", "b", "--budget", "nan"], "--budget: must be a finite number > 0, got nan"),
    (["bench", "b", "--max-slowdown", "nan"], "--max-slowdown: must be a finite number >= 1"),
    (["bench", "b", "--quality-n", "0"], "--quality-n: must be an integer >= 1"),
    (["generate", "b", "--out", "g.png", "--cols", "0"], "--cols: must be an integer >= 1"),
    (["engines", "mark-verified", "b", "--precision", "fp8"], "invalid choice: 'fp8'"),
])
def test_numbers_and_choices_are_checked_before_anything_runs(argv, msg, capsys):
    assert msg in _usage_error(argv, capsys)


def test_api_configs_refuse_nan():
    """The same values through the Python API: NaN passes every comparison, so it must be refused, not compared."""
    from skugen.bench import BenchConfig, GateConfig
    from skugen.export.distill import DistillConfig, resolve_config

    with pytest.raises(InputError, match="--max-slowdown must be a finite number >= 1"):
        GateConfig(max_slowdown=math.nan)
    with pytest.raises(InputError, match="--duration must be a finite number of seconds > 0"):
        BenchConfig(bundles=("b",), duration_s=math.nan).check()
    with pytest.raises(InputError, match="--quality-n must be >= 1"):
        BenchConfig(bundles=("b",), quality_n=0).check()
    with pytest.raises(InputError, match="w_percep must be a finite number >= 0"):
        resolve_config(DistillConfig(w_percep=math.nan), "cgan")
    with pytest.raises(InputError, match="ckpt_every must be >= 1"):
        resolve_config(DistillConfig(ckpt_every=0), "cgan")


def test_a_negative_class_index_is_out_of_range(cgan_bundle, tmp_path, capsys):
    """'-1' once became class 1 (the '-' was dropped as in 't-shirt')."""
    assert cli.main(["generate", str(cgan_bundle), "--class", "-1", "--out", str(tmp_path / "g.png")]) == 2
    assert "label -1 is out of range" in capsys.readouterr().err and not (tmp_path / "g.png").exists()


def test_generate_checks_every_output_path_before_writing_one(cgan_bundle, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for extra, msg in ((["--report", str(tmp_path / "file" / "r.json")], "is a file, not a directory"),
                       (["--out-dir", str(tmp_path / "file")], "--out-dir"),
                       (["--report", str(tmp_path)], "is a directory; pass a file path")):
        rc = cli.main(["generate", str(cgan_bundle), "--class", "bag", "--n", "2", "--out", str(tmp_path / "g.png"),
                       *extra])
        assert rc == 2 and msg in capsys.readouterr().err, extra
        assert not (tmp_path / "g.png").exists(), "the grid was written before the bad path failed"


def test_enhance_reads_every_input_before_writing_and_never_overwrites_its_own_output(sr_bundle, tmp_path, capsys):
    from PIL import Image

    ok = tmp_path / "ok.png"
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(ok)
    (tmp_path / "notanimage.png").write_text("hello")
    out = tmp_path / "out"
    assert cli.main(["enhance", str(sr_bundle), str(ok), str(tmp_path / "notanimage.png"), "--out-dir", str(out),
                     "--no-progress"]) == 2
    assert "not an image Pillow can read" in capsys.readouterr().err and not out.exists()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok.png").write_bytes(ok.read_bytes())
    assert cli.main(["enhance", str(sr_bundle), str(ok), str(tmp_path / "a" / "ok.png"), "--out-dir", str(out),
                     "--no-progress"]) == 2
    assert "would both be written as ok_xN.png" in capsys.readouterr().err and not out.exists()


def test_a_broken_tar_is_a_bundle_error_naming_the_tar(cgan_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    good = tmp_path / "b.tar"
    with tarfile.open(good, "w") as tf:
        tf.add(cgan_bundle, arcname="cgan")
    half = tmp_path / "half.tar"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    assert cli.main(["info", str(half)]) != 0
    assert "half.tar is not a readable tar" in capsys.readouterr().err
    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()
    assert cli.main(["info", str(empty)]) != 0
    assert "empty.tar holds no manifest.json" in capsys.readouterr().err
    assert not any((tmp_path / "cache" / "bundles").iterdir()), "a failed extraction left a cache entry"
    assert cli.main(["info", str(good)]) == 0


def test_a_baseline_that_is_not_a_bench_report_is_refused(tmp_path, capsys):
    from skugen.bench.report import load_report_json

    (tmp_path / "e.json").write_text("{}")
    (tmp_path / "l.json").write_text("[1, 2]")
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(InputError, match="holds a JSON list"):
        load_report_json(tmp_path / "l.json")
    with pytest.raises(InputError, match="is not valid JSON"):
        load_report_json(tmp_path / "p.png")
    fake_run = {"schema_version": 1, "kind": "bench", "cells": [], "config": {}, "ceilings": {}, "environment": {},
                "command": "skugen bench (test)"}
    (tmp_path / "r.json").write_text(json.dumps(fake_run))
    assert cli.main(["bench", "--from-report", str(tmp_path / "r.json"), "--baseline", str(tmp_path / "e.json")]) == 2
    assert "not a `skugen bench` report" in capsys.readouterr().err


def test_pipeline_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "keep.py").write_text("x = 1\n")
    assert cli.main(["pipeline", "--model", "fmnist-cgan", "--out", str(proj)]) == 2
    assert "not a pipeline run (no pipeline_state.json)" in capsys.readouterr().err
    assert sorted(p.name for p in proj.iterdir()) == ["keep.py"]
    (proj / ".started").mkdir()  # a run killed in its first stage (no state file yet) resumes: the check lets it by
    assert cli.main(["pipeline", "--model", "no-such-model", "--out", str(proj)]) == 2
    assert "not a pipeline run" not in capsys.readouterr().err


def test_an_os_error_is_one_line_not_a_traceback(tmp_path, capsys):
    """A path the OS refuses late (here an output under /dev/null) is reported with the path and exit 2."""
    (tmp_path / "r.json").write_text(json.dumps({"schema_version": 1, "kind": "bench", "cells": [], "config": {},
                                                 "ceilings": {}, "environment": {}, "command": "skugen bench"}))
    rc = cli.main(["bench", "--from-report", str(tmp_path / "r.json"), "--md", "/dev/null/x.md"])
    err = capsys.readouterr().err
    assert rc == 2 and "/dev/null" in err and "Check the path" in err and "Traceback" not in err


def test_a_bad_setting_names_the_variable(monkeypatch):
    from skugen import config

    monkeypatch.setenv("SKUGEN_NUM_THREADS", "abc")
    with pytest.raises(InputError, match="SKUGEN_NUM_THREADS='abc' is not an integer"):
        config.get_int("SKUGEN_NUM_THREADS")


def test_grid_columns_must_be_positive():
    from skugen.prepost import make_grid

    with pytest.raises(InputError, match="cols must be an integer >= 1"):
        make_grid([np.zeros((4, 4, 1), np.uint8)] * 3, cols=-2)


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`skugen env | head -c 20`: the reader leaves early; no BrokenPipeError traceback."""
    code = "import sys; from skugen import cli; sys.exit(cli.main(['env']))"
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -c 20", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert len(p.stdout) == 20 and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_an_io_spec_that_is_not_text_is_refused(tmp_path):
    from skugen.export import custom

    (tmp_path / "spec.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(InputError, match="is not valid JSON"):
        custom.load_io_spec(tmp_path / "spec.json")
