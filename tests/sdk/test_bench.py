"""skugen bench: the matrix, the report (JSON/CSV/Markdown), the ceilings, quality, and the regression gate.

One real run over the small fixture bundles (tiny iteration counts) is shared by
these tests and tests/sdk/test_html_report.py (see `shared_bench`).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skugen import cli
from skugen.bench import (FID_NAME, BenchConfig, BenchReport, GateConfig, TorchRunner, compare_reports,
                          measure_ceilings, ort_gemm_ceiling, run_bench)
from skugen.errors import BackendUnavailable, InputError

BATCHES = (1, 2)
BACKENDS = ("onnxruntime", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "int8")


def _tiny_classifier(tmp: Path) -> Path:
    """A random-init fmnist-shaped classifier: enough to exercise class fidelity and the FID-proxy plumbing."""
    import torch

    from skugen.export import ckpt, models

    torch.manual_seed(0)
    m = models.build(models.ClassifierConfig(widths=(8, 8, 16, 16, 16), feat_dim=16)).eval()
    return ckpt.save_model(m, tmp / "clf", {"name": "tiny-classifier"})


def shared_bench(request, tmp_path_factory) -> dict:
    """Run the bench once per session (both test modules call this) and return paths + the report.

    The result is kept on the pytest session (not in a module global), so test_html_report.py,
    which loads this file by path, shares the same run.
    """
    store = request.session.__dict__.setdefault("_skugen_bench_shared", {})
    if "run" in store:
        return store["run"]
    bundles = [request.getfixturevalue("cgan_bundle")]
    teachers = [request.getfixturevalue("cgan_model_dir")]
    try:
        bundles.append(request.getfixturevalue("sr_bundle"))
        teachers.append(request.getfixturevalue("sr_model_dir"))
    except pytest.skip.Exception:  # no GroceryStore here: the generator alone still covers the matrix
        pass
    tmp = tmp_path_factory.mktemp("bench")
    cfg = BenchConfig(bundles=tuple(str(b) for b in bundles), backends=BACKENDS, precisions=PRECISIONS,
                      batches=BATCHES, warmup=1, iters=3, repeats=2, threads=1,
                      teachers=tuple(str(t) for t in teachers), tile=32, quality_n=20,
                      classifier=str(_tiny_classifier(tmp)), ceiling_size=256, progress=False)
    rep = run_bench(cfg, argv=["skugen", "bench", "(test)"])
    rep.save_json(tmp / "report.json")
    store["run"] = {"report": rep, "dir": tmp, "json": tmp / "report.json", "bundles": bundles,
                     "cgan": bundles[0], "has_sr": len(bundles) > 1}
    return store["run"]


@pytest.fixture(scope="module")
def bench(request, tmp_path_factory):
    return shared_bench(request, tmp_path_factory)


def _cell(rep: BenchReport, bundle: str, model: str, backend: str, prec: str, batch: int) -> dict:
    c = rep.cell(f"{bundle}|{model}|{backend}|{prec}|b{batch}")
    assert c is not None, f"cell {bundle}|{model}|{backend}|{prec}|b{batch} missing"
    return c

# ----------------------------------------------------------------------------- the matrix


def test_every_cell_is_listed_and_unrunnable_ones_say_why(bench):
    rep = bench["report"]
    n_bundles = len(bench["bundles"])
    assert len(rep.cells) == n_bundles * len(BACKENDS) * len(PRECISIONS) * len(BATCHES)
    for c in rep.cells:
        assert c["status"] in ("ok", "skipped", "error"), c
        if c["status"] != "ok":
            assert c["reason"], f"{c['key']} has no reason"
        assert c["status"] != "error", f"{c['key']}: {c['reason']}"
    name = rep.ok_cells()[0]["bundle"]
    assert "fp16" in _cell(rep, name, "student", "onnxruntime", "fp16", 1)["reason"]
    assert "fp32 only" in _cell(rep, name, "teacher", "torch", "int8", 2)["reason"]
    from skugen.backends import tensorrt_usable

    trt = _cell(rep, name, "student", "tensorrt", "fp32", 1)
    if not tensorrt_usable():
        assert trt["status"] == "skipped" and "TensorRT" in trt["reason"]


def test_ok_cells_have_latency_split_throughput_memory_and_compute(bench):
    rep = bench["report"]
    ok = rep.ok_cells()
    assert {(c["backend"], c["precision"]) for c in ok} >= {("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                           ("torch", "fp32")}
    for c in ok:
        lat = c["latency_ms"]
        for stage in ("pre", "infer", "post", "total"):
            for k in ("p50", "p90", "p99", "mean", "min"):
                assert lat[stage][k] is not None and lat[stage][k] >= 0, (c["key"], stage, k)
        assert lat["total"]["n"] == 3 * 2  # iters x repeats
        assert lat["total"]["min"] <= lat["total"]["p50"] <= lat["total"]["p90"] <= lat["total"]["p99"]
        assert len(c["p50_runs_ms"]) == 2 and c["p50_spread"] is not None
        assert c["throughput_ips"] > 0 and c["throughput_ips_mean"] > 0
        assert c["memory"]["peak_rss_mb"] > 10
        mi = c["model_info"]
        assert mi["bytes"] > 0 and mi["macs_per_image"] > 0, (c["key"], mi)
        comp = c["compute"]
        assert comp["gmacs_per_s"] > 0
        assert comp["ceiling"] in (("int8_gemm",) if c["precision"] == "int8" else ("fp32_gemm", "fp32_gemm_ort"))
        assert comp["fraction_of_ceiling"] > 0
        assert c["normalized"]["p50_over_fp32_gemm"] > 0
    # The student's size on disk is the ONNX file's size.
    c = _cell(rep, ok[0]["bundle"], "student", "onnxruntime", "int8", 1)
    from skugen.bundle import load_bundle

    b = load_bundle(c["bundle_path"])
    assert c["model_info"]["bytes"] == b.model_path("int8").stat().st_size
    assert c["model_info"]["bytes"] < _cell(rep, c["bundle"], "student", "onnxruntime", "fp32", 1)["model_info"]["bytes"]


def test_enhancer_macs_scale_with_the_tile(bench):
    if not bench["has_sr"]:
        pytest.skip("no enhancer bundle here (GroceryStore missing)")
    rep = bench["report"]
    c = next(c for c in rep.ok_cells() if c["kind"] == "enhancer" and c["model"] == "student")
    from skugen.bundle import load_bundle

    m = load_bundle(c["bundle_path"]).manifest["models"]["fp32"]
    # manifest MACs are for a 64x64 LR image; the bench ran 32x32 tiles: a quarter of them.
    assert m["macs_input"][-2:] == [64, 64]
    assert c["model_info"]["macs_per_image"] == pytest.approx(m["macs"] / 4, rel=1e-6)


def test_ceilings_are_measured_in_the_same_run(bench):
    ce = bench["report"].ceilings
    assert ce["threads"] == 1 and ce["size"] == 256
    for name in ("fp32_gemm", "fp32_gemm_ort", "int8_gemm"):
        assert ce[name]["by_threads"]["1"]["gmacs_per_s"] > 0, name
        assert ce[name]["best"]["ms"] > 0
    assert "MatMulInteger" in ce["int8_gemm"]["what"]
    assert ce["fp32_gemm_end"]["best"]["ms"] > 0 and ce["drift"] > 0


def test_ceilings_one_and_t_threads():
    ce = measure_ceilings(threads=2, size=64)
    assert set(ce["fp32_gemm"]["by_threads"]) == {"1", "2"}
    assert set(ce["int8_gemm"]["by_threads"]) == {"1", "2"}


def test_int8_ceiling_without_onnx_is_unavailable_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    e = ort_gemm_ceiling("int8", threads=1, size=32)
    assert e["available"] is False and "onnx" in e["reason"] and "pip install" in e["reason"]


def test_quality_with_conventions_teacher_and_fid_proxy(bench):
    rep = bench["report"]
    g = next(c["bundle"] for c in rep.ok_cells() if c["kind"] == "generator")
    fp32 = _cell(rep, g, "student", "onnxruntime", "fp32", 1)["quality"]
    int8 = _cell(rep, g, "student", "onnxruntime", "int8", 1)["quality"]
    teacher = _cell(rep, g, "teacher", "torch", "fp32", 1)["quality"]
    # ORT fp32 reproduces the golden (PyTorch) outputs; INT8 costs some dB but stays an image.
    assert fp32["vs_reference"]["psnr"]["value"] > 60
    assert 15 < int8["vs_reference"]["psnr"]["value"] < fp32["vs_reference"]["psnr"]["value"]
    p = int8["vs_reference"]["psnr"]
    assert p["convention"] == "BasicSR" and p["data_range"] == 255 and p["y_channel"] is False
    assert int8["vs_reference"]["ssim"]["window"].startswith("gaussian 11x11")
    # The teacher here is the bundle's own source model: the students are compared with it ...
    assert int8["vs_teacher"]["psnr"]["value"] is not None
    assert teacher["vs_teacher"]["skipped"] == "this cell is the teacher"
    # ... and the classifier metrics carry their name and n.
    assert 0 <= int8["class_fidelity"]["value"] <= 1 and int8["class_fidelity"]["n"] == 20
    assert int8["fid_proxy"]["name"] == FID_NAME and int8["fid_proxy"]["value"] >= 0
    # Quality is the same object for every batch of a backend x precision.
    assert _cell(rep, g, "student", "onnxruntime", "int8", 2)["quality"] == int8
    assert rep.samples[g]["columns"].keys() >= {"teacher (torch fp32)", "student fp32 (onnxruntime)",
                                                "student int8 (onnxruntime)"}


def test_enhancer_quality_against_ground_truth_and_bicubic(bench):
    if not bench["has_sr"]:
        pytest.skip("no enhancer bundle here (GroceryStore missing)")
    rep = bench["report"]
    e = next(c["bundle"] for c in rep.ok_cells() if c["kind"] == "enhancer")
    q = _cell(rep, e, "student", "onnxruntime", "int8", 1)["quality"]
    gt = q["vs_ground_truth"]
    assert gt["psnr"]["y_channel"] is True and gt["psnr"]["crop_border"] == 2
    assert gt["psnr"]["label"] == "PSNR-Y (BasicSR, crop 2)"
    assert 15 < gt["psnr"]["value"] < 50 and 0 < gt["ssim"]["value"] <= 1
    bic = rep.references[e]["bicubic"]
    assert bic["psnr"]["label"] == "PSNR-Y (BasicSR, crop 2)" and bic["psnr"]["value"] > 15
    cols = list(rep.samples[e]["columns"])
    assert cols[0].startswith("input") and cols[1] == "bicubic" and cols[-1] == "ground truth"
    assert "teacher (torch fp32)" in cols and "student int8 (onnxruntime)" in cols


def test_quality_metric_matches_scikit_image(bench):
    """The bench's PSNR is the metrics module's; spot-check one pair against scikit-image."""
    skm = pytest.importorskip("skimage.metrics")
    from skugen.bench import _pair_metrics

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 32, 1)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255)
    m = _pair_metrics(a, b, "generator", 1, "test")
    want = np.mean([skm.peak_signal_noise_ratio(a[i], b[i], data_range=255) for i in range(2)])
    assert m["psnr"]["value"] == pytest.approx(want, abs=1e-6)

# ----------------------------------------------------------------------------- report files


def test_json_has_environment_command_config_and_round_trips(bench):
    rep = bench["report"]
    d = json.loads(Path(bench["json"]).read_text())
    assert d["schema_version"] == 1 and d["kind"] == "bench"
    assert d["command"] == ["skugen", "bench", "(test)"]
    env = d["environment"]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_vnni" in flags:
        assert "avx512_vnni" in env["cpu"]["flags"]
    assert env["cpu"]["model"] and env["cpu"]["usable_cores"] >= 1
    for k in ("skugen", "onnxruntime", "numpy", "torch"):
        assert env["versions"][k], k
    assert "tensorrt" in env["versions"] and "cuda_toolkit" in env["versions"]
    assert "jetson_power_mode" in env
    assert d["config"]["threads_resolved"] == 1 and d["config"]["batches"] == list(BATCHES)
    back = BenchReport.load(bench["json"])
    assert back.to_dict()["cells"] == d["cells"]
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN/inf anywhere


def test_csv_and_markdown(bench, tmp_path):
    rep = bench["report"]
    rep.save_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == len(rep.cells)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["p50_ms"]) > 0 and float(r["throughput_ips"]) > 0 for r in ok)
    assert all(r["reason"] for r in rows if r["status"] == "skipped")
    md = rep.to_markdown()
    assert "| bundle | model | backend | prec | batch | p50 ms |" in md
    assert "Cells not measured here" in md and FID_NAME in md
    assert md.count("\n| ") >= len(rep.cells)


def test_import_does_not_load_torch():
    code = "import sys, skugen.bench, skugen.html_report; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_torch_backend_without_toolchain_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'skugen\[export\]'"):
        TorchRunner(tmp_path).activate()


@pytest.mark.parametrize("kw, msg", [
    (dict(bundles=()), "no bundle"),
    (dict(bundles=("x",), backends=("openvino",)), "unknown backend"),
    (dict(bundles=("x",), precisions=("bf16",)), "unknown precision"),
    (dict(bundles=("x",), batches=(0,)), "positive"),
    (dict(bundles=("x",), iters=0), "--iters"),
])
def test_config_errors_say_what_to_do(kw, msg):
    with pytest.raises(InputError, match=msg):
        BenchConfig(**kw).check()

# ----------------------------------------------------------------------------- regression gate


def _fabricate(d: dict, key: str, p50_factor: float = 1.0, psnr_delta: float = 0.0) -> dict:
    """A baseline made from a real report with one cell's numbers edited."""
    b = copy.deepcopy(d)
    for c in b["cells"]:
        if c["key"] == key:
            c["normalized"]["p50_over_fp32_gemm"] *= p50_factor
            c["latency_ms"]["total"]["p50"] *= p50_factor
            if psnr_delta:
                c["quality"]["vs_reference"]["psnr"]["value"] += psnr_delta
    return b


def _key(rep: BenchReport, backend="onnxruntime", precision="int8", batch=1) -> str:
    return next(c["key"] for c in rep.ok_cells() if c["backend"] == backend and c["precision"] == precision
                and c["batch"] == batch and c["kind"] == "generator")


def test_gate_passes_against_itself_and_fails_on_slowdown_and_quality(bench):
    rep = bench["report"]
    d = rep.to_dict()
    same = compare_reports(d, d)
    assert same.passed and not same.cross_run
    assert any(r["metric"].startswith("p50 / fp32-GEMM") for r in same.rows)

    key = _key(rep)
    slower = compare_reports(d, _fabricate(d, key, p50_factor=1 / 1.5))  # baseline 1.5x faster
    assert not slower.passed
    bad = [r for r in slower.rows if r["verdict"].startswith("FAIL")]
    assert [(r["key"], r["verdict"]) for r in bad] == [(key, "FAIL slower")]
    assert "x1.500" in bad[0]["change"]
    assert "regression gate: FAIL" in slower.table() and key in slower.table()
    assert compare_reports(d, _fabricate(d, key, p50_factor=1 / 1.5), GateConfig(max_slowdown=1.6)).passed

    worse = compare_reports(d, _fabricate(d, key, psnr_delta=0.5))  # baseline 0.5 dB better
    assert not worse.passed
    assert any(r["metric"] == "psnr_ref_db" and r["verdict"] == "FAIL worse" for r in worse.rows)

    within = compare_reports(d, _fabricate(d, key, p50_factor=1 / 1.05, psnr_delta=0.05))
    assert within.passed, within.table()


def test_gate_without_ceilings_says_cross_run(bench):
    d = bench["report"].to_dict()
    b = copy.deepcopy(d)
    for c in b["cells"]:
        if c.get("normalized"):
            c["normalized"]["p50_over_fp32_gemm"] = None
    res = compare_reports(d, b)
    assert res.cross_run
    assert any("CROSS-RUN" in r["metric"] for r in res.rows)
    assert any("CROSS-RUN" in n for n in res.notes)


def test_gate_lists_baseline_cells_missing_now(bench):
    d = bench["report"].to_dict()
    cur = copy.deepcopy(d)
    key = _key(bench["report"])
    cur["cells"] = [c for c in cur["cells"] if c["key"] != key]
    res = compare_reports(cur, d)
    assert res.passed and any(r["key"] == key and r["verdict"] == "NOT COMPARED" for r in res.rows)


def test_cli_bench_runs_and_gates(bench, tmp_path, capsys):
    """`skugen bench BUNDLE ... --baseline OLD.json`: exit 0 within thresholds, 1 with a diff table beyond."""
    d = bench["report"].to_dict()
    key = _key(bench["report"], precision="fp32")
    (tmp_path / "fast.json").write_text(json.dumps(_fabricate(d, key, p50_factor=1 / 50)))   # baseline 50x faster
    (tmp_path / "slow.json").write_text(json.dumps(_fabricate(d, key, p50_factor=50)))      # baseline 50x slower
    args = ["bench", str(bench["cgan"]), "--backends", "onnxruntime", "--precisions", "fp32", "--batch", "1",
            "--warmup", "1", "--iters", "5", "--threads", "1", "--no-quality", "--ceiling-size", "256",
            "--no-progress", "--json", str(tmp_path / "new.json"), "--csv", str(tmp_path / "new.csv"),
            "--md", str(tmp_path / "new.md")]
    assert cli.main(args + ["--baseline", str(tmp_path / "slow.json")]) == 0
    out = capsys.readouterr().out
    assert "regression gate: PASS" in out and "| bundle | model |" in out
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["command"] and new["cells"][0]["status"] == "ok"
    assert (tmp_path / "new.csv").read_text().startswith("key,bundle,")
    assert (tmp_path / "new.md").read_text() == BenchReport.from_dict(new).to_markdown()

    assert cli.main(args + ["--baseline", str(tmp_path / "fast.json")]) == 1
    out = capsys.readouterr().out
    assert "regression gate: FAIL" in out and "FAIL slower" in out and key in out


def test_cli_from_report_gates_quality(bench, tmp_path, capsys):
    d = bench["report"].to_dict()
    key = _key(bench["report"])
    (tmp_path / "better.json").write_text(json.dumps(_fabricate(d, key, psnr_delta=1.0)))
    base = ["bench", "--from-report", str(bench["json"]), "--baseline"]
    assert cli.main(base + [str(bench["json"])]) == 0
    capsys.readouterr()
    assert cli.main(base + [str(tmp_path / "better.json"), "--max-quality-drop", "0.1"]) == 1
    assert "FAIL worse" in capsys.readouterr().out
    # A looser threshold lets the same drop through.
    assert cli.main(base + [str(tmp_path / "better.json"), "--max-quality-drop", "1.5"]) == 0


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main(["bench", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["bench", "--from-report", str(tmp_path / "nope.json")]) == 2


def test_tensorrt_cells_plumbing_with_a_stand_in_runner(bench, monkeypatch):
    """No GPU here: a stand-in runner (ORT underneath, TensorRT's info keys) checks what TRT cells record."""
    import skugen.bench as sb
    from skugen.backends.onnxruntime import OnnxRuntimeRunner

    class FakeTRT(OnnxRuntimeRunner):
        name = "tensorrt"

        def _activate(self):
            super()._activate()
            self.info = {"backend": "tensorrt", "device": "cpu",  # "cpu": keep the numpy pre/post here
                         "gpu_memory": {"engine_bytes": 1 << 20, "used_by_runner_bytes": 3 << 20}}

    real = sb._make_runner
    monkeypatch.setattr(sb, "_tensorrt_status", lambda: (True, ""))
    monkeypatch.setattr(sb, "_make_runner", lambda t, be, p, th: FakeTRT(t.bundle.model_path("fp32"), intra_op_threads=1)
                        if be == "tensorrt" else real(t, be, p, th))
    rep = run_bench(BenchConfig(bundles=(str(bench["cgan"]),), backends=("tensorrt",), precisions=("fp16",),
                                batches=(1,), warmup=1, iters=2, threads=1, quality=False, ceiling_size=64,
                                progress=False))
    (c,) = rep.cells
    assert c["status"] == "ok" and c["backend"] == "tensorrt"
    assert c["memory"]["gpu"]["used_by_runner_bytes"] == 3 << 20
    assert rep.csv_rows()[0]["gpu_used_mb"] == pytest.approx(3.0)
    assert c["compute"]["fraction_of_ceiling"] is None and "GPU cell" in c["compute"]["note"]
    assert c["compute"]["gmacs_per_s"] > 0
    assert c["normalized"]["p50_over_fp32_gemm"] is None  # no same-run GPU yardstick ...
    res = compare_reports(rep.to_dict(), rep.to_dict())
    assert res.cross_run and "GPU cell" in res.rows[0]["metric"]  # ... so the gate says the figures are cross-run
