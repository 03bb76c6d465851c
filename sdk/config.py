"""The single place for SKUGEN_* environment settings.

Each setting is read lazily (at call time) so tests can monkeypatch os.environ.
`skugen env` / `settings_table()` prints them with their current values.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    doc: str

    def get(self) -> str | None:
        v = os.environ.get(self.name)
        return v if v not in (None, "") else self.default


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("SKUGEN_FMNIST_DIR", None,
                "Directory with the four Fashion-MNIST idx .gz files. Searched after --data-dir, "
                "before /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)."),
        Setting("SKUGEN_GROCERY_DIR", None,
                "Root of a GroceryStoreDataset clone (the folder holding dataset/). "
                "Searched before ../shared/data/grocery-store next to the repo."),
        Setting("SKUGEN_CACHE_DIR", str(Path.home() / ".cache" / "skugen"),
                "Cache for compiled CUDA kernels, TensorRT timing caches and downloads."),
        Setting("SKUGEN_ALLOW_DOWNLOAD", "0",
                "Set to 1 to allow downloading Fashion-MNIST from the official source "
                "(checksum-verified) when no local copy exists. Never set in tests."),
        Setting("SKUGEN_NUM_THREADS", None,
                "Intra-op threads for ONNX Runtime / torch (default: all cores)."),
        Setting("SKUGEN_TRUSTED_KEYS", None,
                "Bundle trust policy: public-key files, directories of them, or key ids, separated by "
                f"'{os.pathsep}'. When set, only bundles signed by one of these keys load (skugen.signing)."),
        Setting("SKUGEN_KEYRING", str(Path.home() / ".config" / "skugen" / "keys"),
                "Directory of public keys (NAME.pub.pem) where key ids in a trust policy are looked up."),
        Setting("SKUGEN_LOG_LEVEL", "WARNING", "Python logging level for the skugen logger."),
        Setting("SKUGEN_NO_PROGRESS", "0", "Set to 1 to hide progress bars (CI logs)."),
    ]
}


def get(name: str) -> str | None:
    return SETTINGS[name].get()


def get_bool(name: str) -> bool:
    return (get(name) or "0").strip().lower() in ("1", "true", "yes", "on")


def get_int(name: str) -> int | None:
    v = get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        from .errors import InputError

        raise InputError(f"{name}={v!r} is not an integer; set it to a whole number or unset it.") from None


def cache_dir(sub: str = "") -> Path:
    p = Path(get("SKUGEN_CACHE_DIR") or ".")
    if sub:
        p = p / sub
    p.mkdir(parents=True, exist_ok=True)
    return p


def settings_table() -> list[dict]:
    return [{"name": s.name, "value": s.get(), "default": s.default, "doc": s.doc}
            for s in SETTINGS.values()]
