#!/usr/bin/env python3
"""Eager PyTorch latency of the zoo's teachers and students on a CUDA GPU, FP32 and FP16: the baseline a user
compares skugen's engines against.

    python scripts/gpu_eager.py benchmarks/gpu/eager_torch.json [--iters 50] [--device cuda]
    python scripts/gpu_eager.py out.json --device cpu --iters 2 --batches 1   # the CPU test runs it like this

Generators: a batch of (z, one-hot); enhancers: a batch of 64x64 LR tiles (the bundle's deployment tile is
what skugen bench uses; 64 keeps this step short). FP16 is `model.half()` with half inputs (what a user would
try first, no autocast). Timing: CUDA-synchronised wall time per forward, median over --iters after warm-up,
under torch.inference_mode(). Writes one JSON; prints one line per measurement.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

GENERATORS_BATCH = (1, 64)
ENHANCER_BATCH = (1, 16)
TILE = 64


def _inputs(torch, model, kind: str, batch: int, device, dtype):
    if kind == "generator":
        z = torch.randn(batch, model.cfg.z_dim, device=device, dtype=dtype)
        oh = torch.nn.functional.one_hot(torch.arange(batch, device=device) % model.cfg.n_classes,
                                         model.cfg.n_classes).to(dtype)
        return (z, oh)
    return (torch.rand(batch, 3, TILE, TILE, device=device, dtype=dtype),)


def measure(torch, model, kind: str, batch: int, device, dtype, iters: int) -> dict:
    args = _inputs(torch, model, kind, batch, device, dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(max(2, iters // 10)):
            model(*args)
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            out = model(*args)
            sync()
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    finite = bool(torch.isfinite(out.float()).all())
    return {"batch": batch, "median_ms": med * 1e3, "min_ms": times[0] * 1e3, "items_per_s": batch / med,
            "output_shape": list(out.shape), "output_finite": finite}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", type=int, nargs="*", default=None, help="override the batch sizes")
    ap.add_argument("--models", nargs="*", default=None, help="zoo names (default: generators and enhancers)")
    args = ap.parse_args(argv)
    import torch

    from skugen.export import zoo

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch has no CUDA device here", file=sys.stderr)
        return 2
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"}
    rows, failures = [], 0
    for name in args.models or zoo.names():
        model, card = zoo.load(name)
        kind = card.get("kind")
        if kind not in ("generator", "enhancer"):
            continue
        role = "student" if card.get("teacher") else "teacher"
        batches = args.batches or (GENERATORS_BATCH if kind == "generator" else ENHANCER_BATCH)
        for prec, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            if prec == "fp16" and device.type == "cpu":
                continue  # half convolutions on the CPU are not the baseline anyone deploys
            m = model.to(device=device, dtype=dtype).eval()
            for b in batches:
                try:
                    r = measure(torch, m, kind, b, device, dtype, args.iters)
                except Exception as e:  # noqa: BLE001 - record and go on: one model must not hide the others
                    failures += 1
                    r = {"batch": b, "error": f"{type(e).__name__}: {e}"}
                rows.append({"model": name, "kind": kind, "role": role, "precision": prec, **r})
                print(f"{name:<24} {role:<8} {prec} batch {b:>3}: "
                      + (f"{r['median_ms']:8.3f} ms  {r['items_per_s']:9.1f}/s" if "median_ms" in r else r["error"]))
        model.to("cpu", torch.float32)
    out = {"schema_version": 1, "what": "eager PyTorch latency of the zoo models (scripts/gpu_eager.py)",
           "environment": env, "iters": args.iters, "tile": TILE, "results": rows}
    from skugen.io import atomic_write_text

    atomic_write_text(args.out, json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
