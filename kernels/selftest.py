"""Randomised cases comparing a kernel processor with the numpy reference.

Shared by the host-emulation tests, the ASan run, the GPU tests and
scripts/gpu_kernels.py, so every backend is checked on the same kinds of input:
odd sizes, 1-pixel images, widths not a multiple of the block, pitched crops
(rows and images at a stride), batches and lists, up- and downscaling, every
layout, both dtypes, and NaN/inf/half-way values for postprocess.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import reference
from ._spec import LAYOUTS


@dataclass
class Case:
    kind: str  # "preprocess" | "postprocess" | "rgb_to_y"
    kwargs: dict = field(repr=False)
    desc: str = ""

    def run(self, proc):
        return getattr(proc, self.kind)(**self.kwargs)


def _image(rng, b: int, h: int, w: int, c: int, pitched: bool) -> np.ndarray:
    """(b, h, w, c) uint8, or a crop of a larger frame (row pitch and image stride != packed)."""
    dy, dx, db = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), 1) if pitched else (0, 0, 0)
    kind = rng.integers(3)
    shape = (b + db, h + dy, w + dx, c)
    if kind == 0:  # noise
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
    elif kind == 1:  # extremes only: 0 and 255 stress rounding at the ends
        frame = (rng.integers(0, 2, shape) * 255).astype(np.uint8)
    else:  # smooth gradient, like photos
        yy, xx = np.meshgrid(np.linspace(0, 1, shape[1]), np.linspace(0, 1, shape[2]), indexing="ij")
        base = (yy[..., None] * 180 + xx[..., None] * 75 * np.arange(1, c + 1)) % 256
        frame = np.broadcast_to(base, shape).astype(np.uint8).copy()
    return frame[db:, dy:, dx:] if pitched else frame


def preprocess_cases(rng, n: int) -> list[Case]:
    cases = []
    for i in range(n):
        layout = list(LAYOUTS)[i % len(LAYOUTS)]
        c = LAYOUTS[layout].channels
        pitched = bool(rng.integers(2))
        shape_kind = rng.integers(5)
        b = int(rng.integers(1, 4))
        h, w = (1, 1) if i == 0 else (int(rng.integers(1, 41)), int(rng.integers(1, 71)))
        if shape_kind == 0:  # a list of different sizes
            images = [_image(rng, 1, int(rng.integers(1, 30)), int(rng.integers(1, 45)), c, pitched)[0]
                      for _ in range(b)]
        elif shape_kind == 1:  # one image, no batch axis
            images = _image(rng, 1, h, w, c, pitched)[0]
            if c == 1 and rng.integers(2):
                images = images[:, :, 0]  # (H, W) gray
        else:
            images = _image(rng, b, h, w, c, pitched)
        out_hw = (int(rng.integers(1, 49)), int(rng.integers(1, 77)))
        if i % 7 == 3:
            out_hw = (h, w) if shape_kind >= 2 else out_hw  # identity size
        out_channels = None
        if rng.integers(4) == 0:
            out_channels = 3 if c == 1 else 1  # gray replicate / BT.601 mix
        n_out = out_channels or (1 if c == 1 else 3)
        mean, std = 0.5, 0.5
        if rng.integers(2):
            mean = rng.uniform(0, 1, n_out).round(3).tolist()
            std = rng.uniform(0.1, 1, n_out).round(3).tolist()
        dtype = np.float16 if rng.integers(2) else np.float32
        kw = dict(images=images, out_hw=out_hw, layout=layout, mean=mean, std=std, dtype=dtype,
                  out_channels=out_channels)
        shape = [a.shape for a in images] if isinstance(images, list) else images.shape
        cases.append(Case("preprocess", kw, f"preprocess {layout} {shape} pitched={pitched} -> {out_hw} "
                                            f"ch={out_channels} {np.dtype(dtype).name}"))
    return cases


def postprocess_cases(rng, n: int) -> list[Case]:
    cases = []
    for i in range(n):
        layout = ("RGB", "BGR", "GRAY")[i % 3]
        c = LAYOUTS[layout].channels
        b, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 41)), int(rng.integers(1, 71))
        value_range = ("-1,1", "0,1", (0, 255))[int(rng.integers(3))]
        lo, hi = (-1.0, 1.0) if value_range == "-1,1" else (0.0, 1.0) if value_range == "0,1" else (0.0, 255.0)
        x = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), (b, c, h, w)).astype(np.float32)
        if value_range == (0, 255):  # exact .5 values: round half to even must match
            x = np.floor(x) + np.float32(0.5)
        flat = x.reshape(-1)
        k = min(flat.size, 4)
        flat[rng.choice(flat.size, k, replace=False)] = np.array([np.nan, np.inf, -np.inf, -0.0])[:k]
        dtype = np.float16 if rng.integers(2) else np.float32
        x = x.astype(dtype)
        if i % 5 == 0:
            x = x[0]  # (C, H, W)
        kw = dict(x=x, value_range=value_range, layout=layout)
        cases.append(Case("postprocess", kw, f"postprocess {layout} {x.shape} {value_range} {x.dtype.name}"))
    return cases


def rgb_to_y_cases(rng, n: int) -> list[Case]:
    cases = []
    for i in range(n):
        layout = ("RGB", "BGR", "RGBA", "BGRA")[i % 4]
        c = LAYOUTS[layout].channels
        pitched = bool(rng.integers(2))
        b, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 41)), int(rng.integers(1, 71))
        images = _image(rng, b, h, w, c, pitched)
        if i % 3 == 1:
            images = images[0]
        elif i % 3 == 2:
            images = list(images)
        kw = dict(images=images, layout=layout)
        shape = [a.shape for a in images] if isinstance(images, list) else images.shape
        cases.append(Case("rgb_to_y", kw, f"rgb_to_y {layout} {shape} pitched={pitched}"))
    return cases


def random_cases(rng, n: int) -> list[Case]:
    """n cases of each kernel."""
    return preprocess_cases(rng, n) + postprocess_cases(rng, n) + rgb_to_y_cases(rng, n)


def max_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest |got - ref| relative to max(|ref|, 1): a scale-aware error that stays sane near 0."""
    g, r = got.astype(np.float64), ref.astype(np.float64)
    return float(np.max(np.abs(g - r)) / max(1.0, float(np.max(np.abs(r)))))


def mismatch(got, ref, exact: bool, rtol: float = 1e-6) -> str | None:
    """None if `got` matches `ref`: uint8 always bit-exact; floats bit-exact or within
    rtol * max(|ref|, 1) (float32), or one float16 ulp (float16)."""
    if isinstance(ref, list):
        if not isinstance(got, list) or len(got) != len(ref):
            return f"expected a list of {len(ref)} arrays, got {type(got).__name__}"
        for i, (g, r) in enumerate(zip(got, ref)):
            if (m := mismatch(g, r, exact, rtol)) is not None:
                return f"[{i}] {m}"
        return None
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return f"shape/dtype {got.shape} {got.dtype} != reference {ref.shape} {ref.dtype}"
    if ref.dtype == np.uint8 or exact:
        bad = got.view(np.uint8) != ref.view(np.uint8) if ref.dtype != np.uint8 else got != ref
        if np.any(bad):
            idx = np.argwhere(got != ref)[:3].tolist()
            return f"{int(np.count_nonzero(got != ref))} elements differ (first {idx}), max err {max_error(got, ref):.3g}"
        return None
    tol = 2.0 ** -10 if ref.dtype == np.float16 else rtol
    err = max_error(got, ref)
    return None if err <= tol else f"max scaled error {err:.3g} > {tol:.3g}"


def compare(proc, cases: list[Case], exact: bool = True, rtol: float = 1e-6) -> list[str]:
    """Run each case on `proc` and on the numpy reference; returns the failures (empty = all good)."""
    failures = []
    ref_proc = reference.NumpyProcessor()
    for case in cases:
        ref = case.run(ref_proc)
        got = case.run(proc)
        if (m := mismatch(got, ref, exact, rtol)) is not None:
            failures.append(f"{case.desc}: {m}")
    return failures
