"""The gates' data: calibration feeds, held-out eval sets and their second independent draw (real inputs).

    calib, gate, confirm = gate_sets("enhancer", scale=2)[:3]   # any gate: INT8 (ORT, OpenVINO), FP16

skugen's own data (seeded latents; GroceryStore crops) unless `data` names the user's (skugen.export.userdata).
Moved out of quantize.py: the sets serve every gate, not only the ONNX Runtime one.
"""
from __future__ import annotations

import numpy as np

from .data import EvalSet
from .onnx_export import lr_to_feed


def generator_feeds(z_dim: int, n_classes: int, n: int, seed: int) -> tuple[dict, np.ndarray]:
    """Seeded N(0,1) latents + balanced one-hot labels (every class equally often, shuffled)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)                       # (N,)
    z = rng.standard_normal((n, z_dim)).astype(np.float32)                   # (N, z_dim)
    onehot = np.eye(n_classes, dtype=np.float32)[labels]                     # (N, n_classes)
    return {"z": z, "onehot": onehot}, labels


def generator_calibration(z_dim: int, n_classes: int, n: int = 128, seed: int = 0) -> dict:
    return generator_feeds(z_dim, n_classes, n, seed)[0]


def generator_eval_set(z_dim: int, n_classes: int, n: int = 500, seed: int = 10_000) -> EvalSet:
    feeds, labels = generator_feeds(z_dim, n_classes, n, seed)
    return EvalSet(feeds, labels=labels, source=f"N(0,1) latents seed {seed}, balanced classes, n={n}")


def enhancer_calibration(n: int = 128, hr_size: int = 96, seed: int = 0, split: str = "train", scale: int = 2) -> dict:
    """Degraded GroceryStore crops (the enhancer's real input distribution) as {"lr": (N, 3, h, w) [0,1]}."""
    from . import data

    paths = [p for p, _, _ in data.grocery_split(split)]
    lr, _ = data.sr_pairs(paths, n, hr_size, seed, cfg=data.DegradeConfig(scale=scale))
    return {"lr": lr_to_feed(lr)}


# 256 crops: with 24 (until session 3) the paired INT8 drop had a standard error of ~0.017 dB, and the chosen
# calibrator's 0.097 dB read 0.118 dB on 300 other val crops. The gate also reports a second, independent draw.
ENHANCER_EVAL_N = 256


def enhancer_eval_set(n: int = ENHANCER_EVAL_N, hr_size: int = 96, seed: int = 4321, split: str = "val",
                      scale: int = 2) -> EvalSet:
    """Held-out degraded crops from another split, with their clean HR for PSNR-Y."""
    from . import data

    paths = [p for p, _, _ in data.grocery_split(split)]
    lr, hr = data.sr_pairs(paths, n, hr_size, seed, cfg=data.DegradeConfig(scale=scale), aug=False)
    return EvalSet({"lr": lr_to_feed(lr)}, hr=hr, source=f"GroceryStore {split}, {n} crops {hr_size}px, seed {seed}")


def gate_sets(kind: str, *, scale: int = 2, z_dim: int | None = None, n_classes: int | None = None,
              calib_n: int = 128, eval_n: int | None = None, data=None, tile: int = 128):
    """Calibration feeds + the gate's EvalSet + a confirm EvalSet (userdata.GateSets), for any gate (INT8, FP16).

    `data` (a userdata.DataSpec, or what --data takes): the user's data, split into disjoint calib/gate/confirm
    parts, enhancers measured at LR crops of the deployment `tile`. None: skugen's own data, as the zoo models
    always had (seeded latents; GroceryStore train crops to calibrate, val crops of 96 px HR to judge)."""
    from . import userdata

    if data is not None:
        return userdata.gate_sets(userdata.parse_data(data), kind, scale=scale, tile=tile, n_classes=n_classes,
                                  calib_n=calib_n, eval_n=eval_n)
    if kind == "generator":
        ev = generator_eval_set(z_dim, n_classes, eval_n or 500)
        return userdata.GateSets(generator_calibration(z_dim, n_classes, calib_n, seed=0), ev,
                                 generator_eval_set(z_dim, n_classes, eval_n or 500, seed=20_000),
                                 "skugen default: N(0,1) latents, balanced classes", {})
    ev = enhancer_eval_set(eval_n or ENHANCER_EVAL_N, scale=scale)
    return userdata.GateSets(enhancer_calibration(calib_n, scale=scale), ev,
                             enhancer_eval_set(eval_n or ENHANCER_EVAL_N, seed=8642, scale=scale),
                             "skugen default: GroceryStore photos, blur+noise+JPEG degradation (skugen-realistic)", {})

