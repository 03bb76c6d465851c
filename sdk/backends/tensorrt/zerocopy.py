"""The zero-copy GPU data path: CUDA pre/post-processing kernels reading and writing a TensorRT engine's bindings.

When a Pipeline runs on TensorRT AND its processor is the CUDA one, each call is

    enhance:  uint8 crops --(1 upload)--> device --preprocess kernel--> engine input binding
              --execute--> output binding --postprocess kernel--> uint8 device buffer --(1 download)--> host
    generate: latents --(one copy per input)--> input bindings --execute--> output binding
              --postprocess kernel--> uint8 device buffer --(1 uint8 download)--> host

all on the runner's stream, with the runner's lock and CUDA context held for the whole call. The uint8 staging
buffers (device and page-locked host) are allocated ONCE here, sized by the engine profile's max shapes, owned by
the runner (freed when it closes) and reused by every call; float tensors never cross the PCIe bus. Without a GPU
on both sides the pipeline keeps its numpy path (skugen.prepost).

Imports neither tensorrt nor pycuda: everything goes through the runner (TensorRTRunner.device_call) and the
processor (skugen.kernels.CudaProcessor *_device methods).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from skugen.errors import BundleError


def usable(runner, processor) -> bool:
    """True when `runner` exposes device bindings and `processor` launches CUDA kernels on device pointers."""
    return (getattr(runner, "name", None) == "tensorrt" and callable(getattr(runner, "device_call", None))
            and getattr(processor, "device", None) == "cuda" and callable(getattr(processor, "postprocess_device", None)))


class ZeroCopyPath:
    """Pre/post-processing straight into/out of one active TensorRTRunner's bindings (see the module docstring)."""

    def __init__(self, runner, processor, kind: str):
        self.runner, self.proc, self.kind = runner, processor, kind
        outs = runner.output_names()
        if len(outs) != 1:
            raise BundleError(f"the zero-copy path needs an engine with one image output, this one has {outs}. "
                              "Re-export the bundle.")
        self.output = outs[0]
        self.inputs = list(runner.input_metadata())
        prof = runner.profile()
        self.max_batch = min(int(p["max"][0]) for p in prof.values())
        # uint8 output staging: one byte per element of the output binding (B*C*H*W == B*H*W*C).
        n_out = runner.capacity(self.output)
        self._dev_out = runner.alloc_device(n_out)
        self._host_out = runner.alloc_pinned(n_out, np.uint8)
        self._dev_in = self._host_in = None
        if kind == "enhancer":
            if len(self.inputs) != 1:
                raise BundleError(f"an enhancer engine must have one image input, this one has {self.inputs}. "
                                  "Re-export the bundle.")
            n_in = runner.capacity(self.inputs[0])  # (B, 3, H, W) elements == uint8 bytes of (B, H, W, 3)
            self._dev_in = runner.alloc_device(n_in)
            self._host_in = runner.alloc_pinned(n_in, np.uint8)

    # -- helpers --------------------------------------------------------------------------
    def _postprocess(self, call, value_range) -> np.ndarray:
        """Output binding -> uint8 (B, H, W, C) on the host: one kernel, one download."""
        ptr, shape, dtype = call.output(self.output)
        if len(shape) != 4 or shape[1] not in (1, 3):
            raise BundleError(f"engine output {self.output!r} has shape {shape}; expected (B, 1|3, H, W). Re-export "
                              "the bundle.")
        b, c, h, w = shape
        self.proc.postprocess_device(ptr, self._dev_out, batch=b, hw=(h, w), layout="GRAY" if c == 1 else "RGB",
                                     value_range=value_range, dtype=dtype, stream=call.stream)
        host = self._host_out[: b * h * w * c].reshape(b, h, w, c)
        call.dtoh(host, self._dev_out)
        call.synchronize()
        return host.copy()  # the staging buffer is reused by the next call

    def _batches(self, n: int):
        for s in range(0, n, self.max_batch):
            yield s, min(s + self.max_batch, n)

    # -- the two calls --------------------------------------------------------------------
    def generate(self, feed: dict[str, np.ndarray], value_range) -> np.ndarray:
        """Latents/one-hot (host) -> uint8 (B, H, W, C)."""
        n = int(next(iter(feed.values())).shape[0])
        parts = []
        for s, e in self._batches(n):
            with self.runner.device_call() as call:
                for name in self.inputs:
                    call.upload(name, feed[name][s:e])
                call.execute()
                parts.append(self._postprocess(call, value_range))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def enhance(self, crops: Sequence[np.ndarray], mean, std, value_range) -> np.ndarray:
        """uint8 (h, w, 3) crops of one size -> uint8 (B, s*h, s*w, 3), normalised on the GPU."""
        h, w = crops[0].shape[:2]
        name = self.inputs[0]
        parts = []
        for s, e in self._batches(len(crops)):
            b = e - s
            with self.runner.device_call() as call:  # the staging buffers are shared: fill them under the lock
                host = self._host_in[: b * h * w * 3].reshape(b, h, w, 3)
                for i in range(b):
                    host[i] = crops[s + i]  # strided views gathered into the pinned buffer (no temporary)
                call.htod(self._dev_in, host)
                ptr = call.set_input(name, (b, 3, h, w))
                self.proc.preprocess_device(self._dev_in, ptr, batch=b, in_hw=(h, w), out_hw=(h, w), layout="RGB",
                                            mean=mean, std=std, dtype=call.dtype(name), stream=call.stream)
                call.execute()
                parts.append(self._postprocess(call, value_range))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
