"""`skugen export-triton`: every config.pbtxt parses as a Triton ModelConfig, declares the bundle's I/O
(names, data types, dims without the batch axis), the ensembles are wired consistently, the numpy
pre/post of the Python backend match the skugen runtime bit for bit, and a CPU simulation of each
ensemble (pre -> onnxruntime -> post) gives the runtime's images. No Triton server is needed.

Bundles: the shared session fixtures `cgan_bundle` / `sr_bundle` of tests/conftest.py (never modified
in place: copied first).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is in the test extra")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402

from skugen import cli, prepost  # noqa: E402
from skugen.bundle import load_bundle  # noqa: E402
from skugen.deploy import mark_engine_verified  # noqa: E402
from skugen.errors import InputError  # noqa: E402
from skugen.kernels.reference import NumpyProcessor  # noqa: E402
from skugen.kernels.reference import postprocess as ref_post  # noqa: E402
from skugen.triton import TritonConfig, export_triton, pbtxt  # noqa: E402
from triton_fakes import configs as _configs  # noqa: E402  (tests/support)
from triton_fakes import fake_engine, load_model_py, pb_utils, triton_model  # noqa: E402

MC = model_config_pb2.ModelConfig
DT = model_config_pb2.DataType
ORT_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(uint8)": "TYPE_UINT8",
             "tensor(int64)": "TYPE_INT64"}


@pytest.fixture(scope="module")
def gen_bundle(cgan_bundle) -> Path:
    return Path(cgan_bundle)


@pytest.fixture(scope="module")
def enh_bundle(sr_bundle) -> Path:
    return Path(sr_bundle)


@pytest.fixture(scope="module", params=["gen", "enh"])
def exported(request, gen_bundle, enh_bundle, tmp_path_factory):
    """(bundle, repo, {model name: ModelConfig}) for each bundle kind."""
    bpath = gen_bundle if request.param == "gen" else enh_bundle
    repo = export_triton(bpath, tmp_path_factory.mktemp("triton") / "repo")
    return load_bundle(bpath), repo, _configs(repo)


def _sig(t) -> tuple[str, tuple[int, ...]]:
    return DT.Name(t.data_type), tuple(t.dims)


def _manifest_dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape[1:]]


# ----------------------------------------------------------------------------- configs


def test_repository_layout(exported):
    b, repo, cfgs = exported
    n = b.name
    assert {f"{n}", f"{n}_onnx", f"{n}_pre", f"{n}_post"} <= set(cfgs)
    assert (repo / f"{n}_onnx/1/model.onnx").read_bytes() == b.model_path("fp32").read_bytes()
    for role in ("pre", "post"):
        assert (repo / f"{n}_{role}/1/model.py").is_file()
    assert (repo / n / "1").is_dir(), "an ensemble still needs a version directory"
    s = json.loads((repo / "skugen_triton.json").read_text())
    assert s["bundle"]["manifest_sha256"] == b.manifest_sha256 and s["plans"] == {}
    assert not [m for m in cfgs.values() if m.platform == "tensorrt_plan"], "no engines built -> no plans"


def test_onnx_model_config_matches_the_bundle(exported):
    b, repo, cfgs = exported
    c = cfgs[f"{b.name}_onnx"]
    assert c.platform == "onnxruntime_onnx"
    assert c.max_batch_size == b.spec.io.to_dict().get("max_batch", 64)
    assert [g.kind for g in c.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    db = c.dynamic_batching
    assert db.max_queue_delay_microseconds == 100 and list(db.preferred_batch_size)
    assert all(1 <= p <= c.max_batch_size for p in db.preferred_batch_size)
    for cfg_ts, spec in ((c.input, b.spec.io.to_dict()["inputs"]), (c.output, b.spec.io.to_dict()["outputs"])):
        assert [t.name for t in cfg_ts] == [s["name"] for s in spec]
        for t, s in zip(cfg_ts, spec):
            assert DT.Name(t.data_type) == {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}[s["dtype"]]
            assert list(t.dims) == _manifest_dims(s["shape"]), "dims exclude the batch axis, -1 = dynamic"
    # ... and the ONNX file itself agrees (what Triton's onnxruntime backend checks at load time)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(repo / f"{b.name}_onnx/1/model.onnx"), providers=["CPUExecutionProvider"])
    for cfg_ts, ort_ts in ((c.input, sess.get_inputs()), (c.output, sess.get_outputs())):
        by = {t.name: t for t in cfg_ts}
        assert set(by) == {t.name for t in ort_ts}
        for t in ort_ts:
            assert DT.Name(by[t.name].data_type) == ORT_TYPES[t.type]
            assert list(by[t.name].dims) == [d if isinstance(d, int) else -1 for d in t.shape[1:]]


def test_python_steps_declare_the_client_and_model_tensors(exported):
    b, _, cfgs = exported
    pre, post, onnx = cfgs[f"{b.name}_pre"], cfgs[f"{b.name}_post"], cfgs[f"{b.name}_onnx"]
    assert pre.backend == post.backend == "python"
    assert {_sig(t) for t in pre.output} == {_sig(t) for t in onnx.input}
    assert [_sig(t) for t in post.input] == [_sig(onnx.output[0])]
    (img,) = post.output
    c, h, w = onnx.output[0].dims
    assert (img.name, DT.Name(img.data_type), list(img.dims)) == ("image", "TYPE_UINT8", [h, w, c])
    if b.kind == "generator":
        assert [_sig(t) for t in pre.input] == [("TYPE_STRING", (1,)), ("TYPE_INT64", (1,))]
        assert [t.name for t in pre.input] == ["label", "seed"]
        assert json.loads(pre.parameters["class_names"].string_value) == b.class_names
    else:
        assert [t.name for t in pre.input] == ["photo"]
        assert [_sig(t) for t in pre.input] == [("TYPE_UINT8", (-1, -1, 3))]


def _check_ensemble(cfgs: dict[str, MC], name: str) -> list[str]:
    """Triton's ensemble rules: steps name existing models, every step input is fed by an ensemble input
    or an earlier step's output of the same type and dims, each tensor is produced once, every ensemble
    input is used and every ensemble output produced. Returns the step model names."""
    ens = cfgs[name]
    assert ens.platform == "ensemble"
    avail = {t.name: _sig(t) for t in ens.input}
    used: set[str] = set()
    steps = []
    for step in ens.ensemble_scheduling.step:
        assert step.model_name in cfgs, f"step model {step.model_name!r} is not in the repository"
        m = cfgs[step.model_name]
        steps.append(step.model_name)
        assert m.max_batch_size >= ens.max_batch_size, "ensemble max_batch_size must not exceed a step's"
        m_in, m_out = {t.name: _sig(t) for t in m.input}, {t.name: _sig(t) for t in m.output}
        assert set(step.input_map) == set(m_in), f"{step.model_name}: every input must be mapped"
        for k, v in step.input_map.items():
            assert v in avail, f"{step.model_name}.{k} <- {v!r}, which nothing produced yet"
            assert avail[v] == m_in[k], f"{step.model_name}.{k}: {avail[v]} != {m_in[k]}"
            used.add(v)
        assert set(step.output_map) <= set(m_out)
        for k, v in step.output_map.items():
            assert v not in avail, f"ensemble tensor {v!r} produced twice"
            avail[v] = m_out[k]
    assert used >= {t.name for t in ens.input}, "an ensemble input is never used"
    for t in ens.output:
        assert avail.get(t.name) == _sig(t), f"ensemble output {t.name} not produced with its declared type"
    return steps


def test_ensemble_wiring(exported):
    b, _, cfgs = exported
    assert _check_ensemble(cfgs, b.name) == [f"{b.name}_pre", f"{b.name}_onnx", f"{b.name}_post"]


# ----------------------------------------------------------------------------- the numpy pre/post


@pytest.fixture(scope="module")
def model_py(gen_bundle, tmp_path_factory):
    repo = export_triton(gen_bundle, tmp_path_factory.mktemp("t") / "repo")
    return load_model_py(repo / f"{load_bundle(gen_bundle).name}_pre" / "1" / "model.py")


# Run in a fresh interpreter where skugen, torch, PIL and onnxruntime cannot be imported (as in a Triton
# container): model.py and the skugen_prepost/ copies beside it must load and run with numpy alone.
_NUMPY_ONLY = r"""
import importlib.util, json, sys
import numpy as np

class Block:
    BLOCKED = ("skugen", "torch", "PIL", "onnxruntime", "tritonclient")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is not in the Triton container")
        return None

sys.meta_path.insert(0, Block())
spec = importlib.util.spec_from_file_location("model", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
z, oh = mod.pre_generator(np.array([[b"0"], [b"1"]], dtype=object), np.array([[5], [6]]), [], 2, 4)
img = mod.post(np.zeros((1, 3, 2, 2), np.float32), (-1.0, 1.0))
lr = mod.pre_enhancer(np.zeros((1, 2, 2, 3), np.uint8), 0.5, 0.5)
print(json.dumps({"loaded": sorted(sys.modules), "files": sorted(str(getattr(m, "__file__", None))
      for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("skugen_prepost")),
      "shapes": [z.shape, oh.shape, img.shape, lr.shape]}))
"""


def test_model_py_needs_only_numpy(model_py):
    import subprocess
    import sys

    assert model_py.pb_utils is None
    path = Path(model_py.__file__)
    r = subprocess.run([sys.executable, "-c", _NUMPY_ONLY, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["shapes"] == [[2, 4], [2, 2], [1, 2, 2, 3], [1, 3, 2, 2]]
    assert not [m for m in out["loaded"] if m.split(".")[0] in ("skugen", "torch", "PIL", "onnxruntime")]
    # the arithmetic really ran from the copies beside model.py
    assert {Path(f).relative_to(path.parent).as_posix() for f in out["files"]} >= {
        "skugen_prepost/gen_inputs.py", "skugen_prepost/kernels/reference.py", "skugen_prepost/kernels/_spec.py"}


def test_prepost_copies_are_skugens_own_sources(exported):
    """Every copied module is byte-identical to the skugen source it names, and skugen_triton.json and
    the README list it with that file's sha256."""
    import hashlib
    import importlib.util

    from skugen import __version__
    from skugen.triton import PREPOST_SOURCES

    b, repo, _ = exported
    listed = json.loads((repo / "skugen_triton.json").read_text())["prepost_sources"]
    readme = (repo / "README.md").read_text()
    assert f"skugen {__version__}'s own" in readme
    assert {rel for rel, v in listed.items() if v["source"] in PREPOST_SOURCES.values()} == {
        f"skugen_prepost/{rel}" for rel in PREPOST_SOURCES}
    for role in ("pre", "post"):
        vdir = repo / f"{b.name}_{role}" / "1"
        on_disk = {f.relative_to(vdir).as_posix() for f in vdir.rglob("*")
                   if f.is_file() and "__pycache__" not in f.parts}
        assert on_disk == set(listed), "every file of a Python model is listed, and only those"
        for rel, v in listed.items():
            data = (vdir / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == v["sha256"]
            if v["source"] in PREPOST_SOURCES.values():
                assert data == Path(importlib.util.find_spec(v["source"]).origin).read_bytes(), rel
                assert f"`{v['sha256']}`" in readme
            elif v["source"] is None:
                assert data == b"" and rel.endswith("__init__.py")
    model_src = Path(__file__).resolve().parents[2] / "sdk" / "triton_files" / "model.py"
    assert (repo / f"{b.name}_pre" / "1" / "model.py").read_bytes() == model_src.read_bytes()


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_post_matches_the_runtime_bit_for_bit(model_py, value_range):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 3, 7, 5)) * 0.8).astype(np.float32)
    x[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, 5.0]
    got = model_py.post(x, value_range)
    want = ref_post(x, value_range, "RGB")
    assert got.dtype == np.uint8 and got.shape == (3, 7, 5, 3)
    np.testing.assert_array_equal(got, want)
    g1 = model_py.post(x[:, :1], value_range)
    np.testing.assert_array_equal(g1, ref_post(np.ascontiguousarray(x[:, :1]), value_range, "GRAY"))


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (0.5, 0.5), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def test_pre_enhancer_matches_the_runtime(model_py, mean, std):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    got = model_py.pre_enhancer(imgs, mean, std)
    from skugen.kernels.reference import preprocess

    want = preprocess(imgs, (9, 11), "RGB", mean, std)  # same size: the resize is the identity
    assert got.dtype == np.float32 and got.shape == (2, 3, 9, 11)
    np.testing.assert_array_equal(got, want)
    if np.ndim(mean) == 0:
        np.testing.assert_array_equal(got, prepost.images_to_unit_nchw(list(imgs), NumpyProcessor(), mean, std))


def test_pre_generator_matches_the_runtime(model_py, gen_bundle):
    b = load_bundle(gen_bundle)
    names, n = b.class_names, len(b.class_names)
    z_dim = b.spec.io.to_dict().get("z_dim") or b.spec.io.to_dict()["inputs"][0]["shape"][-1]
    queries = []
    for name in names:  # full names in odd spellings, '/'-parts, indices
        queries += [name, name.upper().replace(" ", "_")] + [p for p in name.split("/") if p.strip()]
    queries += [str(i) for i in range(n)]
    labels = np.array([[q.encode()] for q in queries], dtype=object)  # (B, 1) BYTES, as Triton delivers it
    seeds = np.arange(len(queries), dtype=np.int64)[:, None] * 7919
    z, oh = model_py.pre_generator(labels, seeds, names, n, z_dim)
    want = prepost.resolve_labels(queries, None, names, n)
    np.testing.assert_array_equal(oh, prepost.onehot(want, n))
    for i, s in enumerate(seeds[:, 0]):
        np.testing.assert_array_equal(z[i], prepost.make_latents(int(s), 1, z_dim)[0])  # = skugen generate --seed s
    assert z.dtype == oh.dtype == np.float32
    with pytest.raises(ValueError, match="unknown class 'hat'. Valid classes"):
        model_py.pre_generator(np.array([[b"hat"]], dtype=object), np.array([[0]]), names, n, z_dim)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*128\)"):
        model_py.pre_generator(np.array([[b"0"]], dtype=object), np.array([[-1]]), names, n, z_dim)


def test_triton_python_model_execute(gen_bundle, tmp_path):
    b = load_bundle(gen_bundle)
    repo = export_triton(b, tmp_path / "repo")
    cfgs = _configs(repo)
    pb = pb_utils()
    pre = triton_model(repo, f"{b.name}_pre", pb)
    T = pb.Tensor
    ok = {"label": T("label", np.array([[b"1"], [b"0"]], dtype=object)),
          "seed": T("seed", np.array([[3], [4]], dtype=np.int64))}
    bad = {"label": T("label", np.array([[b"not-a-class"]], dtype=object)),
           "seed": T("seed", np.array([[3]], dtype=np.int64))}
    r_ok, r_bad = pre.execute([ok, bad])
    assert r_ok.error is None and r_bad.error is not None and "unknown class" in r_bad.error.msg
    outs = {t.name(): t.as_numpy() for t in r_ok.output_tensors}
    assert outs["z"].shape[0] == outs["onehot"].shape[0] == 2 and outs["onehot"][0, 1] == 1.0
    post = triton_model(repo, f"{b.name}_post", pb)
    (r,) = post.execute([{"raw": T("raw", np.zeros((2, 1, 32, 32), np.float32))}])
    assert r.output_tensors[0].name() == "image" and r.output_tensors[0].as_numpy().shape == (2, 32, 32, 1)


# ----------------------------------------------------------------------------- the whole ensemble on CPU


def _run_ensemble(repo: Path, cfgs: dict[str, MC], name: str, feed: dict[str, np.ndarray]) -> dict:
    """Execute an ensemble the way Triton would, with the onnxruntime and numpy steps in-process."""
    import onnxruntime as ort

    tensors = dict(feed)
    for step in cfgs[name].ensemble_scheduling.step:
        m = cfgs[step.model_name]
        ins = {k: tensors[v] for k, v in step.input_map.items()}
        if m.backend == "python":
            mod = load_model_py(repo / m.name / "1" / "model.py")
            params = {k: v.string_value for k, v in m.parameters.items()}
            outs = mod.Step(params).run(ins)
        else:
            assert m.platform == "onnxruntime_onnx"
            sess = ort.InferenceSession(str(repo / m.name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
            outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, ins)))
        for k, v in step.output_map.items():
            tensors[v] = outs[k]
    return {t.name: tensors[t.name] for t in cfgs[name].output}


def _ort(bundle, feed):
    import onnxruntime as ort

    s = ort.InferenceSession(str(bundle.model_path("fp32")), providers=["CPUExecutionProvider"])
    return s.run(None, feed)[0]


def test_generator_ensemble_gives_the_runtime_images(gen_bundle, tmp_path):
    b = load_bundle(gen_bundle)
    repo = export_triton(b, tmp_path / "repo")
    cfgs = _configs(repo)
    n, names = len(b.class_names), b.class_names
    z_dim = b.spec.io.to_dict().get("z_dim") or b.spec.io.to_dict()["inputs"][0]["shape"][-1]
    labels, seeds = [names[-1], "0", names[2].lower()], [11, 12, 2**40]
    got = _run_ensemble(repo, cfgs, b.name, {"label": np.array([[s.encode()] for s in labels], dtype=object),
                                             "seed": np.array(seeds, dtype=np.int64)[:, None]})["image"]
    z = np.concatenate([prepost.make_latents(s, 1, z_dim) for s in seeds])
    oh = prepost.onehot(prepost.resolve_labels(labels, None, names, n), n)
    vr = (b.spec.to_dict().get("postprocess") or {}).get("value_range", "-1,1")
    want = ref_post(_ort(b, {"z": z, "onehot": oh}), vr, "GRAY" if b.spec.io.to_dict()["outputs"][0]["shape"][1] == 1 else "RGB")
    np.testing.assert_array_equal(got, want)


def test_enhancer_ensemble_gives_the_runtime_images(enh_bundle, tmp_path):
    b = load_bundle(enh_bundle)
    repo = export_triton(b, tmp_path / "repo")
    cfgs = _configs(repo)
    photo = np.random.default_rng(3).integers(0, 256, (1, 20, 24, 3), dtype=np.uint8)
    got = _run_ensemble(repo, cfgs, b.name, {"photo": photo})["image"]
    pre = b.spec.to_dict().get("preprocess") or {}
    lr = prepost.images_to_unit_nchw([photo[0]], NumpyProcessor(), pre.get("mean", 0.0), pre.get("std", 1.0))
    vr = (b.spec.to_dict().get("postprocess") or {}).get("value_range", "0,1")
    want = ref_post(_ort(b, {"lr": lr}), vr, "RGB")
    assert got.shape == (1, 40, 48, 3)
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- TensorRT plans


def test_plan_models_from_built_engines(gen_bundle, tmp_path):
    bdir = Path(shutil.copytree(gen_bundle, tmp_path / "b"))
    b = load_bundle(bdir)
    fp32_sha = b.model_sha256("fp32")
    # strongly typed engines: precision = the graph built from. The fixture bundle ships no model.fp16.onnx, so
    # its plans are fp32 (from model.fp32.onnx); an "fp16" engine claiming the fp32 graph is not served.
    assert "fp16" not in b.precisions
    e87 = fake_engine(bdir, "fp32", "8.7", onnx_sha=fp32_sha, built_at="2025-01-01T00:00:00+00:00", max_batch=4)
    fake_engine(bdir, "fp32", "9.0", onnx_sha=fp32_sha, built_at="2025-01-02T00:00:00+00:00", max_batch=4)
    # no fp16 graph:
    fake_engine(bdir, "fp16", "8.7", onnx_sha=fp32_sha, built_at="2025-01-03T00:00:00+00:00", max_batch=4)
    fake_engine(bdir, "int8", "8.7", onnx_sha="0" * 64, max_batch=32)  # stale: another ONNX
    repo = export_triton(bdir, tmp_path / "repo")
    cfgs = _configs(repo)
    trt, gpu = cfgs[f"{b.name}_trt_fp32"], f"{b.name}_gpu_fp32"
    assert f"{b.name}_trt_int8" not in cfgs, "a stale engine must not be served"
    assert f"{b.name}_trt_fp16" not in cfgs, "an fp16 plan needs the bundle's fp16 graph"
    assert trt.platform == "tensorrt_plan"
    assert [g.kind for g in trt.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert trt.max_batch_size == min(4, b.spec.io.to_dict().get("max_batch", 64)), "capped by the engine profile"
    assert dict(trt.cc_model_filenames) == {"8.7": "model.sm87.plan", "9.0": "model.sm90.plan"}
    assert (repo / trt.name / "1" / "model.sm87.plan").read_bytes() == (e87 / "engine.plan").read_bytes()
    assert [_sig(t) for t in trt.input] == [_sig(t) for t in cfgs[f"{b.name}_onnx"].input]
    assert [_sig(t) for t in trt.output] == [_sig(t) for t in cfgs[f"{b.name}_onnx"].output]
    assert _check_ensemble(cfgs, gpu)[1] == trt.name
    assert cfgs[gpu].max_batch_size == trt.max_batch_size
    # --plans verified keeps only engines install.sh verified on their device
    assert not any(m.platform == "tensorrt_plan" for m in _configs(
        export_triton(bdir, tmp_path / "r2", TritonConfig(plans="verified"))).values())
    shutil.rmtree(bdir / "engines" / e87.name.replace("sm87", "sm90"))
    mark_engine_verified(bdir, "fp32")
    cfgs3 = _configs(export_triton(bdir, tmp_path / "r3", TritonConfig(plans="verified")))
    one = cfgs3[f"{b.name}_trt_fp32"]
    assert one.default_model_filename == "model.plan" and not one.cc_model_filenames
    assert (tmp_path / "r3" / one.name / "1" / "model.plan").is_file()


# ----------------------------------------------------------------------------- options, errors, CLI


def test_options_reach_the_configs(gen_bundle, tmp_path):
    b = load_bundle(gen_bundle)
    cfg = TritonConfig(name="shop gen", precision=b.precisions[-1], max_batch=6, preferred_batch_sizes=(2, 6),
                       max_queue_delay_us=500, cpu_instances=2, ort_threads=1)
    cfgs = _configs(export_triton(b, tmp_path / "repo", cfg))
    c = cfgs["shop_gen_onnx"]
    assert c.max_batch_size == 6 and list(c.dynamic_batching.preferred_batch_size) == [2, 6]
    assert c.dynamic_batching.max_queue_delay_microseconds == 500 and c.instance_group[0].count == 2
    assert c.parameters["intra_op_thread_count"].string_value == "1"
    assert (tmp_path / "repo/shop_gen_onnx/1/model.onnx").read_bytes() == b.model_path(b.precisions[-1]).read_bytes()
    _check_ensemble(cfgs, "shop_gen")


def test_errors(gen_bundle, tmp_path):
    with pytest.raises(InputError, match="no 'fp64' ONNX"):
        export_triton(gen_bundle, tmp_path / "r", TritonConfig(precision="fp64"))
    with pytest.raises(InputError, match="preferred batch sizes"):
        export_triton(gen_bundle, tmp_path / "r", TritonConfig(max_batch=4, preferred_batch_sizes=(8,)))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a skugen Triton repository"):
        export_triton(gen_bundle, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    repo = export_triton(gen_bundle, tmp_path / "again")
    assert export_triton(gen_bundle, repo) == repo, "re-exporting over our own repository is fine"


def test_pbtxt_strings_round_trip():
    tricky = 'a "quoted" \\ back\nslash, café, 商品'
    msg = pbtxt({"name": tricky, "parameters": [{"key": "k", "value": {"string_value": tricky}}]})
    cfg = text_format.Parse(msg, MC())
    assert cfg.name == tricky and cfg.parameters["k"].string_value == tricky


def test_cli_export_triton(gen_bundle, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["export-triton", "--help"])
    h = capsys.readouterr().out
    assert "Examples:" in h and "tritonserver" in h and "perf_analyzer" in h
    assert cli.main(["export-triton", str(gen_bundle), "--out", str(tmp_path / "repo"), "--max-batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "tritonserver --model-repository=" in out
    assert _configs(tmp_path / "repo")[f"{load_bundle(gen_bundle).name}_onnx"].max_batch_size == 4
    rc = cli.main(["export-triton", str(gen_bundle), "--out", str(tmp_path / "r2"), "--precision", "fp64"])
    assert rc == 2 and "fp64" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_custom_bundles(tmp_path_factory):
    """Two users' generators, named by their I/O specs (`name`), exported as the pipeline does (NAME-student)."""
    pytest.importorskip("torch")
    import warnings

    from skugen.export import custom
    from skugen.export.bundle import BundleConfig, export_bundle

    fix = Path(__file__).parents[1] / "export" / "fixtures" / "user_models.py"
    spec = {"kind": "generator", "z_dim": 16, "n_classes": 4, "conditioning": "index", "out_ch": 3,
            "image_size": 16, "output_range": [0, 1]}
    d = tmp_path_factory.mktemp("custom")
    out = []
    for name in ("mugs", "caps"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = custom.import_model(f"{fix}:make_generator", {**spec, "name": name}, d / name)
        out.append(export_bundle(m, d / f"{name}-bundle", BundleConfig(name=f"{name}-student")))
    return out


def test_two_custom_models_share_one_repository(two_custom_bundles, tmp_path):
    a, b = (load_bundle(p) for p in two_custom_bundles)
    assert (a.name, b.name) == ("mugs-student", "caps-student")
    repo = export_triton(a.root, tmp_path / "repo")
    export_triton(b.root, repo)  # the second bundle joins the first instead of replacing it
    cfgs = {f.parent.name: text_format.Parse(f.read_text(), model_config_pb2.ModelConfig())
            for f in repo.glob("*/config.pbtxt")}
    for n, bundle in (("mugs-student", a), ("caps-student", b)):
        _check_ensemble(cfgs, n)
        assert (repo / f"{n}_onnx/1/model.onnx").read_bytes() == bundle.model_path("fp32").read_bytes()
    s = json.loads((repo / "skugen_triton.json").read_text())
    assert set(s["repository"]) == {"mugs-student", "caps-student"}
    assert "Also served from this repository: `mugs-student`" in (repo / "README.md").read_text()
    export_triton(a.root, repo)  # re-exporting one of them updates it and keeps the other
    assert set(json.loads((repo / "skugen_triton.json").read_text())["repository"]) == {"mugs-student",
                                                                                       "caps-student"}
    assert (repo / "caps-student_onnx/1/model.onnx").is_file()


def test_custom_bundle_names_reach_the_jetson_package(two_custom_bundles, tmp_path):
    from skugen.deploy import deploy, package_name

    b = load_bundle(two_custom_bundles[0])
    assert package_name(b, "jetson-orin") == "skugen-mugs-student-jetson-orin"
    tar = deploy(b, "jetson-orin", tmp_path / "pkg.tar.gz")
    import tarfile

    with tarfile.open(tar) as tf:
        assert tf.getnames()[0] == "skugen-mugs-student-jetson-orin"
