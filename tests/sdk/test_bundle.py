"""Bundle integrity on real fixture bundles: round trip, tamper detection, schema, .tar form."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from skugen.bundle import MANIFEST, MANIFEST_DIGEST, load_bundle, to_tar
from skugen.errors import BundleError, IntegrityError
from skugen.io import sha256_bytes


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _flip_byte(path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * where), len(data) - 1)
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip(cgan_bundle):
    b = load_bundle(cgan_bundle)
    assert b.kind == "generator" and b.precisions == ["fp32", "int8"]
    assert b.model_path("int8").is_file() and b.model_sha256("fp32") == b.spec.to_dict()["models"]["fp32"]["sha256"]
    gi, go = b.golden()
    assert set(gi) == {"z", "onehot"} and go["image"].shape == (10, 1, 32, 32)
    assert b.report("quality")["golden_vs_reference"]["fp32"]["pass"] is True
    assert b.class_names[7] == "sneaker"


def test_every_file_is_tamper_evident(cgan_bundle, tmp_path):
    manifest = load_bundle(cgan_bundle).spec.to_dict()
    targets = sorted(manifest["files"]) + [MANIFEST, MANIFEST_DIGEST]
    assert len(targets) >= 12
    for rel in targets:
        root = _copy(cgan_bundle, tmp_path / rel.replace("/", "_"))
        _flip_byte(root / rel)
        with pytest.raises(BundleError) as e:  # IntegrityError is a BundleError
            load_bundle(root)
        assert isinstance(e.value, IntegrityError), (rel, e.value)
        assert "Re-" in str(e.value)  # every message says what to do
        shutil.rmtree(root)


def test_missing_file_is_an_integrity_error(cgan_bundle, tmp_path):
    root = _copy(cgan_bundle, tmp_path / "b")
    (root / "model.int8.onnx").unlink()
    with pytest.raises(IntegrityError, match="model.int8.onnx is missing"):
        load_bundle(root)


def test_newer_schema_is_refused(cgan_bundle, tmp_path):
    from skugen.manifest import SCHEMA_VERSION

    root = _copy(cgan_bundle, tmp_path / "b")
    m = json.loads((root / MANIFEST).read_text())
    assert m["schema_version"] == 1  # one-graph bundles stay readable by every skugen
    m["schema_version"] = SCHEMA_VERSION + 1
    raw = (json.dumps(m, indent=2) + "\n").encode()
    (root / MANIFEST).write_bytes(raw)
    (root / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")  # digest valid: only the schema is wrong
    with pytest.raises(BundleError, match=f"schema_version {SCHEMA_VERSION + 1} is newer.*Upgrade skugen"):
        load_bundle(root)


def test_missing_bundle_has_a_hint(tmp_path):
    with pytest.raises(BundleError, match="does not exist.*skugen export"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not a skugen bundle"):
        load_bundle(tmp_path / "empty")


def test_tar_round_trip(cgan_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    tar = to_tar(cgan_bundle, tmp_path / "cgan.tar")
    a, b = load_bundle(cgan_bundle), load_bundle(tar)
    assert b.spec.to_dict() == a.spec.to_dict() and b.manifest_sha256 == a.manifest_sha256
    for k, v in a.golden()[1].items():
        np.testing.assert_array_equal(b.golden()[1][k], v)
    assert b.model_path("int8").read_bytes() == a.model_path("int8").read_bytes()


def test_corrupted_tar_is_refused(cgan_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    tar = to_tar(cgan_bundle, tmp_path / "cgan.tar")
    # flip a byte inside the ONNX payload of the archive (member data, not the tar header)
    data = bytearray(tar.read_bytes())
    onnx_bytes = load_bundle(cgan_bundle).model_path("fp32").read_bytes()
    i = bytes(data).find(onnx_bytes[1000:1064])
    assert i > 0
    data[i] ^= 0x01
    tar.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.fp32.onnx fails its sha256"):
        load_bundle(tar)


def test_writing_a_bundle_never_replaces_a_directory_that_is_not_one(cgan_bundle, tmp_path):
    from skugen.bundle import check_bundle_dest, write_bundle
    from skugen.errors import InputError

    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "thesis.tex").write_text("years of work")
    manifest = load_bundle(cgan_bundle).spec.to_dict()
    with pytest.raises(InputError, match="not a skugen bundle"):
        write_bundle(project, manifest, {"x.bin": b"1"})
    assert (project / "thesis.tex").read_text() == "years of work" and (project / "sub").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="a file"):
        write_bundle(tmp_path / "file", manifest, {"x.bin": b"1"})
    # an existing bundle, an empty directory and a new path are all fine
    old = _copy(cgan_bundle, tmp_path / "old")
    (tmp_path / "empty").mkdir()
    for out in (old, tmp_path / "empty", tmp_path / "new"):
        assert check_bundle_dest(out) == out
