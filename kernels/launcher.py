"""pycuda launcher for the skugen kernels, and `get_processor`, the runtime's entry point.

    proc = get_processor()                      # CudaProcessor if pycuda + a GPU, else NumpyProcessor
    x = proc.preprocess(frames, (256, 256))     # numpy in, numpy out (same on both)
    proc.preprocess_device(src_ptr, binding_ptr, batch=8, in_hw=(1080, 1920), out_hw=(256, 256),
                           pitch=frame_pitch, stream=stream)   # CudaProcessor only: device pointers

Kernels are compiled once per (source hash, GPU architecture, flags) with nvcc and the cubin
is cached under `skugen.config.cache_dir("kernels")`, so later processes start without nvcc.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from pathlib import Path

import numpy as np

from skugen import config
from skugen.errors import BackendUnavailable, InputError, need_extra
from skugen.io import atomic_write_bytes

from ._launch import KERNEL_DIR, NVCC_OPTIONS, KernelProcessor, module_source, source_hash

# Which kernel variant ("strided" | "x4") each op launches by default, as measured by scripts/gpu_kernels.py
# (`--choose` writes it after timing both on a GPU; package data, so an installed skugen reads it too).
# Absent or unreadable: KernelProcessor.DEFAULT_VARIANTS.
KERNEL_CHOICE = Path(__file__).resolve().parent / "kernel_choice.json"


def default_variants(path: Path | None = None) -> dict[str, str]:
    """KernelProcessor.DEFAULT_VARIANTS overridden by the measured choice in `path` (default KERNEL_CHOICE)."""
    out = dict(KernelProcessor.DEFAULT_VARIANTS)
    try:
        choice = json.loads(Path(path or KERNEL_CHOICE).read_text()).get("default_variants", {})
    except (OSError, ValueError, AttributeError):
        return out
    for op, v in (choice.items() if isinstance(choice, dict) else ()):
        if op in out and v in ("strided", "x4"):
            out[op] = v
    return out
from .reference import NumpyProcessor

log = logging.getLogger("skugen.kernels")


def _import_pycuda():
    try:
        import pycuda.driver as cuda
        from pycuda import compiler
    except ImportError as exc:  # also covers a pycuda built against a missing libcuda
        raise need_extra("pycuda (CUDA pre/post-processing kernels)", "tensorrt", exc) from exc
    return cuda, compiler


class CudaProcessor(KernelProcessor):
    """The kernels on an NVIDIA GPU through pycuda.

    Runs in `device`'s retained PRIMARY context, the one the CUDA runtime (and so TensorRT) uses:
    every public call pushes it on the calling thread and pops it again, so one processor works from
    any thread and never leaves a context current behind (use `pycuda.autoprimaryctx`, not
    `pycuda.autoinit`, if you make pycuda calls of your own: autoinit creates a second context).

    sync_after_launch: synchronise after every launch so an asynchronous fault (bad pointer,
    out-of-bounds access) is reported at the launch that caused it. Costs latency; use it
    to debug. Launch errors themselves are always checked.
    """

    device = "cuda"

    def __init__(self, device: int = 0, sync_after_launch: bool = False):
        super().__init__()
        cuda, compiler = _import_pycuda()
        self._cuda, self._compiler = cuda, compiler
        self.sync_after_launch = sync_after_launch
        self.variants = default_variants()
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                raise RuntimeError("no CUDA device found")
            self.gpu = cuda.Device(int(device))
            self.context = self.gpu.retain_primary_context()
        except (cuda.Error, RuntimeError) as exc:
            raise need_extra("a CUDA GPU for the pre/post-processing kernels", "tensorrt", exc) from exc
        major, minor = self.gpu.compute_capability()
        self.arch = f"sm_{major}{minor}"
        with self.scope():
            self.module = cuda.module_from_buffer(self._cubin())
            self._fns = {}
            for name, sig in self._sigs.items():
                fn = self.module.get_function(name)
                fn.prepare("".join(p.code for p in sig))
                self._fns[name] = fn

    @contextlib.contextmanager
    def scope(self):
        """The primary context pushed on this thread for the block (nests; popped on the way out)."""
        self.context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def close(self) -> None:
        """Release the retained primary context (the processor is unusable afterwards)."""
        ctx, self.context = getattr(self, "context", None), None
        if ctx is not None:
            with contextlib.suppress(Exception):
                ctx.detach()

    def _scoped(name):  # noqa: N805 - a decorator factory used in the class body below
        base = getattr(KernelProcessor, name)

        @functools.wraps(base)
        def call(self, *args, **kwargs):
            with self.scope():
                return base(self, *args, **kwargs)
        return call

    # Every public entry point runs inside the primary context (from any thread).
    preprocess = _scoped("preprocess")
    postprocess = _scoped("postprocess")
    rgb_to_y = _scoped("rgb_to_y")
    preprocess_device = _scoped("preprocess_device")
    postprocess_device = _scoped("postprocess_device")
    rgb_to_y_device = _scoped("rgb_to_y_device")
    del _scoped

    def _cubin(self) -> bytes:
        """Compiled module for this GPU, from the cache or nvcc (then cached)."""
        key = source_hash(f"{self.arch};{' '.join(NVCC_OPTIONS)}")[:24]
        path = config.cache_dir("kernels") / f"skugen-{self.arch}-{key}.cubin"
        if path.exists():
            return path.read_bytes()
        try:
            image = self._compiler.compile(module_source(), options=list(NVCC_OPTIONS), arch=self.arch,
                                           include_dirs=[str(KERNEL_DIR)], no_extern_c=True, cache_dir=False)
        except Exception as exc:  # pycuda raises CompileError, or OSError when nvcc is missing
            if re.search(r"[Uu]nsupported gpu architecture|not defined for option 'gpu-architecture'", str(exc)):
                # A GPU newer than this nvcc: ship PTX for the oldest arch and let the driver JIT it.
                image = self._compiler.compile(module_source(), options=list(NVCC_OPTIONS), arch="compute_75",
                                               code="compute_75", target="ptx", include_dirs=[str(KERNEL_DIR)],
                                               no_extern_c=True, cache_dir=False)
            else:
                raise BackendUnavailable(
                    f"compiling the CUDA kernels for {self.arch} failed ({type(exc).__name__}: {exc}). "
                    f"They need nvcc from the CUDA toolkit on PATH the first time (the cubin is then "
                    f"cached in {path.parent})") from exc
        atomic_write_bytes(path, image)
        return image

    # -- KernelProcessor hooks
    def _alloc(self, nbytes: int):
        return self._cuda.mem_alloc(max(nbytes, 1))

    def _upload(self, host: np.ndarray):
        buf = self._alloc(host.nbytes)
        self._cuda.memcpy_htod(buf, np.ascontiguousarray(host))
        return buf

    def _download(self, buf, out: np.ndarray) -> None:
        try:
            self._cuda.memcpy_dtoh(out, buf)  # synchronous: also surfaces faults of earlier launches
        except self._cuda.Error as exc:
            raise RuntimeError(f"CUDA error after a skugen kernel ran: {exc}") from exc

    def _free(self, buf) -> None:
        buf.free()

    def _launch(self, name, grid, block, args, stream) -> None:
        if stream is not None and not isinstance(stream, self._cuda.Stream):
            raise InputError(f"stream must be a pycuda.driver.Stream or None, got {type(stream).__name__}")
        try:
            self._fns[name].prepared_async_call(grid, block, stream, *args)
            if self.sync_after_launch:
                (stream.synchronize if stream is not None else self._cuda.Context.synchronize)()
        except self._cuda.Error as exc:
            raise RuntimeError(f"CUDA kernel {name} failed (grid {grid}, block {block}): {exc}") from exc

    def __repr__(self) -> str:
        return f"CudaProcessor({self.gpu.name()}, {self.arch})"


def get_processor(prefer: str = "auto"):
    """The pre/post-processing implementation the runtime should use.

    prefer="auto": CudaProcessor when pycuda, a GPU and (first time only) nvcc are there,
    else NumpyProcessor (its `fallback_reason` says why). "cuda": CudaProcessor or
    BackendUnavailable. "numpy"/"cpu": NumpyProcessor. Both have the same numpy-in,
    numpy-out methods: preprocess, postprocess, rgb_to_y.
    """
    key = str(prefer).lower()
    if key in ("numpy", "cpu"):
        return NumpyProcessor()
    if key == "cuda":
        return CudaProcessor()
    if key != "auto":
        raise InputError(f"prefer must be 'auto', 'cuda' or 'numpy', got {prefer!r}")
    try:
        return CudaProcessor()
    except Exception as exc:  # noqa: BLE001 - ANY CUDA load error (driver, module image, nvcc) -> numpy, with why
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BackendUnavailable) else str(exc)
        log.warning("CUDA pre/post-processing kernels unavailable, using the numpy reference: %s", reason)
        return NumpyProcessor(fallback_reason=reason)
