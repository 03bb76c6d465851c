#!/usr/bin/env python3
"""All GPU checks of skugen.kernels in one go: correctness against numpy, then timing.

    python scripts/gpu_kernels.py results.json [--cases 40] [--iters 20] [--choose kernels/kernel_choice.json]

Needs only numpy, pycuda and skugen.kernels (nvcc on PATH for the first compile).
1. Correctness: random cases (odd sizes, pitched crops, batches, every layout and dtype,
   NaN/inf) on the CUDA processor vs the numpy reference; uint8 must be bit-exact, floats
   within 1e-6 scaled (the max error is reported; expected 0); plus bit-exact checks of the
   large timed outputs.
2. Timing: each kernel at a size well past launch overhead, CUDA events around --iters
   back-to-back launches, against the
   DRAM floor = (bytes read + bytes written) / device-to-device copy bandwidth measured here.
3. --choose PATH: per op (preprocess, postprocess), the variant ("strided" or "x4") with the smaller total median
   time over the timed cases becomes the default the launcher reads (skugen.kernels.launcher.KERNEL_CHOICE);
   written only when every correctness check passed (both variants are bit-exact, so only speed decides).
Exit status 0 only if every correctness check passed.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np


def copy_bandwidth(cuda, nbytes: int = 1 << 30, iters: int = 20) -> float:
    """Device-to-device memcpy bandwidth in bytes/s, counting bytes read + written."""
    a, b = cuda.mem_alloc(nbytes), cuda.mem_alloc(nbytes)
    for _ in range(3):
        cuda.memcpy_dtod(b, a, nbytes)
    start, stop = cuda.Event(), cuda.Event()
    start.record()
    for _ in range(iters):
        cuda.memcpy_dtod(b, a, nbytes)
    stop.record()
    stop.synchronize()
    seconds = stop.time_since(start) / 1e3 / iters
    a.free(), b.free()
    return 2 * nbytes / seconds


def bound_launch(proc, method: str, *args, **kwargs):
    """The raw launch a `proc.<method>_device(...)` call makes, pre-validated and pre-packed, so the
    timing loop measures the kernel, not Python argument checking."""
    captured = []
    proc._launch = lambda name, grid, block, packed, stream: captured.append((proc._fns[name], grid, block, packed))
    try:
        getattr(proc, method)(*args, **kwargs)
    finally:
        del proc._launch  # back to the class's method
    fn, grid, block, packed = captured[0]
    return lambda: fn.prepared_async_call(grid, block, None, *packed)


def time_launch(cuda, launch, iters: int, repeats: int = 5) -> dict:
    """Mean time per launch over `iters` back-to-back launches between two events (best and median
    of `repeats` such runs). Sizes are chosen so a launch runs far longer than its enqueue cost."""
    for _ in range(5):
        launch()
    cuda.Context.synchronize()
    start, stop = cuda.Event(), cuda.Event()
    per_launch = []
    for _ in range(repeats):
        start.record()
        for _ in range(iters):
            launch()
        stop.record()
        stop.synchronize()
        per_launch.append(stop.time_since(start) * 1e3 / iters)  # microseconds
    t = np.array(per_launch)
    return {"median_us": float(np.median(t)), "min_us": float(t.min())}


def benchmarks(proc, cuda, bw: float, iters: int) -> tuple[list[dict], list[dict]]:
    """Each kernel at a size that runs well past launch overhead, with data several times the
    60 MB L2. Returns (timings, large-size correctness checks)."""
    from skugen.kernels import bilinear_taps, reference

    rng = np.random.default_rng(0)
    results, checks = [], []

    def record(name, params, launch, bytes_read, bytes_written):
        t = time_launch(cuda, launch, iters)
        floor_us = (bytes_read + bytes_written) / bw * 1e6
        results.append({"kernel": name, **params, **t, "bytes_read": int(bytes_read),
                        "bytes_written": int(bytes_written), "dram_floor_us": floor_us,
                        "floor_over_time": floor_us / t["median_us"],
                        "achieved_GBps": (bytes_read + bytes_written) / t["median_us"] / 1e3})
        print(f"{name:<44} {t['median_us']:9.1f} us  floor {floor_us:8.1f} us  "
              f"({100 * floor_us / t['median_us']:5.1f}% of the DRAM floor)")

    def check(name, got, want):
        ok = got.shape == want.shape and np.array_equal(got.view(np.uint8), want.view(np.uint8))
        checks.append({"case": name, "bit_exact": bool(ok)})
        print(f"large-size check {name}: {'bit-exact' if ok else 'MISMATCH'}")

    # Both variants of preprocess/postprocess (strided: the default; x4: 4 consecutive pixels per thread,
    # vector loads/stores), timed back to back in this run so the ratio is fair.
    for variant in ("strided", "x4"):
        proc.variants = {"preprocess": variant, "postprocess": variant}
        # Preprocess: full-HD camera frames -> 256x256 model input. The read floor counts only the
        # source rows the resize touches (2 per output row), each read once.
        b, h, w, oh, ow = 64, 1080, 1920, 256, 256
        host = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
        frames = cuda.to_device(host)
        y0, y1, _, _ = bilinear_taps(h, oh)
        touched = b * len(np.union1d(y0, y1)) * w * 3
        for dt in (np.float32, np.float16):
            out = cuda.mem_alloc(b * 3 * oh * ow * np.dtype(dt).itemsize)
            launch = bound_launch(proc, "preprocess_device", frames, out, batch=b, in_hw=(h, w), out_hw=(oh, ow), dtype=dt)
            record(f"preprocess_{np.dtype(dt).name} {b}x{h}x{w} RGB -> {oh}x{ow} [{variant}]",
                   {"batch": b, "in_hw": [h, w], "out_hw": [oh, ow], "variant": variant}, launch, touched, b * 3 * oh * ow * np.dtype(dt).itemsize)
            got = np.empty((b, 3, oh, ow), dt)
            cuda.memcpy_dtoh(got, out)
            check(f"preprocess_{np.dtype(dt).name} full-HD x2 [{variant}]", got[:2], reference.preprocess(host[:2], (oh, ow), dtype=dt))
        del frames
        # Upscaling model input (enhancer-like): 540x960 -> 1080x1920, float16.
        b2, h2, w2, oh2, ow2 = 16, 540, 960, 1080, 1920
        small = cuda.to_device(rng.integers(0, 256, (b2, h2, w2, 3), dtype=np.uint8))
        out = cuda.mem_alloc(b2 * 3 * oh2 * ow2 * 2)
        record(f"preprocess_float16 {b2}x{h2}x{w2} RGB -> {oh2}x{ow2} [{variant}]",
               {"batch": b2, "in_hw": [h2, w2], "out_hw": [oh2, ow2], "variant": variant},
               bound_launch(proc, "preprocess_device", small, out, batch=b2, in_hw=(h2, w2), out_hw=(oh2, ow2), dtype=np.float16),
               b2 * h2 * w2 * 3, b2 * 3 * oh2 * ow2 * 2)
        # Postprocess: model output -> uint8 HWC.
        b3, h3, w3 = 16, 1024, 1024
        for dt in (np.float32, np.float16):
            x = rng.uniform(-1.1, 1.1, (b3, 3, h3, w3)).astype(dt)
            src = cuda.to_device(x)
            dst = cuda.mem_alloc(b3 * h3 * w3 * 3)
            record(f"postprocess_{np.dtype(dt).name} {b3}x3x{h3}x{w3} -> RGB [{variant}]", {"batch": b3, "hw": [h3, w3], "variant": variant},
                   bound_launch(proc, "postprocess_device", src, dst, batch=b3, hw=(h3, w3), dtype=dt),
                   b3 * 3 * h3 * w3 * np.dtype(dt).itemsize, b3 * h3 * w3 * 3)
            got = np.empty((b3, h3, w3, 3), np.uint8)
            cuda.memcpy_dtoh(got, dst)
            check(f"postprocess_{np.dtype(dt).name} 1024x1024 x2 [{variant}]", got[:2], reference.postprocess(x[:2]))
    proc.variants = dict(proc.DEFAULT_VARIANTS)
    # Y channel for PSNR-Y.
    b4 = 32
    rgb_host = rng.integers(0, 256, (b4, h3, w3, 3), dtype=np.uint8)
    rgb = cuda.to_device(rgb_host)
    y = cuda.mem_alloc(b4 * h3 * w3 * 4)
    record(f"rgb_to_y {b4}x{h3}x{w3}", {"batch": b4, "hw": [h3, w3]},
           bound_launch(proc, "rgb_to_y_device", rgb, y, batch=b4, hw=(h3, w3)), b4 * h3 * w3 * 3, b4 * h3 * w3 * 4)
    got = np.empty((b4, h3, w3), np.float32)
    cuda.memcpy_dtoh(got, y)
    check("rgb_to_y 1024x1024 x2", got[:2], reference.rgb_to_y(rgb_host[:2]))
    return results, checks


def choose_variants(timings: list[dict]) -> dict:
    """{op: {"default": variant, "total_median_us": {variant: us}}} from benchmarks()' timing rows."""
    totals: dict[str, dict[str, float]] = {}
    for row in timings:
        op, variant = row["kernel"].split("_")[0], row.get("variant")
        if op in ("preprocess", "postprocess") and variant in ("strided", "x4"):
            totals.setdefault(op, {}).setdefault(variant, 0.0)
            totals[op][variant] += float(row["median_us"])
    return {op: {"default": min(t, key=t.get), "total_median_us": t} for op, t in totals.items() if len(t) == 2}


def write_choice(path: str, choice: dict, env: dict) -> None:
    data = {"schema_version": 1, "what": "default CUDA kernel variant per op, the faster one measured by "
            "scripts/gpu_kernels.py --choose (read by skugen.kernels.launcher.default_variants)",
            "measured_on": {k: env.get(k) for k in ("gpu", "arch", "driver")},
            "default_variants": {op: c["default"] for op, c in sorted(choice.items())},
            "total_median_us": {op: c["total_median_us"] for op, c in sorted(choice.items())}}
    from skugen.io import atomic_write_json

    atomic_write_json(path, data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="where to write the JSON results")
    ap.add_argument("--choose", metavar="PATH", help="write the faster variant per op to PATH (kernel_choice.json)")
    ap.add_argument("--cases", type=int, default=40, help="random correctness cases per kernel")
    ap.add_argument("--iters", type=int, default=20, help="back-to-back launches per timed run")
    args = ap.parse_args(argv)

    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        print(f"pycuda is needed for the GPU checks: {exc}", file=sys.stderr)
        return 2

    from skugen.kernels import CudaProcessor
    from skugen.kernels.selftest import Case, max_error, random_cases
    from skugen.kernels import reference

    t0 = time.perf_counter()
    proc = CudaProcessor(sync_after_launch=True)  # faults reported at the launch that caused them
    compile_s = time.perf_counter() - t0
    gpu = proc.gpu
    env = {"gpu": gpu.name(), "arch": proc.arch, "driver": cuda.get_driver_version(),
           "cuda_runtime_of_pycuda": ".".join(map(str, cuda.get_version())),
           "memory_GiB": gpu.total_memory() / 2**30, "python": platform.python_version(),
           "numpy": np.__version__, "module_load_s": compile_s}
    print(f"{env['gpu']} ({proc.arch}), module ready in {compile_s:.1f} s")

    # 1. correctness
    cases: list[Case] = random_cases(np.random.default_rng(12345), args.cases)
    ref_proc = reference.NumpyProcessor()
    checks, failures = [], 0
    for variant, case in [(v, c) for v in ("strided", "x4") for c in cases]:
        proc.variants = {"preprocess": variant, "postprocess": variant}
        ref, got = case.run(ref_proc), case.run(proc)
        pairs = list(zip(got, ref)) if isinstance(ref, list) else [(got, ref)]
        exact = all(g.shape == r.shape and g.dtype == r.dtype and np.array_equal(g.view(np.uint8), r.view(np.uint8))
                    for g, r in pairs)
        err = max(max_error(g, r) if g.shape == r.shape else float("inf") for g, r in pairs)
        is_u8 = pairs[0][1].dtype == np.uint8
        tol = 0.0 if is_u8 else (2.0 ** -10 if pairs[0][1].dtype == np.float16 else 1e-6)
        ok = exact or err <= tol
        failures += not ok
        checks.append({"case": f"{case.desc} [{variant}]", "bit_exact": exact, "max_scaled_error": err, "ok": ok})
        if not ok:
            print(f"MISMATCH {case.desc}: max scaled error {err:.3g}")
    n_exact = sum(c["bit_exact"] for c in checks)
    print(f"correctness: {len(checks) - failures}/{len(checks)} ok, {n_exact} bit-exact")
    proc.variants = dict(proc.DEFAULT_VARIANTS)
    proc.sync_after_launch = False  # timing: launches are stream-ordered, no sync between them

    # 2. timing
    bw = copy_bandwidth(cuda)
    print(f"device-to-device copy: {bw / 1e9:.0f} GB/s (read + write)")
    timings, large_checks = benchmarks(proc, cuda, bw, args.iters)
    failures += sum(not c["bit_exact"] for c in large_checks)

    result = {"schema_version": 1, "what": "skugen.kernels GPU check: correctness vs numpy and time vs DRAM floor",
              "environment": env, "copy_bandwidth_GBps": bw / 1e9,
              "correctness": {"cases": len(checks), "failures": failures, "bit_exact": n_exact, "checks": checks, "large_size_checks": large_checks},
              "timing": timings}
    choice = choose_variants(timings)
    result["choice"] = choice
    from skugen.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    if args.choose:
        if failures:
            print(f"not writing {args.choose}: {failures} correctness failure(s)", file=sys.stderr)
        elif choice:
            write_choice(args.choose, choice, env)
            print(f"default variants {dict((k, v['default']) for k, v in choice.items())} -> {args.choose}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
