"""The runtime never imports the toolchain: a Jetson app has numpy + onnxruntime + pillow only."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

RUNTIME_MODULES = ["skugen", "skugen.pipeline", "skugen.bundle", "skugen.verify", "skugen.backends",
                   "skugen.backends.onnxruntime", "skugen.backends.tensorrt", "skugen.metrics", "skugen.report",
                   "skugen.tiling", "skugen.prepost", "skugen.cli", "skugen.cli.runtime", "skugen.cli.bench",
                   "skugen.kernels", "skugen.backends.torch", "skugen.bench", "skugen.bench.config",
                   "skugen.bench.ceilings", "skugen.bench.cells", "skugen.bench.quality", "skugen.bench.run",
                   "skugen.bench.report", "skugen.bench.views", "skugen.bench.gate", "skugen.bench.html",
                   "skugen.manifest", "skugen.result", "skugen.selection", "skugen.backends.registry",
                   "skugen.backends.tensorrt.plan", "skugen.backends.tensorrt.cuda", "skugen.backends.tensorrt.store",
                   "skugen.backends.tensorrt.build", "skugen.backends.tensorrt.runner"]
# Toolchain packages: heavy (torch ~1-2 s to import) and absent from runtime installs.
FORBIDDEN = ["torch", "torchvision", "nncf", "onnx", "onnxslim", "torch_pruning", "safetensors", "scipy",
             "skimage", "cv2", "matplotlib", "skugen.export"]

_PROBE = r"""
import importlib, json, sys
mods = json.loads(sys.argv[1])
missing = []
for m in mods:
    try:
        importlib.import_module(m)
    except ModuleNotFoundError as e:
        if e.name != m:  # the module exists but one of ITS imports is missing: a real failure
            raise
        missing.append(m)  # optional module not written (yet) / not installed
print(json.dumps({"loaded": sorted(sys.modules), "missing": missing}))
"""


def _probe(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _toolchain(loaded: list[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_runtime_imports_no_toolchain():
    out = _probe(_PROBE, json.dumps(RUNTIME_MODULES))
    assert "skugen.pipeline" not in out["missing"] and "skugen.metrics" not in out["missing"]
    assert _toolchain(out["loaded"]) == []


def test_generate_path_stays_light(cgan_bundle, sr_bundle, tmp_path):
    """Loading a bundle, generating, enhancing and saving PNGs pulls in no toolchain module either."""
    code = r"""
import json, sys
import numpy as np
import skugen
with skugen.load(sys.argv[1], backend="onnxruntime", threads=1) as p:
    p.generate(labels="sneaker", n=2, seed=0).save(sys.argv[3])
    p.report().to_json()
with skugen.load(sys.argv[2], backend="onnxruntime", threads=1) as p:
    p.enhance(np.zeros((20, 30, 3), np.uint8)).save(sys.argv[3])
print(json.dumps({"loaded": sorted(sys.modules), "missing": []}))
"""
    out = _probe(code, str(cgan_bundle), str(sr_bundle), str(tmp_path))
    assert _toolchain(out["loaded"]) == []


@pytest.mark.parametrize("cmd", [["--help"], ["generate", "--help"], ["enhance", "--help"], ["env"]])
def test_cli_runtime_commands_stay_light(cmd):
    code = ("import json, sys\nfrom skugen import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps({'loaded': sorted(sys.modules)}))")
    out = _probe(code, *cmd)
    assert _toolchain(out["loaded"]) == []
