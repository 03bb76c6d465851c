"""The engine store: where a bundle's TensorRT engines live, and what is known about each one.

    engines/<device>-sm<cc>-trt<version>-<precision>/   under the bundle root, or, for a read-only
        engine.plan        the serialized engine           bundle (installed under /opt, say), under
        engine.json        the sidecar (skugen.backends.tensorrt.plan.engine_metadata)
        verified.json      written only after `skugen verify` passed on this engine (tied to its sha256)

The read-only fallback is `<SKUGEN_CACHE_DIR>/tensorrt/engines/<bundle>-<manifest sha256[:16]>/<key>/`.
Every reader goes through here (the TensorRT builder and runner, `skugen deploy` / `skugen engines`, and
`skugen export-triton`), so an engine written to the fallback is seen by all of them.

Runtime-light: no tensorrt, no pycuda; engines are listed from their sidecars alone.
"""
from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from skugen import __version__, config
from skugen.errors import BundleError
from skugen.io import atomic_write_json, sha256_file

from . import plan as tp

log = logging.getLogger("skugen.tensorrt")

VERIFIED_FILE = "verified.json"  # next to engines/<key>/engine.json; written only after `skugen verify` passed


def as_bundle(bundle):
    from skugen.bundle import Bundle, load_bundle

    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)

# ----------------------------------------------------------------------------- locations


def fallback_root(b) -> Path:
    """Engines of a read-only bundle (e.g. installed under /opt) go to the user cache instead."""
    return config.cache_dir("tensorrt") / "engines" / f"{tp.device_slug(b.name)}-{b.manifest_sha256[:16]}"


def roots(b) -> list[Path]:
    """The directories holding `b`'s engines, in lookup order: the bundle's own engines/, then the fallback."""
    return [b.engines_dir(), fallback_root(b)]


def find(b, key: str) -> Path | None:
    """The engines/<key>/ directory with a sidecar, the bundle's own first; None when there is none."""
    for r in roots(b):
        if (r / key / tp.SIDECAR_FILE).is_file():
            return r / key
    return None


def writable_dir(b, key: str) -> Path:
    """Where a new engine for `key` goes: the bundle's engines/<key>/, or the fallback when the bundle is read-only."""
    primary = b.engines_dir() / key
    probe = next((p for p in (primary.parent, b.root) if p.exists()), b.root)
    if os.access(probe, os.W_OK):
        return primary
    fallback = fallback_root(b) / key
    log.warning("bundle %s is read-only; writing the TensorRT engine to %s", b.root, fallback)
    return fallback

# ----------------------------------------------------------------------------- one engine directory


def read_sidecar(d: Path) -> dict | None:
    try:
        return json.loads((Path(d) / tp.SIDECAR_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def plan_file(d: Path, info: dict) -> Path:
    f = info.get("plan_file") or tp.ENGINE_FILE  # engine.json field written by plan.engine_metadata
    return Path(d) / (Path(f).name if isinstance(f, str) else tp.ENGINE_FILE)


def plan_problem(d: Path, side: dict) -> str | None:
    """Why the engine file in `d` cannot be trusted (None: it is there and matches its sidecar's sha256)."""
    plan = Path(d) / tp.ENGINE_FILE
    if not plan.is_file():
        return f"{tp.ENGINE_FILE} is missing"
    if side.get("plan_sha256") and sha256_file(plan) != side["plan_sha256"]:
        return f"{tp.ENGINE_FILE} fails its sha256 check (corrupted or replaced)"
    return None


def engine_precision(d: Path, info: dict) -> str | None:
    p = info.get("precision")
    name = Path(d).name
    return p if isinstance(p, str) else name.rsplit("-", 1)[-1] if "-" in name else None


def engine_verified(engine_dir: str | os.PathLike) -> bool:
    """True when engine_dir has a verified.json whose engine_sha256 matches the engine file now on disk."""
    d = Path(engine_dir)
    try:
        rec = json.loads((d / VERIFIED_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    plan = plan_file(d, read_sidecar(d) or {})
    return bool(rec.get("verified")) and plan.is_file() and rec.get("engine_sha256") == sha256_file(plan)


@dataclass(frozen=True)
class EngineRecord:
    """A built (or reused) engine: where it is and what its sidecar says."""

    key: str
    precision: str
    engine_dir: Path
    metadata: dict
    built: bool  # False: an up-to-date engine was already there (cache hit)

    @property
    def plan_path(self) -> Path:
        return self.engine_dir / tp.ENGINE_FILE

    @property
    def sidecar_path(self) -> Path:
        return self.engine_dir / tp.SIDECAR_FILE

    def to_dict(self) -> dict:
        m = self.metadata
        return {"key": self.key, "precision": self.precision, "engine_dir": str(self.engine_dir),
                "plan": str(self.plan_path), "built": self.built, "build_seconds": m.get("build_seconds"),
                "quantization": m.get("quantization"), "profile": m.get("profile"),
                "precision_counts": m.get("precision_counts"), "tensorrt_version": m.get("tensorrt_version"),
                "device_name": m.get("device_name"), "compute_capability": m.get("compute_capability")}


@dataclass(frozen=True)
class StoredEngine:
    """One engines/<key>/ directory found in the store (bundle or fallback), read from its sidecar."""

    key: str
    dir: Path
    info: dict           # the engine.json sidecar
    precision: str | None
    in_bundle: bool      # False: the read-only fallback under the user cache

    @property
    def plan(self) -> Path:
        return plan_file(self.dir, self.info)

    @property
    def verified(self) -> bool:
        return engine_verified(self.dir)

# ----------------------------------------------------------------------------- the whole store


def list_engines(bundle) -> list[StoredEngine]:
    """Every engine directory with a readable sidecar, by key; a key in the bundle hides the fallback's."""
    b = as_bundle(bundle)
    seen: dict[str, StoredEngine] = {}
    for i, r in enumerate(roots(b)):
        if not r.is_dir():
            continue
        for d in sorted(r.iterdir()):
            if d.name in seen or not d.is_dir() or d.name.startswith("."):
                continue
            info = read_sidecar(d)
            if info is None:
                continue
            seen[d.name] = StoredEngine(d.name, d, info, engine_precision(d, info), in_bundle=(i == 0))
    return [seen[k] for k in sorted(seen)]


def keys_for(b, precision: str) -> list[str]:
    """Keys of the stored engines of `precision` (for error messages)."""
    return [e.key for e in list_engines(b) if e.precision == precision]


def find_engine_dir(bundle, precision: str) -> Path:
    """The engine dir of `precision` built most recently (install.sh builds right before it marks)."""
    b = as_bundle(bundle)
    hits = [e.dir for e in list_engines(b) if e.precision == precision and e.plan.is_file()]
    if not hits:
        raise BundleError(f"bundle {b.name!r} has no built {precision} TensorRT engine under {b.engines_dir()} "
                          f"(or {fallback_root(b)}). Build one with "
                          f"`skugen build {b.root} --backend tensorrt --precision {precision}`.")
    return max(hits, key=lambda d: (d / tp.SIDECAR_FILE).stat().st_mtime)


def mark_verified(bundle, precision: str, log: str | None = None, by: str = "skugen verify (install.sh)") -> Path:
    """Write <engine dir>/verified.json for the newest `precision` engine; call only after verify passed."""
    b = as_bundle(bundle)
    d = find_engine_dir(b, precision)
    info = read_sidecar(d) or {}
    rec = {
        "verified": True,
        "backend": "tensorrt",
        "precision": precision,
        "engine_sha256": sha256_file(plan_file(d, info)),  # stale as soon as the engine is rebuilt
        "engine_json": info,
        "bundle": b.name,
        "manifest_sha256": b.manifest_sha256,
        "skugen_version": __version__,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "by": by,
        "verify_log": log,
    }
    return atomic_write_json(d / VERIFIED_FILE, rec)


def engine_status(bundle) -> list[dict]:
    """[{key, precision, verified}] of every stored engine, the fallback's included."""
    return [{"key": e.key, "precision": e.precision, "verified": e.verified} for e in list_engines(bundle)]
