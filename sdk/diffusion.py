"""DiffusionPipeline: a loaded diffusion bundle; tokenizer -> text encoder once -> N denoiser steps -> image.

    with skugen.load("runs/diffusion/bundle") as pipe:         # a DiffusionPipeline (below)
        res = pipe.generate(prompts=["a photo of white sneakers"], seed=0)  # default steps / guidance
        res.images, res.prompts, res.report.latency["call"]["steps_ms"]

Sampler: Euler on the rectified flow the bundle's denoiser learned (manifest `diffusion` section): start
from x = N(0, 1) noise at t = 1 and step x <- x + (t_next - t) v(x, t) down to t = 0 on a uniform grid.
Classifier-free guidance runs the prompt and the empty prompt as ONE denoiser batch per step
([cond; uncond], 2B rows) and mixes v = v_u + g (v_c - v_u); g = 1 skips the unconditional half.
Noise is default_rng(seed).standard_normal((n, C, H, W), float32): the same seed gives the same images on
every engine, which is what the export-time loop parity (and `skugen verify`) compare.
The loop itself is skugen.sampler (numpy only). The runtime never imports torch; both graphs go through
skugen.backends.runner_for.
"""
from __future__ import annotations

import functools
import json
import time
from typing import Any

import numpy as np

from . import gen_inputs, prepost
from .errors import BundleError, InputError
from .pipeline import Pipeline
from .report import CallTiming
from .result import Result
from .sampler import Feed, SampleTiming, check_guidance, check_steps, make_noise, sample
from .tokenizer import Tokenizer


class DiffusionPipeline(Pipeline):
    """A loaded diffusion bundle: the denoiser runner (the bundle's main graph, what `runner` is for every
    Pipeline) plus the text encoder's runner and the tokenizer. Create with skugen.load()."""

    def __init__(self, bundle, spec, runner, backend: str, precision: str, threads: int | None, text_runner,
                 text_precision: str) -> None:
        super().__init__(bundle, spec, runner, backend, precision, threads)
        d = spec.diffusion
        try:
            self.tokenizer = Tokenizer.from_dict(json.loads((bundle.root / d.vocab).read_text()), d.vocab)
        except (OSError, ValueError) as e:
            raise BundleError(f"bundle {bundle.name!r}: cannot read its vocabulary {d.vocab} ({e}). Re-export it.") from e
        if self.tokenizer.context != d.context:
            raise BundleError(f"bundle {bundle.name!r}: vocabulary context {self.tokenizer.context} != manifest "
                              f"diffusion.context {d.context}. Re-export it.")
        self.text_runner = text_runner
        self.text_precision = text_precision
        tin = spec.graph(d.text_graph).io
        self._text_out = tin.outputs[0].name
        self.info["diffusion"] = {"steps": d.steps, "max_steps": d.max_steps, "guidance": d.guidance,
                                  "distilled_guidance": d.distilled_guidance,
                                  "sampler": d.sampler, "objective": d.objective, "context": d.context,
                                  "vocab_size": self.tokenizer.size,
                                  "text_encoder": {"precision": text_precision,
                                                   # bf16: OpenVINO's hint on the fp32 file
                                                   "model_file": spec.graph(d.text_graph).variant(
                                                       "fp32" if text_precision == "bf16" else text_precision).file}}
        self.info.pop("classes", None)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.text_runner.deactivate()

    def _encode(self, tokens: np.ndarray) -> np.ndarray:
        return self.text_runner.infer({"tokens": tokens}, check=False)[self._text_out]

    def _denoise(self, feed: Feed) -> np.ndarray:
        return self.runner.infer(feed, check=False)[self.spec.output]

    def generate(self, prompts: Any = None, steps: int | None = None, guidance: float | None = None,
                 seed: int | None = None, noise: np.ndarray | None = None, **kw) -> Result:
        """Images for `prompts` (a list of strings; one image each).

        steps: Euler steps (default: the bundle's); guidance: classifier-free guidance scale (0: unconditional,
        1: none, default the bundle's); seed: noise default_rng(seed) (None draws one, recorded in the Result and
        the PNG metadata); noise: (n, C, H, W) float32 instead of a seed. Unknown words map to <unk> and are
        listed in `Result.unknown_words` and the report's notes.
        """
        if kw:
            bad = ", ".join(sorted(kw))
            raise InputError(f"generate() of a diffusion bundle takes prompts=, steps=, guidance=, seed=, noise=; "
                             f"not {bad}. Describe the product in the prompt instead of passing labels.")
        with self._call("diffusion"):
            sp, d = self.spec, self.spec.diffusion
            t0 = time.perf_counter()
            tokens, unknown = self.tokenizer.encode_batch(prompts)
            n_steps = check_steps(steps, d.steps, d.max_steps)
            g = check_guidance(guidance, d.guidance, d.distilled_guidance, self.bundle.name)
            shape = (sp.io.channels or 1, sp.io.image_size, sp.io.image_size)
            if noise is not None:
                if seed is not None:
                    raise InputError("pass either seed= or noise=, not both (noise already fixes the sample)")
                noise = np.asarray(noise)
                if noise.shape != (len(tokens), *shape) or not np.issubdtype(noise.dtype, np.floating):
                    raise InputError(f"noise must be a float array of shape {(len(tokens), *shape)}, got "
                                     f"{noise.dtype} {noise.shape}")
                if not np.isfinite(noise).all():
                    raise InputError("noise has NaN or inf values; pass finite N(0, 1) noise or a seed")
                seed_v = None
            else:
                seed_v = gen_inputs.check_seed(seed)
                seed_v = gen_inputs.fresh_seed() if seed_v is None else seed_v
                noise = make_noise(seed_v, len(tokens), shape)
            timing = SampleTiming()
            timing.text = time.perf_counter() - t0
            x = sample(self._encode, self._denoise, tokens, self.tokenizer.null(), noise, n_steps, g,
                       sp.max_batch, timing)
            t3 = time.perf_counter()
            images = prepost.nchw_to_images(x, sp.value_range, self.processor)  # (n, H, W, C) uint8
            timing.post = time.perf_counter() - t3
            total = time.perf_counter() - t0
            ct = CallTiming(timing.text, timing.denoise, timing.post, len(tokens), total)
            self.stats.add(ct.pre, ct.infer, ct.post, ct.n_images, total)
        detail = {"text_ms": timing.text * 1e3, "denoise_ms": timing.denoise * 1e3, "post_ms": timing.post * 1e3,
                  "steps": n_steps, "steps_ms": [s * 1e3 for s in timing.steps],
                  "per_step_ms_mean": timing.denoise * 1e3 / n_steps, "guidance": g,
                  "denoiser_calls": timing.calls,
                  "note": "pre = tokenizer + text encoder; infer = the denoiser loop; post = float -> uint8"}
        notes = [f"prompt {i}: unknown word(s) {u} mapped to <unk> (not in the model's vocabulary)"
                 for i, u in enumerate(unknown) if u]
        n = len(tokens)
        return Result(images, None, None, [seed_v] * n, list(range(n)) if seed_v is not None else [None] * n, ct,
                      prompts=list(prompts), unknown_words=unknown, sampling={**detail, "seed": seed_v},
                      prompt_provenance={"Steps": str(n_steps), "Guidance": f"{g:g}", "Sampler": d.sampler},
                      _prov_base=self._provenance_base(),
                      _make_report=functools.partial(self._report, "call", notes=notes,
                                                     extra_config={"sampling": detail}))
