"""Compress fmnist-diffusion: prune the denoiser, then distil the teacher's GUIDED 32-step sampler into 8 steps.

    out, student, card, pr = compress_diffusion("fmnist-diffusion", "runs/diffusion-student")

Which step distillation, and why: *trajectory distillation with guidance baked in*. The teacher samples its
training prompts with classifier-free guidance (g = its default) over `teacher_steps` Euler steps; the
states it passes at the student's `steps` grid times s_0 = 1 > ... > s_K = 0 are recorded. The student
learns, at (x_{s_k}, s_k, prompt), the velocity of the teacher's step between s_k and s_{k+1}:
    v*_k = (x_{s_{k+1}} - x_{s_k}) / (s_{k+1} - s_k),
so K of ITS Euler steps retrace the teacher's guided 32-step trajectory. Compared with the alternatives:
- progressive distillation (Salimans & Ho) halves the steps per round: 32 -> 8 is two rounds of training;
- reflow (Liu et al.) straightens the paths but still needs CFG at run time (2 rows per prompt per step);
- consistency distillation needs a target network and many more steps to converge;
whereas one regression on recorded trajectories reaches 8 steps in one round AND absorbs the guidance, so
the student runs one denoiser row per prompt per step: with <= 50% of the teacher's MACs per call, a step
of the student costs <= 25% of a guided teacher step. The teacher's trajectories are computed once and
cached (trajectories.npz), and training is resumable like every skugen trainer.
The student starts from the teacher's weights, pruned (prune_diffusion.prune_diffusion: ResBlock inner widths and
cross-attention widths by group L1, widths multiples of 8).
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skugen.errors import InputError, ModelError
from skugen.io import atomic_file, atomic_write_bytes, sha256_file
from skugen.progress import progress
from skugen.report import machine

from . import ckpt, models, prompts, prune_diffusion, zoo
from .diffusion import DiffusionModel, denoiser_macs, text_encoder_macs
from .train import cosine_lr, ema_update

# The student's widths: a quarter of every ResBlock inner width, half of every cross-attention width (multiples of
# 8, at least 8). For the shipped teacher that is the widths below: 49.4% of its denoiser MACs per call.
STUDENT_INNER = (8, 16, 24, 24, 24, 24, 16, 8)
STUDENT_ATTN = (32, 48, 48, 48, 32)


def student_widths(cfg) -> tuple[tuple[int, ...], tuple[int, ...]]:
    def r(w: int, f: float) -> int:
        return max(8, int(round(w * f / 8)) * 8)

    return tuple(r(w, 0.25) for w in cfg.inner), tuple(r(w, 0.5) for w in cfg.attn_dim)


# `skugen compress/pipeline --preset fast`: a demo-sized run (minutes); the full preset is StepDistillConfig().
FAST_STEP_DISTILL = {"n_traj": 1000, "train_steps": 600}


@dataclass(frozen=True)
class StepDistillConfig:
    steps: int = 8                 # student Euler steps (its default and its maximum: it learned this grid)
    teacher_steps: int = 32        # teacher Euler steps per recorded trajectory
    guidance: float | None = None  # the teacher CFG scale baked into the student (None: the teacher's default)
    n_traj: int = 6000             # recorded trajectories (prompts from the TRAIN templates/synonyms)
    traj_batch: int = 250
    train_steps: int = 3000
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0
    amp: str = "bf16"              # CPU autocast for the teacher's trajectories and the student's training
    inner: tuple[int, ...] | None = None      # None: student_widths(teacher)
    attn_dim: tuple[int, ...] | None = None
    ckpt_every: int = 250
    stop_after: int | None = None  # time-boxing / interruption tests (like TrainConfig.stop_after)


@torch.no_grad()
def teacher_trajectories(teacher: DiffusionModel, cfg: StepDistillConfig) -> dict[str, np.ndarray]:
    """{'tokens' (N, L), 'xs' (N, steps + 1, C, H, W)}: guided teacher states at the student's grid times."""
    tok = prompts.build_vocab()
    rng = np.random.default_rng([cfg.seed, 7])
    labels = rng.integers(0, len(prompts.CLASS_NAMES), cfg.n_traj)
    bright = rng.integers(-1, 2, cfg.n_traj).astype(np.int8)
    ids, _ = tok.encode_batch(prompts.train_prompts(labels, bright, rng))
    if cfg.teacher_steps % cfg.steps:
        raise InputError(f"teacher_steps {cfg.teacher_steps} must be a multiple of the student's steps {cfg.steps}")
    every = cfg.teacher_steps // cfg.steps
    g = teacher.cfg.guidance if cfg.guidance is None else cfg.guidance
    c = teacher.cfg
    null = torch.tensor(tok.null())
    ts = torch.linspace(1.0, 0.0, cfg.teacher_steps + 1)
    xs = np.empty((cfg.n_traj, cfg.steps + 1, c.channels, c.image_size, c.image_size), np.float32)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 11)
    bar = progress(cfg.n_traj, 0, "teacher trajectories", mininterval=2.0)
    for i in range(0, cfg.n_traj, cfg.traj_batch):
        tk = torch.from_numpy(ids[i:i + cfg.traj_batch])
        b = len(tk)
        x = torch.randn(b, c.channels, c.image_size, c.image_size, generator=gen)
        both = torch.cat([tk, null.expand(b, -1)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            ctx = teacher.text_encoder(both)
        mask = (both != 0).float()
        xs[i:i + b, 0] = x.numpy()
        for j in range(cfg.teacher_steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                v = teacher.denoiser(torch.cat([x, x]), ts[j].expand(2 * b), ctx, mask).float()
            vc, vu = v.chunk(2)
            x = x + (ts[j + 1] - ts[j]) * (vu + g * (vc - vu))
            if (j + 1) % every == 0:
                xs[i:i + b, (j + 1) // every] = x.numpy()
        bar.update(b)
    bar.close()
    return {"tokens": ids, "xs": xs, "guidance": np.float32(g)}


def _load_or_make_trajectories(teacher, cfg: StepDistillConfig, out: Path) -> dict[str, np.ndarray]:
    f = out / "trajectories.npz"
    key = json.dumps({k: v for k, v in asdict(cfg).items() if k in ("steps", "teacher_steps", "guidance", "n_traj",
                                                                       "seed", "amp")}, sort_keys=True)
    if f.is_file():
        with np.load(f) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in ("tokens", "xs", "guidance")}
    tr = teacher_trajectories(teacher, cfg)
    with atomic_file(f) as af:
        with open(af.tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), **tr)
    return tr


def distill_steps(teacher: DiffusionModel, student: DiffusionModel, cfg: StepDistillConfig, out: Path) -> DiffusionModel:
    """Train `student` (in place; returns its EMA copy) on the teacher's recorded guided trajectories."""
    tr = _load_or_make_trajectories(teacher, cfg, out)
    tokens, xs = torch.from_numpy(tr["tokens"]), torch.from_numpy(tr["xs"])
    s = torch.linspace(1.0, 0.0, cfg.steps + 1)
    ema = copy.deepcopy(student)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.01)
    st = ckpt.load_checkpoint(out / "ckpt", {"model": student, "ema": ema}, {"opt": opt}) or {"step": 0}
    warm = min(100, cfg.train_steps // 10)
    bar = progress(cfg.train_steps, st["step"], "step distillation", mininterval=2.0)
    student.train()
    for step in range(st["step"], cfg.train_steps):
        for pg in opt.param_groups:
            pg["lr"] = cfg.lr * (step + 1) / warm if step < warm else cosine_lr(cfg.lr, step - warm, cfg.train_steps - warm)
        rng = np.random.default_rng([cfg.seed, 3, step])
        i = torch.from_numpy(rng.integers(0, len(xs), cfg.batch))
        k = torch.from_numpy(rng.integers(0, cfg.steps, cfg.batch))
        x, x_next = xs[i, k], xs[i, k + 1]                               # (B, C, H, W) each
        t, dt = s[k], (s[k + 1] - s[k])[:, None, None, None]
        target = (x_next - x) / dt                                        # the teacher's guided step, as a velocity
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            v = student(x, t, tokens[i])
        loss = F.mse_loss(v.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        ema_update(ema, student, 0.999 if step >= 500 else 0.0)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        stop = bool(cfg.stop_after) and step + 1 - st["step"] >= cfg.stop_after
        if (step + 1) % cfg.ckpt_every == 0 or stop or step + 1 == cfg.train_steps:
            ckpt.save_checkpoint(out / "ckpt", {"model": student, "ema": ema}, {"opt": opt}, {"step": step + 1})
            with open(out / "distill_log.jsonl", "a") as fh:
                fh.write(json.dumps({"step": step + 1, "loss": round(loss.item(), 5)}) + "\n")
        if stop:
            break
    bar.close()
    return ema.eval()


def compress_diffusion(model, out: str | os.PathLike | None = None, dcfg: StepDistillConfig | None = None,
                       evaluate: bool = True, quick_eval: bool = False, threads: int | None = None,
                       command: str | None = None) -> tuple[Path, DiffusionModel, dict, "prune_diffusion.PruneResult"]:
    """Prune + step-distil a diffusion teacher into a student model directory (resumable): (out, student, card,
    prune result). The card is {} when a time-boxed run stopped before the last step (re-run to resume).
    `skugen compress fmnist-diffusion` calls this through skugen.export.compress.compress."""
    dcfg = dcfg or StepDistillConfig()
    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
    src = zoo.resolve(model)
    teacher, tcard = ckpt.load_model(src)
    if not isinstance(teacher, DiffusionModel):
        raise ModelError(f"{src} is not a diffusion model")
    teacher.eval().requires_grad_(False)
    out = Path(out or f"runs/compress-{tcard.get('name', src.name)}")
    out.mkdir(parents=True, exist_ok=True)
    inner, attn = student_widths(teacher.cfg)
    pr = prune_diffusion.prune_diffusion(teacher, dcfg.inner or inner, dcfg.attn_dim or attn)
    g = teacher.cfg.guidance if dcfg.guidance is None else dcfg.guidance
    # the student samples its own grid without CFG: guidance is in its weights
    scfg = replace(pr.config, steps=dcfg.steps, max_steps=dcfg.steps, guidance=1.0, distilled_guidance=float(g))
    student = DiffusionModel(scfg)
    student.load_state_dict(pr.model.state_dict())
    if dcfg.train_steps > 0:
        student = distill_steps(teacher, student, dcfg, out)
        done = ckpt.checkpoint_step(out / "ckpt")
        if done is None or done < dcfg.train_steps:
            return out, student, {}, pr
    atomic_write_bytes(out / "vocab.json", (src / "vocab.json").read_bytes())
    name = tcard.get("name", src.name)
    card = {
        "name": f"{name}-student", "kind": "diffusion", "teacher": name,
        "teacher_sha256": tcard.get("weights", {}).get("sha256"), "data": tcard.get("data"),
        "command": command or f"skugen compress {model} --out {out}",
        "prune": pr.to_dict(), "distill": {**asdict(dcfg), "method": "guided trajectory distillation (see "
                                           "skugen.export.diffusion_distill)", "baked_guidance": g},
        "macs_denoiser_step": denoiser_macs(student), "macs_text_encoder": text_encoder_macs(student),
        "macs_teacher_denoiser_step": denoiser_macs(teacher),
        "vocab": {"file": "vocab.json", "sha256": sha256_file(out / "vocab.json")},
        "sampler": {"name": "euler", "steps": scfg.steps, "guidance": 1.0, "distilled_guidance": g,
                    "denoiser_rows_per_prompt": 1},
        "seed": dcfg.seed, "machine": machine(threads=torch.get_num_threads(), torch=torch.__version__),
        "params": sum(p.numel() for p in student.parameters()), "metrics_teacher": tcard.get("metrics"),
        "macs": models.count_macs(student, models.example_inputs(scfg, 1)),
        "macs_input": "one sample: text encoder + ONE denoiser step",
    }
    card["macs_ratio_per_call"] = card["macs_denoiser_step"] / card["macs_teacher_denoiser_step"]
    card["macs_ratio_per_step"] = card["macs_ratio_per_call"] / 2.0  # teacher: 2 rows per prompt (CFG), student 1
    ckpt.save_model(student, out, card)
    if evaluate:
        card["metrics"] = zoo.eval_diffusion(student, quick=quick_eval)
        if not quick_eval:  # what `skugen eval NAME --quick` reproduces (tests/export/test_zoo.py)
            card["metrics_quick"] = zoo.eval_diffusion(student, quick=True)
    card["wall_time_s"] = round(time.time() - t0, 1)
    ckpt.save_model(student, out, card)
    return out, student, card, pr
