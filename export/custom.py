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
import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn as nn

from skugen.errors import InputError, ModelError
from skugen.io import atomic_file, sha256_file
from skugen.report import invocation

from . import ckpt, models, userdata
from .models import PROGRAM_FILE, CustomConfig, CustomModel, call_factory, load_program
from .onnx_export import VALUE_RANGE, lr_to_feed

DISTILL_STEPS = {"fast": 300, "full": 3000}  # output distillation of a pruned factory model, per preset
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
    allowed = {"kind", "factory_kwargs", "output_range", "ignored_layers", "name", "data"}  # data: userdata.for_import
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


def card_common(model: CustomModel, name: str, extra: dict) -> dict:
    c = model.cfg
    ex = models.example_inputs(c, 1, 64)
    return {"name": name, "kind": c.kind, "params": models.count_params(model), "macs": models.count_macs(model, ex),
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


def import_model(ref: str, io_spec: dict | str | os.PathLike, out: str | os.PathLike,
                 weights: str | os.PathLike | None = None, name: str | None = None, data=None) -> Path:
    """A user's model + I/O spec -> a skugen model directory that compress/export/pipeline take.

    `data` (--data, or the spec's "data" key): the user's data (userdata.DataSpec) for distillation, the gates
    and the report; recorded in card["data"]."""
    fields = parse_io_spec(io_spec)
    data_spec = userdata.for_import(io_spec, data)
    fmt = detect_format(ref)
    if fmt == "factory":
        src = ref
        mod, _, fn = ref.rpartition(":")
        if mod.endswith(".py"):  # pin the file: the model directory must load from any working directory
            src = f"{Path(mod).resolve()}:{fn}"
        cfg = CustomConfig(format="factory", source=src, **fields)
        net = call_factory(cfg)
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
    card = card_common(model.eval(), name or Path(out).name, {
        "data": userdata.card_entry(data_spec),
        "import": {"ref": ref, "format": fmt, "io_spec": {k: v for k, v in asdict(cfg).items()
                                                          if k in fields},
                   "weights": str(weights) if weights else None,
                   "weights_sha256": sha256_file(Path(weights)) if weights else None},
        "command": invocation(),
    })
    return save_dir(model, out, card, program)

# ----------------------------------------------------------------------------- what compress needs to know


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


def check_prunable(model: CustomModel) -> None:
    """ModelError unless structured pruning can edit this model (a factory, its ignored_layers real modules)."""
    if model.cfg.format != "factory":
        raise ModelError(f"structured pruning needs the module structure; a {model.cfg.format.replace('_', ' ')} is "
                         "a frozen graph. Import the model as a factory ('pkg.module:function') to compress it.")
    named = dict(model.named_modules())
    missing = [n for n in model.cfg.ignored_layers if f"net.{n}" not in named]
    if missing:
        raise InputError(f"ignored_layers {missing} are not modules of the model; names are relative to the "
                         "factory's module (as in named_modules()).")


def input_paths(cfg: CustomConfig, split: str) -> list | None:
    """The photos an enhancer's inputs are cut from (GroceryStore `split`); None for a generator."""
    if cfg.kind != "enhancer":
        return None
    from . import data

    return [p for p, _, _ in data.grocery_split(split)]


def input_batch(cfg: CustomConfig, b: int, seed: int, paths: list | None) -> tuple[torch.Tensor, ...]:
    """One batch of the kind's real input distribution (latents, or degraded crops of `paths`)."""
    if cfg.kind == "generator":
        return models.example_inputs(cfg, b, seed=seed)
    from . import data

    lr, _ = data.sr_pairs(paths, b, 48 * cfg.scale, seed=seed, cfg=data.DegradeConfig(scale=cfg.scale))
    return (torch.from_numpy(lr_to_feed(lr)),)


@torch.no_grad()
def quality_vs_teacher(teacher: CustomModel, student: nn.Module, n: int = 64, seed: int = 4321) -> dict:
    """PSNR/SSIM of the student's output against the teacher's on held-out inputs (val photos / fixed latents)."""
    from skugen.evaluate import pair_quality, to_255

    paths = input_paths(teacher.cfg, "val")
    x = input_batch(teacher.cfg, n, seed, paths)
    vr = VALUE_RANGE[teacher.cfg.kind]
    a = to_255(teacher.eval()(*x).numpy(), vr)
    b = to_255(student.eval()(*x).numpy(), vr)
    q = pair_quality(b, a)  # RGB (or grey), no crop: the student against its teacher, pixel for pixel
    return {"psnr_vs_teacher_db": q["psnr"].value, "ssim_vs_teacher": q["ssim"].value, "n": n,
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
