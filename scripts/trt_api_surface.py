#!/usr/bin/env python3
"""Write the public Python API of each supported TensorRT version to a small committed JSON, without a GPU.

    python scripts/trt_api_surface.py                       # the versions below -> tests/sdk/backends/trt_api/
    python scripts/trt_api_surface.py --version tensorrt-cu12-bindings==10.8.0.43

For each version: `pip download --no-deps` the bindings wheel (about 1.3 MB; the multi-GB libnvinfer is NOT
needed), unzip it, and import the real `tensorrt_bindings` package on this CPU machine in a subprocess. The
bindings' .so links only nine C entry points of libnvinfer/libnvonnxparser/libnvinfer_plugin
(createInferBuilder_INTERNAL, ...), which only run when a Builder/Runtime/OnnxParser is *constructed*; this
script compiles stand-in libraries exporting those symbols (listed from the .so with `nm -D`) so the module
loads and every class registers. Then it writes, per version, {class: [members]} from dir() - classes,
methods, properties and enum values exactly as pybind11 registered them (nothing guessed from `strings`).

Needs: pip (with access to PyPI), gcc and nm (binutils), a CPython matching the wheels' tag (cp311 here).
tests/sdk/backends/test_tensorrt_api.py checks every TensorRT name skugen uses against these files.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "sdk" / "backends" / "trt_api"
# The supported range is 10.3 (JetPack 6) <= TensorRT < 12: its ends and one late 10.x.
VERSIONS = ("tensorrt-cu12-bindings==10.3.0", "tensorrt-cu12-bindings==10.16.1.11",
            "tensorrt-cu13-bindings==11.4.0.106")

_DUMP = r"""
import json, sys
import tensorrt_bindings as trt
api = {}
for name in sorted(dir(trt)):
    if name.startswith("_"):
        continue
    obj = getattr(trt, name)
    members = sorted(m for m in dir(obj) if not m.startswith("_")) if isinstance(obj, type) else []
    api[name] = members
json.dump({"version": trt.__version__, "api": api}, sys.stdout)
"""


def _run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def _stub_libs(so: Path, lib_dir: Path) -> None:
    """Stand-in shared libraries for every NEEDED libnv* of `so`, exporting the symbols `so` imports."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(libnv[^\]]+)\]", _run(["readelf", "-d", str(so)]))
    syms = []
    for line in _run(["nm", "-D", "--undefined-only", str(so)]).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not parts[1].startswith(("Py", "_Py")):
            if parts[1] not in ("dlopen", "dlsym", "dlclose", "dlerror"):
                syms.append(parts[1])
    src = lib_dir / "stub.c"
    src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in sorted(set(syms))))
    for lib in needed:
        _run(["gcc", "-shared", "-fPIC", "-o", str(lib_dir / lib), str(src)])


def surface(requirement: str, work: Path) -> dict:
    d = work / re.sub(r"[^A-Za-z0-9.]+", "_", requirement)
    d.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", requirement, "-d", str(d)])
    wheel = next(d.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(d / "x")
    so = next((d / "x").glob("tensorrt_bindings/tensorrt*.so"))
    libs = d / "libs"
    libs.mkdir(exist_ok=True)
    _stub_libs(so, libs)
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}",
           "PYTHONPATH": str(d / "x")}
    out = json.loads(_run([sys.executable, "-c", _DUMP], env=env, cwd=str(d)))
    return {"package": requirement.split("==")[0], "wheel": wheel.name, "version": out["version"],
            "how": "dir() of the real bindings module, loaded with stand-in libnvinfer (scripts/trt_api_surface.py)",
            "api": out["api"]}


def write(data: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"tensorrt-{data['version']}.json"
    # One line per class keeps the file small and its diffs readable.
    lines = [f'  {json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}' for k, v in data["api"].items()]
    head = {k: v for k, v in data.items() if k != "api"}
    text = "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
    text += '  "api": {\n' + ",\n".join("  " + s for s in lines) + "\n  }\n}\n"
    from skugen.io import atomic_write_text

    return atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="append", help=f"pip requirement of a bindings wheel (default: {VERSIONS})")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trt-api-") as tmp:
        for req in args.version or VERSIONS:
            data = surface(req, Path(tmp))
            n = sum(len(v) for v in data["api"].values())
            print(f"{req}: {len(data['api'])} names, {n} members -> {write(data, args.out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
