"""`skugen deploy`: package a verified bundle for one edge target (Jetson Orin / Xavier, x86 + NVIDIA GPU).

    pkg = deploy("runs/demo/bundle", "jetson-orin", "cgan-orin.tar.gz")

The package is one self-contained .tar.gz (written atomically) holding:

    skugen-<bundle>-<target>/
        README.md                 what is inside, and the device steps
        install.sh                checks the device, installs the runtime, builds + verifies engines ON the device
        requirements.txt          pip requirements of the runtime on this target (never torch)
        requirements-tensorrt.txt x86-gpu only: TensorRT from pip when it is not installed yet
        deploy.json               target, bundle identity, build-host verify reports, what install.sh checks
        SHA256SUMS                sha256 of every other file (`sha256sum -c SHA256SUMS`)
        bundle/                   the bundle, engines/ left out (engines are built for one GPU + TensorRT);
                                  its signature.sig when it is signed (skugen sign)
        trusted_keys/             only with deploy(trusted_keys=...): the public keys install.sh trusts when
                                  the device sets no SKUGEN_TRUSTED_KEYS of its own
        skugen-runtime/           the runtime-only distribution: pyproject.toml + skugen/ (sdk + kernels)
        reports/                  verify reports made on the build host (onnxruntime, every precision)

Why the engines are not shipped: a TensorRT engine only runs on the GPU model and
TensorRT version that built it, so install.sh rebuilds them on the device from the
bundle's ONNX and verifies them against the bundle's golden outputs before marking
them usable (engines/<key>/verified.json, tied to the engine file by its sha256).

On the device, `skugen engines mark-verified|status BUNDLE ...` calls mark_engine_verified and
engine_status (install.sh uses them; nothing here needs torch).
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from . import __version__
from .backends.tensorrt import store as engine_store
from .backends.tensorrt.plan import TRT_MAX, TRT_MIN  # the supported TensorRT range, defined once
from .backends.tensorrt.store import VERIFIED_FILE, engine_verified  # noqa: F401  (public: skugen.deploy)
from .bundle import UNHASHED_DIRS, Bundle, load_bundle
from .errors import InputError
from .io import atomic_file, atomic_write_json, sha256_file

PKG_SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """What one deployment target needs; install.sh checks each field on the device."""

    name: str
    title: str
    arch: str                      # `uname -m` the device must report
    jetson: bool                   # L4T/JetPack checks (/etc/nv_tegra_release, nvidia-jetpack)
    sm: str | None                 # required GPU compute capability as digits ("87"); None = any NVIDIA GPU
    tegra_chip: str | None         # /proc/device-tree/compatible entry of the SoC (checked before pip runs)
    min_l4t_major: int | None      # L4T major release: R35 = JetPack 5.x, R36 = JetPack 6.x
    jetpack: str                   # the JetPack line this target is written for (for humans)
    requirements: tuple[str, ...]  # pip lines (comments allowed); TensorRT on Jetson comes with JetPack
    notes: tuple[str, ...]         # caveats printed into README.md and deploy.json


_BASE_REQS = (
    "numpy>=1.24",
    "pillow>=10",
)
_JETSON_REQS = _BASE_REQS + (
    "# CPU onnxruntime from PyPI (aarch64 wheels exist). For the CUDA execution provider install instead the",
    "# onnxruntime-gpu wheel built for your JetPack from the Jetson Zoo (https://elinux.org/Jetson_Zoo#ONNX_Runtime);",
    "# never install both.",
    "onnxruntime>=1.17",
    "# pycuda builds from source on Jetson: it needs nvcc on PATH (/usr/local/cuda/bin) and python3-dev.",
    "pycuda>=2024.1",
)

TARGETS: dict[str, Target] = {
    "jetson-orin": Target(
        name="jetson-orin", title="NVIDIA Jetson Orin (AGX Orin, Orin NX, Orin Nano)", arch="aarch64", jetson=True,
        sm="87", tegra_chip="nvidia,tegra234", min_l4t_major=36,
        jetpack="JetPack 6.1+ (L4T R36.4+, Ubuntu 22.04, Python 3.10, TensorRT 10.3)",
        requirements=_JETSON_REQS,
        notes=("JetPack 6.0 (L4T R36.2/R36.3) ships TensorRT 8.6: skugen's TensorRT backend needs TensorRT >= 10, "
               "so install.sh then falls back to verifying on onnxruntime only; upgrade to JetPack 6.1+ for engines.",
               "Latency depends on the power mode (nvpmodel); see docs/jetson.md before benchmarking."),
    ),
    "jetson-xavier": Target(
        name="jetson-xavier", title="NVIDIA Jetson AGX Xavier / Xavier NX", arch="aarch64", jetson=True,
        sm="72", tegra_chip="nvidia,tegra194", min_l4t_major=35,
        jetpack="JetPack 5.1.x (L4T R35, Ubuntu 20.04, Python 3.8, TensorRT 8.5) - the last JetPack for Xavier",
        requirements=_JETSON_REQS,
        notes=("Xavier's last JetPack (5.1.x) ships Python 3.8 and TensorRT 8.5, but the skugen runtime needs "
               "Python >= 3.10 and its TensorRT backend TensorRT >= 10. install.sh stops unless you pass a "
               "Python >= 3.10 (--python), and then verifies on onnxruntime only (no TensorRT engines).",),
    ),
    "x86-gpu": Target(
        name="x86-gpu", title="x86-64 Linux with an NVIDIA GPU", arch="x86_64", jetson=False,
        sm=None, tegra_chip=None, min_l4t_major=None,
        jetpack="x86-64 Linux with the NVIDIA driver + CUDA 12 (TensorRT 10 from pip when missing)",
        requirements=_BASE_REQS + ("onnxruntime>=1.17", "pycuda>=2024.1"),
        notes=("TensorRT is installed from pip (requirements-tensorrt.txt) only when `import tensorrt` fails, so "
               "a system TensorRT (deb/tar) is kept.",),
    ),
}
MIN_TRT = ".".join(map(str, TRT_MIN))   # install.sh: TRT_MIN <= TensorRT < TRT_MAX
MAX_TRT = ".".join(map(str, TRT_MAX))
# x86-gpu targets CUDA 12: pip TensorRT from the 10.x line (cu12 wheels); 11.x also builds skugen engines.
TRT_PIP = (f"tensorrt>={MIN_TRT},<11",)
MIN_PYTHON = (3, 10)


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise InputError(f"unknown deploy target {name!r}; choose one of: {', '.join(TARGETS)} "
                         "(e.g. `skugen deploy BUNDLE --target jetson-orin --out pkg.tar.gz`).")
    return TARGETS[name]


def engine_precisions(b: Bundle) -> list[str]:
    """TensorRT precisions install.sh builds: fp16 from the fp32 ONNX, int8 from the Q/DQ ONNX when present,
    each only when the manifest has a golden tolerance for it (`skugen verify` needs one)."""
    out = (["fp16"] if "fp32" in b.precisions else []) + (["int8"] if "int8" in b.precisions else [])
    tols = b.spec.golden.tolerances
    if tols:
        out = [p for p in out if p in tols]
    return out


# ----------------------------------------------------------------------------- deploy

def deploy(bundle: str | os.PathLike | Bundle, target: str, out: str | os.PathLike | None = None,
           verify: bool = True, trusted_keys=None) -> Path:
    """Write a self-contained deployment package for `target` to `out` (.tar.gz, atomic); returns `out`.

    out=None writes ./skugen-NAME-TARGET.tar.gz (see package_name).

    A signed bundle travels with its signature. trusted_keys (public-key files, directories or key ids): the
    bundle must verify under them here, and they are pinned in the package's trusted_keys/, which install.sh
    enforces on the device unless the device sets its own SKUGEN_TRUSTED_KEYS (the stronger anchor: keys
    shipped inside a package guard against mix-ups and forged bundles in transit, not against someone who can
    rewrite the whole package).

    The bundle is sha256-checked and, unless verify=False, run through `skugen verify`
    on onnxruntime (CPU) for every precision it has; a failure stops here, before
    anything is written. Engines are left out: install.sh builds them on the device.
    """
    t = get_target(target)
    if out is None:
        bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        out = f"{package_name(bundle, t.name)}.tar.gz"
    out = Path(out)
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name such as {out / 'package.tar.gz'}.")
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise InputError(f"--out {out} must end in .tar.gz or .tgz (the package is a gzipped tar).")
    policy = None
    if trusted_keys is not None:
        from .signing import check_signature, policy_from

        policy = policy_from(trusted_keys, "deploy --trusted-key")
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)  # sha256 of every file checked here
    if policy is not None:
        check_signature(b.root, policy)  # refuse to package a bundle the device would refuse
    reports = _verify_on_host(b) if verify else {}
    pkg_name = package_name(b, t.name)

    with tempfile.TemporaryDirectory(prefix=".skugen-deploy.") as td:
        root = Path(td) / pkg_name
        _copy_bundle(b, root / "bundle")
        if policy is not None:
            for k in policy.keys:
                (root / "trusted_keys").mkdir(exist_ok=True)
                shutil.copyfile(k.path, root / "trusted_keys" / f"{_safe(k.name)}.{k.short}.pub.pem")
        _copy_runtime(root / "skugen-runtime")
        for prec, rep in reports.items():
            atomic_write_json(root / "reports" / f"verify-onnxruntime-{prec}.json", rep)
        reqs = _requirements(t, b, signed=policy is not None or b.signature.status != "unsigned")
        (root / "requirements.txt").write_text(reqs)
        if not t.jetson:
            (root / "requirements-tensorrt.txt").write_text(
                "# Installed by install.sh only when `import tensorrt` fails (keeps a system TensorRT).\n"
                + "\n".join(TRT_PIP) + "\n")
        meta = _deploy_json(b, t, reports, policy)
        atomic_write_json(root / "deploy.json", meta)
        (root / "install.sh").write_text(_install_sh(b, t, pkg_name))
        (root / "install.sh").chmod(0o755)
        (root / "README.md").write_text(_readme(b, t, pkg_name, meta))
        _write_sums(root)
        _tar_gz(root, out)
    return out


def _verify_on_host(b: Bundle) -> dict[str, dict]:
    """Every precision through onnxruntime (CPU) against the golden outputs; VerificationError on any failure."""
    from .verify import verify_bundle

    return {prec: verify_bundle(b, backend="onnxruntime", precision=prec).raise_if_failed().to_dict()
            for prec in b.precisions}


def package_name(b: Bundle, target: str) -> str:
    """The package's top directory (and default file stem): skugen-NAME-TARGET, file-name safe."""
    return _safe(f"skugen-{b.name}-{target}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _copy_bundle(b: Bundle, dst: Path) -> None:
    for f in sorted(b.root.rglob("*")):
        rel = f.relative_to(b.root)
        if rel.parts[0] in UNHASHED_DIRS or not f.is_file() or "__pycache__" in rel.parts:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst / rel)
    # The copy must load exactly like the original (same manifest, every sha256 intact).
    load_bundle(dst)


def _runtime_sources() -> tuple[Path, Path]:
    """(sdk tree, kernels tree): installed as skugen/ and skugen/kernels/ (pyproject.toml's package-dir map).

    Works from a source checkout (sdk/ + kernels/) and from an installed runtime
    (where kernels already sit inside skugen/), so a device can re-package too.
    """
    sdk = Path(__file__).resolve().parent
    import skugen.kernels as k  # runtime sub-package: numpy reference + CUDA sources, no torch

    return sdk, Path(k.__file__).resolve().parent


def _copy_tree(src: Path, dst: Path, skip: set[str]) -> None:
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if not f.is_file() or skip & set(rel.parts) or f.suffix in (".pyc", ".pyo", ".so", ".o", ".tmp"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst / rel)


def _copy_runtime(dst: Path) -> None:
    sdk, kernels = _runtime_sources()
    # export/ is the torch toolchain (never on a device); kernels/ is copied from its own tree below.
    _copy_tree(sdk, dst / "skugen", skip={"__pycache__", "export", "kernels"})
    _copy_tree(kernels, dst / "skugen" / "kernels", skip={"__pycache__"})
    # Every directory with an __init__.py is a package, so a new sub-package of sdk/ ships without edits here.
    pkgs = sorted(".".join(p.parent.relative_to(dst).parts) for p in (dst / "skugen").rglob("__init__.py"))
    (dst / "pyproject.toml").write_text(_RUNTIME_PYPROJECT.replace("@@VERSION@@", __version__)
                                        .replace("@@PACKAGES@@", json.dumps(pkgs)))
    (dst / "README.md").write_text("skugen runtime (numpy + onnxruntime; TensorRT + pycuda optional). "
                                   "No torch. Install with `pip install .`\n")


_RUNTIME_PYPROJECT = """\
# The skugen RUNTIME only (what a device needs), generated by `skugen deploy`. No torch, no toolchain.
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "skugen"
version = "@@VERSION@@"
description = "skugen edge runtime for product-image generators (runtime-only distribution)"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["numpy>=1.24", "onnxruntime>=1.17", "pillow>=10"]

[project.optional-dependencies]
# TensorRT itself comes with JetPack on Jetson (apt), or from pip on x86 (requirements-tensorrt.txt).
tensorrt = ["pycuda>=2024.1"]

[project.scripts]
skugen = "skugen.cli:main"

[tool.setuptools]
packages = @@PACKAGES@@

[tool.setuptools.package-data]
"*" = ["*.cu", "*.cuh", "*.h", "*.json"]
"skugen" = ["deploy_files/*.sh", "triton_files/*.py"]
"""


# Signature checks on the device (skugen[sign]); pyopenssl because model-signing 1.1 imports it undeclared.
SIGN_REQUIREMENTS = ("model-signing>=1.1,<2", "pyopenssl>=24")


def _requirements(t: Target, b: Bundle, signed: bool = False) -> str:
    head = [f"# skugen runtime requirements for {t.name}: {t.title}",
            f"# Written for {t.jetpack}.",
            "# No torch: the runtime never imports it. TensorRT is checked by install.sh"
            + (" (it comes with JetPack: sudo apt install nvidia-jetpack)." if t.jetson else
               " (requirements-tensorrt.txt when missing)."),
            ""]
    sign = (["", "# the bundle is signed: install.sh checks the signature (skugen[sign])", *SIGN_REQUIREMENTS]
            if signed else [])
    return "\n".join(head + list(t.requirements) + sign) + "\n"


def _deploy_json(b: Bundle, t: Target, reports: dict, policy=None) -> dict:
    return {
        "schema_version": PKG_SCHEMA_VERSION,
        "skugen_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_host": {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        "target": asdict(t),
        "bundle": {"name": b.name, "kind": b.kind, "manifest_sha256": b.manifest_sha256,
                   "precisions": b.precisions, "path": "bundle", "signature": b.signature.to_dict()},
        "trusted_keys": [{"key_id": k.key_id, "name": k.name} for k in policy.keys] if policy else None,
        "install": {"min_python": ".".join(map(str, MIN_PYTHON)), "tensorrt_range": f">={MIN_TRT},<{MAX_TRT}",
                    "engine_precisions": engine_precisions(b),
                    "verified_marker": f"bundle/engines/<key>/{VERIFIED_FILE}"},
        "verified_on_build_host": {p: {"backend": "onnxruntime", "pass": True} for p in reports} or None,
    }


def _write_sums(root: Path) -> None:
    lines = [f"{sha256_file(f)}  {f.relative_to(root).as_posix()}"
             for f in sorted(root.rglob("*")) if f.is_file() and f.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _tar_gz(root: Path, out: Path) -> None:
    """root/ -> out (.tar.gz), atomically (skugen.io.atomic_file); owner/group normalised, sorted members."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())

    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = mtime
        ti.mode = 0o755 if (ti.isdir() or ti.name.endswith(".sh")) else 0o644
        return ti

    with atomic_file(out) as af, open(af.tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
            tf.add(root, arcname=root.name, recursive=False, filter=norm)
            for f in sorted(root.rglob("*")):
                tf.add(f, arcname=f"{root.name}/{f.relative_to(root).as_posix()}", recursive=False, filter=norm)


# ----------------------------------------------------------------------------- install.sh

def _install_sh(b: Bundle, t: Target, pkg_name: str) -> str:
    subs = {
        "@@PKG@@": pkg_name, "@@VERSION@@": __version__, "@@TARGET@@": t.name, "@@TITLE@@": t.title,
        "@@ARCH@@": t.arch, "@@JETSON@@": "1" if t.jetson else "0", "@@SM@@": t.sm or "",
        "@@TEGRA@@": t.tegra_chip or "", "@@MIN_L4T@@": str(t.min_l4t_major or 0), "@@JETPACK@@": t.jetpack,
        "@@ENGINE_PRECISIONS@@": " ".join(engine_precisions(b)), "@@ORT_PRECISIONS@@": " ".join(b.precisions),
        "@@MIN_TRT@@": MIN_TRT, "@@MAX_TRT@@": MAX_TRT, "@@MIN_PY@@": ".".join(map(str, MIN_PYTHON)),
        "@@MIN_PY_TUPLE@@": ", ".join(map(str, MIN_PYTHON)), "@@BUNDLE_NAME@@": b.name,
    }
    # a real file (package data), so it can be read, linted (shellcheck) and diffed as a script
    text = resources.files("skugen").joinpath("deploy_files/install.sh").read_text(encoding="utf-8")
    for k, v in subs.items():
        if any(c in v for c in '"$`\\'):
            raise AssertionError(f"unsafe character in install.sh substitution {k}={v!r}")
        text = text.replace(k, v)
    assert "@@" not in text, "unfilled placeholder in install.sh"
    return text


# ----------------------------------------------------------------------------- README

_JETSON_BENCH_NOTE = """Record the power mode (`sudo nvpmodel -q`) with every benchmark, and do not run
`sudo jetson_clocks` before a benchmark unless the deployed device runs with it too: it pins
the clocks to their maximum and the numbers then describe a different device.

"""

def _readme(b: Bundle, t: Target, pkg: str, meta: dict) -> str:
    run = {"generator": "skugen generate bundle --class " + (b.class_names[0] if b.class_names else "0")
                        + " --n 16 --seed 0 --out grid.png",
           "diffusion": 'skugen generate bundle --prompt "white sneakers" --prompt "a black handbag" --seed 0 '
                        "--out grid.png"}.get(b.kind, "skugen enhance bundle photo.jpg --out photo_x2.png")
    notes = "\n".join(f"- {n}" for n in t.notes)
    verified = ", ".join(meta["verified_on_build_host"] or {}) or "not verified (packaged with --no-verify)"
    return f"""# {pkg}

skugen deployment package of bundle **{b.name}** ({b.kind}) for **{t.title}** (`{t.name}`),
made by skugen {__version__}. Written for {t.jetpack}.

| what | where |
|---|---|
| bundle (no engines; built on the device) | `bundle/` (manifest sha256 `{b.manifest_sha256[:16]}...`) |
| runtime (numpy + onnxruntime, TensorRT + pycuda optional; no torch) | `skugen-runtime/` |
| pip requirements | `requirements.txt` |
| installer | `install.sh` |
| build-host verify reports (onnxruntime) | `reports/` ({verified}) |
| checksums | `SHA256SUMS` |

## On the device

```bash
tar xzf {pkg}.tar.gz && cd {pkg}
./install.sh                      # or: ./install.sh --venv ~/skugen-venv
```

install.sh checks the device ({"JetPack/L4T, the SoC, " if t.jetson else ""}GPU compute capability
{("sm_" + t.sm) if t.sm else "(any)"}, Python >= {meta["install"]["min_python"]}, TensorRT >= {MIN_TRT} and < {MAX_TRT}, pycuda),
installs the runtime, then for each of {", ".join(engine_precisions(b))}:

```bash
skugen build bundle --backend tensorrt --precision fp16     # engine for THIS GPU + TensorRT
skugen verify bundle --backend tensorrt --precision fp16    # against the bundle's golden outputs
```

and only then writes `bundle/engines/<key>/{VERIFIED_FILE}` (tied to the engine by its sha256).
A failed verify leaves the engine unmarked and install.sh exits non-zero. `--no-tensorrt` verifies
on onnxruntime only. Check the state any time with `python3 -m skugen.cli engines status bundle`.

Then run it:

```bash
{run}
skugen bench bundle --backends tensorrt --precisions fp16,int8 --batch 1,8   # records the nvpmodel mode
```

{_JETSON_BENCH_NOTE if t.jetson else ""}## Notes

{notes}
"""


# ----------------------------------------------------------------------------- engine verification marks
# The engine store (skugen.backends.tensorrt.store) owns engines/<key>/ and its read-only fallback; these are
# its device-side entry points (`skugen engines mark-verified|status`, install.sh).

def find_engine_dir(bundle: str | os.PathLike | Bundle, precision: str) -> Path:
    """The engine dir of `precision` built most recently (install.sh builds right before it marks)."""
    return engine_store.find_engine_dir(bundle, precision)


def mark_engine_verified(bundle: str | os.PathLike | Bundle, precision: str, log: str | None = None) -> Path:
    """Write <engine dir>/verified.json for the newest `precision` engine; call only after verify passed.

    A multi-graph bundle's further graphs (a diffusion text encoder) are marked too, each at the precision the
    runtime runs it at (Bundle.graphs_at: what `skugen build` built and `skugen verify` checked). Returns the
    bundle's own engine directory's marker."""
    b = engine_store.as_bundle(bundle)
    main = engine_store.mark_verified(b, precision, log, by="skugen verify (install.sh)")
    for g, p in b.graphs_at(precision)[1:]:
        engine_store.mark_verified(g, p, log, by="skugen verify (install.sh)")
    return main


def engine_status(bundle: str | os.PathLike | Bundle) -> list[dict]:
    """[{key, precision, verified}] of every engine of the bundle, the read-only fallback's included."""
    return engine_store.engine_status(bundle)
