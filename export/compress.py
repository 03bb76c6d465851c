"""Teacher -> student: sensitivity-guided structured pruning, then distillation.

    compress(model, CompressConfig(target_macs_frac=0.25, preset="fast", out="runs/st"))

1. sensitivity: prune each unit alone at a few ratios, measure the output change
   (sensitivity.sensitivity) -> OUT/sensitivity.json + OUT/sensitivity.png;
2. allocation: per-unit ratios that reach the MACs target, pruning insensitive units
   most (sensitivity.ratios_for_macs); or one uniform --prune-ratio;
3. prune (torch-pruning DependencyGraph, widths rounded to 8) -> OUT/pruned/ (a model
   directory, so `skugen distill` / torchrun can take over from here);
4. distill from the teacher (distill.distill; resumable from OUT/distill/ckpt.*);
5. evaluate teacher and student with the same evaluation (zoo.evaluate_model) and write
   the student model directory OUT/ (model.safetensors + card.json), with MACs, params,
   metrics side by side, the configs, the command, the seed and the wall time.

Re-running the same command resumes: the sensitivity table is reused when its
inputs match, and distillation continues from its last checkpoint.

Presets: `fast` is a demo (about 5 minutes for the cGAN on 2 CPU cores); `full` is
the recipe for shipped students (about 35 minutes per model on 2 cores).
Under torchrun, rank 0 runs the sensitivity analysis and writes everything, and all
ranks share the distillation (DDP).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from skugen.errors import InputError, ModelError, SkugenError
from skugen.report import invocation, machine

from . import ckpt, custom, models, prune, sensitivity, zoo
from .adapter import TARGETS, adapter_for
from .distill import (DistillConfig, DistillResult, default_feature_layers, distill, distill_outputs, feature_units,
                      setup_distributed)

PRESET_NAMES = ("fast", "full")


@dataclass(frozen=True)
class Preset:
    sens_n: int                       # sensitivity inputs: latents (cgan) / GroceryStore val crops (sr)
    sens_ratios: tuple[float, ...]    # ratios each unit is probed at (also the most any unit is pruned)
    distill: DistillConfig
    quick_eval: bool                  # zoo.evaluate_model(quick=...) for teacher and student


PRESETS: dict[str, dict[str, Preset]] = {
    # fast: a demo that finishes in ~5 min on 2 cores; the student is usable, not shippable.
    "fast": {
        "cgan": Preset(32, (0.25, 0.5, 0.75),
                       DistillConfig(steps=150, batch=32, bn_recal_batches=10, ckpt_every=50), True),
        "sr": Preset(8, (0.25, 0.5, 0.75),
                     DistillConfig(steps=300, batch=8, hr_size=64, ckpt_every=100), True),
    },
    # full: the recipe for shipped students, <= ~35 min per model on 2 cores. Measured on one busy
    # core: cGAN ~0.5 s/step (3000 x 64 latents ~25 min; an adversarial term, --w-adv 0.05, adds
    # ~0.4 s/step), SR ~0.32 s/step (4000 x 16 crops of 96 px ~21 min).
    "full": {
        "cgan": Preset(256, (0.25, 0.5, 0.75),
                       DistillConfig(steps=3000, batch=64, bn_recal_batches=40), False),
        "sr": Preset(16, (0.25, 0.5, 0.75),
                     DistillConfig(steps=4000, batch=16, hr_size=96), False),
    },
}

@dataclass(frozen=True)
class CompressConfig:
    out: str | None = None                 # output model directory (None: runs/compress-<teacher name>)
    preset: str = "fast"
    target_macs_frac: float | None = 0.25  # student MACs / teacher MACs (per-layer ratios from sensitivity)
    prune_ratio: float | None = None       # OR one uniform ratio for every unit (wins; skips sensitivity)
    distill_steps: int | None = None       # None: the preset's; 0 = prune only
    w_adv: float | None = None             # cGAN adversarial weight (None: the preset's, 0 = off)
    importance: str = "l1"
    seed: int = 0
    quick_eval: bool | None = None         # None: the preset's
    threads: int | None = None             # torch threads (on a busy machine 1 can be faster than 2)
    command: str | None = None             # recorded in the card (the CLI fills it in)
    distill_batch: int | None = None       # None: the preset's (a user's model: 16)


@dataclass
class CompressResult:
    out: Path
    student: nn.Module
    card: dict
    prune: prune.PruneResult | dict        # a dict for the uniform (user model) strategy
    distill: DistillResult | dict | None
    sensitivity: dict | None = None


def check_config(cfg: CompressConfig) -> None:
    """Everything that can be checked before a model is loaded (fast failure)."""
    if cfg.preset not in PRESET_NAMES:
        raise InputError(f"preset must be one of {PRESET_NAMES}, got {cfg.preset!r}.")
    if cfg.prune_ratio is not None and not (0.0 < cfg.prune_ratio < 1.0):
        raise InputError(f"--prune-ratio must be in (0, 1) (the fraction of channels removed), got {cfg.prune_ratio}. "
                         "Example: --prune-ratio 0.5 removes half the channels (about 1/4 of the MACs).")
    if cfg.prune_ratio is None and cfg.target_macs_frac is None:
        raise InputError("give a MACs target (--target-macs 0.25) or a uniform --prune-ratio.")
    if cfg.prune_ratio is None and not (0.0 < cfg.target_macs_frac < 1.0):
        raise InputError(f"--target-macs must be in (0, 1) (student MACs / teacher MACs), got {cfg.target_macs_frac}. "
                         "Example: --target-macs 0.25.")
    if cfg.distill_steps is not None and cfg.distill_steps < 0:
        raise InputError(f"--distill-steps must be >= 0 (0 = prune only), got {cfg.distill_steps}.")
    if cfg.w_adv is not None and cfg.w_adv < 0:
        raise InputError(f"--w-adv must be >= 0, got {cfg.w_adv}.")
    if cfg.importance not in prune.IMPORTANCES:
        raise InputError(f"--importance must be one of {prune.IMPORTANCES}, got {cfg.importance!r}.")


def _sensitivity_cached(teacher, card, preset: Preset, cfg: CompressConfig, out: Path) -> dict:
    """Reuse OUT/sensitivity.json when it was computed for the same teacher and settings."""
    key = {"teacher_sha256": card.get("weights", {}).get("sha256"), "n": preset.sens_n,
           "ratios": list(preset.sens_ratios), "importance": cfg.importance, "seed": cfg.seed,
           "teacher_config": models.config_to_dict(models.config_from_model(teacher))}
    key = json.loads(json.dumps(key))  # tuples -> lists, as it reads back from the file
    f = out / "sensitivity.json"
    if f.is_file() and key["teacher_sha256"] is not None:
        try:
            old = json.loads(f.read_text())
            if old.get("key") == key:
                return old
        except json.JSONDecodeError:
            pass
    rep = sensitivity.sensitivity(teacher, preset.sens_ratios, importance=cfg.importance, n=preset.sens_n,
                                  seed=cfg.seed)
    rep["key"] = key
    sensitivity.write_sensitivity(rep, out)
    return rep


def _evaluate(model: nn.Module, quick: bool) -> dict:
    from . import zoo

    cfg = models.config_from_model(model)
    try:
        return zoo.evaluate_model(model.eval(), {"config": models.config_to_dict(cfg)}, quick)
    except SkugenError as e:  # e.g. no fmnist-classifier installed: say so in the card, keep the student
        return {"skipped": str(e)}


def _targets(family: str, macs_ratio: float, mt: dict, ms: dict) -> dict:
    res: dict[str, Any] = {"macs_ratio": round(macs_ratio, 4), "macs_ok": macs_ratio <= TARGETS["macs_ratio_max"]}
    if family == "cgan" and "fid_proxy" in mt and "fid_proxy" in ms:
        res["fid_proxy_ratio"] = round(ms["fid_proxy"] / max(mt["fid_proxy"], 1e-9), 4)
        res["fid_proxy_ok"] = res["fid_proxy_ratio"] <= TARGETS["cgan_fid_proxy_ratio_max"]
        res["class_fidelity_drop"] = round(mt["class_fidelity"] - ms["class_fidelity"], 4)
        res["class_fidelity_ok"] = res["class_fidelity_drop"] <= TARGETS["cgan_class_fidelity_drop_max"]
    if family == "sr" and "psnr_y" in mt and "psnr_y" in ms:
        res["psnr_y_drop_db"] = round(mt["psnr_y"] - ms["psnr_y"], 4)
        res["psnr_y_ok"] = res["psnr_y_drop_db"] <= TARGETS["sr_psnr_y_drop_max_db"]
    res["targets"] = TARGETS
    return res


def compress(model: str | os.PathLike | nn.Module, cfg: CompressConfig | None = None) -> CompressResult:
    """Prune + distill a teacher (zoo name, model directory or module) into a student model directory.

    The strategy is the adapter's answer: families get sensitivity-guided per-unit pruning and
    feature distillation; a user's model gets one MetaPruner ratio bisected to the MACs target and
    output distillation (adapter.UserModelAdapter).
    """
    cfg = cfg or CompressConfig()
    check_config(cfg)
    t0 = time.time()
    if not isinstance(model, nn.Module) and zoo.family_of(model) == "diffusion":
        # its own recipe: denoiser pruning + guided step distillation (skugen.export.diffusion_distill)
        from .diffusion_distill import FAST_STEP_DISTILL, StepDistillConfig, compress_diffusion

        over = {**({} if cfg.preset == "full" else FAST_STEP_DISTILL),
                **({"train_steps": cfg.distill_steps} if cfg.distill_steps is not None else {})}
        dcfg = StepDistillConfig(seed=cfg.seed, **over)
        out, student, card, pr = compress_diffusion(model, cfg.out, dcfg, quick_eval=bool(cfg.quick_eval),
                                                    threads=cfg.threads, command=cfg.command)
        return CompressResult(out, student, card, pr, {"steps": dcfg.train_steps})
    ad = adapter_for(model)
    if ad.prune_strategy == "uniform":
        return _compress_uniform(ad, cfg, t0)
    family = ad.family
    if family not in ("cgan", "sr"):
        raise ModelError(f"compress supports generators (cgan) and enhancers (sr); {ad.name!r} is a {family} model.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    preset = PRESETS[cfg.preset][family]
    out = Path(cfg.out or f"runs/compress-{ad.name}")
    env = setup_distributed()
    try:
        return _compress(ad.model, ad.card, ad.name, cfg, preset, out, env, t0)
    finally:
        if env.owns_group:
            dist.destroy_process_group()


def _compress_uniform(ad, cfg: CompressConfig, t0: float) -> CompressResult:
    """A user's model: MetaPruner (uniform ratio) to the MACs target, output distillation, frozen student."""
    if cfg.prune_ratio is not None:
        raise InputError("--prune-ratio is for skugen families; a user's model is pruned to --target-macs "
                         "(e.g. --target-macs 0.25).")
    ad.check_prunable()
    teacher, tcard = ad.model, ad.card
    out = Path(cfg.out or f"runs/compress-{ad.model_dir.name if ad.model_dir else ad.name}")
    steps = ad.distill_steps[cfg.preset] if cfg.distill_steps is None else cfg.distill_steps
    batch = ad.distill_batch if cfg.distill_batch is None else cfg.distill_batch
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    student, prep = prune.prune_uniform_to_macs(teacher, ad.example_inputs(2, 24), cfg.target_macs_frac,
                                                ad.ignored_layers(), models.count_macs)
    prep["ignored"] = ad.ignored_layers_reported()
    t_prune = time.time() - t0
    dres = distill_outputs(teacher, student, ad.inputs("train"), steps, batch=batch, seed=cfg.seed,
                           desc=f"distill {ad.model_dir.name if ad.model_dir else ad.name}")
    q_student = ad.evaluate(student)
    ep, scfg = custom.freeze(student)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".student-export.{os.getpid()}.pt2"
    torch.export.save(ep, str(tmp))
    frozen = models.CustomModel(ep.module(), scfg)  # what the model directory rebuilds from the saved program
    t_macs = ad.macs()  # at the input size the teacher's card counts (one 64x64 LR image / one sample)
    card = custom.card_common(frozen, out.name, {
        "data": tcard.get("data"),
        "teacher": {"name": tcard.get("name"), "sha256": tcard.get("weights", {}).get("sha256"),
                    "macs": t_macs, "params": prep["params_before"]},
        "compress": {"target_macs_frac": cfg.target_macs_frac, "seed": cfg.seed},
        "prune": prep, "distill": dres, "metrics": q_student,
        "macs_teacher": t_macs, "macs_ratio": prep["macs_ratio"],
        "wall_time_s": round(time.time() - t0, 1), "timings_s": {"prune_s": round(t_prune, 1)},
        "command": cfg.command or invocation(),
    })
    try:
        ad.save(frozen, out, card, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return CompressResult(out, frozen, card, prep, dres, None)


def _compress(teacher, tcard, tname, cfg, preset, out, env, t0) -> CompressResult:
    family = teacher.cfg.family
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    # 1-2. per-unit ratios: from the sensitivity table (rank 0), shared with the other ranks
    report = None
    t = time.time()
    if cfg.prune_ratio is not None:
        pcfg = prune.PruneConfig(ratio=cfg.prune_ratio, importance=cfg.importance, seed=cfg.seed)
    else:
        ratios = [None]
        if env.main:
            report = _sensitivity_cached(teacher, tcard, preset, cfg, out)
            ratios = [sensitivity.ratios_for_macs(teacher, report, cfg.target_macs_frac)]
        if env.world > 1:
            dist.broadcast_object_list(ratios, src=0)
        pcfg = prune.PruneConfig(ratio=None, per_layer=ratios[0], importance=cfg.importance, seed=cfg.seed)
    times["sensitivity_s"] = round(time.time() - t, 1)

    # 3. prune (deterministic: every rank gets the same student)
    t = time.time()
    pres = prune.prune_channels(teacher, pcfg)
    times["prune_s"] = round(time.time() - t, 1)
    if env.main:
        ckpt.save_model(pres.model, out / "pruned", {"name": f"{tname}-pruned", "teacher": tname,
                                                     "prune": pres.to_dict()})

    # 4. distill
    dcfg = replace(preset.distill, seed=cfg.seed, threads=cfg.threads,
                   steps=preset.distill.steps if cfg.distill_steps is None else cfg.distill_steps,
                   w_adv=preset.distill.w_adv if cfg.w_adv is None else cfg.w_adv)
    t = time.time()
    dres = None
    student = pres.model
    if dcfg.steps > 0:
        layers = default_feature_layers(teacher)
        kept = {layer: pres.kept[unit] for layer, unit in feature_units(teacher, layers).items()}
        dres = distill(teacher, student, dcfg, out / "distill", adapter_init=kept, desc=f"distill {tname}")
        student = dres.student
    times["distill_s"] = round(time.time() - t, 1)
    if not env.main:
        return CompressResult(out, student, {}, pres, dres, report)

    # 5. evaluate side by side and write the student
    quick = preset.quick_eval if cfg.quick_eval is None else cfg.quick_eval
    t = time.time()
    m_teacher = _evaluate(teacher, quick)
    m_student = _evaluate(student, quick)
    times["eval_s"] = round(time.time() - t, 1)
    times["total_s"] = round(time.time() - t0, 1)
    card = {
        "name": out.name,
        "kind": tcard.get("kind", {"cgan": "generator", "sr": "enhancer"}[family]),
        "data": tcard.get("data"),
        "teacher": {"name": tname, "sha256": tcard.get("weights", {}).get("sha256"),
                    "macs": pres.macs_before, "params": pres.params_before},
        "command": cfg.command or f"skugen.export.compress.compress({tname!r}, {cfg!r})",
        "seed": cfg.seed,
        "compress": {"preset": cfg.preset, "target_macs_frac": None if cfg.prune_ratio is not None else cfg.target_macs_frac,
                     "prune_ratio": cfg.prune_ratio, "importance": cfg.importance},
        "prune": pres.to_dict(),
        "distill": {k: v for k, v in dres.summary().items() if k != "history"} if dres else None,
        "sensitivity": {"json": "sensitivity.json", "png": "sensitivity.png"} if report is not None else None,
        "params": pres.params_after,
        "macs": pres.macs_after,
        "macs_input": "one 64x64 LR image" if family == "sr" else "one sample",
        "macs_teacher": pres.macs_before,
        "params_teacher": pres.params_before,
        "macs_ratio": round(pres.macs_ratio, 4),
        "params_ratio": round(pres.params_ratio, 4),
        "eval": {"quick": quick},
        "metrics": m_student,
        "metrics_teacher": m_teacher,
        "vs_teacher": _targets(family, pres.macs_ratio, m_teacher, m_student),
        "wall_time_s": times["total_s"],
        "timings_s": times,
        "machine": machine(threads=torch.get_num_threads(), torch=torch.__version__, world_size=env.world),
    }
    ckpt.save_model(student, out, card)
    if dres is not None:
        from skugen.io import atomic_write_json

        atomic_write_json(out / "distill" / "distill.json", dres.summary())
    return CompressResult(out, student, card, pres, dres, report)
