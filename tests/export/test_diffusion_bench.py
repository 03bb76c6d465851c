"""The diffusion bench (engines x precisions beside the eager teacher) and `skugen pipeline` on a diffusion model.

Timings here are not checked against each other (no timed tests): only that every cell was measured the same
way, the ratios are computed from the cells, and the page renders in a real browser when Chromium is there."""
from __future__ import annotations

import json
import shutil

import pytest

from skugen.export.diffusion_bench import DiffusionBenchConfig, run_diffusion_bench, save


def test_bench_measures_cells_and_the_teacher_on_the_same_prompts(diffusion_bundle, diffusion_model_dir, tmp_path):
    rep = run_diffusion_bench(DiffusionBenchConfig(bundle=str(diffusion_bundle), teacher=str(diffusion_model_dir),
                                                   batch=2, iters=2, teacher_iters=1, quality_n=20, grid_prompts=3,
                                                   engines=("onnxruntime",), precisions=("fp32", "int8")))
    ok = [c for c in rep["cells"] if c["status"] == "ok"]
    assert [c["precision"] for c in ok] == ["fp32"]
    skipped = next(c for c in rep["cells"] if c["precision"] == "int8")
    assert skipped["status"] == "skipped" and "int8" in skipped["reason"]
    c, t = ok[0], rep["teacher"]
    assert c["steps"] == 4 and c["denoise_p50_ms"] <= c["p50_ms"] and 0 <= c["class_fidelity"] <= 1
    assert t["denoiser_rows_per_prompt"] == 2 and t["steps"] == 4
    s = rep["summary"]
    assert s["speedup_vs_teacher"] == pytest.approx(t["p50_ms"] / c["p50_ms"])
    assert set(rep["_grids"]) == {"teacher (eager PyTorch)", "student onnxruntime fp32"}
    save(rep, tmp_path / "b.json", tmp_path / "b.html")
    assert "_grids" not in json.loads((tmp_path / "b.json").read_text())
    html = (tmp_path / "b.html").read_text()
    assert html.count("<img") == 6 and "Download ratings" in html and rep["prompts"]["grid"][0] in html


def test_the_page_works_in_chromium(diffusion_bundle, diffusion_model_dir, tmp_path):
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if chrome is None:
        pytest.skip("Chromium is not installed (apt package chromium; `make install` adds it)")
    import subprocess

    rep = run_diffusion_bench(DiffusionBenchConfig(bundle=str(diffusion_bundle), teacher=str(diffusion_model_dir),
                                                   batch=1, iters=1, teacher_iters=1, quality_n=10, grid_prompts=2,
                                                   engines=("onnxruntime",), precisions=("fp32",)))
    save(rep, tmp_path / "b.json", tmp_path / "b.html")
    r = subprocess.run([chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
                        f"file://{tmp_path / 'b.html'}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("<img") == 4 and 'class="rating"' in r.stdout


def test_pipeline_runs_teacher_to_report_for_a_diffusion_model(diffusion_model_dir, tmp_path, monkeypatch):
    from skugen.export import diffusion_distill
    from skugen.export.pipeline import PipelineConfig, format_summary, run_pipeline

    monkeypatch.setitem(diffusion_distill.FAST_STEP_DISTILL, "n_traj", 64)  # the fast preset, cut for a unit test

    rep = run_pipeline(PipelineConfig(model=str(diffusion_model_dir), out=str(tmp_path / "p"), preset="fast",
                                      distill_steps=4, budget_fidelity_pts=5.0, bench_iters=1))
    assert all(rep["verify"].values()) and any("text_encoder" in k for k in rep["verify"])
    st = json.loads((tmp_path / "p" / "student" / "card.json").read_text())
    assert st["config"]["distilled_guidance"] == 3.0 and st["macs_ratio_per_call"] < 1.0
    b = json.loads((tmp_path / "p" / "bundle" / "manifest.json").read_text())
    assert b["kind"] == "diffusion" and b["diffusion"]["distilled_guidance"] == 3.0
    text = format_summary(rep)
    assert "speed-up vs teacher" in text and "end to end" in text and (tmp_path / "p" / "reports" / "bench.html").is_file()
