"""pycuda launcher for the skugen kernels, and `get_processor`, the runtime's entry point.

    proc = get_processor()                      # CudaProcessor if pycuda + a GPU, else NumpyProcessor
    x = proc.preprocess(frames, (256, 256))     # numpy in, numpy out (same on both)
    proc.preprocess_device(src_ptr, binding_ptr, batch=8, in_hw=(1080, 1920), out_hw=(256, 256),
                           pitch=frame_pitch, stream=stream)   # CudaProcessor only: device pointers

Kernels are compiled once per (source hash, GPU architecture, flags) with nvcc and the cubin
is cached under `skugen.config.cache_dir("kernels")`, so later processes start without nvcc.
"""
from __future__ import annotations

import logging
import re

import numpy as np

from skugen import config
from skugen.errors import BackendUnavailable, InputError, need_extra
from skugen.io import atomic_write_bytes

from ._launch import KERNEL_DIR, NVCC_OPTIONS, KernelProcessor, module_source, source_hash
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

    Uses the CUDA context current on this thread (e.g. the one TensorRT or pycuda.autoinit
    made); if there is none, it retains and pushes `device`'s primary context, the one the
    CUDA runtime (and so TensorRT) uses too.

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
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                raise RuntimeError("no CUDA device found")
            ctx = cuda.Context.get_current()
            if ctx is None:
                ctx = cuda.Device(device).retain_primary_context()
                ctx.push()
                import atexit

                atexit.register(ctx.pop)
            self.context = ctx
            self.gpu = ctx.get_device()
        except (cuda.Error, RuntimeError) as exc:
            raise need_extra("a CUDA GPU for the pre/post-processing kernels", "tensorrt", exc) from exc
        major, minor = self.gpu.compute_capability()
        self.arch = f"sm_{major}{minor}"
        self.module = cuda.module_from_buffer(self._cubin())
        self._fns = {}
        for name, sig in self._sigs.items():
            fn = self.module.get_function(name)
            fn.prepare("".join(p.code for p in sig))
            self._fns[name] = fn

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
    except BackendUnavailable as exc:
        log.debug("CUDA kernels unavailable, using numpy: %s", exc)
        return NumpyProcessor(fallback_reason=str(exc))
