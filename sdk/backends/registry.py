"""The one place that builds runners: `runner_for(bundle, backend, precision)`, and which backends work here.

    with runner_for(bundle, "onnxruntime", "int8", threads=2) as r:
        out = r.infer(feed)
    available_backends()["tensorrt"]   # BackendStatus(usable=False, reason="... pip install 'skugen[tensorrt]'")

Backends (one module or package each, imported only when asked for):
    onnxruntime  skugen.backends.onnxruntime   the bundle's fp32 / int8 ONNX (fp16 when the bundle ships one)
    openvino     skugen.backends.openvino      fp32 / bf16 (fp32 ONNX, precision hint) / int8 (the NNCF IR variant,
                                               else the Q/DQ ONNX); `openvino` extra
    tensorrt     skugen.backends.tensorrt      an engine built from the bundle for THIS GPU (fp16 / int8)
    torch        skugen.backends.torch         the eager-PyTorch source model or a teacher (fp32; `export` extra)

Pipeline, verify and bench ask here; no other runtime module constructs a runner class (a test greps for it).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skugen.errors import InputError, need_extra

from .base import Runner

BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch")
CPU_ENGINES = ("openvino", "onnxruntime")  # the engines backend="auto" measures against each other off-GPU


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here, and if not, why (the message ends with what to install)."""

    name: str
    usable: bool
    reason: str  # "" when usable


def tensorrt_usable() -> bool:
    """True when TensorRT (10+), pycuda and a CUDA GPU are all present (cheap check, no engine build)."""
    try:
        from .tensorrt import is_available
    except ImportError:
        return False
    return is_available()


def _tensorrt_status() -> BackendStatus:
    try:
        from .tensorrt.cuda import _require
    except ImportError as e:
        return BackendStatus("tensorrt", False, f"skugen.backends.tensorrt cannot be imported ({e})")
    try:
        _require()
    except Exception as e:  # noqa: BLE001 - a broken driver must not take the caller down
        return BackendStatus("tensorrt", False, str(e))
    return BackendStatus("tensorrt", True, "")


def backend_status(name: str) -> BackendStatus:
    if name == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return BackendStatus(name, False, "onnxruntime is not installed. pip install onnxruntime")
        return BackendStatus(name, True, "")
    if name == "openvino":
        if importlib.util.find_spec("openvino") is None:
            return BackendStatus(name, False, str(need_extra("the OpenVINO backend (openvino)", "openvino",
                                                             ImportError("No module named 'openvino'"))))
        return BackendStatus(name, True, "")
    if name == "tensorrt":
        return _tensorrt_status()
    if name == "torch":
        if importlib.util.find_spec("torch") is None:
            return BackendStatus(name, False, str(need_extra("the eager PyTorch reference backend", "export",
                                                             ImportError("No module named 'torch'"))))
        return BackendStatus(name, True, "")
    raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")


def available_backends() -> dict[str, BackendStatus]:
    """name -> BackendStatus for every backend skugen knows. Never raises for a missing or broken backend."""
    return {n: backend_status(n) for n in BACKENDS}


def auto_backend() -> str:
    """The cheap part of backend="auto": TensorRT when it is usable here (TensorRT + pycuda + a GPU), else
    ONNX Runtime. skugen.load goes further (skugen.selection.choose): off-GPU it picks the measured fastest
    of the installed CPU engines (skugen.tune)."""
    return "tensorrt" if tensorrt_usable() else "onnxruntime"


def cpu_engines() -> list[str]:
    """The installed CPU engines among OpenVINO and ONNX Runtime, in static preference order."""
    return [e for e in CPU_ENGINES if backend_status(e).usable]

# ----------------------------------------------------------------------------- runners


def runner_for(bundle, backend: str, precision: str, *, threads: int | None = None, device: int | None = None,
               providers: list[str] | None = None, rebuild: bool = False, build_missing: bool = True,
               build_config: Any = None, model_dir: str | os.PathLike | None = None) -> Runner:
    """The runner of `bundle` on `backend` at `precision`, not yet activated (use it as a context manager).

    threads: CPU threads (ONNX Runtime intra-op, torch); None = SKUGEN_NUM_THREADS, else all cores.
    device: CUDA device ordinal (TensorRT). providers: ONNX Runtime execution providers (None: best installed).
    rebuild / build_missing / build_config: what the TensorRT runner does about a missing or mismatched engine
    (see skugen.backends.tensorrt.TensorRTRunner). model_dir: torch only, the model directory to run
    (default: the bundle's source/ model).
    """
    if backend == "onnxruntime":
        have = list(bundle.precisions)
        if precision not in have:
            if precision == "fp16":
                raise InputError(f"bundle {bundle.name!r} ships no fp16 ONNX (it has {have}); ONNX Runtime runs a "
                                 "bundle's model.fp16.onnx when it has one. Re-export with `skugen export ... --int8` "
                                 "(which adds the quality-gated FP16 graph), or use `--backend tensorrt --precision "
                                 "fp16` on an NVIDIA GPU, or precision 'fp32'/'int8'.")
            if precision == "bf16":
                raise InputError("ONNX Runtime's CPU provider has no bf16 path for these models; bf16 is an OpenVINO "
                                 "precision hint. Use `--backend openvino --precision bf16` (backend='openvino'), or "
                                 "precision 'fp32'/'int8'.")
            raise InputError(f"bundle {bundle.name!r} has no {precision!r} model (it has {have}); re-export with "
                             "INT8 or pick one of those precisions.")
        return onnx_runner(bundle.model_path(precision), threads=threads, providers=providers)
    if backend == "openvino":
        have = list(bundle.precisions)
        if precision == "fp16":
            raise InputError("OpenVINO's CPU plugin runs fp32, bf16 and int8 here; fp16 is a TensorRT engine "
                             "precision. Use precision 'bf16' (on a CPU with native BF16), 'fp32' or 'int8', or "
                             "`--backend tensorrt --precision fp16` on an NVIDIA GPU.")
        if precision not in ("fp32", "bf16", "int8"):
            raise InputError(f"unknown precision {precision!r} for OpenVINO; choose fp32, bf16 or int8.")
        need = "fp32" if precision == "bf16" else precision
        if need not in have:
            raise InputError(f"bundle {bundle.name!r} has no {need!r} model for OpenVINO {precision} (it has {have}); "
                             "re-export with INT8 or pick one of those precisions.")
        from .openvino import runner_for_bundle

        return runner_for_bundle(bundle, precision, threads=threads)
    if backend == "tensorrt":
        try:
            from .tensorrt import TensorRTRunner
        except ImportError as e:
            raise need_extra("the TensorRT backend (skugen.backends.tensorrt with tensorrt + pycuda)",
                             "tensorrt", e) from e
        return TensorRTRunner(bundle, precision, rebuild=rebuild, build_missing=build_missing, cfg=build_config,
                              device=device)
    if backend == "torch":
        from .torch import TorchRunner

        if precision != "fp32":
            raise InputError(f"the eager-PyTorch backend runs fp32 only, not {precision!r}; {precision} lives in the "
                             "bundle's ONNX / engines (backend 'onnxruntime' or 'tensorrt').")
        if model_dir is None:
            model_dir = Path(bundle.root) / "source"
        return TorchRunner(model_dir, threads=threads)
    raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")


def onnx_runner(model: str | os.PathLike | bytes, *, threads: int | None = None,
                providers: list[str] | None = None) -> Runner:
    """An ONNX Runtime runner for a bare ONNX file or bytes that is not a bundle model (e.g. a classifier)."""
    from .onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model, providers=providers, intra_op_threads=threads)
