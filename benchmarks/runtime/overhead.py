#!/usr/bin/env python3
"""Runtime overhead over bare ONNX Runtime, and cold start, for a generator bundle.

    python benchmarks/runtime/overhead.py BUNDLE [--batch 16] [--precision int8] [--threads T]
                                          [--out benchmarks/runtime/results/overhead_NAME.json]

Overhead (target <= 5 % at batch 16): the same model file, the same session options
(intra-op threads, ORT_ENABLE_ALL, inter-op 1) and the same inputs, timed as
    bare      onnxruntime.InferenceSession.run(None, {z, onehot})  -> float (B, 1, 32, 32)
    skugen    pipe.generate(labels=..., latents=z)                  -> uint8 images, stats, provenance
Both are timed in alternating blocks (A B A B ...) so machine load drifts hit both alike; the
headline number is the median over blocks of (skugen block median / bare block median - 1).
For context the JSON also has `bare + numpy postprocess` (the least an app must do to get
uint8 images) and `generate(seed=...)` (latents drawn inside the call).

Cold start (target <= 1 s on CPU): a fresh `python -c` per run that times
`import skugen` + `skugen.load(BUNDLE, precision)` + the first `generate(n=1)`; the median of
--cold-runs runs is reported, with the import / load / first-call split and the whole
process wall time (interpreter start included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import skugen
t1 = time.perf_counter()
pipe = skugen.load(sys.argv[1], backend="onnxruntime", precision=sys.argv[2], threads=int(sys.argv[3]) or None)
t2 = time.perf_counter()
res = pipe.generate(labels=0, n=1, seed=0)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_generate_s": t3 - t2, "total_s": t3 - t0,
                  "precision": pipe.precision, "modules": len(sys.modules),
                  "torch_imported": "torch" in sys.modules}))
"""


def _block(fn, n: int) -> float:
    """Median seconds per call over n calls."""
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def measure_overhead(bundle: str, batch: int, precision: str, threads: int, blocks: int, per_block: int) -> dict:
    import onnxruntime as ort

    import skugen
    from skugen.kernels.reference import postprocess

    pipe = skugen.load(bundle, backend="onnxruntime", precision=precision, threads=threads)
    sp = pipe.spec
    if sp.kind != "generator":
        raise SystemExit(f"{bundle} is an {sp.kind}; overhead.py measures generator bundles")
    if batch > sp.max_batch:
        raise SystemExit(f"--batch {batch} > the bundle's max_batch {sp.max_batch}")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((batch, sp.z_dim), dtype=np.float32)  # (B, z_dim)
    labels = [i % sp.n_classes for i in range(batch)]
    onehot = np.eye(sp.n_classes, dtype=np.float32)[labels]  # (B, n_classes)

    so = ort.SessionOptions()  # exactly what OnnxRuntimeRunner sets
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(pipe.bundle.model_path(pipe.precision)), so, providers=["CPUExecutionProvider"])
    feed = {"z": z, "onehot": onehot}

    # Same images either way (the skugen path is the bare run + the reference postprocess).
    bare_img = postprocess(sess.run(None, feed)[0], sp.value_range, "GRAY")
    assert np.array_equal(pipe.generate(labels=labels, latents=z).images, bare_img.reshape(batch, 32, 32, 1))

    variants = {
        "bare": lambda: sess.run(None, feed),
        "bare+postprocess": lambda: postprocess(sess.run(None, feed)[0], sp.value_range, "GRAY"),
        "skugen_latents": lambda: pipe.generate(labels=labels, latents=z),
        "skugen_seed": lambda: pipe.generate(labels=labels, seed=0, n=batch),
    }
    for fn in variants.values():  # warm-up: allocator arenas, caches
        for _ in range(20):
            fn()
    meds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(blocks):
        for k, fn in variants.items():
            meds[k].append(_block(fn, per_block))
    ratio = {k: [m / b - 1 for m, b in zip(meds[k], meds["bare"])] for k in variants if k != "bare"}
    # skugen vs the least an app must do itself to get uint8 images (run + postprocess).
    ratio["skugen_latents_vs_bare+postprocess"] = [m / b - 1 for m, b in zip(meds["skugen_latents"],
                                                                             meds["bare+postprocess"])]
    pipe_stats = pipe.report().latency["session"]
    pipe.close()
    return {
        "batch": batch, "precision": precision, "threads": threads, "blocks": blocks, "calls_per_block": per_block,
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in meds.items()},
        "overhead_pct": {k: 100 * statistics.median(v) for k, v in ratio.items()},
        "overhead_pct_iqr": {k: [100 * float(np.percentile(v, 25)), 100 * float(np.percentile(v, 75))]
                             for k, v in ratio.items()},
        "skugen_stage_split_ms": {s: pipe_stats[s]["p50"] for s in ("pre", "infer", "post", "total")},
        "headline": "overhead_pct.skugen_latents: generate(latents=z) vs bare InferenceSession.run, same inputs",
    }


def measure_cold_start(bundle: str, precision: str, threads: int, runs: int) -> dict:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", COLD, bundle, precision, str(threads)],
                           capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(r.stderr)
        d = json.loads(r.stdout.strip().splitlines()[-1])
        d["process_wall_s"] = wall
        out.append(d)
    med = {k: statistics.median(d[k] for d in out) for k in ("import_s", "load_s", "first_generate_s",
                                                               "total_s", "process_wall_s")}
    return {"runs": runs, "median": med, "all": out, "precision": out[0]["precision"],
            "torch_imported": any(d["torch_imported"] for d in out),
            "headline": "median.total_s: import skugen + load + first generate, in a fresh process"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--precision", default="int8", help="int8 (default) or fp32")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--per-block", type=int, default=40)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import os

    import skugen.bundle
    from skugen.report import environment

    threads = args.threads or len(os.sched_getaffinity(0))
    b = skugen.bundle.load_bundle(args.bundle)
    result = {
        "schema_version": 1, "benchmark": "runtime overhead + cold start",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": {"name": b.name, "path": str(b.root), "sha256": b.manifest_sha256,
                   "model_sha256": b.model_sha256(args.precision)},
        "environment": environment(),
        "targets": {"overhead_pct_max": 5.0, "cold_start_s_max": 1.0},
        "overhead": measure_overhead(args.bundle, args.batch, args.precision, threads, args.blocks, args.per_block),
        "cold_start": measure_cold_start(args.bundle, args.precision, threads, args.cold_runs),
    }
    ov = result["overhead"]["overhead_pct"]["skugen_latents"]
    cs = result["cold_start"]["median"]["total_s"]
    result["pass"] = {"overhead": ov <= 5.0, "cold_start": cs <= 1.0}
    out = args.out or HERE / "results" / f"overhead_{b.name}.json"
    from skugen.io import atomic_write_json

    atomic_write_json(out, result)
    m = result["overhead"]["median_ms"]
    ovp = result["overhead"]["overhead_pct"]["skugen_latents_vs_bare+postprocess"]
    print(f"{b.name} ({args.precision}, batch {args.batch}, {threads} threads): bare {m['bare']:.3f} ms, "
          f"skugen {m['skugen_latents']:.3f} ms -> overhead {ov:+.1f} % (vs bare run + postprocess: {ovp:+.1f} %)")
    c = result["cold_start"]["median"]
    print(f"cold start: {cs:.3f} s (import {c['import_s']:.3f} + load {c['load_s']:.3f} + first generate "
          f"{c['first_generate_s']:.3f}); process wall {c['process_wall_s']:.3f} s")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
