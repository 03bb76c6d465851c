"""`skugen pipeline` end to end on a tiny teacher: stages join, re-runs resume, kill -9 never leaves a half bundle."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skugen.bundle import load_bundle
from skugen.errors import InputError
from skugen.export.pipeline import PipelineConfig, format_summary, run_pipeline
from file_modules import load_file  # tests/support


def _cfg(model_dir, out, **kw):
    # the tiny fixture teacher bottoms out near 27% MACs (8-channel floors), so it aims at 50%
    base = dict(model=str(model_dir), out=str(out), preset="fast", target_macs=0.5, distill_steps=4, bench_iters=2,
                bench_batches=(2,), bench_quality_n=20, calib_n=16, threads=1)
    base.update(kw)
    return PipelineConfig(**base)


@pytest.mark.slow
def test_pipeline_end_to_end_and_resume(cgan_model_dir, tmp_path):
    out = tmp_path / "run"
    rep = run_pipeline(_cfg(cgan_model_dir, out))
    assert all(rep["verify"].values()) and rep["verify"]
    b = load_bundle(out / "bundle")
    assert b.kind == "generator" and "fp32" in b.precisions
    assert (out / "reports" / "bench.html").stat().st_size > 10_000
    assert (out / "student" / "sensitivity.json").is_file()
    bench = json.loads((out / "reports" / "bench.json").read_text())
    assert {c["backend"] for c in bench["cells"] if c["status"] == "ok"} >= {"onnxruntime", "torch"}
    text = format_summary(rep)
    assert "speed-up vs teacher" in text and "quality vs teacher" in text and "bundle size" in text
    assert rep["summary"]["speedup_int8_vs_teacher" if "int8" in b.precisions else "batch"]
    # second run: every stage is up to date
    rep2 = run_pipeline(_cfg(cgan_model_dir, out))
    assert all(t["skipped"] for t in rep2["stages"].values()), rep2["stages"]
    # a changed input re-runs its stage and the ones after it
    rep3 = run_pipeline(_cfg(cgan_model_dir, out, target_macs=0.6, skip_bench=True))
    assert not rep3["stages"]["compress"]["skipped"] and not rep3["stages"]["export"]["skipped"]


def test_pipeline_rejects_bad_config(cgan_model_dir, tmp_path):
    with pytest.raises(InputError, match="preset"):
        run_pipeline(_cfg(cgan_model_dir, tmp_path, preset="huge"))
    with pytest.raises(InputError, match="target-macs"):
        run_pipeline(_cfg(cgan_model_dir, tmp_path, target_macs=1.5))


@pytest.mark.slow
def test_kill_9_never_leaves_a_loadable_partial_bundle(cgan_model_dir, tmp_path):
    """kill -9 inside the export stage, three times; each kill is checked to have landed there, then a rerun recovers.

    Where a kill landed is read from what the pipeline itself writes: its stage log on stderr
    ("[pipeline] export ..." when the stage starts, "export: done" when it ends) and
    OUT/pipeline_state.json, which records a stage only after its outputs are complete.
    """
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "skugen.cli", "pipeline", "--model", str(cgan_model_dir), "--out", str(out),
           "--skip-bench", "--target-macs", "0.5", "--threads", "1", "--distill-steps", "4", "--calib", "16"]
    env = {**os.environ, "SKUGEN_NO_PROGRESS": "1"}

    def state() -> dict:
        f = out / "pipeline_state.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    landed = []
    for i, delay in enumerate((0.0, 0.4, 1.2)):  # kill at several points inside the export stage
        log = tmp_path / f"run{i}.log"
        with open(log, "w") as fh:
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=fh)
            t0 = time.time()
            while "[pipeline] export ..." not in log.read_text() and p.poll() is None and time.time() - t0 < 600:
                time.sleep(0.05)
            assert p.poll() is None, f"run {i} ended before its export stage started:\n{log.read_text()[-2000:]}"
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
        text = log.read_text()
        in_export = p.returncode == -signal.SIGKILL and "export: done" not in text and "export" not in state()
        landed.append(in_export)
        if (out / "bundle").exists():
            load_bundle(out / "bundle")  # complete and verified, or it would raise
    # the immediate kill must have hit the export stage; the later ones may not on a fast machine
    assert landed[0], landed
    assert "compress" in state() and "export" not in state()  # the stage before it was kept, export was not

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[pipeline] export ..." in r.stderr and "export: done" in r.stderr  # export really re-ran to the end
    assert "compress: up to date, skipped" in r.stderr  # and the completed stages before it were kept
    assert "export" in state()
    load_bundle(out / "bundle")


@pytest.mark.slow
def test_a_source_edit_invalidates_every_stage_after_import(tmp_path):
    """The factory's file changes (output x0.5), the weights do not: import, compress, export and verify re-run,
    and the bundle is built from the new code. An unchanged re-run skips every stage."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_custom import PROJ_SPEC, _project

    proj = _project(tmp_path / "proj")
    spec = tmp_path / "io.json"
    spec.write_text(json.dumps(PROJ_SPEC))
    cfg = PipelineConfig(model=f"{proj / 'nets.py'}:make", out=str(tmp_path / "run"), io_spec=str(spec),
                         target_macs=0.6, distill_steps=2, skip_bench=True, calib_n=16, threads=1)
    rep = run_pipeline(cfg)
    assert rep["name"] == "shopgen-student" and rep["reports"]["bench_html"] is None
    assert "no benchmark report" in format_summary(rep)
    assert rep["reports"]["sensitivity"] is None  # a user's model has no sensitivity table: no dead path
    first = load_bundle(tmp_path / "run" / "bundle").manifest_sha256
    src_sha = json.loads((tmp_path / "run" / "teacher" / "card.json").read_text())["source"]["sha256"]
    rep2 = run_pipeline(cfg)
    assert all(t["skipped"] for t in rep2["stages"].values()), rep2["stages"]
    _project(proj, scale_out=0.5)  # the edit: same weights, other code
    rep3 = run_pipeline(cfg)
    assert not any(rep3["stages"][s]["skipped"] for s in ("import", "compress", "export", "verify")), rep3["stages"]
    assert load_bundle(tmp_path / "run" / "bundle").manifest_sha256 != first
    card = json.loads((tmp_path / "run" / "teacher" / "card.json").read_text())
    assert "* 0.5" in (tmp_path / "run" / "teacher" / "source" / "nets.py").read_text()
    assert card["source"]["sha256"] != src_sha  # the card records the source the model was built from


def test_format_summary_labels_both_speedups_the_baseline_and_the_data(tmp_path):
    """The headline shows both ratios, each saying what the teacher ran on; the bicubic line and the data line too."""
    rep = {"out": str(tmp_path), "reports": {"bench_html": str(tmp_path / "bench.html")},
           "summary": {"speedup_int8_vs_teacher_same_engine": 3.61, "speedup_int8_vs_teacher": 4.23,
                       "speedup_int8_vs_teacher_torch": 4.23, "speedup_int8_vs_fp32_student": 1.9, "batch": 16,
                       "quality": {"student_int8": {"psnr_gt_db": 31.5, "psnr_teacher_db": 40.1},
                                   "teacher": {"psnr_gt_db": 31.9}},
                       "baseline": {"bicubic_psnr_y_db": 30.25, "fp32_psnr_y_db": 31.75, "margin_db": 1.5,
                                    "warning": None},
                       "data": "your images /x/photos (degradation: bicubic): gate part (36 images)",
                       "bundle_bytes": 2_500_000, "bundle_int8_onnx_bytes": 400_000}}
    text = format_summary(rep)
    head = next(line for line in text.splitlines() if line.startswith("speed-up vs teacher"))
    assert "3.61x like for like (teacher FP32 ONNX on ONNX Runtime too)" in head
    assert "4.23x vs the teacher in eager PyTorch" in head and "batch 16" in head
    assert "baseline: bicubic 30.25 dB PSNR-Y vs the FP32 student 31.75 dB (+1.50 dB)" in text
    assert "data: your images /x/photos (degradation: bicubic)" in text and "WARNING" not in text
    # only the eager ratio measured (e.g. the teacher bundle's bench cell failed): no made-up like-for-like number
    only = {**rep, "summary": {k: v for k, v in rep["summary"].items() if k != "speedup_int8_vs_teacher_same_engine"}}
    assert "like for like" not in format_summary(only) and "4.23x vs the teacher in eager PyTorch" in format_summary(only)
    # a warning is printed as one
    warn = {**rep, "summary": {**rep["summary"], "baseline": {**rep["summary"]["baseline"], "warning": "below bicubic"}}}
    assert "WARNING: below bicubic" in format_summary(warn)
    # no benchmark at all: says so, and names no report file that does not exist
    bare = {"out": str(tmp_path), "reports": {"bench_html": None},
            "summary": {"data": "skugen default", "bundle_bytes": 1000, "bundle_int8_onnx_bytes": None}}
    t = format_summary(bare)
    assert "speed-up vs teacher: not benchmarked" in t and "no benchmark report (--skip-bench)" in t


UP_FACTORY = '''
import torch.nn as nn, torch.nn.functional as F

class Up(nn.Module):
    """x2 on [0, 1]: bicubic plus a small learned residual (a near-bicubic model: INT8 costs it little)."""
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 12, 3, padding=1)
        nn.init.normal_(self.c2.weight, std=1e-3)
        self.ps = nn.PixelShuffle(2)
    def forward(self, x):
        up = F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bicubic", align_corners=False)
        return up + self.ps(self.c2(F.relu(self.c1(x))))  # size=, not scale_factor=: torch.export-able

def make():
    import torch
    torch.manual_seed(0)
    return Up().eval()
'''


@pytest.mark.slow
def test_cli_pipeline_on_a_users_upscaler_and_photos(tmp_path, capsys):
    """`skugen pipeline --model FILE.py:factory --io-spec ... --data DIR` with the bench: the summary names the user's
    data, prints the bicubic line and both labelled speed-ups; the bundle's INT8 report was gated on those photos."""
    from safetensors.torch import save_file

    from skugen import cli
    from skugen.errors import DataError
    from skugen.export import data

    try:
        photos = [p for p, _, _ in data.grocery_split("test")][::80][:30]
    except DataError:
        pytest.skip("GroceryStore not found (../shared/data/grocery-store)")
    d = tmp_path / "photos"
    d.mkdir()
    for i, p in enumerate(photos):
        (d / f"{i:02d}_{p.name}").write_bytes(p.read_bytes())
    (tmp_path / "up.py").write_text(UP_FACTORY)
    (tmp_path / "io.json").write_text(json.dumps({"kind": "enhancer", "scale": 2, "name": "myup"}))
    mod = load_file(tmp_path / "up.py", "up_t")
    save_file(mod.make().state_dict(), str(tmp_path / "up.safetensors"))
    out = tmp_path / "run"
    rc = cli.main(["pipeline", "--model", f"{tmp_path / 'up.py'}:make", "--io-spec", str(tmp_path / "io.json"),
                   "--weights", str(tmp_path / "up.safetensors"), "--data", str(d), "--out", str(out),
                   "--target-macs", "0.6", "--distill-steps", "4", "--calib", "16", "--budget-db", "1.0",
                   "--batch", "2", "--iters", "2", "--threads", "1"])
    cap = capsys.readouterr()
    text = cap.out
    assert rc == 0, cap.err[-3000:]
    lines = {ln.split(":")[0]: ln for ln in text.splitlines() if ":" in ln}
    assert f"your images {d.resolve()} (degradation: bicubic)" in lines["data"]
    assert "baseline: bicubic" in text and "dB PSNR-Y vs the FP32 student" in lines["baseline"]
    head = lines["speed-up vs teacher"]
    assert "x like for like (teacher FP32 ONNX on ONNX Runtime too)" in head and "x vs the teacher in eager PyTorch" in head
    rep = json.loads((out / "report.json").read_text())
    s = rep["summary"]
    assert s["speedup_int8_vs_teacher_same_engine"] > 0 and s["speedup_int8_vs_teacher_torch"] > 0
    assert f"{s['speedup_int8_vs_teacher_same_engine']:.2f}x like for like" in head
    assert rep["name"] == "myup-student"
    q = json.loads((out / "bundle" / "reports" / "quantization.json").read_text())
    assert f"your images {d.resolve()}" in q["eval"]["source"] and "gate part" in q["eval"]["source"]
    assert q["outcome"].startswith("int8") and "your images" in q["confirm"]["source"]
    student = json.loads((out / "student" / "card.json").read_text())
    assert "gate + confirm" in student["metrics"]["inputs"]  # compress checked the student on the user's photos too
