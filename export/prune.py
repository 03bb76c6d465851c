"""Structured channel pruning of skugen models with torch-pruning's DependencyGraph.

Channels are physically removed (the pruned model is smaller and faster, not
masked), and each pruned width is rounded to a multiple of 8: odd widths made a
pruned model 3x slower on ONNX Runtime (DESIGN.md, torch-pruning #38).

A model is pruned in named *units*, one per width field of its config, so a
pruned model is always described by a config (`models.config_from_model`) and
rebuilds with `models.build`:

    cgan   base, stage{i}.a, stage{i}.b      (CGANConfig.base / .stages[i])
    sr     trunk, block{i}                    (SRConfig.head / .blocks[i])
    classifier conv{i}, feat                  (ClassifierConfig.widths[i] / .feat_dim)

Each unit roots one DependencyGraph group; the graph finds every layer coupled
to it (BatchNorms, the next conv's input, the fc->view reshape of the cGAN seed,
all residual adds of the enhancer trunk, the attention block). We root groups
ourselves instead of running tp.pruner.MetaPruner over all layers because:
- MetaPruner roots a group at *every* Linear, and in torch-pruning 1.6 the index
  mapping of `fc -> view(B, base, 4, 4)` is only right when the group is rooted
  at the BatchNorm side (rooted at fc it maps 16 fc outputs onto one channel);
- one group per config field is exactly what sensitivity analysis and per-layer
  ratios need, and it makes "never prune the I/O or conditioning layers" a
  property of the unit list, double-checked against every group before pruning.

Never pruned: the cGAN's class embedding, fc's input side (z + embedding),
to_img and the attention query/key (8 wide: the minimum); the enhancer's head
input (the image), `up` (its output is in_ch*scale^2 for PixelShuffle); the
classifier's first input and its head.

Which units to prune how far is skugen.export.sensitivity: it prunes each unit alone
at several ratios (`prune_channels` here), and turns that table into per-unit ratios.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from skugen.errors import BudgetError, InputError, ModelError

from . import models
from .models import Classifier, Enhancer, Generator, SelfAttention

IMPORTANCES = ("l1", "taylor")

# ----------------------------------------------------------------------------- config / result


@dataclass(frozen=True)
class PruneConfig:
    """How much to prune. None means the defaults; ratios are fractions of channels REMOVED."""

    ratio: float | None = 0.5                 # for every unit not in per_layer (None: leave those unpruned)
    per_layer: dict[str, float] | None = None  # unit name -> ratio (0 = keep all); from ratios_for_macs()
    importance: str = "l1"                    # "l1": group L1 magnitude (data-free); "taylor": |w * dL/dw| (needs a loss)
    round_to: int = 8                         # kept widths are multiples of this (ORT/TensorRT kernels)
    seed: int = 0                             # Taylor's loss batch

    def ratio_for(self, unit: str) -> float:
        if self.per_layer and unit in self.per_layer:
            return float(self.per_layer[unit])
        return float(self.ratio) if self.ratio is not None else 0.0


@dataclass(frozen=True)
class PruneResult:
    model: nn.Module                       # the student, rebuilt from `config` with the pruned weights (eval mode)
    config: Any                            # its models.*Config (every width explicit)
    teacher_config: Any
    prune_config: PruneConfig
    widths: dict[str, tuple[int, int]]     # unit -> (teacher width, student width)
    kept: dict[str, tuple[int, ...]]       # unit -> teacher channel indices that survived (adapter init)
    macs_before: int                       # per sample (per 64x64 LR image for the enhancer)
    macs_after: int
    params_before: int
    params_after: int

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before

    def to_dict(self) -> dict:
        """JSON-ready summary for model cards (no weights)."""
        return {"prune_config": asdict(self.prune_config),
                "teacher_config": models.config_to_dict(self.teacher_config),
                "student_config": models.config_to_dict(self.config),
                "widths": {u: list(w) for u, w in self.widths.items()},
                "macs_before": self.macs_before, "macs_after": self.macs_after,
                "macs_ratio": round(self.macs_ratio, 4),
                "params_before": self.params_before, "params_after": self.params_after,
                "params_ratio": round(self.params_ratio, 4)}

# ----------------------------------------------------------------------------- units


def _family(model_or_cfg) -> str:
    if isinstance(model_or_cfg, nn.Module):
        if not isinstance(model_or_cfg, (Generator, Enhancer, Classifier)):
            raise ModelError(f"cannot prune {type(model_or_cfg).__name__}: not a skugen model "
                             "(expected a Generator, Enhancer or Classifier from skugen.export.models).")
        return model_or_cfg.cfg.family
    return model_or_cfg.family


def unit_names(model_or_cfg) -> list[str]:
    """The prunable units of a model, in forward order."""
    cfg = model_or_cfg.cfg if isinstance(model_or_cfg, nn.Module) else model_or_cfg
    fam = _family(model_or_cfg)
    if fam == "cgan":
        return ["base"] + [f"stage{i}.{ab}" for i in range(len(cfg.stages)) for ab in "ab"]
    if fam == "sr":
        return ["trunk"] + [f"block{i}" for i in range(len(cfg.blocks))]
    if fam == "classifier":
        return [f"conv{i}" for i in range(len(cfg.widths))] + ["feat"]
    raise ModelError(f"no pruning units for family {fam!r}")


def _index(unit: str, prefix: str) -> int:
    return int(unit[len(prefix):].split(".")[0])


def unit_width(cfg, unit: str) -> int:
    if unit == "base":
        return cfg.base
    if unit.startswith("stage"):
        return cfg.stages[_index(unit, "stage")]["ab".index(unit[-1])]
    if unit == "trunk":
        return cfg.head
    if unit.startswith("block"):
        return cfg.blocks[_index(unit, "block")]
    if unit.startswith("conv"):
        return cfg.widths[_index(unit, "conv")]
    if unit == "feat":
        return cfg.feat_dim
    raise InputError(f"unknown pruning unit {unit!r}")


def with_unit_width(cfg, unit: str, width: int):
    """A copy of `cfg` with one unit's width changed (what pruning that unit alone produces)."""
    if unit == "base":
        return replace(cfg, base=width)
    if unit.startswith("stage"):
        i, j = _index(unit, "stage"), "ab".index(unit[-1])
        st = [list(s) for s in cfg.stages]
        st[i][j] = width
        return replace(cfg, stages=tuple(tuple(s) for s in st))
    if unit == "trunk":
        return replace(cfg, head=width)
    if unit.startswith("block"):
        b = list(cfg.blocks)
        b[_index(unit, "block")] = width
        return replace(cfg, blocks=tuple(b))
    if unit.startswith("conv"):
        w = list(cfg.widths)
        w[_index(unit, "conv")] = width
        return replace(cfg, widths=tuple(w))
    if unit == "feat":
        return replace(cfg, feat_dim=width)
    raise InputError(f"unknown pruning unit {unit!r}")


def _unit_root(model: nn.Module, unit: str) -> tuple[nn.Module, Callable]:
    """The layer whose OUTPUT channels root the unit's dependency group."""
    if isinstance(model, Generator):
        if unit == "base":
            # Rooted at the BatchNorm, not at fc: the graph then maps channel c to fc rows 16c..16c+15.
            return model.fc_bn, tp.prune_batchnorm_out_channels
        blk = model.blocks[_index(unit, "stage")]
        return blk["conv1" if unit.endswith("a") else "conv2"], tp.prune_conv_out_channels
    if isinstance(model, Enhancer):
        if unit == "trunk":  # head's output = the residual trunk: couples every block's add, body_tail and up's input
            return model.head, tp.prune_conv_out_channels
        return model.body[_index(unit, "block")].conv1, tp.prune_conv_out_channels
    if isinstance(model, Classifier):
        if unit == "feat":
            return model.fc[0], tp.prune_linear_out_channels
        convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
        return convs[_index(unit, "conv")], tp.prune_conv_out_channels
    raise ModelError(f"not a skugen model: {type(model).__name__}")


def protected_layers(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """(layers whose OUTPUT channels are never pruned, layers whose INPUT channels are never pruned)."""
    if isinstance(model, Generator):
        no_out = [model.embed, model.to_img]
        if model.attn is not None:
            no_out += [model.attn.q, model.attn.k]  # query/key width is 8 = round_to: nothing to remove
        return no_out, [model.embed, model.fc]     # fc's input is z + class embedding: the conditioning path
    if isinstance(model, Enhancer):
        return [model.up], [model.head]            # up: in_ch*scale^2 channels feed PixelShuffle
    if isinstance(model, Classifier):
        convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
        return [model.head], [convs[0]]
    raise ModelError(f"not a skugen model: {type(model).__name__}")

# ----------------------------------------------------------------------------- attention


class _SelfAttentionPruner(tp.pruner.BasePruningFunc):
    """SelfAttention is channel-preserving (out = x + gamma*attn(x)), like a BatchNorm.

    Removing block channel c removes input c of q, k and v, and output c of v
    (v's output is added to x, so it must keep the block's width). The q/k width
    is untouched. `prune_in_channels = prune_out_channels` tells the graph that
    input and output channels are the same set (torch-pruning's convention).
    """

    TARGET_MODULES = SelfAttention

    def prune_out_channels(self, layer: SelfAttention, idxs: Sequence[int]) -> nn.Module:
        for conv in (layer.q, layer.k, layer.v):
            tp.prune_conv_in_channels(conv, idxs)
        tp.prune_conv_out_channels(layer.v, idxs)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: SelfAttention) -> int:
        return layer.v.out_channels

    def get_in_channels(self, layer: SelfAttention) -> int:
        return layer.v.in_channels


@contextlib.contextmanager
def _attention_opaque(model: nn.Module):
    """Trace SelfAttention as one channel-preserving op.

    Traced as-is, its flatten/transpose/matmul/reshape chain sends torch-pruning's
    reshape index mapping into a loop that multiplies index lists until memory
    runs out. Our customized pruner handles the block's internals, so the graph
    only needs to see "x in, same channels out": a clone has exactly that autograd
    shape. The real forward is restored on exit.
    """
    mods = [m for m in model.modules() if isinstance(m, SelfAttention)]
    for m in mods:
        m.forward = lambda x: x.clone()  # instance attribute shadows the class method
    try:
        yield
    finally:
        for m in mods:
            del m.forward


def dependency_graph(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> tp.DependencyGraph:
    with _attention_opaque(model), torch.enable_grad():
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=example_inputs,
            customized_pruners={SelfAttention: _SelfAttentionPruner()})

# ----------------------------------------------------------------------------- MACs


def macs_of(cfg, size: int = 64) -> int:
    """Per-sample MACs of a config without allocating weights (meta device); SR: one size x size LR input."""
    with torch.device("meta"):
        m = models.build(cfg)
    ex = tuple(t.to("meta") for t in models.example_inputs(cfg, 1, size))
    return models.count_macs(m, ex)


def _macs_params(model: nn.Module) -> tuple[int, int]:
    cfg = models.config_from_model(model)
    return models.count_macs(model, models.example_inputs(cfg, 1, 64)), models.count_params(model)

# ----------------------------------------------------------------------------- prune


def keep_width(n: int, ratio: float, round_to: int = 8) -> int:
    """Channels kept when `ratio` of n is removed: the nearest multiple of round_to (0 if none would remain)."""
    return int(round(n * (1.0 - ratio) / round_to)) * round_to


def max_ratio(n: int, round_to: int = 8) -> float:
    """The ratio that leaves exactly round_to of n channels (the most a unit can be pruned)."""
    return max(0.0, 1.0 - round_to / n)


def _check_config(model: nn.Module, cfg: PruneConfig) -> dict[str, int]:
    """Validate `cfg` against `model`; return unit -> width to keep."""
    if cfg.importance not in IMPORTANCES:
        raise InputError(f"importance must be one of {IMPORTANCES}, got {cfg.importance!r}.")
    if cfg.round_to < 1:
        raise InputError(f"round_to must be >= 1, got {cfg.round_to}.")
    if cfg.ratio is not None and not (0.0 < cfg.ratio < 1.0):
        raise InputError(f"prune ratio must be in (0, 1) (the fraction of channels removed), got {cfg.ratio}. "
                         "Try 0.5 (half the channels, about a quarter of the MACs).")
    names = unit_names(model)
    for u, r in (cfg.per_layer or {}).items():
        if u not in names:
            raise InputError(f"unknown pruning unit {u!r} for a {model.cfg.family} model; units: {', '.join(names)}.")
        if not (0.0 <= r < 1.0):
            raise InputError(f"per-layer ratio for {u!r} must be in [0, 1), got {r}.")
    tcfg = models.config_from_model(model)
    keep = {}
    for u in names:
        n, r = unit_width(tcfg, u), cfg.ratio_for(u)
        if r == 0.0:
            keep[u] = n
            continue
        k = keep_width(n, r, cfg.round_to)
        if k < cfg.round_to:
            msg = f"pruning {r:.0%} of {u!r} ({n} channels) would leave fewer than {cfg.round_to} channels. "
            if cfg.per_layer and u in cfg.per_layer:
                msg += f"Use a ratio <= {max_ratio(n, cfg.round_to):.2f} for this layer"
            else:  # the uniform ratio: bounded by the narrowest unit
                narrow = min(names, key=lambda v: unit_width(tcfg, v))
                msg += (f"A uniform ratio must be <= {max_ratio(unit_width(tcfg, narrow), cfg.round_to):.2f} "
                        f"({narrow!r} has {unit_width(tcfg, narrow)} channels)")
            raise BudgetError(msg + ", or use --target-macs, which picks per-layer ratios within limits.")
        keep[u] = min(k, n)
    return keep


def _default_taylor_loss(model: nn.Module, seed: int) -> torch.Tensor:
    # Data-free first-order signal: how much each channel moves the output's energy.
    # Pass `loss_fn` to prune_channels for a task loss (e.g. distillation to the teacher).
    ex = models.example_inputs(models.config_from_model(model), 8, 32, seed=seed)
    return model(*ex).pow(2).mean()


def prune_channels(model: nn.Module, cfg: PruneConfig | None = None,
                   example_inputs: tuple[torch.Tensor, ...] | None = None,
                   loss_fn: Callable[[nn.Module], torch.Tensor] | None = None) -> PruneResult:
    """Physically remove channels from a COPY of `model` (the teacher is left untouched).

    Returns a student rebuilt from its own config, so what is returned is exactly
    what `ckpt.save_model` + `ckpt.load_model` will give back.
    """
    cfg = cfg or PruneConfig()
    _family(model)
    keep = _check_config(model, cfg)
    tcfg = models.config_from_model(model)
    macs0, params0 = _macs_params(model)

    # A copy: the caller's teacher is never modified. The graph is traced through autograd, so the
    # copy's parameters must require grad even if the caller froze the teacher's.
    student = copy.deepcopy(model).eval().requires_grad_(True)
    ex = example_inputs or models.example_inputs(tcfg, 2, 16)  # spatial size is irrelevant to the graph
    dg = dependency_graph(student, ex)
    no_out, no_in = protected_layers(student)
    if cfg.importance == "taylor":
        imp = tp.importance.TaylorImportance()
        student.zero_grad()
        with torch.enable_grad():
            (loss_fn or (lambda m: _default_taylor_loss(m, cfg.seed)))(student).backward()
    else:
        imp = tp.importance.MagnitudeImportance(p=1)  # group L1 norm over every coupled layer

    kept: dict[str, tuple[int, ...]] = {}
    for unit in unit_names(student):
        root, fn = _unit_root(student, unit)
        n = dg.get_out_channels(root)
        if keep[unit] >= n:
            kept[unit] = tuple(range(n))
            continue
        group = dg.get_pruning_group(root, fn, list(range(n)))
        _check_protected(group, dg, no_out, no_in, unit)
        scores = imp(group)                                     # (n,) one score per root channel
        drop = torch.argsort(scores)[: n - keep[unit]].tolist()  # least important first
        dg.get_pruning_group(root, fn, drop).prune()
        kept[unit] = tuple(sorted(set(range(n)) - set(drop)))
    student.zero_grad(set_to_none=True)

    # The Generator reads cfg.base in forward(): refresh the config from the pruned layers,
    # then rebuild a clean module (no torch-pruning state) and load the pruned weights into it.
    scfg = models.config_from_model(student)
    student.cfg = scfg
    rebuilt = models.build(scfg)
    rebuilt.load_state_dict(student.state_dict(), strict=True)
    rebuilt.eval()
    _verify(student, rebuilt, tcfg, scfg, keep, cfg.round_to)
    macs1, params1 = _macs_params(rebuilt)
    widths = {u: (unit_width(tcfg, u), unit_width(scfg, u)) for u in unit_names(scfg)}
    return PruneResult(rebuilt, scfg, tcfg, cfg, widths, kept, macs0, macs1, params0, params1)


def prune_uniform_to_macs(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], target: float,
                          keep: Sequence[str], macs_fn: Callable[[nn.Module, tuple], int], round_to: int = 8,
                          steps: int = 10) -> tuple[nn.Module, dict]:
    """A model without width units (a user's graph): torch-pruning's MetaPruner (L1 magnitude, one uniform
    ratio) at the smallest ratio whose MACs <= target x teacher, found by bisection.

    `keep` names the modules that stay whole (the output layer, the user's ignored_layers). Each probe
    prunes a fresh copy: a generic model has no config to rebuild from.
    """
    macs0 = macs_fn(model, example_inputs)

    def probe(ratio: float) -> tuple[nn.Module, int]:
        m = copy.deepcopy(model).eval()
        mods = dict(m.named_modules())
        ign = [mods[n] for n in keep]
        pr = tp.pruner.MetaPruner(m, example_inputs, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=ign, round_to=round_to)
        pr.step()
        try:
            return m, macs_fn(m, example_inputs)
        except Exception as e:  # e.g. a reshape with a hard-coded channel count in the user's forward
            raise ModelError(f"the model no longer runs after pruning at ratio {ratio:.2f} ({type(e).__name__}: "
                             f"{str(e)[:200]}). Usually a forward() with hard-coded channel counts (view/reshape); "
                             "list the layer that feeds it under 'ignored_layers' in the I/O spec.") from e

    lo, hi = 0.0, 0.95
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        m, macs = probe(mid)
        if macs <= target * macs0:
            best, hi = (m, macs, mid), mid
        else:
            lo = mid
    if best is None:
        m, macs = probe(hi)
        if macs > target * macs0:
            raise ModelError(f"pruning cannot reach {target:.0%} of the MACs (at ratio {hi} it is "
                             f"{macs / macs0:.0%}); the unprunable layers dominate. Raise --target-macs.")
        best = (m, macs, hi)
    m, macs, ratio = best
    ow = lambda x: getattr(x, "out_channels", None) or getattr(x, "out_features", None)  # noqa: E731
    widths = {n: [ow(a), ow(b)] for (n, a), (_, b) in zip(model.named_modules(), m.named_modules()) if ow(a)}
    return m, {"method": f"torch-pruning MetaPruner, L1 magnitude, one global ratio, round_to {round_to}",
               "widths": widths, "uniform_widths": len({round(b / a, 3) for a, b in widths.values() if b < a}) <= 1,
               "ratio": round(ratio, 4), "macs_before": macs0, "macs_after": macs, "macs_ratio": round(macs / macs0, 4),
               "params_before": models.count_params(model), "params_after": models.count_params(m)}


def _check_protected(group, dg, no_out, no_in, unit: str) -> None:
    # A unit list bug must never silently cut an I/O or conditioning layer: fail loudly (our bug, not the user's).
    for dep, _ in group:
        m = dep.target.module
        if dg.is_out_channel_pruning_fn(dep.handler) and any(m is p for p in no_out):
            raise AssertionError(f"unit {unit!r} would prune the outputs of protected layer {m}")
        if dg.is_in_channel_pruning_fn(dep.handler) and any(m is p for p in no_in):
            raise AssertionError(f"unit {unit!r} would prune the inputs of protected layer {m}")


@torch.no_grad()
def _verify(pruned: nn.Module, rebuilt: nn.Module, tcfg, scfg, keep: dict[str, int], round_to: int) -> None:
    for u, k in keep.items():
        w = unit_width(scfg, u)
        assert w == k, f"unit {u}: pruned to {w}, expected {k}"
        assert w % round_to == 0 or w == unit_width(tcfg, u), f"unit {u}: {w} channels is not a multiple of {round_to}"
    ex = models.example_inputs(scfg, 2, 16, seed=1)
    a, b = pruned(*ex), rebuilt(*ex)
    assert torch.allclose(a, b, atol=1e-5), "rebuilt student differs from the pruned module"
