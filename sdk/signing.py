"""Signed bundles: who made a bundle, not only whether its files agree with each other.

    skugen keygen --out keys/ --name acme-release        # keys/acme-release.key.pem (private, 0600) + .pub.pem
    skugen sign BUNDLE --key keys/acme-release.key.pem   # writes BUNDLE/signature.sig (skugen.bundle.sign_bundle)
    skugen.load(BUNDLE, trusted_keys=["keys/acme-release.pub.pem"])   # or SKUGEN_TRUSTED_KEYS

Why OpenSSF model-signing (PyPI `model-signing`, extra `skugen[sign]`) rather than our own format: it is the
maintained standard for signing model directories (a Sigstore bundle holding a DSSE-signed in-toto statement
of every file's sha256), it has an offline key-based mode, and any other tool that speaks it can check a skugen
bundle (`model_signing verify key BUNDLE --signature BUNDLE/signature.sig --public_key K.pub.pem`). Its key mode
uses ECDSA (P-256 here), not Ed25519. What it signs is the bundle directory: every file, manifest.json and
manifest.sha256 included, except the sidecars listed in UNSIGNED (device-built engines and the signature itself),
and it refuses files added after signing. So an attacker who alters a model and re-hashes the manifest
consistently is caught: the signed digests no longer match.

Trust policy: `trusted_keys=[...]` (load), `--trusted-key` (CLI), or SKUGEN_TRUSTED_KEYS (os.pathsep-separated).
Each entry is a public-key file, a directory of them (*.pub.pem / *.pem), or a key id (hex, >= 8 characters)
looked up among those files and in SKUGEN_KEYRING. With a policy set, an unsigned bundle, a bad signature, a
signature by a key outside the set, and files changed after signing each raise IntegrityError naming the case.
A policy without the `sign` extra fails closed (BackendUnavailable): the check is never skipped silently.
Without a policy an unsigned bundle loads as before, and `pipe.info["signature"]` says it is unsigned.

The key id is model-signing's key hint: the sha256 of the public key's PEM SubjectPublicKeyInfo.
This module imports neither model_signing nor cryptography until a key is loaded or a signature checked.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from . import config
from .errors import InputError, IntegrityError, need_extra
from .io import atomic_write_bytes

SIGNATURE = "signature.sig"
# Not covered by the signature: engines/ (made on the device: TensorRT engines, each checked against the signed
# ONNX's sha256 by its own engine.json; the OpenVINO compile cache; the `skugen tune` table) and the signature.
UNSIGNED = ("engines", SIGNATURE)
ALGORITHM = "ecdsa-p256-sha256 (OpenSSF model-signing, key mode)"
_KEY_ID_RE = re.compile(r"^[0-9a-fA-F]{8,64}$")


def _need(what: str):
    """Import model_signing (and cryptography) or raise the `sign` extra's BackendUnavailable."""
    try:
        import model_signing  # noqa: F401
        from cryptography.hazmat.primitives import serialization  # noqa: F401
    except ImportError as e:
        raise need_extra(what, "sign", e) from e
    import model_signing

    return model_signing


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class TrustedKey:
    key_id: str      # full hex sha256 of the PEM SubjectPublicKeyInfo
    name: str        # the file's stem without .pub (e.g. "acme-release")
    path: str

    @property
    def short(self) -> str:
        return self.key_id[:16]


def _public_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization as S

    return key.public_bytes(S.Encoding.PEM, S.PublicFormat.SubjectPublicKeyInfo)


def key_id_of_pem(pem: bytes) -> str:
    """The key id of a PEM public key (re-serialised first, so line endings or comments do not change it)."""
    from cryptography.hazmat.primitives import serialization as S

    return hashlib.sha256(_public_pem(S.load_pem_public_key(pem))).hexdigest()


def _key_name(path: Path) -> str:
    n = path.name
    for suf in (".pub.pem", ".pem", ".pub"):
        if n.endswith(suf):
            return n[: -len(suf)]
    return path.stem


def load_public_key(path: str | os.PathLike) -> TrustedKey:
    """A trusted public key from a PEM file; InputError (with the fix) for a private key or a non-key file."""
    _need("reading a signing key")
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(path)
    if not p.is_file():
        raise InputError(f"trusted key {p} does not exist. Pass the public key file that `skugen keygen` wrote "
                         "(NAME.pub.pem), a directory of them, or a key id.")
    pem = p.read_bytes()
    if b"PRIVATE KEY" in pem:
        raise InputError(f"{p} is a PRIVATE key. A trust policy takes the PUBLIC key (NAME.pub.pem from "
                         "`skugen keygen`); keep the private key on the signing machine only.")
    from cryptography.hazmat.primitives import serialization as S

    try:
        key = S.load_pem_public_key(pem)
    except ValueError as e:
        raise InputError(f"{p} is not a PEM public key ({e}). Pass the NAME.pub.pem file `skugen keygen` wrote.") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError(f"{p} is a {type(key).__name__}; skugen bundle signatures use elliptic-curve keys "
                         "(model-signing's key mode). Make a key pair with `skugen keygen`.")
    return TrustedKey(hashlib.sha256(_public_pem(key)).hexdigest(), _key_name(p), str(p))


def keygen(out_dir: str | os.PathLike, name: str = "skugen") -> tuple[Path, Path]:
    """Write NAME.key.pem (private, PKCS#8, mode 0600) and NAME.pub.pem into out_dir; refuses to overwrite."""
    _need("skugen keygen")
    from cryptography.hazmat.primitives import serialization as S
    from cryptography.hazmat.primitives.asymmetric import ec

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise InputError(f"key name {name!r} must be letters, digits, '.', '_' or '-' (it becomes a file name).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv, pub = out / f"{name}.key.pem", out / f"{name}.pub.pem"
    for f in (priv, pub):
        if f.exists():
            raise InputError(f"{f} already exists; refusing to overwrite a key. Pick another --name or --out.")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(S.Encoding.PEM, S.PrivateFormat.PKCS8, S.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, priv)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_bytes(pub, _public_pem(key.public_key()))
    return priv, pub


# ----------------------------------------------------------------------------- trust policy


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...]
    source: str          # where the policy came from: "trusted_keys", "--trusted-key", "SKUGEN_TRUSTED_KEYS"

    def by_id(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def _key_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and f.name.endswith((".pub.pem", ".pem", ".pub"))
                  and b"PRIVATE KEY" not in f.read_bytes()[:64])


def policy_from(trusted_keys: Iterable[str | os.PathLike] | str | os.PathLike | None = None,
                source: str = "trusted_keys") -> TrustPolicy | None:
    """The trust policy in force: `trusted_keys` when given, else SKUGEN_TRUSTED_KEYS, else None (no policy).

    Without the `sign` extra, a policy that is set raises BackendUnavailable (fail closed).
    """
    if trusted_keys is None:
        env = config.get("SKUGEN_TRUSTED_KEYS")
        if not env:
            return None
        entries, source = [e for e in env.split(os.pathsep) if e.strip()], "SKUGEN_TRUSTED_KEYS"
    else:
        entries = [trusted_keys] if isinstance(trusted_keys, (str, os.PathLike)) else list(trusted_keys)
    if not entries:
        raise InputError(f"the trust policy ({source}) names no keys; pass at least one public key file, "
                         "directory or key id, or leave it unset to load unsigned bundles.")
    _need(f"the bundle trust policy ({source})")
    keys: dict[str, TrustedKey] = {}
    ids: list[str] = []
    dirs: list[Path] = []
    for e in entries:
        p = Path(os.path.expanduser(str(e)))
        if p.is_dir():
            found = _key_files(p)
            if not found:
                raise InputError(f"trusted-key directory {p} holds no public keys (*.pub.pem). Copy the signer's "
                                 "NAME.pub.pem there.")
            dirs.append(p)
            for f in found:
                k = load_public_key(f)
                keys.setdefault(k.key_id, k)
        elif p.is_file() or not _KEY_ID_RE.match(str(e)):
            k = load_public_key(p)
            keys.setdefault(k.key_id, k)
        else:
            ids.append(str(e).lower())
    if ids:
        ring = [Path(os.path.expanduser(config.get("SKUGEN_KEYRING")))] + dirs
        pool = {}
        for d in ring:
            if d.is_dir():
                for f in _key_files(d):
                    k = load_public_key(f)
                    pool.setdefault(k.key_id, k)
        for i in ids:
            match = [k for kid, k in pool.items() if kid.startswith(i)]
            if len(match) != 1:
                what = "no public key" if not match else f"{len(match)} public keys"
                raise InputError(f"trusted key id {i} matches {what} in the keyring ({', '.join(map(str, ring))}). "
                                 "Put the signer's NAME.pub.pem in SKUGEN_KEYRING, or pass the key file itself.")
            keys.setdefault(match[0].key_id, match[0])
    return TrustPolicy(tuple(keys.values()), source)


# ----------------------------------------------------------------------------- sign / check


@dataclass(frozen=True)
class SignatureInfo:
    """What pipe.info / reports say about a bundle's signature."""

    status: str                 # "unsigned" | "verified" | "signed, not checked (no trust policy)"
    key_id: str | None = None
    key_name: str | None = None
    algorithm: str | None = None
    policy: str | None = None   # where the trust policy came from, when one was applied

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        if self.status == "unsigned":
            return "unsigned"
        who = f"{self.key_name} ({self.key_id[:16]})" if self.key_name else f"key {self.key_id[:16]}"
        return f"signed by {who}: {self.status}"


def _hashing_config(model_signing):
    return model_signing.hashing.Config().set_ignored_paths(paths=list(UNSIGNED), ignore_git_paths=False)


def check_private_key(private_key: str | os.PathLike) -> bytes:
    """The PEM public key of a usable signing key; InputError with the fix otherwise (needs the `sign` extra)."""
    _need("signing bundles")
    from cryptography.hazmat.primitives import serialization as S
    from cryptography.hazmat.primitives.asymmetric import ec

    key = Path(private_key)
    if not key.is_file():
        raise InputError(f"signing key {key} does not exist. Make one with `skugen keygen --out DIR`.")
    if b"PRIVATE KEY" not in key.read_bytes()[:200]:
        raise InputError(f"{key} is not a private key. Sign with NAME.key.pem from `skugen keygen` "
                         "(the .pub.pem is for the devices' trust policy).")
    try:
        k = S.load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise InputError(f"cannot read the private key {key} ({e}). Pass an unencrypted PEM key from "
                         "`skugen keygen`.") from e
    if not isinstance(k, ec.EllipticCurvePrivateKey):
        raise InputError(f"{key} is a {type(k).__name__}; bundle signatures use elliptic-curve keys "
                         "(model-signing's key mode). Make a key pair with `skugen keygen`.")
    return _public_pem(k.public_key())


def sign_dir(root: str | os.PathLike, private_key: str | os.PathLike) -> SignatureInfo:
    """Sign a bundle directory whose files were just verified (skugen.bundle.sign_bundle does that first);
    writes ROOT/signature.sig atomically."""
    ms = _need("skugen sign")
    key = Path(private_key)
    pub = check_private_key(key)
    root = Path(root)
    fd, tmp = tempfile.mkstemp(prefix=".signature.", suffix=".sig", dir=root.parent)
    os.close(fd)
    try:
        ms.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
            _hashing_config(ms)).sign(root, tmp)
        atomic_write_bytes(root / SIGNATURE, Path(tmp).read_bytes())
    finally:
        Path(tmp).unlink(missing_ok=True)
    return SignatureInfo("signed", hashlib.sha256(pub).hexdigest(), _key_name(key).replace(".key", ""), ALGORITHM)


def _read_hint(sig: Path) -> str:
    try:
        d = json.loads(sig.read_bytes())
        hint = d["verificationMaterial"]["publicKey"]["hint"]
        base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"], validate=True)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise IntegrityError(f"bad signature: {sig} is not a readable model-signing signature ({type(e).__name__}: "
                             f"{e}). Re-sign the bundle with `skugen sign`, or re-copy it.") from e
    if not isinstance(hint, str) or not hint:
        raise IntegrityError(f"bad signature: {sig} names no signing key. Re-sign the bundle with `skugen sign`.")
    return hint.lower()


def check_signature(root: str | os.PathLike, policy: TrustPolicy | None) -> SignatureInfo:
    """Check BUNDLE/signature.sig against `policy`; IntegrityError names the case. No policy: report only."""
    root = Path(root)
    sig = root / SIGNATURE
    if not sig.is_file():
        if policy is None:
            return SignatureInfo("unsigned")
        raise IntegrityError(f"unsigned bundle: {root} has no {SIGNATURE}, and a trust policy is set "
                             f"({policy.source}). Sign it on the build host with `skugen sign {root} --key KEY`, "
                             "or load it without a trust policy.")
    hint = _read_hint(sig)
    if policy is None:
        return SignatureInfo("signed, not checked (no trust policy)", hint, None, ALGORITHM)
    key = policy.by_id(hint)
    if key is None:
        known = ", ".join(f"{k.name} ({k.short})" for k in policy.keys)
        raise IntegrityError(f"foreign key: {root} is signed by key {hint[:16]}, which is not in the trusted set "
                             f"({policy.source}: {known}). Add that signer's public key to the policy only if you "
                             "trust it, or get the bundle from a trusted signer.")
    ms = _need(f"checking bundle signatures ({policy.source})")
    from cryptography.exceptions import InvalidSignature

    try:
        ms.verifying.Config().use_elliptic_key_verifier(public_key=key.path).set_hashing_config(
            _hashing_config(ms)).set_ignore_unsigned_files(False).verify(root, sig)
    except InvalidSignature as e:
        raise IntegrityError(f"bad signature: {sig} does not verify with {key.name} ({key.short}); the signature "
                             "or the signed statement was altered. Re-copy the bundle from its signer.") from e
    except ValueError as e:
        msg = str(e)
        if msg.startswith("Signature mismatch") or "mismatch" in msg.lower() or "Extra files" in msg:
            raise IntegrityError(f"files changed after signing: {root} no longer matches what {key.name} "
                                 f"({key.short}) signed ({msg[:300]}). The bundle was altered (a re-hashed manifest "
                                 "does not help). Re-copy it from its signer.") from e
        raise IntegrityError(f"bad signature: {sig} ({msg[:300]}). Re-sign the bundle with `skugen sign`.") from e
    return SignatureInfo("verified", hint, key.name, ALGORITHM, policy.source)
