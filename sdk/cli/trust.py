"""Bundle signing commands: keygen, sign (the trust policy itself is the --trusted-key option of the
runtime commands, or SKUGEN_TRUSTED_KEYS; see skugen.signing)."""
from __future__ import annotations

import json

from ._common import add_bundle, add_json, command


def add_keygen(sub) -> None:
    p = command(sub, "keygen", "make a key pair for signing bundles", func=_keygen, examples="""\
skugen keygen --out keys --name acme-release
skugen sign runs/demo/bundle --key keys/acme-release.key.pem
skugen verify runs/demo/bundle --trusted-key keys/acme-release.pub.pem
""", description="Write NAME.key.pem (the PRIVATE key, mode 0600: keep it on the build host) and NAME.pub.pem "
                 "(the public key: give it to the devices' trust policy). ECDSA P-256, OpenSSF model-signing's "
                 "key mode. Needs the `sign` extra.")
    p.add_argument("--out", required=True, help="directory for the two key files (created if missing)")
    p.add_argument("--name", default="skugen", help="file stem of the key pair (default: skugen)")
    add_json(p)


def _keygen(args) -> int:
    from ..signing import key_id_of_pem, keygen

    priv, pub = keygen(args.out, args.name)
    kid = key_id_of_pem(pub.read_bytes())
    if args.json:
        print(json.dumps({"private_key": str(priv), "public_key": str(pub), "key_id": kid}, indent=2))
    else:
        print(f"private key: {priv}   (keep it secret; sign with: skugen sign BUNDLE --key {priv})")
        print(f"public key:  {pub}   (trust it on devices: --trusted-key {pub} or SKUGEN_TRUSTED_KEYS)")
        print(f"key id:      {kid}")
    return 0


def add_sign(sub) -> None:
    p = command(sub, "sign", "sign a bundle with a private key (writes BUNDLE/signature.sig)", func=_sign,
                examples="""\
skugen sign runs/demo/bundle --key keys/acme-release.key.pem
""", description="Verify every sha256 of the bundle, then sign the whole directory (manifest included; engines/ "
                 "and other device-made sidecars excluded) with OpenSSF model-signing. Re-signing replaces the "
                 "signature. A .tar made afterwards with the bundle keeps it.")
    add_bundle(p, "bundle directory (a .tar: sign the directory, then pack it)")
    p.add_argument("--key", required=True, help="private key file (NAME.key.pem from skugen keygen)")
    add_json(p)


def _sign(args) -> int:
    from ..bundle import sign_bundle

    info = sign_bundle(args.bundle, args.key)
    if args.json:
        print(json.dumps({"bundle": args.bundle, **info.to_dict()}, indent=2))
    else:
        print(f"{args.bundle}: signed with key {info.key_id[:16]} ({info.key_name}); {info.algorithm}")
    return 0
