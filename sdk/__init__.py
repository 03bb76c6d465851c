"""skugen: the edge RUNTIME for product-image generators.

Only numpy, onnxruntime and pillow are needed here; torch is never imported
(the toolchain lives in `skugen.export`). Heavy pieces load lazily.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: F401  (re-exported API)
    BackendUnavailable,
    BudgetError,
    BundleError,
    DataError,
    EngineMismatch,
    InputError,
    IntegrityError,
    ModelError,
    SkugenError,
    VerificationError,
)


def load(path, backend: str = "auto", precision: str = "auto", **kw):
    """Open a bundle and return a ready `Pipeline` (see skugen.pipeline)."""
    from .loader import load as _load

    return _load(path, backend=backend, precision=precision, **kw)
