#!/usr/bin/env python3
"""Speed of skugen.metrics' SSIM and PSNR (what every quality gate and `skugen eval` runs), side by side
with scikit-image's on the same images in one run.

    python benchmarks/runtime/metrics_speed.py [--batch 16] [--size 256] [--repeats 5]
                                               [--out benchmarks/runtime/results/metrics_speed.json]

Target: skugen's SSIM (BasicSR convention, Gaussian 11x11, per channel; numpy alone, since the runtime
must not need scipy) takes at most 2x the time of scikit-image's scipy-backed
`structural_similarity(..., gaussian_weights=True, sigma=1.5, channel_axis=-1)` on the same batch, one
image at a time, run with OMP_NUM_THREADS=1. A naive 2-D window (121 taps, no separable filter) would
be several times over it. The unit tests check the values against the same references; the time lives
here, not in a timed unit test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _best(fn, repeats: int) -> dict:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "runs_s": ts}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "metrics_speed.json")
    args = ap.parse_args(argv)

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from skugen import metrics
    from skugen.io import atomic_write_text
    from skugen.report import environment

    rng = np.random.default_rng(8)
    shape = (args.batch, args.size, args.size, 3)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)

    def sk_ssim():
        return [structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=255, channel_axis=-1) for x, y in zip(a, b)]

    def sk_psnr():
        return [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]

    metrics.ssim(a, b)  # warm-up (imports, first allocations)
    sk_ssim()
    cells = {
        "skugen_ssim": _best(lambda: metrics.ssim(a, b), args.repeats),
        "skimage_ssim": _best(sk_ssim, args.repeats),
        "skugen_psnr": _best(lambda: metrics.psnr(a, b), args.repeats),
        "skimage_psnr": _best(sk_psnr, args.repeats),
    }
    ratio = cells["skugen_ssim"]["median_s"] / cells["skimage_ssim"]["median_s"]
    out = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "images": list(shape),
        "cells": cells,
        "ssim_time_vs_skimage": ratio,
        "target": "ssim_time_vs_skimage <= 2.0",
        "target_met": ratio <= 2.0,
        "values": {"skugen_ssim": metrics.ssim(a, b), "skimage_ssim": float(np.mean(sk_ssim()))},
        "environment": environment(probe=True, threads=os.environ.get("OMP_NUM_THREADS")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"SSIM on {shape}: skugen {cells['skugen_ssim']['median_s'] * 1e3:.0f} ms, scikit-image "
          f"{cells['skimage_ssim']['median_s'] * 1e3:.0f} ms (ratio {ratio:.2f}); PSNR skugen "
          f"{cells['skugen_psnr']['median_s'] * 1e3:.1f} ms, scikit-image {cells['skimage_psnr']['median_s'] * 1e3:.1f} ms"
          f" -> {args.out}")
    return out


if __name__ == "__main__":
    main()
