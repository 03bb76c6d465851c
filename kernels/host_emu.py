"""Run the CUDA kernels on the CPU: the same .cu sources built by g++ through host_emu.h.

Used by the tests (no GPU needed) to check the kernels against the numpy reference,
and, built with AddressSanitizer, to prove no kernel reads or writes out of bounds:

    proc = EmulatedProcessor()            # same interface as NumpyProcessor / CudaProcessor
    proc.preprocess(images, (256, 256))

Every buffer handed to an emulated kernel is a fresh exact-size malloc (the "device"
memory), so with `sanitize=True` any byte past an input or output is an ASan error.
A sanitized library can only load into a process started with libasan preloaded:
run `python -m skugen.cli kernels emulate --sanitize` (it re-executes itself that way).
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from skugen import config
from skugen.errors import BackendUnavailable
from skugen.io import atomic_write_bytes

from ._launch import KERNEL_DIR, SOURCES, KernelProcessor, kernel_signatures, source_hash

# -ffp-contract=off: a*b+c must stay two roundings, as __fmul_rn/__fadd_rn are on the GPU.
CXXFLAGS = ["-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared"]
SANITIZE_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all"]

_CTYPES = {"P": ctypes.c_void_p, "q": ctypes.c_longlong, "i": ctypes.c_int, "f": ctypes.c_float}


def _cxx() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise BackendUnavailable(f"host emulation needs a C++17 compiler; {cxx!r} was not found "
                                 f"(install g++ or set CXX)")
    return cxx


def _emulation_source() -> str:
    """The translation unit: every kernel source plus one exported launcher per kernel."""
    lines = ['#include "host_emu.h"'] + [f'#include "{s}"' for s in SOURCES]
    lines += [f"SKUGEN_EMU_EXPORT({name})" for name in kernel_signatures()]
    lines.append("SKUGEN_EMU_HELPERS")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def build_library(sanitize: bool = False) -> Path:
    """Compile (once, cached by source hash and flags) the emulation shared library."""
    cxx = _cxx()
    flags = CXXFLAGS + (SANITIZE_FLAGS if sanitize else [])
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    key = source_hash(f"{version};{' '.join(flags)}")[:20]
    lib = config.cache_dir("kernels") / f"emu-{key}{'-asan' if sanitize else ''}.so"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "emulation.cpp"
        src.write_text(_emulation_source())
        out = Path(tmp) / "lib.so"
        cmd = [cxx, *flags, f"-I{KERNEL_DIR}", str(src), "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"host-emulation build failed:\n{' '.join(cmd)}\n{r.stderr}")
        atomic_write_bytes(lib, out.read_bytes())
    return lib


def asan_runtime() -> str | None:
    """Path of the compiler's libasan, for LD_PRELOAD (None if the compiler has none)."""
    r = subprocess.run([_cxx(), "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = r.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


class _HostBuffer:
    """An exact-size malloc from the emulation library: the emulated 'device' memory."""

    def __init__(self, lib, nbytes: int):
        self.lib, self.nbytes = lib, nbytes
        self.ptr = lib.emu_malloc(nbytes)
        assert self.ptr, "emu_malloc failed"

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            self.lib.emu_free(self.ptr)
            self.ptr = None


class EmulatedProcessor(KernelProcessor):
    """The kernels run on the CPU (one emulated thread at a time); same API as CudaProcessor."""

    device = "host-emulation"

    def __init__(self, sanitize: bool = False):
        super().__init__()
        self.sanitize = sanitize
        self.lib = ctypes.CDLL(str(build_library(sanitize)))
        self.lib.emu_malloc.restype = ctypes.c_void_p
        self.lib.emu_malloc.argtypes = [ctypes.c_size_t]
        self.lib.emu_free.argtypes = [ctypes.c_void_p]
        self._fns = {}
        for name, sig in self._sigs.items():
            addr = ctypes.c_void_p.in_dll(self.lib, f"emu_{name}").value
            proto = ctypes.CFUNCTYPE(None, *[ctypes.c_uint] * 6, *[_CTYPES[p.code] for p in sig])
            self._fns[name] = proto(addr)

    def _alloc(self, nbytes: int):
        return _HostBuffer(self.lib, nbytes)

    def _upload(self, host: np.ndarray):
        buf = _HostBuffer(self.lib, host.nbytes)
        ctypes.memmove(buf.ptr, np.ascontiguousarray(host).ctypes.data, host.nbytes)
        return buf

    def _download(self, buf, out: np.ndarray) -> None:
        assert out.flags.c_contiguous and out.nbytes <= buf.nbytes
        ctypes.memmove(out.ctypes.data, buf.ptr, out.nbytes)

    def _free(self, buf) -> None:
        buf.free()

    def _launch(self, name, grid, block, args, stream) -> None:
        self._fns[name](*grid, *block, *args)

    def float2half_bits(self, x: np.ndarray) -> np.ndarray:
        """The emulation's float32 -> float16 conversion (for tests against numpy)."""
        return self._convert(self.lib.emu_float2half, x, np.float32, np.uint16)

    def half2float(self, bits: np.ndarray) -> np.ndarray:
        return self._convert(self.lib.emu_half2float, bits, np.uint16, np.float32)

    @staticmethod
    def _convert(fn, x: np.ndarray, src, dst) -> np.ndarray:
        x = np.ascontiguousarray(x, src)
        out = np.empty(x.shape, dst)
        fn(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data), ctypes.c_longlong(x.size))
        return out


def needs_reexec(sanitize: bool) -> bool:
    """True when a sanitized library cannot load into this process (libasan is not preloaded)."""
    return sanitize and "libasan" not in os.environ.get("LD_PRELOAD", "")


def sanitized_env() -> dict[str, str] | None:
    """This process's environment with libasan preloaded (ASan exits 86, UBSan 87), or None without libasan."""
    rt = asan_runtime()
    if rt is None:
        return None
    return dict(os.environ, LD_PRELOAD=rt, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=86",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")


def emulated_processor(sanitize: bool = False, variant: str = "strided") -> EmulatedProcessor:
    proc = EmulatedProcessor(sanitize=sanitize)
    proc.variants = {"preprocess": variant, "postprocess": variant}
    return proc


def emulation_mismatches(proc: EmulatedProcessor, cases: int = 40, seed: int = 0) -> list:
    """The emulated kernels against the numpy reference on `cases` random cases per kernel (exact)."""
    from .selftest import compare, random_cases

    return compare(proc, random_cases(np.random.default_rng(seed), cases), exact=True)


def plant_oob(proc: EmulatedProcessor) -> None:
    """(a test of the checker) launch preprocess with a pitch 1 byte too large: ASan must abort here."""
    src = proc._upload(np.zeros((4, 5, 3), np.uint8).reshape(-1))
    dst = proc._alloc(3 * 2 * 2 * 4)
    proc.preprocess_device(src, dst, batch=1, in_hw=(4, 5), pitch=16, out_hw=(2, 2))
