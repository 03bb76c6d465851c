"""Distil a pruned student from its teacher, GAN Compression style (Li et al. 2020).

Losses (each weight in DistillConfig; 0 switches a term off):
- pixel:   L1(student(x), teacher(x)) on the same inputs;
- feat:    MSE between intermediate teacher features and the student's, mapped to the
           teacher's width by learned 1x1 conv adapters (cGAN: every stage's bn2
           output; SR: every residual block's output). Adapters start as the channel
           selection pruning made (student channel j -> the teacher channel it came
           from) when `adapter_init` is given, so the term starts small;
- percep:  cGAN: L1 in the fmnist-classifier's penultimate space (the FID-proxy space),
           skipped with a note when no classifier is installed;
           SR: train.SRLoss (L1 + Sobel edges + random-conv features, VGG-free) against
           the REAL high-resolution crop, so the student also learns from ground truth;
- adv:     cGAN only: hinge loss from a fresh projection Discriminator trained on
           real Fashion-MNIST vs student outputs (DiffAugment on both).

The generator is distilled data-free (random latents and labels); the enhancer
on GroceryStore train crops (data.sr_pairs). A user's model imported with --data is
distilled on the train part of that data (`user_inputs`, export.userdata). Every step's inputs are a pure
function of (seed, step, rank), so resuming from OUT/ckpt.* needs no RNG state.

Runs unchanged under torchrun (DDP): WORLD_SIZE/RANK/LOCAL_RANK select the rank,
the student + adapters are one DistributedDataParallel module, each rank draws its
own share of the global batch, the discriminator's gradients are all-reduced by
hand, and only rank 0 writes checkpoints and outputs. Example:

    torchrun --standalone --nproc_per_node 2 -m skugen.cli distill \\
        --teacher fmnist-cgan --student runs/pruned --out runs/distilled --steps 3000
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from skugen.errors import InputError, ModelError
from skugen.progress import progress

from . import ckpt, data, models
from .train import SRLoss, diff_augment, recalibrate_bn

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DistillConfig:
    """None fields take the family default (see FAMILY_DEFAULTS)."""

    steps: int = 3000
    batch: int | None = None            # GLOBAL batch, split over DDP ranks (cgan 64, sr 16)
    lr: float | None = None             # Adam peak LR for student + adapters; cosine decay after a 5% warm-up
    hr_size: int = 96                   # SR: HR crop size in px (LR crops are hr_size / scale)
    w_pixel: float = 1.0
    w_feat: float | None = None         # cgan 1.0 (BN-normalised features), sr 0.1 (raw trunk features)
    w_percep: float = 1.0
    w_adv: float = 0.0                  # cgan only; 0 = no discriminator
    feat_layers: tuple[str, ...] | None = None  # module names in both models; None: family default
    seed: int = 0
    ckpt_every: int = 250
    log_every: int = 10                 # loss history granularity (steps)
    bn_recal_batches: int = 40          # cgan: BN 'standing statistics' batches at the end (batch 128)
    threads: int | None = None          # torch intra-op threads (None: all cores / cores per local rank)


FAMILY_DEFAULTS = {
    "cgan": {"batch": 64, "lr": 5e-4, "w_feat": 1.0},
    "sr": {"batch": 16, "lr": 5e-4, "w_feat": 0.1},   # the teacher's own peak LR
}


def resolve_config(cfg: DistillConfig | None, family: str) -> DistillConfig:
    cfg = cfg or DistillConfig()
    if family not in FAMILY_DEFAULTS:
        raise ModelError(f"distillation supports the cgan and sr families, not {family!r}.")
    d = FAMILY_DEFAULTS[family]
    cfg = replace(cfg, **{k: v for k, v in d.items() if getattr(cfg, k) is None})
    if cfg.steps < 0:
        raise InputError(f"distill steps must be >= 0, got {cfg.steps}.")
    if cfg.batch < 1:
        raise InputError(f"distill batch must be >= 1, got {cfg.batch}.")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise InputError(f"distill lr must be a finite number > 0, got {cfg.lr}.")
    for k in ("w_pixel", "w_feat", "w_percep", "w_adv"):  # a NaN weight trains a NaN student without a word
        if not (math.isfinite(getattr(cfg, k)) and getattr(cfg, k) >= 0):
            raise InputError(f"distill {k} must be a finite number >= 0, got {getattr(cfg, k)}.")
    if cfg.ckpt_every < 1 or cfg.bn_recal_batches < 0:
        raise InputError(f"distill ckpt_every must be >= 1 and bn_recal_batches >= 0, got {cfg.ckpt_every} and "
                         f"{cfg.bn_recal_batches}.")
    if family == "sr" and (cfg.hr_size % 2 or cfg.hr_size < 16):
        raise InputError(f"hr_size must be an even number >= 16, got {cfg.hr_size}.")
    if family != "cgan" and cfg.w_adv:
        raise InputError("the adversarial term (w_adv) is only defined for the cGAN.")
    return cfg


def default_feature_layers(model: nn.Module) -> tuple[str, ...]:
    """Where features are matched: each generator stage (bn2, before ReLU) / each SR residual block."""
    if isinstance(model, models.Generator):
        return tuple(f"blocks.{i}.bn2" for i in range(len(model.blocks)))
    if isinstance(model, models.Enhancer):
        return tuple(f"body.{i}" for i in range(len(model.body)))
    raise ModelError(f"no distillation features for {type(model).__name__}")


# feature layer -> the pruning unit whose width (and kept channels) it carries
def feature_units(model: nn.Module, layers: Sequence[str]) -> dict[str, str]:
    out = {}
    for name in layers:
        if isinstance(model, models.Generator) and name.endswith(".bn2"):
            out[name] = f"stage{name.split('.')[1]}.b"
        elif isinstance(model, models.Enhancer) and name.startswith("body."):
            out[name] = "trunk"
    return out

# ----------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistEnv:
    world: int
    rank: int
    local_rank: int
    device: torch.device
    owns_group: bool    # we initialised the process group (and destroy it at the end)

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistEnv:
    """Read torchrun's env vars; init the process group (gloo on CPU, nccl on GPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
        owns = True
    return DistEnv(world, rank, local, device, owns)


def _allreduce_mean_grads(module: nn.Module, env: DistEnv) -> None:
    if env.world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= env.world


def param_digest(module: nn.Module) -> str:
    """sha256 over every parameter (name order): equal digests = ranks in sync."""
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

# ----------------------------------------------------------------------------- modules


class StudentWithAdapters(nn.Module):
    """The student and its feature adapters as ONE module, so DDP keeps both in sync.

    forward(*inputs) -> (output, [adapted feature per layer]); features are taken
    by forward hooks on the named student layers.
    """

    def __init__(self, student: nn.Module, adapters: nn.ModuleList, layers: Sequence[str]):
        super().__init__()
        self.student = student
        self.adapters = adapters
        self.layers = list(layers)
        self._feats: dict[str, torch.Tensor] = {}
        mods = dict(student.named_modules())
        for name in self.layers if len(adapters) else []:
            mods[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def fn(_m, _i, o):
            self._feats[name] = o
        return fn

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self._feats = {}
        out = self.student(*inputs)
        feats = [a(self._feats[n]) for a, n in zip(self.adapters, self.layers)] if len(self.adapters) else []
        return out, feats


def make_adapters(student: nn.Module, teacher: nn.Module, layers: Sequence[str],
                  kept: dict[str, Sequence[int]] | None = None) -> nn.ModuleList:
    """1x1 convs student width -> teacher width, one per layer.

    With `kept[layer]` (the teacher channels that survived pruning, in order), the
    adapter starts as that selection: student channel j feeds teacher channel kept[j].
    """
    smods, tmods = dict(student.named_modules()), dict(teacher.named_modules())
    adapters = nn.ModuleList()
    for name in layers:
        if name not in smods or name not in tmods:
            raise InputError(f"feature layer {name!r} is not in both models; choose from {list(tmods)[:12]}...")
        s_ch, t_ch = _channels(smods[name]), _channels(tmods[name])
        a = nn.Conv2d(s_ch, t_ch, 1)
        if kept and name in kept:
            idx = list(kept[name])
            assert len(idx) == s_ch, f"{name}: {len(idx)} kept channels for a {s_ch}-wide student layer"
            with torch.no_grad():
                a.weight.zero_()
                a.bias.zero_()
                a.weight[idx, list(range(s_ch)), 0, 0] = 1.0
        adapters.append(a)
    return adapters


def _channels(m: nn.Module) -> int:
    if isinstance(m, nn.BatchNorm2d):
        return m.num_features
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    if isinstance(m, models.ResBlock):
        return m.conv2.out_channels
    if isinstance(m, models.SelfAttention):
        return m.v.out_channels
    raise InputError(f"cannot read the channel count of a {type(m).__name__} feature layer")


class _FeatureTap:
    """Forward hooks that record the teacher's features (it runs under no_grad)."""

    def __init__(self, model: nn.Module, layers: Sequence[str]):
        self.feats: dict[str, torch.Tensor] = {}
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self._hook(n)) for n in layers]
        self.layers = list(layers)

    def _hook(self, name: str):
        def fn(_m, _i, o):
            self.feats[name] = o
        return fn

    def get(self) -> list[torch.Tensor]:
        return [self.feats[n] for n in self.layers]

    def close(self) -> None:
        for h in self.handles:
            h.remove()

# ----------------------------------------------------------------------------- data


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1009 + rank


class _Inputs:
    """Per-step inputs: (model inputs, extras) as a pure function of (seed, step, rank)."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, env: DistEnv, local_batch: int):
        self.cfg, self.env, self.b = cfg, env, local_batch
        self.tcfg = teacher.cfg
        self.family = self.tcfg.family
        if self.family == "sr":
            self.paths = [p for p, _, _ in data.grocery_split("train")]
        self.real = None
        if self.family == "cgan" and cfg.w_adv > 0:
            x, y = data.load_fmnist("train")
            self.real = torch.from_numpy(data.fmnist_to_model(x)), torch.from_numpy(y.astype(np.int64))

    def __call__(self, step: int) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
        s = _step_seed(self.cfg.seed, step, self.env.rank)
        g = torch.Generator().manual_seed(s)
        dev = self.env.device
        if self.family == "cgan":
            z = torch.randn(self.b, self.tcfg.z_dim, generator=g)
            y = torch.randint(0, self.tcfg.n_classes, (self.b,), generator=g)
            extra: dict[str, Any] = {"y": y.to(dev), "g": g}
            if self.real is not None:
                idx = torch.from_numpy(np.random.default_rng(s).integers(0, len(self.real[0]), self.b))
                extra["real"], extra["y_real"] = self.real[0][idx].to(dev), self.real[1][idx].to(dev)
            return (z.to(dev), F.one_hot(y, self.tcfg.n_classes).float().to(dev)), extra
        lr, hr = data.sr_pairs(self.paths, self.b, self.cfg.hr_size, seed=s, cfg=data.TRAIN_DEGRADE)  # as the teacher saw
        lr_t = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255.0)   # (B, 3, h, w)
        hr_t = torch.from_numpy(hr).permute(0, 3, 1, 2).float().div(255.0)   # (B, 3, 2h, 2w)
        return (lr_t.to(dev),), {"hr": hr_t.to(dev)}


def _val_inputs(teacher: nn.Module, cfg: DistillConfig, device) -> tuple[torch.Tensor, ...]:
    """A fixed held-out batch for before/after numbers (never a training batch: different seed stream)."""
    if teacher.cfg.family == "cgan":
        g = torch.Generator().manual_seed(987_654 + cfg.seed)
        z = torch.randn(64, teacher.cfg.z_dim, generator=g)
        y = torch.arange(64) % teacher.cfg.n_classes
        return z.to(device), F.one_hot(y, teacher.cfg.n_classes).float().to(device)
    paths = [p for p, _, _ in data.grocery_split("val")]
    lr, _ = data.sr_pairs(paths, 8, cfg.hr_size, seed=987_654 + cfg.seed, aug=False)
    return (torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255.0).to(device),)


@torch.no_grad()
def _val_l1(student: nn.Module, t_out: torch.Tensor, inputs) -> float:
    dev = next(student.parameters()).device
    was = student.training
    student.eval()
    v = float((student(*[x.to(dev) for x in inputs]) - t_out.to(dev)).abs().mean())
    student.train(was)
    return v


def _deployed_l1(student: nn.Module, cfg: DistillConfig, t_out: torch.Tensor, inputs) -> float:
    """Val L1 of the student as it would ship: for the cGAN after BN recalibration (on a copy)."""
    if student.cfg.family == "cgan" and cfg.bn_recal_batches > 0:
        student = copy.deepcopy(student).cpu()
        recalibrate_bn(student, n_batches=cfg.bn_recal_batches, seed=cfg.seed)
    return _val_l1(student, t_out, inputs)

# ----------------------------------------------------------------------------- distill


@dataclass
class DistillResult:
    student: nn.Module                  # distilled (eval mode; cgan BN stats recalibrated)
    config: DistillConfig               # resolved (family defaults filled in)
    start_step: int                     # > 0 when resumed from a checkpoint
    steps: int
    val_l1_start: float                 # pixel L1 to the teacher on the fixed val batch, before / after
    val_l1_end: float
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "pixel", "feat", ...} every log_every steps
    world_size: int = 1
    rank: int = 0
    digests: list[str] = field(default_factory=list)   # per-rank parameter sha256 (in sync = all equal)
    notes: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    def summary(self) -> dict:
        return {"config": asdict(self.config), "start_step": self.start_step, "steps": self.steps,
                "val_l1_to_teacher": {"start": self.val_l1_start, "end": self.val_l1_end},
                "world_size": self.world_size, "param_digests": self.digests, "notes": self.notes,
                "wall_time_s": round(self.wall_time_s, 1), "history": self.history}


def _lr_at(step: int, cfg: DistillConfig) -> float:
    warm = max(1, cfg.steps // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))  # cosine to 5% of peak


def distill(teacher: nn.Module, student: nn.Module, cfg: DistillConfig | None = None,
            out: str | os.PathLike | None = None, adapter_init: dict[str, Sequence[int]] | None = None,
            desc: str = "distill") -> DistillResult:
    """Train `student` (in place) to mimic `teacher`. With `out`, checkpoints go to out/ckpt.* and resume from it."""
    t0 = time.time()
    family = teacher.cfg.family
    if family != student.cfg.family:
        raise ModelError(f"teacher is a {family} model but the student is {student.cfg.family}.")
    cfg = resolve_config(cfg, family)
    env = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif env.world > 1 and env.device.type == "cpu":  # ranks share the cores: don't oversubscribe
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", env.world))))
    torch.manual_seed(cfg.seed)  # adapter / discriminator init; DDP broadcasts rank 0's weights anyway
    notes: list[str] = []
    dev = env.device
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and env.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    teacher = teacher.to(dev).eval()  # only ever run under no_grad (its requires_grad flags are the caller's)
    student = student.to(dev).train()

    layers = tuple(cfg.feat_layers or default_feature_layers(teacher)) if cfg.w_feat > 0 else ()
    adapters = make_adapters(student, teacher, layers, adapter_init).to(dev)
    wrapper = StudentWithAdapters(student, adapters, layers)
    opt = torch.optim.Adam(wrapper.parameters(), lr=cfg.lr, betas=(0.9, 0.99))

    D = opt_d = None
    if cfg.w_adv > 0:
        D = models.Discriminator(teacher.cfg.n_classes, in_ch=teacher.cfg.out_ch).to(dev)
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.9))
    percep = _perceptual(family, cfg, dev, notes)

    mods: dict[str, nn.Module] = {"student": student, "adapters": adapters}
    optims: dict[str, torch.optim.Optimizer] = {"opt": opt}
    if D is not None:
        mods["D"], optims["opt_d"] = D, opt_d
    # What a checkpoint must match to be resumed: the teacher's weights and the settings (not the step count,
    # which a resumed run may extend). Shapes alone are not enough: a retrained teacher of the same name reuses
    # the same default --out, and with --prune-ratio the student's widths are identical too.
    identity = {"teacher": param_digest(teacher),
                "settings": hashlib.sha256(json.dumps({k: v for k, v in asdict(cfg).items() if k != "steps"},
                                                      sort_keys=True, default=str).encode()).hexdigest()}
    state = {"step": 0, "history": [], "val_l1_start": None, "identity": identity}
    if out_dir is not None:
        try:
            state = ckpt.load_checkpoint(out_dir / "ckpt", mods, optims) or state
        except (RuntimeError, KeyError) as e:
            raise ModelError(f"{out_dir / 'ckpt.*'} was written for a different student or settings ({' '.join(str(e).split())[:200]}). "
                             "Use a fresh --out directory or delete the old ckpt files.") from e
        old = state.get("identity")
        if old is not None and old != identity:
            what = "teacher" if old.get("teacher") != identity["teacher"] else "distillation settings"
            raise ModelError(f"{out_dir / 'ckpt.*'} was written for a different {what}: resuming would hand back "
                             "a student trained against something else. Use a fresh --out directory or delete the "
                             "old ckpt files.")
        state["identity"] = identity
    start = int(state["step"])
    history: list[dict] = list(state["history"])
    if env.world > 1:
        dist.barrier()  # every rank has read the checkpoint before rank 0 may overwrite it
    model = wrapper
    if env.world > 1:
        model = nn.parallel.DistributedDataParallel(
            wrapper, device_ids=[env.local_rank] if dev.type == "cuda" else None)

    tap = _FeatureTap(teacher, layers)
    val_x = _val_inputs(teacher, cfg, dev) if env.main else None
    with torch.no_grad():
        val_t = teacher(*val_x) if env.main else None
    val_start = state["val_l1_start"]
    if env.main and val_start is None:
        val_start = _deployed_l1(student, cfg, val_t, val_x)

    local_b = max(1, math.ceil(cfg.batch / env.world))
    sample = _Inputs(teacher, cfg, env, local_b)
    bar = progress(cfg.steps, start, desc, mininterval=2.0) if env.main else None
    for step in range(start, cfg.steps):
        for pg in opt.param_groups:
            pg["lr"] = _lr_at(step, cfg)
        x, extra = sample(step)
        with torch.no_grad():
            t_out = teacher(*x)
            t_feats = tap.get()
        parts: dict[str, torch.Tensor] = {}

        s_out, s_feats = model(*x)

        if D is not None:  # discriminator step: this rank's reals vs the current student outputs
            g = extra["g"]
            d_real = D(diff_augment(extra["real"], g), extra["y_real"])
            d_fake = D(diff_augment(s_out.detach(), g), extra["y"])
            loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            _allreduce_mean_grads(D, env)
            opt_d.step()
            parts["d"] = loss_d.detach()

        loss = torch.zeros((), device=dev)
        if cfg.w_pixel:
            parts["pixel"] = (s_out - t_out).abs().mean()
            loss = loss + cfg.w_pixel * parts["pixel"]
        if s_feats:
            parts["feat"] = sum(F.mse_loss(s, t) for s, t in zip(s_feats, t_feats)) / len(s_feats)
            loss = loss + cfg.w_feat * parts["feat"]
        if percep is not None:
            parts["percep"] = percep(s_out, t_out, extra)
            loss = loss + cfg.w_percep * parts["percep"]
        if D is not None:
            D.requires_grad_(False)  # only the student learns from this term
            parts["adv"] = -D(diff_augment(s_out, extra["g"]), extra["y"]).mean()
            D.requires_grad_(True)
            loss = loss + cfg.w_adv * parts["adv"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        if env.main:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if (step + 1) % cfg.log_every == 0 or step == start:
                history.append({"step": step + 1, "loss": round(loss.item(), 6),
                                **{k: round(float(v.detach()), 6) for k, v in parts.items()}})
            if out_dir is not None and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps):
                ckpt.save_checkpoint(out_dir / "ckpt", mods, optims,
                                     {"step": step + 1, "history": history, "val_l1_start": val_start,
                                      "identity": identity})
    if bar is not None:
        bar.close()
    tap.close()

    digest = param_digest(student)
    digests = [digest]
    if env.world > 1:
        digests = [None] * env.world  # type: ignore[list-item]
        dist.all_gather_object(digests, digest)
    student = student.cpu()  # the deliverable lives on the CPU (safetensors, ONNX export)
    if family == "cgan" and cfg.bn_recal_batches > 0:
        recalibrate_bn(student, n_batches=cfg.bn_recal_batches, seed=cfg.seed)  # standing BN statistics
    student.eval()
    val_end = _val_l1(student, val_t, val_x) if env.main else float("nan")
    if env.owns_group:
        dist.barrier()
        dist.destroy_process_group()
    return DistillResult(student, cfg, start, cfg.steps, float(val_start if val_start is not None else "nan"),
                         float(val_end), history, env.world, env.rank, digests, notes, time.time() - t0)


def distill_outputs(teacher: nn.Module, student: nn.Module, inputs: Callable[[int, int], tuple[torch.Tensor, ...]],
                    steps: int, batch: int = 16, lr: float = 5e-4, seed: int = 0, desc: str = "distill") -> dict:
    """Output-level distillation: L1(student(x), teacher(x)) on real inputs, Adam + cosine LR.

    For models whose layers have no known correspondence after pruning (a user's graph), so only
    the output is matched; `inputs(batch, seed)` draws one batch of the model's real input distribution.
    """
    from .train import cosine_lr

    teacher.eval()
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    hist = []
    bar = progress(steps, 0, desc, mininterval=2.0)
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(lr, step, steps)
        x = inputs(batch, seed * 1_000_003 + step)
        with torch.no_grad():
            t = teacher(*x)
        loss = F.l1_loss(student(*x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    student.eval()
    k = max(1, min(20, steps // 5))
    return {"steps": steps, "batch": batch, "lr": lr, "loss": "L1 to teacher output",
            "l1_start": float(np.mean(hist[:k])) if hist else None, "l1_end": float(np.mean(hist[-k:])) if hist else None}


def user_inputs(cfg, card: dict, split: str = "train") -> Callable[[int, int], tuple[torch.Tensor, ...]] | None:
    """(batch, seed) -> inputs from the user's data (card["data"]["spec"], userdata), None without user data.

    Split "train" draws from the train part only (never calibration, gate or confirm images/samples);
    enhancers get LR crops of 48 px (the size the teacher is distilled at), augmented, degraded as the spec says."""
    from . import userdata

    spec = userdata.from_card(card)
    if spec is None:
        return None
    if split != "train":
        raise InputError(f"user-data distillation inputs come from the train part; got split {split!r}.")
    if cfg.kind == "generator":
        return userdata.generator_batch_fn(spec, cfg.n_classes)
    return userdata.train_batch_fn(spec, cfg.scale)


def _perceptual(family: str, cfg: DistillConfig, dev, notes: list[str]):
    """The perceptual term as a function (s_out, t_out, extra) -> loss, or None when off/unavailable."""
    if not cfg.w_percep:
        return None
    if family == "sr":
        crit = SRLoss().to(dev)
        return lambda s, t, extra: crit(s, extra["hr"])
    from . import zoo

    try:
        clf = zoo.load(zoo.classifier_dir())[0].to(dev).eval().requires_grad_(False)
    except ModelError as e:
        notes.append(f"perceptual term skipped: no fmnist-classifier ({e})")
        return None

    def feat_l1(s, t, extra):
        with torch.no_grad():
            ft = clf.features(t)
        return (clf.features(s) - ft).abs().mean()

    return feat_l1

# ----------------------------------------------------------------------------- model directories (skugen distill)


def distill_dirs(teacher: str | os.PathLike, student: str | os.PathLike, out: str | os.PathLike,
                 cfg: DistillConfig | None = None, command: str | None = None) -> DistillResult:
    """`skugen distill`: teacher (zoo name or model directory) -> the pruned student directory, distilled.

    Every rank trains (DDP under torchrun); rank 0 writes OUT/ as a model directory
    (model.safetensors + card.json with the distillation summary, the teacher and
    `command`) and OUT/distill.json.
    """
    from skugen.io import atomic_write_json

    from . import zoo

    teacher_m, tcard = zoo.load(teacher)
    student_m, scard = ckpt.load_model(zoo.resolve(student))
    res = distill(teacher_m, student_m, cfg, out)
    if res.rank == 0:
        out = Path(out)
        card = {k: v for k, v in scard.items() if k not in ("config", "weights")}
        card["distill"] = {k: v for k, v in res.summary().items() if k != "history"}
        card["teacher"] = {"name": tcard.get("name", str(teacher)), "sha256": tcard.get("weights", {}).get("sha256")}
        card["command"] = command
        ckpt.save_model(res.student, out, card)
        atomic_write_json(out / "distill.json", res.summary())
    return res
