"""Per-operator profile of a bundle on OpenVINO's CPU plugin at fp32 / bf16 / int8 (what holds a cell below the
engine's GEMM ceiling).

    python benchmarks/profile_openvino.py BUNDLE [--batch 64] [--tile 128] [--threads 2] [--iters 30]
        [--out benchmarks/results/profile_openvino_NAME.json]

Compiles the same files the runner compiles (skugen.backends.openvino.runner_for_bundle: int8 = the bundle's
own NNCF IR when it ships one) with the same hints plus PERF_COUNT, times `iters` calls, and sums OpenVINO's
per-node `profiling_info` (real_time) over them. Per node it records the layer type, the kernel OpenVINO chose
(exec_type, e.g. brgconv_avx512_amx_I8 / jit_avx512_FP32 / ref_any), the MACs of the Convolution /
FullyConnected / MatMul nodes (from the runtime model's shapes) and their achieved GMAC/s, so a slow layer can
be told from a slow glue op (Reorder, Eltwise, DepthToSpace, Interpolate ...). Timings are of this machine and
load: the JSON carries both.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np

from skugen.backends.openvino import core, runner_for_bundle
from skugen.bundle import load_bundle
from skugen.io import atomic_write_json
from skugen.report import machine

WEIGHTED = ("Convolution", "FullyConnected", "MatMul", "Deconvolution", "GroupConvolution")


def _feed(b, batch: int, tile: int) -> dict:
    rng = np.random.default_rng(0)
    if b.spec.kind == "generator":
        return {"z": rng.standard_normal((batch, b.spec.z_dim)).astype(np.float32),
                "onehot": np.eye(b.spec.n_classes, dtype=np.float32)[np.arange(batch) % b.spec.n_classes]}
    ch = b.spec.io.input("lr").shape[1]
    return {"lr": rng.random((batch, ch if isinstance(ch, int) else 3, tile, tile), dtype=np.float32)}


def _shape(port) -> list[int]:
    ps = port.get_partial_shape()
    return [d.get_length() if d.is_static else -1 for d in ps]


def _node_macs(compiled) -> dict[str, dict]:
    """runtime-model node name -> {type, macs} for the weighted nodes (static shapes after the first infer)."""
    out = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rti = op.get_rt_info()
        t = rti["layerType"].astype(str) if "layerType" in rti else op.get_type_name()
        if t not in WEIGHTED:
            continue
        try:
            o = _shape(op.output(0))
            w = _shape(op.input(1)) if op.get_input_size() > 1 else []
        except Exception:  # noqa: BLE001 - a node without a static shape: no MAC count
            continue
        if -1 in o or not w or -1 in w:
            continue
        if t in ("Convolution", "GroupConvolution", "Deconvolution"):
            # weights [Cout, Cin/g, kh, kw] (grouped: [g, Cout/g, Cin/g, kh, kw]); out [N, Cout, H, W]
            per_out = int(np.prod(w[-3:]))
            macs = int(np.prod(o)) * per_out
        else:  # FullyConnected / MatMul: out [..., M, N]; the reduced dim K = numel(A) * N / numel(out), whatever
            a_ = _shape(op.input(0))  # A's transpose flag (attention's q @ k^T reads A as [.., K, M])
            if -1 in a_:
                continue
            k = int(np.prod(a_)) * o[-1] // max(int(np.prod(o)), 1)
            macs = int(np.prod(o)) * k
        out[op.get_friendly_name()] = {"type": t, "macs": macs,
                                       "precision": rti["runtimePrecision"].astype(str) if "runtimePrecision" in rti else None}
    return out


def profile(b, precision: str, feed: dict, threads: int, iters: int) -> dict:
    r = runner_for_bundle(b, precision, threads=threads)
    r.activate()  # the runner's own checks (bf16 native, files) and its info
    info = dict(r.info)
    r.deactivate()
    ov_core = core()
    model = ov_core.read_model(str(r.model), str(r.weights)) if r.weights else ov_core.read_model(str(r.model))
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[precision]
    cm = ov_core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                              "INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": True})
    req = cm.create_infer_request()
    for _ in range(5):
        req.infer(feed)
    nodes: dict[str, dict] = {}
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        req.infer(feed)
        ts.append(time.perf_counter() - t0)
        for p in req.profiling_info:
            if str(p.status).endswith("EXECUTED"):
                n = nodes.setdefault(p.node_name, {"node_type": p.node_type, "exec_type": p.exec_type, "us": 0.0})
                n["us"] += p.real_time.total_seconds() * 1e6
    macs = _node_macs(cm)
    total_us = sum(n["us"] for n in nodes.values()) or 1.0
    by_type: collections.Counter = collections.Counter()
    by_kernel: collections.Counter = collections.Counter()
    for name, n in nodes.items():
        n["us_per_call"] = n["us"] / iters
        n["share_pct"] = 100 * n["us"] / total_us
        if name in macs and n["us_per_call"] > 0:
            n["macs"] = macs[name]["macs"]
            n["runtime_precision"] = macs[name]["precision"]
            n["gmacs_per_s"] = macs[name]["macs"] / (n["us_per_call"] * 1e-6) / 1e9
        by_type[n["node_type"]] += n["us"]
        by_kernel[f"{n['node_type']} [{n['exec_type']}]"] += n["us"]
    weighted_us = sum(n["us"] for n in nodes.values() if "macs" in n)
    weighted_macs = sum(n["macs"] for n in nodes.values() if "macs" in n)
    top = sorted(nodes.items(), key=lambda kv: -kv[1]["us"])[:25]
    return {"model_source": info.get("model_source"), "execution_precision": info.get("execution_precision"),
            "runtime_precisions": info.get("runtime_precisions"),
            "p50_ms": float(np.median(ts) * 1e3), "min_ms": float(np.min(ts) * 1e3),
            "profiled_ms_per_call": total_us / iters / 1e3,
            "weighted_layers": {"share_pct": round(100 * weighted_us / total_us, 1),
                                "macs_per_call": weighted_macs,
                                "gmacs_per_s_inside_them": (weighted_macs / (weighted_us / iters * 1e-6) / 1e9)
                                if weighted_us else None},
            "share_pct_by_type": {k: round(100 * v / total_us, 1) for k, v in by_type.most_common()},
            "share_pct_by_kernel": {k: round(100 * v / total_us, 1) for k, v in by_kernel.most_common(20)},
            "top_nodes": [{"node": k, **{f: (round(v, 3) if isinstance(v, float) else v) for f, v in n.items() if f != "us"}}
                          for k, n in top]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=None, help="default: 64 for a generator, 1 for an enhancer")
    ap.add_argument("--tile", type=int, default=128, help="enhancer LR tile side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--precisions", default="fp32,bf16,int8")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    load0 = os.getloadavg()
    b = load_bundle(a.bundle)
    batch = a.batch or (64 if b.spec.kind == "generator" else 1)
    feed = _feed(b, batch, a.tile)
    res = {}
    for p in a.precisions.split(","):
        try:
            res[p] = profile(b, p, feed, a.threads, a.iters)
        except Exception as e:  # noqa: BLE001 - e.g. bf16 refused on a CPU without it: say so, go on
            res[p] = {"error": f"{type(e).__name__}: {e}"}
    out = {"bundle": b.name, "kind": b.spec.kind, "batch": batch,
           "input": {k: list(v.shape) for k, v in feed.items()}, "threads": a.threads, "iters": a.iters,
           "openvino": core().get_versions("CPU")["CPU"].build_number, "cpu": machine()["cpu"],
           "load_avg_before_after": [load0, os.getloadavg()], "results": res}
    print(json.dumps(out, indent=1))
    if a.out:
        atomic_write_json(Path(a.out), out)


if __name__ == "__main__":
    main()
