"""The TensorRT runner: a bundle's engine for THIS GPU, run with pycuda buffers on one stream (execute_async_v3).

    with runner_for(bundle, "tensorrt", "int8") as r:  # skugen.backends: engines/<key>/engine.plan for THIS GPU
        out = r.infer({"z": z, "onehot": onehot})

Engines are not portable across GPUs or TensorRT versions (DESIGN.md): the runner checks the engine.json sidecar
on every load (`plan.engine_mismatches`) and raises EngineMismatch when it does not describe this machine and this
bundle, or rebuilds (`build.engine_from_onnx`) when asked to.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time

import numpy as np

from skugen.errors import BundleError, EngineMismatch, InputError

from ..base import Runner, TensorMeta
from . import plan as tp
from . import store
from .build import _engine_device_memory, engine_from_onnx
from .cuda import _device_info, _logger, _PrimaryContext, _require, _trt_errors
from .plan import BuildConfig
from .store import EngineRecord

log = logging.getLogger("skugen.tensorrt")


class TensorRTRunner(Runner):
    """Runs a bundle's TensorRT engine built for this GPU (pycuda buffers, one stream, execute_async_v3).

    rebuild=False: an engine whose engine.json names another GPU, compute capability,
      TensorRT version or ONNX sha256 raises EngineMismatch saying what differs.
    rebuild=True: such an engine is rebuilt from the bundle instead (same profile as before).
    build_missing=True: when this GPU has no engine yet, one is built (minutes, once;
      `skugen build` does it ahead of time).
    cfg: the BuildConfig used when (re)building.

    Batches above the engine's max batch are split into chunks. Not re-entrant (one
    execution context and one set of buffers): the base class serialises infer().

    Zero-copy path for the CUDA pre-processing kernels: `input_device_ptr(name, shape)`
    returns the device address of the input binding (and sets its shape); launch the
    kernel on `runner.stream`, then `infer_device()`.
    """

    name = "tensorrt"
    reentrant = False

    def __init__(self, bundle, precision: str = "fp16", rebuild: bool = False, build_missing: bool = True,
                 cfg: BuildConfig | None = None, device: int | None = None) -> None:
        super().__init__()
        self.precision = tp.check_precision(precision)
        self.device_index = int(device if device is not None else (cfg.device if cfg else 0))
        _require(self.device_index)  # fail here, not at first use, when TensorRT/pycuda/GPU are missing
        self.bundle = store.as_bundle(bundle)
        self.rebuild = bool(rebuild)
        self.build_missing = bool(build_missing)
        self.cfg = cfg
        self.record: EngineRecord | None = None
        self._pctx = None

    # -- engine selection --------------------------------------------------------
    def _resolve_engine(self, trt, dev: dict) -> EngineRecord:
        b, precision = self.bundle, self.precision
        key = tp.engine_key(dev["name"], dev["compute_capability"], trt.__version__, precision)
        src, _ = tp.source_model(b.spec, precision)
        ident = tp.current_identity(dev, trt.__version__, tp.tensorrt_source(b.spec, src).sha256, precision)
        found = store.find(b, key)
        cfg = self.cfg or BuildConfig(device=self.device_index)
        if found is None:
            others = store.keys_for(b, precision)
            if not (self.rebuild or self.build_missing):
                raise EngineMismatch(
                    f"bundle {b.root} has no {precision} TensorRT engine for this GPU ({dev['name']}, sm "
                    f"{dev['compute_capability']}, TensorRT {trt.__version__}); it has {others or 'none'}. Build one "
                    f"with `skugen build {b.root} --backend tensorrt --precision {precision}` or pass rebuild=True.")
            log.warning("no %s TensorRT engine for %s yet: building one (once; `skugen build` does this ahead "
                        "of time)", precision, dev["name"])
            return engine_from_onnx(b, precision, cfg)
        side = store.read_sidecar(found)
        diffs = tp.engine_mismatches(side, ident) if side else [f"{tp.SIDECAR_FILE} is unreadable"]
        problem = store.plan_problem(found, side or {})
        if problem:
            diffs.append(problem)
        if diffs:
            if not self.rebuild:
                raise EngineMismatch(tp.mismatch_message(diffs, found, b.root, precision))
            log.warning("rebuilding TensorRT engine %s: %s", found, "; ".join(diffs))
            old = tp.build_config_from_dict((side or {}).get("build_config"))
            cfg = self.cfg or (dataclasses.replace(old, device=self.device_index) if old else cfg)
            return engine_from_onnx(b, precision, dataclasses.replace(cfg, force=True))
        if self.cfg is not None:  # an explicit config: reuse the engine only if it was built with that profile
            return engine_from_onnx(b, precision, self.cfg)
        return EngineRecord(key, precision, found, side, built=False)

    # -- lifecycle ---------------------------------------------------------------
    def _activate(self) -> None:
        trt, cuda = _require(self.device_index)
        self._trt, self._cuda = trt, cuda
        self._pctx = _PrimaryContext(cuda, self.device_index)
        try:
            with self._pctx.scope():
                self._setup(trt, cuda)
        except BaseException:
            self._teardown()
            raise

    def _setup(self, trt, cuda) -> None:
        dev = _device_info(cuda, self.device_index)
        free0 = cuda.mem_get_info()[0]
        self.record = self._resolve_engine(trt, dev)
        free_after_build = cuda.mem_get_info()[0]  # a build in this process frees its scratch memory again
        self._runtime = trt.Runtime(_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(self.record.plan_path.read_bytes())
        if self._engine is None:
            raise EngineMismatch(f"TensorRT could not deserialize {self.record.plan_path}.{_trt_errors()} Rebuild it: "
                                 f"`skugen build {self.bundle.root} --backend tensorrt --precision {self.precision} "
                                 "--force` (or rebuild=True).")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BundleError(f"TensorRT could not create an execution context (out of GPU memory?).{_trt_errors()}")
        eng = self._engine
        self._inputs, self._outputs = [], []
        self._dtype, self._eshape, self._profile = {}, {}, {}
        for i in range(eng.num_io_tensors):
            n = eng.get_tensor_name(i)
            (self._inputs if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT else self._outputs).append(n)
            self._dtype[n] = np.dtype(trt.nptype(eng.get_tensor_dtype(n)))
            self._eshape[n] = tuple(int(d) for d in eng.get_tensor_shape(n))
        for n in self._inputs:
            mn, op, mx = eng.get_tensor_profile_shape(n, 0)
            self._profile[n] = {"min": [int(d) for d in mn], "opt": [int(d) for d in op], "max": [int(d) for d in mx]}
            if not self._context.set_input_shape(n, tuple(self._profile[n]["max"])):
                raise BundleError(f"TensorRT rejected the profile's max shape for input {n!r}.{_trt_errors()}")
        # Buffers sized for the profile's max shapes, allocated once; addresses bound once.
        self._dev, self._host, self._cap = {}, {}, {}
        for n in self._inputs + self._outputs:
            shape = tuple(self._profile[n]["max"]) if n in self._profile else \
                tuple(int(d) for d in self._context.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise BundleError(f"output {n!r} has a data-dependent shape {shape}; skugen's TensorRT runner needs "
                                  "outputs whose shape follows from the inputs.")
            count = int(np.prod(shape, dtype=np.int64))
            self._cap[n] = count
            self._dev[n] = cuda.mem_alloc(max(count * self._dtype[n].itemsize, 1))
            self._host[n] = cuda.pagelocked_empty(max(count, 1), self._dtype[n])  # staging for async copies
            if not self._context.set_tensor_address(n, int(self._dev[n])):
                raise BundleError(f"TensorRT rejected the buffer address for {n!r}.{_trt_errors()}")
        self.stream = cuda.Stream()
        free1 = cuda.mem_get_info()[0]
        batch_axis = all(self._eshape[n] and self._eshape[n][0] == -1 for n in self._inputs + self._outputs)
        self._max_batch = min(self._profile[n]["max"][0] for n in self._inputs) if batch_axis else None
        io_bytes = sum(self._cap[n] * self._dtype[n].itemsize for n in self._dev)
        side = self.record.metadata
        self.info = {
            "backend": "tensorrt", "device": "gpu", "gpu": dev["name"], "compute_capability": dev["compute_capability"],
            "tensorrt": trt.__version__, "precision": self.precision, "quantization": side.get("quantization"),
            "engine": str(self.record.plan_path), "engine_key": self.record.key, "built_now": self.record.built,
            "profile": self._profile, "max_batch": self._max_batch, "precision_counts": side.get("precision_counts"),
            "gpu_memory": {
                "engine_bytes": self.record.plan_path.stat().st_size,
                "activation_bytes": _engine_device_memory(eng),
                "io_buffer_bytes": int(io_bytes),
                "used_by_runner_bytes": int(max(free_after_build - free1, 0)),  # driver view: engine+context+buffers
                "used_including_build_bytes": int(max(free0 - free1, 0)),
                "device_total_bytes": dev["total_memory_bytes"],
            },
        }

    def _deactivate(self) -> None:
        self._teardown()

    def _teardown(self) -> None:
        pctx, self._pctx = self._pctx, None
        if pctx is None:
            return
        try:
            with pctx.scope():
                if getattr(self, "stream", None) is not None:  # outputs left on the device may still be in flight
                    with contextlib.suppress(Exception):
                        self.stream.synchronize()
                for buf in getattr(self, "_dev", {}).values():
                    with contextlib.suppress(Exception):
                        buf.free()
                for buf in getattr(self, "_extra_dev", []):  # zero-copy staging (alloc_device)
                    with contextlib.suppress(Exception):
                        buf.free()
                for arr in list(getattr(self, "_host", {}).values()) + list(getattr(self, "_extra_host", [])):
                    with contextlib.suppress(Exception):
                        arr.base.free()
                self._dev, self._host, self._extra_dev, self._extra_host = {}, {}, [], []
                # TensorRT objects release device memory when collected: context before engine before runtime.
                for attr in ("_context", "_engine", "_runtime", "stream"):
                    if hasattr(self, attr):
                        setattr(self, attr, None)
        finally:
            pctx.detach()

    # -- metadata ------------------------------------------------------------------
    def _input_metadata(self) -> dict[str, TensorMeta]:
        return {n: TensorMeta(n, self._dtype[n], tuple(None if d < 0 else d for d in self._eshape[n]))
                for n in self._inputs}

    def _output_names(self) -> list[str]:
        return list(self._outputs)

    def profile(self) -> dict:
        """Input name -> {min, opt, max} shapes the engine accepts (larger batches are chunked)."""
        self._require_active()
        return {k: dict(v) for k, v in self._profile.items()}

    def gpu_memory(self) -> dict:
        """GPU memory the runner holds: engine weights, activations, I/O buffers (bytes)."""
        self._require_active()
        return dict(self.info["gpu_memory"])

    # -- inference -------------------------------------------------------------------
    def _check_shape(self, name: str, shape: tuple) -> None:
        why = tp.shape_in_profile(name, tuple(shape), self._profile[name])
        if why:
            raise InputError(f"tensorrt: {why}.")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = {int(np.shape(feed[k])[0]) for k in self._inputs} if self._max_batch else set()
        if self._max_batch and len(n) == 1 and (total := n.pop()) > self._max_batch:
            step, parts = self._max_batch, []
            for s in range(0, total, step):
                parts.append(self._run({k: v[s:s + step] for k, v in feed.items()}))
            return {k: np.concatenate([p[k] for p in parts], axis=0) for k in self._outputs}
        return self._run(feed)

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, ctx, stream = self._cuda, self._context, self.stream
        with self._pctx.scope():
            for name in self._inputs:
                a = np.ascontiguousarray(feed[name], dtype=self._dtype[name])
                self._check_shape(name, a.shape)
                if not ctx.set_input_shape(name, a.shape):
                    raise InputError(f"tensorrt: shape {a.shape} for input {name!r} was rejected.{_trt_errors()}")
                host = self._host[name][:a.size].reshape(a.shape)
                np.copyto(host, a)
                cuda.memcpy_htod_async(self._dev[name], host, stream)
            self._execute()
            outs = {}
            for name in self._outputs:
                shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
                host = self._host[name][:int(np.prod(shape, dtype=np.int64))].reshape(shape)
                cuda.memcpy_dtoh_async(host, self._dev[name], stream)
                outs[name] = host
            stream.synchronize()
            return {k: v.copy() for k, v in outs.items()}  # the staging buffers are reused by the next call

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed.{_trt_errors()}")

    # -- zero-copy path for the CUDA pre/post-processing kernels ----------------------
    def alloc_device(self, nbytes: int) -> int:
        """A device buffer the runner owns (freed at close): staging for a zero-copy data path."""
        self._require_active()
        with self._pctx.scope():
            buf = self._cuda.mem_alloc(max(int(nbytes), 1))
        self._extra_dev = [*getattr(self, "_extra_dev", []), buf]
        return int(buf)

    def alloc_pinned(self, count: int, dtype) -> np.ndarray:
        """A page-locked host array the runner owns (freed at close), for async copies."""
        self._require_active()
        with self._pctx.scope():
            arr = self._cuda.pagelocked_empty(max(int(count), 1), np.dtype(dtype))
        self._extra_host = [*getattr(self, "_extra_host", []), arr]
        return arr

    def capacity(self, name: str) -> int:
        """Elements the binding of `name` holds (its profile's max shape)."""
        self._require_active()
        return int(self._cap[name])

    def device_call(self) -> "DeviceCall":
        """One zero-copy call, holding the runner's lock and CUDA context throughout:

            with runner.device_call() as call:
                ptr = call.set_input("lr", (b, 3, h, w))      # then write into ptr on call.stream
                call.execute()
                out_ptr, shape, dtype = call.output("sr")      # read it on call.stream
        """
        self._require_active()
        return DeviceCall(self)

    def input_device_ptr(self, name: str, shape: tuple[int, ...]) -> int:
        """Device address of input `name`'s binding, after setting its shape for the next infer_device().

        The buffer holds the profile's max shape; write C-contiguous data of `shape`
        and the engine's dtype there (on `self.stream`, or synchronise first).
        """
        self._require_active()
        if name not in self._inputs:
            raise InputError(f"tensorrt: {name!r} is not an input; inputs are {self._inputs}.")
        shape = tuple(int(d) for d in shape)
        self._check_shape(name, shape)
        with self._lock, self._pctx.scope():
            if not self._context.set_input_shape(name, shape):
                raise InputError(f"tensorrt: shape {shape} for input {name!r} was rejected.{_trt_errors()}")
        return int(self._dev[name])

    def output_device_ptr(self, name: str) -> int:
        self._require_active()
        if name not in self._outputs:
            raise InputError(f"tensorrt: {name!r} is not an output; outputs are {self._outputs}.")
        return int(self._dev[name])

    def output_shape(self, name: str) -> tuple[int, ...]:
        """Shape of output `name` for the input shapes currently set."""
        self._require_active()
        if name not in self._outputs:
            raise InputError(f"tensorrt: {name!r} is not an output; outputs are {self._outputs}.")
        with self._lock, self._pctx.scope():  # the context's shapes change under infer(): read them under its lock
            return tuple(int(d) for d in self._context.get_tensor_shape(name))

    @property
    def stream_handle(self) -> int:
        self._require_active()
        return int(self.stream.handle)

    def cuda_context(self):
        """Context manager making the runner's CUDA context current on this thread (for your own pycuda calls)."""
        self._require_active()
        return self._pctx.scope()

    def infer_device(self, copy_outputs: bool = True) -> dict:
        """Run on inputs already in the device bindings (see input_device_ptr).

        copy_outputs=True: returns numpy outputs (synchronised). False: returns
        {name: (device_ptr, shape)} without synchronising: post-processing kernels
        launched on `self.stream` are ordered after the engine.
        """
        self._require_active()
        with self._lock, self._pctx.scope():
            t0 = time.perf_counter()
            self._execute()
            if not copy_outputs:
                out = {n: (int(self._dev[n]), tuple(int(d) for d in self._context.get_tensor_shape(n)))
                       for n in self._outputs}
                self.last_inference_time = time.perf_counter() - t0
                return out
            outs = {}
            for n in self._outputs:
                shape = tuple(int(d) for d in self._context.get_tensor_shape(n))
                host = self._host[n][:int(np.prod(shape, dtype=np.int64))].reshape(shape)
                self._cuda.memcpy_dtoh_async(host, self._dev[n], self.stream)
                outs[n] = host
            self.stream.synchronize()
            self.last_inference_time = time.perf_counter() - t0
            return {k: v.copy() for k, v in outs.items()}


class DeviceCall:
    """A zero-copy call on a TensorRT runner (see its device_call); not thread-safe by itself,
    the runner's lock is held from __enter__ to __exit__."""

    def __init__(self, runner: TensorRTRunner):
        self.r = runner
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "DeviceCall":
        self._stack.enter_context(self.r._lock)
        self._stack.enter_context(self.r._pctx.scope())
        self.stream = self.r.stream
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def dtype(self, name: str) -> np.dtype:
        return self.r._dtype[name]

    def set_input(self, name: str, shape: tuple[int, ...]) -> int:
        """Set input `name`'s shape for execute(); returns its binding's device address."""
        r = self.r
        if name not in r._inputs:
            raise InputError(f"tensorrt: {name!r} is not an input; inputs are {r._inputs}.")
        shape = tuple(int(d) for d in shape)
        r._check_shape(name, shape)
        if not r._context.set_input_shape(name, shape):
            raise InputError(f"tensorrt: shape {shape} for input {name!r} was rejected.{_trt_errors()}")
        return int(r._dev[name])

    def upload(self, name: str, a: np.ndarray) -> None:
        """Copy a host array into input `name`'s binding (through its pinned staging buffer, on the stream)."""
        a = np.ascontiguousarray(a, dtype=self.r._dtype[name])
        ptr = self.set_input(name, a.shape)
        host = self.r._host[name][:a.size].reshape(a.shape)
        np.copyto(host, a)
        self.r._cuda.memcpy_htod_async(ptr, host, self.stream)

    def htod(self, dst: int, host: np.ndarray) -> None:
        self.r._cuda.memcpy_htod_async(dst, host, self.stream)

    def dtoh(self, host: np.ndarray, src: int) -> None:
        self.r._cuda.memcpy_dtoh_async(host, src, self.stream)

    def execute(self) -> None:
        t0 = time.perf_counter()
        self.r._execute()
        self.r.last_inference_time = time.perf_counter() - t0

    def output(self, name: str) -> tuple[int, tuple[int, ...], np.dtype]:
        """(device address, shape for the inputs set, dtype) of output `name`."""
        r = self.r
        if name not in r._outputs:
            raise InputError(f"tensorrt: {name!r} is not an output; outputs are {r._outputs}.")
        return int(r._dev[name]), tuple(int(d) for d in r._context.get_tensor_shape(name)), r._dtype[name]

    def synchronize(self) -> None:
        self.stream.synchronize()
