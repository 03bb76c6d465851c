"""Bring your own model: a PyTorch factory, a TorchScript file or an ExportedProgram, plus an I/O spec.

    skugen import my_pkg.nets:make_upscaler --io-spec io.json --weights w.safetensors --out runs/mine
    skugen pipeline --model runs/mine --out runs/mine-deploy          # or --model REF --io-spec io.json

The I/O spec (JSON) tells skugen what the model *is* for the runtime, because skugen
does not know the user's architecture:

    {"kind": "enhancer", "in_ch": 3, "scale": 2, "input_range": [0, 255], "output_range": [0, 255]}
    {"kind": "generator", "z_dim": 64, "n_classes": 10, "conditioning": "index",
     "out_ch": 1, "image_size": 32, "output_range": [0, 1], "class_names": ["t-shirt", ...]}

A `CustomModel` wraps the user's module so it speaks skugen's contract (generator
(z, onehot) -> image in [-1, 1]; enhancer lr in [0, 1] -> hr in [0, 1]); the range and
conditioning conversions are plain tensor ops, so they export into the ONNX graph and
the runtime needs nothing new.

What each format gets:
- factory (an nn.Module from the user's code): the whole chain. Pruning runs torch-pruning's
  MetaPruner over the user's graph (widths rounded to 8; the layer that produces the output,
  found by tracing, and `ignored_layers` stay whole) to a MACs target, then output-level
  distillation (L1 to the teacher) on the kind's real data. The pruned student is saved as an
  ExportedProgram (torch.export), since its new widths no longer match the user's factory.
- torchscript / exported_program (frozen graphs): import, export to ONNX with a parity report,
  quality-gated INT8, bundle, verify, bench. Structured pruning needs the module structure, so
  `compress` says so and the pipeline skips it (the bundle holds the teacher itself).

Nothing is unpickled: factories are imported code, TorchScript and ExportedProgram have
their own loaders, weights are safetensors. Every model directory still holds
model.safetensors (the state dict, sha256 in the card) so the rest of skugen reads it
like any model; frozen formats keep their program file beside it (sha256 checked).
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from skugen.errors import InputError, ModelError
from skugen.io import atomic_file, sha256_file
from skugen.report import invocation

from . import ckpt, models
from .models import CustomConfig

FORMATS = ("factory", "torchscript", "exported_program")
DISTILL_STEPS = {"fast": 300, "full": 3000}  # output distillation of a pruned factory model, per preset
PROGRAM_FILE = {"torchscript": "model.ts", "exported_program": "model.pt2"}
TS_SUFFIXES = (".ts", ".jit", ".torchscript", ".pt", ".pth")
EP_SUFFIXES = (".pt2",)

# ----------------------------------------------------------------------------- I/O spec


def parse_io_spec(spec: dict | str | os.PathLike) -> dict:
    """Validate an I/O spec (dict or JSON file) -> the CustomConfig fields it sets. InputError says what is wrong."""
    if not isinstance(spec, dict):
        p = Path(spec)
        if not p.is_file():
            raise InputError(f"I/O spec {p} not found. Write a JSON file like "
                             '{"kind": "enhancer", "in_ch": 3, "scale": 2} (see docs/custom_models.md).')
        try:
            spec = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"I/O spec {p} is not valid JSON ({e}).") from e
    if not isinstance(spec, dict):
        raise InputError("the I/O spec must be a JSON object.")
    kind = spec.get("kind")
    if kind not in ("generator", "enhancer"):
        raise InputError(f"I/O spec 'kind' must be 'generator' or 'enhancer', got {kind!r}.")
    allowed = {"kind", "factory_kwargs", "output_range", "ignored_layers", "name"}
    allowed |= ({"z_dim", "n_classes", "class_names", "conditioning", "out_ch", "image_size"} if kind == "generator"
                else {"in_ch", "scale", "input_range"})
    extra = set(spec) - allowed
    if extra:
        raise InputError(f"I/O spec keys {sorted(extra)} are not valid for a {kind}; allowed: {sorted(allowed)}.")

    def pos_int(k: str, default: int | None = None) -> int:
        v = spec.get(k, default)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"I/O spec {k!r} must be a positive integer, got {v!r}.")
        return v

    def rng(k: str, default: tuple[float, float]) -> tuple[float, float]:
        v = spec.get(k, list(default))
        if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, float)) for x in v)
                or not v[1] > v[0]):
            raise InputError(f"I/O spec {k!r} must be [low, high] with high > low, got {v!r}.")
        return float(v[0]), float(v[1])

    out: dict = {"kind": kind, "ignored_layers": tuple(spec.get("ignored_layers", ())),
                 "factory_kwargs": dict(spec.get("factory_kwargs", {}))}
    if kind == "generator":
        out.update(z_dim=pos_int("z_dim"), n_classes=pos_int("n_classes"), out_ch=pos_int("out_ch", 3),
                   image_size=pos_int("image_size"), output_range=rng("output_range", (-1.0, 1.0)))
        cond = spec.get("conditioning", "onehot")
        if cond not in ("onehot", "index"):
            raise InputError(f"I/O spec 'conditioning' must be 'onehot' or 'index', got {cond!r}.")
        out["conditioning"] = cond
        names = spec.get("class_names") or [f"class-{i}" for i in range(out["n_classes"])]
        if len(names) != out["n_classes"] or not all(isinstance(n, str) and n for n in names):
            raise InputError(f"I/O spec 'class_names' must be {out['n_classes']} non-empty strings, got {names!r}.")
        out["class_names"] = tuple(names)
    else:
        out.update(in_ch=pos_int("in_ch", 3), scale=pos_int("scale", 2), input_range=rng("input_range", (0.0, 1.0)),
                   output_range=rng("output_range", (0.0, 1.0)))
        if out["in_ch"] != 3:
            raise InputError(f"enhancer in_ch must be 3 (RGB photos: the runtime's enhance path), got {out['in_ch']}.")
    return out

# ----------------------------------------------------------------------------- wrapper


class CustomModel(nn.Module):
    """A user's module behind skugen's I/O contract (conversions are exportable tensor ops)."""

    def __init__(self, net: nn.Module, cfg: CustomConfig):
        super().__init__()
        self.net = net
        self.cfg = cfg

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if c.kind == "generator":
            z, onehot = xs                                          # (B, z_dim), (B, n_classes)
            cond = onehot.argmax(1) if c.conditioning == "index" else onehot
            y = self.net(z, cond)
            lo, hi = c.output_range
            return y if (lo, hi) == (-1.0, 1.0) else (y - lo) * (2.0 / (hi - lo)) - 1.0
        (x,) = xs                                                   # (B, C, h, w) in [0, 1]
        lo, hi = c.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        y = self.net(x)
        lo, hi = c.output_range
        return y if (lo, hi) == (0.0, 1.0) else (y - lo) / (hi - lo)

    def train(self, mode: bool = True):
        if self.cfg.format == "factory":
            return super().train(mode)
        self.training = mode  # a frozen program has no train mode (torch.export's GraphModule refuses .train())
        return self

# ----------------------------------------------------------------------------- loading user objects


def detect_format(ref: str) -> str:
    p = Path(ref)
    if p.suffix in EP_SUFFIXES:
        return "exported_program"
    if p.suffix in TS_SUFFIXES:
        return "torchscript"
    if ":" in ref:
        return "factory"
    raise InputError(f"cannot tell what {ref!r} is. Give a factory 'package.module:function' or "
                     "'path/to/file.py:function', a TorchScript file (.ts/.pt from torch.jit.save) or an "
                     "ExportedProgram (.pt2 from torch.export.save).")


def import_factory(ref: str):
    """'pkg.mod:fn' or 'path/file.py:fn' -> the callable (imports the user's code)."""
    mod_name, _, fn = ref.rpartition(":")
    if not mod_name or not fn:
        raise InputError(f"factory reference {ref!r} must look like 'package.module:function' or 'file.py:function'.")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise InputError(f"factory file {path} not found.")
            spec = importlib.util.spec_from_file_location(f"skugen_user_{path.stem}", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            mod = importlib.import_module(mod_name)
    except InputError:
        raise
    except Exception as e:
        raise ModelError(f"importing {mod_name!r} failed: {type(e).__name__}: {e}") from e
    if not callable(getattr(mod, fn, None)):
        raise InputError(f"{mod_name!r} has no callable {fn!r}.")
    return getattr(mod, fn)


def load_program(path: Path, fmt: str) -> nn.Module:
    """A TorchScript module or an ExportedProgram's module from `path` (their own loaders; no unpickling)."""
    if not path.is_file():
        raise InputError(f"model file {path} not found.")
    try:
        if fmt == "exported_program":
            return torch.export.load(str(path)).module()
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        how = "torch.export.save(torch.export.export(model, args), path)" if fmt == "exported_program" \
            else "torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, args), path)"
        raise ModelError(f"{path} is not a loadable {fmt.replace('_', ' ')} ({type(e).__name__}: {str(e)[:200]}). "
                         f"skugen never unpickles whole models; save it with {how}, or give a factory.") from e


def _check_outputs(model: CustomModel) -> None:
    """Run the contract once and compare shapes/dtypes with the spec (a clear error beats a wrong bundle)."""
    c = model.cfg
    x = models.example_inputs(c, batch=2, size=24)
    try:
        with torch.no_grad():
            y = model.eval()(*x)
    except Exception as e:
        what = "(z (B, z_dim) float32, " + ("labels (B,) int64)" if c.conditioning == "index" else "onehot (B, K))") \
            if c.kind == "generator" else "(x (B, C, h, w) float32)"
        raise ModelError(f"the model failed on inputs shaped per the I/O spec {what}: {type(e).__name__}: "
                         f"{str(e)[:300]}. Fix the spec or the model's forward signature.") from e
    want = (2, c.out_ch, c.image_size, c.image_size) if c.kind == "generator" else (2, c.in_ch, 24 * c.scale, 24 * c.scale)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want or y.dtype != torch.float32:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ModelError(f"the model returned {got}; the I/O spec promises a float32 tensor shaped {want}. "
                         "Return one image tensor, and check out_ch/image_size (generator) or in_ch/scale (enhancer).")

# ----------------------------------------------------------------------------- model directories


def _card_common(model: CustomModel, name: str, extra: dict) -> dict:
    c = model.cfg
    ex = models.example_inputs(c, 1, 64)
    return {"name": name, "kind": c.kind, "params": models.count_params(model), "macs": count_macs(model, ex),
            "macs_input": "one 64x64 LR image" if c.kind == "enhancer" else "one sample", **extra}


def save_dir(model: CustomModel, out: str | os.PathLike, card: dict, program: Path | None = None) -> Path:
    """model.safetensors (+ the program file for frozen formats) + card.json, every file sha256-recorded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = model.cfg
    if c.format != "factory":
        if program is None:
            raise ModelError("a frozen-format custom model needs its program file")
        dst = out / PROGRAM_FILE[c.format]
        if program.resolve() != dst.resolve():
            with atomic_file(dst) as af:
                shutil.copyfile(program, af.tmp)
        card = {**card, "program": {"file": dst.name, "format": c.format, "sha256": sha256_file(dst)}}
    return ckpt.save_model(model, out, card)


def build_from_dir(d: Path, card: dict) -> CustomModel:
    """The module of a custom model directory, before its weights (ckpt.load_model loads those, as for any model)."""
    cfg = models.config_from_dict(card["config"])
    if cfg.format not in FORMATS:
        raise ModelError(f"{d}: unknown custom model format {cfg.format!r}; expected one of {FORMATS}.")
    if cfg.format == "factory":
        net = _call_factory(cfg)
    else:
        prog = d / (cfg.program or PROGRAM_FILE[cfg.format])
        want = card.get("program", {}).get("sha256")
        if want is not None and (not prog.is_file() or sha256_file(prog) != want):
            raise ModelError(f"{prog} is missing or does not match the sha256 in {d / 'card.json'}; restore it "
                             "or re-run `skugen import`.")
        net = load_program(prog, cfg.format)
    return CustomModel(net, cfg)


def _call_factory(cfg: CustomConfig) -> nn.Module:
    net = import_factory(cfg.source)(**cfg.factory_kwargs)
    if not isinstance(net, nn.Module):
        raise ModelError(f"factory {cfg.source!r} returned {type(net).__name__}, not a torch.nn.Module.")
    return net


def import_model(ref: str, io_spec: dict | str | os.PathLike, out: str | os.PathLike,
                 weights: str | os.PathLike | None = None, name: str | None = None) -> Path:
    """A user's model + I/O spec -> a skugen model directory that compress/export/pipeline take."""
    fields = parse_io_spec(io_spec)
    fmt = detect_format(ref)
    if fmt == "factory":
        src = ref
        mod, _, fn = ref.rpartition(":")
        if mod.endswith(".py"):  # pin the file: the model directory must load from any working directory
            src = f"{Path(mod).resolve()}:{fn}"
        cfg = CustomConfig(format="factory", source=src, **fields)
        net = _call_factory(cfg)
        program = None
    else:
        if weights is not None:
            raise InputError(f"--weights is for factories; a {fmt.replace('_', ' ')} file carries its own weights.")
        if fields["factory_kwargs"]:
            raise InputError("factory_kwargs in the I/O spec only apply to a factory reference.")
        program = Path(ref)
        cfg = CustomConfig(format=fmt, source=program.name, program=PROGRAM_FILE[fmt], **fields)
        net = load_program(program, fmt)
    model = CustomModel(net, cfg)
    if weights is not None:
        from safetensors.torch import load_file

        w = Path(weights)
        if not w.is_file() or w.suffix != ".safetensors":
            raise InputError(f"--weights must be an existing .safetensors file (no pickles), got {w}.")
        try:
            net.load_state_dict(load_file(str(w)), strict=True)
        except RuntimeError as e:
            raise ModelError(f"{w} does not fit the factory's module ({str(e)[:300]}).") from e
    _check_outputs(model)
    card = _card_common(model.eval(), name or Path(out).name, {
        "data": "user model (skugen import)",
        "import": {"ref": ref, "format": fmt, "io_spec": {k: v for k, v in asdict(cfg).items()
                                                          if k in fields},
                   "weights": str(weights) if weights else None,
                   "weights_sha256": sha256_file(Path(weights)) if weights else None},
        "command": invocation(),
    })
    return save_dir(model, out, card, program)

# ----------------------------------------------------------------------------- MACs


def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """MACs of one sample by torch's FLOP counter (aten level, so it sees TorchScript and torch.export graphs,
    which forward hooks cannot); conv/matmul FLOPs are 2 x MACs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(*[t[:1] for t in inputs])
    return int(fc.get_total_flops() // 2)

# ----------------------------------------------------------------------------- compress (factory format)


def output_layers(model: CustomModel) -> list[nn.Module]:
    """The weighted layer(s) whose output channels ARE the model's output: the last executed Conv/Linear
    (tracing one forward). Pruning them would change the output shape (or PixelShuffle's channel grouping)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model.eval()(*models.example_inputs(model.cfg, 2, 24))
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ModelError("the model has no Conv2d/Linear layer that runs in forward(); nothing to prune.")
    return [order[-1]]


def prune_to_macs(model: CustomModel, target: float, round_to: int = 8, steps: int = 10) -> tuple[CustomModel, dict]:
    """torch-pruning MetaPruner (L1 magnitude, uniform ratio) at the smallest ratio whose MACs <= target x teacher.

    Bisection on the ratio, each probe on a fresh copy (a generic model has no config to rebuild from).
    """
    import torch_pruning as tp

    if model.cfg.format != "factory":
        raise ModelError(f"structured pruning needs the module structure; a {model.cfg.format.replace('_', ' ')} is "
                         "a frozen graph. Import the model as a factory ('pkg.module:function') to compress it.")
    ex = models.example_inputs(model.cfg, 2, 24)
    macs0 = count_macs(model, ex)
    named = dict(model.named_modules())
    missing = [n for n in model.cfg.ignored_layers if f"net.{n}" not in named]
    if missing:
        raise InputError(f"ignored_layers {missing} are not modules of the model; names are relative to the "
                         "factory's module (as in named_modules()).")
    # traced once on the teacher; every probe's deep copy has the same module names
    out_names = [n for n, mod in named.items() if any(mod is x for x in output_layers(model))]
    keep = out_names + [f"net.{n}" for n in model.cfg.ignored_layers]

    def probe(ratio: float) -> tuple[CustomModel, int]:
        m = copy.deepcopy(model).eval()
        mods = dict(m.named_modules())
        ign = [mods[n] for n in keep]
        pr = tp.pruner.MetaPruner(m, ex, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
                                  ignored_layers=ign, round_to=round_to)
        pr.step()
        try:
            return m, count_macs(m, ex)
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
    return m, {"method": "torch-pruning MetaPruner, L1 magnitude, uniform ratio, round_to 8",
               "ratio": round(ratio, 4), "ignored": out_names + list(model.cfg.ignored_layers),
               "macs_before": macs0, "macs_after": macs, "macs_ratio": round(macs / macs0, 4),
               "params_before": models.count_params(model), "params_after": models.count_params(m)}


def _batch(cfg: CustomConfig, b: int, seed: int, paths: list | None) -> tuple[torch.Tensor, ...]:
    """One distillation batch of the kind's real input distribution."""
    if cfg.kind == "generator":
        return models.example_inputs(cfg, b, seed=seed)
    from . import data

    from .quantize import _lr_to_feed

    lr, _ = data.sr_pairs(paths, b, 48 * cfg.scale, seed=seed, cfg=data.DegradeConfig(scale=cfg.scale))
    return (torch.from_numpy(_lr_to_feed(lr)),)


def distill_outputs(teacher: CustomModel, student: CustomModel, steps: int, batch: int = 16, lr: float = 5e-4,
                    seed: int = 0, desc: str = "distill") -> dict:
    """Output-level distillation: L1(student(x), teacher(x)) on real inputs, Adam + cosine LR.

    The family students also match intermediate features; a generic model's layers have no
    known correspondence after pruning, so only the output is matched.
    """
    from .train import cosine_lr, progress

    paths = None
    if teacher.cfg.kind == "enhancer":
        from . import data

        paths = [p for p, _, _ in data.grocery_split("train")]
    teacher.eval()
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    hist = []
    bar = progress(steps, 0, desc)
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(lr, step, steps)
        x = _batch(teacher.cfg, batch, seed * 1_000_003 + step, paths)
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


@torch.no_grad()
def quality_vs_teacher(teacher: CustomModel, student: nn.Module, n: int = 64, seed: int = 4321) -> dict:
    """PSNR/SSIM of the student's output against the teacher's on held-out inputs (val photos / fixed latents)."""
    from skugen.metrics import psnr, ssim

    from .onnx_export import VALUE_RANGE, to_uint8_range

    paths = None
    if teacher.cfg.kind == "enhancer":
        from . import data

        paths = [p for p, _, _ in data.grocery_split("val")]
    x = _batch(teacher.cfg, n, seed, paths)
    vr = VALUE_RANGE[teacher.cfg.kind]
    a = to_uint8_range(teacher.eval()(*x).numpy(), vr)
    b = to_uint8_range(student.eval()(*x).numpy(), vr)
    return {"psnr_vs_teacher_db": psnr(b, a, crop_border=0), "ssim_vs_teacher": ssim(b, a, crop_border=0), "n": n,
            "inputs": "GroceryStore val degraded crops" if paths else f"N(0,1) latents seed {seed}"}


def freeze(model: CustomModel) -> tuple[nn.Module, CustomConfig]:
    """torch.export the wrapped model (contract conversions included) with dynamic batch (and h/w)."""
    c = model.cfg
    ex = models.example_inputs(c, 2, 24)
    B = torch.export.Dim("batch", min=1, max=4096)
    if c.kind == "generator":
        dyn = ({0: B}, {0: B})
    else:
        dyn = ({0: B, 2: torch.export.Dim("h", min=8, max=8192), 3: torch.export.Dim("w", min=8, max=8192)},)
    try:
        ep = torch.export.export(copy.deepcopy(model).eval(), ex, dynamic_shapes=(dyn,))  # (dyn,): forward(*xs)
    except Exception as e:
        raise ModelError(f"torch.export of the pruned student failed ({type(e).__name__}: {str(e)[:300]}); "
                         "the model's forward must not specialise on batch/height/width.") from e
    cfg = replace(c, format="exported_program", program=PROGRAM_FILE["exported_program"], source=f"pruned {c.source}",
                  conditioning="onehot", input_range=(0.0, 1.0),
                  output_range=(-1.0, 1.0) if c.kind == "generator" else (0.0, 1.0), ignored_layers=())
    return ep, cfg


def compress_custom(teacher_dir: str | os.PathLike, out: str | os.PathLike, target_macs: float = 0.25,
                    steps: int = 300, seed: int = 0, batch: int = 16) -> Path:
    """Prune (MetaPruner to a MACs target) + output distillation; writes a custom model directory."""
    if not 0.0 < target_macs < 1.0:
        raise InputError(f"--target-macs must be in (0, 1), got {target_macs}.")
    t0 = time.time()
    teacher_dir = Path(teacher_dir)
    teacher, tcard = ckpt.load_model(teacher_dir)
    if not isinstance(teacher, CustomModel):
        raise ModelError(f"{teacher_dir} is a skugen family model; use `skugen compress` for it.")
    torch.manual_seed(seed)
    student, prep = prune_to_macs(teacher, target_macs)
    t_prune = time.time() - t0
    dist = distill_outputs(teacher, student, steps, batch=batch, seed=seed, desc=f"distill {teacher_dir.name}")
    q_student = quality_vs_teacher(teacher, student)
    ep, scfg = freeze(student)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".student-export.{os.getpid()}.pt2"
    torch.export.save(ep, str(tmp))
    frozen = CustomModel(ep.module(), scfg)  # what build_from_dir will rebuild from the saved program
    card = _card_common(frozen, out.name, {
        "data": tcard.get("data"),
        "teacher": {"name": tcard.get("name"), "sha256": tcard.get("weights", {}).get("sha256"),
                    "macs": prep["macs_before"], "params": prep["params_before"]},
        "compress": {"target_macs_frac": target_macs, "seed": seed},
        "prune": prep, "distill": dist, "metrics": q_student,
        "macs_teacher": prep["macs_before"], "macs_ratio": prep["macs_ratio"],
        "wall_time_s": round(time.time() - t0, 1), "timings_s": {"prune_s": round(t_prune, 1)},
        "command": invocation(),
    })
    try:
        return save_dir(frozen, out, card, tmp)
    finally:
        tmp.unlink(missing_ok=True)

# ----------------------------------------------------------------------------- TorchScript export helper


class _ScriptEnhancer(nn.Module):
    def __init__(self, net: nn.Module, in_range: tuple[float, float], out_range: tuple[float, float]):
        super().__init__()
        self.net = net
        self.in_lo, self.in_span = float(in_range[0]), float(in_range[1] - in_range[0])
        self.out_lo, self.out_span = float(out_range[0]), float(out_range[1] - out_range[0])

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return (self.net(lr * self.in_span + self.in_lo) - self.out_lo) / self.out_span


class _ScriptGenerator(nn.Module):
    def __init__(self, net: nn.Module, index: bool, out_range: tuple[float, float]):
        super().__init__()
        self.net = net
        self.index = index
        self.out_lo, self.out_span = float(out_range[0]), float(out_range[1] - out_range[0])

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        if self.index:
            y = self.net(z, onehot.argmax(1))
        else:
            y = self.net(z, onehot)
        return (y - self.out_lo) * (2.0 / self.out_span) - 1.0


def scripted(model: CustomModel) -> torch.jit.ScriptModule:
    """The TorchScript-format wrapper as ONE ScriptModule, for the ONNX exporter.

    The TorchScript ONNX exporter cannot trace a Python module that calls a loaded
    ScriptModule ("not part of the active trace"), but it exports a ScriptModule whole, so
    the contract conversions are scripted around the user's module instead.
    """
    c = model.cfg
    if c.kind == "enhancer":
        w = _ScriptEnhancer(model.net, c.input_range, c.output_range)
    else:
        w = _ScriptGenerator(model.net, c.conditioning == "index", c.output_range)
    return torch.jit.script(w.eval())
