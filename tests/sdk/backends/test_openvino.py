"""The OpenVINO backend on the real CPU plugin (openvino is in the test install: `make install` adds the extra)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from skugen.backends import registry
from skugen.bundle import load_bundle
from skugen.errors import BackendUnavailable, InputError

ov = pytest.importorskip("openvino")
from skugen.backends import openvino as ovb  # noqa: E402


def _feed(bundle, n=3):
    rng = np.random.default_rng(0)
    return {"z": rng.standard_normal((n, bundle.spec.z_dim)).astype(np.float32),
            "onehot": np.eye(bundle.spec.n_classes, dtype=np.float32)[np.arange(n) % bundle.spec.n_classes]}


@pytest.fixture(scope="module")
def cgan(cgan_bundle):
    return load_bundle(cgan_bundle)


def test_fp32_matches_onnxruntime_and_reports_what_it_compiled(cgan):
    feed = _feed(cgan)
    with registry.runner_for(cgan, "onnxruntime", "fp32", threads=1) as r:
        want = r.infer(feed)
    with registry.runner_for(cgan, "openvino", "fp32", threads=1) as r:
        got = r.infer(feed)
        info = r.info
        meta = r.input_metadata()
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-4, rtol=1e-3)
    assert info["backend"] == "openvino" and info["execution_precision"] == "f32"
    assert info["intra_op_threads"] == 1 and "LATENCY" in info["performance_hint"]
    assert info["runtime_precisions"].get("f32", 0) > 0
    assert meta["z"].shape == (None, cgan.spec.z_dim) and meta["z"].dtype == np.float32


def test_int8_without_an_openvino_variant_runs_the_qdq_onnx_and_says_so(cgan_bundle_without_openvino_int8):
    cgan = load_bundle(cgan_bundle_without_openvino_int8)
    assert "int8" in cgan.precisions and "openvino" not in cgan.spec.models["int8"].variants
    with registry.runner_for(cgan, "openvino", "int8", threads=1) as r:
        out = r.infer(_feed(cgan))
        info = r.info
    assert "no OpenVINO INT8 variant" in info["model_source"]
    assert info["model_file"] == cgan.spec.models["int8"].file
    # The Q/DQ graph really executes int8 ops on the CPU plugin, not a float fallback.
    assert info["runtime_precisions"].get("i8", 0) + info["runtime_precisions"].get("u8", 0) > 0
    assert np.isfinite(next(iter(out.values()))).all()


def test_bf16_is_refused_where_the_cpu_has_no_native_bf16(cgan):
    native, why = ovb.native_bf16()
    if native:  # e.g. AMX / AVX512-BF16: the runner must accept it (it once refused its own "<Type: 'bfloat16'>")
        with registry.runner_for(cgan, "openvino", "bf16", threads=1) as r:
            out = r.infer(_feed(cgan))
            assert r.info["execution_precision"] == "bf16"
            assert r.info["runtime_precisions"].get("bf16", 0) > 0
        assert np.isfinite(next(iter(out.values()))).all()
    else:
        assert "BF16" not in ovb.cpu_capabilities()
        with pytest.raises(BackendUnavailable, match=r"no native BF16.*silently run f32.*Use precision 'fp32'"):
            registry.runner_for(cgan, "openvino", "bf16", threads=1).activate()


def test_precision_name_reads_openvino_types():
    assert ovb.precision_name(ov.Type.bf16) == "bf16" and ovb.precision_name(ov.Type.f32) == "f32"
    assert ovb.precision_name("<Type: 'bfloat16'>") == "bf16"  # what str() of the compiled hint gives
    assert ovb.precision_name("<Type: 'float32'>") == "f32" and ovb.precision_name("<Type: 'float16'>") == "f16"


def test_precisions_openvino_does_not_run(cgan):
    with pytest.raises(InputError, match=r"fp16 is a TensorRT engine precision.*'bf16'"):
        registry.runner_for(cgan, "openvino", "fp16")
    with pytest.raises(InputError, match="choose fp32, bf16 or int8"):
        registry.runner_for(cgan, "openvino", "int4")
    with pytest.raises(InputError, match=r"bf16 is an OpenVINO precision hint"):
        registry.runner_for(cgan, "onnxruntime", "bf16")


def test_bad_feeds_are_refused_even_unchecked(cgan):
    """The CPU plugin itself converts dtypes and accepts a wrong z width: the runner must refuse both."""
    feed = _feed(cgan)
    with registry.runner_for(cgan, "openvino", "fp32", threads=1) as r:
        for bad, match in [({**feed, "z": feed["z"].astype(np.int32)}, r"dtype int32, the model wants float32"),
                           ({**feed, "z": feed["z"][:, :-1]}, r"axis 1 must be"),
                           ({"z": feed["z"]}, r"missing \['onehot'\]"),
                           ({**feed, "z": feed["z"][0]}, r"wants rank 2")]:
            for check in (True, False):
                with pytest.raises(InputError, match=match):
                    r.infer(bad, check=check)
    with pytest.raises(RuntimeError, match="not active"):
        r.infer(feed)


def test_model_cache_lives_beside_the_bundle(cgan_bundle, tmp_path, monkeypatch):
    import shutil

    b = load_bundle(shutil.copytree(cgan_bundle, tmp_path / "b"))
    with registry.runner_for(b, "openvino", "fp32", threads=1) as r:
        assert r.info["cache_dir"] == str(b.root / "engines" / "openvino" / "f32")  # one directory per hint
    assert any((b.root / "engines" / "openvino").iterdir())  # the compiled blob OpenVINO cached
    load_bundle(b.root)  # an unhashed cache: the bundle still verifies
    # A bundle directory this process cannot write to (here: one that is gone) -> the user cache.
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    ro = ovb.cache_dir_for(type(b)(tmp_path / "gone", b.spec, b.manifest_sha256))
    assert ro == tmp_path / "cache" / "openvino" / f"{b.name}-{b.manifest_sha256[:16]}"


def test_cache_is_kept_per_precision_hint(diffusion_bundle, tmp_path):
    """OpenVINO 2026.4 keys its model cache without the precision hint: a bf16 compile imported the f32 blob of the
    same model and the diffusion text encoder returned NaN (this test's finiteness check failed that way before the
    fix, on an AMX CPU). Each hint now has its own cache directory."""
    import shutil

    b = load_bundle(shutil.copytree(diffusion_bundle, tmp_path / "b")).graph("text_encoder")
    tokens = np.array([[1, 5, 6, 2] + [0] * (b.spec.io.inputs[0].shape[1] - 4)] * 2, dtype=np.int64)
    with registry.runner_for(b, "openvino", "fp32", threads=1) as r:
        ref = r.infer({"tokens": tokens})["context"]
        assert r.info["cache_dir"].endswith("/f32")
    native, why = ovb.native_bf16()
    if not native:
        pytest.skip(f"the bf16 half needs a native-BF16 CPU: {why}")
    for _ in range(2):  # compiled into the cache, then imported from it
        with registry.runner_for(b, "openvino", "bf16", threads=1) as r:
            got = r.infer({"tokens": tokens})["context"]
            assert r.info["cache_dir"].endswith("/bf16") and r.info["execution_precision"] == "bf16"
        assert np.isfinite(got).all()
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05


def test_missing_openvino_names_the_extra(cgan, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    st = registry.backend_status("openvino")
    assert not st.usable and "pip install 'skugen[openvino]'" in st.reason
    with pytest.raises(BackendUnavailable, match=r"OpenVINO backend.*pip install 'skugen\[openvino\]'"):
        registry.runner_for(cgan, "openvino", "fp32")
    assert "openvino" not in registry.cpu_engines()


def test_threads_follow_skugen_num_threads(cgan, monkeypatch):
    monkeypatch.setenv("SKUGEN_NUM_THREADS", "1")
    with registry.runner_for(cgan, "openvino", "fp32") as r:
        assert r.info["intra_op_threads"] == 1
