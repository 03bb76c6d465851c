"""Generator inputs: labels (class indices or names) -> one-hot; seeds -> latents. numpy only.

The one implementation both the skugen runtime (skugen.prepost re-exports it) and the Triton
Python-backend models use: `skugen export-triton` copies this file verbatim next to the Triton
model.py (with skugen.errors, its only import), so the served latents and labels are the
runtime's bit for bit.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Sequence

import numpy as np

from .errors import InputError

# Largest request (images per call). Beyond this a caller almost certainly passed a
# wrong number; the latents alone would be n * z_dim * 4 bytes. Split bigger jobs.
MAX_IMAGES_PER_CALL = 65_536
MAX_SEED = 2**128 - 1

# ----------------------------------------------------------------------------- labels


def _norm_name(s: str) -> str:
    # "Ankle boot", "ankle-boot", "ANKLE_BOOT", "ankleboot" all become "ankleboot".
    return re.sub(r"[^0-9a-z]+", "", s.lower())


@functools.lru_cache(maxsize=32)
def class_aliases(class_names: tuple[str, ...]) -> dict[str, int]:
    """Normalised name -> index; "T-shirt/top" is also reachable as "tshirt" and "top".

    A '/'-part alias is dropped when it collides with another class's full name,
    so "shirt" always means Shirt.
    """
    full = {_norm_name(n): i for i, n in enumerate(class_names)}
    aliases = dict(full)
    for i, n in enumerate(class_names):
        for part in n.split("/"):
            k = _norm_name(part)
            if k and k not in full:
                aliases.setdefault(k, i)
    return aliases


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_count(n: Any, what: str = "n") -> int:
    if not _is_int(n):
        raise InputError(f"{what} must be a positive int (number of images), got {n!r} ({type(n).__name__})")
    if n < 1:
        raise InputError(f"{what} must be >= 1, got {n}: an empty batch has nothing to generate")
    if n > MAX_IMAGES_PER_CALL:
        raise InputError(f"{what}={n} is more than {MAX_IMAGES_PER_CALL} images in one call: split the job "
                         f"into several calls (seed=s, n=k each)")
    return int(n)


def resolve_labels(labels: Any, n: Any, class_names: Sequence[str], n_classes: int) -> np.ndarray:
    """labels (int, name, or a sequence of them; None) + n -> (n,) int64 class indices.

    Broadcasting: one label with n=k gives k of that class; k labels with n=None
    (or n=k) give those k; labels=None cycles through the classes (n required).
    """
    if n is not None:
        n = check_count(n)
    if labels is None:
        if n is None:
            raise InputError("pass labels=[...] (class indices or names) and/or n=<number of images>")
        return np.arange(n, dtype=np.int64) % n_classes
    if isinstance(labels, (str, bytes)) or _is_int(labels):
        seq = [labels]
    elif isinstance(labels, np.ndarray):
        if labels.ndim > 1:
            raise InputError(f"labels must be 1-D (one class per image), got an array of shape {labels.shape}")
        seq = labels.reshape(-1).tolist() if labels.dtype.kind in "iu" else list(labels.reshape(-1))
    elif isinstance(labels, (list, tuple)):
        seq = list(labels)
    else:
        raise InputError(f"labels must be an int, a class name, or a list of them; got {type(labels).__name__}")
    if not seq:
        raise InputError("labels is empty: pass at least one class (index or name), e.g. labels=[0] or ['sneaker']")
    if len(seq) > MAX_IMAGES_PER_CALL:
        check_count(len(seq), "len(labels)")
    if set(map(type, seq)) == {int}:  # the common case, vectorised (a name lookup per item costs ~3 us)
        out = np.asarray(seq, dtype=np.int64) if max(map(abs, seq)) < 2**62 else None
        if out is not None and out.min() >= 0 and out.max() < n_classes:
            return _broadcast(out, n)
    aliases = class_aliases(tuple(class_names)) if class_names else {}
    out = np.empty(len(seq), dtype=np.int64)
    for i, lab in enumerate(seq):
        out[i] = _one_label(lab, aliases, class_names, n_classes)
    return _broadcast(out, n)


def _broadcast(out: np.ndarray, n: int | None) -> np.ndarray:
    if n is None or n == len(out):
        return out
    if len(out) == 1:
        return np.full(n, out[0], dtype=np.int64)
    raise InputError(f"got {len(out)} labels but n={n}: pass one label (it is repeated n times), "
                     f"exactly n labels, or leave n out")


def _one_label(lab: Any, aliases: dict[str, int], class_names: Sequence[str], n_classes: int) -> int:
    if _is_int(lab):
        if not 0 <= lab < n_classes:
            raise InputError(f"label {int(lab)} is out of range: this model has classes 0..{n_classes - 1}"
                             + (f" ({_names_hint(class_names)})" if class_names else ""))
        return int(lab)
    if isinstance(lab, bytes):
        lab = lab.decode("utf-8", "replace")
    if isinstance(lab, (np.str_, str)):
        key = _norm_name(str(lab))
        if key in aliases:
            return aliases[key]
        # "T-shirt/top" against a bundle that stores "t-shirt": accept when the '/'-parts that are
        # known all name the same class.
        hits = {aliases[k] for k in map(_norm_name, str(lab).split("/")) if k in aliases}
        if len(hits) == 1:
            return hits.pop()
        text = str(lab).strip()
        if text.lstrip("+-").isdigit():  # "7" (or "-1") from a command line: an index, checked as one
            return _one_label(int(text), aliases, class_names, n_classes)
        if not class_names:
            raise InputError(f"this bundle has no class names; pass class indices 0..{n_classes - 1}, not {lab!r}")
        raise InputError(f"unknown class {lab!r}. Valid classes: {_names_hint(class_names)} "
                         "(case-insensitive; '-', '_' and spaces are ignored; indices work too)")
    if isinstance(lab, (float, np.floating)) and float(lab).is_integer():
        raise InputError(f"label {lab!r} is a float; pass int({lab!r}) or a class name")
    raise InputError(f"each label must be a class index (int) or name (str), got {lab!r} ({type(lab).__name__})")


def _names_hint(class_names: Sequence[str]) -> str:
    return ", ".join(f"{i}={n!r}" for i, n in enumerate(class_names))


def onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) int -> (n, n_classes) float32 one-hot (the generator's conditioning input)."""
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out

# ----------------------------------------------------------------------------- latents


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if not _is_int(seed):
        raise InputError(f"seed must be a non-negative int (or None for a random one), got {seed!r} "
                         f"({type(seed).__name__})")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be in [0, 2**128), got {seed}")
    return int(seed)


def fresh_seed() -> int:
    # A random but *recorded* seed, so every image is reproducible from its PNG metadata.
    return int(np.random.SeedSequence().entropy % (2**63))


def make_latents(seed: int, n: int, z_dim: int) -> np.ndarray:
    """(n, z_dim) float32 standard normal from default_rng(seed).

    Row i depends only on (seed, i), not on n (the generator fills row-major), so
    (seed, index) reproduces one image of a larger batch.
    """
    return np.random.default_rng(seed).standard_normal((n, z_dim), dtype=np.float32)


def check_latents(latents: Any, z_dim: int) -> np.ndarray:
    """User latents -> C-contiguous (n, z_dim) float32; any real float dtype is accepted."""
    if not isinstance(latents, np.ndarray):
        if isinstance(latents, (list, tuple)):
            try:
                latents = np.asarray(latents, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise InputError(f"latents must be a numeric (n, {z_dim}) array; converting the list failed "
                                 f"({e})") from None
        else:
            raise InputError(f"latents must be a numpy array of shape (n, {z_dim}), got {type(latents).__name__}")
    if latents.dtype.kind != "f":
        raise InputError(f"latents must be float (float32 preferred), got dtype {latents.dtype}: "
                         f"use rng.standard_normal((n, {z_dim}), dtype=np.float32)")
    if latents.ndim == 1 and latents.shape[0] == z_dim:
        latents = latents[None]
    if latents.ndim != 2 or latents.shape[1] != z_dim:
        raise InputError(f"latents must have shape (n, {z_dim}), got {latents.shape}")
    check_count(latents.shape[0], "latents.shape[0]")
    latents = np.ascontiguousarray(latents, dtype=np.float32)
    if not np.isfinite(latents).all():
        bad = int((~np.isfinite(latents)).sum())
        raise InputError(f"latents contain {bad} NaN/inf value(s); the generator needs finite values: "
                         "draw them with np.random.default_rng(seed).standard_normal(...)")
    return latents


def seed_latents(seeds: Any, z_dim: int) -> np.ndarray:
    """(B,) or (B, 1) integer seeds -> (B, z_dim) float32, row b = make_latents(seed_b, 1, z_dim)[0].

    Row b is the image `skugen generate --seed S --n 1` makes; one seed per item, so the result
    never depends on how a server batched the requests together.
    """
    flat = np.asarray(seeds).reshape(-1)
    if flat.dtype.kind not in "iu":
        raise InputError(f"seed must be an integer tensor (int64), got dtype {flat.dtype}")
    check_count(flat.shape[0], "number of seeds")
    out = np.empty((flat.shape[0], z_dim), dtype=np.float32)
    for i, s in enumerate(flat.tolist()):
        out[i] = make_latents(check_seed(s), 1, z_dim)[0]
    return out
