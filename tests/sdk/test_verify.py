"""`skugen verify` on the fixture bundles, its failure modes, and an independent check with Polygraphy."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skugen.bundle import load_bundle, npz_bytes, write_bundle
from skugen.cli import main
from skugen.errors import BackendUnavailable, BundleError, InputError
from skugen.verify import check_output, output_stats, verify_bundle


def _rewrite(bundle, out, *, outputs=None, drop_int8=False):
    """A copy of `bundle` written with write_bundle: hashes valid, contents as given."""
    b = load_bundle(bundle)
    m = {k: v for k, v in b.spec.to_dict().items() if k != "files"}
    files = {rel: b.root / rel for rel in b.spec.to_dict()["files"]}
    if outputs is not None:
        files["golden/outputs.npz"] = npz_bytes(outputs)
    if drop_int8:
        m["models"] = {"fp32": m["models"]["fp32"]}
        m["golden"] = {**m["golden"], "tolerances": {k: v for k, v in m["golden"]["tolerances"].items() if k != "int8"}}
        files.pop("model.int8.onnx")
    return write_bundle(out, m, files)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("which", ["cgan_bundle", "sr_bundle"])
def test_cli_verify_passes(which, precision, request, capsys):
    bundle = request.getfixturevalue(which)
    assert main(["verify", str(bundle), "--precision", precision]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out


def test_cli_verify_json(cgan_bundle, capsys):
    assert main(["verify", str(cgan_bundle), "--precision", "int8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["passed"] is True and rep["schema_version"] == 1 and rep["backend"] == "onnxruntime"
    s = rep["outputs"]["image"]
    for k in ("max_abs", "mean_abs", "median_abs", "max_rel", "mean_rel", "median_rel", "psnr_db", "pass"):
        assert k in s
    assert rep["tolerance"]["min_psnr_db"] <= s["psnr_db"]
    assert rep["environment"]["onnxruntime"]


def test_verify_fails_on_perturbed_golden(cgan_bundle, tmp_path, capsys):
    go = load_bundle(cgan_bundle).golden()[1]
    small = _rewrite(cgan_bundle, tmp_path / "small", outputs={k: v + np.float32(1e-3) for k, v in go.items()})
    assert main(["verify", str(small)]) == 1  # fp32 atol 1e-4 catches a 1e-3 shift
    err = capsys.readouterr().err
    assert "disagrees with the golden outputs" in err
    assert main(["verify", str(small), "--precision", "int8"]) == 0  # within INT8's statistical tolerance
    rng = np.random.default_rng(0)
    big = _rewrite(cgan_bundle, tmp_path / "big",
                   outputs={k: np.clip(v + rng.normal(0, 0.3, v.shape).astype(np.float32), -1, 1) for k, v in go.items()})
    assert main(["verify", str(big), "--precision", "int8"]) == 1
    rep = verify_bundle(big, precision="int8")
    assert not rep.passed and rep.outputs["image"]["psnr_db"] < rep.tolerance["min_psnr_db"]


@pytest.mark.parametrize("which", ["cgan_bundle", "sr_bundle"])
def test_tensorrt_int8_flavour_meets_the_int8_tolerance_on_ort(which, request):
    from skugen.backends import onnx_runner

    b = load_bundle(request.getfixturevalue(which))
    gi, go = b.golden()
    twin = b.spec.variant("int8", "tensorrt")
    assert twin is not b.spec.models["int8"]  # the signed-int8 file TensorRT builds from
    with onnx_runner(b.root / twin.file) as r:
        got = r.infer(gi)
    tol = b.spec.tolerance("int8")
    for k, ref in go.items():
        assert check_output(got[k], ref, tol, b.spec.value_range)["pass"]


def test_verify_api_report(sr_bundle):
    rep = verify_bundle(load_bundle(sr_bundle), precision="fp32")
    assert rep.passed and rep.n_inputs == 2 and rep.model_file == "model.fp32.onnx"
    s = rep.outputs["hr"]
    assert s["n_fail"] == 0 and s["max_abs"] < 1e-4 and s["rule"].startswith("|out - golden|")
    assert rep.raise_if_failed() is rep
    json.dumps(rep.to_dict())


def test_precision_errors(cgan_bundle, tmp_path):
    with pytest.raises(InputError, match="--backend tensorrt --precision fp16"):
        verify_bundle(cgan_bundle, precision="fp16")
    with pytest.raises(InputError, match="unknown precision"):
        verify_bundle(cgan_bundle, precision="int4")
    fp32_only = _rewrite(cgan_bundle, tmp_path / "fp32only", drop_int8=True)
    with pytest.raises(BundleError, match="no golden tolerance for int8.*--int8"):
        verify_bundle(fp32_only, precision="int8")
    assert verify_bundle(fp32_only).passed


def test_tensorrt_missing_names_the_extra(cgan_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "skugen.backends.tensorrt", None)  # import fails as on a CPU-only install
    with pytest.raises(BackendUnavailable, match=r"skugen\[tensorrt\]"):
        verify_bundle(cgan_bundle, backend="tensorrt", precision="fp16")
    assert main(["verify", str(cgan_bundle), "--backend", "tensorrt"]) == 2


def test_int8_tolerance_rule():
    ref = np.linspace(-1, 1, 2 * 32 * 32, dtype=np.float32).reshape(2, 1, 32, 32)
    tol = {"min_psnr_db": 30.0, "max_mean_abs": 0.04}
    assert check_output(ref + np.float32(0.01), ref, tol, (-1, 1))["pass"]
    assert not check_output(ref + np.float32(0.05), ref, tol, (-1, 1))["pass"]   # mean shift
    assert not check_output(-ref, ref, tol, (-1, 1))["pass"]                      # garbage
    assert not check_output(ref[:1], ref, tol, (-1, 1))["pass"]                   # shape mismatch
    s = output_stats(ref, ref, 0.0, 0.0, (-1, 1))
    assert s["pass"] and s["psnr_db"] is None and s["psnr_is_inf"]


def test_runtime_verify_does_not_import_torch(cgan_bundle):
    code = ("import sys; from skugen.verify import verify_bundle; "
            f"r = verify_bundle({str(cgan_bundle)!r}, precision='int8'); "
            "assert r.passed; bad = [m for m in sys.modules if m == 'torch' or m.startswith('skugen.export')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------- independent check: Polygraphy


def _polygraphy_files(bundle, tmp_path, outputs=None) -> tuple[Path, Path]:
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import save_json

    gi, go = load_bundle(bundle).golden()
    go = outputs or go
    inp, outp = tmp_path / "inputs.json", tmp_path / "outputs.json"
    save_json([gi], str(inp))  # Polygraphy's --load-inputs format: a list of feed dicts (one per iteration)
    rr = RunResults()
    rr.append(("golden", [IterationResult(outputs=go, runner_name="golden")]))
    rr.save(str(outp))
    return inp, outp


def _polygraphy(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("polygraphy")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "polygraphy"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)


def test_polygraphy_agrees_with_golden(cgan_bundle, tmp_path):
    pytest.importorskip("polygraphy")
    b = load_bundle(cgan_bundle)
    tol = b.spec.to_dict()["golden"]["tolerances"]["fp32"]
    inp, outp = _polygraphy_files(cgan_bundle, tmp_path)
    model = str(b.model_path("fp32"))
    ok = _polygraphy("run", model, "--onnxrt", "--load-inputs", str(inp), "--load-outputs", str(outp),
                     "--atol", str(tol["atol"]), "--rtol", str(tol["rtol"]))
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "PASSED" in ok.stdout + ok.stderr
    # and Polygraphy's own comparator (Python API, ONNX Runtime runner) rejects a golden that is
    # off by 1e-3, as `skugen verify` does
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, RunResults, SimpleCompareFunc

    go = {k: v + np.float32(1e-3) for k, v in b.golden()[1].items()}
    (tmp_path / "bad").mkdir()
    inp, outp = _polygraphy_files(cgan_bundle, tmp_path / "bad", outputs=go)
    ours = Comparator.run([OnnxrtRunner(SessionFromOnnx(model))], data_loader=[b.golden()[0]])
    both = RunResults.load(str(outp))
    both.extend(ours)
    cmp = SimpleCompareFunc(atol=tol["atol"], rtol=tol["rtol"])
    assert not bool(Comparator.compare_accuracy(both, compare_func=cmp))
    good = RunResults.load(str(tmp_path / "outputs.json"))
    good.extend(ours)
    assert bool(Comparator.compare_accuracy(good, compare_func=cmp))


@pytest.fixture(scope="module")
def fp16_bundle(cgan_model_dir, tmp_path_factory):
    """The cGAN fixture with the quality-gated FP16 graph (no INT8: keeps the export short)."""
    from skugen.export.bundle import BundleConfig, export_bundle

    return export_bundle(cgan_model_dir, tmp_path_factory.mktemp("fp16") / "b",
                         BundleConfig(fp16=True, eval_n=64, classifier=None))


def test_verify_fp16_runs_the_bundles_fp16_graph_on_the_cpu(fp16_bundle, capsys):
    rep = verify_bundle(fp16_bundle, backend="onnxruntime", precision="fp16")
    assert rep.passed and rep.model_file == "model.fp16.onnx" and rep.tolerance["atol"] == 2e-2
    s = rep.outputs["image"]
    assert s["n_fail"] == 0 and s["max_abs"] > 1e-6  # FP16 weights: not the FP32 result bit for bit
    assert "FP32 arithmetic" in rep.environment["fp16_execution"]
    assert main(["verify", str(fp16_bundle), "--precision", "fp16"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_verify_fp16_fails_against_a_tolerance_fp16_cannot_meet(fp16_bundle, tmp_path):
    """The comparison is real: the same graph under fp32's tolerance fails."""
    b = load_bundle(fp16_bundle)
    m = {k: v for k, v in b.spec.to_dict().items() if k != "files"}
    tols = {**m["golden"]["tolerances"], "fp16": {"atol": 1e-7, "rtol": 0.0}}
    m["golden"] = {**m["golden"], "tolerances": tols}
    strict = write_bundle(tmp_path / "strict", m, {rel: b.root / rel for rel in b.spec.to_dict()["files"]})
    rep = verify_bundle(strict, precision="fp16")
    assert not rep.passed and rep.outputs["image"]["n_fail"] > 0
