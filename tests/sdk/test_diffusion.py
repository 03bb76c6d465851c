"""skugen.diffusion: DiffusionPipeline on a real two-graph bundle (the loop itself: tests/sdk/test_sampler.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import skugen
from skugen import diffusion
from skugen.bundle import load_bundle
from skugen.errors import BundleError, InputError, IntegrityError
from skugen.tokenizer import Tokenizer

# ----------------------------------------------------------------------------- the pipeline on a real bundle


def test_bundle_is_schema_2_with_a_text_encoder_graph(diffusion_bundle):
    b = load_bundle(diffusion_bundle)
    assert b.spec.schema_version == 2 and b.kind == "diffusion"
    assert b.spec.inputs == ("x", "t", "context", "mask")
    text = b.graph("text_encoder")
    assert text.spec.inputs == ("tokens",) and text.model_path("fp32").name == "text_encoder.fp32.onnx"
    assert "text_encoder.fp32.onnx" in b.spec.files and "vocab.json" in b.spec.files
    with pytest.raises(InputError, match="no graph 'vae'"):
        b.graph("vae")
    loop = json.loads((diffusion_bundle / "reports/parity.json").read_text())["loop"]
    assert loop["pass"] and loop["max_abs"] < 1e-4


def test_generate_reports_the_split_and_is_seeded(diffusion_bundle):
    with skugen.load(diffusion_bundle, backend="onnxruntime") as pipe:
        r1 = pipe.generate(prompts=["a photo of a sneaker", "dark ankle boots"], seed=3)
        r2 = pipe.generate(prompts=["a photo of a sneaker", "dark ankle boots"], seed=3)
        r3 = pipe.generate(prompts=["a photo of a sneaker", "dark ankle boots"], seed=4, steps=2, guidance=1.0)
    assert r1.images.shape == (2, 32, 32, 1) and r1.images.dtype == np.uint8
    assert np.array_equal(r1.images, r2.images) and not np.array_equal(r1.images, r3.images)
    s = r1.sampling
    assert s["steps"] == 4 and len(s["steps_ms"]) == 4 and s["seed"] == 3 and s["guidance"] == 3.0
    assert r3.sampling["steps"] == 2 and r3.sampling["guidance"] == 1.0
    call = r1.report.latency["call"]
    assert call["pre_ms"] > 0 and call["infer_ms"] >= sum(s["steps_ms"]) * 0.999
    assert r1.report.config["sampling"]["steps"] == 4
    prov = r1.provenance[1]
    assert prov["Prompt"] == "dark ankle boots" and prov["Seed"] == "3" and prov["Steps"] == "4"


def test_the_runtime_loop_reproduces_the_exporters_torch_loop(diffusion_bundle):
    """golden/loop.npz: eager-PyTorch images from fixed noise; the runtime must give the same from that noise."""
    with np.load(diffusion_bundle / "golden/loop.npz") as z:
        noise, tokens, ref = z["noise"], z["tokens"], z["image"]
    spec = load_bundle(diffusion_bundle).spec
    tok = Tokenizer.from_dict(json.loads((diffusion_bundle / "vocab.json").read_text()))
    prompts = [tok.decode(t) for t in tokens]
    with skugen.load(diffusion_bundle, backend="onnxruntime") as pipe:
        r = pipe.generate(prompts=prompts, noise=noise)
    want = np.round((np.clip(ref, -1, 1) + 1) * 127.5).transpose(0, 2, 3, 1)
    assert np.abs(r.images.astype(int) - want).max() <= 1
    assert spec.diffusion.steps == 4


def test_openvino_runs_both_graphs_like_onnxruntime(diffusion_bundle):
    pytest.importorskip("openvino")
    prompts = ["white sneakers", "a product photo of a dress"]
    with skugen.load(diffusion_bundle, backend="onnxruntime") as a, skugen.load(diffusion_bundle, backend="openvino") as b:
        ia = a.generate(prompts=prompts, seed=0).images
        ib = b.generate(prompts=prompts, seed=0).images
        assert b.info["diffusion"]["text_encoder"]["model_file"] == "text_encoder.fp32.onnx"
    assert np.abs(ia.astype(int) - ib.astype(int)).max() <= 2


def test_openvino_bf16_runs_both_graphs_under_the_hint(diffusion_bundle):
    """bf16 is OpenVINO's hint on each graph's fp32 file: the export-time gate judged both graphs that way."""
    pytest.importorskip("openvino")
    from skugen.backends.openvino import native_bf16

    ok, why = native_bf16()
    if not ok:
        pytest.skip(f"needs a native-BF16 CPU: {why}")
    with skugen.load(diffusion_bundle, backend="openvino", precision="bf16") as p:
        r = p.generate(prompts=["a bag", "white sneakers"], seed=0)
        assert p.info["diffusion"]["text_encoder"] == {"precision": "bf16", "model_file": "text_encoder.fp32.onnx"}
        assert p.text_runner.info["execution_precision"] == p.runner.info["execution_precision"] == "bf16"
    assert r.images.shape == (2, 32, 32, 1)


def test_unknown_words_are_reported_not_fatal(diffusion_bundle):
    with skugen.load(diffusion_bundle) as pipe:
        r = pipe.generate(prompts=["purple gym sneakers"], seed=0)
    assert r.unknown_words == [["purple", "gym"]]
    assert any("purple" in n and "<unk>" in n for n in r.report.notes)


@pytest.mark.parametrize("kw, msg", [
    (dict(prompts=[]), "non-empty list"), (dict(prompts=[""]), "is empty"),
    (dict(prompts=["sneaker " * 15]), "at most 14"), (dict(prompts=["a bag"], steps=0), "outside"),
    (dict(prompts=["a bag"], steps=65), r"outside \[1, 64\]"), (dict(prompts=["a bag"], guidance=float("nan")), "guidance"),
    (dict(prompts=["a bag"], guidance=-1.0), "guidance"), (dict(labels=["Bag"]), "not labels"),
    (dict(prompts=["a bag"], seed=1, noise=np.zeros((1, 1, 32, 32), np.float32)), "either seed= or noise="),
    (dict(prompts=["a bag"], noise=np.zeros((2, 1, 32, 32), np.float32)), "shape"),
    (dict(prompts=["a bag"], noise=np.full((1, 1, 32, 32), np.nan, np.float32)), "NaN"),
])
def test_bad_input_is_an_input_error_and_the_pipeline_survives(diffusion_bundle, kw, msg):
    with skugen.load(diffusion_bundle) as pipe:
        with pytest.raises(InputError, match=msg):
            pipe.generate(**kw)
        assert pipe.generate(prompts=["a bag"], seed=0, steps=1).images.shape == (1, 32, 32, 1)


def test_enhance_on_a_diffusion_bundle_says_what_to_call(diffusion_bundle):
    with skugen.load(diffusion_bundle) as pipe:
        with pytest.raises(InputError, match=r"text-to-image diffusion model.*generate\(prompts="):
            pipe.enhance(np.zeros((8, 8, 3), np.uint8))


def test_a_tampered_text_encoder_is_caught(diffusion_bundle, tmp_path):
    root = shutil.copytree(diffusion_bundle, tmp_path / "b")
    f = root / "text_encoder.fp32.onnx"
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match="text_encoder.fp32.onnx"):
        skugen.load(root)


def test_a_vocabulary_that_disagrees_with_the_manifest_is_refused(diffusion_bundle, tmp_path):
    from skugen.bundle import write_bundle

    b = load_bundle(diffusion_bundle)
    files = {rel: diffusion_bundle / rel for rel in b.spec.files}
    v = json.loads((diffusion_bundle / "vocab.json").read_text())
    files["vocab.json"] = json.dumps({**v, "context": 8}).encode()
    out = write_bundle(tmp_path / "b", {k: x for k, x in b.spec.to_dict().items() if k != "files"}, files)
    with pytest.raises(BundleError, match="context 8 != manifest"):
        skugen.load(out)


def test_verify_checks_both_graphs(diffusion_bundle, tmp_path):
    import subprocess
    import sys

    from skugen.verify import verify_graphs

    reps = verify_graphs(diffusion_bundle, "onnxruntime", "fp32")
    assert [r.name for r in reps] == ["test-diffusion", "test-diffusion:text_encoder"] and all(r.passed for r in reps)
    assert reps[1].model_file == "text_encoder.fp32.onnx" and "context" in reps[1].outputs
    # a text-encoder golden that no longer matches its graph fails `skugen verify` (the CLI checks every graph)
    from skugen.bundle import npz_bytes, write_bundle

    b = load_bundle(diffusion_bundle)
    files = {rel: diffusion_bundle / rel for rel in b.spec.files}
    with np.load(diffusion_bundle / "golden/text_outputs.npz") as z:
        files["golden/text_outputs.npz"] = npz_bytes({"context": z["context"] + 0.01})
    out = write_bundle(tmp_path / "b", {k: x for k, x in b.spec.to_dict().items() if k != "files"}, files)
    r = subprocess.run([sys.executable, "-m", "skugen.cli", "verify", str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "text_encoder: onnxruntime fp32" in r.stdout and "FAIL" in r.stdout, r.stdout + r.stderr


def test_each_graph_has_its_own_engine_directory(diffusion_bundle):
    """TensorRT engines are keyed by device and precision: two graphs must not share engines/<key>/."""
    from skugen.backends.tensorrt import store

    b = load_bundle(diffusion_bundle)
    t = b.graph("text_encoder")
    assert b.engines_dir() == diffusion_bundle / "engines"
    assert t.engines_dir() == diffusion_bundle / "engines" / "graph-text_encoder"
    assert store.fallback_root(t) != store.fallback_root(b)  # the read-only fallback is named after the view


def test_graphs_at_is_what_the_runtime_runs(diffusion_bundle):
    """One rule for load, verify, build and mark-verified: the text encoder at the precision when it has it
    (or bf16, OpenVINO's hint on fp32), else fp32."""
    b = load_bundle(diffusion_bundle)
    for prec, text_prec in (("fp32", "fp32"), ("int8", "fp32"), ("bf16", "bf16"), ("fp16", "fp32")):
        got = [(g.graph_name, p) for g, p in b.graphs_at(prec)]
        assert got == [(None, prec), ("text_encoder", text_prec)]


def test_build_and_mark_verified_cover_every_graph(diffusion_bundle, tmp_path, monkeypatch, capsys):
    """`skugen build` asks the TensorRT builder for each graph's engine, and install.sh's mark-verified marks each.
    The builder itself is replaced here (TensorRT cannot run on this machine; tests/sdk/backends/test_tensorrt_plan.py
    drives the real build code against a fake TensorRT): this checks only which graph x precision is requested."""
    from skugen import cli
    from skugen.backends import tensorrt as trt_backend
    from skugen.backends.tensorrt import store
    from skugen.deploy import mark_engine_verified

    root = shutil.copytree(diffusion_bundle, tmp_path / "b")
    calls = []

    class _Rec:
        def __init__(self, g, p):
            self.key, self.built, self.plan_path, self.metadata = f"k-{g.graph_name}-{p}", True, "x", {}

        def to_dict(self):
            return {"key": self.key}

    def fake_build(g, p, cfg):
        calls.append((g.graph_name, p))
        d = g.engines_dir() / f"nvidia-gpu-sm87-trt10.3.0-{p}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "engine.plan").write_bytes(b"plan")
        (d / "engine.json").write_text(json.dumps({"key": d.name, "precision": p, "plan_file": "engine.plan",
                                                   "built_at": "2026-12-02T00:00:00+00:00"}))
        return _Rec(g, p)

    monkeypatch.setattr(trt_backend, "_require", lambda device=None: None)
    monkeypatch.setattr(trt_backend, "engine_from_onnx", fake_build)
    assert cli.main(["build", str(root), "--precision", "fp32", "int8"]) == 0
    assert calls == [(None, "fp32"), ("text_encoder", "fp32"), (None, "int8"), ("text_encoder", "fp32")]
    mark_engine_verified(root, "int8")
    b = load_bundle(root)
    verified = {(e.dir.parent.name, e.precision) for g in (b, b.graph("text_encoder")) for e in store.list_engines(g)
                if e.verified}
    assert verified == {("engines", "int8"), ("graph-text_encoder", "fp32")}
