"""Backend and precision choice for `skugen.load` ("auto" included), from the parsed manifest and measurements.

backend="auto":
    1. TensorRT when it is usable here (skugen.backends.registry.tensorrt_usable: TensorRT + pycuda + a GPU);
       installed but unusable, it is skipped and `Choice.tensorrt` says why (never an error);
    2. otherwise the fastest installed CPU engine among OpenVINO and ONNX Runtime, by measurement:
       a tune sidecar measured on this machine (`skugen tune BUNDLE`), else the manifest's export-time table
       when it was measured on a machine with the same fingerprint (skugen.tune);
    3. with no measurement for this machine, the static preference: OpenVINO at int8 when the bundle ships
       the OpenVINO INT8 variant (NNCF on the OpenVINO model: the fastest cell on both students in issue 16)
       and openvino is installed, else ONNX Runtime (int8 unless its export-time cpu_latency measured fp32 faster).
precision="auto": the fastest measured precision the bundle's gate accepted for that engine (int8 passed the
    INT8 gate to be in the bundle; bf16 only when the bundle records an accepted BF16 gate and the CPU runs it
    natively); TensorRT: fp16. An explicit backend or precision narrows the same choice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import InputError

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


@dataclass
class Choice:
    """What skugen.load runs and why (pipe.info["selection"])."""

    backend: str
    precision: str
    source: str                       # requested | tune sidecar | manifest tune table | static preference
    reason: str
    tensorrt: str | None = None       # why TensorRT was skipped (auto only)
    measured: dict | None = None      # the chosen cell of the table (p50_ms, request, ...)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _check(backend: Any, precision: Any) -> None:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def resolve(backend: Any, precision: Any, bundle: Bundle) -> tuple[str, str]:
    """(backend, precision) to run: "auto" resolved (module docstring), the pair checked."""
    c = choose(backend, precision, bundle)
    return c.backend, c.precision


def choose(backend: Any, precision: Any, bundle: Bundle, *, allow_tensorrt: bool = True) -> Choice:
    """The full choice with its reasons (see the module docstring)."""
    _check(backend, precision)
    from .backends import registry

    trt_note = None
    if backend == "auto":
        if allow_tensorrt and registry.tensorrt_usable():
            p = "fp16" if precision == "auto" else precision
            return Choice("tensorrt", p, "requested" if precision != "auto" else "static preference",
                          "TensorRT is usable here (TensorRT + pycuda + an NVIDIA GPU): it runs first")
        st = registry.backend_status("tensorrt")
        trt_note = ("skipped: " + (st.reason or "not usable here")) if allow_tensorrt else "skipped: it failed to load"
    if backend == "tensorrt":
        return Choice("tensorrt", "fp16" if precision == "auto" else precision, "requested", "backend='tensorrt'")
    if backend in ("onnxruntime", "openvino") and precision != "auto":
        _check_pair(backend, precision, bundle)
        return Choice(backend, precision, "requested", f"backend={backend!r}, precision={precision!r}")
    c = _cpu_choice(backend, precision, bundle)
    c.tensorrt = trt_note
    return c


def _check_pair(backend: str, precision: str, bundle: Bundle) -> None:
    have = bundle.precisions
    if backend == "onnxruntime" and precision not in have:
        if precision == "fp16":
            raise InputError(f"precision 'fp16' runs on TensorRT; ONNX Runtime runs this bundle's "
                             f"{have} models. Use backend='tensorrt' on an NVIDIA GPU, or precision='fp32'/'int8'.")
        if precision == "bf16":
            raise InputError("precision 'bf16' is an OpenVINO precision hint; use backend='openvino' (on a CPU with "
                             "native BF16), or precision='fp32'/'int8' on ONNX Runtime.")
        raise InputError(f"bundle {bundle.name!r} has no {precision!r} model (it has {have}); "
                         "re-export with INT8 or pick one of those precisions.")


def _cpu_choice(backend: str, precision: str, bundle: Bundle) -> Choice:
    from . import tune
    from .backends import registry

    engines = registry.cpu_engines() if backend == "auto" else [backend]
    if not engines:
        raise InputError("no CPU engine is installed: pip install onnxruntime (or 'skugen[openvino]').")
    want_p = None if precision == "auto" else precision
    allowed = {(e, p) for e, p, why in tune.candidates(bundle, engines) if why is None}
    notes: list[str] = []
    table, path, why = tune.load_sidecar(bundle)
    if why:
        notes.append(f"tune sidecar not used: {why}")
    src = f"tune sidecar {path}"
    if table is None:
        table, why = tune.manifest_record(bundle)
        src = "manifest tune table (export time)"
        if why:
            notes.append(f"{why}")
    if table is not None:
        cell = tune.fastest(table, precision=want_p, allowed=allowed)
        if cell is not None:
            return Choice(cell["engine"], cell["precision"], src,
                          f"fastest measured cell: {cell['engine']}/{cell['precision']} {cell['p50_ms']:.3f} ms per "
                          f"{table.get('request')} among {sorted(f'{e}/{p}' for e, p in allowed)}",
                          measured={**cell, "request": table.get("request")}, notes=notes)
        notes.append("the measured table has no runnable cell for this choice")
    be, p, reason = _static(engines, want_p, bundle, allowed)
    return Choice(be, p, "static preference", reason, notes=notes)


def _static(engines: list[str], precision: str | None, bundle: Bundle, allowed: set) -> tuple[str, str, str]:
    int8 = bundle.spec.models.get("int8")
    ov_int8 = int8 is not None and "openvino" in int8.variants
    if "openvino" in engines and ov_int8 and precision in (None, "int8") and ("openvino", "int8") in allowed:
        return "openvino", "int8", ("no measurement for this machine: static preference for the bundle's OpenVINO "
                                    "INT8 variant (NNCF on the OpenVINO model); run `skugen tune BUNDLE` to measure")
    be = "onnxruntime" if "onnxruntime" in engines else engines[0]
    if precision is None:
        p = fastest_cpu_precision(bundle) if be == "onnxruntime" else ("int8" if (be, "int8") in allowed else "fp32")
    else:
        p = precision
        _check_pair(be, p, bundle)
    return be, p, (f"no measurement for this machine: static preference {be}/{p} "
                   "(run `skugen tune BUNDLE` to measure the engines here)")


def fastest_cpu_precision(bundle: Bundle) -> str:
    """int8 when the bundle has it, unless export measured it slower than fp32 on ONNX Runtime CPU."""
    have = bundle.precisions
    if "int8" not in have:
        return "fp32"
    lat = {p: getattr(bundle.spec.models[p].cpu_latency, "p50_ms", None) for p in ("fp32", "int8")}
    if lat["fp32"] and lat["int8"] and lat["fp32"] < lat["int8"]:
        return "fp32"
    return "int8"


def check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InputError(f"threads must be a positive int or None (all cores), got {threads!r}")
    return int(threads)
