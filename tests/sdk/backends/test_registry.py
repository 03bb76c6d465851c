"""The backend registry: runner_for builds every runner, available_backends says which work here, and no
other module constructs a runner class itself."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from skugen.backends import (BACKENDS, BackendStatus, auto_backend, available_backends, backend_status, onnx_runner,
                             runner_for)
from skugen.backends import registry
from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.backends.torch import TorchRunner
from skugen.bundle import load_bundle
from skugen.errors import BackendUnavailable, InputError

REPO = Path(__file__).resolve().parents[3]


def test_available_backends_reports_every_backend():
    st = available_backends()
    assert set(st) == set(BACKENDS) == {"onnxruntime", "openvino", "tensorrt", "torch"}
    assert all(isinstance(s, BackendStatus) and s.name == n for n, s in st.items())
    assert st["onnxruntime"].usable and st["onnxruntime"].reason == ""
    for s in st.values():
        assert s.usable or s.reason  # an unusable backend always says why


def test_tensorrt_status_names_the_extra_when_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    s = backend_status("tensorrt")
    assert not s.usable and "pip install 'skugen[tensorrt]'" in s.reason
    assert auto_backend() == "onnxruntime"
    monkeypatch.setitem(sys.modules, "skugen.backends.tensorrt", None)  # the whole package unimportable
    assert not backend_status("tensorrt").usable
    with pytest.raises(InputError, match="unknown backend 'cuda'"):
        backend_status("cuda")


def test_runner_for_onnxruntime(cgan_bundle):
    b = load_bundle(cgan_bundle)
    r = runner_for(b, "onnxruntime", "int8", threads=1)
    assert isinstance(r, OnnxRuntimeRunner) and not r.is_active and r.intra_op_threads == 1
    assert r.model == b.model_path("int8")
    gi, go = b.golden()
    with runner_for(b, "onnxruntime", "fp32") as r:
        np.testing.assert_allclose(r.infer(gi)["image"], go["image"], atol=1e-4)


def test_runner_for_refuses_what_the_backend_cannot_run(cgan_bundle, monkeypatch):
    b = load_bundle(cgan_bundle)
    with pytest.raises(InputError, match="ships no fp16 ONNX.*--backend tensorrt"):
        runner_for(b, "onnxruntime", "fp16")
    with pytest.raises(InputError, match="no 'int4' model"):
        runner_for(b, "onnxruntime", "int4")
    with pytest.raises(InputError, match="fp32 only"):
        runner_for(b, "torch", "int8")
    with pytest.raises(InputError, match="unknown backend 'openvino-gpu'"):
        runner_for(b, "openvino-gpu", "fp32")
    monkeypatch.setitem(sys.modules, "skugen.backends.tensorrt", None)
    with pytest.raises(BackendUnavailable, match=r"skugen\[tensorrt\]"):
        runner_for(b, "tensorrt", "fp16")


def test_runner_for_torch_defaults_to_the_bundle_source(cgan_bundle, tmp_path):
    b = load_bundle(cgan_bundle)
    r = runner_for(b, "torch", "fp32", threads=2)
    assert isinstance(r, TorchRunner) and r.model_dir == b.root / "source" and r.threads == 2
    assert runner_for(b, "torch", "fp32", model_dir=tmp_path).model_dir == tmp_path


def test_onnx_runner_for_a_bare_file(cgan_bundle):
    r = onnx_runner(load_bundle(cgan_bundle).model_path("fp32"), threads=1, providers=["CPUExecutionProvider"])
    assert isinstance(r, OnnxRuntimeRunner) and r.providers == ["CPUExecutionProvider"]


# Runner classes are constructed only by the registry (and by tests of the runners themselves). The toolchain's
# export-time checks run freshly exported ONNX *bytes* that are not a bundle yet; they are listed here until
# they move to registry.onnx_runner (owned by the export engineers).
_RUNNER_CLASSES = re.compile(r"\b(OnnxRuntimeRunner|TensorRTRunner|TorchRunner)\s*\(")
_ALLOWED = {"sdk/backends/registry.py", "export/quantize.py", "export/onnx_export.py", "export/bundle.py"}


def test_only_the_registry_constructs_runners():
    offenders = []
    for tree in ("sdk", "export", "kernels", "benchmarks", "scripts"):
        for f in sorted((REPO / tree).rglob("*.py")):
            rel = f.relative_to(REPO).as_posix()
            if rel in _ALLOWED:
                continue
            for i, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if _RUNNER_CLASSES.search(code) and not code.lstrip().startswith("class "):
                    offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == [], "build runners with skugen.backends.runner_for / onnx_runner:\n" + "\n".join(offenders)
    # the check itself sees a construction
    assert _RUNNER_CLASSES.search("r = TensorRTRunner(bundle, 'fp16')")
    assert registry.__file__.endswith("registry.py")
