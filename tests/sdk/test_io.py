"""skugen.io.atomic_file: the one atomic writer (bundles' tar, checkpoints, deploy packages, every JSON);
atomic_dir (bundles, Triton repositories) and read_jsonl (append-only training logs)."""
from __future__ import annotations

import os
import stat

import pytest

from skugen import io as skio


def test_publishes_fsynced_file_with_usual_mode(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(skio.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    with skio.atomic_file(tmp_path / "sub" / "a.bin") as af:
        af.tmp.write_bytes(b"payload")
        assert not (tmp_path / "sub" / "a.bin").exists()  # nothing under the final name before the end
    assert af.path.read_bytes() == b"payload"
    assert len(synced) >= 2  # the file, then its directory
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(af.path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in af.path.parent.iterdir()] == ["a.bin"]  # no temp file left


def test_error_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with skio.atomic_file(p) as af:
            af.tmp.write_text("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_exclusive_never_overwrites(tmp_path):
    paths = [skio.atomic_write_bytes(tmp_path / "img.png", bytes([i]), exclusive=True) for i in range(3)]
    assert [p.name for p in paths] == ["img.png", "img-1.png", "img-2.png"]
    assert [p.read_bytes() for p in paths] == [b"\x00", b"\x01", b"\x02"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["img-1.png", "img-2.png", "img.png"]


def test_atomic_dir_fsyncs_what_it_publishes_before_the_rename(tmp_path, monkeypatch):
    """Files a block writes with plain write_bytes are on disk before the directory gets its final name."""
    final = tmp_path / "bundle"
    synced: list[tuple[str, bool]] = []  # (path fsynced, was the directory published already)
    real = os.fsync

    def record(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), final.exists()))
        return real(fd)

    monkeypatch.setattr(skio.os, "fsync", record)
    with skio.atomic_dir(final) as d:
        (d / "model.onnx").write_bytes(b"graph")
        (d / "reports").mkdir()
        (d / "reports" / "parity.json").write_text("{}")
    monkeypatch.undo()
    before = {os.path.basename(p) for p, published in synced if not published}
    assert {"model.onnx", "parity.json", "reports"} <= before
    assert synced[-1] == (str(tmp_path), True)  # then the rename itself
    assert (final / "reports" / "parity.json").read_text() == "{}"


def test_read_jsonl_drops_a_torn_last_line_and_refuses_a_damaged_one(tmp_path):
    from skugen.errors import DataError

    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # killed mid-append
    assert skio.read_jsonl(log) == [{"step": 1}, {"step": 2}]
    log.write_text('{"step": 1}\n{"step": 2}\n')
    assert skio.read_jsonl(log) == [{"step": 1}, {"step": 2}]
    log.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        skio.read_jsonl(log)


def test_jsonable_converts_numpy_paths_dataclasses_and_applies_the_nan_policy():
    import dataclasses
    import json
    from collections import deque
    from pathlib import Path

    import numpy as np

    @dataclasses.dataclass
    class D:
        a: tuple
        p: Path

    o = {"f32": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True), "arr": np.arange(3, dtype=np.uint8),
         "inf": float("inf"), "nan": np.float64("nan"), "dc": D((1, 2), Path("x/y")), 7: deque([1.5]),
         "obj": object.__new__(type("Odd", (), {"__str__": lambda s: "odd"}))}
    strict = skio.jsonable(o)
    assert strict == {"f32": 0.5, "i": 3, "b": True, "arr": [0, 1, 2], "inf": None, "nan": None,
                      "dc": {"a": [1, 2], "p": "x/y"}, "7": [1.5], "obj": "odd"}
    assert all(type(v) in (float, int, bool) for v in (strict["f32"], strict["i"], strict["b"]))
    json.dumps(strict, allow_nan=False)  # strict JSON
    kept = skio.jsonable(o, finite=False)
    assert kept["inf"] == float("inf") and kept["nan"] != kept["nan"]
    # bundle reports keep writing Infinity, byte for byte as before (committed fixture files do)
    assert skio.json_text({"psnr": float("inf"), "t": (1, 2)}) == '{\n  "psnr": Infinity,\n  "t": [\n    1,\n    2\n  ]\n}\n'


def test_progress_is_silent_without_tqdm_or_when_hidden(monkeypatch, capsys):
    import sys

    from skugen.progress import progress, quiet_stdout

    monkeypatch.setenv("SKUGEN_NO_PROGRESS", "0")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import fails: no bar, no error
    with progress(5, desc="x") as bar:
        bar.update(2, label="two")
        bar.set_postfix(loss="1", refresh=False)
    assert bar.bar is None
    monkeypatch.delitem(sys.modules, "tqdm")
    pytest.importorskip("tqdm")
    shown = progress(5)
    assert shown.bar is not None
    shown.close()
    monkeypatch.setenv("SKUGEN_NO_PROGRESS", "1")
    assert progress(5).bar is None
    with quiet_stdout():
        print("nncf bar")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("SKUGEN_NO_PROGRESS", "0")
    capsys.readouterr()
    with quiet_stdout():
        print("nncf bar")
    cap = capsys.readouterr()
    assert cap.out == "" and "nncf bar" in cap.err
