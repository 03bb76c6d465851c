"""Eager-PyTorch runner: a teacher (or a bundle's source model) timed beside the students.

torch and skugen.export are imported only in activate(): the runtime install
imports this module without torch, and a missing torch raises BackendUnavailable
naming the `export` extra.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from skugen.errors import ModelError, need_extra

from .base import Runner, TensorMeta

# skugen model family -> what it does (users' models, family "custom", carry `kind` in their card)
FAMILY_KIND = {"cgan": "generator", "sr": "enhancer"}


class TorchRunner(Runner):
    """Eager PyTorch (fp32, CPU) reference: the teacher or the bundle's source model beside the students.

    Imports torch (through skugen.export) only in activate(); a runtime-only
    install gets BackendUnavailable naming the extra to install.
    """

    name = "torch"
    reentrant = False  # torch.set_num_threads is process-global

    def __init__(self, model_dir: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.model = None
        self.card: dict = {}

    def _activate(self) -> None:
        try:
            import torch

            from skugen.export import ckpt
        except ImportError as e:
            raise need_extra("the eager PyTorch reference backend (--backends torch)", "export", e) from e
        self._torch = torch
        self._prev_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model, self.card = ckpt.load_model(self.model_dir)
        fam = self.card["config"]["family"]
        kind = self.card["config"].get("kind") if fam == "custom" else FAMILY_KIND.get(fam)
        if kind == "generator":
            c = self.card["config"]
            self._ins, self._out = ("z", "onehot"), "image"
            self._meta = {"z": TensorMeta("z", np.dtype(np.float32), (None, c["z_dim"])),
                          "onehot": TensorMeta("onehot", np.dtype(np.float32), (None, c["n_classes"]))}
        elif kind == "enhancer":
            self._ins, self._out = ("lr",), "hr"
            self._meta = {"lr": TensorMeta("lr", np.dtype(np.float32), (None, self.card["config"]["in_ch"], None, None))}
        else:
            raise ModelError(f"{self.model_dir} holds a {fam!r} model; the torch bench backend runs generators "
                             "(cgan) and enhancers (sr).")
        self.info = {"backend": "torch", "device": "cpu", "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "model_dir": str(self.model_dir)}

    def _deactivate(self) -> None:
        self.model = None
        self._torch.set_num_threads(self._prev_threads)

    def _input_metadata(self) -> dict[str, TensorMeta]:
        return self._meta

    def _output_names(self) -> list[str]:
        return [self._out]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            y = self.model(*[torch.from_numpy(np.ascontiguousarray(feed[k])) for k in self._ins])
        return {self._out: y.numpy()}
