"""Quality per backend x precision: conventions, teacher, ground truth, bicubic, class fidelity, FID-proxy."""
from __future__ import annotations

import numpy as np
import pytest

from skugen.bench import FID_NAME
from skugen.evaluate import pair_report


def test_quality_with_conventions_teacher_and_fid_proxy(bench, bench_cell):
    rep = bench["report"]
    g = next(c["bundle"] for c in rep.ok_cells() if c["kind"] == "generator")
    fp32 = bench_cell(rep, g, "student", "onnxruntime", "fp32", 1)["quality"]
    int8 = bench_cell(rep, g, "student", "onnxruntime", "int8", 1)["quality"]
    teacher = bench_cell(rep, g, "teacher", "torch", "fp32", 1)["quality"]
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
    assert bench_cell(rep, g, "student", "onnxruntime", "int8", 2)["quality"] == int8
    assert rep.samples[g]["columns"].keys() >= {"teacher (torch fp32)", "student fp32 (onnxruntime)",
                                                "student int8 (onnxruntime)"}


def test_enhancer_quality_against_ground_truth_and_bicubic(bench, bench_cell):
    if not bench["has_sr"]:
        pytest.skip("no enhancer bundle here (GroceryStore missing)")
    rep = bench["report"]
    e = next(c["bundle"] for c in rep.ok_cells() if c["kind"] == "enhancer")
    q = bench_cell(rep, e, "student", "onnxruntime", "int8", 1)["quality"]
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
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 32, 1)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255)
    m = pair_report(a, b, "generator", 1, "test")
    want = np.mean([skm.peak_signal_noise_ratio(a[i], b[i], data_range=255) for i in range(2)])
    assert m["psnr"]["value"] == pytest.approx(want, abs=1e-6)
