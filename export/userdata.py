"""Bring your own data: the user's images (or model inputs) for distillation, calibration, the gates and the report.

    spec = parse_data("photos/")                      # an image folder (HR photos), degradation "bicubic"
    spec = parse_data("pairs/")                       # DIR/lr + DIR/hr: the user's own (LR, HR) pairs
    spec = parse_data("inputs.npz")                   # arrays: lr+hr (enhancer) or z+labels|onehot (generator)
    spec = parse_data("my_pkg.data:make_set")         # a factory returning such a dict of arrays
    gs = gate_sets(spec, "enhancer", scale=2, tile=128)   # calib feeds + gate EvalSet + confirm EvalSet

A `DataSpec` is plain JSON (`to_dict`), so it lives in the model card (card["data"]["spec"]) and the
pipeline's cache key hashes it. Every source is split reproducibly into four disjoint parts
(SPLIT_FRACTIONS): train (distillation), calib (INT8 calibration), gate (what the INT8/FP16 gates
choose on) and confirm (a second held-out draw that takes no part in any choice). Images and pairs
are split by the sha256 of their relative file name (seeded), so a file keeps its part from run to run
and machine to machine; arrays by a seeded permutation of the sample index. The gate's draws and
calibration never share an image or a sample.

The gate measures at the size the model is deployed at: LR crops of the bundle's tile (128 px) where the
images are big enough (the grocery-sr2x student measured at 48 px LR crops hid a 1.5 dB INT8 loss that
showed at 128 px tiles), else the largest crop every image of the part allows.
"""
from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skugen.errors import DataError, InputError

from . import data

DEGRADATIONS = ("bicubic", "skugen-realistic")
DEFAULT_DEGRADATION = "bicubic"  # an image folder: HR photos, LR = plain bicubic x1/scale (PIL)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SPLIT_FRACTIONS = {"train": 0.6, "calib": 0.15, "gate": 0.15, "confirm": 0.1}
PARTS = tuple(SPLIT_FRACTIONS)
BICUBIC_WARN_DB = 1.0  # FP32 more than this below bicubic: the model is probably fed the wrong range or data
_HINT = ("Give --data an image folder (HR photos), a folder with lr/ and hr/ (your own pairs, same file names), "
         "an .npz of model inputs, or a 'module:function' dataset factory (docs/custom_models.md, 'Your data').")


class BaselineWarning(UserWarning):
    """The FP32 model is well below the bicubic baseline (enhancer) or far from its teacher (generator)."""


@dataclass(frozen=True)
class DataSpec:
    """Where the user's data comes from. `path` is absolute for folders/files, 'module:function' for a factory."""

    kind: str                      # "images" | "pairs" | "npz" | "factory"
    path: str
    degradation: str | None = None  # images only: "bicubic" | "skugen-realistic"
    seed: int = 0                   # split + crop seed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(**{k: d[k] for k in ("kind", "path", "degradation", "seed") if k in d})

    def describe(self) -> str:
        if self.kind == "images":
            return f"your images {self.path} (degradation: {self.degradation})"
        if self.kind == "pairs":
            return f"your LR/HR pairs {self.path}"
        return f"your {'arrays' if self.kind == 'npz' else 'dataset factory'} {self.path}"


def parse_data(value: "str | os.PathLike | dict | DataSpec", degradation: str | None = None,
               base: str | os.PathLike | None = None, seed: int | None = None) -> DataSpec:
    """--data DIR|FILE.npz|module:function (or the I/O spec's {"path": ..., "degradation": ...}) -> DataSpec.

    Relative paths are taken from `base` (the I/O spec's folder) when given, else the working directory."""
    if isinstance(value, DataSpec):
        return value
    if isinstance(value, dict):
        extra = set(value) - {"path", "degradation", "seed", "kind"}
        if extra or "path" not in value:
            raise InputError(f"the data spec must be {{'path': ..., 'degradation': ...}}; got keys {sorted(value)}. "
                             + _HINT)
        return parse_data(value["path"], value.get("degradation", degradation), base, value.get("seed", seed))
    s = str(value)
    p = Path(s) if Path(s).is_absolute() or base is None else Path(base) / s
    seed = 0 if seed is None else int(seed)
    if degradation is not None and degradation not in DEGRADATIONS:
        raise InputError(f"degradation must be one of {DEGRADATIONS}, got {degradation!r}. "
                         "Use 'bicubic' for clean photos, 'skugen-realistic' for blur+noise+JPEG uploads.")
    if p.is_dir():
        if (p / "lr").is_dir() and (p / "hr").is_dir():
            if degradation is not None:
                raise InputError(f"{p} holds your own lr/ and hr/ pairs; a degradation does not apply to them. "
                                 "Drop --degradation (or the spec's 'degradation').")
            return DataSpec("pairs", str(p.resolve()), None, seed)
        return DataSpec("images", str(p.resolve()), degradation or DEFAULT_DEGRADATION, seed)
    if p.suffix == ".npz":
        if not p.is_file():
            raise DataError(f"data file {p} does not exist. " + _HINT)
        return DataSpec("npz", str(p.resolve()), None, seed)
    if ":" in s and not p.exists():
        mod, _, fn = s.rpartition(":")
        if mod and fn.isidentifier():
            return DataSpec("factory", s, None, seed)
    if p.is_file():
        raise InputError(f"data {p} is a file that is not an .npz. " + _HINT)
    raise DataError(f"data {p} does not exist. " + _HINT)


def from_io_spec(spec: dict, base: str | os.PathLike | None = None) -> DataSpec | None:
    """The optional "data" key of an I/O spec (a path string or {"path", "degradation"}), None when absent."""
    v = spec.get("data") if isinstance(spec, dict) else None
    return None if v is None else parse_data(v, base=base)


def from_card(card: dict) -> DataSpec | None:
    """The data spec a model directory was imported with (card["data"]["spec"]); None for skugen's own data."""
    d = card.get("data")
    return DataSpec.from_dict(d["spec"]) if isinstance(d, dict) and d.get("spec") else None


def card_entry(spec: DataSpec | None) -> str | dict:
    """What import writes into card["data"] (compress copies it to the student's card)."""
    return "user model (skugen import); skugen's default data" if spec is None else {
        "spec": spec.to_dict(), "description": spec.describe()}

# ----------------------------------------------------------------------------- splits


def _hash_rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_names(names: list[str], seed: int = 0) -> dict[str, list[str]]:
    """Disjoint train/calib/gate/confirm parts, by the seeded sha256 of each name (order-independent).

    Every held-out part gets at least one item once there are 4 names; the rest follows SPLIT_FRACTIONS."""
    if len(names) < 4:
        raise DataError(f"the data has {len(names)} items; at least 4 are needed (one each for training, calibration, "
                        "the gate and its confirmation; 20+ give stable numbers). Add images to the folder.")
    order = sorted(names, key=lambda n: _hash_rank(n, seed))
    n = len(order)
    sizes = {k: max(1, int(round(f * n))) for k, f in SPLIT_FRACTIONS.items() if k != "train"}
    sizes["train"] = n - sum(sizes.values())
    if sizes["train"] < 1:  # tiny sets: one item each for the held-out parts, the rest trains
        sizes = {"train": n - 3, "calib": 1, "gate": 1, "confirm": 1}
    out, i = {}, 0
    for k in PARTS:
        out[k] = sorted(order[i:i + sizes[k]])
        i += sizes[k]
    return out


def _images_in(d: Path) -> list[str]:
    return sorted(str(f.relative_to(d)) for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _arrays(spec: DataSpec) -> dict[str, np.ndarray]:
    if spec.kind == "npz":
        with np.load(spec.path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    mod, _, fn = spec.path.rpartition(":")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise DataError(f"dataset factory {spec.path!r} cannot be imported ({e}). Make '{mod}' importable "
                        "(PYTHONPATH) and define a function returning a dict of numpy arrays.") from e
    out = obj()
    if isinstance(out, tuple) and len(out) == 2:
        out = {"lr": out[0], "hr": out[1]}
    if not isinstance(out, dict):
        raise DataError(f"dataset factory {spec.path!r} returned {type(out).__name__}; return a dict of numpy "
                        "arrays ({'lr', 'hr'} for an enhancer, {'z', 'labels'} for a generator).")
    return {k: np.asarray(v) for k, v in out.items()}


class Source:
    """The user's data, split: `items(part)` are file names (images/pairs) or sample indices (arrays)."""

    def __init__(self, spec: DataSpec):
        self.spec = spec
        self.arrays: dict[str, np.ndarray] | None = None
        if spec.kind == "images":
            names = _images_in(Path(spec.path))
            if not names:
                raise DataError(f"{spec.path} holds no images ({', '.join(IMAGE_SUFFIXES)}). " + _HINT)
        elif spec.kind == "pairs":
            lr, hr = set(_images_in(Path(spec.path) / "lr")), set(_images_in(Path(spec.path) / "hr"))
            names = sorted(lr & hr)
            if not names or lr != hr:
                raise DataError(f"{spec.path}: lr/ and hr/ must hold the same file names; {len(lr ^ hr)} are in only "
                                f"one of them (e.g. {sorted(lr ^ hr)[:3]}). Give each HR image its LR partner.")
        else:
            self.arrays = _arrays(spec)
            n = {len(v) for v in self.arrays.values()}
            if len(n) != 1:
                raise DataError(f"{spec.path}: arrays disagree on the sample count ({ {k: len(v) for k, v in self.arrays.items()} }). "
                                "Give every array the samples along axis 0.")
            names = [str(i) for i in range(n.pop())]
        self.parts = split_names(names, spec.seed)

    def images(self, part: str, scale: int) -> list[tuple[np.ndarray | None, np.ndarray]]:
        """[(LR or None, HR)] uint8 (H, W, 3) of an enhancer part; LR None = degrade the HR crop."""
        s = self.spec
        if s.kind == "images":
            return [(None, data.load_rgb(Path(s.path) / n)) for n in self.parts[part]]
        if s.kind == "pairs":
            out = []
            for n in self.parts[part]:
                lr, hr = data.load_rgb(Path(s.path) / "lr" / n), data.load_rgb(Path(s.path) / "hr" / n)
                if hr.shape[0] < lr.shape[0] * scale or hr.shape[1] < lr.shape[1] * scale:
                    raise DataError(f"pair {n}: HR {hr.shape[1]}x{hr.shape[0]} is smaller than {scale}x the LR "
                                    f"{lr.shape[1]}x{lr.shape[0]}. Pairs must be HR = scale x LR.")
                out.append((lr, hr))
            return out
        a = self.arrays
        if "lr" not in a or "hr" not in a:
            raise DataError(f"{s.path}: an enhancer's arrays need 'lr' (N, h, w, 3) and 'hr' (N, {scale}h, {scale}w, 3) "
                            f"uint8; got {sorted(a)}.")
        idx = [int(i) for i in self.parts[part]]
        return [(_u8(a["lr"][i], "lr"), _u8(a["hr"][i], "hr")) for i in idx]

    def generator_feeds(self, part: str, n_classes: int) -> tuple[dict, np.ndarray]:
        a = self.arrays
        if a is None or "z" not in a or not ({"labels", "onehot"} & set(a)):
            raise DataError(f"{self.spec.path}: a generator's data is arrays 'z' (N, z_dim) float32 and 'labels' (N,) "
                            "int (or 'onehot' (N, K)); an image folder does not give latents. Save them with "
                            "np.savez('inputs.npz', z=z, labels=labels).")
        idx = np.array([int(i) for i in self.parts[part]])
        z = a["z"][idx].astype(np.float32)
        labels = (a["labels"][idx].astype(np.int64) if "labels" in a else a["onehot"][idx].argmax(1).astype(np.int64))
        if labels.min() < 0 or labels.max() >= n_classes:
            raise DataError(f"{self.spec.path}: labels must be in [0, {n_classes}); got {labels.min()}..{labels.max()}.")
        return {"z": z, "onehot": np.eye(n_classes, dtype=np.float32)[labels]}, labels


def _u8(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim != 3 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise DataError(f"'{what}' items must be (h, w, 3) uint8 RGB images; got {x.shape} {x.dtype}.")
    return x

# ----------------------------------------------------------------------------- enhancer crops


def _degrade_cfg(spec: DataSpec, scale: int, train: bool) -> data.DegradeConfig:
    if spec.degradation == "skugen-realistic":
        return data.DegradeConfig(scale=scale, clean_prob=data.TRAIN_DEGRADE.clean_prob if train else 0.0)
    return data.DegradeConfig(scale=scale, clean_prob=1.0)  # bicubic: PIL bicubic downscale, nothing else


def crop_size(items: list, scale: int, want_lr: int) -> int:
    """The LR crop side: `want_lr` (the deployment tile) when every item allows it, else the largest that fits."""
    side = min(min((hr.shape[0] // scale, hr.shape[1] // scale) if lr is None else lr.shape[:2]) for lr, hr in items)
    lr = min(want_lr, side)
    if lr < 8:
        raise DataError(f"the images allow LR crops of only {side} px; at least 8 are needed. Use larger images.")
    return lr


def crops(spec: DataSpec, items: list, n: int, lr_size: int, scale: int, seed: int, train: bool = False,
          aug: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n (LR (n, t, t, 3), HR (n, s*t, s*t, 3)) uint8 crops drawn round-robin over `items`, deterministic in seed."""
    rng = np.random.default_rng(seed)
    cfg = _degrade_cfg(spec, scale, train)
    t, ht = lr_size, lr_size * scale
    lr_out = np.empty((n, t, t, 3), np.uint8)
    hr_out = np.empty((n, ht, ht, 3), np.uint8)
    order = rng.permutation(len(items))
    for i in range(n):
        lr, hr = items[int(order[i % len(items)])]
        if lr is None:
            c = data.random_crop(hr, ht, rng)
            if aug:
                c = data.augment(c, rng)
            hr_out[i], lr_out[i] = c, data.degrade(c, rng, cfg)
        else:
            y, x = int(rng.integers(0, lr.shape[0] - t + 1)), int(rng.integers(0, lr.shape[1] - t + 1))
            lr_out[i] = lr[y:y + t, x:x + t]
            hr_out[i] = hr[y * scale:(y + t) * scale, x * scale:(x + t) * scale]
    return lr_out, hr_out

# ----------------------------------------------------------------------------- what the stages take


@dataclass
class GateSets:
    """Calibration feeds, the gate's EvalSet and the confirm EvalSet (disjoint), plus where they came from."""

    calib: dict
    gate: Any        # quantize.EvalSet
    confirm: Any     # quantize.EvalSet
    source: str
    info: dict


def gate_sets(spec: DataSpec, kind: str, *, scale: int = 2, tile: int = 128, n_classes: int | None = None,
              calib_n: int = 128, eval_n: int | None = None) -> GateSets:
    """The user's data as the INT8 (or FP16) gate takes it: calib/gate/confirm from three disjoint parts.

    Enhancers: LR crops of the deployment tile `tile` (smaller only where the images are), HR for PSNR-Y.
    Generators: the user's latents/labels, as many as each part holds (eval_n caps them)."""
    from .onnx_export import lr_to_feed
    from .data import EvalSet

    src = Source(spec)
    if kind == "generator":
        sets = {p: src.generator_feeds(p, n_classes) for p in ("calib", "gate", "confirm")}
        cap = (lambda f, lab: ({k: v[:eval_n] for k, v in f.items()}, lab[:eval_n])) if eval_n else (lambda f, lab: (f, lab))
        g, c = cap(*sets["gate"]), cap(*sets["confirm"])
        info = {p: len(sets[p][1]) for p in sets}
        return GateSets({k: v[:calib_n] for k, v in sets["calib"][0].items()},
                        EvalSet(g[0], labels=g[1], source=f"{spec.describe()}: gate part, n={len(g[1])}"),
                        EvalSet(c[0], labels=c[1], source=f"{spec.describe()}: confirm part, n={len(c[1])}"),
                        spec.describe(), {"n": info, "split": "sha256 of the sample index, seeded"})
    items = {p: src.images(p, scale) for p in ("calib", "gate", "confirm")}
    t = min(crop_size(items[p], scale, tile) for p in items)
    n_ev = eval_n or max(32, 2 * len(items["gate"]))
    lr_c, _ = crops(spec, items["calib"], calib_n, t, scale, seed=spec.seed * 7919 + 1)
    ev = {}
    for p, seed in (("gate", 2), ("confirm", 3)):
        n = n_ev if p == "gate" else max(16, n_ev // 2)
        lr, hr = crops(spec, items[p], n, t, scale, seed=spec.seed * 7919 + seed)
        ev[p] = EvalSet({"lr": lr_to_feed(lr)}, hr=hr,
                        source=f"{spec.describe()}: {p} part ({len(items[p])} images), {n} crops {t} px LR")
    info = {"images": {p: len(v) for p, v in items.items()}, "train_images": len(src.parts["train"]),
            "lr_crop": t, "deploy_tile": tile, "at_deploy_tile": t == tile,
            "split": "sha256 of the file name, seeded; calib, gate and confirm share no image"}
    return GateSets({"lr": lr_to_feed(lr_c)}, ev["gate"], ev["confirm"], spec.describe(), info)


def train_batch_fn(spec: DataSpec, scale: int, lr_size: int = 48):
    """(batch, seed) -> (LR tensor (B, 3, t, t) in [0, 1],): distillation inputs from the train part."""
    import torch

    from .onnx_export import lr_to_feed

    src = Source(spec)
    items = src.images("train", scale)
    t = crop_size(items, scale, lr_size)

    def fn(b: int, seed: int):
        lr, _ = crops(spec, items, b, t, scale, seed=seed, train=True, aug=True)
        return (torch.from_numpy(lr_to_feed(lr)),)

    return fn


def generator_batch_fn(spec: DataSpec, n_classes: int):
    """(batch, seed) -> (z, onehot) tensors drawn from the user's train part (the contract's inputs)."""
    import torch

    feeds, _ = Source(spec).generator_feeds("train", n_classes)
    n = len(feeds["z"])

    def fn(b: int, seed: int):
        idx = np.random.default_rng(seed).integers(0, n, b)
        return torch.from_numpy(feeds["z"][idx]), torch.from_numpy(feeds["onehot"][idx])

    return fn

def eval_inputs(spec: DataSpec, kind: str, *, scale: int = 2, n_classes: int | None = None, n: int = 64,
                lr_size: int = 48, seed: int = 4321) -> tuple[tuple, str]:
    """Held-out model inputs from the user's gate + confirm parts (never train, never calib), as torch tensors of
    skugen's contract, and where they came from: what compress compares the student with its teacher on.

    Enhancer: n LR crops (B, 3, t, t) in [0, 1] (t = lr_size where the images allow it). Generator: the parts'
    latents and one-hot labels, at most n."""
    import torch

    from .onnx_export import lr_to_feed

    src = Source(spec)
    if kind == "generator":
        parts = [src.generator_feeds(p, n_classes)[0] for p in ("gate", "confirm")]
        feeds = {k: np.concatenate([f[k] for f in parts])[:n] for k in ("z", "onehot")}
        return ((torch.from_numpy(feeds["z"]), torch.from_numpy(feeds["onehot"])),
                f"{spec.describe()}: gate + confirm parts, n={len(feeds['z'])}")
    items = src.images("gate", scale) + src.images("confirm", scale)
    t = crop_size(items, scale, lr_size)
    lr, _ = crops(spec, items, n, t, scale, seed=spec.seed * 7919 + seed)
    return ((torch.from_numpy(lr_to_feed(lr)),),
            f"{spec.describe()}: gate + confirm parts ({len(items)} images), {n} crops {t} px LR")


# ----------------------------------------------------------------------------- baselines


def bicubic_psnr_y(ev) -> float:
    """PSNR-Y (BasicSR, crop = scale) of plain PIL bicubic upscaling of the eval set's LR against its HR."""
    from PIL import Image

    from skugen import evaluate

    lr = evaluate.to_uint8(ev.feeds["lr"], (0.0, 1.0))       # (N, h, w, 3)
    hh, hw = ev.hr.shape[1:3]
    up = np.stack([np.asarray(Image.fromarray(x).resize((hw, hh), Image.BICUBIC)) for x in lr])
    scale = hh // lr.shape[1]
    y, crop = evaluate.pair_convention("enhancer", scale, 3)
    return float(evaluate.psnr_result(up, ev.hr, y_channel=y, crop_border=crop).value)


def enhancer_baseline(fp32_psnr_y_db: float, ev) -> dict:
    """The bicubic line and, when the FP32 model is > BICUBIC_WARN_DB below it, a warning naming the usual causes."""
    b = bicubic_psnr_y(ev)
    out = {"bicubic_psnr_y_db": b, "fp32_psnr_y_db": float(fp32_psnr_y_db), "margin_db": float(fp32_psnr_y_db) - b,
           "eval": ev.source, "warning": None}
    if fp32_psnr_y_db < b - BICUBIC_WARN_DB:
        out["warning"] = (f"the FP32 model ({fp32_psnr_y_db:.2f} dB PSNR-Y) is {b - fp32_psnr_y_db:.2f} dB BELOW plain "
                          f"bicubic ({b:.2f} dB) on {ev.source}. Usual causes: the I/O spec's input_range/output_range "
                          "do not match what the model was trained on (e.g. [0, 1] for a [0, 255] model), or the data "
                          "is not what the model is for (check --data and its degradation). Fix the spec and re-import.")
    return out


CLIP_WARN_FRACTION = 0.10  # outputs beyond the declared range: a correct output_range gives (almost) none


def clipped_fraction(y: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """The fraction of output values more than one 8-bit step outside `value_range` (the contract's range, after the
    I/O spec's output_range was mapped onto it): what the image conversion clips away. A tanh model declared
    [0, 1] maps to [-3, 1] and loses about half its pixels; a [0, 255] model declared [0, 1] nearly all of them.
    Values AT the ends are not counted: product shots on white legitimately sit at the top of the range."""
    lo, hi = value_range
    step = (hi - lo) / 255.0
    y = np.asarray(y, np.float32)
    return float(np.mean((y < lo - step) | (y > hi + step)))


def generator_baseline(psnr_vs_teacher_db: float | None, clip_frac: float | None = None) -> dict:
    """The generator's equivalent: the student far from its teacher, or outputs beyond the declared output range."""
    out = {"psnr_vs_teacher_db": psnr_vs_teacher_db, "clipped_fraction": clip_frac, "warning": None}
    why = []
    if psnr_vs_teacher_db is not None and psnr_vs_teacher_db < 20.0:
        why.append(f"the student is only {psnr_vs_teacher_db:.1f} dB PSNR from its teacher's output (< 20 dB)")
    if clip_frac is not None and clip_frac > CLIP_WARN_FRACTION:
        why.append(f"{clip_frac:.0%} of the teacher's output values fall outside the I/O spec's output_range "
                   "(clipped when the image is written)")
    if why:
        out["warning"] = ("; ".join(why) + ". Usual causes: the I/O spec's output_range does not match the model's "
                          "(e.g. [0, 1] for a tanh model), or the latents/labels are not the model's (check --data). "
                          "Fix the spec and re-import.")
    return out


def baseline_report(kind: str, fp32_onnx: bytes, ev, fp32_psnr_y_db: float | None = None) -> dict | None:
    """Bundle/report baseline for an enhancer: bicubic vs the FP32 model on the gate's eval set (None otherwise)."""
    if kind != "enhancer" or ev is None or ev.hr is None:
        return None
    if fp32_psnr_y_db is None:
        from skugen import evaluate

        from .onnx_export import run_onnx as _run

        sr = evaluate.to_uint8(_run(fp32_onnx, ev.feeds, batch=16), (0.0, 1.0))
        y, crop = evaluate.pair_convention("enhancer", ev.hr.shape[1] // ev.feeds["lr"].shape[2], 3)
        fp32_psnr_y_db = evaluate.psnr_result(sr, ev.hr, y_channel=y, crop_border=crop).value
    return enhancer_baseline(fp32_psnr_y_db, ev)


def for_import(io_spec: "dict | str | os.PathLike", data: "str | os.PathLike | dict | DataSpec | None" = None,
               degradation: str | None = None) -> DataSpec | None:
    """The data a model is imported with: --data (wins) or the I/O spec's optional "data" key (relative to the
    spec file's folder). None: skugen's default data."""
    if data is not None:
        return parse_data(data, degradation)
    if isinstance(io_spec, dict):
        spec, base = io_spec, None
    else:
        import json

        try:
            spec, base = json.loads(Path(io_spec).read_text()), Path(io_spec).parent
        except (OSError, ValueError):
            return None  # custom.parse_io_spec reports the unreadable spec
    d = from_io_spec(spec, base)
    if d is not None and degradation is not None:
        d = parse_data(d.path, degradation, seed=d.seed)
    return d
