"""OpenVINO runner (CPU plugin): the bundle's model compiled with a precision hint, the latency hint, the
threads setting and a model cache directory.

    precision  what runs                                              hint
    fp32       models["fp32"] ONNX                                    INFERENCE_PRECISION_HINT f32
    bf16       models["fp32"] ONNX                                    bf16 (refused unless the CPU has it natively)
    int8       models["int8"].variants["openvino"]: the IR (xml+bin) NNCF quantized on the OpenVINO model;
               a bundle without it runs its Q/DQ int8 ONNX, and `info["model_source"]` says so

BF16 honesty: on a CPU without native BF16 (no AVX512_BF16 / AMX: OPTIMIZATION_CAPABILITIES lacks "BF16")
the CPU plugin accepts the bf16 hint and silently executes f32. This runner refuses that (BackendUnavailable)
instead of reporting f32 timings as bf16, and after compiling it checks the compiled model's own
INFERENCE_PRECISION_HINT (an ov.Type whose str() is "<Type: 'bfloat16'>": `precision_name` reads it) and that
some op of the runtime model executes bf16, so a plugin that downgrades is caught too.

Threads: one CompiledModel, one InferRequest per calling thread (OpenVINO's InferRequest is not re-entrant;
CompiledModel.create_infer_request is), so many threads infer concurrently without a lock.

Inputs: the CPU plugin accepts a wrong dtype (it converts) and even a wrong static dimension without an
error, so every call is validated against the model's inputs here (skugen.backends.base.Runner._validate),
whatever `check` says: the same InputErrors the ONNX Runtime path raises.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from skugen import config
from skugen.errors import BackendUnavailable, BundleError, need_extra

from .base import Runner, TensorMeta

log = logging.getLogger("skugen.openvino")

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the int8 ops run int8, the float rest f32
EXTRA = "openvino"


def import_openvino():
    """The openvino module, or BackendUnavailable naming the extra."""
    try:
        import openvino as ov
    except ImportError as e:
        raise need_extra("the OpenVINO backend (openvino)", EXTRA, e) from e
    return ov


def version() -> str | None:
    try:
        from importlib.metadata import version as v

        return v("openvino")
    except Exception:  # noqa: BLE001 - not installed / no metadata
        return None


_CORE = None
_CORE_LOCK = threading.Lock()


def core():
    """One ov.Core per process (creating one loads the plugins; it is thread-safe to share)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = import_openvino().Core()
        return _CORE


def cpu_capabilities() -> list[str]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES, e.g. ['FP32', 'INT8', 'BIN', 'EXPORT_IMPORT'] (+ 'BF16')."""
    return [str(c) for c in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def native_bf16() -> tuple[bool, str]:
    """(True, "") when the CPU executes bf16 natively, else (False, why)."""
    caps = cpu_capabilities()
    if "BF16" in caps:
        return True, ""
    name = core().get_property("CPU", "FULL_DEVICE_NAME")
    return False, (f"this CPU ({name}) has no native BF16 (OpenVINO OPTIMIZATION_CAPABILITIES {caps}; BF16 needs "
                   "AVX512_BF16 or AMX), and OpenVINO would silently run f32 under a bf16 hint")


def cache_dir_for(bundle) -> Path:
    """The compiled-model cache: <bundle>/engines/openvino/ when the bundle is writable, else
    <SKUGEN_CACHE_DIR>/openvino/<bundle>-<manifest sha256[:16]>/ (the TensorRT engine store's convention)."""
    primary = Path(bundle.root) / "engines" / "openvino"
    probe = next((p for p in (primary, primary.parent, Path(bundle.root)) if p.exists()), Path(bundle.root))
    if os.access(probe, os.W_OK):
        return primary
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle.name)
    return config.cache_dir("openvino") / f"{slug}-{bundle.manifest_sha256[:16]}"


def _meta_of(port) -> TensorMeta:
    ps = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else None for d in ps)
    return TensorMeta(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), shape)


def runtime_precisions(compiled) -> dict[str, int]:
    """op count per runtime precision of the compiled model (what the CPU plugin actually executes)."""
    out: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rti = op.get_rt_info()
        if "runtimePrecision" in rti:
            p = rti["runtimePrecision"].astype(str)
            out[p] = out.get(p, 0) + 1
    return out


def precision_name(t) -> str:
    """'bf16' / 'f32' / 'f16' / ... of an OpenVINO element type (ov.Type, or its str "<Type: 'bfloat16'>")."""
    name = getattr(t, "get_type_name", None)
    if callable(name):
        return str(name())
    s = str(t).lower()
    for key, short in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float32", "f32"), ("f32", "f32"),
                       ("float16", "f16"), ("f16", "f16")):
        if key in s:
            return short
    return str(t)


class OpenVINORunner(Runner):
    """Runs one model file (ONNX or IR xml + bin) on OpenVINO's CPU plugin. Thread-safe (one request per thread)."""

    name = "openvino"

    def __init__(self, model: str | os.PathLike, weights: str | os.PathLike | None = None, precision: str = "fp32",
                 threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                 model_source: str | None = None) -> None:
        super().__init__()
        if precision not in HINTS:
            raise ValueError(f"precision {precision!r} is not one of {sorted(HINTS)}")  # registry checks user input
        self.model = Path(model)
        self.weights = Path(weights) if weights else None
        self.precision = precision
        self.threads = threads if threads is not None else config.get_int("SKUGEN_NUM_THREADS")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.model_source = model_source or str(self.model.name)
        self._compiled = None
        self._local = threading.local()
        self._gen = 0  # bumped on every activate: a thread's request from an older compile is not reused

    def _activate(self) -> None:
        ov = import_openvino()
        hint = HINTS[self.precision]
        if hint == "bf16":
            ok, why = native_bf16()
            if not ok:
                raise BackendUnavailable(f"OpenVINO bf16: {why}. Use precision 'fp32' or 'int8' here, or run bf16 "
                                         "on a CPU with avx512_bf16 / amx_bf16.")
        for f in (self.model, self.weights):
            if f is not None and not f.is_file():
                raise BundleError(f"OpenVINO model file {f} not found. Re-copy or re-export the bundle.")
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = int(self.threads)
        c = core()
        try:
            model = c.read_model(str(self.model), str(self.weights)) if self.weights else c.read_model(str(self.model))
            if self.cache_dir is not None:
                # One cache directory per precision hint. OpenVINO 2026.4's cache key leaves the hint out: an f32
                # compile's blob was imported for a later bf16 request of the same model (same file name in the
                # cache) and the text encoder of fmnist-diffusion-student then returned 94% NaN. Measured here;
                # tests/sdk/backends/test_openvino.py::test_cache_is_kept_per_precision_hint.
                cache = self.cache_dir / hint
                try:
                    cache.mkdir(parents=True, exist_ok=True)
                    cfg["CACHE_DIR"] = str(cache)
                except OSError as e:  # a cache is an optimisation: compile without it
                    log.warning("OpenVINO cache dir %s is not writable (%s); compiling without a cache", self.cache_dir, e)
            compiled = c.compile_model(model, "CPU", cfg)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError / its own types for a bad model
            raise BundleError(f"OpenVINO cannot load {self.model.name} ({type(e).__name__}: {str(e)[:300]}). "
                              "Re-export the bundle; check `skugen info` and `skugen verify`.") from e
        got = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: str() is "<Type: 'bfloat16'>"
        executes = precision_name(got)
        ran = runtime_precisions(compiled)
        if hint == "bf16" and (executes != "bf16" or "bf16" not in ran):
            raise BackendUnavailable(f"OpenVINO compiled the bf16 request as {got} (runtime precisions {ran}): "
                                     "bf16 is not native here. Use precision 'fp32' or 'int8'.")
        self._meta = {m.name: m for m in (_meta_of(p) for p in compiled.inputs)}
        self._outputs = [p.get_any_name() for p in compiled.outputs]
        self._compiled = compiled
        self._gen += 1
        self.info = {"backend": "openvino", "device": "cpu", "providers": ["openvino CPU"],
                     "openvino": ov.__version__ if hasattr(ov, "__version__") else version(),
                     "intra_op_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                     "precision_hint": hint, "execution_precision": executes,
                     "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
                     "runtime_precisions": ran,
                     "model_file": getattr(self, "model_rel", self.model.name),
                     "model_sha256": getattr(self, "model_sha256", None),
                     "model_source": self.model_source,
                     "cache_dir": cfg.get("CACHE_DIR")}

    def _deactivate(self) -> None:
        self._compiled = None

    def _input_metadata(self) -> dict[str, TensorMeta]:
        return self._meta

    def _output_names(self) -> list[str]:
        return self._outputs

    def _request(self, compiled):
        loc = self._local
        if getattr(loc, "gen", None) != self._gen or getattr(loc, "req", None) is None:
            loc.req, loc.gen = compiled.create_infer_request(), self._gen
        return loc.req

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        compiled = self._compiled  # one read: deactivate() may clear it from another thread
        if compiled is None:
            raise RuntimeError("openvino runner is not active (its model was released by deactivate()): "
                               "call activate() again or use it as a context manager")
        self._validate(feed)  # OpenVINO itself converts dtypes and accepts wrong static dims (module docstring)
        res = self._request(compiled).infer(feed)  # share_outputs=False: fresh arrays, safe to keep
        return {n: res[n] for n in self._outputs}


def runner_for_bundle(bundle, precision: str, threads: int | None = None) -> OpenVINORunner:
    """The runner of `bundle` at `precision` (see the module docstring for which file runs)."""
    import_openvino()
    fp = "fp32" if precision in ("fp32", "bf16") else precision
    spec = bundle.spec
    v = spec.models[fp]
    ov_variant = v.variants.get("openvino")
    if ov_variant is not None:
        model = bundle.root / ov_variant.file
        weights = bundle.root / ov_variant.weights if ov_variant.weights else None
        source = f"{fp} OpenVINO IR variant ({ov_variant.file})"
    else:
        model, weights = bundle.root / v.file, None
        source = (f"{fp} ONNX ({v.file}) read directly by OpenVINO" +
                  ("; the bundle has no OpenVINO INT8 variant (NNCF on the OpenVINO model), so OpenVINO runs the "
                   "ONNX Runtime-flavoured Q/DQ graph, usually slower: re-export to add it" if fp == "int8" else ""))
    r = OpenVINORunner(model, weights, precision, threads=threads, cache_dir=cache_dir_for(bundle), model_source=source)
    r.model_rel, r.model_sha256 = (ov_variant or v).file, (ov_variant or v).sha256  # for pipe.info / provenance
    return r
