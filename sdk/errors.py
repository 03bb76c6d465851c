"""One error tree for everything a *user* can get wrong.

Every message says what was wrong and what to do. Bugs in skugen itself are
plain Python exceptions (AssertionError, TypeError, ...), never SkugenError,
so callers can tell "fix your input" apart from "report a bug".
"""
from __future__ import annotations


class SkugenError(Exception):
    """Base of all user-facing skugen errors. `str(err)` is the full hint."""

    exit_code = 2


class InputError(SkugenError, ValueError):
    """An argument or input array is malformed (dtype, shape, range, name)."""


class DataError(SkugenError):
    """A dataset is missing, incomplete or fails its checksum."""


class BundleError(SkugenError):
    """A bundle is missing, malformed, incomplete or from a newer schema."""


class IntegrityError(BundleError):
    """A file's SHA-256 does not match the manifest: the bundle was altered or corrupted."""


class BackendUnavailable(SkugenError):
    """A backend (TensorRT, pycuda, a GPU, the torch toolchain) is not installed/present."""


class EngineMismatch(SkugenError):
    """A serialized engine was built for another GPU, TensorRT version or ONNX."""


class ModelError(SkugenError):
    """A model file or zoo name is not one skugen understands."""


class BudgetError(SkugenError):
    """A quality budget or compression setting cannot be met."""


class VerificationError(SkugenError):
    """Outputs disagree with the golden reference beyond tolerance."""

    exit_code = 1


def need_extra(what: str, extra: str, exc: BaseException | None = None) -> BackendUnavailable:
    """Build the standard 'install the extra' error for a missing optional dependency."""
    msg = f"{what} is not available"
    if exc is not None:
        msg += f" ({type(exc).__name__}: {exc})"
    msg += f". Install it with: pip install 'skugen[{extra}]'"
    return BackendUnavailable(msg)
