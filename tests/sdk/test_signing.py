"""Signed bundles (skugen.signing): each case of the trust policy, on a real bundle, with real model-signing.

The attack the policy exists for: flip a byte in a model, put the file's new sha256 in manifest.json and
recompute manifest.sha256. sha256 checks alone accept that bundle; a signature check must not.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("model_signing", reason="the sign extra (pip install 'skugen[sign]')")

from skugen import cli, signing  # noqa: E402
from skugen.bundle import MANIFEST, MANIFEST_DIGEST, load_bundle, sign_bundle, to_tar  # noqa: E402
from skugen.errors import BackendUnavailable, InputError, IntegrityError  # noqa: E402
from skugen.io import sha256_bytes, sha256_file  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "bundle_v1_generator"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("keys")
    return {n: signing.keygen(d / n, n) for n in ("release", "rotated", "stranger")}


@pytest.fixture
def bundle(tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(FIXTURE, dst)
    return dst


@pytest.fixture
def signed(bundle, keys) -> Path:
    sign_bundle(bundle, keys["release"][0])
    return bundle


@pytest.fixture(autouse=True)
def _no_env_policy(monkeypatch, tmp_path):
    monkeypatch.delenv("SKUGEN_TRUSTED_KEYS", raising=False)
    monkeypatch.setenv("SKUGEN_KEYRING", str(tmp_path / "empty-keyring"))


def _forge(bundle: Path, rel: str = "model.fp32.onnx") -> None:
    """The attack: one flipped byte, then the manifest re-hashed consistently."""
    f = bundle / rel
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    m = json.loads((bundle / MANIFEST).read_text())
    m["files"][rel] = sha256_file(f)
    raw = (json.dumps(m, indent=2) + "\n").encode()
    (bundle / MANIFEST).write_bytes(raw)
    (bundle / MANIFEST_DIGEST).write_text(f"{sha256_bytes(raw)}  {MANIFEST}\n")


# ----------------------------------------------------------------------------- keys


def test_keygen_writes_a_private_0600_and_a_public_key_and_never_overwrites(tmp_path):
    priv, pub = signing.keygen(tmp_path, "acme")
    assert priv.name == "acme.key.pem" and pub.name == "acme.pub.pem"
    assert priv.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    k = signing.load_public_key(pub)
    assert k.key_id == signing.key_id_of_pem(pub.read_bytes()) and len(k.key_id) == 64 and k.name == "acme"
    with pytest.raises(InputError, match="refusing to overwrite"):
        signing.keygen(tmp_path, "acme")
    with pytest.raises(InputError, match="PRIVATE key"):
        signing.load_public_key(priv)
    with pytest.raises(InputError, match="letters, digits"):
        signing.keygen(tmp_path, "../evil")


# ----------------------------------------------------------------------------- the cases of the policy


def test_signed_bundle_passes_and_says_who_signed(signed, keys):
    b = load_bundle(signed, trusted_keys=[keys["release"][1]])
    assert b.signature.status == "verified" and b.signature.key_name == "release"
    assert b.signature.key_id == signing.load_public_key(keys["release"][1]).key_id
    assert "signed by release" in b.signature.describe()


def test_without_a_policy_unsigned_loads_and_says_so(bundle):
    b = load_bundle(bundle)
    assert b.signature.status == "unsigned" and b.signature.describe() == "unsigned"


def test_without_a_policy_a_signed_bundle_reports_its_key_unchecked(signed, keys):
    b = load_bundle(signed)
    assert b.signature.status.startswith("signed, not checked")
    assert b.signature.key_id == signing.load_public_key(keys["release"][1]).key_id


def test_a_byte_flipped_after_signing_is_refused(signed, keys):
    f = signed / "model.int8.onnx"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        load_bundle(signed, trusted_keys=[keys["release"][1]])
    # even when the sha256 pass is skipped, the policy still checks the signature
    with pytest.raises(IntegrityError, match="files changed after signing"):
        load_bundle(signed, verify=False, trusted_keys=[keys["release"][1]])


def test_a_consistently_rehashed_forgery_is_refused(signed, keys):
    _forge(signed)
    assert load_bundle(signed, trusted_keys=False).name  # the sha256 checks alone accept it: the attack works
    with pytest.raises(IntegrityError, match="files changed after signing") as e:
        load_bundle(signed, trusted_keys=[keys["release"][1]])
    assert "model.fp32.onnx" in str(e.value) or "manifest" in str(e.value)


def test_a_file_added_after_signing_is_refused(signed, keys):
    (signed / "reports" / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match="files changed after signing"):
        load_bundle(signed, trusted_keys=[keys["release"][1]])


def test_engines_are_outside_the_signature(signed, keys):
    (signed / "engines" / "abc").mkdir(parents=True)
    (signed / "engines" / "abc" / "engine.json").write_text("{}")
    assert load_bundle(signed, trusted_keys=[keys["release"][1]]).signature.status == "verified"


def test_unsigned_under_a_policy_is_refused(bundle, keys):
    with pytest.raises(IntegrityError, match="unsigned bundle"):
        load_bundle(bundle, trusted_keys=[keys["release"][1]])


def test_a_foreign_key_is_refused(signed, keys):
    with pytest.raises(IntegrityError, match="foreign key") as e:
        load_bundle(signed, trusted_keys=[keys["stranger"][1]])
    assert "stranger" in str(e.value)


def test_a_bad_signature_is_refused(signed, keys):
    sig = signed / signing.SIGNATURE
    d = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-3] ^= 0x01
    d["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(d))
    with pytest.raises(IntegrityError, match="bad signature"):
        load_bundle(signed, trusted_keys=[keys["release"][1]])
    sig.write_text("not json")
    with pytest.raises(IntegrityError, match="bad signature"):
        load_bundle(signed, trusted_keys=[keys["release"][1]])


def test_two_trusted_keys_both_accepted(bundle, keys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    sign_bundle(bundle, keys["release"][0])
    sign_bundle(other, keys["rotated"][0])
    policy = [keys["release"][1], keys["rotated"][1]]
    assert load_bundle(bundle, trusted_keys=policy).signature.key_name == "release"
    assert load_bundle(other, trusted_keys=policy).signature.key_name == "rotated"


def test_policy_from_env_directory_and_key_id(signed, keys, tmp_path, monkeypatch):
    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(keys["release"][1], ring)
    shutil.copy(keys["rotated"][1], ring)
    monkeypatch.setenv("SKUGEN_TRUSTED_KEYS", str(ring))  # a directory
    b = load_bundle(signed)
    assert b.signature.status == "verified" and b.signature.policy == "SKUGEN_TRUSTED_KEYS"
    kid = signing.load_public_key(keys["release"][1]).key_id
    monkeypatch.setenv("SKUGEN_KEYRING", str(ring))
    monkeypatch.setenv("SKUGEN_TRUSTED_KEYS", kid[:12])  # a key id, found in the keyring
    assert load_bundle(signed).signature.status == "verified"
    monkeypatch.setenv("SKUGEN_TRUSTED_KEYS", signing.load_public_key(keys["rotated"][1]).key_id[:12])
    with pytest.raises(IntegrityError, match="foreign key"):
        load_bundle(signed)
    monkeypatch.setenv("SKUGEN_TRUSTED_KEYS", "deadbeefdeadbeef")
    with pytest.raises(InputError, match="matches no public key"):
        load_bundle(signed)


def test_a_policy_without_the_extra_fails_closed(signed, keys, monkeypatch):
    monkeypatch.setitem(sys.modules, "model_signing", None)  # what `import model_signing` sees when not installed
    with pytest.raises(BackendUnavailable, match=r"skugen\[sign\]"):
        load_bundle(signed, trusted_keys=[keys["release"][1]])
    monkeypatch.setenv("SKUGEN_TRUSTED_KEYS", str(keys["release"][1]))
    with pytest.raises(BackendUnavailable, match=r"skugen\[sign\]"):
        load_bundle(signed)
    # no policy: nothing to check, so the bundle loads and reports its (unchecked) signer
    monkeypatch.delenv("SKUGEN_TRUSTED_KEYS")
    assert load_bundle(signed).signature.status.startswith("signed, not checked")


# ----------------------------------------------------------------------------- where bundles travel


def test_tar_round_trip_keeps_the_signature(signed, keys, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    tar = to_tar(signed, tmp_path / "b.tar")
    with tarfile.open(tar) as tf:
        assert signing.SIGNATURE in tf.getnames()
    b = load_bundle(tar, trusted_keys=[keys["release"][1]])
    assert b.signature.status == "verified"


def test_signing_a_tar_or_with_a_public_key_is_refused(signed, keys, tmp_path):
    tar = to_tar(signed, tmp_path / "b.tar")
    with pytest.raises(InputError, match="sign the bundle DIRECTORY"):
        sign_bundle(tar, keys["release"][0])
    with pytest.raises(InputError, match="not a private key"):
        sign_bundle(signed, keys["release"][1])


def _extract(tar: Path, dest: Path) -> Path:
    with tarfile.open(tar) as tf:
        tf.extractall(dest, filter="data")
    (top,) = list(dest.iterdir())
    return top


def _rewrite_sums(root: Path) -> None:
    """What an attacker who can rewrite the whole package does after forging the bundle inside it."""
    lines = [f"{sha256_file(f)}  {f.relative_to(root).as_posix()}" for f in sorted(root.rglob("*"))
             if f.is_file() and f.name != "SHA256SUMS" and f.relative_to(root).parts[0] != "logs"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_deploy_carries_the_signature_and_install_sh_checks_it(signed, keys, tmp_path):
    import os

    from skugen.deploy import deploy

    with pytest.raises(IntegrityError, match="foreign key"):  # refuse to package what the device would refuse
        deploy(signed, "x86-gpu", tmp_path / "no.tar.gz", verify=False, trusted_keys=[keys["stranger"][1]])
    assert not (tmp_path / "no.tar.gz").exists()
    root = _extract(deploy(signed, "x86-gpu", tmp_path / "pkg.tar.gz", verify=False,
                           trusted_keys=[keys["release"][1]]), tmp_path / "x")
    assert (root / "bundle" / signing.SIGNATURE).is_file()
    assert [p.name.split(".")[0] for p in (root / "trusted_keys").iterdir()] == ["release"]
    assert "model-signing" in (root / "requirements.txt").read_text()
    meta = json.loads((root / "deploy.json").read_text())
    assert meta["bundle"]["signature"]["key_id"] == signing.load_public_key(keys["release"][1]).key_id
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SKUGEN_TRUSTED_KEYS")}
    cmd = ["bash", str(root / "install.sh"), "--force", "--no-tensorrt", "--skip-pip", "--python", sys.executable]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "trust policy: the package's trusted_keys/" in r.stdout and "signed by release" in r.stdout
    # the device's own policy wins over the package's keys
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**env, "SKUGEN_TRUSTED_KEYS": str(keys["stranger"][1])})
    assert r.returncode != 0 and "this device's SKUGEN_TRUSTED_KEYS" in r.stdout and "foreign key" in r.stderr
    # an attacker who forges the bundle inside the package and rewrites SHA256SUMS is still refused
    _forge(root / "bundle")
    _rewrite_sums(root)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert "package sha256 OK" in r.stdout
    assert r.returncode != 0 and "the bundle is refused" in r.stderr and "files changed after signing" in r.stderr
    assert "verifying on onnxruntime" not in r.stdout  # refused before anything ran on the bundle


def test_export_triton_copies_the_signature(signed, keys, tmp_path):
    from skugen.triton import PROVENANCE, export_triton

    repo = export_triton(load_bundle(signed, trusted_keys=[keys["release"][1]]), tmp_path / "repo")
    assert (repo / PROVENANCE / signing.SIGNATURE).read_bytes() == (signed / signing.SIGNATURE).read_bytes()
    assert (repo / PROVENANCE / "manifest.json").read_bytes() == (signed / "manifest.json").read_bytes()
    s = json.loads((repo / "skugen_triton.json").read_text())
    assert s["bundle"]["signature"]["status"] == "verified" and s["bundle"]["signature"]["key_name"] == "release"


def test_runtime_import_stays_free_of_the_signing_library(signed):
    code = ("import sys, skugen; from skugen.bundle import load_bundle; b = load_bundle(sys.argv[1]); "
            "print(b.signature.status); "
            "print([m for m in ('model_signing', 'cryptography', 'torch') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code, str(signed)], capture_output=True, text=True, check=True,
                       env={"PATH": "/usr/bin:/bin"})
    status, mods = r.stdout.strip().splitlines()
    assert status.startswith("signed, not checked") and mods == "[]"


# ----------------------------------------------------------------------------- CLI


def test_cli_keygen_sign_verify(bundle, tmp_path, capsys):
    assert cli.main(["keygen", "--out", str(tmp_path / "k"), "--name", "ci"]) == 0
    priv, pub = tmp_path / "k" / "ci.key.pem", tmp_path / "k" / "ci.pub.pem"
    assert cli.main(["sign", str(bundle), "--key", str(priv)]) == 0
    assert cli.main(["verify", str(bundle), "--trusted-key", str(pub)]) == 0
    assert "signature: signed by ci" in capsys.readouterr().out
    _forge(bundle)
    assert cli.main(["verify", str(bundle)]) == 0  # no policy: the forgery passes the sha256 checks
    capsys.readouterr()
    rc = cli.main(["verify", str(bundle), "--trusted-key", str(pub)])
    assert rc != 0 and "files changed after signing" in capsys.readouterr().err
