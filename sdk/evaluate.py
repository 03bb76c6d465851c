"""The one quality evaluator: every PSNR/SSIM, FID-proxy and class fidelity skugen reports comes from here.

numpy only (it runs on the Jetson runtime). The maths lives in `skugen.metrics`
(BasicSR PSNR/SSIM, Fréchet distance); this module owns the conventions around it:

- `to_255` / `to_uint8`: model output (N, C, H, W) in its value range -> (N, H, W, C)
  in [0, 255] (float64, clipped) or uint8 (rounded, as saved images are);
- `bicubic_upscale`: the PIL-bicubic baseline every SR number is shown next to;
- `pair_quality` / `pair_report` / `sr_quality`: PSNR + SSIM of image pairs with the
  convention fields (Y or RGB, crop, data range); enhancers use Y and crop = scale;
- `fid_proxy` / `fid_proxy_entry`: Fréchet distance of classifier features, named
  `FID_NAME` (our classifier's features, never Inception FID);
- `class_fidelity`: how often the judge's predicted label is the requested class.

Features and labels come from a *judge* (`Judge`: `features(images_u8)`,
`predict(images_u8)`), passed in by the caller: `OnnxJudge` below (an ONNX classifier,
runtime-only), or the toolchain's torch judge (skugen.export.judge). This module never
imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import InputError
from .metrics import QualityResult, fid_from_features, psnr_result, ssim_result

__all__ = ["FID_NAME", "FID_NOTE", "Judge", "OnnxJudge", "to_255", "to_uint8", "bicubic_upscale", "bicubic_resize",
           "pair_convention", "pair_quality", "pair_report", "pairwise", "sr_quality", "fid_proxy",
           "fid_proxy_entry", "class_fidelity"]

FID_NAME = "FID-proxy (fmnist-classifier features)"
FID_NOTE = "Frechet distance on our own classifier's features, not Inception FID"


@runtime_checkable
class Judge(Protocol):
    """What the evaluator needs from a classifier: features for the FID-proxy, labels for class fidelity."""

    def features(self, images_u8: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 images -> (N, D) features."""

    def predict(self, images_u8: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 images -> (N,) predicted class labels."""


# ----------------------------------------------------------------------------- conversions
def to_255(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(N, C, H, W) model output in `value_range` -> (N, H, W, C) float64 in [0, 255] (clipped, unrounded)."""
    lo, hi = value_range
    y = (np.asarray(x, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(y, 0.0, 255.0).transpose(0, 2, 3, 1)


def to_uint8(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(N, C, H, W) model output in `value_range` -> (N, H, W, C) uint8, rounded to nearest (as saved images)."""
    return np.rint(to_255(x, value_range)).astype(np.uint8)


def bicubic_resize(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """One uint8 image (H, W[, C]) -> PIL bicubic resize to (width, height) `size_wh`."""
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize(size_wh, Image.BICUBIC))


def bicubic_upscale(images, scale: int):
    """The SR baseline: PIL bicubic x`scale` of uint8 images.

    An (N, h, w, C) array gives an (N, s*h, s*w, C) array; a list (images of any sizes) gives a list.
    """
    up = [bicubic_resize(im, (im.shape[1] * scale, im.shape[0] * scale)) for im in images]
    return np.stack(up) if isinstance(images, np.ndarray) else up


# ----------------------------------------------------------------------------- pairwise quality
def pair_convention(kind: str, scale: int, channels: int) -> tuple[bool, int]:
    """(y_channel, crop_border) of a comparison: enhancers PSNR-Y/SSIM-Y with crop = scale (BasicSR),
    generators the raw channels, no crop."""
    if kind == "enhancer":
        return channels == 3, int(scale)
    return False, 0


def pair_quality(a, b, *, y_channel: bool = False, crop_border: int = 0) -> dict[str, QualityResult]:
    """{"psnr": QualityResult, "ssim": QualityResult} of [0, 255] images (BasicSR conventions)."""
    return {"psnr": psnr_result(a, b, y_channel=y_channel, crop_border=crop_border),
            "ssim": ssim_result(a, b, y_channel=y_channel, crop_border=crop_border)}


def pair_report(a: np.ndarray, b: np.ndarray, kind: str, scale: int, reference: str) -> dict:
    """PSNR + SSIM dicts (means, no per-image lists) of NHWC [0, 255] images by `kind`'s convention.

    Images that cannot be compared give {"skipped": why} instead of raising.
    """
    y, crop = pair_convention(kind, scale, a.shape[-1])
    try:
        res = pair_quality(a, b, y_channel=y, crop_border=crop)
    except InputError as e:
        return {"skipped": f"cannot compare: {e}", "reference": reference}
    out: dict = {}
    for key, r in res.items():
        d = r.to_dict()
        d.pop("per_image", None)  # keep the report small; the mean is what the matrix shows
        d.pop("per_image_inf", None)
        out[key] = d
    return {**out, "reference": reference, "n": int(a.shape[0])}


def pairwise(fn, outs: Sequence[np.ndarray], refs: Sequence[np.ndarray], *, y_channel: bool = True,
             crop_border: int = 0) -> QualityResult:
    """psnr_result / ssim_result over image pairs of possibly different sizes -> one QualityResult (mean)."""
    outs, refs = list(outs), list(refs)
    if len({o.shape for o in outs}) == 1 and len({r.shape for r in refs}) == 1:
        return fn(np.stack(outs), np.stack(refs), y_channel=y_channel, crop_border=crop_border)
    per = [fn(o, r, y_channel=y_channel, crop_border=crop_border) for o, r in zip(outs, refs)]
    vals = tuple(p.value for p in per)
    return QualityResult(value=float(np.mean(vals)), per_image=vals, metric=per[0].metric,
                         y_channel=y_channel, crop_border=crop_border)


def sr_quality(sr: np.ndarray, hr: np.ndarray, crop_border: int = 2) -> dict:
    """psnr_y, ssim_y, psnr_rgb, ssim_rgb (floats, BasicSR, crop `crop_border`) of SR vs HR images."""
    y = pair_quality(sr, hr, y_channel=True, crop_border=crop_border)
    rgb = pair_quality(sr, hr, y_channel=False, crop_border=crop_border)
    return {"psnr_y": y["psnr"].value, "ssim_y": y["ssim"].value,
            "psnr_rgb": rgb["psnr"].value, "ssim_rgb": rgb["ssim"].value}


# ----------------------------------------------------------------------------- distribution quality
def fid_proxy(feats, ref_feats) -> float:
    """The FID-proxy: Fréchet distance between the Gaussian fits of two (N, D) feature sets."""
    return float(fid_from_features(feats, ref_feats))


def fid_proxy_entry(feats, ref_feats, **extra) -> dict:
    """{"name": FID_NAME, "value": fid_proxy, "n": rows of `feats`, **extra} for a report."""
    return {"name": FID_NAME, "value": fid_proxy(feats, ref_feats), "n": int(len(feats)), **extra}


def class_fidelity(pred, labels, n_classes: int | None = None) -> dict:
    """Fraction of images whose predicted label is the requested one.

    {"value", "n"} plus "per_class" (a list over 0..n_classes-1) when n_classes is given.
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise InputError(f"{pred.shape} predictions for {labels.shape} labels; pass one prediction per image.")
    out: dict = {"value": float((pred == labels).mean()), "n": int(len(labels))}
    if n_classes is not None:
        out["per_class"] = [float((pred[labels == c] == c).mean()) for c in range(n_classes)]
    return out


# ----------------------------------------------------------------------------- an ONNX judge (runtime)
class OnnxJudge:
    """A classifier as ONNX: input 'image' (B, 1, H, W) in [-1, 1], outputs 'logits' (+ 'features').

    Takes (N, h, w, 1) uint8 images; smaller ones are centre-padded with black (the way the training
    data put 28x28 Fashion-MNIST into 32x32), larger ones resized. Use it as a context manager.
    """

    def __init__(self, path: Any, threads: int | None = None, processor=None) -> None:
        from . import prepost
        from .backends import onnx_runner

        if not isinstance(path, (str, os.PathLike)) or not Path(path).is_file():
            raise InputError(f"classifier={path!r} must be the path of an ONNX file with input 'image' "
                             "[batch,1,32,32] and outputs 'logits', 'features'")
        self.runner = onnx_runner(path, threads=threads)
        self.runner.activate()
        meta = self.runner.input_metadata()
        outs = self.runner.output_names()
        if "image" not in meta or "logits" not in outs:
            self.runner.deactivate()
            raise InputError(f"classifier {path} has inputs {sorted(meta)} and outputs {outs}; it needs input "
                             "'image' and output 'logits' (and 'features' for the FID-proxy)")
        shp = meta["image"].shape
        self.hw = tuple(d if isinstance(d, int) else 32 for d in shp[2:4])
        self.has_features = "features" in outs
        self.processor = processor if processor is not None else prepost.get_processor("cpu")

    def __enter__(self) -> "OnnxJudge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.runner.deactivate()

    def _prep(self, images: np.ndarray) -> np.ndarray:
        H, W = self.hw
        n, h, w, _ = images.shape
        if h <= H and w <= W and (h, w) != (H, W):
            top, left = (H - h) // 2, (W - w) // 2
            canvas = np.zeros((n, H, W, 1), dtype=np.uint8)
            canvas[:, top: top + h, left: left + w] = images
            images = canvas
        return self.processor.preprocess(np.ascontiguousarray(images), (H, W), layout="GRAY", mean=0.5, std=0.5)

    def logits_and_features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, h, w, 1) uint8 -> (logits (N, K), features (N, D) or None without a 'features' output)."""
        logits, feats = [], []
        for i in range(0, len(images), 256):
            x = self._prep(images[i: i + 256])
            out = self.runner.infer({"image": x})
            logits.append(out["logits"])
            if self.has_features:
                feats.append(out["features"].reshape(len(x), -1))
        return np.concatenate(logits), (np.concatenate(feats) if feats else None)

    def features(self, images_u8: np.ndarray) -> np.ndarray:
        f = self.logits_and_features(images_u8)[1]
        if f is None:
            raise InputError("this classifier has no 'features' output; export it with one for the FID-proxy.")
        return f

    def predict(self, images_u8: np.ndarray) -> np.ndarray:
        return self.logits_and_features(images_u8)[0].argmax(1)
