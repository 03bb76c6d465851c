"""The model families skugen ships and compresses.

Every model is built from a frozen config that lists *every* conv width
explicitly, so a physically pruned model (torch-pruning removes channels) can
be described by a new config read back from the module (`config_from_model`),
saved as JSON next to safetensors weights, and rebuilt without pickle.

Deployment rules baked in (see DESIGN.md traps):
- no ConvTranspose: upsampling is nearest + conv (cGAN) or PixelShuffle (SR);
- channel counts are multiples of 8;
- only ops that ONNX Runtime and TensorRT both support.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from skugen.errors import InputError, ModelError, SkugenError
from skugen.io import sha256_file

from .diffusion import DiffusionConfig, DiffusionModel

# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ClassifierConfig:
    family: str = "classifier"
    in_ch: int = 1
    n_classes: int = 10
    widths: tuple[int, ...] = (32, 32, 64, 64, 128)  # conv outs; pool after the 2nd and 4th: 32->16->8 px
    feat_dim: int = 128                               # penultimate features = the FID-proxy space
    image_size: int = 32


@dataclass(frozen=True)
class CGANConfig:
    family: str = "cgan"
    z_dim: int = 128
    n_classes: int = 10
    embed_dim: int = 32          # class embedding (the conditioning path; never pruned)
    base: int = 256              # channels of the 4x4 seed
    # (conv a, conv b) per stage; each stage is nearest-x2 + two 3x3 convs: 4->8->16->32 px
    stages: tuple[tuple[int, int], ...] = ((128, 128), (64, 64), (32, 32))
    attention: bool = True       # SAGAN self-attention after the 16x16 stage
    attn_qk: int = 8             # query/key width of the attention block
    out_ch: int = 1
    image_size: int = 32


@dataclass(frozen=True)
class SRConfig:
    family: str = "sr"
    in_ch: int = 3
    scale: int = 2
    head: int = 48                          # first conv width (= residual trunk width)
    blocks: tuple[int, ...] = (48,) * 6     # inner width of each residual block (prunable)
    res_scale: float = 0.2                  # EDSR residual scaling: stabilises training without BN


@dataclass(frozen=True)
class CustomConfig:
    """A user's own model (`skugen import`): the I/O contract skugen needs, not the architecture.

    The architecture lives in the user's code (format "factory": `pkg.mod:fn` or `file.py:fn`) or in a
    frozen program file (format "torchscript" / "exported_program"); see skugen.export.custom.
    """
    family: str = "custom"
    kind: str = "enhancer"                  # "generator" | "enhancer": what the runtime does with it
    format: str = "factory"                 # "factory" (an nn.Module: prunable) | "torchscript" | "exported_program"
    source: str = ""                        # factory reference, or the imported program's original file name
    program: str | None = None              # frozen formats: the program file inside the model directory
    factory_kwargs: dict = field(default_factory=dict)
    # generator contract
    z_dim: int = 0
    n_classes: int = 0
    class_names: tuple[str, ...] = ()
    conditioning: str = "onehot"            # what the user's forward takes: "onehot" float (B, K) or "index" int64 (B,)
    out_ch: int = 3
    image_size: int = 0
    # enhancer contract
    in_ch: int = 3
    scale: int = 2
    input_range: tuple[float, float] = (0.0, 1.0)   # the user's input range (skugen feeds [0, 1])
    # both
    output_range: tuple[float, float] = (0.0, 1.0)  # the user's output range (mapped to skugen's: [-1,1] / [0,1])
    ignored_layers: tuple[str, ...] = ()    # module names pruning must keep whole (besides the detected output layer)


CONFIGS = {"classifier": ClassifierConfig, "cgan": CGANConfig, "sr": SRConfig, "custom": CustomConfig,
           "diffusion": DiffusionConfig}


def config_to_dict(cfg) -> dict:
    return asdict(cfg)


def config_from_dict(d: dict):
    fam = d.get("family")
    if fam not in CONFIGS:
        raise ModelError(f"unknown model family {fam!r}; expected one of {sorted(CONFIGS)}. "
                         "Is this a skugen model directory?")
    cls = CONFIGS[fam]
    kw = {}
    names = {f.name for f in fields(cls)}
    for k, v in d.items():
        if k not in names:
            raise ModelError(f"config field {k!r} is not valid for family {fam!r}; the model was saved by a "
                             "different skugen version.")
        kw[k] = _tuplify(v)
    return cls(**kw)


def _tuplify(v):
    if isinstance(v, list):
        return tuple(_tuplify(x) for x in v)
    return v

# ----------------------------------------------------------------------------- classifier


class Classifier(nn.Module):
    """Small CNN on 32x32 grey in [-1,1]. `features()` gives the FID-proxy embedding."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = cfg.in_ch
        for i, w in enumerate(cfg.widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2))
            c = w
        self.body = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c, cfg.feat_dim), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(cfg.feat_dim, cfg.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 32, 32) -> (B, feat_dim)
        h = self.body(x).mean((2, 3))
        return self.fc(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # -> logits (B, n_classes)
        return self.head(self.drop(self.features(x)))

# ----------------------------------------------------------------------------- cGAN


class SelfAttention(nn.Module):
    """SAGAN self-attention: exports to ONNX as 1x1 Convs + MatMul + Softmax (TensorRT-friendly)."""

    def __init__(self, ch: int, qk: int):
        super().__init__()
        self.q = nn.Conv2d(ch, qk, 1)
        self.k = nn.Conv2d(ch, qk, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.gamma = nn.Parameter(torch.zeros(1))  # starts as identity: attention is learned in gradually
        self.scale_folded = False  # export folds 1/sqrt(qk) into q's weights: no Div on the (HW, HW) matrix

    def fold_scale(self) -> None:
        s = 1.0 / math.sqrt(self.q.out_channels)
        with torch.no_grad():
            self.q.weight.mul_(s)
            self.q.bias.mul_(s)
        self.scale_folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)          # (B, HW, qk)
        k = self.k(x).flatten(2)                          # (B, qk, HW)
        logits = q @ k if self.scale_folded else q @ k / math.sqrt(q.shape[-1])
        attn = torch.softmax(logits, dim=-1)              # (B, HW, HW)
        v = self.v(x).flatten(2)                          # (B, C, HW)
        out = (v @ attn.transpose(1, 2)).reshape(b, -1, h, w)
        return x + self.gamma * out


class Generator(nn.Module):
    """Class-conditional generator: (z (B, z_dim), onehot (B, n_classes)) -> image (B, 1, 32, 32) in [-1, 1].

    Labels enter as a one-hot float tensor rather than int64 indices: a MatMul
    instead of a Gather keeps the ONNX graph float-only, which INT8 tooling and
    TensorRT handle more uniformly.
    """

    def __init__(self, cfg: CGANConfig = CGANConfig()):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.n_classes, cfg.embed_dim, bias=False)  # conditioning path
        self.fc = nn.Linear(cfg.z_dim + cfg.embed_dim, cfg.base * 16)
        self.fc_bn = nn.BatchNorm2d(cfg.base)
        blocks = []
        c = cfg.base
        for a, b in cfg.stages:
            blocks.append(nn.ModuleDict({
                "conv1": nn.Conv2d(c, a, 3, padding=1, bias=False), "bn1": nn.BatchNorm2d(a),
                "conv2": nn.Conv2d(a, b, 3, padding=1, bias=False), "bn2": nn.BatchNorm2d(b),
            }))
            c = b
        self.blocks = nn.ModuleList(blocks)
        self.attn_at = 1  # after the 2nd stage = 16x16
        self.attn = SelfAttention(cfg.stages[self.attn_at][1], cfg.attn_qk) if cfg.attention else None
        self.to_img = nn.Conv2d(c, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        e = self.embed(onehot)                                  # (B, embed_dim)
        h = self.fc(torch.cat([z, e], 1)).view(z.shape[0], self.cfg.base, 4, 4)
        h = F.relu(self.fc_bn(h))                               # (B, base, 4, 4)
        for i, blk in enumerate(self.blocks):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # no ConvTranspose: no checkerboard, fast INT8
            h = F.relu(blk["bn1"](blk["conv1"](h)))
            h = F.relu(blk["bn2"](blk["conv2"](h)))
            if self.attn is not None and i == self.attn_at:
                h = self.attn(h)
        return torch.tanh(self.to_img(h))                       # (B, 1, 32, 32)


class Discriminator(nn.Module):
    """Spectral-norm projection discriminator (Miyato & Koyama 2018). Training only; never exported."""

    def __init__(self, n_classes: int = 10, ch: int = 32, in_ch: int = 1):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.convs = nn.ModuleList([
            sn(nn.Conv2d(in_ch, ch, 3, 1, 1)), sn(nn.Conv2d(ch, ch, 4, 2, 1)),            # 32 -> 16
            sn(nn.Conv2d(ch, ch * 2, 3, 1, 1)), sn(nn.Conv2d(ch * 2, ch * 2, 4, 2, 1)),   # 16 -> 8
            sn(nn.Conv2d(ch * 2, ch * 4, 3, 1, 1)), sn(nn.Conv2d(ch * 4, ch * 4, 4, 2, 1)),  # 8 -> 4
        ])
        self.lin = sn(nn.Linear(ch * 4, 1))
        self.proj = sn(nn.Embedding(n_classes, ch * 4))
        self.aux = nn.Linear(ch * 4, n_classes)  # AC-GAN head: pushes G towards clearly class-specific products

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for c in self.convs:
            h = F.leaky_relu(c(h), 0.1)
        return h.sum((2, 3))                                   # (B, 4ch)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.lin(h).squeeze(1) + (self.proj(y) * h).sum(1)

    def forward_aux(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(projection logit (B,), auxiliary class logits (B, n_classes)) from one pass."""
        h = self.features(x)
        return self.lin(h).squeeze(1) + (self.proj(y) * h).sum(1), self.aux(h)

# ----------------------------------------------------------------------------- SR x2


class ResBlock(nn.Module):
    def __init__(self, ch: int, inner: int, res_scale: float):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, inner, 3, padding=1)
        self.conv2 = nn.Conv2d(inner, ch, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        # res_scale == 1.0 after export folds it into conv2 (see onnx_export.fold_batchnorm): no Mul
        # between conv2 and the Add, so ONNX Runtime can fuse the int8 Conv and Add (QLinearConv/QLinearAdd)
        return x + (y if self.res_scale == 1.0 else self.res_scale * y)

    def fold_res_scale(self) -> None:
        """Move the constant residual scale into conv2's weights and bias (exact up to float rounding)."""
        if self.res_scale != 1.0:
            with torch.no_grad():
                self.conv2.weight.mul_(self.res_scale)
                if self.conv2.bias is not None:
                    self.conv2.bias.mul_(self.res_scale)
            self.res_scale = 1.0


class Enhancer(nn.Module):
    """EDSR-style x2 enhancer: LR (B, 3, h, w) in [0,1] -> HR (B, 3, 2h, 2w) in [0,1] (unclamped; post clamps).

    A global bilinear skip lets the trunk learn only the residual detail, which
    trains much faster on 2 CPU cores; PixelShuffle does the learned upsampling.
    """

    def __init__(self, cfg: SRConfig = SRConfig()):
        super().__init__()
        self.cfg = cfg
        self.head = nn.Conv2d(cfg.in_ch, cfg.head, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(cfg.head, w, cfg.res_scale) for w in cfg.blocks])
        self.body_tail = nn.Conv2d(cfg.head, cfg.head, 3, padding=1)
        self.up = nn.Conv2d(cfg.head, cfg.in_ch * cfg.scale ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)                                       # (B, C, h, w)
        f = f + self.body_tail(self.body(f))
        skip = F.interpolate(x, scale_factor=float(self.cfg.scale), mode="bilinear", align_corners=False)
        return skip + self.shuffle(self.up(f))                 # (B, 3, 2h, 2w)

# ----------------------------------------------------------------------------- user models (skugen import)
# A user's module behind skugen's I/O contract, and how it is rebuilt from its model directory; the
# import itself (I/O spec, card) is skugen.export.custom.

FORMATS = ("factory", "torchscript", "exported_program")
PROGRAM_FILE = {"torchscript": "model.ts", "exported_program": "model.pt2"}


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


def build_user_model(d: Path, card: dict) -> CustomModel:
    """The module of a custom model directory, before its weights (ckpt.load_model loads those, as for any model)."""
    cfg = config_from_dict(card["config"])
    if cfg.format not in FORMATS:
        raise ModelError(f"{d}: unknown custom model format {cfg.format!r}; expected one of {FORMATS}.")
    if cfg.format == "factory":  # from the directory's copy of the factory source (skugen.export.custom)
        net = factory_from_dir(d, card, cfg)
    else:
        prog = d / (cfg.program or PROGRAM_FILE[cfg.format])
        want = card.get("program", {}).get("sha256")
        if want is not None and (not prog.is_file() or sha256_file(prog) != want):
            raise ModelError(f"{prog} is missing or does not match the sha256 in {d / 'card.json'}; restore it "
                             "or re-run `skugen import`.")
        net = load_program(prog, cfg.format)
    return CustomModel(net, cfg)


def call_factory(cfg: CustomConfig) -> nn.Module:
    net = import_factory(cfg.source)(**cfg.factory_kwargs)
    if not isinstance(net, nn.Module):
        raise ModelError(f"factory {cfg.source!r} returned {type(net).__name__}, not a torch.nn.Module.")
    return net


# ----------------------------------------------------------------------------- build / introspect


def build(cfg) -> nn.Module:
    if isinstance(cfg, dict):
        cfg = config_from_dict(cfg)
    if isinstance(cfg, ClassifierConfig):
        return Classifier(cfg)
    if isinstance(cfg, CGANConfig):
        return Generator(cfg)
    if isinstance(cfg, SRConfig):
        return Enhancer(cfg)
    if isinstance(cfg, DiffusionConfig):
        return DiffusionModel(cfg)
    if isinstance(cfg, CustomConfig):
        raise ModelError("a user's model is rebuilt from its directory (build_from_card), not a config.")
    raise ModelError(f"cannot build a model from {type(cfg).__name__}")


def build_from_card(d: Path, card: dict) -> nn.Module:
    """The module a model directory's card describes, before its weights (a family's config, or a user's
    code / program file beside the card)."""
    cfg = config_from_dict(card["config"])
    if isinstance(cfg, CustomConfig):
        return build_user_model(d, card)
    return build(cfg)


def config_from_model(model: nn.Module):
    """Read the (possibly pruned) channel counts back from a module into a config."""
    cfg = model.cfg
    if isinstance(cfg, CustomConfig):  # a user's model: its architecture is its code or program, not a config
        return cfg
    if isinstance(model, Generator):
        stages = tuple((b["conv1"].out_channels, b["conv2"].out_channels) for b in model.blocks)
        qk = model.attn.q.out_channels if model.attn is not None else cfg.attn_qk
        return replace(cfg, base=model.fc_bn.num_features, stages=stages, attn_qk=qk)
    if isinstance(model, Enhancer):
        return replace(cfg, head=model.head.out_channels, blocks=tuple(b.conv1.out_channels for b in model.body))
    if isinstance(model, DiffusionModel):
        u = model.denoiser
        return replace(cfg, inner=tuple(r.conv1.out_channels for r in u.res),
                       attn_dim=tuple(a.q.out_channels for a in u.attn))
    if isinstance(model, Classifier):
        convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
        return replace(cfg, widths=tuple(c.out_channels for c in convs), feat_dim=model.fc[0].out_features)
    raise ModelError(f"not a skugen model: {type(model).__name__}")


def example_inputs(cfg, batch: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    if isinstance(cfg, CGANConfig):
        z = torch.randn(batch, cfg.z_dim, generator=g)
        y = torch.randint(0, cfg.n_classes, (batch,), generator=g)
        return z, F.one_hot(y, cfg.n_classes).float()
    if isinstance(cfg, SRConfig):
        return (torch.rand(batch, cfg.in_ch, size, size, generator=g),)
    if isinstance(cfg, ClassifierConfig):
        return (torch.rand(batch, cfg.in_ch, cfg.image_size, cfg.image_size, generator=g) * 2 - 1,)
    if isinstance(cfg, DiffusionConfig):  # DiffusionModel.forward: (x_t, t, tokens); tokens [BOS, w, w, EOS, PAD..]
        tokens = torch.zeros(batch, cfg.context, dtype=torch.int64)
        tokens[:, 0], tokens[:, 1:3], tokens[:, 3] = 1, torch.randint(4, cfg.vocab_size, (batch, 2), generator=g), 2
        return (torch.randn(batch, cfg.channels, cfg.image_size, cfg.image_size, generator=g),
                torch.rand(batch, generator=g), tokens)
    if isinstance(cfg, CustomConfig):  # skugen's side of the contract (the wrapper converts for the user's model)
        if cfg.kind == "generator":
            z = torch.randn(batch, cfg.z_dim, generator=g)
            y = torch.randint(0, cfg.n_classes, (batch,), generator=g)
            return z, F.one_hot(y, cfg.n_classes).float()
        return (torch.rand(batch, cfg.in_ch, size, size, generator=g),)
    raise ModelError(f"no example inputs for {type(cfg).__name__}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates for ONE sample, counted by forward hooks on the real module (not estimated).

    Conv/Linear are counted exactly; the attention MatMuls are counted by the
    SelfAttention hook. torch-pruning's counter misses the matmuls, hence our own. A user's model
    (CustomConfig) is counted by torch's aten-level FLOP counter (hooks do not fire in frozen graphs).
    """
    if isinstance(getattr(model, "cfg", None), (CustomConfig, DiffusionConfig)):  # diffusion: one denoiser step
        return flop_macs(model, inputs)
    total = 0

    def conv_hook(m, i, o):
        nonlocal total
        total += o.numel() // o.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, i, o):
        nonlocal total
        total += o.numel() // o.shape[0] * m.in_features

    def attn_hook(m, i, o):
        nonlocal total
        x = i[0]
        hw = x.shape[2] * x.shape[3]
        total += hw * hw * m.q.out_channels + hw * hw * m.v.out_channels  # QK^T and attn @ V

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, SelfAttention):
            hooks.append(m.register_forward_hook(attn_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(*[t[:1] for t in inputs])
    model.train(was_training)
    for h in hooks:
        h.remove()
    return int(total)


def flop_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """MACs of one sample by torch's FLOP counter (aten level, so it sees TorchScript and torch.export graphs,
    which forward hooks cannot); conv/matmul FLOPs are 2 x MACs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(*[t[:1] for t in inputs])
    return int(fc.get_total_flops() // 2)

# ----------------------------------------------------------------------------- a model directory's copied factory source


def _dotted(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def factory_from_dir(d: Path, card: dict, cfg: CustomConfig) -> nn.Module:
    """The factory's module built from the model directory's copy of its source (sha256-checked)."""
    rec = card.get("source")
    if not rec:  # written before model directories carried their source: the recorded reference
        return call_factory(cfg)
    root = d / rec["dir"]
    for rel, want in rec["files"].items():
        f = root / rel
        got = sha256_file(f) if f.is_file() else None
        if got != want:
            what = "is missing" if got is None else f"has sha256 {got[:12]}..., not the recorded {want[:12]}..."
            raise ModelError(f"{f} {what}: `skugen import` copied it there from {Path(rec['root']) / rel} "
                             f"(factory {rec['module']}:{rec['function']}). Restore the model directory, or run "
                             f"`skugen import` again to take the current source.")
    return _build_from(root, rec["module"], rec["function"], rec["files"], cfg.factory_kwargs)


def _build_from(root: Path, module: str, function: str, files, kwargs: dict) -> nn.Module:
    """Import `module` from `root` (its local modules from there too, not from sys.modules) and call the factory."""
    rec = {"module": module, "function": function}
    names = {_dotted(Path(rel)) for rel in files}
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n in names or n.split(".")[0] in names}
    sys.path.insert(0, str(root))
    try:  # the copy, not whatever same-named module is already imported or on sys.path
        fn = getattr(importlib.import_module(rec["module"]), rec["function"], None)
        if not callable(fn):
            raise InputError(f"{root / rec['module'].replace('.', '/')}.py has no callable {rec['function']!r}. "
                             "Check the function name after ':' in the factory reference.")
        net = fn(**kwargs)
    except SkugenError:
        raise
    except Exception as e:
        raise ModelError(f"importing or calling your factory {rec['module']}:{rec['function']} (in {root}) raised "
                         f"{type(e).__name__}: {e}. "
                         "Fix the factory (or its kwargs), then run `skugen import` again.") from e
    finally:
        sys.path.remove(str(root))
        for n in [n for n in sys.modules if n in names or n.split(".")[0] in names]:
            del sys.modules[n]  # the built module keeps its code; the user's own imports stay as they were
        sys.modules.update(saved)
    if not isinstance(net, nn.Module):
        raise ModelError(f"factory {rec['module']}:{rec['function']} returned {type(net).__name__}, not a "
                         "torch.nn.Module. Return the model from the factory.")
    return net
