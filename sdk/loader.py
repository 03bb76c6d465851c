"""`skugen.load(bundle)`: open, verify and choose (skugen.selection), then the Pipeline of the bundle's kind
(skugen.pipeline.Pipeline; skugen.diffusion.DiffusionPipeline for text-to-image bundles)."""
from __future__ import annotations

import logging
import os
from typing import Any

from .bundle import Bundle, load_bundle
from .diffusion import DiffusionPipeline
from .errors import InputError
from .pipeline import Pipeline
from .selection import BACKENDS, check_threads

log = logging.getLogger("skugen.pipeline")



def load(path: Any, backend: str = "auto", precision: str = "auto", threads: int | None = None,
         verify: bool = True, trusted_keys: Any = None) -> "Pipeline":
    """Open (and sha256-verify) a bundle and return a ready Pipeline.

    backend: "auto" | "onnxruntime" | "openvino" | "tensorrt"; precision: "auto" | "fp32" | "fp16" | "bf16" |
    "int8" (see the module docstring for what auto picks). threads: intra-op CPU threads for
    ONNX Runtime / OpenVINO (None: SKUGEN_NUM_THREADS, else all cores).
    trusted_keys: public-key files, directories or key ids of the signers to trust (default: SKUGEN_TRUSTED_KEYS
    when set); with a policy, an unsigned, forged or foreign-signed bundle raises IntegrityError (skugen.signing).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"bundle path must be a str or path, got {type(path).__name__}")
    threads = check_threads(threads)
    if backend not in BACKENDS:  # before the (slower) bundle verification
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    bundle = load_bundle(path, verify=verify, trusted_keys=trusted_keys)
    spec = bundle.spec
    from .backends import runner_for
    from .errors import SkugenError
    from .selection import choose

    choice = choose(backend, precision, bundle)
    try:
        runner = runner_for(bundle, choice.backend, choice.precision, threads=threads)
        runner.activate()
    except SkugenError as e:  # BackendUnavailable, EngineMismatch, a failed engine build
        if backend != "auto" or choice.backend != "tensorrt":
            raise
        # auto never fails on a TensorRT that is installed but cannot run this bundle: the CPU choice runs.
        log.warning("TensorRT was usable but failed to load %s (%s); falling back to the CPU engines", bundle.name, e)
        choice = choose(backend, precision, bundle, allow_tensorrt=False)
        choice.tensorrt = f"skipped: it failed to load this bundle ({type(e).__name__}: {str(e)[:200]})"
        runner = runner_for(bundle, choice.backend, choice.precision, threads=threads)
        runner.activate()
    try:
        if spec.kind == "diffusion":
            pipe = _diffusion_pipeline(bundle, runner, choice, threads)
        else:
            pipe = Pipeline(bundle, spec, runner, choice.backend, choice.precision, threads)
    except BaseException:
        runner.deactivate()
        raise
    pipe.info["selection"] = choice.to_dict()
    return pipe

def _diffusion_pipeline(bundle: Bundle, runner, choice, threads: int | None):
    """The denoiser runs on the chosen engine x precision; the text encoder (run once per call, a few M MACs) on
    the same engine, at that precision when its graph has it, else fp32 (bf16 is OpenVINO's hint on fp32)."""
    from .backends import runner_for

    text, tp = next((g, p) for g, p in bundle.graphs_at(choice.precision)
                    if g.graph_name == bundle.spec.diffusion.text_graph)
    tr = runner_for(text, choice.backend, tp, threads=threads)
    tr.activate()
    try:
        return DiffusionPipeline(bundle, bundle.spec, runner, choice.backend, choice.precision, threads, tr, tp)
    except BaseException:
        tr.deactivate()
        raise
