"""The runtime never imports the toolchain: a Jetson app has numpy + onnxruntime + pillow only."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Every runtime module, spelled out: a new module under sdk/ or kernels/ must be added here (test below),
# so none can pull in the toolchain unnoticed. Modules that need an optional package (TensorRT, pycuda)
# import it lazily, so each of these must import on a plain runtime install.
RUNTIME_MODULES = [
    "skugen", "skugen.backends", "skugen.backends.base", "skugen.backends.onnxruntime", "skugen.backends.openvino",
    "skugen.backends.registry", "skugen.backends.tensorrt", "skugen.backends.tensorrt.build",
    "skugen.backends.tensorrt.cuda", "skugen.backends.tensorrt.plan", "skugen.backends.tensorrt.runner",
    "skugen.backends.tensorrt.store", "skugen.backends.tensorrt.zerocopy", "skugen.backends.torch", "skugen.bench", "skugen.bench.ceilings",
    "skugen.bench.cells", "skugen.bench.config", "skugen.bench.gate", "skugen.bench.html", "skugen.bench.quality",
    "skugen.bench.report", "skugen.bench.run", "skugen.bench.views", "skugen.bundle", "skugen.cli",
    "skugen.cli._common", "skugen.cli.bench", "skugen.cli.kernels", "skugen.cli.runtime", "skugen.cli.toolchain",
    "skugen.cli.trust",
    "skugen.config", "skugen.deploy", "skugen.diffusion", "skugen.errors", "skugen.evaluate", "skugen.gen_inputs", "skugen.io", "skugen.loader",
    "skugen.manifest", "skugen.metrics", "skugen.pipeline", "skugen.prepost", "skugen.progress", "skugen.report",
    "skugen.result", "skugen.sampler", "skugen.selection", "skugen.signing", "skugen.tiling", "skugen.tokenizer", "skugen.tune", "skugen.triton", "skugen.triton_diffusion", "skugen.triton_models", "skugen.verify", "skugen.kernels",
    "skugen.kernels._launch", "skugen.kernels._spec", "skugen.kernels.compile_check", "skugen.kernels.host_emu",
    "skugen.kernels.launcher", "skugen.kernels.reference", "skugen.kernels.selftest",
]
# Toolchain packages: heavy (torch ~1-2 s to import) and absent from runtime installs.
FORBIDDEN = ["torch", "torchvision", "nncf", "onnx", "onnxslim", "torch_pruning", "safetensors", "scipy",
             "skimage", "cv2", "matplotlib", "skugen.export",
             "model_signing", "cryptography", "sigstore"]  # the sign extra: imported only when a key is used
REPO = Path(__file__).resolve().parents[2]

_PROBE = r"""
import importlib, json, sys
for m in json.loads(sys.argv[1]):
    importlib.import_module(m)  # a missing module is a failure, not a skip
print(json.dumps({"loaded": sorted(sys.modules)}))
"""


def _modules_on_disk() -> list[str]:
    mods = []
    for root, pkg in (("sdk", "skugen"), ("kernels", "skugen.kernels")):
        for f in sorted((REPO / root).rglob("*.py")):
            parts = list(f.relative_to(REPO / root).with_suffix("").parts)
            if root == "sdk" and parts[0] == "triton_files":  # package data (the Triton model.py), not a module
                continue
            if parts[-1] == "__main__":  # `python -m skugen.cli`: importing it runs the CLI
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.append(".".join([pkg, *parts]))
    return mods


def _probe(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _toolchain(loaded: list[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_runtime_module_list_is_complete():
    on_disk = _modules_on_disk()
    assert "skugen.pipeline" in on_disk and "skugen.kernels.reference" in on_disk  # the scan found the trees
    assert sorted(RUNTIME_MODULES) == sorted(on_disk), (
        f"add to RUNTIME_MODULES: {sorted(set(on_disk) - set(RUNTIME_MODULES))}; "
        f"remove: {sorted(set(RUNTIME_MODULES) - set(on_disk))}")


def test_runtime_imports_no_toolchain():
    out = _probe(_PROBE, json.dumps(RUNTIME_MODULES))
    assert set(RUNTIME_MODULES) <= set(out["loaded"])
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
print(json.dumps({"loaded": sorted(sys.modules)}))
"""
    out = _probe(code, str(cgan_bundle), str(sr_bundle), str(tmp_path))
    assert _toolchain(out["loaded"]) == []


_CLI_PROBE = r"""
import contextlib, io, json, sys
from skugen import cli
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    try:
        rc, how = cli.main(sys.argv[1:]), "return"
    except SystemExit as e:  # argparse's --help exits 0; a usage error exits 2
        rc, how = e.code, "exit"
print(json.dumps({"rc": rc, "how": how, "stdout": buf.getvalue(), "loaded": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("cmd, how, says", [(["--help"], "exit", "usage: skugen"),
                                            (["generate", "--help"], "exit", "usage: skugen generate"),
                                            (["enhance", "--help"], "exit", "usage: skugen enhance"),
                                            (["env"], "return", "SKUGEN_* settings:")])
def test_cli_runtime_commands_stay_light(cmd, how, says):
    """The command runs to completion (help printed and exit 0, or `env` returns 0) without the toolchain."""
    out = _probe(_CLI_PROBE, *cmd)
    assert out["how"] == how and out["rc"] in ((0, None) if how == "exit" else (0,)), out["rc"]
    assert says in out["stdout"]
    assert _toolchain(out["loaded"]) == []
