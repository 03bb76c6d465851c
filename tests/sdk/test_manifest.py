"""skugen.manifest: one schema, parsed once; round trip, validation, JSON Schema, schema-1 fixture."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from skugen.bundle import MANIFEST, MANIFEST_DIGEST, load_bundle
from skugen.errors import BundleError
from skugen.io import sha256_bytes
from skugen.manifest import SCHEMA_VERSION, Manifest, Variant, manifest_schema
from skugen.verify import verify_bundle
from file_modules import load_file  # tests/support

ROOT = Path(__file__).resolve().parents[2]
V1 = Path(__file__).parent / "fixtures" / "bundle_v1_generator"  # written by the exporter before skugen.manifest
SCHEMA_FILE = ROOT / "sdk" / "manifest.schema.json"


def _raw(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def _rewrite(root: Path, m: dict) -> None:
    raw = (json.dumps(m, indent=2) + "\n").encode()
    (root / MANIFEST).write_bytes(raw)
    (root / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")


# ----------------------------------------------------------------------------- the committed schema-1 bundle


def test_v1_fixture_loads_and_its_goldens_verify():
    b = load_bundle(V1)
    assert b.spec.schema_version == 1 and b.kind == "generator" and b.precisions == ["fp32", "int8"]
    assert b.spec.value_range == (-1.0, 1.0)
    assert b.spec.variant("int8", "tensorrt").file == "model.int8.trt.onnx"
    assert b.spec.variant("int8").file == b.spec.variant("int8", "onnxruntime").file == "model.int8.onnx"
    assert b.spec.variant("fp32", "tensorrt") is b.spec.models["fp32"]  # no twin: the shared file
    for p in ("fp32", "int8"):
        rep = verify_bundle(b, "onnxruntime", p)
        assert rep.passed, rep.outputs


def test_round_trip_keeps_every_key():
    raw = _raw(V1)
    m = Manifest.from_dict(raw)
    assert raw["io"]["inputs"][0].pop("range") is None  # z: an explicit null (= the default) is not written back
    assert m.to_dict() == raw
    assert Manifest.from_dict(m.to_dict()) == m


def test_unknown_keys_survive_a_round_trip():
    raw = _raw(V1)
    raw["signature"] = {"alg": "ed25519"}
    raw["io"]["inputs"][0]["layout_hint"] = "NC"
    raw["models"]["int8"]["variants"]["openvino"] = {"file": "model.int8.onnx", "sha256": "0" * 64, "cost": 1}
    d = Manifest.from_dict(raw).to_dict()
    assert d["signature"] == {"alg": "ed25519"} and d["io"]["inputs"][0]["layout_hint"] == "NC"
    assert d["models"]["int8"]["variants"]["openvino"]["cost"] == 1


def test_a_new_variant_is_one_entry():
    m = Manifest.from_dict(_raw(V1))
    ov = Variant("model.int8.ov.onnx", "1" * 64, precision="int8", use_for=("openvino",))
    i8 = m.models["int8"]
    m2 = replace(m, models={**m.models, "int8": replace(i8, variants={**i8.variants, "openvino": ov})})
    assert m2.variant("int8", "openvino") == ov and "model.int8.ov.onnx" in m2.referenced_files()
    assert Manifest.from_dict(m2.to_dict()) == m2

# ----------------------------------------------------------------------------- older manifests


def test_legacy_implicit_fields_are_migrated():
    """What the earlier readers each defaulted on their own: no value_range, a "-1,1" string, io.tile,
    no z_dim / n_classes (taken from the z / onehot shapes), no max_batch."""
    raw = _raw(V1)
    del raw["postprocess"]["value_range"]
    for k in ("z_dim", "n_classes", "max_batch"):
        del raw["io"][k]
    m = Manifest.from_dict(raw)
    assert m.value_range == (-1.0, 1.0) and m.io.z_dim == 16 and m.io.n_classes == 4 and m.io.max_batch == 64
    raw["postprocess"]["value_range"] = "0,1"
    assert Manifest.from_dict(raw).value_range == (0.0, 1.0)
    sr = {**_raw(V1), "kind": "enhancer", "postprocess": {"clamp": True}}
    sr["io"] = {"inputs": [{"name": "lr", "shape": ["batch", 3, "h", "w"]}],
                "outputs": [{"name": "hr", "shape": ["batch", 3, "2h", "2w"]}], "tile": {"size": 64, "overlap": 16}}
    m = Manifest.from_dict(sr)
    assert (m.tile_size, m.tile_overlap, m.scale, m.value_range) == (64, 16, 2, (0.0, 1.0))


def test_v1_bundle_with_legacy_manifest_still_loads(tmp_path):
    b = shutil.copytree(V1, tmp_path / "b")
    m = _raw(b)
    del m["postprocess"]["value_range"], m["io"]["z_dim"]
    _rewrite(b, m)
    assert load_bundle(b).spec.value_range == (-1.0, 1.0)
    assert verify_bundle(b, "onnxruntime", "fp32").passed


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.pop("schema_version"), r"no schema_version.*Re-export it with `skugen export`"),
    (lambda m: m.update(schema_version=0), r"schema_version 0 predates.*Re-export the bundle"),
    (lambda m: m.update(schema_version=SCHEMA_VERSION + 1), r"newer than this skugen.*Upgrade skugen"),
    (lambda m: m.pop("golden"), r"lacks 'golden'.*Re-export it"),
    (lambda m: m["models"]["fp32"].pop("sha256"), r"lacks 'models.fp32.sha256'.*re-export it"),
    (lambda m: m["models"].update(fp32=[]), r"section models.fp32 must be an object.*re-export it"),
    (lambda m: m["postprocess"].update(value_range="wide"), r"value_range 'wide' is not.*re-export it"),
    (lambda m: m.update(tile={"size": 0}), r"tile section is invalid.*re-export it"),
    (lambda m: m.update(preprocess={"std": [0, 1, 1]}), r"std > 0.*re-export it"),
])
def test_unloadable_manifests_say_to_re_export(tmp_path, edit, match):
    b = shutil.copytree(V1, tmp_path / "b")
    m = _raw(b)
    edit(m)
    _rewrite(b, m)
    with pytest.raises(BundleError, match=match):
        load_bundle(b)

# ----------------------------------------------------------------------------- JSON Schema


def test_committed_schema_is_generated_from_the_dataclasses():
    mod = load_file(ROOT / "scripts" / "manifest_schema.py", "manifest_schema_script")
    assert SCHEMA_FILE.read_text() == mod.render(), "stale: run python scripts/manifest_schema.py"
    assert json.loads(SCHEMA_FILE.read_text()) == manifest_schema()


def _validate(x, s: dict, root: dict, path: str = "$") -> list[str]:
    """The JSON Schema subset manifest_schema() emits ($ref, anyOf, enum, type, properties/required,
    additionalProperties, items/prefixItems, min/maxItems, minimum/maximum); jsonschema is not a dependency."""
    if "$ref" in s:
        s = root["$defs"][s["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in s:
        return [] if any(not _validate(x, a, root, path) for a in s["anyOf"]) else [f"{path}: matches no anyOf"]
    if "enum" in s and x not in s["enum"]:
        return [f"{path}: {x!r} not in {s['enum']}"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    t = s.get("type")
    if t in ("integer", "number"):
        if isinstance(x, bool) or not isinstance(x, int if t == "integer" else (int, float)):
            return [f"{path}: {x!r} is not {t}"]
        if x < s.get("minimum", x) or x > s.get("maximum", x):
            return [f"{path}: {x!r} out of range"]
        return []
    if t and not isinstance(x, kinds[t]):
        return [f"{path}: {x!r} is not {t}"]
    errs: list[str] = []
    if t == "object":
        errs += [f"{path}: lacks {k}" for k in s.get("required", []) if k not in x]
        for k, v in x.items():
            sub = s.get("properties", {}).get(k, s.get("additionalProperties", True))
            if sub is False:
                errs.append(f"{path}: unexpected {k}")
            elif isinstance(sub, dict):
                errs += _validate(v, sub, root, f"{path}.{k}")
    if t == "array":
        if not s.get("minItems", 0) <= len(x) <= s.get("maxItems", len(x)):
            errs.append(f"{path}: {len(x)} items")
        for i, v in enumerate(x):
            sub = (s.get("prefixItems") or [])[i:i + 1] or [s.get("items", {})]
            errs += _validate(v, sub[0], root, f"{path}[{i}]")
    return errs


def test_fixture_and_exported_manifests_validate_against_the_schema(cgan_bundle):
    schema = json.loads(SCHEMA_FILE.read_text())
    for root in (V1, cgan_bundle):
        raw = _raw(root)
        assert _validate(raw, schema, schema) == [], root
        assert _validate(Manifest.from_dict(raw).to_dict(), schema, schema) == []
    bad = _raw(V1)
    bad["models"]["fp32"]["sha256"] = 7
    del bad["golden"]["inputs"]
    assert _validate(bad, schema, schema) == ["$.models.fp32.sha256: 7 is not string", "$.golden: lacks inputs"]
