"""Runner base class (Polygraphy-style): state checks, input validation and timing live here.

A backend module only writes `_activate`, `_infer`, `_deactivate` and
`_input_metadata`. Heavy imports (onnxruntime, tensorrt, pycuda) happen inside
`_activate`, so importing a backend module is always cheap.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from skugen.errors import InputError


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: np.dtype
    shape: tuple  # ints, or None / str for dynamic axes

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": np.dtype(self.dtype).name, "shape": list(self.shape)}


class Runner:
    """Base runner. Use as a context manager, or call activate()/deactivate().

    infer() is thread-safe: backends that are not re-entrant set `reentrant = False`
    and the base serialises calls with a lock.
    """

    name = "base"
    reentrant = True

    def __init__(self) -> None:
        self.is_active = False
        self.last_inference_time: float | None = None  # seconds of the last _infer (excludes validation)
        self._lock = threading.Lock()
        self.info: dict = {}

    # -- lifecycle ------------------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            return self
        self._activate()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self._deactivate()
        finally:
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- metadata ---------------------------------------------------------------
    def input_metadata(self) -> dict[str, TensorMeta]:
        self._require_active()
        return self._input_metadata()

    def output_names(self) -> list[str]:
        self._require_active()
        return self._output_names()

    # -- inference --------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray], check: bool = True) -> dict[str, np.ndarray]:
        self._require_active()
        if check:
            self._validate(feed)
        if self.reentrant:
            t0 = time.perf_counter()
            out = self._infer(feed)
            self.last_inference_time = time.perf_counter() - t0
        else:
            with self._lock:
                t0 = time.perf_counter()
                out = self._infer(feed)
                self.last_inference_time = time.perf_counter() - t0
        return out

    def _validate(self, feed: dict[str, np.ndarray]) -> None:
        meta = self._input_metadata()
        missing = set(meta) - set(feed)
        extra = set(feed) - set(meta)
        if missing or extra:
            raise InputError(f"{self.name}: inputs {sorted(feed)} do not match the model's {sorted(meta)}"
                             f"{' (missing ' + str(sorted(missing)) + ')' if missing else ''}"
                             f"{' (unexpected ' + str(sorted(extra)) + ')' if extra else ''}.")
        for n, m in meta.items():
            a = feed[n]
            if not isinstance(a, np.ndarray):
                raise InputError(f"{self.name}: input {n!r} must be a numpy array, got {type(a).__name__}.")
            if a.dtype != m.dtype:
                raise InputError(f"{self.name}: input {n!r} has dtype {a.dtype}, the model wants {np.dtype(m.dtype)}. "
                                 f"Convert with .astype(np.{np.dtype(m.dtype).name}).")
            if a.ndim != len(m.shape):
                raise InputError(f"{self.name}: input {n!r} has shape {a.shape}, the model wants rank "
                                 f"{len(m.shape)} {m.shape}.")
            for i, (got, want) in enumerate(zip(a.shape, m.shape)):
                if isinstance(want, int) and want >= 0 and got != want:
                    raise InputError(f"{self.name}: input {n!r} has shape {a.shape}; axis {i} must be {want} "
                                     f"(model shape {m.shape}).")
            if a.size == 0:
                raise InputError(f"{self.name}: input {n!r} is empty (shape {a.shape}); pass at least one item.")

    def _require_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name} runner is not active: call activate() or use it as a context manager")

    # -- to implement ----------------------------------------------------------
    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _input_metadata(self) -> dict[str, TensorMeta]:
        raise NotImplementedError

    def _output_names(self) -> list[str]:
        raise NotImplementedError
