"""Pickle-free checkpoints and model files: safetensors for tensors, JSON for everything else.

A model directory (what `skugen train`/`compress` write and `skugen export` reads):
    model.safetensors   weights (state_dict, contiguous CPU tensors)
    card.json           model card: config, data, command, seed, metrics, MACs, params, sha256
A training checkpoint adds `ckpt.safetensors` + `ckpt.json` (optimizer moments, RNG states, step).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from skugen.errors import ModelError
from skugen.io import atomic_file, atomic_write_json, json_default, sha256_file

from . import models


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict | None = None) -> None:
    with atomic_file(path) as af:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(af.tmp),
                  metadata={k: str(v) for k, v in (meta or {}).items()})


def save_model(model: torch.nn.Module, out_dir: str | os.PathLike, card: dict | None = None) -> Path:
    """Write model.safetensors + card.json (config read back from the module, sha256 filled in)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = models.config_from_model(model)
    _atomic_save_tensors(model.state_dict(), out / "model.safetensors", {"family": cfg.family})
    card = dict(card or {})
    card["config"] = models.config_to_dict(cfg)
    card["weights"] = {"file": "model.safetensors", "sha256": sha256_file(out / "model.safetensors"),
                       "bytes": (out / "model.safetensors").stat().st_size, "format": "safetensors"}
    atomic_write_json(out / "card.json", card)
    return out


def read_card(model_dir: str | os.PathLike) -> dict:
    d = Path(model_dir)
    if not (d / "card.json").is_file() or not (d / "model.safetensors").is_file():
        raise ModelError(f"{d} is not a skugen model directory (needs card.json + model.safetensors). "
                         "Use a zoo name (`skugen zoo list`) or a directory written by `skugen train`/`compress`.")
    try:
        return json.loads((d / "card.json").read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{d / 'card.json'} is not valid JSON ({e}).") from e


def load_model(model_dir: str | os.PathLike, verify: bool = True) -> tuple[torch.nn.Module, dict]:
    d = Path(model_dir)
    card = read_card(d)
    if "config" not in card:
        raise ModelError(f"{d / 'card.json'} has no 'config'; it was not written by skugen.")
    if verify and card.get("weights", {}).get("sha256") not in (None, sha256_file(d / "model.safetensors")):
        raise ModelError(f"{d / 'model.safetensors'} does not match the sha256 in its card: the weights were "
                         "modified or corrupted. Re-train or restore the file.")
    model = models.build_from_card(d, card)  # a family's config, or a user's code / program file
    try:
        sd = load_file(str(d / "model.safetensors"))
        model.load_state_dict(sd, strict=True)
    except (RuntimeError, OSError) as e:
        raise ModelError(f"weights in {d} do not fit the architecture in its card ({str(e)[:300]}).") from e
    model.eval()
    return model, card

# ----------------------------------------------------------------------------- training checkpoints


def save_checkpoint(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                    optims: dict[str, torch.optim.Optimizer], state: dict[str, Any]) -> None:
    """Everything needed to resume bit-for-bit: weights, optimizer moments, RNG states, counters."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"state": state, "optims": {}}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"m.{name}.{k}"] = v
    for name, o in optims.items():
        sd = o.state_dict()
        meta["optims"][name] = {"param_groups": sd["param_groups"], "keys": {}}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"o.{name}.{pid}.{k}"] = v
                else:
                    meta["optims"][name]["keys"][f"{pid}.{k}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    # The counters ride INSIDE the safetensors file (its string metadata), so weights and step are one atomic
    # rename: a kill between two files could otherwise pair a step with other weights. The .json is a
    # readable mirror, written after.
    _atomic_save_tensors(tensors, path.with_suffix(".safetensors"), {_META_KEY: json.dumps(meta, default=json_default)})
    atomic_write_json(path.with_suffix(".json"), meta)


_META_KEY = "skugen_checkpoint"


def _checkpoint_meta(path: Path) -> dict | None:
    """The counters stored with the weights; the .json mirror for checkpoints written before they were;
    None when there is no checkpoint."""
    from safetensors import safe_open

    if not path.with_suffix(".safetensors").is_file():
        return None
    with safe_open(str(path.with_suffix(".safetensors")), framework="pt") as f:
        raw = (f.metadata() or {}).get(_META_KEY)
    if raw:
        return json.loads(raw)
    mirror = path.with_suffix(".json")
    return json.loads(mirror.read_text()) if mirror.is_file() else None


def load_checkpoint(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                    optims: dict[str, torch.optim.Optimizer]) -> dict[str, Any] | None:
    path = Path(path)
    meta = _checkpoint_meta(path)
    if meta is None:
        return None
    tensors = load_file(str(path.with_suffix(".safetensors")))
    for name, m in modules.items():
        pre = f"m.{name}."
        m.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
    for name, o in optims.items():
        om = meta["optims"][name]
        state: dict[int, dict] = {}
        pre = f"o.{name}."
        for k, v in tensors.items():
            if k.startswith(pre):
                pid, key = k[len(pre):].split(".", 1)
                state.setdefault(int(pid), {})[key] = v
        for k, v in om["keys"].items():
            pid, key = k.split(".", 1)
            state.setdefault(int(pid), {})[key] = v
        o.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return meta["state"]


def checkpoint_step(path: str | os.PathLike) -> int | None:
    meta = _checkpoint_meta(Path(path))
    return meta["state"]["step"] if meta else None


def numpy_rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def numpy_rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)
