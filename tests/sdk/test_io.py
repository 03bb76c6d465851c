"""skugen.io.atomic_file: the one atomic writer (bundles' tar, checkpoints, deploy packages, every JSON)."""
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
