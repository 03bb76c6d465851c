"""The eager-PyTorch runner: a missing torch names the extra to install (import without torch: test_import_light)."""
from __future__ import annotations

import sys

import pytest

from skugen.backends.torch import TorchRunner
from skugen.errors import BackendUnavailable


def test_torch_backend_without_toolchain_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'skugen\[export\]'"):
        TorchRunner(tmp_path).activate()

