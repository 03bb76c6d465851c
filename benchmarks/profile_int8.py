"""Per-operator profile of a bundle's FP32 vs INT8 ONNX on ONNX Runtime CPU (what limits the INT8 speed-up).

    python benchmarks/profile_int8.py BUNDLE [--batch 16] [--threads 2] [--out benchmarks/results/profile_int8.json]

The bundle's main graph (a generator or enhancer, or a diffusion bundle's denoiser), fed its own golden inputs
repeated to --batch rows. Uses ORT's own profiler (SessionOptions.enable_profiling): kernel times per op type
(share and node count per call) and the most expensive nodes.
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
    per_op, per_node, nodes = collections.Counter(), collections.Counter(), collections.defaultdict(set)
    calls = 5 + iters  # the profiler records the warm-up calls too
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op, node = e["args"]["op_name"], e["name"][: -len("_kernel_time")]
            per_op[op] += e["dur"]
            per_node[(op, node)] += e["dur"]
            nodes[op].add(node)
    total = sum(per_op.values()) or 1
    return {"p50_ms": float(np.median(ts) * 1e3), "min_ms": float(np.min(ts) * 1e3),
            "op_share_pct": {k: round(v / total * 100, 1) for k, v in per_op.most_common()},
            "op_nodes": {k: len(nodes[k]) for k, _ in per_op.most_common()},
            "top_nodes_ms": [{"op": op, "node": n, "ms": round(v / calls / 1e3, 3)}
                             for (op, n), v in per_node.most_common(10)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    b = load_bundle(a.bundle)
    inputs, _ = b.golden()
    feed = {k: np.resize(v, (a.batch, *v.shape[1:])) for k, v in inputs.items()}  # golden rows, repeated
    res = {p: profile(str(b.model_path(p)), feed, a.threads) for p in ("fp32", "int8") if p in b.precisions}
    res["int8_speedup_p50"] = res["fp32"]["p50_ms"] / res["int8"]["p50_ms"] if "int8" in res else None
    out = {"bundle": b.name, "kind": b.spec.kind, "graph": b.spec.models["fp32"].file, "batch": a.batch, "threads": a.threads, "onnxruntime": ort.__version__,
           "cpu": machine()["cpu"], "load_avg": os.getloadavg(), "results": res}
    print(json.dumps(out, indent=1))
    if a.out:
        atomic_write_json(a.out, out)


if __name__ == "__main__":
    main()
