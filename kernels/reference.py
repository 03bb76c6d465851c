"""numpy reference of every CUDA kernel, and the runtime's CPU path.

Arithmetic contract (shared with kernels/*.cu, so results are bit-identical):
every value is float32 and every operation below is one IEEE-rounded float32
operation in exactly this order: no FMA, no reassociation.

Bilinear resize (torch.nn.functional.interpolate, mode="bilinear",
align_corners=False, antialias=False), per axis with scale = float32(n_in) / float32(n_out):
    src = max(scale * (float(o) + 0.5) - 0.5, 0)
    i0  = min(floor(src), n_in - 1);  i1 = i0 + (i0 < n_in - 1)
    w1  = clamp(src - float(i0), 0, 1);  w0 = 1 - w1
    left  = wy0 * p[y0, x0] + wy1 * p[y1, x0]          (vertical first)
    right = wy0 * p[y0, x1] + wy1 * p[y1, x1]
    v     = wx0 * left + wx1 * right                   (v in [0, 255])
    gray (colour -> 1 channel) = (0.299 r + 0.587 g) + 0.114 b   (BT.601)
    out   = v * scale_c + offset_c  (see _spec.preprocess_params), then cast to
            float16 with round-to-nearest-even when dtype=float16.
Postprocess: v = x * scale + offset (value range -> [0, 255]); NaN -> 0;
    clamp to [0, 255]; round half to even; uint8.
Y channel (MATLAB rgb2ycbcr, BasicSR's PSNR-Y): y = ((65.481 R + 128.553 G) + 24.966 B) / 255 + 16.

Speed: resizing gathers only the source pixels the output needs (2 rows and 2
columns per output pixel, via np.take on small index arrays) before any float
work, so a 1920x1080 photo costs about as much as a 512x512 one.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _spec
from ._spec import GRAY_WEIGHTS, Y_WEIGHTS

_F = np.float32


@functools.lru_cache(maxsize=64)
def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 (int64) and weights w0, w1 (float32) for each of n_out outputs."""
    scale = _spec.resize_scale(n_in, n_out)
    src = scale * (np.arange(n_out, dtype=_F) + _F(0.5)) - _F(0.5)
    src = np.maximum(src, _F(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    w1 = np.clip(src - i0.astype(_F), _F(0), _F(1))
    w0 = _F(1) - w1
    for a in (i0, i1, w0, w1):
        a.flags.writeable = False  # cached: callers must not modify
    return i0, i1, w0, w1


@functools.lru_cache(maxsize=64)
def _gather_plan(in_h: int, in_w: int, out_h: int, out_w: int):
    """Interleaved (i0, i1) source rows/cols, so one np.take per axis fetches every tap."""
    y0, y1, wy0, wy1 = bilinear_taps(in_h, out_h)
    x0, x1, wx0, wx1 = bilinear_taps(in_w, out_w)
    rows = np.stack([y0, y1], axis=1).ravel()  # (2*out_h,)
    cols = np.stack([x0, x1], axis=1).ravel()  # (2*out_w,)
    return rows, cols, wy0[:, None], wy1[:, None], wx0, wx1


def _resize_planes(img: np.ndarray, channels: tuple[int, ...], out_h: int, out_w: int) -> np.ndarray:
    """(H, W, C) uint8 view -> (len(channels), out_h, out_w) float32 values in [0, 255]."""
    if img.shape[:2] == (out_h, out_w):
        # Same size: every tap is (i, weight 1) + (i', weight 0), and 1 * p + 0 * p' == p exactly,
        # so skipping the arithmetic gives the kernel's bits at a fraction of the cost.
        return img.transpose(2, 0, 1)[list(channels)].astype(_F)
    rows, cols, wy0, wy1, wx0, wx1 = _gather_plan(img.shape[0], img.shape[1], out_h, out_w)
    # Fancy indexing on axis 0 reads pitched rows without copying the whole image; the result is
    # contiguous, so np.take can then gather columns fast.
    g = img[rows].take(cols, axis=1)  # (2*oh, 2*ow, C) uint8
    g = np.ascontiguousarray(g.transpose(2, 0, 1)[list(channels)])  # (k, 2*oh, 2*ow)
    # Vertical first (matches the kernel): rows 0::2 are y0 taps, 1::2 are y1 taps.
    v = g[:, 0::2] * wy0  # (k, oh, 2*ow) float32
    v += g[:, 1::2] * wy1
    out = v[:, :, 0::2] * wx0  # (k, oh, ow): cols 0::2 are x0 taps
    out += v[:, :, 1::2] * wx1
    return out


def preprocess(images, out_hw, layout: str = "RGB", mean=0.5, std=0.5, dtype=np.float32,
               out_channels: int | None = None) -> np.ndarray:
    """uint8 HWC image(s) -> (B, C, out_h, out_w) normalised model input.

    images: (H, W, C), (B, H, W, C), a GRAY (H, W), or a list of those (any sizes).
        Pixels must be packed; rows may have any pitch (crops of a larger frame are fine).
    out_hw: (height, width) of the model input, or one int for a square.
    layout: memory order of `images`: RGB, BGR, RGBA, BGRA (alpha ignored) or GRAY.
    mean, std: in [0, 1] units, per output channel or one number; the default 0.5/0.5
        gives [-1, 1]; mean=0, std=1 gives [0, 1].
    out_channels: 3 (RGB order) for colour layouts, 1 for GRAY by default; 1 with a colour
        layout mixes BT.601 gray, 3 with GRAY replicates it.
    dtype: float32 or float16.
    """
    lay = _spec.get_layout(layout)
    groups, batch = _spec.image_batch(images, lay)
    oh, ow = _spec.out_size(out_hw)
    dt = _spec.out_dtype(dtype)
    p = _spec.preprocess_params(lay, mean, std, out_channels)
    read = p.src_channels if (p.to_gray or p.out_channels == 3) else p.src_channels[:1]

    out = np.empty((batch, p.out_channels, oh, ow), dtype=dt)  # (B, C, H, W)
    for g in groups:
        for i, img in enumerate(g.array):
            v = _resize_planes(img, read, oh, ow)  # (k, oh, ow) float32 in [0, 255]
            if p.to_gray:
                r, gr, b = v
                v = (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * gr + GRAY_WEIGHTS[2] * b)[None]
            for c in range(p.out_channels):
                plane = v[c] * p.scale[c]
                plane += p.offset[c]
                out[g.start + i, c] = plane  # float16: numpy casts with round-half-to-even
    return out


def postprocess(x: np.ndarray, value_range="-1,1", layout: str = "RGB") -> np.ndarray:
    """(B, C, H, W) float32/float16 model output -> (B, H, W, C) uint8 (a (C, H, W) input gives (H, W, C)).

    value_range: "-1,1", "0,1" or a (low, high) pair: the range that maps onto 0..255.
    layout: RGB or BGR (3 channels in, RGB planes) or GRAY (1 channel).
    Values are clamped, rounded half to even, and NaN becomes 0 (black), never an exception,
    so one bad pixel cannot take the whole batch down.
    """
    lay = _spec.get_layout(layout, ("RGB", "BGR", "GRAY"))
    x, single = _spec.check_nchw(x, lay)
    p = _spec.postprocess_params(lay, value_range)
    planes = x[:, list(p.src_channels[: p.channels])]  # (B, C, H, W) in output byte order
    v = planes.astype(_F) * p.scale
    v += p.offset
    nan = np.isnan(v)
    np.clip(v, _F(0), _F(255), out=v)
    np.rint(v, out=v)
    v[nan] = 0
    out = np.ascontiguousarray(v.astype(np.uint8).transpose(0, 2, 3, 1))  # (B, H, W, C)
    return out[0] if single else out


def rgb_to_y(images, layout: str = "RGB"):
    """uint8 colour image(s) -> float32 Y (BT.601, MATLAB rgb2ycbcr) in [16, 235].

    (H, W, C) -> (H, W); (B, H, W, C) -> (B, H, W); a list -> a list of (H, W).
    """
    lay = _spec.get_layout(layout, ("RGB", "BGR", "RGBA", "BGRA"))
    cr, cg, cb = _spec.y_channels(lay)
    groups, _ = _spec.image_batch(images, lay)
    outs = []
    for g in groups:
        a = g.array
        acc = Y_WEIGHTS[0] * a[..., cr] + Y_WEIGHTS[1] * a[..., cg]  # (n, H, W) float32
        acc += Y_WEIGHTS[2] * a[..., cb]
        acc /= _F(255)
        acc += _F(16)
        outs.append(acc)
    if isinstance(images, np.ndarray):
        return outs[0] if images.ndim == 4 else outs[0][0]
    return [y[0] for y in outs]


class NumpyProcessor:
    """The CPU implementation of the processor interface (see get_processor)."""

    device = "cpu"

    def __init__(self, fallback_reason: str | None = None):
        # Why the CUDA processor was not used, when get_processor fell back to this one.
        self.fallback_reason = fallback_reason

    def preprocess(self, images, out_hw, layout="RGB", mean=0.5, std=0.5, dtype=np.float32, out_channels=None):
        return preprocess(images, out_hw, layout, mean, std, dtype, out_channels)

    def postprocess(self, x, value_range="-1,1", layout="RGB"):
        return postprocess(x, value_range, layout)

    def rgb_to_y(self, images, layout="RGB"):
        return rgb_to_y(images, layout)

    def __repr__(self) -> str:
        return "NumpyProcessor()" if not self.fallback_reason else f"NumpyProcessor(fallback: {self.fallback_reason})"
