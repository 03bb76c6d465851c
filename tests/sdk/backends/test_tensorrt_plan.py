"""CPU tests for the TensorRT backend: build planning, engine identity, sidecar, mismatch
detection, inspector parsing, strongly typed builds, and the no-TensorRT error path.

Nothing here needs TensorRT, pycuda or a GPU (the GPU half is test_tensorrt_gpu.py).

What these tests CAN catch: mistakes in skugen's own logic around TensorRT - build plans and
optimisation profiles, engine keys and sidecars, EngineMismatch decisions, inspector-JSON parsing,
error messages, and (with the fake TensorRT at the bottom) the control flow of engine_from_onnx /
TensorRTRunner: strongly typed network creation (10.x with STRONGLY_TYPED, 11.x without precision
flags), caching, rebuilds, buffer sizing, chunking, context push/pop.

What they CANNOT catch: anything about the real TensorRT/pycuda beyond names. The fake models two
API generations: 10.x (BuilderFlag.FP16/INT8 exist, NetworkDefinitionCreationFlag.STRONGLY_TYPED
exists) and 11.x (no FP16/INT8 flags, no calibrator class; any set_flag(FP16/INT8) or
int8_calibrator use raises). That a name exists in the real bindings is test_tensorrt_api.py's job
(against the committed dir() surfaces). Wrong argument types, a real ONNX parse failure, numerics,
the precision TensorRT actually picks per layer, memory/stream semantics and speed all pass here
unnoticed: test_tensorrt_gpu.py, on a machine with TensorRT and a GPU.
"""
from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from skugen import cli
from skugen.backends.tensorrt import plan as tp
from skugen.backends import tensorrt as trt_backend
from skugen.backends.tensorrt import build as trt_build
from skugen.backends.tensorrt import cuda as trt_cuda
from skugen.backends.tensorrt import store
from skugen.backends.tensorrt import BuildConfig
from skugen.bundle import load_bundle, npz_bytes, write_bundle
from skugen.errors import BackendUnavailable, BundleError, EngineMismatch, InputError
from skugen.io import atomic_write_json
from skugen.manifest import Manifest, TensorSpec

SHA_FP32 = hashlib.sha256(b"fp32").hexdigest()
SHA_INT8 = hashlib.sha256(b"int8").hexdigest()
SHA_FP16 = hashlib.sha256(b"fp16").hexdigest()
SHA_TRT8 = hashlib.sha256(b"int8-trt").hexdigest()

# A generator bundle's manifest as the exporter writes it: dynamic batch only.
CGAN = {
    "schema_version": 1, "name": "fmnist-cgan-student", "kind": "generator",
    "io": {
        "inputs": [{"name": "z", "dtype": "float32", "shape": ["batch", 128]},
                   {"name": "onehot", "dtype": "float32", "shape": ["batch", 10]}],
        "outputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 32, 32]}],
        "class_names": ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                        "boot"],
    },
    "models": {"fp32": {"file": "model.fp32.onnx", "sha256": SHA_FP32, "bytes": 4},
               "fp16": {"file": "model.fp16.onnx", "sha256": SHA_FP16, "bytes": 4},
               "int8": {"file": "model.int8.onnx", "sha256": SHA_INT8, "bytes": 4,
                        "variants": {"tensorrt": {"file": "model.int8.trt.onnx", "sha256": SHA_TRT8, "bytes": 4}}}},
    "golden": {"inputs": "golden/inputs.npz", "outputs": "golden/outputs.npz"},
    "files": {},
}

# An enhancer: dynamic batch AND spatial axes, tiled inference; no Q/DQ model, no FP16 model (an old export).
SR = {
    "schema_version": 1, "name": "grocery-sr-x2", "kind": "enhancer",
    "io": {
        "inputs": [{"name": "lr", "dtype": "float32", "shape": ["batch", 3, "h", "w"], "range": [0, 1]}],
        "outputs": [{"name": "sr", "dtype": "float32", "shape": ["batch", 3, "2h", "2w"], "range": [0, 1]}],
        "scale": 2, "max_batch": 64,
    },
    "tile": {"size": 64, "overlap": 8, "units": "LR pixels"},
    "models": {"fp32": {"file": "model.fp32.onnx", "sha256": SHA_FP32, "bytes": 4}},
    "golden": {"inputs": "golden/inputs.npz", "outputs": "golden/outputs.npz"},
    "files": {},
}

H200 = {"index": 0, "name": "NVIDIA H200", "compute_capability": "9.0", "total_memory_bytes": 150_000_000_000}
ORIN = {"index": 0, "name": "Orin (nvgpu)", "compute_capability": "8.7", "total_memory_bytes": 64_000_000_000}


def M(d: dict) -> Manifest:
    return Manifest.from_dict(d, "test manifest")


def prof(plan: tp.BuildPlan) -> dict:
    return {p.name: (p.min, p.opt, p.max) for p in plan.profile}

# ----------------------------------------------------------------------------- plan


def test_fp16_plan_parses_the_fp16_graph():
    plan = tp.make_build_plan(M(CGAN), "fp16")
    assert plan.source_model == "fp16" and plan.source_file == "model.fp16.onnx"
    assert plan.onnx_sha256 == SHA_FP16
    assert plan.quantization == tp.QUANT_NONE
    assert not hasattr(plan, "flags")  # strongly typed: no precision builder flags at all
    assert plan.workspace_bytes == 1024 * 2**20
    assert prof(plan) == {"z": ((1, 128), (8, 128), (32, 128)), "onehot": ((1, 10), (8, 10), (32, 10))}
    assert plan.outputs == ("image",)
    assert json.dumps(plan.to_dict()) and plan.to_dict()["typing"] == "strong"  # serialisable, goes into engine.json


def test_fp32_plan_parses_the_fp32_graph():
    plan = tp.make_build_plan(M(SR), "fp32")
    assert (plan.source_model, plan.source_file, plan.onnx_sha256) == ("fp32", "model.fp32.onnx", SHA_FP32)


def test_int8_plan_uses_the_tensorrt_qdq_twin():
    plan = tp.make_build_plan(M(CGAN), "INT8", BuildConfig(min_batch=2, opt_batch=4, max_batch=16, workspace_mb=256))
    assert (plan.precision, plan.source_model, plan.onnx_sha256) == ("int8", "int8", SHA_TRT8)
    assert plan.source_file == "model.int8.trt.onnx" and plan.quantization == tp.QUANT_QDQ
    assert plan.workspace_bytes == 256 * 2**20
    assert prof(plan)["z"] == ((2, 128), (4, 128), (16, 128))
    assert tp.engine_source_sha256(M(CGAN), "int8") == SHA_TRT8  # what export-triton compares with


def test_missing_graphs_are_bundle_errors_that_say_how_to_reexport():
    with pytest.raises(BundleError, match=r"no INT8 \(Q/DQ\) model.*skugen export STUDENT --int8"):
        tp.make_build_plan(M(SR), "int8")  # no calibration fallback any more
    with pytest.raises(BundleError, match="no FP16 model.*current skugen"):
        tp.make_build_plan(M(SR), "fp16")
    no_twin = copy.deepcopy(CGAN)
    del no_twin["models"]["int8"]["variants"]
    with pytest.raises(BundleError, match="no TensorRT twin.*--int8"):
        tp.make_build_plan(M(no_twin), "int8")
    no_fp32 = copy.deepcopy(CGAN)
    del no_fp32["models"]["fp32"]
    with pytest.raises(BundleError, match="no fp32 ONNX model"):
        tp.make_build_plan(M(no_fp32), "fp32")
    assert tp.source_model(M(no_fp32), "int8") == ("int8", tp.QUANT_QDQ)
    assert tp.engine_source_sha256(M(SR), "int8") is None and tp.engine_source_sha256(M(SR), "fp16") is None


@pytest.mark.parametrize("bad", ["bf16", "", "int4", "fp8"])
def test_unsupported_precision(bad):
    with pytest.raises(InputError, match="fp32, fp16, int8"):
        tp.make_build_plan(M(CGAN), bad)


@pytest.mark.parametrize("version,flags", [("10.3.0", ("STRONGLY_TYPED",)), ("10.16.1.11", ("STRONGLY_TYPED",)),
                                           ("11.4.0.106", ()), ("11.0", ())])
def test_network_creation_flags_by_version(version, flags):
    assert tp.network_creation_flags(version) == flags


@pytest.mark.parametrize("version,ok", [("10.3.0", True), ("10.3.0.30", True), ("10.16.1.11", True), ("11.4.0.106", True),
                                        ("10.2.0", False), ("8.6.1", False), ("12.0.0", False), ("garbage", False)])
def test_version_range(version, ok):
    assert tp.version_in_range(version) is ok
    why = tp.version_problem(version)
    assert (why is None) is ok
    if why:
        assert "10.3 <= version < 12" in why and why.endswith("pip install 'skugen[tensorrt]'")


def test_enhancer_profile_from_tile():
    plan = tp.make_build_plan(M(SR), "fp32")
    # skugen.tiling feeds tiles of exactly tile.size (overlap included), or one smaller tile for a small photo
    assert prof(plan) == {"lr": ((1, 3, 8, 8), (8, 3, 64, 64), (32, 3, 64, 64))}


def test_enhancer_profile_overrides():
    plan = tp.make_build_plan(M(SR), "fp32", BuildConfig(min_hw=32, opt_hw=96, max_hw=128, opt_batch=2, max_batch=4))
    assert prof(plan)["lr"] == ((1, 3, 32, 32), (2, 3, 96, 96), (4, 3, 128, 128))
    with pytest.raises(InputError, match="spatial range"):
        tp.make_build_plan(M(SR), "fp32", BuildConfig(min_hw=100))  # min above the tile size


def test_enhancer_without_tile_needs_explicit_range():
    no_tile = {k: v for k, v in SR.items() if k != "tile"}
    with pytest.raises(InputError, match="--opt-hw"):
        tp.make_build_plan(M(no_tile), "fp32")
    plan = tp.make_build_plan(M(no_tile), "fp32", BuildConfig(opt_hw=48))
    assert prof(plan)["lr"] == ((1, 3, 8, 8), (8, 3, 48, 48), (32, 3, 48, 48))


@pytest.mark.parametrize("dims", [[None, 3, None, None], [-1, 3, -1, -1], ["N", 3, "H", "W"],
                                  ["batch", 3, "height", "width"], ["batch", 3, "in_height", "in_width"]])
def test_dynamic_axis_spellings(dims):
    m = copy.deepcopy(SR)
    m["io"]["inputs"][0]["shape"] = dims
    assert prof(tp.make_build_plan(M(m), "fp32"))["lr"] == ((1, 3, 8, 8), (8, 3, 64, 64), (32, 3, 64, 64))


def _with_inputs(d: dict, *inputs: dict) -> Manifest:
    """A parsed manifest with other inputs: the planner is generic over them (the kind checks are the parser's)."""
    m = M(d)
    return replace(m, io=replace(m.io, inputs=tuple(TensorSpec.from_dict(t) for t in inputs)))


def test_static_model_needs_no_dynamic_ranges():
    m = _with_inputs(CGAN, {"name": "z", "dtype": "float32", "shape": [4, 128]})
    assert prof(tp.make_build_plan(m, "fp32"))["z"] == ((4, 128),) * 3


def test_unknown_dynamic_axis_needs_explicit_shapes():
    m = _with_inputs(CGAN, {"name": "tokens", "dtype": "int64", "shape": ["batch", "seq"]})
    with pytest.raises(InputError, match=r"BuildConfig.shapes\['tokens'\]"):
        tp.make_build_plan(m, "fp32")
    cfg = BuildConfig(shapes={"tokens": ((1, 4), (8, 16), (32, 64))})
    plan = tp.make_build_plan(m, "fp32", cfg)
    assert prof(plan)["tokens"] == ((1, 4), (8, 16), (32, 64))
    assert plan.profile[0].dtype == "int64"


@pytest.mark.parametrize("shapes,match", [
    ({"nope": ((1, 1), (1, 1), (1, 1))}, "not inputs of this bundle"),
    ({"z": ((1,), (8,), (32,))}, "rank 2"),
    ({"z": ((1, 128), (8, 128), (4, 128))}, "min <= opt <= max"),
    ({"z": ((1, 64), (8, 64), (32, 64))}, "fixed at 128"),
])
def test_explicit_shapes_are_validated(shapes, match):
    with pytest.raises(InputError, match=match):
        tp.make_build_plan(M(CGAN), "fp16", BuildConfig(shapes=shapes))


@pytest.mark.parametrize("kw", [dict(min_batch=0), dict(min_batch=4, opt_batch=2), dict(opt_batch=64, max_batch=32),
                                dict(workspace_mb=0), dict(min_hw=-1),
                                dict(optimization_level=7)])
def test_bad_build_config(kw):
    with pytest.raises(InputError):
        tp.make_build_plan(M(SR), "fp32", BuildConfig(**kw))


def test_cover_widens_spatial_range_not_batch():
    # Golden inputs are bigger than a tile and than max_batch: the spatial range grows to admit them,
    # the batch range does not (the runner chunks big batches).
    plan = tp.make_build_plan(M(SR), "fp32", cover={"lr": [(48, 3, 96, 112), (1, 3, 4, 6)]})
    assert prof(plan)["lr"] == ((1, 3, 4, 6), (8, 3, 64, 64), (32, 3, 96, 112))  # per axis
    with pytest.raises(InputError, match="fixes it at 3"):
        tp.make_build_plan(M(SR), "fp32", cover={"lr": [(1, 4, 64, 64)]})
    with pytest.raises(InputError, match="rank"):
        tp.make_build_plan(M(SR), "fp32", cover={"lr": [(1, 3, 64)]})


def test_manifest_without_inputs():
    m = M(CGAN)
    with pytest.raises(InputError, match="no io.inputs"):
        tp.make_build_plan(replace(m, io=replace(m.io, inputs=())), "fp16")

# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize("name,slug", [("NVIDIA H200", "nvidia-h200"), ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
                                       ("Orin (nvgpu)", "orin-nvgpu"), ("  ", "unknown-gpu"),
                                       ("NVIDIA A100-SXM4-80GB", "nvidia-a100-sxm4-80gb")])
def test_device_slug(name, slug):
    assert tp.device_slug(name) == slug


@pytest.mark.parametrize("cc", [(8, 7), [8, 7], "8.7", "87", "sm_87", "sm87", 8.7])
def test_cc_string(cc):
    assert tp.cc_string(cc) == "8.7" and tp.cc_compact(cc) == "87"


def test_cc_string_rejects_garbage():
    assert tp.cc_string((10, 0)) == "10.0" and tp.cc_compact("100") == "100"
    with pytest.raises(InputError):
        tp.cc_string("hopper")


def test_engine_key():
    assert tp.engine_key("NVIDIA H200", (9, 0), "10.3.0", "fp16") == "nvidia-h200-sm90-trt10.3.0-fp16"
    assert tp.engine_key("Orin (nvgpu)", "8.7", "10.3.0.26", "int8") == "orin-nvgpu-sm87-trt10.3.0.26-int8"
    keys = {tp.engine_key(d, c, v, p) for d in ("A", "B") for c in ("8.0", "9.0") for v in ("10.0", "10.1")
            for p in tp.PRECISIONS}
    assert len(keys) == 8 * len(tp.PRECISIONS) == 24  # every identity field (fp32 included) changes the directory


def test_timing_cache_path_is_keyed_by_device_and_version(tmp_path):
    a = tp.timing_cache_path(tmp_path, "NVIDIA H200", "9.0", "10.3.0")
    assert a.parent == tmp_path and a.name == "timing-nvidia-h200-sm90-trt10.3.0.cache"
    assert a == tp.timing_cache_path(tmp_path, "NVIDIA H200", (9, 0), "10.3.0")
    assert a != tp.timing_cache_path(tmp_path, "NVIDIA H100", "9.0", "10.3.0")
    assert a != tp.timing_cache_path(tmp_path, "NVIDIA H200", "9.0", "10.4.0")


# ----------------------------------------------------------------------------- sidecar


INSPECTOR_JSON = json.dumps({"Layers": [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to conv0", "LayerType": "Reformat",
     "Inputs": [{"Name": "lr", "Location": "Device", "Dimensions": [8, 3, 64, 64],
                 "Format/Datatype": "Row major linear FP32 format"}],
     "Outputs": [{"Name": "r0", "Dimensions": [8, 3, 64, 64], "Format/Datatype": "Row major linear FP16 format"}]},
    {"Name": "conv0 + relu0", "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "r0", "Dimensions": [8, 3, 64, 64], "Format/Datatype": "Row major linear FP16 format"}],
     "Outputs": [{"Name": "a0", "Dimensions": [8, 48, 64, 64],
                  "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
     "TacticName": "sm90_xmma_fprop_implicit_gemm_f16f16"},
    {"Name": "quantize_a0 + conv1", "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "a0q", "Dimensions": [8, 48, 64, 64],
                 "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
     "Outputs": [{"Name": "a1", "Dimensions": [8, 48, 64, 64],
                  "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
    {"Name": "conv2 (dequant out)", "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "a1", "Datatype": "Int8", "Format": "Channel major"}],  # TensorRT 11 split fields
     "Outputs": [{"Name": "a2", "Datatype": "Half", "Format": "Row major linear"}]},
    {"Name": "pixelshuffle", "LayerType": "Shuffle",
     "Inputs": [{"Name": "a2", "Format/Datatype": "Half"}], "Outputs": [{"Name": "a3", "Format/Datatype": "Half"}]},
    {"Name": "last conv", "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "a3", "Format/Datatype": "Float"}], "Outputs": [{"Name": "sr", "Format/Datatype": "Float"}]},
    {"Name": "dyn", "LayerType": "NoOp",
     "Inputs": [{"Name": "x", "Format/Datatype": "N/A due to dynamic shapes"}], "Outputs": []},
]})


def test_layer_precisions_from_inspector_json():
    layers = tp.layer_precisions(INSPECTOR_JSON)
    assert [l["precision"] for l in layers] == ["fp32", "fp16", "int8", "int8", "fp16", "fp32", "unknown"]
    assert layers[1]["tactic"] == "sm90_xmma_fprop_implicit_gemm_f16f16"
    assert layers[3]["inputs"] == ["int8"] and layers[3]["outputs"] == ["fp16"]
    counts = tp.precision_counts(layers)
    assert counts["all"] == {"fp16": 2, "fp32": 2, "int8": 2, "unknown": 1}
    assert counts["compute"] == {"int8": 2, "fp16": 1, "fp32": 1}  # no Reformat/Shuffle/NoOp
    assert counts["layers"] == 7
    assert tp.layer_precisions(json.loads(INSPECTOR_JSON)) == layers  # a dict works as well as the JSON text


def test_layer_precisions_without_detailed_verbosity():
    layers = tp.layer_precisions('{"Layers": ["conv0 + relu0", "conv1"], "Bindings": ["lr", "sr"]}')
    assert [l["precision"] for l in layers] == ["unknown", "unknown"]
    assert tp.layer_precisions("{}") == []


@pytest.mark.parametrize("fmt,dtype", [
    ("Row major linear FP32", "fp32"), ("Float", "fp32"), ("Half", "fp16"), ("Row major linear FP16 format", "fp16"),
    ("Thirty-two wide channel vectorized row major Int8 format.", "int8"), ("UInt8", "uint8"),
    ("BFloat16", "bf16"), ("Row major linear BF16", "bf16"), ("Int32", "int32"), ("Int64", "int64"), ("Bool", "bool"),
    ("FP8", "fp8"), ("N/A due to dynamic shapes", "unknown"), ("", "unknown"), (None, "unknown"),
])
def test_tensor_dtype(fmt, dtype):
    assert tp.tensor_dtype(fmt) == dtype


def _meta(**over):
    plan = tp.make_build_plan(M(CGAN), "int8", BuildConfig(max_batch=16))
    meta = tp.engine_metadata(plan, H200, trt_version="10.3.0", skugen_version="0.1.0", build_seconds=12.3456,
                              plan_sha256="d" * 64, plan_bytes=1234, layers=tp.layer_precisions(INSPECTOR_JSON),
                              io={"inputs": [{"name": "z"}], "outputs": [{"name": "image"}]},
                              bundle={"name": "fmnist-cgan-student"}, extra={"timing_cache": {"loaded": True}},
                              built_at="2026-01-01T00:00:00+00:00")
    meta.update(over)
    return plan, meta


def test_engine_metadata_fields(tmp_path):
    plan, meta = _meta()
    assert meta["key"] == "nvidia-h200-sm90-trt10.3.0-int8"
    assert (meta["device_name"], meta["compute_capability"], meta["tensorrt_version"]) == ("NVIDIA H200", "9.0",
                                                                                          "10.3.0")
    assert meta["onnx_sha256"] == SHA_TRT8 and meta["source"]["file"] == "model.int8.trt.onnx"
    assert meta["precision"] == "int8" and meta["quantization"] == tp.QUANT_QDQ
    assert meta["typing"] == "strong" and meta["network_flags"] == ["STRONGLY_TYPED"] and "builder_flags" not in meta
    assert meta["schema_version"] == 2
    assert meta["profile"]["z"] == {"dtype": "float32", "min": [1, 128], "opt": [8, 128], "max": [16, 128]}
    assert meta["build_seconds"] == 12.346 and meta["built_at"].startswith("2026-01-01")
    assert meta["skugen_version"] == "0.1.0" and meta["plan_sha256"] == "d" * 64 and meta["plan_bytes"] == 1234
    assert meta["precision_counts"]["compute"]["int8"] == 2 and len(meta["layers"]) == 7
    assert meta["timing_cache"] == {"loaded": True} and meta["device"]["total_memory_bytes"] == 150_000_000_000
    atomic_write_json(tmp_path / "engine.json", meta)  # JSON-serialisable, atomically written
    assert json.loads((tmp_path / "engine.json").read_text()) == meta


def test_no_mismatch_for_the_same_machine():
    plan, meta = _meta()
    cur = tp.current_identity(H200, "10.3.0", SHA_TRT8, "int8")
    assert tp.engine_mismatches(meta, cur) == []
    assert tp.engine_mismatches(meta, {**cur, "compute_capability": "9.0"}) == []


@pytest.mark.parametrize("field,value,words", [
    ("device_name", "NVIDIA A100-SXM4-80GB", "GPU"),
    ("compute_capability", "8.0", "compute capability"),
    ("tensorrt_version", "10.4.0", "TensorRT version"),
    ("onnx_sha256", SHA_FP32, "source ONNX sha256"),
    ("precision", "fp16", "precision"),
])
def test_each_identity_field_is_checked(field, value, words):
    _, meta = _meta()
    cur = tp.current_identity(H200, "10.3.0", SHA_TRT8, "int8")
    diffs = tp.engine_mismatches(meta, {**cur, field: value})
    assert len(diffs) == 1 and diffs[0].startswith(words)
    msg = tp.mismatch_message(diffs, "/b/engines/k", "/b", "int8")
    assert "skugen build /b --backend tensorrt --precision int8 --force" in msg and "rebuild=True" in msg


def test_edited_sidecar_gives_several_differences():
    _, meta = _meta(device_name="Orin (nvgpu)", compute_capability="8.7", schema_version=99)
    diffs = tp.engine_mismatches(meta, tp.current_identity(H200, "10.3.0", SHA_TRT8, "int8"))
    assert len(diffs) == 3
    assert any("'Orin (nvgpu)'" in d and "'NVIDIA H200'" in d for d in diffs)
    assert any("schema_version" in d for d in diffs)
    assert tp.engine_mismatches({}, tp.current_identity(ORIN, "10.3.0", SHA_TRT8, "int8"))  # empty sidecar


def test_profile_matches():
    plan, meta = _meta()
    assert tp.profile_matches(meta, plan)
    assert not tp.profile_matches(meta, tp.make_build_plan(M(CGAN), "int8", BuildConfig(max_batch=32)))
    assert not tp.profile_matches(meta, tp.make_build_plan(M(CGAN), "int8", BuildConfig(max_batch=16, workspace_mb=64)))
    # A weakly typed engine of the old schema (builder flags, no "typing") is not the same build.
    _, old = _meta(typing=None, builder_flags=["INT8", "FP16"])
    assert not tp.profile_matches(old, plan)
    _, calibrated = _meta(quantization="entropy-calibration")
    assert not tp.profile_matches(calibrated, plan)


def test_build_config_roundtrip_through_sidecar():
    cfg = BuildConfig(min_batch=2, opt_batch=4, max_batch=8, opt_hw=96, max_hw=128, workspace_mb=512, force=True,
                      shapes={"lr": ((1, 3, 8, 8), (4, 3, 96, 96), (8, 3, 128, 128))})
    d = json.loads(json.dumps(cfg.to_dict()))
    back = tp.build_config_from_dict(d)
    assert back == BuildConfig(**{**cfg.__dict__, "force": False})  # force is never inherited
    assert tp.build_config_from_dict(None) is None
    assert tp.build_config_from_dict({"min_batch": 9, "opt_batch": 1}) is None
    assert tp.build_config_from_dict({"max_batch": 64, "unknown_future_field": 1}) == BuildConfig(max_batch=64)


def test_shape_in_profile():
    p = {"min": [1, 3, 16, 16], "opt": [8, 3, 64, 64], "max": [32, 3, 80, 80]}
    assert tp.shape_in_profile("lr", (4, 3, 64, 80), p) is None
    why = tp.shape_in_profile("lr", (4, 3, 96, 64), p)
    assert "outside the engine's profile" in why and "[2]" in why and "--max-hw" in why
    assert "rank" in tp.shape_in_profile("lr", (4, 3, 64), p)

# ----------------------------------------------------------------------------- no TensorRT here


@pytest.fixture
def cgan_bundle_dir(tmp_path):
    """A structurally valid generator bundle (placeholder ONNX bytes: nothing here parses them)."""
    rng = np.random.default_rng(1)
    inputs = {"z": rng.normal(size=(4, 128)).astype(np.float32),
              "onehot": np.eye(10, dtype=np.float32)[[0, 3, 7, 9]]}
    outputs = {"image": rng.uniform(-1, 1, size=(4, 1, 32, 32)).astype(np.float32)}
    manifest = copy.deepcopy(CGAN)
    files = {"model.fp32.onnx": b"fp32", "model.fp16.onnx": b"fp16", "model.int8.onnx": b"int8",
             "model.int8.trt.onnx": b"int8-trt", "golden/inputs.npz": npz_bytes(inputs), "golden/outputs.npz": npz_bytes(outputs)}
    return write_bundle(tmp_path / "bundle", manifest, files)


needs_no_trt = pytest.mark.skipif(trt_backend.is_available(), reason="TensorRT and a GPU are present here")


def test_module_imports_without_tensorrt():
    code = ("import sys, skugen.backends.tensorrt as t; from skugen.backends import tensorrt_usable; "
            "print(int('tensorrt' in sys.modules), int('pycuda' in sys.modules), int(tensorrt_usable()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["0", "0"]  # importing the backend imports neither; is_available() may, later


@needs_no_trt
def test_is_available_false_here():
    from skugen.backends import tensorrt_usable

    assert trt_backend.is_available() is False and tensorrt_usable() is False


@needs_no_trt
def test_every_entry_point_names_the_extra(cgan_bundle_dir):
    b = load_bundle(cgan_bundle_dir)
    extra = r"pip install 'skugen\[tensorrt\]'"
    with pytest.raises(BackendUnavailable, match=extra):
        trt_backend.engine_from_onnx(b, "fp16")
    with pytest.raises(BackendUnavailable, match=extra):
        trt_backend.engine_from_onnx(str(cgan_bundle_dir), "int8", BuildConfig(max_batch=4))
    with pytest.raises(BackendUnavailable, match=extra):
        trt_backend.TensorRTRunner(b, "fp16")
    with pytest.raises(BackendUnavailable, match=extra):
        trt_backend.TensorRTRunner(cgan_bundle_dir, "int8", rebuild=True)
    with pytest.raises(BackendUnavailable, match=extra):
        trt_backend.current_device()


def test_precision_is_checked_before_the_backend(cgan_bundle_dir):
    with pytest.raises(InputError, match="not supported"):
        trt_backend.engine_from_onnx(cgan_bundle_dir, "bf16")
    with pytest.raises(InputError, match="not supported"):
        trt_backend.TensorRTRunner(cgan_bundle_dir, "fp64")


@needs_no_trt
def test_cli_build_fails_with_the_extra(cgan_bundle_dir, capsys):
    rc = cli.main(["build", str(cgan_bundle_dir), "--backend", "tensorrt", "--precision", "fp16",
                   "--min-batch", "1", "--opt-batch", "8", "--max-batch", "32", "--workspace-mb", "512", "--force"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "skugen build: error:" in err and "pip install 'skugen[tensorrt]'" in err


def test_cli_build_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["build", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--precision", "--min-batch", "--opt-batch", "--max-batch", "--workspace-mb", "--force", "--max-hw"):
        assert flag in out
    assert "--calibration" not in out  # no implicit-INT8 calibration any more: Q/DQ graphs only


@pytest.mark.parametrize("version", ["8.6.1", "10.2.0.19", "12.0.0"])
def test_tensorrt_outside_the_range_is_refused(monkeypatch, version):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
    with pytest.raises(BackendUnavailable, match=r"outside the supported range 10.3 <= version < 12.*skugen\[tensorrt\]"):
        trt_cuda._require()
    assert trt_backend.is_available() is False
    assert trt_cuda.unavailable_reason().endswith("pip install 'skugen[tensorrt]'")


class _Boom(types.ModuleType):
    def __getattr__(self, name):
        raise RuntimeError("libnvinfer.so.10: symbol lookup error")


def test_any_import_error_makes_tensorrt_unusable_with_the_fix(monkeypatch):
    """A TensorRT whose import raises anything (not just ImportError) is 'unusable, because ...', never a crash."""
    monkeypatch.setitem(sys.modules, "tensorrt", _Boom("tensorrt"))
    reason = trt_cuda.unavailable_reason()
    assert "symbol lookup error" in reason and reason.endswith("pip install 'skugen[tensorrt]'")
    assert trt_backend.is_available() is False
    st = trt_cuda.status()
    assert st["usable"] is False and st["reason"] == reason and st["supported"] == "10.3 <= version < 12"


def test_broken_cuda_driver_is_unusable_not_a_crash(monkeypatch):
    drv = types.ModuleType("pycuda.driver")
    drv.init = lambda: (_ for _ in ()).throw(RuntimeError("CUDA driver version is insufficient"))
    pkg = types.ModuleType("pycuda")
    pkg.driver = drv
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    reason = trt_cuda.unavailable_reason()
    assert "insufficient" in reason and reason.endswith("pip install 'skugen[tensorrt]'")


def test_env_shows_the_tensorrt_found_and_its_range(capsys, monkeypatch):
    monkeypatch.setattr(trt_backend, "status", lambda device=0: {"found": "10.2.0", "in_range": False,
                                                              "supported": "10.3 <= version < 12", "usable": False,
                                                              "reason": "TensorRT 10.2.0 is outside ..."})
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert "TensorRT: 10.2.0 (OUTSIDE the supported range 10.3 <= version < 12)" in out
    assert cli.main(["env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backends"]["tensorrt"]["found"] == "10.2.0"


def test_missing_pycuda_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda -> ImportError
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(BackendUnavailable, match=r"pycuda.*skugen\[tensorrt\]"):
        trt_cuda._require()


def test_no_gpu_is_named(monkeypatch):
    class FakeDriver(types.SimpleNamespace):
        class Error(Exception):
            pass

    drv = FakeDriver(init=lambda: None, Device=types.SimpleNamespace(count=lambda: 0))
    pkg = types.ModuleType("pycuda")
    pkg.driver = drv
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    with pytest.raises(BackendUnavailable, match=r"no device.*skugen\[tensorrt\]"):
        trt_cuda._require()

# ----------------------------------------------------------------------------- engine directories (no GPU)


def test_engine_dir_selection(cgan_bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    b = load_bundle(cgan_bundle_dir)
    key = tp.engine_key("NVIDIA H200", "9.0", "10.3.0", "fp16")
    assert store.find(b, key) is None
    assert store.writable_dir(b, key) == b.engines_dir() / key
    # A read-only bundle (installed under /opt, say) gets its engines in the user cache instead.
    monkeypatch.setattr(store.os, "access", lambda p, mode: False)
    fb = store.writable_dir(b, key)
    assert fb.is_relative_to(tmp_path / "cache" / "tensorrt" / "engines") and fb.name == key
    _, meta = _meta()
    atomic_write_json(fb / tp.SIDECAR_FILE, meta)
    assert store.find(b, key) == fb
    assert store.plan_problem(fb, meta) == f"{tp.ENGINE_FILE} is missing"
    (fb / tp.ENGINE_FILE).write_bytes(b"not the plan that was built")
    assert "sha256" in store.plan_problem(fb, meta)
    assert store.plan_problem(fb, {**meta, "plan_sha256": hashlib.sha256(b"not the plan that was built")
                                          .hexdigest()}) is None
    assert trt_build._golden_shapes(b) == {"z": [(4, 128)], "onehot": [(4, 10)]}

# ----------------------------------------------------------------------------- control flow on a fake TensorRT
# A tiny stand-in for the tensorrt + pycuda.driver modules (numpy "device memory", JSON "plans") so that
# engine_from_onnx and TensorRTRunner run end to end on the CPU. It checks OUR control flow: caching,
# sidecars, mismatch handling, buffers, chunking, calibration plumbing, context push/pop balance. It
# mirrors the TensorRT 10 Python API names used by the backend; whether the real API behaves the same
# is what test_tensorrt_gpu.py checks on a machine with TensorRT.


class _FakeCuda(types.ModuleType):
    """Stand-in for pycuda.driver: device memory is a dict of numpy byte arrays, contexts a push/pop counter.

    Catches: unbalanced context push/pop (the fixture asserts depth 0), use of freed or unallocated
    pointers, copies of the wrong size. Cannot catch: real CUDA errors, async/stream ordering races,
    alignment, pinned-memory behaviour, or pycuda API drift (only the names used are modelled).
    """

    class Error(Exception):
        pass

    def __init__(self):
        super().__init__("pycuda.driver")
        self.mem: dict[int, np.ndarray] = {}
        self.depth = 0  # pushes minus pops: must return to 0
        self.allocs = 0  # device allocations so far
        self.copies: list[tuple[str, str, int]] = []  # (htod|dtoh, dtype, bytes) of every host<->device copy
        self.next_addr = 1 << 20
        fake = self

        class Device:
            def __init__(self, i):
                self.i = i

            @staticmethod
            def count():
                return 1

            def name(self):
                return fake.gpu_name

            def compute_capability(self):
                return (9, 0)

            def total_memory(self):
                return 1 << 34

            def retain_primary_context(self):
                return Ctx()

        class Ctx:
            def push(self):
                fake.depth += 1

            def detach(self):
                pass

        class Context:
            @staticmethod
            def pop():
                fake.depth -= 1

        class Alloc:
            def __init__(self, n):
                fake.allocs += 1
                self.addr = fake.next_addr
                fake.next_addr += n + 256
                fake.mem[self.addr] = np.zeros(n, np.uint8)

            def __int__(self):
                return self.addr

            __index__ = __int__

            def free(self):
                fake.mem.pop(self.addr, None)

        class Stream:
            handle = 1234

            def synchronize(self):
                pass

        self.Device, self.Context, self.Stream, self.gpu_name = Device, Context, Stream, "NVIDIA H200"
        self.mem_alloc = Alloc

    def init(self):
        pass

    def mem_get_info(self):
        return (1 << 33) - sum(a.size for a in self.mem.values()), 1 << 34

    def get_driver_version(self):
        return 12040

    def get_version(self):
        return (12, 4, 0)

    def pagelocked_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def write(self, addr, a):
        b = np.ascontiguousarray(a).view(np.uint8).ravel()
        self.mem[int(addr)][:b.size] = b

    def read(self, addr, shape, dtype):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.mem[int(addr)][:n].view(dtype).reshape(shape).copy()

    def memcpy_htod(self, dst, src):
        assert self.depth > 0, "pycuda call without a current context"
        self.copies.append(("htod", str(np.asarray(src).dtype), int(np.asarray(src).nbytes)))
        self.write(dst, src)

    def memcpy_htod_async(self, dst, src, stream=None):
        self.memcpy_htod(dst, src)

    def memcpy_dtoh(self, dst, src):
        assert self.depth > 0, "pycuda call without a current context"
        self.copies.append(("dtoh", str(dst.dtype), int(dst.nbytes)))
        dst[...] = self.read(src, dst.shape, dst.dtype)

    def memcpy_dtoh_async(self, dst, src, stream=None):
        self.memcpy_dtoh(dst, src)


def _fake_outputs(spec: dict, shapes: dict) -> dict:
    """Output shapes of the two fake models: 'sum' (generator-like) and 'upsample' (x2 enhancer)."""
    b = next(iter(shapes.values()))[0]
    if spec["fn"] == "sum":
        return {n: (b, *s[1:]) for n, s in spec["outputs"].items()}
    x = shapes[next(iter(spec["inputs"]))]
    return {n: (x[0], x[1], 2 * x[2], 2 * x[3]) for n in spec["outputs"]}


def _fake_compute(spec: dict, xs: dict) -> dict:
    if spec["fn"] == "sum":
        s = sum(x.reshape(x.shape[0], -1).sum(1) for x in xs.values())
        shapes = _fake_outputs(spec, {k: v.shape for k, v in xs.items()})
        return {n: np.tanh(s / 100).reshape(-1, *([1] * (len(sh) - 1))) * np.ones(sh, np.float32)
                for n, sh in shapes.items()}
    x = next(iter(xs.values()))
    return {n: x.repeat(2, 2).repeat(2, 3) for n in spec["outputs"]}


def _make_fake_trt(cuda: _FakeCuda, version: str = "10.3.0") -> types.ModuleType:
    """A `tensorrt` module with just the names the backend calls; "ONNX" files are JSON specs.

    Two generations, as the committed API surfaces (tests/sdk/backends/trt_api/) show them:
    10.x: BuilderFlag has FP16/INT8, NetworkDefinitionCreationFlag.STRONGLY_TYPED == 1;
    11.x: BuilderFlag has neither, STRONGLY_TYPED == 0 and PREFER_JIT_PYTHON_PLUGINS == 1 (so a hard-coded
    `1 << 1` would switch on JIT plugins there), networks are always strongly typed.
    On both, a strongly typed network refuses set_flag(FP16/INT8) and int8_calibrator (as TensorRT does).

    Catches: wrong call ORDER or missing calls in our code (building without a current context, no
    timing cache or detailed profiling, a weakly typed network, precision flags, profiles that miss an
    input, input shapes outside the profile, unset tensor addresses), and what we do with its answers.
    Cannot catch: whether the real bindings have these names and signatures (test_tensorrt_api.py),
    real parser/builder errors, the engine's numerics or the precisions TensorRT really picks (the
    inspector JSON here follows the graph's dtype: fp16 spec -> FP16, Q/DQ -> Int8, else Float).
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.builds = []
    v11 = int(version.split(".")[0]) >= 11

    class DataType:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return f"DataType.{self.name}"

    FLOAT = DataType("FLOAT")
    trt.nptype = lambda dt: np.float32
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32", **({} if v11 else {"FP16": "FP16", "INT8": "INT8"}))
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(
        **({"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2} if v11
           else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}))
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="JSON")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.LayerType = types.SimpleNamespace(QUANTIZE="Q", DEQUANTIZE="DQ", CONVOLUTION="CONV")

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self):
            pass

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape = name, tuple(shape)

    class Network:
        def __init__(self, flags):
            self.spec, self.inputs, self.layers, self.flags = None, [], [], flags

        num_inputs = property(lambda self: len(self.inputs))
        num_layers = property(lambda self: len(self.layers))

        def get_input(self, i):
            return self.inputs[i]

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            try:
                spec = json.loads(Path(path).read_text())
            except ValueError:
                self.errors = ["ModelProto: not an ONNX file"]
                return False
            self.network.spec = spec
            self.network.inputs = [Tensor(n, s) for n, s in spec["inputs"].items()]
            kinds = ["Q", "DQ", "CONV"] if spec.get("qdq") else ["CONV"]
            self.network.layers = [types.SimpleNamespace(type=k) for k in kinds]
            return True

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, mn, op, mx):
            self.shapes[name] = [list(mn), list(op), list(mx)]

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob) or b"fake-timing-cache"

        def serialize(self):
            return self.blob

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.pool, self.cache = [], [], {}, None
            self.profiling_verbosity = None

        def __setattr__(self, name, value):
            if name == "int8_calibrator":
                raise AttributeError("a strongly typed build takes no calibrator (and 11.x has none)")
            object.__setattr__(self, name, value)

        def set_memory_pool_limit(self, pool, size):
            self.pool[pool] = size

        def set_flag(self, f):
            if f in ("FP16", "INT8"):
                raise TypeError(f"BuilderFlag.{f} with a strongly typed network (TensorRT rejects it)")
            self.flags.append(f)

        def add_optimization_profile(self, p):
            self.profiles.append(p)

        def create_timing_cache(self, blob):
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            # 10.x: weakly typed unless STRONGLY_TYPED (bit 1) is set. 11.x: strongly typed always; skugen
            # passes no flags (bit 1 would be PREFER_JIT_PYTHON_PLUGINS there).
            want = 0 if v11 else 1 << 1
            assert flags == want, f"create_network({flags}) on TensorRT {version}: expected {want}"
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            assert cuda.depth > 0, "building needs the CUDA context current"
            assert config.profiling_verbosity == "DETAILED" and config.cache is not None
            prof = config.profiles[0].shapes
            assert set(prof) == set(network.spec["inputs"])
            trt.builds.append({"network_flags": network.flags, "builder_flags": list(config.flags),
                               "source": network.spec.get("dtype", "fp32")})
            return json.dumps({"spec": network.spec, "profile": prof, "flags": config.flags,
                               "network_flags": network.flags, "qdq": bool(network.spec.get("qdq")),
                               "workspace": config.pool["WORKSPACE"]}).encode()

    class Engine:
        def __init__(self, plan):
            self.plan, self.spec = plan, plan["spec"]
            self.names = list(self.spec["inputs"]) + list(self.spec["outputs"])
            self.device_memory_size_v2 = 4096

        num_io_tensors = property(lambda self: len(self.names))

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, n):
            return "INPUT" if n in self.spec["inputs"] else "OUTPUT"

        def get_tensor_dtype(self, n):
            return FLOAT

        def get_tensor_shape(self, n):
            return tuple(self.spec["inputs"].get(n) or self.spec["outputs"][n])

        def get_tensor_profile_shape(self, n, i):
            assert i == 0
            return [tuple(s) for s in self.plan["profile"][n]]

        def create_execution_context(self):
            return ExecutionContext(self)

        def create_engine_inspector(self):
            return Inspector(self)

    class ExecutionContext:
        def __init__(self, engine):
            self.engine, self.shapes, self.addr = engine, {}, {}

        def set_input_shape(self, n, shape):
            mn, _, mx = self.engine.plan["profile"][n]
            if len(shape) != len(mn) or not all(a <= d <= b for a, d, b in zip(mn, shape, mx)):
                return False
            self.shapes[n] = tuple(int(d) for d in shape)
            return True

        def get_tensor_shape(self, n):
            if n in self.engine.spec["inputs"]:
                return self.shapes.get(n, self.engine.get_tensor_shape(n))
            return _fake_outputs(self.engine.spec, self.shapes)[n]

        def set_tensor_address(self, n, ptr):
            self.addr[n] = int(ptr)
            return True

        def execute_async_v3(self, stream):
            assert stream == 1234 and cuda.depth > 0
            xs = {n: cuda.read(self.addr[n], self.shapes[n], np.float32) for n in self.engine.spec["inputs"]}
            for n, y in _fake_compute(self.engine.spec, xs).items():
                cuda.write(self.addr[n], y.astype(np.float32))
            return True

    class Inspector:
        def __init__(self, engine):
            self.engine, self.execution_context = engine, None

        def get_engine_information(self, fmt):
            ctx = self.execution_context
            concrete = ctx is not None and set(ctx.shapes) == set(self.engine.spec["inputs"])
            p = self.engine.plan
            # Strongly typed: the graph's types decide (a Q/DQ graph -> Int8, an FP16 graph -> FP16).
            core = "Int8" if p["qdq"] else "FP16" if p["spec"].get("dtype") == "fp16" else "Float"
            fmt_of = (lambda f: f"Row major linear {f} format") if concrete else (lambda f: "N/A due to dynamic shapes")
            return json.dumps({"Layers": [
                {"Name": "in reformat", "LayerType": "Reformat", "Inputs": [{"Format/Datatype": fmt_of("FP32")}],
                 "Outputs": [{"Format/Datatype": fmt_of(core)}]},
                {"Name": "conv", "LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": fmt_of(core)}],
                 "Outputs": [{"Format/Datatype": fmt_of(core)}]},
                {"Name": "out", "LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": fmt_of("FP16")}],
                 "Outputs": [{"Format/Datatype": fmt_of("FP32")}]}]})

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            try:
                return Engine(json.loads(bytes(data)))
            except ValueError:
                return None

    for name, obj in dict(ILogger=ILogger, OnnxParser=OnnxParser, Builder=Builder, Runtime=Runtime).items():
        setattr(trt, name, obj)
    return trt


@pytest.fixture(params=["10.3.0", "11.4.0.106"])
def fake_trt(monkeypatch, tmp_path, request):
    """Install the fake tensorrt (10.x and 11.x, each test runs on both) + pycuda modules (see _make_fake_trt)."""
    cuda = _FakeCuda()
    trt = _make_fake_trt(cuda, request.param)
    pkg = types.ModuleType("pycuda")
    pkg.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr(trt_cuda, "_TRT_LOGGER", None)
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    yield trt, cuda
    assert cuda.depth == 0, "unbalanced CUDA context push/pop"


def _fake_bundle(root, kind: str, qdq: bool = True):
    """A bundle whose 'ONNX' files are fake-model specs the fake parser understands."""
    rng = np.random.default_rng(2)
    if kind == "generator":
        manifest = copy.deepcopy(CGAN)
        spec = {"fn": "sum", "inputs": {"z": [-1, 128], "onehot": [-1, 10]}, "outputs": {"image": [-1, 1, 4, 4]}}
        inputs = {"z": rng.normal(size=(6, 128)).astype(np.float32),
                  "onehot": np.eye(10, dtype=np.float32)[rng.integers(0, 10, 6)]}
    else:
        manifest = copy.deepcopy(SR)
        spec = {"fn": "upsample", "inputs": {"lr": [-1, 3, -1, -1]}, "outputs": {"sr": [-1, 3, -1, -1]}}
        manifest["tile"]["size"] = 80
        inputs = {"lr": rng.uniform(size=(5, 3, 96, 72)).astype(np.float32)}  # bigger than a tile
    files = {"model.fp32.onnx": json.dumps(spec).encode()}
    if kind == "generator":
        files["model.fp16.onnx"] = json.dumps({**spec, "dtype": "fp16"}).encode()
    if qdq and kind == "generator":
        files["model.int8.onnx"] = json.dumps({**spec, "qdq": True, "activations": "uint8"}).encode()
        files["model.int8.trt.onnx"] = json.dumps({**spec, "qdq": True, "dtype": "fp16"}).encode()
    else:
        manifest["models"].pop("int8", None)
    for k, data in files.items():
        m = manifest["models"][k.split(".")[1]]
        (m["variants"]["tensorrt"] if ".trt." in k else m)["sha256"] = hashlib.sha256(data).hexdigest()
    outputs = _fake_compute(spec, inputs)
    files.update({"golden/inputs.npz": npz_bytes(inputs), "golden/outputs.npz": npz_bytes(outputs)})
    return load_bundle(write_bundle(root, manifest, files)), spec


SMALL = BuildConfig(min_batch=1, opt_batch=2, max_batch=4, workspace_mb=64)


def test_fake_build_writes_engine_and_sidecar(fake_trt, tmp_path):
    trt, _ = fake_trt
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    rec = trt_backend.engine_from_onnx(b, "int8", SMALL)
    assert rec.built and rec.key == f"nvidia-h200-sm90-trt{trt.__version__}-int8" and \
        rec.engine_dir == b.engines_dir() / rec.key
    side = json.loads(rec.sidecar_path.read_text())
    assert side["quantization"] == tp.QUANT_QDQ and side["typing"] == "strong" and "builder_flags" not in side
    assert \
        side["network_flags"] == list(tp.network_creation_flags(trt.__version__))
    # Strongly typed and no precision flag: 10.x sets bit STRONGLY_TYPED, 11.x passes 0 (checked in the fake).
    assert trt.builds[0] == {"network_flags": 0 if trt.__version__.startswith("11") else 2, "builder_flags": [],
                             "source": "fp16"}
    assert side["onnx_sha256"] == b.model_sha256("int8", "tensorrt") != b.model_sha256("int8")
    assert side["source"]["file"] == "model.int8.trt.onnx" and side["device"]["cuda_driver"] == "12.4"
    assert side["profile"]["z"] == {"dtype": "float32", "min": [1, 128], "opt": [2, 128], "max": [4, 128]}
    assert side["precision_counts"]["compute"] == {"int8": 1, "fp16": 1}  # inspected at concrete shapes
    assert side["io"]["inputs"][0] == {"name": "z", "dtype": "float", "shape": [-1, 128]}
    assert side["build_config"]["max_batch"] == 4 and side["timing_cache"]["loaded"] is False
    assert json.loads(rec.plan_path.read_bytes())["workspace"] == 64 * 2**20
    # Cached: same request -> no build; a wider profile or force -> a build; timing cache reused.
    assert not trt_backend.engine_from_onnx(b, "int8", SMALL).built
    again = trt_backend.engine_from_onnx(b, "int8", BuildConfig(max_batch=8))
    assert again.built and again.metadata["timing_cache"]["loaded"] is True
    assert trt_backend.engine_from_onnx(b, "int8", BuildConfig(max_batch=8, force=True)).built
    assert len(trt.builds) == 3
    assert not list(b.engines_dir().glob(".*"))  # no temp dirs left behind


def test_fake_runner_infers_and_chunks(fake_trt, tmp_path):
    b, spec = _fake_bundle(tmp_path / "g", "generator")
    trt_backend.engine_from_onnx(b, "fp16", SMALL)
    inputs, outputs = b.golden()
    with trt_backend.TensorRTRunner(b, "fp16") as r:
        assert not r.record.built and r.info["max_batch"] == 4 and r.info["gpu"] == "NVIDIA H200"
        assert r.input_metadata()["z"].shape == (None, 128) and r.output_names() == ["image"]
        out = r.infer(inputs)  # 6 > max batch 4: two chunks
        np.testing.assert_allclose(out["image"], outputs["image"], rtol=1e-6)
        one = r.infer({k: v[:1] for k, v in inputs.items()})
        np.testing.assert_allclose(one["image"], outputs["image"][:1], rtol=1e-6)
        with pytest.raises(InputError, match="dtype"):
            r.infer({k: v.astype(np.float64) for k, v in inputs.items()})
        mem = r.gpu_memory()
        assert mem["io_buffer_bytes"] == 4 * (4 * 128 + 4 * 10 + 4 * 16) and mem["activation_bytes"] == 4096
        # zero-copy path
        with r.cuda_context():
            for n, a in inputs.items():
                r._cuda.memcpy_htod(r.input_device_ptr(n, a[:3].shape), a[:3])
        np.testing.assert_allclose(r.infer_device()["image"], outputs["image"][:3], rtol=1e-6)
        ptr, shape = r.infer_device(copy_outputs=False)["image"]
        assert ptr == r.output_device_ptr("image") and shape == r.output_shape("image") == (3, 1, 4, 4)
        with pytest.raises(InputError, match="outside the engine's profile"):
            r.input_device_ptr("z", (5, 128))
        with pytest.raises(InputError, match="not an input"):
            r.input_device_ptr("image", (1, 1, 4, 4))
    assert r._dev == {}  # buffers freed on deactivate


def test_fake_runner_builds_missing_engine_or_refuses(fake_trt, tmp_path):
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    with pytest.raises(EngineMismatch, match="no fp16 TensorRT engine for this GPU.*skugen build"):
        trt_backend.TensorRTRunner(b, "fp16", build_missing=False).activate()
    with trt_backend.TensorRTRunner(b, "fp16") as r:  # builds once, with the default profile
        assert r.record.built and r.info["max_batch"] == BuildConfig().max_batch
    with trt_backend.TensorRTRunner(b, "fp16", cfg=SMALL) as r:  # an explicit profile: rebuilt to match
        assert r.record.built and r.info["max_batch"] == 4


def test_fake_runner_engine_mismatch_and_rebuild(fake_trt, tmp_path):
    _, cuda = fake_trt
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    rec = trt_backend.engine_from_onnx(b, "int8", SMALL)
    side = json.loads(rec.sidecar_path.read_text())
    atomic_write_json(rec.sidecar_path, {**side, "device_name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"})
    with pytest.raises(EngineMismatch, match=r"GPU: engine built for 'NVIDIA Jetson AGX Orin'.*compute capabil"
                                             r".*--precision int8 --force.*rebuild=True"):
        trt_backend.TensorRTRunner(b, "int8").activate()
    with trt_backend.TensorRTRunner(b, "int8", rebuild=True) as r:
        assert r.record.built and r.info["max_batch"] == 4  # rebuilt with the profile it had
    assert json.loads(rec.sidecar_path.read_text())["device_name"] == "NVIDIA H200"
    rec.plan_path.write_bytes(b"garbage")
    with pytest.raises(EngineMismatch, match="sha256"):
        trt_backend.TensorRTRunner(b, "int8").activate()
    side = json.loads(rec.sidecar_path.read_text())
    atomic_write_json(rec.sidecar_path, {**side, "plan_sha256": hashlib.sha256(b"garbage").hexdigest()})
    with pytest.raises(EngineMismatch, match="could not deserialize"):
        trt_backend.TensorRTRunner(b, "int8").activate()
    # Another GPU model entirely: its engines live under another key, this one builds its own.
    cuda.gpu_name = "NVIDIA L4"
    with trt_backend.TensorRTRunner(b, "int8") as r:
        assert r.record.key.startswith("nvidia-l4-sm90") and r.record.built


def test_fake_enhancer_profile_covers_golden_and_has_no_int8_without_qdq(fake_trt, tmp_path):
    trt, _ = fake_trt
    b, _ = _fake_bundle(tmp_path / "s", "enhancer")
    with pytest.raises(BundleError, match="no INT8 .*skugen export STUDENT --int8"):
        trt_backend.engine_from_onnx(b, "int8", SMALL)  # no calibration fallback
    rec = trt_backend.engine_from_onnx(b, "fp32", SMALL)
    side = rec.metadata
    assert side["quantization"] == tp.QUANT_NONE and "calibration" not in side
    assert side["precision_counts"]["compute"] == {"fp32": 1, "fp16": 1}  # the scripted inspector: FP32 graph
    assert side["profile"]["lr"]["max"] == [4, 3, 96, 80]  # widened to the golden 96x72 images
    inputs, outputs = b.golden()
    with trt_backend.TensorRTRunner(b, "fp32") as r:
        np.testing.assert_allclose(r.infer(inputs)["sr"], outputs["sr"])  # 5 images, max batch 4: chunked
        small = np.ascontiguousarray(inputs["lr"][:2, :, :20, :36])
        np.testing.assert_allclose(r.infer({"lr": small})["sr"], small.repeat(2, 2).repeat(2, 3))
        with pytest.raises(InputError, match="outside the engine's profile"):
            r.infer({"lr": np.zeros((1, 3, 4, 8), np.float32)})


def test_fake_qdq_twin_without_qdq_layers_is_refused(fake_trt, tmp_path):
    b, spec = _fake_bundle(tmp_path / "g", "generator")
    # Rewrite the TensorRT twin without Q/DQ: a strongly typed build cannot make that INT8, so it refuses.
    m = b.spec.to_dict()
    data = json.dumps(spec).encode()
    m["models"]["int8"]["variants"]["tensorrt"]["sha256"] = hashlib.sha256(data).hexdigest()
    files = {rel: b.root / rel for rel in b.spec.files}
    files["model.int8.trt.onnx"] = data
    b2 = load_bundle(write_bundle(tmp_path / "g2", {k: v for k, v in m.items() if k != "files"}, files))
    with pytest.raises(BundleError, match="no QuantizeLinear/DequantizeLinear.*skugen export STUDENT --int8"):
        trt_backend.engine_from_onnx(b2, "int8", SMALL)


def test_fake_precision_flags_are_refused_by_the_fake(fake_trt):
    """The fake itself must reject what skugen no longer does (else the tests above could not fail)."""
    trt, _ = fake_trt
    cfg = trt.Builder(None).create_builder_config()
    with pytest.raises((TypeError, AttributeError)):
        cfg.set_flag(getattr(trt.BuilderFlag, "FP16", "FP16"))
    with pytest.raises(AttributeError):
        cfg.int8_calibrator = object()
    with pytest.raises(AssertionError):
        trt.Builder(None).create_network(0 if trt.__version__.startswith("10") else 2)


def test_fake_bad_onnx_and_cli(fake_trt, tmp_path, capsys):
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    rc = cli.main(["build", str(b.root), "--precision", "fp16", "int8", "--max-batch", "4", "--opt-batch", "2"])
    out = capsys.readouterr().out
    trt, _ = fake_trt
    assert rc == 0 and f"nvidia-h200-sm90-trt{trt.__version__}-fp16: built" in out
    assert "layers by precision: fp16 2" in out and "layers by precision: fp16 1, int8 1" in out  # the graphs' types
    rc = cli.main(["build", str(b.root), "--precision", "fp16", "--max-batch", "4", "--opt-batch", "2", "--json"])
    recs = json.loads(capsys.readouterr().out)
    assert rc == 0 and recs[0]["built"] is False and recs[0]["precision"] == "fp16"
    rc = cli.main(["build", str(b.root), "--max-batch", "2", "--opt-batch", "4"])
    assert rc != 0 and "batch range" in capsys.readouterr().err
    m = b.spec.to_dict()
    m["models"].pop("int8"), m["models"].pop("fp16")
    m["models"]["fp32"]["sha256"] = hashlib.sha256(b"\x08\x01garbage").hexdigest()
    bad = load_bundle(write_bundle(tmp_path / "bad", m, {"model.fp32.onnx": b"\x08\x01garbage",
                                                          "golden/inputs.npz": npz_bytes({"z": np.zeros((1, 128))}),
                                                          "golden/outputs.npz": npz_bytes({})}))
    with pytest.raises(BundleError, match="cannot parse model.fp32.onnx"):
        trt_backend.engine_from_onnx(bad, "fp32", SMALL)
    with pytest.raises(BundleError, match="no FP16 model"):
        trt_backend.engine_from_onnx(bad, "fp16", SMALL)

# ----------------------------------------------------------------------------- the engine store, end to end (fake TensorRT)
# What these can catch: an engine directory that one reader (runner/builder, deploy, `skugen engines`,
# export-triton) finds and another does not, and a source-ONNX sha256 that the builder writes but triton
# rejects. What they cannot: whether a real TensorRT writes/loads those plans (test_tensorrt_gpu.py).


def test_fake_read_only_bundle_engine_is_seen_by_deploy_engines_and_triton(fake_trt, tmp_path, monkeypatch, capsys):
    from skugen.deploy import engine_status, engine_verified, find_engine_dir, mark_engine_verified
    from skugen.triton import export_triton

    b, _ = _fake_bundle(tmp_path / "g", "generator")
    with monkeypatch.context() as m:  # the bundle is read-only (installed under /opt, say) while it builds
        m.setattr(store.os, "access", lambda p, mode: False)
        rec = trt_backend.engine_from_onnx(b, "fp16", SMALL)
    assert rec.built and rec.engine_dir.is_relative_to(tmp_path / "cache" / "tensorrt" / "engines")
    assert not b.engines_dir().exists()  # nothing written into the bundle
    # The runner, deploy and `skugen engines` all find it in the fallback.
    with trt_backend.TensorRTRunner(b, "fp16", build_missing=False) as r:
        assert r.record.engine_dir == rec.engine_dir and not r.record.built
    assert find_engine_dir(b, "fp16") == rec.engine_dir
    assert engine_status(b) == [{"key": rec.key, "precision": "fp16", "verified": False}]
    mark_engine_verified(b, "fp16", log="PASS")
    assert engine_verified(rec.engine_dir) and (rec.engine_dir / store.VERIFIED_FILE).is_file()
    assert engine_status(b) == [{"key": rec.key, "precision": "fp16", "verified": True}]
    assert cli.main(["engines", "status", str(b.root)]) == 0
    out = capsys.readouterr().out
    assert f"engine {rec.key}: fp16, VERIFIED (read-only bundle: in {rec.engine_dir.parent})" in out
    # export-triton ships it as a tensorrt_plan model, also with --plans verified.
    for mode in ("all", "verified"):
        from skugen.triton import TritonConfig

        repo = export_triton(b, tmp_path / f"repo-{mode}", TritonConfig(plans=mode))
        s = json.loads((repo / "skugen_triton.json").read_text())
        assert list(s["plans"]) == [f"{b.name}_trt_fp16"], s["plans"]
        assert s["plans"][f"{b.name}_trt_fp16"][0]["engine"] == rec.key
        plan = next(repo.glob("*_trt_fp16/1/model.plan"))
        assert plan.read_bytes() == rec.plan_path.read_bytes()


def test_fake_int8_engine_from_the_tensorrt_twin_is_exported_by_triton(fake_trt, tmp_path):
    """int8 engines are built from models.int8.variants.tensorrt (signed int8), not from the uint8 file ONNX
    Runtime runs: triton must compare the sidecar's onnx_sha256 with the twin's sha256 (it compared with the
    ORT file's and dropped every int8 engine as stale)."""
    from skugen.triton import TritonConfig, export_triton

    b, spec = _fake_bundle(tmp_path / "g", "generator")
    m = b.spec.to_dict()
    twin = json.dumps({**spec, "qdq": True, "activations": "int8"}).encode()
    m["models"]["int8"]["variants"] = {"tensorrt": {"file": "model.int8.trt.onnx", "sha256": hashlib.sha256(twin)
                                                    .hexdigest(), "activations": "int8", "use_for": ["tensorrt"]}}
    files = {rel: b.root / rel for rel in b.spec.files}
    files["model.int8.trt.onnx"] = twin
    b2 = load_bundle(write_bundle(tmp_path / "g2", {k: v for k, v in m.items() if k != "files"}, files))
    rec = trt_backend.engine_from_onnx(b2, "int8", SMALL)
    assert rec.metadata["onnx_sha256"] == b2.spec.variant("int8", "tensorrt").sha256 != b2.model_sha256("int8")
    assert tp.engine_source_sha256(b2.spec, "int8") == rec.metadata["onnx_sha256"]
    s = json.loads((export_triton(b2, tmp_path / "repo", TritonConfig(plans="all")) / "skugen_triton.json")
                   .read_text())
    assert [e["engine"] for e in s["plans"][f"{b2.name}_trt_int8"]] == [rec.key], s["plans"]


# ----------------------------------------------------------------------------- zero-copy GPU data path (fakes)


class _RefDeviceProcessor:
    """A CUDA-processor stand-in: the *_device methods run the numpy reference on the fake device memory.

    Catches: wrong pointers, shapes, dtypes or layouts handed between the path, the processor and the engine's
    bindings (the result would differ from the numpy path). Cannot catch: the real kernels (tests/kernels)."""

    device = "cuda"

    def __init__(self, cuda):
        self.cuda = cuda

    def preprocess_device(self, src, dst, *, batch, in_hw, out_hw, layout, mean, std, dtype, stream):
        from skugen.kernels import reference

        assert self.cuda.depth > 0 and stream is not None
        imgs = self.cuda.read(src, (batch, *in_hw, 3), np.uint8)
        self.cuda.write(dst, reference.preprocess(imgs, out_hw, layout=layout, mean=mean, std=std, dtype=dtype))

    def postprocess_device(self, src, dst, *, batch, hw, layout, value_range, dtype, stream):
        from skugen.kernels import reference

        assert self.cuda.depth > 0 and stream is not None
        c = 1 if layout == "GRAY" else 3
        x = self.cuda.read(src, (batch, c, *hw), dtype)
        self.cuda.write(dst, reference.postprocess(x, value_range, layout))


def test_fake_zero_copy_enhance_one_uint8_upload_one_uint8_download(fake_trt, tmp_path):
    from skugen import prepost
    from skugen.backends.tensorrt import zerocopy

    _, cuda = fake_trt
    b, _ = _fake_bundle(tmp_path / "s", "enhancer")
    trt_backend.engine_from_onnx(b, "fp32", SMALL)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    with trt_backend.TensorRTRunner(b, "fp32") as r:
        proc = _RefDeviceProcessor(cuda)
        assert zerocopy.usable(r, proc) and not zerocopy.usable(r, NumpyProc())
        path = prepost.gpu_data_path(r, proc, "enhancer")
        assert isinstance(path, zerocopy.ZeroCopyPath)
        # The numpy path, for reference: host preprocess -> runner.infer -> host postprocess.
        ref_x = prepost.images_to_unit_nchw(crops, NumpyProc(), 0.0, 1.0)
        ref = prepost.nchw_to_images(r.infer({"lr": ref_x})["sr"], "0,1", NumpyProc())
        for _ in range(3):  # every call: no allocation, one uint8 copy each way
            allocs, n = cuda.allocs, len(cuda.copies)
            got = path.enhance(crops, 0.0, 1.0, "0,1")
            assert cuda.allocs == allocs, "device buffers must be allocated once, not per call"
            assert cuda.copies[n:] == [("htod", "uint8", 3 * 40 * 48 * 3), ("dtoh", "uint8", 3 * 80 * 96 * 3)]
            np.testing.assert_array_equal(got, ref)
        # More crops than the engine's max batch (4): one upload + one download per engine batch.
        n = len(cuda.copies)
        got = path.enhance(crops * 2, 0.0, 1.0, "0,1")
        assert [c[0] for c in cuda.copies[n:]] == ["htod", "dtoh", "htod", "dtoh"]
        np.testing.assert_array_equal(got, np.concatenate([ref, ref]))
        with pytest.raises(InputError, match="outside the engine's profile"):
            path.enhance([np.zeros((120, 8, 3), np.uint8)], 0.0, 1.0, "0,1")


def test_fake_zero_copy_generate_downloads_uint8_only(fake_trt, tmp_path):
    from skugen import prepost

    _, cuda = fake_trt
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    trt_backend.engine_from_onnx(b, "fp16", SMALL)
    inputs, _ = b.golden()
    feed = {k: v[:3] for k, v in inputs.items()}
    with trt_backend.TensorRTRunner(b, "fp16") as r:
        path = prepost.gpu_data_path(r, _RefDeviceProcessor(cuda), "generator")
        ref = prepost.nchw_to_images(r.infer(feed)["image"], "-1,1", NumpyProc())
        allocs, n = cuda.allocs, len(cuda.copies)
        got = path.generate(feed, "-1,1")
        assert cuda.allocs == allocs
        assert cuda.copies[n:] == [("htod", "float32", 3 * 128 * 4), ("htod", "float32", 3 * 10 * 4),
                                   ("dtoh", "uint8", 3 * 4 * 4 * 1)]  # the image comes back as uint8, not float32
        np.testing.assert_array_equal(got, ref)
    assert r._extra_dev == [] and cuda.depth == 0  # staging freed with the runner


def test_fake_zero_copy_is_safe_from_threads(fake_trt, tmp_path):
    import threading

    from skugen import prepost

    _, cuda = fake_trt
    b, _ = _fake_bundle(tmp_path / "s", "enhancer")
    trt_backend.engine_from_onnx(b, "fp32", SMALL)
    rng = np.random.default_rng(1)
    with trt_backend.TensorRTRunner(b, "fp32") as r:
        path = prepost.gpu_data_path(r, _RefDeviceProcessor(cuda), "enhancer")
        jobs = [[rng.integers(0, 256, (16 + 4 * (i % 3), 24, 3), dtype=np.uint8)] * (1 + i % 3) for i in range(8)]
        want = [prepost.nchw_to_images(r.infer({"lr": prepost.images_to_unit_nchw(j, NumpyProc())})["sr"], "0,1",
                                       NumpyProc()) for j in jobs]
        got, errs = [None] * 8, []

        def work(i):
            try:
                for _ in range(3):
                    got[i] = path.enhance(jobs[i], 0.0, 1.0, "0,1")
            except BaseException as e:  # noqa: BLE001
                errs.append(e)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errs, errs
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_output_shape_reads_under_the_runner_lock(fake_trt, tmp_path):
    b, _ = _fake_bundle(tmp_path / "g", "generator")
    trt_backend.engine_from_onnx(b, "fp16", SMALL)
    with trt_backend.TensorRTRunner(b, "fp16") as r:
        seen = []
        real = r._context.get_tensor_shape
        r._context.get_tensor_shape = lambda n: (seen.append(r._lock.locked()), real(n))[1]
        r.output_shape("image")
        assert seen == [True]
        with pytest.raises(InputError, match="not an output"):
            r.output_shape("z")


def NumpyProc():
    from skugen.kernels.reference import NumpyProcessor

    return NumpyProcessor()
