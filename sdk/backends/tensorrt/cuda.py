"""TensorRT + CUDA environment: lazy imports of tensorrt and pycuda, the TensorRT logger, the device's primary
CUDA context, and the device description that names an engine.

Nothing here runs at import time: `_require` imports tensorrt (10.3 <= version < 12) and pycuda.driver on first
use and raises BackendUnavailable naming the `skugen[tensorrt]` extra when either, or a GPU, is missing or broken.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from skugen.errors import BackendUnavailable, InputError, need_extra

from . import plan as tp

log = logging.getLogger("skugen.tensorrt")


_FIX = "Install a supported TensorRT and pycuda: pip install 'skugen[tensorrt]'"


def _import_trt():
    """The tensorrt module, if importable and 10.3 <= version < 12; else BackendUnavailable ending with the fix."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libnvinfer is not loadable
        raise need_extra("TensorRT (Python package `tensorrt`)", "tensorrt", exc) from exc
    except Exception as exc:  # noqa: BLE001 - a broken install may raise anything at import
        raise BackendUnavailable(f"importing tensorrt failed ({type(exc).__name__}: {exc}). {_FIX}") from exc
    why = tp.version_problem(str(getattr(trt, "__version__", "?")))
    if why:
        raise BackendUnavailable(why)
    return trt


def _import_cuda(device: int = 0):
    """pycuda.driver, initialised, with `device` present."""
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError) as exc:  # OSError: pycuda built, but libcuda.so (the driver) missing
        raise need_extra("pycuda (CUDA device memory for TensorRT)", "tensorrt", exc) from exc
    except Exception as exc:  # noqa: BLE001
        raise BackendUnavailable(f"importing pycuda.driver failed ({type(exc).__name__}: {exc}). {_FIX}") from exc
    try:
        cuda.init()
        n = cuda.Device.count()
    except Exception as exc:  # noqa: BLE001 - cuda.Error, or anything a broken driver raises
        raise need_extra("an NVIDIA GPU with a working driver (cuInit failed)", "tensorrt", exc) from exc
    if n == 0:
        raise need_extra("an NVIDIA GPU (the CUDA driver reports no device)", "tensorrt")
    if not 0 <= int(device) < n:
        raise InputError(f"CUDA device {device} does not exist; this machine has {n} (0..{n - 1}). Pass a device "
                         f"between 0 and {n - 1}.")
    return cuda


def _require(device: int = 0):
    """(tensorrt, pycuda.driver), both usable, or BackendUnavailable whose message ends with the fix.

    Usable means: tensorrt imports (its libraries load) with 10.3 <= version < 12, pycuda.driver imports,
    cuInit works and `device` exists. Checked in that order; TensorRT first.
    """
    return _import_trt(), _import_cuda(device)


def unavailable_reason(device: int = 0) -> str | None:
    """None when TensorRT can run here, else why not (ends with the fix). Never raises."""
    try:
        _require(device)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        msg = str(exc) or type(exc).__name__
        return msg if "pip install" in msg or "Pass a device" in msg else f"{msg}. {_FIX}"
    return None


def is_available(device: int = 0) -> bool:
    """True when TensorRT 10.3..11.x and pycuda import and a CUDA GPU is present. Never raises."""
    return unavailable_reason(device) is None


def status(device: int = 0) -> dict:
    """What `skugen env` prints: the TensorRT found (from package metadata, no import), whether its version is in
    the supported range, and whether the backend is usable here (with the reason when not)."""
    from importlib import metadata

    found = None
    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings",
                 "tensorrt_libs"):
        try:
            found = metadata.version(dist)
            break
        except Exception:  # noqa: BLE001 - not installed (or broken metadata)
            continue
    reason = unavailable_reason(device)
    return {"found": found, "in_range": (tp.version_in_range(found) if found else False),
            "supported": "10.3 <= version < 12", "usable": reason is None, "reason": reason or ""}


_TRT_LOGGER = None


def _logger(trt):
    """One process-wide TensorRT logger (it must outlive every builder/runtime) -> Python logging.

    Keeps the last error messages so exceptions can quote what TensorRT said.
    """
    global _TRT_LOGGER
    if _TRT_LOGGER is None:
        sev = trt.ILogger.Severity
        levels = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING,
                  sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG}

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)  # required for pybind trampolines
                self.errors: list[str] = []

            def log(self, severity, msg):
                level = levels.get(severity, logging.DEBUG)
                if level >= logging.ERROR:
                    self.errors = (self.errors + [str(msg)])[-10:]
                if log.isEnabledFor(level):
                    log.log(level, "TensorRT: %s", msg)

        _TRT_LOGGER = _Logger()
    return _TRT_LOGGER


def _trt_errors() -> str:
    errs = getattr(_TRT_LOGGER, "errors", None) or []
    return (" TensorRT said: " + " | ".join(errs[-3:])) if errs else ""


class _PrimaryContext:
    """The device's primary CUDA context: the one the CUDA runtime, and so TensorRT, uses.

    pycuda calls need a current context on the calling thread; `scope()` pushes it for
    the duration of a call, so a runner works from any thread (the base lock serialises).
    """

    def __init__(self, cuda, device: int):
        self.cuda = cuda
        self.device = cuda.Device(int(device))
        self.ctx = self.device.retain_primary_context()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        self.ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            self.ctx.detach()


def _device_info(cuda, index: int) -> dict:
    dev = cuda.Device(int(index))
    info = {"index": int(index), "name": dev.name(), "compute_capability": tp.cc_string(dev.compute_capability()),
            "total_memory_bytes": int(dev.total_memory())}
    with contextlib.suppress(Exception):
        v = cuda.get_driver_version()  # e.g. 12040 -> "12.4"
        info["cuda_driver"] = f"{v // 1000}.{(v % 1000) // 10}"
    with contextlib.suppress(Exception):
        info["cuda_toolkit"] = ".".join(str(x) for x in cuda.get_version())
    return info


def current_device(device: int = 0) -> dict:
    """Name, compute capability, memory and CUDA versions of a GPU, plus the TensorRT version."""
    trt, cuda = _require(device)
    info = _device_info(cuda, device)
    info["tensorrt_version"] = trt.__version__
    return info
