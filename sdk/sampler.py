"""The numpy sampling loop of diffusion bundles: step/guidance checks, the Euler time grid, seeded noise and
`sample` (text encoder once per chunk, the denoiser once per step with classifier-free guidance batched in).

It takes the two graphs as plain callables, so the same code drives ONNX Runtime / OpenVINO / TensorRT runners
in skugen.diffusion.DiffusionPipeline, the export-time parity and INT8 gates (skugen.export), and BLS requests
in the Triton sampling-loop model (skugen.triton copies this file verbatim into the repository). Keep it to
numpy and skugen's errors / tokenizer: the Triton container has nothing else.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BundleError, InputError
from .tokenizer import mask

Feed = dict[str, np.ndarray]


def check_steps(steps: Any, default: int, max_steps: int) -> int:
    if steps is None:
        return default
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise InputError(f"steps must be an int in [1, {max_steps}], got {steps!r} ({type(steps).__name__}).")
    if not 1 <= int(steps) <= max_steps:
        raise InputError(f"steps={steps} is outside [1, {max_steps}] for this model; use e.g. steps={default} "
                         "(its default) or leave steps=None.")
    return int(steps)


def check_guidance(guidance: Any, default: float, distilled: float | None = None, name: str = "this") -> float:
    """The guidance scale to sample with. `distilled`: the CFG scale a step-distilled student has in its weights
    (manifest diffusion.distilled_guidance); such a bundle samples without CFG, so only 1 (or None) is accepted."""
    if guidance is None:
        return float(default)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.integer, np.floating)):
        raise InputError(f"guidance must be a number >= 0, got {guidance!r} ({type(guidance).__name__}).")
    g = float(guidance)
    if not math.isfinite(g) or g < 0:
        raise InputError(f"guidance={guidance} is not a finite number >= 0. Use 0 for unconditional samples, 1 for "
                         f"no guidance, or larger for stronger prompt adherence (default {default}).")
    if distilled and g != 1.0:
        raise InputError(f"bundle {name!r} is a step-distilled student with guidance {distilled:g} in its weights: "
                         "it runs without classifier-free guidance. Leave guidance=None (or 1).")
    return g


def time_grid(steps: int) -> np.ndarray:
    """t_0 = 1 (noise) > t_1 > ... > t_steps = 0 (image), uniform; float32 like the denoiser's t input."""
    return np.linspace(1.0, 0.0, steps + 1, dtype=np.float32)


@dataclass
class SampleTiming:
    text: float = 0.0                           # tokenizer + text encoder, seconds
    steps: list[float] = field(default_factory=list)  # denoiser step i, summed over chunks
    post: float = 0.0
    calls: int = 0                              # denoiser calls (steps x chunks)

    @property
    def denoise(self) -> float:
        return float(sum(self.steps))


def sample(encode: Callable[[np.ndarray], np.ndarray], denoise: Callable[[Feed], np.ndarray], tokens: np.ndarray,
           null: Sequence[int], noise: np.ndarray, steps: int, guidance: float, max_batch: int,
           timing: SampleTiming | None = None) -> np.ndarray:
    """Euler sampling of len(tokens) images from `noise` (n, C, H, W); returns x at t = 0 (n, C, H, W) float32.

    encode(tokens (b, L) int64) -> context (b, L, D); denoise({x, t, context, mask}) -> v. Prompts are run in
    chunks so one denoiser call never exceeds `max_batch` rows (2 rows per prompt with guidance)."""
    timing = timing if timing is not None else SampleTiming()
    ts = time_grid(steps)
    cfg = guidance != 1.0
    per = max(1, max_batch // 2) if cfg else max_batch
    out = np.empty_like(noise, dtype=np.float32)
    if not timing.steps:
        timing.steps = [0.0] * steps
    for i in range(0, len(tokens), per):
        tok = tokens[i:i + per]
        b = len(tok)
        t0 = time.perf_counter()
        both = np.concatenate([tok, np.broadcast_to(np.asarray(null, np.int64), tok.shape)]) if cfg else tok
        ctx, m = encode(both), mask(both)                              # (rows, L, D), (rows, L)
        timing.text += time.perf_counter() - t0
        x = np.array(noise[i:i + b], dtype=np.float32)                 # (b, C, H, W)
        for k in range(steps):
            t1 = time.perf_counter()
            xx = np.concatenate([x, x]) if cfg else x
            v = denoise({"x": xx, "t": np.full(len(xx), ts[k], np.float32), "context": ctx, "mask": m})
            if v.shape != xx.shape:
                raise BundleError(f"the denoiser returned {v.shape} for x {xx.shape}; the bundle's graphs do not "
                                  "match its manifest. Re-export it.")
            if cfg:
                vc, vu = v[:b], v[b:]
                v = vu + np.float32(guidance) * (vc - vu)
            x += (ts[k + 1] - ts[k]) * v
            timing.steps[k] += time.perf_counter() - t1
            timing.calls += 1
        out[i:i + b] = x
    return out


def make_noise(seed: int, n: int, shape: tuple[int, int, int]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)
