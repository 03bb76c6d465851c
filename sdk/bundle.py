"""The bundle: skugen's deployable unit (a directory, or the same tree as a .tar).

Layout (all paths relative to the bundle root):
    manifest.json            schema_version, kind, I/O spec, pre/post params, models, golden, files{path: sha256}
    manifest.sha256          sha256 of manifest.json (so a flipped byte in the manifest itself is caught too)
    model.fp32.onnx          FP32 graph (dynamic batch)
    model.int8.onnx          explicit Q/DQ INT8 graph (optional)
    golden/inputs.npz        fixed inputs   (np.savez, loaded with allow_pickle=False: no pickle anywhere)
    golden/outputs.npz       reference outputs made by the source PyTorch model on those inputs
    reports/*.json           parity, quality, quantization reports
    card.json                model card of the source model
    source/model.safetensors the source weights (+ source/card.json with the architecture config)
    engines/<key>/           TensorRT engines built ON the device (not hashed: they are caches, each with
                             its own engine.json naming the ONNX sha256 it came from)

Every file in manifest["files"] is verified on load; a single flipped byte is
refused with IntegrityError. Writes go to a temp dir renamed into place, so a
kill -9 never leaves a bundle that loads but is incomplete.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import BundleError, InputError, IntegrityError
from .io import atomic_dir, atomic_file, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

SCHEMA_VERSION = 1
KINDS = ("generator", "enhancer")
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
UNHASHED_DIRS = ("engines",)  # device-built caches; verified by their own sidecar instead


@dataclass
class Bundle:
    """A verified, loaded bundle (read-only view)."""

    root: Path
    manifest: dict
    manifest_sha256: str

    # -- convenience accessors ------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def io(self) -> dict:
        return self.manifest["io"]

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["io"].get("class_names") or [])

    @property
    def precisions(self) -> list[str]:
        return list(self.manifest["models"])

    def model_path(self, precision: str) -> Path:
        if precision not in self.manifest["models"]:
            raise InputError(f"bundle {self.name!r} has no {precision!r} model; it has {self.precisions}. "
                             "Re-export with `skugen export ... --int8` to add INT8.")
        return self.root / self.manifest["models"][precision]["file"]

    def model_sha256(self, precision: str) -> str:
        return self.manifest["models"][precision]["sha256"]

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        g = self.manifest["golden"]
        return _load_npz(self.root / g["inputs"]), _load_npz(self.root / g["outputs"])

    def report(self, name: str) -> dict | None:
        rel = self.manifest.get("reports", {}).get(name)
        return json.loads((self.root / rel).read_text()) if rel else None

    def engines_dir(self) -> Path:
        return self.root / "engines"


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()

# ----------------------------------------------------------------------------- load / verify


def load_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Open a bundle directory (or .tar, extracted to a cache dir) and verify every file's sha256."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"bundle {p} does not exist. Create one with `skugen export MODEL --out {p}`.")
    if p.is_file():
        if tarfile.is_tarfile(p):
            p = _extract_tar(p)
        else:
            raise BundleError(f"{p} is a file but not a bundle .tar. Pass the bundle directory or its .tar.")
    mf = p / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{p} has no {MANIFEST}: not a skugen bundle (or an interrupted write). "
                          "Re-run `skugen export`.")
    raw = mf.read_bytes()
    digest = sha256_bytes(raw)
    if verify:
        dg = p / MANIFEST_DIGEST
        if not dg.is_file():
            raise IntegrityError(f"{dg} is missing; cannot trust {MANIFEST}. Re-export the bundle.")
        want = dg.read_text().strip().split()[0] if dg.read_text().strip() else ""
        if want != digest:
            raise IntegrityError(f"{MANIFEST} does not match {MANIFEST_DIGEST} (sha256 {digest[:12]}... != "
                                 f"{want[:12]}...): the manifest was altered or corrupted. Re-export or re-copy the bundle.")
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mf} is not valid JSON ({e}). Re-copy or re-export the bundle.") from e
    _check_schema(manifest, p)
    if verify:
        verify_files(p, manifest)
    return Bundle(p, manifest, digest)


def _check_schema(m: Any, root: Path) -> None:
    if not isinstance(m, dict) or "schema_version" not in m:
        raise BundleError(f"{root / MANIFEST} has no schema_version: not a skugen bundle.")
    v = m["schema_version"]
    if not isinstance(v, int):
        raise BundleError(f"schema_version {v!r} is not an integer.")
    if v > SCHEMA_VERSION:
        raise BundleError(f"bundle schema_version {v} is newer than this skugen supports ({SCHEMA_VERSION}). "
                          "Upgrade skugen (`pip install -U skugen`) or re-export the bundle with this version.")
    for key in ("name", "kind", "io", "models", "files", "golden"):
        if key not in m:
            raise BundleError(f"{root / MANIFEST} lacks {key!r}; the bundle is incomplete. Re-export it.")
    if m["kind"] not in KINDS:
        raise BundleError(f"bundle kind {m['kind']!r} unknown; expected one of {KINDS}.")
    if not m["models"]:
        raise BundleError(f"bundle at {root} lists no models. Re-export it.")


def verify_files(root: Path, manifest: dict) -> None:
    files: dict[str, str] = manifest["files"]
    for rel in [v["file"] for v in manifest["models"].values()] + [manifest["golden"]["inputs"],
                                                                     manifest["golden"]["outputs"]]:
        if rel not in files:
            raise IntegrityError(f"{rel} is used by the manifest but has no sha256 in 'files'. Re-export the bundle.")
    for rel, want in files.items():
        f = root / rel
        if not _inside(root, f):
            raise IntegrityError(f"manifest path {rel!r} escapes the bundle directory; refusing it.")
        if not f.is_file():
            raise IntegrityError(f"{rel} is missing from bundle {root}. Re-copy or re-export the bundle.")
        got = sha256_file(f)
        if got != want:
            raise IntegrityError(f"{rel} fails its sha256 check ({got[:12]}... != {want[:12]}...): the file was "
                                 "altered or corrupted. Re-copy or re-export the bundle.")


def _inside(root: Path, f: Path) -> bool:
    try:
        f.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _extract_tar(tar: Path) -> Path:
    from . import config

    digest = sha256_file(tar)
    dest = config.cache_dir("bundles") / digest[:16]
    if (dest / MANIFEST).is_file():
        return dest
    with atomic_dir(dest) as tmp:
        with tarfile.open(tar) as tf:
            members = tf.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise BundleError(f"{tar} contains an unsafe member {m.name!r}; refusing to extract.")
            tf.extractall(tmp, members=members, filter="data") if hasattr(tarfile, "data_filter") \
                else tf.extractall(tmp, members=members)
        inner = [d for d in tmp.iterdir()]
        if len(inner) == 1 and inner[0].is_dir() and (inner[0] / MANIFEST).is_file():
            for x in inner[0].iterdir():
                shutil.move(str(x), tmp / x.name)
            inner[0].rmdir()
    return dest

# ----------------------------------------------------------------------------- write


def check_bundle_dest(out: str | os.PathLike) -> Path:
    """Refuse an output path that writing a bundle would destroy: writing REPLACES the directory, so it must be
    missing, empty, or a bundle already (manifest.json). A mistyped `--out .` must not delete a project."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / "manifest.json").is_file())):
        what = "a file" if not out.is_dir() else "a non-empty directory that is not a skugen bundle (no manifest.json)"
        raise InputError(f"refusing to write a bundle to {out}: it is {what}, and writing a bundle replaces the whole "
                         f"directory. Choose a new --out path (e.g. {out / 'bundle'}) or remove it first.")
    return out


def write_bundle(out: str | os.PathLike, manifest: dict, files: dict[str, bytes | os.PathLike]) -> Path:
    """Atomically write a bundle: `files` maps relative path -> bytes or a source file to copy.

    Fills manifest["files"] with every file's sha256, adds schema_version and
    skugen_version, writes manifest.json + manifest.sha256, then renames the
    temp dir into place. The toolchain (skugen.export) calls this; it needs no torch.
    """
    manifest = dict(manifest)
    manifest.setdefault("schema_version", SCHEMA_VERSION)
    manifest.setdefault("skugen_version", __version__)
    out = check_bundle_dest(out)
    with atomic_dir(out) as tmp:
        hashes: dict[str, str] = {}
        for rel, src in sorted(files.items()):
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                dst.write_bytes(src)
            else:
                shutil.copyfile(src, dst)
            hashes[rel] = sha256_file(dst)
        manifest["files"] = hashes
        _check_schema(manifest, tmp)
        raw = (json.dumps(manifest, indent=2) + "\n").encode()
        (tmp / MANIFEST).write_bytes(raw)
        (tmp / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")
    return out


def to_tar(bundle_dir: str | os.PathLike, tar_path: str | os.PathLike, include_engines: bool = False) -> Path:
    """Pack a bundle directory into a .tar (atomically). Engines are device-specific and left out by default."""
    b = load_bundle(bundle_dir)  # refuse to pack a corrupted bundle
    tar_path = Path(tar_path)
    with atomic_file(tar_path) as af, tarfile.open(af.tmp, "w") as tf:
        for f in sorted(b.root.rglob("*")):
            rel = f.relative_to(b.root)
            if not include_engines and rel.parts and rel.parts[0] in UNHASHED_DIRS:
                continue
            if f.is_file():
                tf.add(f, arcname=str(rel))
    return tar_path

# ----------------------------------------------------------------------------- CLI: skugen info


def summary(b: Bundle) -> dict:
    m = b.manifest
    return {
        "name": m["name"], "kind": m["kind"], "schema_version": m["schema_version"],
        "skugen_version": m.get("skugen_version"), "path": str(b.root), "manifest_sha256": b.manifest_sha256,
        "inputs": m["io"]["inputs"], "outputs": m["io"]["outputs"], "class_names": m["io"].get("class_names"),
        "models": {k: {kk: vv for kk, vv in v.items() if kk in ("file", "sha256", "bytes", "precision", "params", "macs")}
                   for k, v in m["models"].items()},
        "quality": m.get("quality"), "source": m.get("source", {}).get("name"),
        "engines": sorted(str(p.relative_to(b.root)) for p in b.engines_dir().glob("*/engine.json")),
    }


def register(sub) -> None:
    p = sub.add_parser("info", help="show a bundle's manifest summary (verifies every sha256)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Examples:\n  skugen info runs/demo/bundle\n  skugen info bundle.tar --json")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    s = summary(load_bundle(args.bundle))
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['name']}  ({s['kind']}, schema {s['schema_version']}, skugen {s['skugen_version']})  verified: all sha256 OK")
    print(f"  path: {s['path']}")
    for io_ in ("inputs", "outputs"):
        for t in s[io_]:
            print(f"  {io_[:-1]:6s} {t['name']:8s} {t['dtype']:8s} {t['shape']}")
    for k, v in s["models"].items():
        print(f"  model  {k:5s} {v['file']}  {v.get('bytes', 0) / 1e6:.2f} MB  sha256 {v['sha256'][:12]}")
    if s["class_names"]:
        print(f"  classes: {', '.join(s['class_names'])}")
    if s["engines"]:
        print(f"  engines: {', '.join(s['engines'])}")
    return 0
