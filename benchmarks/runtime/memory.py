#!/usr/bin/env python3
"""Resource hygiene: RSS growth over many calls, over load/close cycles, and a large photo's peak.

    python benchmarks/runtime/memory.py GENERATOR_BUNDLE [--enhancer SR_BUNDLE] [--calls 10000]
                                        [--photo 4000x3000] [--out benchmarks/runtime/results/memory_NAME.json]

1. `--calls` generate calls (n=1..4, rotating classes and seeds) on one Pipeline; RSS is sampled
   every `--every` calls. Growth is measured from the first sample after warm-up (ORT arenas and
   the rolling stats window fill up first) to the end, and as a least-squares slope per 1,000 calls.
2. `--cycles` skugen.load + generate + close cycles: a leak in close() shows up here.
3. With --enhancer: one `--photo` sized photo enhanced with the bundle's tiles, in a fresh process:
   peak RSS over that process's baseline, against the uint8 output buffer and the whole-image
   float32 tensors an untiled run would allocate.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

PHOTO = r"""
import json, sys, time
import numpy as np
import skugen
from skugen.report import peak_rss_mb, rss_mb
h, w = int(sys.argv[2]), int(sys.argv[3])
with skugen.load(sys.argv[1], backend="onnxruntime", threads=int(sys.argv[4]) or None) as p:
    p.enhance(np.zeros((64, 64, 3), np.uint8))  # warm: session arenas for the tile shape
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    base = rss_mb()
    t = time.perf_counter()
    res = p.enhance(img)
    dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt, "rss_before_mb": base, "peak_rss_mb": peak_rss_mb(),
                      "output_shape": list(res.images.shape), "tile": p.info["tile"],
                      "latency_ms": res.report.latency["call"]}))
"""


def rss_growth(bundle: str, calls: int, every: int, threads: int) -> dict:
    import skugen
    from skugen.report import rss_mb

    samples = []
    with skugen.load(bundle, backend="onnxruntime", threads=threads) as pipe:
        nc = pipe.spec.n_classes
        t0 = time.perf_counter()
        for i in range(calls):
            res = pipe.generate(labels=i % nc, n=1 + i % 4, seed=i)
            if i % 500 == 0:
                res.report.to_dict()  # reports too (environment, percentiles): they must not accumulate
            if (i + 1) % every == 0:
                samples.append((i + 1, rss_mb()))
        elapsed = time.perf_counter() - t0
    warm = [s for s in samples if s[0] >= min(calls // 5, 2000)] or samples
    x = np.array([s[0] for s in warm], float)
    y = np.array([s[1] for s in warm], float)
    slope = float(np.polyfit(x, y, 1)[0] * 1000) if len(warm) > 1 else 0.0
    half = [v for c, v in samples if c >= calls // 2]
    return {"calls": calls, "seconds": elapsed, "samples_mb": samples,
            "growth_after_warmup_mb": float(y[-1] - y[0]), "slope_mb_per_1000_calls": slope,
            "growth_second_half_mb": float(half[-1] - half[0]) if half else None,
            "warmup_calls": int(x[0])}


def bare_ort_growth(bundle: str, calls: int, every: int, threads: int | None) -> dict:
    """The same call pattern on a bare InferenceSession: the allocator noise floor to compare with."""
    import onnxruntime as ort

    import skugen.bundle
    from skugen.report import rss_mb

    b = skugen.bundle.load_bundle(bundle)
    prec = "int8" if "int8" in b.precisions else "fp32"
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(b.model_path(prec)), so, providers=["CPUExecutionProvider"])
    z_dim, nc = b.spec.z_dim, b.spec.n_classes
    samples = []
    for i in range(calls):
        n = 1 + i % 4
        z = np.random.default_rng(i).standard_normal((n, z_dim), dtype=np.float32)
        sess.run(None, {"z": z, "onehot": np.eye(nc, dtype=np.float32)[[i % nc] * n]})
        if (i + 1) % every == 0:
            samples.append((i + 1, rss_mb()))
    warm = [s for s in samples if s[0] >= min(calls // 5, 2000)] or samples
    return {"calls": calls, "samples_mb": samples, "growth_after_warmup_mb": warm[-1][1] - warm[0][1]}


def load_close_cycles(bundle: str, cycles: int, threads: int) -> dict:
    import skugen
    from skugen.report import rss_mb

    rss = []
    for _ in range(cycles):
        with skugen.load(bundle, backend="onnxruntime", threads=threads) as pipe:
            pipe.generate(labels=0, n=2, seed=0)
        rss.append(rss_mb())
    half = max(cycles // 2, 1)
    return {"cycles": cycles, "rss_mb": rss, "growth_second_half_mb": rss[-1] - rss[half - 1]}


def large_photo(bundle: str, hw: tuple[int, int], threads: int) -> dict:
    h, w = hw
    r = subprocess.run([sys.executable, "-c", PHOTO, bundle, str(h), str(w), str(threads)],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise SystemExit(r.stderr)
    d = json.loads(r.stdout.strip().splitlines()[-1])
    s = 2
    d["output_uint8_mb"] = h * s * w * s * 3 / 2**20
    d["untiled_float32_tensors_mb"] = (h * w * 3 * 4 + h * s * w * s * 3 * 4) / 2**20
    d["peak_over_baseline_mb"] = d["peak_rss_mb"] - d["rss_before_mb"]
    d["peak_over_output_mb"] = d["peak_over_baseline_mb"] - d["output_uint8_mb"]
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="generator bundle")
    ap.add_argument("--enhancer", help="enhancer bundle for the large-photo check")
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--cycles", type=int, default=40)
    ap.add_argument("--photo", default="4000x3000", help="WIDTHxHEIGHT of the large photo")
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import skugen.bundle
    from skugen.io import atomic_write_json
    from skugen.report import environment

    b = skugen.bundle.load_bundle(args.bundle)
    threads = args.threads or None
    w, h = (int(v) for v in args.photo.lower().split("x"))
    result = {
        "schema_version": 1, "benchmark": "runtime memory hygiene",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": {"name": b.name, "sha256": b.manifest_sha256},
        "environment": environment(),
        "rss_growth": rss_growth(args.bundle, args.calls, args.every, threads),
        "load_close": load_close_cycles(args.bundle, args.cycles, threads),
        "bare_ort_baseline": bare_ort_growth(args.bundle, args.calls, args.every, threads),
    }
    g = result["rss_growth"]
    print(f"{args.calls} generate calls in {g['seconds']:.1f} s: RSS growth after {g['warmup_calls']} warm-up calls "
          f"{g['growth_after_warmup_mb']:+.2f} MiB (slope {g['slope_mb_per_1000_calls']:+.3f} MiB / 1000 calls; "
          f"second half {g['growth_second_half_mb']:+.2f} MiB)")
    print(f"  (bare onnxruntime, same call pattern: {result['bare_ort_baseline']['growth_after_warmup_mb']:+.2f} MiB)")
    lc = result["load_close"]
    print(f"{args.cycles} load/close cycles: RSS growth over the second half {lc['growth_second_half_mb']:+.2f} MiB")
    if args.enhancer:
        eb = skugen.bundle.load_bundle(args.enhancer)
        result["enhancer_bundle"] = {"name": eb.name, "sha256": eb.manifest_sha256}
        result["large_photo"] = large_photo(args.enhancer, (h, w), args.threads)
        d = result["large_photo"]
        print(f"{w}x{h} photo in {d['seconds']:.1f} s: peak RSS +{d['peak_over_baseline_mb']:.0f} MiB over baseline = "
              f"output {d['output_uint8_mb']:.0f} MiB + {d['peak_over_output_mb']:.0f} MiB working set "
              f"(untiled float tensors would be {d['untiled_float32_tensors_mb']:.0f} MiB)")
    out = args.out or HERE / "results" / f"memory_{b.name}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
