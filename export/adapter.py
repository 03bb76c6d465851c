"""One protocol for every model the toolchain compresses: skugen's families and a user's imported model.

    ad = adapter_for("fmnist-cgan")            # a zoo name, a model directory, or an nn.Module
    ad.kind, ad.macs(), ad.example_inputs(2), ad.calibration_feeds(128), ad.quality_target()

The stages ask the adapter, one small question per method (the Torch-Pruning style), instead of
checking which kind of model they hold:
- prune: `prune_strategy` ("sensitivity": per-unit ratios from a sensitivity table, for models
  with width units; "uniform": one MetaPruner ratio bisected to the MACs target) and
  `ignored_layers()` (what pruning keeps whole);
- distill: `distill_strategy` ("features": intermediate features + output, for families;
  "outputs": L1 to the teacher's output, for graphs whose layers have no known correspondence);
- quantize / bundle: `io_spec()`, `calibration_feeds()`, `eval_feeds()`;
- compress: `quality_target()`, `save()`.

`adapter_for` is the one place that tells a family from a user's model.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from skugen.errors import ModelError

from . import ckpt, custom, models
from .onnx_export import IO_NAMES, VALUE_RANGE

# acceptance targets written into every family student's card (checked, not enforced)
TARGETS = {"macs_ratio_max": 0.25, "cgan_fid_proxy_ratio_max": 1.25, "cgan_class_fidelity_drop_max": 0.03,
           "sr_psnr_y_drop_max_db": 0.3}
KIND_OF_FAMILY = {"cgan": "generator", "sr": "enhancer", "classifier": "classifier"}


class ModelAdapter(ABC):
    """A loaded model plus its card, behind the questions the stages ask."""

    prune_strategy: str        # "sensitivity" | "uniform"
    distill_strategy: str      # "features" | "outputs"

    def __init__(self, model: nn.Module, card: dict, name: str, model_dir: Path | None = None):
        self.model = model.eval()
        self.card = card
        self.name = name
        self.model_dir = model_dir

    @property
    def cfg(self):
        return self.model.cfg

    @property
    def family(self) -> str:
        return self.cfg.family

    @property
    @abstractmethod
    def kind(self) -> str:
        """"generator" | "enhancer" (| "classifier" for the zoo's judge)."""

    def example_inputs(self, batch: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs shaped as the model takes them (LR size x size for an enhancer)."""
        return models.example_inputs(self.cfg, batch, size, seed)

    def macs(self, model: nn.Module | None = None) -> int:
        """MACs of one sample (one 64x64 LR image for an enhancer) of `model` (default: this adapter's)."""
        m = self.model if model is None else model
        return models.count_macs(m, models.example_inputs(m.cfg, 1, 64))

    @property
    def macs_input(self) -> str:
        return "one 64x64 LR image" if self.kind == "enhancer" else "one sample"

    def io_spec(self) -> dict:
        """Graph input/output names and the value range of the output, as the runtime sees them."""
        ins, outs = IO_NAMES[self.kind]
        return {"kind": self.kind, "inputs": list(ins), "outputs": list(outs),
                "value_range": list(VALUE_RANGE.get(self.kind, (-1.0, 1.0)))}

    def calibration_feeds(self, n: int = 128, seed: int = 0) -> dict:
        """INT8 calibration inputs from the model's real input distribution (graph input name -> array)."""
        from . import evalsets

        if self.kind == "generator":
            return evalsets.generator_calibration(self.cfg.z_dim, self.cfg.n_classes, n, seed)
        if self.kind == "enhancer":
            return evalsets.enhancer_calibration(n, seed=seed, scale=self.cfg.scale)
        raise ModelError(f"a {self.kind} is not quantized for deployment; bundles hold generators and enhancers.")

    def eval_feeds(self, n: int | None = None, seed: int | None = None):
        """The held-out set the INT8 gate judges on (quantize.EvalSet)."""
        from . import evalsets

        kw = {k: v for k, v in (("n", n), ("seed", seed)) if v is not None}
        if self.kind == "generator":
            return evalsets.generator_eval_set(self.cfg.z_dim, self.cfg.n_classes, **kw)
        if self.kind == "enhancer":
            return evalsets.enhancer_eval_set(scale=self.cfg.scale, **kw)
        raise ModelError(f"a {self.kind} is not quantized for deployment; bundles hold generators and enhancers.")

    @abstractmethod
    def quality_target(self) -> dict:
        """What a compressed student must keep, as the card reports it (empty: measured, not targeted)."""

    @abstractmethod
    def ignored_layers(self, model: nn.Module | None = None) -> list[str]:
        """Names (as in named_modules()) of the layers whose output channels pruning must keep."""

    def save(self, model: nn.Module, out: str | os.PathLike, card: dict, **kw) -> Path:
        """model.safetensors + card.json (sha256-recorded) that `load` / ckpt.load_model read back."""
        return ckpt.save_model(model, out, card)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ModelAdapter":
        return adapter_for(model_dir)


class FamilyAdapter(ModelAdapter):
    """A skugen family (models.CGANConfig / SRConfig / ClassifierConfig): every width is a config field."""

    prune_strategy = "sensitivity"
    distill_strategy = "features"

    @property
    def kind(self) -> str:
        return KIND_OF_FAMILY[self.family]

    def quality_target(self) -> dict:
        keep = {"cgan": ("cgan_fid_proxy_ratio_max", "cgan_class_fidelity_drop_max"),
                "sr": ("sr_psnr_y_drop_max_db",)}.get(self.family, ())
        return {k: v for k, v in TARGETS.items() if k == "macs_ratio_max" or k in keep}

    def ignored_layers(self, model: nn.Module | None = None) -> list[str]:
        from .prune import protected_layers

        m = self.model if model is None else model
        no_out, _ = protected_layers(m)
        return [n for n, mod in m.named_modules() if any(mod is x for x in no_out)]


class UserModelAdapter(ModelAdapter):
    """A user's model (`skugen import`, models.CustomModel): the I/O spec says what it is, its graph is opaque."""

    prune_strategy = "uniform"
    distill_strategy = "outputs"
    distill_steps = custom.DISTILL_STEPS   # output distillation steps per preset
    distill_batch = 16

    def __init__(self, model: nn.Module, card: dict, name: str, model_dir: Path | None = None):
        super().__init__(model, card, name, model_dir)
        self._paths: dict[str, list | None] = {}

    @property
    def kind(self) -> str:
        return self.cfg.kind

    def example_inputs(self, batch: int = 2, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return models.example_inputs(self.cfg, batch, size, seed)  # 24 px: a user's graph is traced on small LR

    def quality_target(self) -> dict:
        return {}  # measured against the teacher's output (custom.quality_vs_teacher), not targeted

    def check_prunable(self) -> None:
        custom.check_prunable(self.model)

    def output_layers(self) -> list[str]:
        outs = custom.output_layers(self.model)  # traced once on the teacher; copies keep the module names
        return [n for n, mod in self.model.named_modules() if any(mod is x for x in outs)]

    def ignored_layers(self, model: nn.Module | None = None) -> list[str]:
        return self.output_layers() + [f"net.{n}" for n in self.cfg.ignored_layers]

    def ignored_layers_reported(self) -> list[str]:
        """As the card lists them: the traced output layer, then the I/O spec's names (relative to the factory)."""
        return self.output_layers() + list(self.cfg.ignored_layers)

    def inputs(self, split: str) -> Callable[[int, int], tuple[torch.Tensor, ...]]:
        """batch, seed -> one batch of the real inputs of `split` (degraded GroceryStore crops, or latents)."""
        from .distill import user_inputs

        fn = user_inputs(self.cfg, self.card, split) if split == "train" else None  # the user's --data
        if fn is not None:
            return fn
        if split not in self._paths:
            self._paths[split] = custom.input_paths(self.cfg, split)
        paths = self._paths[split]
        return lambda b, seed: custom.input_batch(self.cfg, b, seed, paths)

    def evaluate(self, student: nn.Module) -> dict:
        return custom.quality_vs_teacher(self.model, student, data=custom.userdata.from_card(self.card))

    def save(self, model: nn.Module, out: str | os.PathLike, card: dict, program: Path | None = None) -> Path:
        return custom.save_dir(model, out, card, program)


def adapter_for(model: str | os.PathLike | nn.Module) -> ModelAdapter:
    """The adapter of a zoo name, a model directory (card.json + model.safetensors) or a loaded module."""
    if isinstance(model, nn.Module):
        if isinstance(model, models.CustomModel):
            return UserModelAdapter(model, {"name": "in-memory", "config": models.config_to_dict(model.cfg)},
                                    "in-memory")
        from .prune import _family

        _family(model)  # ModelError for foreign modules
        cfg = models.config_from_model(model)
        return FamilyAdapter(model, {"name": "in-memory", "config": models.config_to_dict(cfg)}, "in-memory")
    from . import zoo

    p = Path(model)
    if p.is_file():
        raise ModelError(f"{p} is a file; compress takes a skugen model directory (card.json + model.safetensors, "
                         "as written by `skugen train`) or a zoo name (`skugen zoo list`). "
                         "Foreign checkpoints (.pt, .onnx) cannot be compressed.")
    d = zoo.resolve(model)
    m, card = ckpt.load_model(d)
    cls = UserModelAdapter if isinstance(m, models.CustomModel) else FamilyAdapter
    return cls(m, card, str(card.get("name") or p.name), d)
