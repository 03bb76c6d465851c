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
    signature.sig            optional: OpenSSF model-signing signature of the whole directory (skugen sign;
                             see skugen.signing). Not in `files`: it signs them.
    engines/<key>/           TensorRT engines built ON the device (not hashed: they are caches, each with
                             its own engine.json naming the ONNX sha256 it came from)

Every file in manifest["files"] is verified on load; a single flipped byte is
refused with IntegrityError. Writes go to a temp dir renamed into place, so a
kill -9 never leaves a bundle that loads but is incomplete.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import BundleError, InputError, IntegrityError
from .io import atomic_dir, atomic_file, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from .manifest import Manifest, schema_for
from .signing import SignatureInfo, check_signature, policy_from, sign_dir

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
UNHASHED_DIRS = ("engines",)  # device-built caches; verified by their own sidecar instead


@dataclass
class Bundle:
    """A verified, loaded bundle (read-only view). `spec` is the parsed manifest (skugen.manifest.Manifest)."""

    root: Path
    spec: Manifest
    manifest_sha256: str
    signature: SignatureInfo = field(default_factory=lambda: SignatureInfo("unsigned"))
    graph_name: str | None = None   # a view of one further graph of a multi-graph bundle (Bundle.graph)

    # -- convenience accessors (everything else: the parsed `spec`, e.g. b.spec.io.max_batch, b.spec.value_range,
    # b.spec.variant(p, backend); for the raw dict, b.spec.to_dict()) -------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.io.class_names)

    @property
    def precisions(self) -> list[str]:
        return list(self.spec.precisions)

    def model_path(self, precision: str, backend: str | None = None) -> Path:
        return self.root / self.spec.variant(precision, backend).file

    def model_sha256(self, precision: str, backend: str | None = None) -> str:
        return self.spec.variant(precision, backend).sha256

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        g = self.spec.golden
        return _load_npz(self.root / g.inputs), _load_npz(self.root / g.outputs)

    def report(self, name: str) -> dict | None:
        rel = self.spec.reports.get(name)
        return json.loads((self.root / rel).read_text()) if rel else None

    def engines_dir(self) -> Path:
        """Device-built engines: engines/<key>/ for the bundle's own graph, engines/graph-<name>/<key>/ for another
        graph's (the same device key must not make a text encoder's engine overwrite the denoiser's)."""
        return self.root / "engines" / (f"graph-{self.graph_name}" if self.graph_name else "")

    def graphs_at(self, precision: str) -> list[tuple["Bundle", str]]:
        """(graph, the precision it runs at) for every graph: this bundle's own at `precision`, each further graph
        (a diffusion text encoder) at `precision` when it has that variant or it is bf16 (OpenVINO's hint on fp32),
        else fp32. What the runtime loads, verify checks and `skugen build` builds."""
        out: list[tuple[Bundle, str]] = [(self, precision)]
        for name in self.spec.graphs:
            g = self.graph(name)
            out.append((g, precision if precision in g.precisions or precision == "bf16" else "fp32"))
        return out

    def graph(self, name: str) -> "Bundle":
        """The same verified bundle seen as graph `name` (a multi-graph bundle's text encoder, say): what
        runner_for and verify take. Engines built for it are cached under engines/ like the main graph's."""
        return Bundle(self.root, self.spec.graph(name), self.manifest_sha256, self.signature, graph_name=name)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()

# ----------------------------------------------------------------------------- load / verify


def load_bundle(path: str | os.PathLike, verify: bool = True, trusted_keys=None) -> Bundle:
    """Open a bundle directory (or .tar, extracted to a cache dir) and verify every file's sha256.

    trusted_keys: the trust policy (public-key files, directories or key ids; see skugen.signing). None: the
    SKUGEN_TRUSTED_KEYS policy when set; False: no policy. Under a policy the signature is checked even with
    verify=False, and an unsigned, forged or foreign-signed bundle raises IntegrityError.
    """
    policy = None if trusted_keys is False else policy_from(trusted_keys)
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
        raw_dict = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mf} is not valid JSON ({e}). Re-copy or re-export the bundle.") from e
    spec = Manifest.from_dict(raw_dict, f"bundle {p}")
    if verify:
        verify_files(p, spec)
    return Bundle(p, spec, digest, check_signature(p, policy))


def verify_files(root: Path, spec: Manifest) -> None:
    files = spec.files
    for rel in spec.referenced_files():
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
        try:
            with tarfile.open(tar) as tf:
                members = tf.getmembers()
                for m in members:
                    if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                        raise BundleError(f"{tar} contains an unsafe member {m.name!r}; refusing to extract.")
                tf.extractall(tmp, members=members, filter="data") if hasattr(tarfile, "data_filter") \
                    else tf.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise BundleError(f"{tar} is not a readable tar ({type(e).__name__}: {e}): truncated or corrupt. "
                              "Copy the bundle tar again.") from None
        inner = [d for d in tmp.iterdir()]
        if len(inner) == 1 and inner[0].is_dir() and (inner[0] / MANIFEST).is_file():
            for x in inner[0].iterdir():
                shutil.move(str(x), tmp / x.name)
            inner[0].rmdir()
        if not (tmp / MANIFEST).is_file():
            raise BundleError(f"{tar} holds no {MANIFEST}: it is not a skugen bundle tar. Write one with "
                              "`skugen export ... --tar`.")
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


def write_bundle(out: str | os.PathLike, manifest: Manifest | dict, files: dict[str, bytes | os.PathLike]) -> Path:
    """Atomically write a bundle: `files` maps relative path -> bytes or a source file to copy.

    `manifest` is a Manifest (what the exporter builds) or its dict form (parsed here, so a malformed
    one is refused before anything is written). Fills `files` with every file's sha256, adds
    schema_version and skugen_version when missing, writes manifest.json + manifest.sha256, then
    renames the temp dir into place. The toolchain (skugen.export) calls this; it needs no torch.
    """
    manifest = dict(manifest.to_dict() if isinstance(manifest, Manifest) else manifest)
    manifest.setdefault("schema_version", schema_for(manifest.get("graphs")))
    manifest.setdefault("skugen_version", __version__)
    manifest.setdefault("files", {})
    Manifest.from_dict(manifest, "the manifest to write")
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
        spec = Manifest.from_dict(manifest, f"bundle {out}")
        if missing := [rel for rel in spec.referenced_files() if rel not in hashes]:
            raise BundleError(f"the manifest to write refers to {missing}, which are not among the bundle's files "
                              f"{sorted(hashes)}. Pass them in `files` (a bug in the exporter if it wrote this).")
        raw = (json.dumps(manifest, indent=2) + "\n").encode()
        (tmp / MANIFEST).write_bytes(raw)
        (tmp / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")
    return out


def sign_bundle(bundle_dir: str | os.PathLike, private_key: str | os.PathLike) -> SignatureInfo:
    """Verify every sha256 of a bundle directory, then sign it (skugen.signing; writes BUNDLE/signature.sig)."""
    if Path(bundle_dir).is_file():
        raise InputError(f"{bundle_dir} is a file; sign the bundle DIRECTORY, then pack it (`skugen export --tar` "
                         "or skugen.bundle.to_tar): the .tar keeps the signature.")
    b = load_bundle(bundle_dir, trusted_keys=False)  # refuse to sign a corrupted bundle; no policy applies here
    return sign_dir(b.root, private_key)


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
    m = b.spec
    return {
        "name": m.name, "kind": m.kind, "schema_version": m.schema_version,
        "skugen_version": m.skugen_version, "path": str(b.root), "manifest_sha256": b.manifest_sha256,
        "inputs": [t.to_dict() for t in m.io.inputs], "outputs": [t.to_dict() for t in m.io.outputs],
        "class_names": list(m.io.class_names),
        "models": {k: {kk: vv for kk, vv in v.to_dict().items()
                       if kk in ("file", "sha256", "bytes", "precision", "params", "macs")}
                   for k, v in m.models.items()},
        "quality": m.quality, "source": (m.source or {}).get("name"),
        "engines": sorted(str(p.relative_to(b.root)) for p in b.engines_dir().glob("*/engine.json")),
        "signature": b.signature.to_dict(),
    }
