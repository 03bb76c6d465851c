"""TensorRT + CUDA environment: lazy imports of tensorrt and pycuda, the TensorRT logger, the device's primary
CUDA context, and the device description that names an engine.

Nothing here runs at import time: `_require` imports tensorrt (10+) and pycuda.driver on first use and raises
BackendUnavailable naming the `skugen[tensorrt]` extra when either, or a GPU, is missing.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from skugen.errors import BackendUnavailable, InputError, need_extra

from . import plan as tp

log = logging.getLogger("skugen.tensorrt")


def _import_trt():
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libnvinfer is not loadable
        raise need_extra("TensorRT (Python package `tensorrt`)", "tensorrt", exc) from exc
    major = str(getattr(trt, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 10:
        raise BackendUnavailable(f"TensorRT {getattr(trt, '__version__', '?')} is too old: skugen builds with the "
                                 "TensorRT 10 API. Install it with: pip install 'skugen[tensorrt]'")
    return trt


def _import_cuda(device: int = 0):
    """pycuda.driver, initialised, with `device` present."""
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError) as exc:  # OSError: pycuda built, but libcuda.so (the driver) missing
        raise need_extra("pycuda (CUDA device memory for TensorRT)", "tensorrt", exc) from exc
    try:
        cuda.init()
        n = cuda.Device.count()
    except cuda.Error as exc:
        raise need_extra("an NVIDIA GPU with a working driver (cuInit failed)", "tensorrt", exc) from exc
    if n == 0:
        raise need_extra("an NVIDIA GPU (the CUDA driver reports no device)", "tensorrt")
    if not 0 <= int(device) < n:
        raise InputError(f"CUDA device {device} does not exist; this machine has {n} (0..{n - 1}).")
    return cuda


def _require(device: int = 0):
    """(tensorrt, pycuda.driver) or BackendUnavailable naming the extra. TensorRT is checked first."""
    return _import_trt(), _import_cuda(device)


def is_available(device: int = 0) -> bool:
    """True when tensorrt (10+) and pycuda import and a CUDA GPU is present. Never raises."""
    try:
        _require(device)
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
    return True


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
