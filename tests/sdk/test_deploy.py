"""`skugen deploy`: the package unpacks, its bundle verifies on CPU, its runtime imports without torch,
install.sh is valid bash that refuses the wrong device, the requirements never name torch, engines are
left out, and the device-side verified marks are tied to the engine file.

Bundles: the shared session fixtures of tests/conftest.py (never modified in place: copied first).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from skugen import cli
from skugen.bundle import load_bundle
from skugen.deploy import (TARGETS, VERIFIED_FILE, deploy, engine_status, engine_verified, find_engine_dir,
                           mark_engine_verified)
from skugen.errors import BundleError, InputError, VerificationError
from skugen.io import sha256_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen_bundle(cgan_bundle) -> Path:
    return Path(cgan_bundle)


def _extract(tar: Path, dest: Path) -> Path:
    with tarfile.open(tar) as tf:
        names = tf.getnames()
        tf.extractall(dest, filter="data")
    tops = {n.split("/")[0] for n in names}
    assert len(tops) == 1, f"package must have one top-level directory, has {tops}"
    return dest / tops.pop()


@pytest.fixture(scope="module")
def orin_pkg(gen_bundle, tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("deploy")
    tar = deploy(gen_bundle, "jetson-orin", d / "pkg.tar.gz")
    return tar, _extract(tar, d / "x")


# ----------------------------------------------------------------------------- the package


def test_package_layout(orin_pkg, gen_bundle):
    tar, root = orin_pkg
    assert tar.is_file() and not list(tar.parent.glob(".*.tmp")), "the write must be atomic (no temp left)"
    for f in ("README.md", "install.sh", "requirements.txt", "deploy.json", "SHA256SUMS",
              "bundle/manifest.json", "skugen-runtime/pyproject.toml", "skugen-runtime/skugen/__init__.py",
              "skugen-runtime/skugen/cli/__init__.py", "skugen-runtime/skugen/deploy.py",
              "skugen-runtime/skugen/kernels/reference.py"):
        assert (root / f).is_file(), f
    assert list((root / "skugen-runtime/skugen/kernels").glob("*.cu")), "CUDA sources ship with the runtime"
    names = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if "/export/" in n or n.startswith("skugen-runtime/skugen/export")], \
        "the torch toolchain must not ship to a device"
    assert not (root / "bundle" / "engines").exists()
    assert os.access(root / "install.sh", os.X_OK)
    with tarfile.open(tar) as tf:
        modes = {m.name.split("/", 1)[-1]: m.mode for m in tf.getmembers()}
        assert modes["install.sh"] & 0o111 and all(m.uid == 0 for m in tf.getmembers())
    meta = json.loads((root / "deploy.json").read_text())
    b = load_bundle(gen_bundle)
    assert meta["target"]["name"] == "jetson-orin" and meta["target"]["sm"] == "87"
    assert meta["bundle"]["manifest_sha256"] == b.manifest_sha256
    assert set(meta["verified_on_build_host"]) == set(b.precisions)
    for p in b.precisions:
        assert (root / "reports" / f"verify-onnxruntime-{p}.json").is_file()


def test_sha256sums_cover_every_file(orin_pkg):
    _, root = orin_pkg
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(sums) == files
    assert all(sha256_file(root / f) == h for f, h in sums.items())


def test_unpacked_bundle_verifies_on_cpu(orin_pkg, gen_bundle):
    _, root = orin_pkg
    b = load_bundle(root / "bundle")  # every sha256 intact
    assert b.manifest_sha256 == load_bundle(gen_bundle).manifest_sha256
    assert cli.main(["verify", str(root / "bundle"), "--backend", "onnxruntime"]) == 0
    for p in b.precisions:
        assert cli.main(["verify", str(root / "bundle"), "--backend", "onnxruntime", "--precision", p]) == 0


def test_requirements_never_name_torch(orin_pkg):
    _, root = orin_pkg
    lines = [ln.split("#")[0].strip() for ln in (root / "requirements.txt").read_text().splitlines()]
    reqs = [re.split(r"[<>=!~;\[ ]", ln)[0].lower() for ln in lines if ln]
    assert not [r for r in reqs if r.startswith("torch")], reqs
    assert {"numpy", "onnxruntime", "pillow", "pycuda"} <= set(reqs)
    assert "tensorrt" not in reqs, "on Jetson TensorRT comes with JetPack: checked by install.sh, not pip"
    import tomllib

    proj = tomllib.loads((root / "skugen-runtime" / "pyproject.toml").read_text())["project"]
    deps = proj["dependencies"] + [d for ds in proj.get("optional-dependencies", {}).values() for d in ds]
    assert deps and not [d for d in deps if d.lower().startswith("torch")], deps
    for target in TARGETS.values():
        assert not [r for r in target.requirements if r.lower().startswith("torch")]


def test_runtime_copy_runs_without_torch(orin_pkg):
    """The packaged runtime (not the checkout) imports and verifies the bundle, and never imports torch."""
    _, root = orin_pkg
    rt = root / "skugen-runtime"
    code = (f"import sys; sys.path.insert(0, {str(rt)!r})\n"
            "import skugen, skugen.cli, skugen.kernels.reference\n"
            f"assert skugen.__file__.startswith({str(rt)!r}), skugen.__file__\n"
            f"rc = skugen.cli.main(['verify', {str(root / 'bundle')!r}, '--backend', 'onnxruntime'])\n"
            "assert 'torch' not in sys.modules, 'the runtime imported torch'\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_runtime_builds_as_a_wheel(orin_pkg, tmp_path):
    """`pip install ./skugen-runtime` works offline: build the wheel without build isolation."""
    _, root = orin_pkg
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(root / "skugen-runtime")], capture_output=True, text=True,
                       timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    import zipfile

    (whl,) = tmp_path.glob("skugen-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "skugen/cli/__init__.py" in names and "skugen/backends/onnxruntime.py" in names
    assert any(n.startswith("skugen/kernels/") and n.endswith(".cu") for n in names)
    assert not any("export" in n.split("/")[:2] for n in names)
    meta = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert requires and not [ln for ln in requires if "torch" in ln.lower()], requires


# ----------------------------------------------------------------------------- install.sh


def test_install_sh_is_valid_bash_with_the_device_checks(orin_pkg, gen_bundle):
    _, root = orin_pkg
    sh = root / "install.sh"
    r = subprocess.run(["bash", "-n", str(sh)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = sh.read_text()
    for needle in ("/etc/nv_tegra_release", "nvidia-jetpack", "import tensorrt", "pycuda", 'EXPECT_SM="87"',
                   "nvidia,tegra234", "sha256sum", "build \"$BUNDLE\" --backend tensorrt --precision",
                   "verify \"$BUNDLE\" --backend tensorrt --precision", "mark-verified", "nvpmodel"):
        assert needle in text, needle
    b = load_bundle(gen_bundle)
    want = "fp16 int8" if "int8" in b.precisions else "fp16"
    assert f'ENGINE_PRECISIONS="{want}"' in text
    # verify gates the mark: the mark-verified line comes after the verify line, which dies on failure
    assert text.index("verify \"$BUNDLE\" --backend tensorrt") < text.index("engines mark-verified")
    h = subprocess.run(["bash", str(sh), "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "--no-tensorrt" in h.stdout


def test_install_sh_refuses_the_wrong_device(orin_pkg):
    """This CI machine is not an aarch64 Jetson: the Orin installer stops at the first check."""
    _, root = orin_pkg
    if os.uname().machine == "aarch64" and Path("/etc/nv_tegra_release").exists():
        pytest.skip("running on a Jetson")
    r = subprocess.run(["bash", str(root / "install.sh"), "--skip-pip", "--python", sys.executable],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "this package is for" in r.stderr and "--force" in r.stderr


def test_install_sh_runs_on_cpu_with_onnxruntime(gen_bundle, tmp_path):
    """The whole script end to end where no GPU exists: --force turns the device checks into warnings,
    --no-tensorrt verifies on onnxruntime, --skip-pip runs the packaged runtime via PYTHONPATH."""
    root = _extract(deploy(gen_bundle, "x86-gpu", tmp_path / "x86.tar.gz", verify=False), tmp_path / "x")
    assert "tensorrt" in (root / "requirements-tensorrt.txt").read_text()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(["bash", str(root / "install.sh"), "--force", "--no-tensorrt", "--skip-pip",
                        "--python", sys.executable], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "package sha256 OK" in r.stdout
    assert f"runtime" in r.stdout and str(root / "skugen-runtime") in r.stdout
    for p in load_bundle(gen_bundle).precisions:
        assert (root / "logs" / f"verify-onnxruntime-{p}.log").is_file()
    # a tampered package is refused before anything runs
    (root / "requirements.txt").write_text("torch\n")
    r = subprocess.run(["bash", str(root / "install.sh"), "--force", "--no-tensorrt", "--skip-pip"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "SHA256SUMS" in r.stderr


def _fake_jetson(tmp: Path, l4t: str = "R36", chip: str = "nvidia,tegra234", trt: str | None = "10.3.0",
                 cc: tuple[int, int] | None = (8, 7)) -> dict:
    """An Orin as install.sh sees it: uname/dpkg-query/nvpmodel on PATH, /etc and /proc under
    SKUGEN_SYSROOT, and stand-in tensorrt / pycuda modules on PYTHONPATH."""
    bin_, root, py = tmp / "bin", tmp / "root", tmp / "py"
    for d in (bin_, root / "etc", root / "proc" / "device-tree", py):
        d.mkdir(parents=True, exist_ok=True)
    scripts = {"uname": 'if [ "$1" = "-m" ]; then echo aarch64; else /bin/uname "$@"; fi',
               "dpkg-query": "echo 6.1+b123", "nvpmodel": "echo 'NV Power Mode: 15W'; echo 0"}
    for name, body in scripts.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    (root / "etc" / "nv_tegra_release").write_text(
        f"# {l4t} (release), REVISION: 4.0, GCID: 1, BOARD: generic, EABI: aarch64, DATE: Mon\n")
    (root / "proc" / "device-tree" / "compatible").write_bytes(f"nvidia,p3768-0000\0{chip}\0".encode())
    (root / "proc" / "device-tree" / "model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\0")
    if trt:
        (py / "tensorrt").mkdir(exist_ok=True)
        (py / "tensorrt" / "__init__.py").write_text(f"__version__ = {trt!r}\n")
    if cc:
        (py / "pycuda").mkdir(exist_ok=True)
        (py / "pycuda" / "__init__.py").write_text("VERSION = (2024, 1)\n")
        (py / "pycuda" / "driver.py").write_text(
            f"def init():\n    pass\n\nclass Device:\n    def __init__(self, i):\n        pass\n\n"
            f"    def compute_capability(self):\n        return {tuple(cc)!r}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{bin_}:{env['PATH']}", SKUGEN_SYSROOT=str(root), PYTHONPATH=str(py))
    return env


def _install(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "install.sh"), "--skip-pip", "--python", sys.executable, *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=root)


def test_install_sh_on_a_simulated_orin(orin_pkg, tmp_path):
    """The device checks, on a simulated Orin: JetPack 6.0's TensorRT 8.6 -> onnxruntime-only verify;
    an sm_72 GPU, a Xavier SoC or L4T R35 -> refused with the reason."""
    _, pkg = orin_pkg
    root = Path(shutil.copytree(pkg, tmp_path / "pkg"))
    r = _install(root, _fake_jetson(tmp_path / "a", trt="8.6.2"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for s in ("L4T R36.4", "JetPack 6.1+b123", "module: NVIDIA Jetson Orin Nano", "power mode: NV Power Mode: 15W",
              "verifying on onnxruntime"):
        assert s in r.stdout, s
    assert "TensorRT 8.6.2 found" in r.stderr and "this machine is" not in r.stderr
    r = _install(root, _fake_jetson(tmp_path / "b", cc=(7, 2)))
    assert r.returncode != 0 and "GPU is sm_72 but this package targets" in r.stderr
    r = _install(root, _fake_jetson(tmp_path / "c", chip="nvidia,tegra194"))
    assert r.returncode != 0 and "this SoC is not nvidia,tegra234" in r.stderr
    r = _install(root, _fake_jetson(tmp_path / "d", l4t="R35"))
    assert r.returncode != 0 and "older than R36" in r.stderr
    r = _install(root, _fake_jetson(tmp_path / "e", trt=None))
    assert r.returncode != 0 and "cannot import tensorrt" in r.stderr


# ----------------------------------------------------------------------------- errors


def test_unknown_target_lists_the_targets(gen_bundle, tmp_path):
    with pytest.raises(InputError, match=r"unknown deploy target 'jetson-nano'.*jetson-orin, jetson-xavier, x86-gpu"):
        deploy(gen_bundle, "jetson-nano", tmp_path / "p.tar.gz")
    assert not list(tmp_path.iterdir())


def test_cli_unknown_target_exit_code(gen_bundle, tmp_path, capsys):
    rc = cli.main(["deploy", str(gen_bundle), "--target", "raspberry-pi", "--out", str(tmp_path / "p.tar.gz")])
    assert rc == 2
    assert "jetson-orin, jetson-xavier, x86-gpu" in capsys.readouterr().err


def test_out_must_be_a_tar_gz(gen_bundle, tmp_path):
    with pytest.raises(InputError, match=r"\.tar\.gz"):
        deploy(gen_bundle, "x86-gpu", tmp_path / "pkg.zip")
    with pytest.raises(InputError, match="is a directory"):
        deploy(gen_bundle, "x86-gpu", tmp_path)


def test_failed_verification_writes_nothing(gen_bundle, tmp_path, monkeypatch):
    import importlib

    vmod = importlib.import_module("skugen.verify")

    def bad(bundle, backend="onnxruntime", precision="fp32", **kw):
        raise VerificationError("outputs disagree with the golden reference")

    monkeypatch.setattr(vmod, "verify_bundle", bad)
    with pytest.raises(VerificationError):
        deploy(gen_bundle, "jetson-orin", tmp_path / "p.tar.gz")
    assert not list(tmp_path.iterdir())


def test_engines_are_left_out(gen_bundle, tmp_path):
    b = Path(shutil.copytree(gen_bundle, tmp_path / "b"))
    _fake_engine(b, "nvidia-jetson-orin-sm87-trt10.3.0-fp16", "fp16")
    root = _extract(deploy(b, "jetson-orin", tmp_path / "p.tar.gz", verify=False), tmp_path / "x")
    assert not (root / "bundle" / "engines").exists()
    load_bundle(root / "bundle")


# ----------------------------------------------------------------------------- verified marks


def _fake_engine(bundle: Path, key: str, precision: str, plan: bytes = b"plan-bytes") -> Path:
    d = bundle / "engines" / key
    d.mkdir(parents=True)
    (d / "engine.plan").write_bytes(plan)
    (d / "engine.json").write_text(json.dumps({"schema_version": 1, "key": key, "precision": precision,
                                               "plan_file": "engine.plan", "compute_capability": "8.7"}))
    return d


def test_mark_verified_is_tied_to_the_engine_file(gen_bundle, tmp_path):
    b = Path(shutil.copytree(gen_bundle, tmp_path / "b"))
    with pytest.raises(BundleError, match="skugen build"):
        find_engine_dir(b, "fp16")
    d = _fake_engine(b, "orin-sm87-trt10.3.0-fp16", "fp16")
    assert not engine_verified(d)
    rec = json.loads(mark_engine_verified(b, "fp16", log="PASS").read_text())
    assert rec["verified"] is True and rec["engine_sha256"] == sha256_file(d / "engine.plan")
    assert (d / VERIFIED_FILE).is_file() and engine_verified(d)
    assert engine_status(b) == [{"key": d.name, "precision": "fp16", "verified": True}]
    (d / "engine.plan").write_bytes(b"rebuilt")  # a rebuilt engine is not verified until verified again
    assert not engine_verified(d)
    r = subprocess.run([sys.executable, "-m", "skugen.cli", "engines", "status", str(b)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0 and "not verified" in r.stdout


# ----------------------------------------------------------------------------- CLI


def test_cli_deploy_and_help(gen_bundle, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["deploy", "--help"])
    h = capsys.readouterr().out
    assert "Examples:" in h and "jetson-orin" in h and "x86-gpu" in h
    out = tmp_path / "xavier.tar.gz"
    assert cli.main(["deploy", str(gen_bundle), "--target", "jetson-xavier", "--out", str(out), "--json",
                     "--no-verify"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["package"] == str(out) and s["sha256"] == sha256_file(out) and s["target"] == "jetson-xavier"
    root = _extract(out, tmp_path / "x")
    sh = (root / "install.sh").read_text()
    assert 'EXPECT_SM="72"' in sh and "nvidia,tegra194" in sh
    assert "Python 3.8" in (root / "README.md").read_text()


def test_default_package_path_is_decided_by_deploy(gen_bundle, tmp_path, monkeypatch):
    """deploy(out=None) names the package after the bundle and target, in the working directory."""
    monkeypatch.chdir(tmp_path)
    b = load_bundle(gen_bundle)
    path = deploy(gen_bundle, "x86-gpu", verify=False)
    assert path == Path(f"skugen-{b.name}-x86-gpu.tar.gz") and (tmp_path / path).is_file()
    with tarfile.open(tmp_path / path) as tf:
        assert all(n.split("/")[0] == path.name[:-len(".tar.gz")] for n in tf.getnames())


def test_a_diffusion_package_generates_from_prompts_without_torch(diffusion_bundle, tmp_path):
    """Both graphs, the vocabulary and the sampling loop travel in the package; its runtime copy samples."""
    tar = deploy(diffusion_bundle, "jetson-orin", tmp_path / "pkg.tar.gz")
    root = _extract(tar, tmp_path / "x")
    assert {"text_encoder.fp32.onnx", "vocab.json", "model.fp32.onnx"} <= {p.name for p in (root / "bundle").iterdir()}
    assert '--prompt "white sneakers"' in (root / "README.md").read_text()
    rt = root / "skugen-runtime"
    code = (f"import sys; sys.path.insert(0, {str(rt)!r})\n"
            "import skugen\n"
            f"assert skugen.__file__.startswith({str(rt)!r}), skugen.__file__\n"
            f"with skugen.load({str(root / 'bundle')!r}, backend='onnxruntime') as p:\n"
            "    r = p.generate(prompts=['white sneakers'], seed=0)\n"
            "assert r.images.shape == (1, 32, 32, 1)\n"
            "assert 'torch' not in sys.modules, 'the runtime imported torch'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
