"""Per-operator profile of a generator bundle's FP32 vs INT8 ONNX on ONNX Runtime CPU (what limits the INT8 speed-up).

    python benchmarks/profile_int8.py BUNDLE [--batch 16] [--threads 2] [--out benchmarks/results/profile_int8.json]

Uses ORT's own profiler (SessionOptions.enable_profiling); times are kernel times summed per op type.
"""
import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np
import onnxruntime as ort

from skugen.bundle import load_bundle
from skugen.io import atomic_write_json
from skugen.report import machine


def profile(path: str, feed: dict, threads: int, iters: int = 30) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        s.run(None, feed)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        s.run(None, feed)
        ts.append(time.perf_counter() - t)
    events = json.load(open(s.end_profiling()))
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1
    return {"p50_ms": float(np.median(ts) * 1e3), "min_ms": float(np.min(ts) * 1e3),
            "op_share_pct": {k: round(v / total * 100, 1) for k, v in per_op.most_common()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    b = load_bundle(a.bundle)
    z_dim, nc = b.spec.z_dim, b.spec.n_classes
    rng = np.random.default_rng(0)
    feed = {"z": rng.standard_normal((a.batch, z_dim)).astype(np.float32),
            "onehot": np.eye(nc, dtype=np.float32)[np.arange(a.batch) % nc]}
    res = {p: profile(str(b.model_path(p)), feed, a.threads) for p in b.precisions}
    res["int8_speedup_p50"] = res["fp32"]["p50_ms"] / res["int8"]["p50_ms"] if "int8" in res else None
    out = {"bundle": b.name, "batch": a.batch, "threads": a.threads, "onnxruntime": ort.__version__,
           "cpu": machine()["cpu"], "load_avg": os.getloadavg(), "results": res}
    print(json.dumps(out, indent=1))
    if a.out:
        atomic_write_json(a.out, out)


if __name__ == "__main__":
    main()
