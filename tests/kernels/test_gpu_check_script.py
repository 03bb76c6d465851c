"""The GPU command's CPU-testable parts: scripts/gpu_check.sh parses and plans, the kernel-variant choice, and the
eager-PyTorch baseline script (run on the CPU). What this cannot catch: anything that needs the GPU (timings,
CUDA errors); `bash scripts/gpu_check.sh` on a device does that."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from file_modules import load_file  # tests/support

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _module(name: str):
    return load_file(ROOT / "scripts" / f"{name}.py", f"_script_{name}")


def test_gpu_check_is_valid_bash_and_plans_every_step():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run"], check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "BUDGET": "480"}).stdout
    for step in ("kernels", "--choose kernels/kernel_choice.json", "gpu_eager.py", "test_tensorrt_gpu.py",
                 "trt_bench_fmnist-cgan-student.json", "budget 480s"):
        assert step in out, step


def test_choose_variants_picks_the_faster_total_per_op():
    gk = _module("gpu_kernels")
    rows = [{"kernel": "preprocess_float32 a [strided]", "variant": "strided", "median_us": 10.0},
            {"kernel": "preprocess_float16 b [strided]", "variant": "strided", "median_us": 30.0},
            {"kernel": "preprocess_float32 a [x4]", "variant": "x4", "median_us": 12.0},
            {"kernel": "preprocess_float16 b [x4]", "variant": "x4", "median_us": 20.0},
            {"kernel": "postprocess_float32 c [strided]", "variant": "strided", "median_us": 5.0},
            {"kernel": "postprocess_float32 c [x4]", "variant": "x4", "median_us": 6.0},
            {"kernel": "rgb_to_y 32x1024x1024", "median_us": 1.0}]
    choice = gk.choose_variants(rows)
    assert {op: c["default"] for op, c in choice.items()} == {"preprocess": "x4", "postprocess": "strided"}
    assert choice["preprocess"]["total_median_us"] == {"strided": 40.0, "x4": 32.0}
    assert gk.choose_variants(rows[:2]) == {}  # one variant timed: no choice


def test_written_choice_is_what_the_launcher_reads(tmp_path):
    from skugen.kernels import launcher

    gk = _module("gpu_kernels")
    p = tmp_path / "kernel_choice.json"
    gk.write_choice(str(p), {"preprocess": {"default": "x4", "total_median_us": {"strided": 2.0, "x4": 1.0}},
                             "postprocess": {"default": "strided", "total_median_us": {"strided": 1.0, "x4": 2.0}}},
                    {"gpu": "H200", "arch": "sm_90", "driver": 12040})
    assert launcher.default_variants(p) == {"preprocess": "x4", "postprocess": "strided"}


@pytest.mark.slow
def test_eager_baseline_runs_on_the_cpu(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "eager.json"
    rc = _module("gpu_eager").main([str(out), "--device", "cpu", "--iters", "2", "--batches", "1",
                                    "--models", "grocery-sr2x-student", "fmnist-cgan-student"])
    data = json.loads(out.read_text())
    assert rc == 0 and {r["model"] for r in data["results"]} == {"grocery-sr2x-student", "fmnist-cgan-student"}
    for r in data["results"]:
        assert r["median_ms"] > 0 and r["output_finite"] and r["role"] == "student" and r["precision"] == "fp32"
    assert [r["output_shape"] for r in data["results"] if r["kind"] == "enhancer"] == [[1, 3, 128, 128]]
