"""`skugen export-triton` on a diffusion bundle: the sampling-loop (BLS) repository.

No Triton server runs here. What is checked without one: every config.pbtxt parses as a Triton ModelConfig
and declares the graphs' own I/O; the loop model's copies are skugen's sources byte for byte; and the loop
model's `TritonPythonModel.execute` run with a stand-in for `triton_python_backend_utils` whose BLS
`InferenceRequest.exec()` runs the repository's own model files on ONNX Runtime, gives the images
`skugen.load(bundle).generate(prompts, seed)` gives, bit for bit. The stand-in cannot catch what only a real
server does: tensor transport, BYTES encoding on the wire, scheduling of concurrent requests, or a Triton
release that rejects a config field (tritonclient's ModelConfig proto parsing catches unknown fields).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is in the test extra")
from tritonclient.grpc import model_config_pb2  # noqa: E402

import skugen  # noqa: E402
from skugen import cli  # noqa: E402
from skugen.bundle import load_bundle  # noqa: E402
from skugen.errors import InputError  # noqa: E402
from skugen.triton import PREPOST_SOURCES, TritonConfig, export_triton  # noqa: E402
from triton_fakes import configs as _configs  # noqa: E402  (tests/support)
from triton_fakes import fake_engine, pb_utils, triton_model  # noqa: E402

DT = model_config_pb2.DataType
PROMPTS = ["a photo of a sneaker", "a dark dress", "a bag"]


@pytest.fixture(scope="module")
def repo(diffusion_bundle, tmp_path_factory) -> Path:
    return export_triton(diffusion_bundle, tmp_path_factory.mktemp("triton") / "repo")


# ----------------------------------------------------------------------------- a BLS stand-in on ONNX Runtime


def _loop_model(repo: Path, name: str, calls: list | None = None, fail: str | None = None):
    """The loop model with a BLS stand-in that runs REPO/<model>/1/model.onnx on ONNX Runtime (`fail`: that model
    answers with an error instead); each BLS call is logged in `calls` as (model, {input: shape})."""
    import onnxruntime as ort

    sessions: dict[str, ort.InferenceSession] = {}
    log = calls if calls is not None else []

    def bls(model: str, outputs: list, feed: dict):
        log.append((model, {k: v.shape for k, v in feed.items()}))
        if model == fail:
            return f"{model} is unavailable"
        if model not in sessions:
            sessions[model] = ort.InferenceSession(str(repo / model / "1" / "model.onnx"),
                                                   providers=["CPUExecutionProvider"])
        return dict(zip(outputs, sessions[model].run(outputs, feed)))

    pb = pb_utils(bls)
    return triton_model(repo, name, pb), pb


def _request(pb, prompts, seed=None, steps=None, guidance=None) -> dict:
    r = {"prompt": pb.Tensor("prompt", np.array([p.encode() for p in prompts], dtype=object))}
    if seed is not None:
        r["seed"] = pb.Tensor("seed", np.array([seed], dtype=np.int64))
    if steps is not None:
        r["steps"] = pb.Tensor("steps", np.array([steps], dtype=np.int32))
    if guidance is not None:
        r["guidance"] = pb.Tensor("guidance", np.array([guidance], dtype=np.float32))
    return r


def _outputs(resp) -> dict[str, np.ndarray]:
    assert resp.error is None, resp.error.msg
    return {t.name(): t.as_numpy() for t in resp.output_tensors}


# ----------------------------------------------------------------------------- the repository


def test_layout_and_configs(repo, diffusion_bundle):
    b = load_bundle(diffusion_bundle)
    cfgs = _configs(repo)
    n = b.name
    assert set(cfgs) == {n, f"{n}_text_onnx", f"{n}_denoiser_onnx"}
    text, den, loop = cfgs[f"{n}_text_onnx"], cfgs[f"{n}_denoiser_onnx"], cfgs[n]
    assert text.platform == den.platform == "onnxruntime_onnx"
    assert [t.name for t in den.input] == list(b.spec.inputs) and den.max_batch_size == b.spec.io.max_batch
    assert den.HasField("dynamic_batching"), "concurrent requests share denoiser batches"
    assert [t.name for t in text.input] == ["tokens"]
    assert (repo / f"{n}_text_onnx/1/model.onnx").read_bytes() == b.graph("text_encoder").model_path("fp32").read_bytes()
    assert (repo / f"{n}_denoiser_onnx/1/model.onnx").read_bytes() == b.model_path("fp32").read_bytes()
    assert loop.backend == "python" and loop.max_batch_size == 0
    ins = {t.name: (DT.Name(t.data_type), list(t.dims), t.optional) for t in loop.input}
    c, h, w = b.spec.io.outputs[0].shape[1:]
    assert ins == {"prompt": ("TYPE_STRING", [-1], False), "seed": ("TYPE_INT64", [1], False),
                   "steps": ("TYPE_INT32", [1], True), "guidance": ("TYPE_FP32", [1], True)}
    assert {t.name: list(t.dims) for t in loop.output} == {"image": [-1, h, w, c], "unknown_words": [-1]}
    p = {k: v.string_value for k, v in loop.parameters.items()}
    assert p["text_model"] == f"{n}_text_onnx" and p["denoiser_model"] == f"{n}_denoiser_onnx"
    assert int(p["steps"]) == b.spec.diffusion.steps and int(p["max_steps"]) == b.spec.diffusion.max_steps
    s = json.loads((repo / "skugen_triton.json").read_text())
    assert s["bundle"]["kind"] == "diffusion" and list(s["entry_points"]) == [n] and s["plans"] == {}


def test_loop_files_are_skugens_own(repo, diffusion_bundle):
    b = load_bundle(diffusion_bundle)
    vdir = repo / b.name / "1"
    listed = json.loads((repo / "skugen_triton.json").read_text())["prepost_sources"]
    on_disk = {f.relative_to(vdir).as_posix() for f in vdir.rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    assert on_disk == set(listed)
    assert (vdir / "vocab.json").read_bytes() == (diffusion_bundle / b.spec.diffusion.vocab).read_bytes()
    for rel, module in PREPOST_SOURCES.items():
        data = (vdir / "skugen_prepost" / rel).read_bytes()
        assert data == Path(importlib.util.find_spec(module).origin).read_bytes(), rel
    for rel, v in listed.items():
        assert hashlib.sha256((vdir / rel).read_bytes()).hexdigest() == v["sha256"], rel
    readme = (repo / "README.md").read_text()
    assert "tritonserver --model-repository" in readme and f'c.infer("{b.name}"' in readme
    assert all(f"`{v['sha256']}`" in readme for v in listed.values())


# ----------------------------------------------------------------------------- the loop gives the runtime's images


@pytest.mark.parametrize("kw", [{}, {"steps": 2, "guidance": 0.0}, {"steps": 3, "guidance": 2.5}])
def test_loop_model_gives_the_runtime_images(repo, diffusion_bundle, kw):
    b = load_bundle(diffusion_bundle)
    calls: list = []
    m, pb = _loop_model(repo, b.name, calls)
    (resp,) = m.execute([_request(pb, PROMPTS + ["a photo of a zyzzyva"], seed=7, **kw)])
    out = _outputs(resp)
    with skugen.load(diffusion_bundle, backend="onnxruntime", precision="fp32") as pipe:
        want = pipe.generate(prompts=PROMPTS + ["a photo of a zyzzyva"], seed=7, **kw)
    np.testing.assert_array_equal(out["image"], want.images)
    assert [json.loads(u) for u in out["unknown_words"]] == want.unknown_words and want.unknown_words[-1] == ["zyzzyva"]
    steps = kw.get("steps", b.spec.diffusion.steps)
    den = [c for c in calls if c[0].endswith("_denoiser_onnx")]
    assert len(den) == steps == want.sampling["denoiser_calls"]
    rows = {c[1]["x"][0] for c in den}
    assert rows == {len(PROMPTS) + 1 if kw.get("guidance", b.spec.diffusion.guidance) == 1.0 else 2 * (len(PROMPTS) + 1)}
    assert [c[0] for c in calls].count(f"{b.name}_text_onnx") == 1, "the text encoder runs once per request"


def test_bad_requests_are_answered_and_the_rest_served(repo, diffusion_bundle):
    b = load_bundle(diffusion_bundle)
    m, pb = _loop_model(repo, b.name)
    good = _request(pb, ["a bag"], seed=1)
    bad = {"empty prompt": (_request(pb, [""], seed=1), "empty"),
           "steps 0": (_request(pb, ["a bag"], seed=1, steps=0), "outside"),
           "too many steps": (_request(pb, ["a bag"], seed=1, steps=b.spec.diffusion.max_steps + 1), "outside"),
           "nan guidance": (_request(pb, ["a bag"], seed=1, guidance=float("nan")), "guidance"),
           "negative guidance": (_request(pb, ["a bag"], seed=1, guidance=-1.0), "guidance"),
           "no seed": (_request(pb, ["a bag"]), "seed"),
           "long prompt": (_request(pb, [" ".join(["bag"] * 200)], seed=1), "context")}
    resps = m.execute([good] + [r for r, _ in bad.values()])
    assert resps[0].error is None and _outputs(resps[0])["image"].shape[0] == 1
    for (what, (_, msg)), r in zip(bad.items(), resps[1:]):
        assert r.error is not None and msg in r.error.msg.lower(), (what, r.error and r.error.msg)
    for what, (req, _) in bad.items():  # each is the runtime's own InputError
        prompts = [p.decode() for p in req["prompt"].as_numpy()]
        kw = {k: req[k].as_numpy()[0].item() for k in ("steps", "guidance") if k in req}
        if "seed" not in req:
            continue
        with skugen.load(diffusion_bundle, backend="onnxruntime") as pipe, pytest.raises(InputError):
            pipe.generate(prompts=prompts, seed=1, **kw)


def test_a_failing_graph_model_fails_the_request_not_the_server(repo, diffusion_bundle):
    b = load_bundle(diffusion_bundle)
    m, pb = _loop_model(repo, b.name, fail=f"{b.name}_denoiser_onnx")
    (r,) = m.execute([_request(pb, ["a bag"], seed=1)])
    assert r.error is not None and "denoiser_onnx" in r.error.msg and "unavailable" in r.error.msg


# ----------------------------------------------------------------------------- TensorRT plans


def test_plans_give_a_gpu_loop(diffusion_bundle, tmp_path):
    bdir = Path(shutil.copytree(diffusion_bundle, tmp_path / "b"))
    fake_engine(bdir, "fp32")
    text_engine = fake_engine(bdir, "fp32", graph="text_encoder")
    b = load_bundle(bdir)
    n = b.name
    repo = export_triton(b, tmp_path / "repo")
    cfgs = _configs(repo)
    assert {f"{n}_denoiser_trt_fp32", f"{n}_text_trt_fp32", f"{n}_gpu_fp32"} <= set(cfgs)
    p = {k: v.string_value for k, v in cfgs[f"{n}_gpu_fp32"].parameters.items()}
    assert p["denoiser_model"] == f"{n}_denoiser_trt_fp32" and p["text_model"] == f"{n}_text_trt_fp32"
    assert int(p["max_batch"]) == 16, "capped by the plans' profile"
    for g in ("denoiser", "text"):
        c = cfgs[f"{n}_{g}_trt_fp32"]
        assert c.platform == "tensorrt_plan" and c.max_batch_size == 16
        assert c.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (repo / f"{n}_text_trt_fp32/1/model.plan").read_bytes() == b"plan text_encoder nvidia-gpu-sm87-trt10.3.0-fp32"
    s = json.loads((repo / "skugen_triton.json").read_text())
    assert set(s["entry_points"]) == {n, f"{n}_gpu_fp32"}
    assert set(s["plans"]) == {f"{n}_denoiser_trt_fp32", f"{n}_text_trt_fp32"}

    shutil.rmtree(text_engine)  # a denoiser plan alone: the GPU loop encodes text on the CPU model
    cfgs = _configs(export_triton(load_bundle(bdir), tmp_path / "repo2"))
    assert f"{n}_text_trt_fp32" not in cfgs
    p = {k: v.string_value for k, v in cfgs[f"{n}_gpu_fp32"].parameters.items()}
    assert p["denoiser_model"] == f"{n}_denoiser_trt_fp32" and p["text_model"] == f"{n}_text_onnx"


def test_errors_and_cli(diffusion_bundle, tmp_path, capsys):
    with pytest.raises(InputError, match="no 'int8' denoiser ONNX"):
        export_triton(diffusion_bundle, tmp_path / "r", TritonConfig(precision="int8"))
    assert cli.main(["export-triton", str(diffusion_bundle), "--out", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    assert "(diffusion)" in out and "the whole sampling loop" in out and "tritonserver --model-repository=" in out
