"""Per-unit pruning sensitivity and the MACs allocation it drives (the units and the pruner are skugen.export.prune).

`sensitivity()` prunes each unit alone at several ratios and measures the output change against the unpruned
model, without fine-tuning (`default_quality_fn`: PSNR, plus class fidelity for the cGAN); `write_sensitivity()`
saves the table and its plot; `ratios_for_macs()` turns the table into per-unit ratios that reach a MACs budget
while removing channels where the output cares least.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from skugen.errors import BudgetError, InputError, ModelError

from . import models
from .prune import (PruneConfig, _family, keep_width, macs_of, prune_channels, unit_names, unit_width,
                    with_unit_width)

def default_quality_fn(model: nn.Module, n: int = 64, seed: int = 0, classifier: nn.Module | None = None,
                       crops: tuple[np.ndarray, np.ndarray] | None = None,
                       bn_recal_batches: int = 4) -> Callable[[nn.Module], dict]:
    """A function pruned_model -> {"psnr": dB vs `model`'s output, ...} on fixed inputs.

    cgan: n fixed latents with balanced labels; PSNR on images mapped to [0, 255];
          plus class fidelity when a classifier is given (or zoo's fmnist-classifier exists).
          The pruned model's BatchNorm statistics are re-estimated first (on a copy, from
          bn_recal_batches x 64 random latents; no weight changes): with stale statistics the
          score would measure the mismatch that any fine-tuning removes, not the lost capacity.
    sr:   n real degraded GroceryStore val crops (96 px HR, 48 px LR); PSNR-Y, crop 2 (BasicSR),
          of the pruned output against the unpruned output.
    """
    from skugen.evaluate import class_fidelity, pair_convention, psnr_result, to_255

    from .judge import TorchJudge

    fam = _family(model)
    model = model.eval()
    if fam == "cgan":
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, model.cfg.z_dim, generator=g)
        y = torch.arange(n) % model.cfg.n_classes
        oh = F.one_hot(y, model.cfg.n_classes).float()
        clf = classifier if classifier is not None else _zoo_classifier()
        judge = None if clf is None else clf if isinstance(clf, TorchJudge) else TorchJudge(clf, batch=max(n, 1))
        labels = y.numpy()

        def to255(t: torch.Tensor) -> np.ndarray:  # (n, 1, 32, 32) in [-1, 1] -> (n, 32, 32, 1) in [0, 255]
            return to_255(t.numpy(), (-1.0, 1.0))

        with torch.no_grad():
            ref_img = model(z, oh)
        ref = to255(ref_img)

        def fidelity(img: torch.Tensor) -> float:
            return class_fidelity(judge.outputs(img)[1], labels)["value"]

        base = {"class_fidelity": fidelity(ref_img)} if judge is not None else {}

        def q(m: nn.Module) -> dict:
            if bn_recal_batches > 0:
                from .train import recalibrate_bn

                m = copy.deepcopy(m)
                recalibrate_bn(m, n_batches=bn_recal_batches, batch=64, seed=seed + 1)
            with torch.no_grad():
                img = m.eval()(z, oh)
            res = {"psnr": psnr_result(to255(img), ref).value}
            if judge is not None:
                res["class_fidelity"] = fidelity(img)
            return res

        q.baseline = base  # type: ignore[attr-defined]
        q.description = (f"{n} fixed latents; PSNR of pruned (BN re-estimated) vs unpruned images in [0,255]"  # type: ignore[attr-defined]
                         + ("; class fidelity by the fmnist-classifier" if judge is not None else ""))
        return q
    if fam == "sr":
        from . import data

        if crops is None:
            paths = [p for p, _, _ in data.grocery_split("val")]
            lr, _ = data.sr_pairs(paths, n, 96, seed=seed + 1234, aug=False)
        else:
            lr = crops[0][:n]
        x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255.0   # (n, 3, 48, 48)

        def to255(t: torch.Tensor) -> np.ndarray:  # (n, 3, 96, 96) -> (n, 96, 96, 3) float in [0, 255]
            return to_255(t.numpy(), (0.0, 1.0))

        with torch.no_grad():
            ref = to255(model(x))

        def q(m: nn.Module) -> dict:
            with torch.no_grad():
                out = to255(m.eval()(x))
                y_chan, crop = pair_convention("enhancer", m.cfg.scale, out.shape[-1])  # PSNR-Y, crop = scale
                return {"psnr": psnr_result(out, ref, y_channel=y_chan, crop_border=crop).value}

        q.baseline = {}  # type: ignore[attr-defined]
        q.description = (f"{len(x)} degraded GroceryStore val crops (LR 48px); PSNR-Y (crop 2) "  # type: ignore[attr-defined]
                         "of pruned vs unpruned output")
        return q
    raise ModelError(f"no default sensitivity quality for family {fam!r}; pass quality_fn")


def _zoo_classifier() -> nn.Module | None:
    from . import zoo

    try:
        return zoo.load(zoo.classifier_dir())[0]
    except ModelError:
        return None


def sensitivity(model: nn.Module, ratios: Sequence[float] = (0.25, 0.5, 0.75),
                quality_fn: Callable[[nn.Module], dict] | None = None, *, importance: str = "l1",
                round_to: int = 8, units: Sequence[str] | None = None, out_dir: str | os.PathLike | None = None,
                n: int = 64, seed: int = 0, progress: bool = True) -> dict:
    """Prune each unit ALONE at each ratio (no fine-tuning) and measure quality vs the unpruned model.

    Returns a JSON-ready table; with out_dir, also writes sensitivity.json and sensitivity.png.
    Points whose ratio would leave < round_to channels (or remove none) are recorded as skipped.
    """
    for r in ratios:
        if not (0.0 < r < 1.0):
            raise InputError(f"sensitivity ratios must be in (0, 1), got {r}.")
    q = quality_fn or default_quality_fn(model, n=n, seed=seed)
    tcfg = models.config_from_model(model)
    macs0 = macs_of(tcfg)
    names = list(units or unit_names(model))
    todo = [(u, r) for u in names for r in ratios]
    bar = None
    if progress:
        from skugen.progress import progress as _progress
        bar = _progress(len(todo), 0, "sensitivity", mininterval=2.0)
    table: dict[str, Any] = {}
    for u in names:
        nch = unit_width(tcfg, u)
        rows = []
        for r in ratios:
            k = keep_width(nch, r, round_to)
            row: dict[str, Any] = {"ratio": r, "keep": k}
            if k < round_to or k >= nch:
                row["skipped"] = f"keeps {k} of {nch} channels"
            else:
                res = prune_channels(model, PruneConfig(ratio=None, per_layer={u: r}, importance=importance,
                                                        round_to=round_to, seed=seed))
                row.update(q(res.model))
                row["macs_frac"] = round(res.macs_after / macs0, 4)
            rows.append(row)
            if bar is not None:
                bar.update(1)
        table[u] = {"channels": nch, "results": rows}
    if bar is not None:
        bar.close()
    report = {"schema_version": 1, "family": tcfg.family, "teacher_config": models.config_to_dict(tcfg),
              "teacher_macs": macs0, "ratios": list(ratios), "importance": importance, "round_to": round_to,
              "quality": getattr(q, "description", "quality_fn"), "baseline": getattr(q, "baseline", {}),
              "units": table}
    if out_dir is not None:
        write_sensitivity(report, out_dir)
    return report


def write_sensitivity(report: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """sensitivity.json + sensitivity.png (PSNR vs ratio per unit) into out_dir."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI / servers
    import matplotlib.pyplot as plt

    from skugen.io import atomic_file, atomic_write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sensitivity.json", report)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for u, t in report["units"].items():
        pts = [(r["ratio"], r["psnr"]) for r in t["results"] if "psnr" in r and math.isfinite(r["psnr"])]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=f"{u} ({t['channels']})")
    ax.set_xlabel("fraction of the unit's channels removed (no fine-tuning)")
    ax.set_ylabel("PSNR vs unpruned output (dB)")
    ax.set_title(f"pruning sensitivity: {report['family']} ({report['importance']} importance)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    png = out / "sensitivity.png"
    with atomic_file(png) as af:
        fig.savefig(af.tmp, format="png")
    plt.close(fig)
    return out / "sensitivity.json", png

# ----------------------------------------------------------------------------- allocation


def _distortion_curve(t: dict, round_to: int) -> tuple[list[int], list[float]]:
    """Keep widths and the measured output distortion (normalised MSE = 10^(-PSNR/10)), widest first."""
    n = t["channels"]
    pts = {n: 0.0}
    for r in t["results"]:
        if "psnr" in r:
            pts[r["keep"]] = 0.0 if math.isinf(r["psnr"]) else 10.0 ** (-r["psnr"] / 10.0)
    keeps = sorted(pts, reverse=True)
    d, worst = [], 0.0
    for k in keeps:  # more pruning can't help: make the noisy measurements monotone
        worst = max(worst, pts[k])
        d.append(worst)
    return keeps, d


def _interp(keeps: list[int], d: list[float], k: int) -> float:
    return float(np.interp(k, keeps[::-1], d[::-1]))


def ratios_for_macs(model_or_cfg, report: dict, target_macs_frac: float, round_to: int = 8) -> dict[str, float]:
    """Per-unit ratios reaching `target_macs_frac` of the teacher's MACs, pruning insensitive units most.

    Greedy rate-distortion allocation: repeatedly take 8 channels from the unit
    whose measured distortion grows least per MAC saved (distortions of different
    units are treated as additive, a first-order approximation), until the MACs
    budget is met. A unit is never pruned beyond the largest ratio measured in
    the sensitivity table (we don't extrapolate).
    """
    if not (0.0 < target_macs_frac < 1.0):
        raise InputError(f"target MACs fraction must be in (0, 1), got {target_macs_frac}. "
                         "Example: 0.25 keeps a quarter of the teacher's MACs.")
    tcfg = models.config_from_model(model_or_cfg) if isinstance(model_or_cfg, nn.Module) else model_or_cfg
    macs0 = macs_of(tcfg)
    curves = {u: _distortion_curve(t, round_to) for u, t in report["units"].items()}
    cur = {u: unit_width(tcfg, u) for u in curves}
    floor = {u: max(round_to, min(k)) for u, (k, _) in curves.items()}
    cfg, macs = tcfg, macs0
    while macs > target_macs_frac * macs0:
        best = None
        for u, (keeps, d) in curves.items():
            k2 = (cur[u] - 1) // round_to * round_to  # next multiple of round_to below
            if k2 < floor[u]:
                continue
            c2 = with_unit_width(cfg, u, k2)
            saved = macs - macs_of(c2)
            if saved <= 0:
                continue
            cost = (_interp(keeps, d, k2) - _interp(keeps, d, cur[u])) / saved
            if best is None or cost < best[0] or (cost == best[0] and saved > best[3]):
                best = (cost, u, k2, saved, c2)
        if best is None:
            raise BudgetError(f"a MACs target of {target_macs_frac:.0%} is out of reach: pruning every layer to the "
                              f"largest measured ratio ({max(report['ratios']):.2f}) leaves {macs / macs0:.1%} of the "
                              f"teacher's MACs. Use --target-macs >= {math.ceil(macs / macs0 * 100) / 100:.2f}.")
        _, u, k2, saved, cfg = best
        cur[u] = k2
        macs -= saved
    return {u: round(1.0 - cur[u] / unit_width(tcfg, u), 6) for u in curves}
