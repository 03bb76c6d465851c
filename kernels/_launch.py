"""What the CUDA launcher and the host emulation share: the kernel sources, their
signatures, and the host-side orchestration (validation, launch geometry, arguments).

A backend (CUDA via pycuda, or the g++ host emulation) only supplies memory and a
`_launch(name, grid, block, args, stream)`; everything else, including the
device-pointer API, runs the same code on both, so the emulation tests cover it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _spec

KERNEL_DIR = Path(__file__).resolve().parent
SOURCES = ("preprocess.cu", "postprocess.cu", "rgb_to_y.cu")  # each #includes common.cuh
HEADERS = ("common.cuh", "host_emu.h")
BLOCK = (32, 8, 1)  # 256 threads: a warp spans 32 consecutive output pixels of one row
# nvcc flags for the launcher and the compile check. --fmad=false is belt and braces: the
# sources already use explicitly rounded intrinsics, which nvcc never fuses.
NVCC_OPTIONS = ("-O3", "--fmad=false")

# Bumped when the host/kernel calling convention changes without a source change.
ABI_VERSION = "1"


def source_files() -> list[Path]:
    return [KERNEL_DIR / f for f in SOURCES + HEADERS]


def source_hash(extra: str = "") -> str:
    """SHA-256 over every kernel source and header (name + bytes), plus `extra` (flags, arch)."""
    h = hashlib.sha256(f"abi={ABI_VERSION};{extra}".encode())
    for p in source_files():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def module_source() -> str:
    """One translation unit holding every kernel (compiled with -I KERNEL_DIR)."""
    return "".join(f'#include "{s}"\n' for s in SOURCES)


# ----------------------------------------------------------------------------- signatures

@dataclass(frozen=True)
class Param:
    name: str
    code: str  # pycuda/struct code: P pointer, q int64, i int32, f float32


_SIG = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)


def _param(decl: str) -> Param:
    decl = " ".join(decl.split())
    name = re.findall(r"\w+", decl)[-1]
    if "*" in decl:
        code = "P"
    elif re.match(r"^(const )?long long ", decl):
        code = "q"
    elif re.match(r"^(const )?int ", decl):
        code = "i"
    elif re.match(r"^(const )?float ", decl):
        code = "f"
    else:
        raise AssertionError(f"kernel parameter type not supported by the launcher: {decl!r}")
    return Param(name, code)


def kernel_signatures() -> dict[str, tuple[Param, ...]]:
    """{kernel name: parameters} parsed from the extern "C" __global__ entry points in SOURCES."""
    sigs = {}
    for s in SOURCES:
        for name, params in _SIG.findall((KERNEL_DIR / s).read_text()):
            sigs[name] = tuple(_param(p) for p in params.split(","))
    return sigs


def pack_args(sig: tuple[Param, ...], kwargs: dict) -> tuple:
    """Order keyword arguments as the kernel declares them, typed for the launch."""
    names = [p.name for p in sig]
    missing, extra = set(names) - set(kwargs), set(kwargs) - set(names)
    assert not missing and not extra, f"kernel arguments: missing {missing}, unexpected {extra}"
    conv = {"P": lambda v: int(v), "q": np.int64, "i": np.int32, "f": np.float32}
    return tuple(conv[p.code](kwargs[p.name]) for p in sig)


def pixels_per_thread() -> int:
    """SKUGEN_PIXELS_PER_THREAD from common.cuh: the grid must be sized with the kernels' value."""
    m = re.search(r"#define\s+SKUGEN_PIXELS_PER_THREAD\s+(\d+)", (KERNEL_DIR / "common.cuh").read_text())
    assert m, "SKUGEN_PIXELS_PER_THREAD missing from common.cuh"
    return int(m.group(1))


def grid_for(h: int, w: int, batch: int, per_thread: int = 1) -> tuple[int, int, int]:
    """Blocks covering a (batch, h, w) output, `per_thread` pixels of a row per thread."""
    return (-(-w // (BLOCK[0] * per_thread)), -(-h // BLOCK[1]), batch)


# ----------------------------------------------------------------------------- processor base

class KernelProcessor:
    """Host side of the kernels: validation, launch parameters, numpy convenience methods.

    Subclasses implement `_alloc(nbytes) -> buffer` (int(buffer) is its address),
    `_upload(host_bytes) -> buffer`, `_download(buffer, out)`, `_free(buffer)` and
    `_launch(name, grid, block, args, stream)`.

    Device-pointer methods (`*_device`) take addresses as ints (or objects with __int__, such
    as pycuda DeviceAllocation or a TensorRT binding address), enqueue on `stream` and return
    at once. numpy methods copy in, launch, copy out and return a new array: same signature
    and results as `skugen.kernels.reference`.
    """

    device = "abstract"

    # Which kernel variant each op launches: "strided" (SKUGEN_PIXELS_PER_THREAD pixels blockDim.x
    # apart: the H200-measured default) or "x4" (4 consecutive pixels, vector loads/stores).
    # Both give identical results; scripts/gpu_kernels.py times both so the faster can become
    # the default for a GPU (see benchmarks/kernels/). Change per processor: proc.variants[op] = "x4".
    DEFAULT_VARIANTS = {"preprocess": "strided", "postprocess": "strided"}

    def __init__(self):
        self._sigs = kernel_signatures()
        self._per_thread = pixels_per_thread()
        assert self._per_thread == 4, "the x4 kernels share the grid: SKUGEN_PIXELS_PER_THREAD must be 4"
        self.variants = dict(self.DEFAULT_VARIANTS)

    def _variant(self, op: str, name: str) -> str:
        v = self.variants.get(op, "strided")
        if v not in ("strided", "x4"):
            raise ValueError(f"kernel variant for {op} must be 'strided' or 'x4', got {v!r}")
        return name + "_x4" if v == "x4" else name

    # -- backend hooks
    def _alloc(self, nbytes: int):
        raise NotImplementedError

    def _upload(self, host: np.ndarray):
        raise NotImplementedError

    def _download(self, buf, out: np.ndarray) -> None:
        raise NotImplementedError

    def _free(self, buf) -> None:
        pass

    def _launch(self, name: str, grid, block, args: tuple, stream) -> None:
        raise NotImplementedError

    def _call(self, name: str, h: int, w: int, batch: int, stream, /, **kwargs) -> None:
        grid = grid_for(h, w, batch, self._per_thread)
        self._launch(name, grid, BLOCK, pack_args(self._sigs[name], kwargs), stream)

    # -- device-pointer API
    def preprocess_device(self, src, dst, *, batch: int, in_hw, out_hw, pitch: int | None = None,
                          image_stride: int | None = None, layout: str = "RGB", mean=0.5, std=0.5,
                          dtype=np.float32, out_channels: int | None = None, stream=None) -> None:
        """src: uint8 (batch, H, W, C) at `pitch` bytes a row and `image_stride` bytes an image
        (defaults: packed). dst: contiguous (batch, C, out_h, out_w) `dtype`. See reference.preprocess."""
        lay = _spec.get_layout(layout)
        pitch, image_stride = _spec.check_pitched(batch, in_hw, lay.channels, pitch, image_stride, "src")
        (in_h, in_w), (oh, ow) = _spec.out_size(in_hw), _spec.out_size(out_hw)
        dt = _spec.out_dtype(dtype)
        p = _spec.preprocess_params(lay, mean, std, out_channels)
        name = self._variant("preprocess", "skugen_preprocess_f16" if dt == np.float16 else "skugen_preprocess_f32")
        self._call(
            name, oh, ow, batch, stream,
            src=src, src_image_stride=image_stride, src_pitch=pitch,
            in_h=in_h, in_w=in_w, in_channels=lay.channels,
            ch0=p.src_channels[0], ch1=p.src_channels[1], ch2=p.src_channels[2], to_gray=int(p.to_gray),
            scale_y=_spec.resize_scale(in_h, oh), scale_x=_spec.resize_scale(in_w, ow),
            dst=dst, batch=batch, out_h=oh, out_w=ow, out_channels=p.out_channels,
            scale0=p.scale[0], scale1=p.scale[1], scale2=p.scale[2],
            offset0=p.offset[0], offset1=p.offset[1], offset2=p.offset[2])

    def postprocess_device(self, src, dst, *, batch: int, hw, layout: str = "RGB", value_range="-1,1",
                           dtype=np.float32, pitch: int | None = None, image_stride: int | None = None,
                           stream=None) -> None:
        """src: contiguous (batch, C, H, W) `dtype` (float32/float16). dst: uint8 (batch, H, W, C) at
        `pitch` bytes a row and `image_stride` bytes an image (defaults: packed). See reference.postprocess."""
        lay = _spec.get_layout(layout, ("RGB", "BGR", "GRAY"))
        pitch, image_stride = _spec.check_pitched(batch, hw, lay.channels, pitch, image_stride, "dst")
        h, w = _spec.out_size(hw)
        dt = _spec.out_dtype(dtype)
        p = _spec.postprocess_params(lay, value_range)
        name = self._variant("postprocess", "skugen_postprocess_f16" if dt == np.float16 else "skugen_postprocess_f32")
        self._call(
            name, h, w, batch, stream,
            src=src, batch=batch, channels=p.channels, h=h, w=w,
            ch0=p.src_channels[0], ch1=p.src_channels[1], ch2=p.src_channels[2],
            scale=p.scale, offset=p.offset, dst=dst, dst_image_stride=image_stride, dst_pitch=pitch)

    def rgb_to_y_device(self, src, dst, *, batch: int, hw, layout: str = "RGB", pitch: int | None = None,
                        image_stride: int | None = None, stream=None) -> None:
        """src: uint8 (batch, H, W, C) pitched like preprocess_device. dst: contiguous float32 (batch, H, W)."""
        lay = _spec.get_layout(layout, ("RGB", "BGR", "RGBA", "BGRA"))
        pitch, image_stride = _spec.check_pitched(batch, hw, lay.channels, pitch, image_stride, "src")
        h, w = _spec.out_size(hw)
        r, g, b = _spec.y_channels(lay)
        self._call("skugen_rgb_to_y", h, w, batch, stream,
                   src=src, src_image_stride=image_stride, src_pitch=pitch, in_channels=lay.channels,
                   ch_r=r, ch_g=g, ch_b=b, dst=dst, batch=batch, h=h, w=w)

    # -- numpy API (the processor interface, same as reference.NumpyProcessor)
    def preprocess(self, images, out_hw, layout="RGB", mean=0.5, std=0.5, dtype=np.float32, out_channels=None):
        lay = _spec.get_layout(layout)
        groups, batch = _spec.image_batch(images, lay)
        oh, ow = _spec.out_size(out_hw)
        p = _spec.preprocess_params(lay, mean, std, out_channels)  # validates before any allocation
        out = np.empty((batch, p.out_channels, oh, ow), dtype=_spec.out_dtype(dtype))  # (B, C, H, W)
        per_image = out[0].nbytes
        dst = self._alloc(out.nbytes)
        bufs = [dst]
        try:
            for g in groups:  # one launch per group (a list of differently sized images: one each)
                src = self._upload(g.span_bytes())  # rows keep their pitch: the kernel skips the gaps
                bufs.append(src)
                n, h, w, _ = g.array.shape
                self.preprocess_device(src, int(dst) + g.start * per_image, batch=n, in_hw=(h, w), out_hw=(oh, ow),
                                       pitch=g.pitch, image_stride=g.image_stride, layout=layout, mean=mean,
                                       std=std, dtype=out.dtype, out_channels=out_channels)
            self._download(dst, out)
        finally:
            for b in bufs:
                self._free(b)
        return out

    def postprocess(self, x, value_range="-1,1", layout="RGB"):
        lay = _spec.get_layout(layout, ("RGB", "BGR", "GRAY"))
        x4, single = _spec.check_nchw(x, lay)
        _spec.postprocess_params(lay, value_range)
        b, c, h, w = x4.shape
        out = np.empty((b, h, w, c), np.uint8)  # (B, H, W, C)
        src, dst = self._upload(x4.reshape(-1).view(np.uint8)), self._alloc(out.nbytes)
        bufs = [src, dst]
        try:
            self.postprocess_device(src, dst, batch=b, hw=(h, w), layout=layout, value_range=value_range,
                                    dtype=x4.dtype)
            self._download(dst, out)
        finally:
            for buf in bufs:
                self._free(buf)
        return out[0] if single else out

    def rgb_to_y(self, images, layout="RGB"):
        lay = _spec.get_layout(layout, ("RGB", "BGR", "RGBA", "BGRA"))
        _spec.y_channels(lay)
        groups, _ = _spec.image_batch(images, lay)
        outs = []
        for g in groups:
            n, h, w, _ = g.array.shape
            out = np.empty((n, h, w), np.float32)  # (B, H, W)
            src, dst = self._upload(g.span_bytes()), self._alloc(out.nbytes)
            bufs = [src, dst]
            try:
                self.rgb_to_y_device(src, dst, batch=n, hw=(h, w), layout=layout,
                                     pitch=g.pitch, image_stride=g.image_stride)
                self._download(dst, out)
            finally:
                for buf in bufs:
                    self._free(buf)
            outs.append(out)
        if isinstance(images, np.ndarray):
            return outs[0] if images.ndim == 4 else outs[0][0]
        return [y[0] for y in outs]
