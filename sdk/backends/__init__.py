"""Inference backends behind one registry (skugen.backends.registry). Each backend module writes only
_activate/_infer/_deactivate (see base.Runner); heavy imports happen inside them.

    from skugen.backends import runner_for, available_backends
"""
from __future__ import annotations

from .base import Runner, TensorMeta  # noqa: F401
from .registry import (BACKENDS, BackendStatus, auto_backend, available_backends, backend_status,  # noqa: F401
                       onnx_runner, runner_for, tensorrt_usable)
