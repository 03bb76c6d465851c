"""GPU tests for the TensorRT backend (marker `gpu`): build FP16/INT8 engines, run them, check them
against ONNX Runtime and `skugen verify`, and exercise the EngineMismatch path.

They skip (saying why) unless TensorRT 10, pycuda and a CUDA GPU are all present. The bundles come
from the session fixtures `cgan_bundle` / `sr_bundle` (tests/conftest.py); each test module works
on a copy, because building writes engines into the bundle.

These are the only tests that exercise the real TensorRT and pycuda APIs: API names and signatures,
ONNX parsing, the precisions the builder really picks, numerics against ONNX Runtime. The
CPU tests in test_tensorrt_plan.py run the same code on a fake TensorRT and cannot catch any of that.
When they skip (no TensorRT here: the CI machines and the lent H200 have none), nothing in this list
has been checked.

Speed is not measured here (no timed code in the test suite): TensorRT vs ONNX Runtime latency is a
`skugen bench` run, e.g. `python benchmarks/run_suite.py --backends onnxruntime,tensorrt` on an NVIDIA machine.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from skugen.backends import tensorrt as trt_backend
from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.backends.tensorrt import BuildConfig
from skugen.backends.tensorrt import build as trt_build
from skugen.backends.tensorrt import plan as tp
from skugen.bundle import load_bundle
from skugen.errors import BackendUnavailable, EngineMismatch, InputError
from skugen.io import atomic_write_json, sha256_file


def _why_unavailable() -> str | None:
    """Why TensorRT cannot run here, or None. Only BackendUnavailable (what `_require` raises for a missing or
    broken TensorRT, pycuda or GPU) means "skip"; any other exception is a bug in skugen and fails collection."""
    try:
        trt_backend._require()
    except BackendUnavailable as e:
        return f"{type(e).__name__}: {e}"
    return None


WHY = _why_unavailable()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(WHY is not None, reason=f"TensorRT backend unavailable: {WHY}")]

CFG = BuildConfig(min_batch=1, opt_batch=4, max_batch=16, workspace_mb=1024)
PRECISIONS = ("fp16", "int8")


@pytest.fixture(scope="module", params=["cgan_bundle", "sr_bundle"])
def bundle(request, tmp_path_factory):
    # Both fixtures live in tests/conftest.py: a missing one is a broken test setup and must fail, not skip
    # (sr_bundle skips by itself when GroceryStoreDataset is absent).
    src = request.getfixturevalue(request.param)
    src = Path(getattr(src, "root", src))
    dst = tmp_path_factory.mktemp(request.param) / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("engines"))
    return load_bundle(dst)


@pytest.fixture(scope="module")
def engines(bundle):
    """Both engines of the bundle, built once per module (first build: record.built is True)."""
    return {p: trt_backend.engine_from_onnx(bundle, p, CFG) for p in PRECISIONS}


@pytest.fixture(scope="module")
def golden(bundle):
    return bundle.golden()


@pytest.fixture(scope="module")
def ort_fp32(bundle):
    with OnnxRuntimeRunner(bundle.model_path("fp32"), providers=["CPUExecutionProvider"]) as r:
        yield r


def _feed(inputs: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The golden inputs repeated/cut to batch n."""
    out = {}
    for k, v in inputs.items():
        reps = -(-n // v.shape[0])
        out[k] = np.ascontiguousarray(np.concatenate([v] * reps, axis=0)[:n])
    return out


def _close(got: np.ndarray, ref: np.ndarray, precision: str) -> None:
    assert got.shape == ref.shape and np.isfinite(got).all()
    scale = float(np.abs(ref).max()) + 1e-6
    err = np.abs(got.astype(np.float64) - ref) / scale
    if precision == "fp16":
        assert err.max() < 0.05 and err.mean() < 0.01, (err.max(), err.mean())
    else:  # INT8 drifts more; image quality itself is judged by skugen verify / the quality reports
        assert err.mean() < 0.08, err.mean()

# ----------------------------------------------------------------------------- build


@pytest.mark.parametrize("precision", PRECISIONS)
def test_engine_built_with_sidecar(bundle, engines, precision):
    rec = engines[precision]
    dev = trt_backend.current_device()
    assert rec.built and rec.plan_path.is_file() and rec.plan_path.stat().st_size > 0
    assert rec.engine_dir == bundle.engines_dir() / rec.key
    assert rec.key == tp.engine_key(dev["name"], dev["compute_capability"], dev["tensorrt_version"], precision)
    side = json.loads(rec.sidecar_path.read_text())
    assert side == json.loads(json.dumps(rec.metadata))
    assert (side["device_name"], side["compute_capability"], side["tensorrt_version"]) == \
        (dev["name"], dev["compute_capability"], dev["tensorrt_version"])
    src, quant = tp.source_model(bundle.spec, precision)
    # The engine's source is the TensorRT variant (int8: model.int8.trt.onnx, the signed-int8 Q/DQ twin), NOT
    # the ORT file model.int8.onnx: comparing with that one made export-triton drop every INT8 engine as stale.
    assert side["onnx_sha256"] == bundle.model_sha256(src, "tensorrt") == tp.engine_source_sha256(bundle.spec, precision)
    if precision == "int8":
        assert side["onnx_sha256"] != bundle.model_sha256("int8") and side["source"]["file"].endswith(".trt.onnx")
    assert side["precision"] == precision and side["typing"] == "strong" and "builder_flags" not in side
    assert side["profile"] == tp.make_build_plan(bundle.spec, precision, CFG,
                                                 cover=trt_build._golden_shapes(bundle)).profile_dict()
    counts = side["precision_counts"]["compute"]
    assert side["layers"] and "unknown" not in counts, counts  # the inspector saw concrete shapes
    if precision == "fp16":
        assert counts.get("fp16", 0) > 0
    else:
        assert side["quantization"] == tp.QUANT_QDQ and counts.get("int8", 0) > 0, counts
    assert sha256_file(rec.plan_path) == side["plan_sha256"]
    assert tp.timing_cache_path(trt_backend.config.cache_dir("tensorrt"), dev["name"], dev["compute_capability"],
                                dev["tensorrt_version"]).is_file()


def test_second_build_is_a_cache_hit(bundle, engines):
    again = trt_backend.engine_from_onnx(bundle, "fp16", CFG)
    assert not again.built and again.metadata["plan_sha256"] == engines["fp16"].metadata["plan_sha256"]
    wider = trt_backend.engine_from_onnx(bundle, "fp16", BuildConfig(min_batch=1, opt_batch=4, max_batch=24))
    assert wider.built and wider.metadata["profile"] != engines["fp16"].metadata["profile"]
    back = trt_backend.engine_from_onnx(bundle, "fp16", CFG)  # restore the profile the other tests expect
    assert back.built

# ----------------------------------------------------------------------------- run


@pytest.mark.parametrize("precision", PRECISIONS)
def test_matches_onnxruntime_on_golden_inputs(bundle, engines, golden, ort_fp32, precision):
    inputs, _ = golden
    ref = ort_fp32.infer(inputs)
    with trt_backend.TensorRTRunner(bundle, precision) as r:
        assert r.record.key == engines[precision].key and not r.record.built
        assert set(r.input_metadata()) == set(inputs) and r.output_names() == list(ref)
        out = r.infer(inputs)
    for k in ref:
        _close(out[k], ref[k], precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_skugen_verify(bundle, engines, precision):
    verify = pytest.importorskip("skugen.verify")
    res = verify.verify_bundle(bundle, backend="tensorrt", precision=precision)  # runs TensorRTRunner(bundle, p)
    assert res.passed, "\n".join(res.lines())


def test_batches_within_and_beyond_the_profile(bundle, engines, golden, ort_fp32):
    inputs, _ = golden
    with trt_backend.TensorRTRunner(bundle, "fp16") as r:
        assert r.info["max_batch"] == CFG.max_batch
        for n in (1, CFG.opt_batch, CFG.max_batch, 2 * CFG.max_batch + 3):  # the last one runs in 3 chunks
            feed = _feed(inputs, n)
            out, ref = r.infer(feed), ort_fp32.infer(feed)
            for k in ref:
                assert out[k].shape[0] == n
                _close(out[k], ref[k], "fp16")


def test_dynamic_spatial_sizes(bundle, engines, golden, ort_fp32):
    inputs, _ = golden
    with trt_backend.TensorRTRunner(bundle, "fp16") as r:
        prof = r.profile()
        spatial = {n: p for n, p in prof.items() if len(p["min"]) == 4 and p["min"][2] != p["max"][2]}
        if not spatial:
            pytest.skip(f"{bundle.name} has no dynamic height/width inputs")
        name, p = next(iter(spatial.items()))
        src = _feed(inputs, 2)[name]
        for h, w in [(p["min"][2], p["min"][3]), (p["opt"][2], p["opt"][3]), (p["max"][2], p["opt"][3])]:
            x = np.ascontiguousarray(np.resize(src, (2, src.shape[1], h, w)).astype(src.dtype))
            out, ref = r.infer({name: x}), ort_fp32.infer({name: x})
            for k in ref:
                _close(out[k], ref[k], "fp16")
        too_big = np.zeros((1, src.shape[1], p["max"][2] + 8, p["max"][3]), src.dtype)
        with pytest.raises(InputError, match="outside the engine's profile"):
            r.infer({name: too_big})


def test_device_pointer_path(bundle, engines, golden):
    import pycuda.driver as cuda

    inputs, _ = golden
    with trt_backend.TensorRTRunner(bundle, "fp16") as r:
        ref = r.infer(inputs)
        with r.cuda_context():
            for name, a in inputs.items():  # what a pre-processing kernel would write into the binding
                ptr = r.input_device_ptr(name, a.shape)
                cuda.memcpy_htod(ptr, np.ascontiguousarray(a))
        out = r.infer_device()
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k])
        ptrs = r.infer_device(copy_outputs=False)
        with r.cuda_context():
            r.stream.synchronize()
            for k, (ptr, shape) in ptrs.items():
                assert ptr == r.output_device_ptr(k) and shape == r.output_shape(k) == ref[k].shape
                host = np.empty(shape, ref[k].dtype)
                cuda.memcpy_dtoh(host, ptr)
                np.testing.assert_array_equal(host, ref[k])


def test_threads_share_one_runner(bundle, engines, golden):
    inputs, _ = golden
    with trt_backend.TensorRTRunner(bundle, "fp16") as r:
        ref = r.infer(inputs)
        with ThreadPoolExecutor(4) as ex:
            outs = list(ex.map(lambda _: r.infer(inputs), range(16)))
    for out in outs:
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k])


def test_gpu_memory_is_reported(bundle, engines):
    with trt_backend.TensorRTRunner(bundle, "int8") as r:
        mem = r.gpu_memory()
    assert mem["engine_bytes"] > 0 and mem["io_buffer_bytes"] > 0 and mem["device_total_bytes"] > 0
    # used_by_runner_bytes is the drop in the driver's free device memory across TensorRTRunner._setup after any
    # build: it spans deserializing the engine (weights on the device), creating the execution context (activation
    # memory), a new CUDA stream and cuMemAlloc of every binding (io_buffer_bytes > 0 above), all still held here.
    # The runner clamps a negative difference to 0, so 0 means the measurement saw none of that (e.g. both free-memory
    # readings taken on the same side of the allocations). Only another process freeing memory on the same GPU during
    # those calls could mask it; scripts/gpu_check.sh runs alone on the device.
    assert mem["used_by_runner_bytes"] > 0, mem

# ----------------------------------------------------------------------------- mismatch


def test_edited_sidecar_raises_engine_mismatch_then_rebuilds(bundle, engines):
    rec = engines["fp16"]
    side = json.loads(rec.sidecar_path.read_text())
    atomic_write_json(rec.sidecar_path, {**side, "device_name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"})
    with pytest.raises(EngineMismatch, match=r"GPU: engine built for 'NVIDIA Jetson AGX Orin'.*skugen build"):
        trt_backend.TensorRTRunner(bundle, "fp16").activate()
    atomic_write_json(rec.sidecar_path, {**side, "tensorrt_version": "10.0.0.0"})
    with pytest.raises(EngineMismatch, match="TensorRT version"):
        trt_backend.TensorRTRunner(bundle, "fp16", build_missing=False).activate()
    with trt_backend.TensorRTRunner(bundle, "fp16", rebuild=True) as r:  # rebuilt with the recorded profile
        assert r.record.built and r.info["max_batch"] == CFG.max_batch
    fresh = json.loads(rec.sidecar_path.read_text())
    assert fresh["device_name"] == side["device_name"] and fresh["tensorrt_version"] == side["tensorrt_version"]


def test_corrupted_plan_raises_engine_mismatch(bundle, engines):
    rec = trt_backend.engine_from_onnx(bundle, "int8", CFG)
    data = bytearray(rec.plan_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rec.plan_path.write_bytes(bytes(data))
    with pytest.raises(EngineMismatch, match="sha256"):
        trt_backend.TensorRTRunner(bundle, "int8").activate()
    assert trt_backend.engine_from_onnx(bundle, "int8", CFG).built  # a build repairs it


def test_missing_engine_without_build_missing(bundle, engines, tmp_path):
    b2 = tmp_path / "copy"
    shutil.copytree(bundle.root, b2, ignore=shutil.ignore_patterns("engines"))
    with pytest.raises(EngineMismatch, match="no fp16 TensorRT engine for this GPU"):
        trt_backend.TensorRTRunner(b2, "fp16", build_missing=False).activate()
