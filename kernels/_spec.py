"""Argument validation and the float32 constants shared by every backend.

The numpy reference, the host-emulated kernels and the CUDA kernels all take
their constants (normalisation scale/offset, resize scale, channel maps) from
here, so the three compute with bit-identical inputs. Everything a user can get
wrong raises `skugen.errors.InputError` with a hint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError  # relative: export-triton copies this module into a package of its own

# Largest grid.z (batch) and grid.y (rows / 8) a launch may use: CUDA's limit is 65535 for both.
MAX_BATCH = 65535
MAX_EXTENT = 65535 * 8


@dataclass(frozen=True)
class Layout:
    name: str
    channels: int  # bytes per pixel in memory
    rgb: tuple[int, int, int]  # memory channel of R, G, B (GRAY: 0, 0, 0)


LAYOUTS: dict[str, Layout] = {
    "RGB": Layout("RGB", 3, (0, 1, 2)),
    "BGR": Layout("BGR", 3, (2, 1, 0)),
    "RGBA": Layout("RGBA", 4, (0, 1, 2)),
    "BGRA": Layout("BGRA", 4, (2, 1, 0)),
    "GRAY": Layout("GRAY", 1, (0, 0, 0)),
}

# BT.601 luma weights for colour -> gray model inputs (out_channels=1).
GRAY_WEIGHTS = (np.float32(0.299), np.float32(0.587), np.float32(0.114))
# MATLAB rgb2ycbcr / BasicSR Y weights for inputs in [0, 255]: y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16.
Y_WEIGHTS = (np.float32(65.481), np.float32(128.553), np.float32(24.966))


def get_layout(name: str, allowed: Sequence[str] | None = None) -> Layout:
    allowed = tuple(allowed or LAYOUTS)
    key = name.upper() if isinstance(name, str) else name
    if key not in allowed:
        raise InputError(f"unknown layout {name!r}: use one of {', '.join(allowed)}")
    return LAYOUTS[key]


# ----------------------------------------------------------------------------- images in

@dataclass(frozen=True)
class ImageGroup:
    """Images of one size that one kernel launch can read: base pointer + image stride + row pitch."""

    array: np.ndarray  # (n, H, W, C) uint8 view; pixels packed, rows at any pitch
    start: int  # index of its first image in the output batch

    @property
    def pitch(self) -> int:
        return int(self.array.strides[1])

    @property
    def image_stride(self) -> int:
        return int(self.array.strides[0]) if self.array.shape[0] > 1 else 0

    @property
    def span(self) -> int:
        """Bytes from the first to the last pixel byte, the gaps between rows included."""
        n, h, w, c = self.array.shape
        return (n - 1) * self.image_stride + (h - 1) * self.pitch + w * c

    def span_bytes(self) -> np.ndarray:
        """A read-only (span,) uint8 view of that memory, for one contiguous upload."""
        return np.lib.stride_tricks.as_strided(self.array, shape=(self.span,), strides=(1,), writeable=False)


def _as_nhwc(img: np.ndarray, layout: Layout, what: str) -> np.ndarray:
    """One image (H, W, C) / (H, W) or a batch (B, H, W, C) as a (B, H, W, C) view, validated."""
    if not isinstance(img, np.ndarray):
        raise InputError(f"{what} must be a numpy array or a list of them, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise InputError(
            f"{what} must be uint8 (0..255), got {img.dtype}: for floats in [0, 1] pass "
            f"np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)")
    if img.ndim == 2 and layout.channels == 1:
        img = img[:, :, None]
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4:
        raise InputError(
            f"{what} must be (H, W, C), (B, H, W, C) or, for GRAY, (H, W); got shape {img.shape}")
    b, h, w, c = img.shape
    if c != layout.channels:
        hint = {1: "GRAY", 3: "RGB or BGR", 4: "RGBA or BGRA"}.get(c, "a layout that matches")
        raise InputError(
            f"layout {layout.name!r} needs {layout.channels} channel(s) but {what} has {c} "
            f"(shape {img.shape}): pass layout={hint!r} or convert the images")
    if min(b, h, w) == 0:
        raise InputError(f"{what} is empty (shape {img.shape}): every image needs at least 1x1 pixels")
    if max(h, w) > MAX_EXTENT:
        raise InputError(f"{what} is {h}x{w}; images up to {MAX_EXTENT} pixels a side are supported")
    # A stride along a length-1 axis is never used (numpy reports anything there, even 0).
    s0, s1, s2, s3 = (s if n > 1 else d for s, n, d in zip(img.strides, img.shape, (h * w * c, w * c, c, 1)))
    if s3 != 1 or s2 != c or s1 < 0 or s0 < 0:
        raise InputError(
            f"{what} has strides {img.strides}: pixels must be packed (C bytes each, rows at any "
            f"positive pitch), so crops work but flips, channel slices or transposes do not; "
            f"pass np.ascontiguousarray(images)")
    return np.lib.stride_tricks.as_strided(img, img.shape, (s0, s1, s2, s3), writeable=False)


def image_batch(images, layout: Layout, what: str = "images") -> tuple[list[ImageGroup], int]:
    """Validate images (array or list of arrays) into launchable groups; returns (groups, batch)."""
    if isinstance(images, np.ndarray):
        arr = _as_nhwc(images, layout, what)
        if arr.shape[0] > MAX_BATCH:
            raise InputError(f"batch of {arr.shape[0]} images is too large: split it into batches of <= {MAX_BATCH}")
        return [ImageGroup(arr, 0)], arr.shape[0]
    if not isinstance(images, (list, tuple)):
        raise InputError(f"{what} must be a numpy array or a list of them, got {type(images).__name__}")
    if not images:
        raise InputError(f"{what} is an empty list: pass at least one image")
    groups, start = [], 0
    for i, img in enumerate(images):
        arr = _as_nhwc(img, layout, f"{what}[{i}]")
        groups.append(ImageGroup(arr, start))
        start += arr.shape[0]
    if start > MAX_BATCH:
        raise InputError(f"batch of {start} images is too large: split it into batches of <= {MAX_BATCH}")
    return groups, start


def check_pitched(batch: int, hw: tuple[int, int], channels: int, pitch: int | None,
                  image_stride: int | None, what: str) -> tuple[int, int]:
    """Defaults and sanity for a raw pitched buffer (device API): returns (pitch, image_stride)."""
    h, w = _positive_pair(hw, f"{what} size")
    if not (0 < batch <= MAX_BATCH):
        raise InputError(f"{what}: batch must be in 1..{MAX_BATCH}, got {batch}")
    pitch = w * channels if pitch is None else int(pitch)
    if pitch < w * channels:
        raise InputError(f"{what}: pitch {pitch} bytes is smaller than a row ({w} x {channels} bytes)")
    image_stride = h * pitch if image_stride is None else int(image_stride)
    if image_stride < 0:
        raise InputError(f"{what}: image_stride must be >= 0, got {image_stride}")
    return pitch, image_stride


def _positive_pair(hw, what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a (height, width) pair of ints, got {hw!r}") from None
    if h <= 0 or w <= 0 or max(h, w) > MAX_EXTENT:
        raise InputError(f"{what} must be positive (and <= {MAX_EXTENT}), got {(h, w)}")
    return h, w


def out_size(out_hw) -> tuple[int, int]:
    if isinstance(out_hw, (int, np.integer)):
        out_hw = (out_hw, out_hw)
    return _positive_pair(out_hw, "out_hw")


def resize_scale(n_in: int, n_out: int) -> np.float32:
    """torch's float32 scale for align_corners=False when given sizes (not a scale factor)."""
    return np.float32(n_in) / np.float32(n_out)


# ----------------------------------------------------------------------------- preprocess constants

@dataclass(frozen=True)
class PreParams:
    src_channels: tuple[int, int, int]  # memory channel read for output channel k (or R, G, B when to_gray)
    to_gray: bool  # mix R, G, B with BT.601 into one output channel
    out_channels: int
    scale: tuple[np.float32, np.float32, np.float32]  # out = v * scale + offset, v in [0, 255]
    offset: tuple[np.float32, np.float32, np.float32]


def _per_channel(v, n: int, what: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if a.ndim != 1 or a.size not in (1, n):
        raise InputError(f"{what} must be a number or {n} numbers (one per output channel), got {v!r}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} must be finite, got {v!r}")
    return np.broadcast_to(a, (n,))


def out_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise InputError(f"dtype must be float32 or float16, got {dtype!r}")
    return dt


def preprocess_params(layout: Layout, mean, std, out_channels: int | None) -> PreParams:
    """Channel routing and normalisation constants; mean/std are in [0, 1] units (torchvision style).

    out = (v / 255 - mean) / std is computed as out = v * scale + offset with
    scale = float32(1 / (255 std)) and offset = float32(-mean / std) (both from float64),
    so mean=std=0.5 (the default) gives [-1, 1] and mean=0, std=1 gives [0, 1].
    """
    gray_in = layout.channels == 1
    if out_channels is None:
        out_channels = 1 if gray_in else 3
    if out_channels not in (1, 3):
        raise InputError(f"out_channels must be 1 or 3, got {out_channels!r}")
    to_gray = out_channels == 1 and not gray_in  # colour image, gray model: BT.601 mix
    mean = _per_channel(mean, out_channels, "mean")
    std = _per_channel(std, out_channels, "std")
    if np.any(std <= 0):
        raise InputError(f"std must be > 0, got {std.tolist()}")
    scale = 1.0 / (255.0 * std)
    offset = -mean / std
    pad = lambda a: tuple(np.float32(x) for x in (list(a) + [0.0, 0.0])[:3])  # noqa: E731
    return PreParams(layout.rgb, to_gray, out_channels, pad(scale), pad(offset))


# ----------------------------------------------------------------------------- postprocess constants

@dataclass(frozen=True)
class PostParams:
    src_channels: tuple[int, int, int]  # input plane written to output byte k
    channels: int
    scale: np.float32  # v = x * scale + offset, then NaN -> 0, clamp [0, 255], round half to even
    offset: np.float32


def value_range_params(value_range) -> tuple[np.float32, np.float32]:
    named = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0)}
    if isinstance(value_range, str):
        key = value_range.replace(" ", "")
        if key not in named:
            raise InputError(f"value_range must be '-1,1', '0,1' or a (low, high) pair, got {value_range!r}")
        lo, hi = named[key]
    else:
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise InputError(f"value_range must be '-1,1', '0,1' or a (low, high) pair, got {value_range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise InputError(f"value_range needs finite low < high, got {value_range!r}")
    scale = 255.0 / (hi - lo)
    return np.float32(scale), np.float32(-lo * scale)


def postprocess_params(layout: Layout, value_range) -> PostParams:
    if layout.channels == 4:
        raise InputError(f"postprocess writes RGB, BGR or GRAY, not {layout.name!r}")
    scale, offset = value_range_params(value_range)
    # Model outputs are RGB planes; BGR output reads plane 2 into byte 0.
    return PostParams(layout.rgb, layout.channels, scale, offset)


def check_nchw(x, layout: Layout, what: str = "x") -> tuple[np.ndarray, bool]:
    """Validate a model output; returns ((B, C, H, W) array, whether it was a single (C, H, W))."""
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what} must be a numpy array (B, C, H, W), got {type(x).__name__}")
    if x.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise InputError(f"{what} must be float32 or float16 (native byte order), got {x.dtype}: "
                         f"pass x.astype(np.float32)")
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise InputError(f"{what} must be (B, C, H, W) or (C, H, W), got shape {x.shape}")
    if x.shape[1] != layout.channels:
        raise InputError(f"layout {layout.name!r} needs {layout.channels} channel(s) but {what} has "
                         f"{x.shape[1]} (shape {x.shape}): use layout='GRAY' for 1 channel, 'RGB'/'BGR' for 3")
    if min(x.shape) == 0:
        raise InputError(f"{what} is empty (shape {x.shape})")
    if max(x.shape[2:]) > MAX_EXTENT or x.shape[0] > MAX_BATCH:
        raise InputError(f"{what} shape {x.shape} is too large: split the batch or the image")
    if not x.flags.c_contiguous:
        raise InputError(f"{what} must be C-contiguous NCHW (strides {x.strides}): pass np.ascontiguousarray(x)")
    return x, single


def y_channels(layout: Layout) -> tuple[int, int, int]:
    if layout.channels == 1:
        raise InputError("rgb_to_y needs colour images (RGB, BGR, RGBA or BGRA), got layout 'GRAY'")
    return layout.rgb
