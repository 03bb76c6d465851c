"""Golden tolerances of bundle manifests, per precision: the one place both exporters (skugen.export.bundle for the
one-graph families, skugen.export.diffusion_bundle) take them from, and what `skugen verify` checks against.

fp32: what ORT/TensorRT FP32 (TF32 off) reach against PyTorch with margin (measured max |err| ~1e-7).
fp16: a 10-bit mantissa through ~15 layers, outputs within [-1,1]/[0,1] (one-graph families) or velocities of
      [-1, 1] images (diffusion).
int8: cannot match element-wise (quantization noise is the point): checked by image statistics measured at
      export time (int8_golden_tolerance).
"""
from __future__ import annotations

import math

FP32_TOL = {"atol": 1e-4, "rtol": 1e-3}
FP16_TOL = {"atol": 2e-2, "rtol": 1e-2}


def int8_golden_tolerance(stats: dict, span: float) -> dict:
    """INT8 golden tolerance from the ORT INT8 measurement at export time.

    A PSNR floor (catches outliers and garbage) plus a mean-|err| bound (catches a global
    shift a PSNR average can hide). Margins let another correct INT8 backend (TensorRT
    fuses and rounds differently) pass while a broken engine (wrong scales, ~10-20 dB) fails.
    """
    p = stats.get("psnr_db")
    p = 200.0 if p is None else p  # identical outputs
    return {"min_psnr_db": round(min(p - 6.0, 30.0), 2),
            "max_mean_abs": round(max(3.0 * stats["mean_abs"], 0.02 * span), 6),
            "measured": {"psnr_db": stats.get("psnr_db"), "mean_abs": stats["mean_abs"], "backend": "onnxruntime CPU"},
            "rule": "pass when PSNR(output vs golden) >= min_psnr_db and mean|output - golden| <= max_mean_abs; "
                    "min_psnr_db = min(measured - 6 dB, 30 dB), max_mean_abs = max(3x measured, 2% of the "
                    "value range). INT8 cannot meet fp32 element-wise tolerances."}


def worse_stats(a: dict, b: dict) -> dict:
    """Per-statistic worst of two comparisons (lower PSNR, higher errors)."""
    pa = math.inf if a.get("psnr_db") is None else a["psnr_db"]
    pb = math.inf if b.get("psnr_db") is None else b["psnr_db"]
    p = min(pa, pb)
    return {"psnr_db": None if math.isinf(p) else p, "mean_abs": max(a["mean_abs"], b["mean_abs"])}
