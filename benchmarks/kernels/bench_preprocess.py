#!/usr/bin/env python3
"""CPU-path benchmark: skugen.kernels.preprocess vs the obvious PIL-resize + numpy-normalise chain.

    python benchmarks/kernels/bench_preprocess.py [--out benchmarks/kernels/preprocess_cpu.json] [--repeats 15]

Task: 8 RGB photos at 1920x1080 -> (8, 3, 256, 256) float32 in [-1, 1].
Inputs are real GroceryStoreDataset photos upscaled to 1920x1080 (random noise if the
dataset is missing). Both sides run single-threaded; the median of --repeats runs counts.
Correctness is checked against torch.nn.functional.interpolate(antialias=False) when torch is
installed; PIL's BILINEAR antialiases on downscale (a wider filter), so its difference from
that convention is reported, not asserted.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skugen.io import atomic_write_json
from skugen.report import environment, machine
from skugen.kernels import preprocess

HERE = Path(__file__).resolve().parent
GROCERY = Path(os.environ.get("SKUGEN_GROCERY_DIR") or HERE.parents[2] / "shared/data/grocery-store")
B, H, W, OUT = 8, 1080, 1920, (256, 256)


def load_photos() -> tuple[np.ndarray, str]:
    files = sorted((GROCERY / "dataset" / "test").rglob("*.jpg"))[:: 97][:B]
    if len(files) < B:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (B, H, W, 3), dtype=np.uint8), "random uint8 noise (dataset not found)"
    imgs = [np.asarray(Image.open(f).convert("RGB").resize((W, H), Image.BICUBIC)) for f in files]
    return np.stack(imgs), f"{B} GroceryStoreDataset test photos upscaled to {W}x{H}"


def pil_chain(batch: np.ndarray) -> np.ndarray:
    """What people write first: PIL resize per image, then numpy normalise and transpose."""
    out = []
    for img in batch:
        small = np.asarray(Image.fromarray(img).resize((OUT[1], OUT[0]), Image.BILINEAR), dtype=np.float32)
        out.append(((small / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
    return np.stack(out)


def skugen_chain(batch: np.ndarray) -> np.ndarray:
    return preprocess(batch, OUT)


def bench(fn, batch, repeats: int) -> list[float]:
    fn(batch)  # warm caches (index plans, PIL's coefficient tables)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "preprocess_cpu.json")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)

    batch, source = load_photos()
    ours = skugen_chain(batch)
    pil = pil_chain(batch)
    t_ours, t_pil = bench(skugen_chain, batch, args.repeats), bench(pil_chain, batch, args.repeats)
    med_ours, med_pil = statistics.median(t_ours), statistics.median(t_pil)

    accuracy = {"pil_vs_skugen_max_abs": float(np.abs(pil - ours).max()),
                "pil_vs_skugen_mean_abs": float(np.abs(pil - ours).mean())}
    try:
        import torch

        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        ref = torch.nn.functional.interpolate(x, size=OUT, mode="bilinear", align_corners=False, antialias=False)
        ref = (ref / 255.0 - 0.5) / 0.5
        accuracy["skugen_vs_torch_max_abs"] = float(np.abs(ours - ref.numpy()).max())
        refaa = torch.nn.functional.interpolate(x, size=OUT, mode="bilinear", align_corners=False, antialias=True)
        refaa = (refaa / 255.0 - 0.5) / 0.5
        accuracy["pil_vs_torch_antialias_max_abs"] = float(np.abs(pil - refaa.numpy()).max())
        accuracy["note"] = ("skugen follows torch interpolate(bilinear, align_corners=False, antialias=False); "
                            "PIL BILINEAR antialiases on downscale, so it matches torch antialias=True instead "
                            "(differences in [-1, 1] units)")
    except ImportError:
        accuracy["note"] = "torch not installed: convention check skipped"

    result = {
        "schema_version": 1,
        "what": f"CPU preprocess of {B}x{H}x{W} RGB uint8 -> ({B}, 3, {OUT[0]}, {OUT[1]}) float32 in [-1, 1]",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": source,
        "machine": machine(cpu=environment()["cpu"]["model"], logical_cores=os.cpu_count(), numpy=np.__version__,
                           pillow=Image.__version__, platform=platform.platform(), load_average_1m=os.getloadavg()[0]),
        "repeats": args.repeats,
        "skugen_ms": {"median": med_ours * 1e3, "min": min(t_ours) * 1e3},
        "pil_chain_ms": {"median": med_pil * 1e3, "min": min(t_pil) * 1e3},
        "speedup_median": med_pil / med_ours,
        "speedup_min": min(t_pil) / min(t_ours),
        "accuracy": accuracy,
    }
    atomic_write_json(args.out, result)
    print(f"skugen {med_ours * 1e3:.1f} ms, PIL chain {med_pil * 1e3:.1f} ms: {med_pil / med_ours:.2f}x faster "
          f"(min/min {min(t_pil) / min(t_ours):.2f}x); wrote {args.out}")
    for k, v in accuracy.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
