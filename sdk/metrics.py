"""Image-quality metrics for reports: PSNR, SSIM, Fréchet distance ("FID-proxy") and KID.

numpy only: this module runs on the Jetson runtime (numpy + onnxruntime + pillow),
so it never imports scipy, torch, scikit-image or OpenCV.

PSNR / SSIM follow BasicSR (basicsr/metrics/psnr_ssim.py, calculate_psnr /
calculate_ssim), because conventions move the numbers by more than a dB:

- images are uint8 or float with values in [0, 255] (data_range 255);
- layout (H, W), (H, W, C) or (N, H, W, C) with C in {1, 3}, channels RGB;
  a batch gives one value per image and their mean (as BasicSR's validation loop);
- `crop_border` pixels are removed from every edge first (BasicSR: crop = SR scale);
- `y_channel=True` compares the Y of YCbCr with MATLAB's rgb2ycbcr coefficients,
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, unrounded. BasicSR reads BGR
  (cv2) and uses the same coefficients in BGR order; we take RGB. Single-channel
  images are used as they are (BasicSR's to_y_channel does the same);
- SSIM: 11x11 Gaussian window, sigma 1.5, 'valid' filtering (no padding, the map is
  (H-10) x (W-10)), C1 = (0.01*255)^2, C2 = (0.03*255)^2, population (not sample)
  variances, map mean per channel, then mean over channels.
All arithmetic is float64 (BasicSR's Y conversion rounds through float32; the
difference is < 1e-5 dB).

Every PSNR/SSIM comes back as a `QualityResult` that names its convention, so a
report can never print a bare number whose convention is unknown.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import InputError

__all__ = [
    "QualityResult",
    "psnr",
    "psnr_result",
    "ssim",
    "ssim_result",
    "rgb_to_y",
    "feature_stats",
    "frechet_distance",
    "fid_from_features",
    "kid_from_features",
]

DATA_RANGE = 255.0
CONVENTION = "BasicSR"
SSIM_WIN = 11  # window side; BasicSR's cv2.getGaussianKernel(11, 1.5)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_C1 = (SSIM_K1 * DATA_RANGE) ** 2
_C2 = (SSIM_K2 * DATA_RANGE) ** 2
# MATLAB rgb2ycbcr row for Y, on RGB in [0, 1]; output in [16, 235].
_Y_COEFFS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float64)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class QualityResult:
    """One PSNR or SSIM value together with the convention that produced it.

    value: mean over `per_image`. PSNR of identical images is `float('inf')`
        (BasicSR returns inf too), so a batch mean is inf as soon as one image matches
        exactly. `to_dict()` writes inf as None plus `"value_is_inf": True`, because
        JSON has no infinity.
    per_image: one value per image of the batch (a single image gives one entry).
    """

    value: float
    per_image: tuple[float, ...]
    metric: Literal["psnr", "ssim"]
    y_channel: bool
    crop_border: int
    data_range: float = DATA_RANGE
    convention: str = CONVENTION

    @property
    def label(self) -> str:
        """Short human name, e.g. 'PSNR-Y (BasicSR, crop 4)'."""
        chan = "Y" if self.y_channel else "RGB"
        return f"{self.metric.upper()}-{chan} ({self.convention}, crop {self.crop_border})"

    @property
    def window(self) -> str | None:
        """The SSIM window description (None for PSNR)."""
        if self.metric != "ssim":
            return None
        return f"gaussian {SSIM_WIN}x{SSIM_WIN} sigma {SSIM_SIGMA}, valid"

    def to_dict(self) -> dict:
        """JSON-safe dict: infinities become None (see `value_is_inf`, `per_image_inf`)."""

        def safe(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "metric": self.metric,
            "value": safe(self.value),
            "value_is_inf": math.isinf(self.value),
            "per_image": [safe(v) for v in self.per_image],
            "per_image_inf": [i for i, v in enumerate(self.per_image) if math.isinf(v)],
            "unit": "dB" if self.metric == "psnr" else None,
            "y_channel": self.y_channel,
            "crop_border": self.crop_border,
            "data_range": self.data_range,
            "convention": self.convention,
            "window": self.window,
            "label": self.label,
        }


# ----------------------------------------------------------------------------- inputs
def _check_image_array(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise InputError(
            f"{name} has dtype {x.dtype}; image metrics need uint8 or float arrays with "
            "values in [0, 255]. Convert it, e.g. np.asarray(img, dtype=np.float32)."
        )
    if x.size == 0:
        raise InputError(f"{name} is empty (shape {x.shape}); pass at least one pixel.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError(
            f"{name} contains NaN or inf values; image metrics need finite pixels. "
            "Check the generator output (e.g. np.nan_to_num, then np.clip(x, 0, 255))."
        )
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > DATA_RANGE:
        raise InputError(
            f"{name} has values in [{float(lo):g}, {float(hi):g}] but the BasicSR convention "
            "needs [0, 255]. Scale [0, 1] or [-1, 1] outputs to [0, 255] and clip, "
            "e.g. np.clip((x + 1) * 127.5, 0, 255)."
        )
    return x


def _as_batch(a, b, *, y_channel: bool, crop_border: int, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return float64 (N, H, W, C) arrays, cropped and Y-converted."""
    a = _check_image_array(a, "image a")
    b = _check_image_array(b, "image b")
    if a.shape != b.shape:
        raise InputError(
            f"shape mismatch: a is {a.shape} but b is {b.shape}; compare images of the same "
            "shape, (H, W), (H, W, C) or (N, H, W, C)."
        )
    if a.ndim == 2:  # (H, W) grayscale
        a, b = a[None, :, :, None], b[None, :, :, None]
    elif a.ndim == 3:  # (H, W, C)
        a, b = a[None], b[None]
    elif a.ndim != 4:
        raise InputError(
            f"images must be (H, W), (H, W, C) or (N, H, W, C); got ndim={a.ndim} "
            f"(shape {a.shape}). A batch of grayscale images is (N, H, W, 1)."
        )
    n, h, w, c = a.shape  # (N, H, W, C)
    if c not in (1, 3):
        hint = " It looks channels-first: transpose (C, H, W) to (H, W, C)." if h in (1, 3) else ""
        raise InputError(
            f"images must have 1 (gray) or 3 (RGB) channels last; got {c} channels "
            f"(shape {a.shape}).{hint}"
        )
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise InputError(
            f"crop_border must be a non-negative int (BasicSR: the SR scale); got {crop_border!r}."
        )
    crop_border = int(crop_border)
    hc, wc = h - 2 * crop_border, w - 2 * crop_border
    if hc < min_side or wc < min_side:
        raise InputError(
            f"images of {h}x{w} with crop_border={crop_border} leave {max(hc, 0)}x{max(wc, 0)} pixels; "
            f"this metric needs at least {min_side}x{min_side}. Use larger images or a smaller crop_border."
        )
    if a.dtype.kind == "f" and b.dtype.kind == "f" and a.max() <= 1.0 and b.max() <= 1.0:
        warnings.warn(
            "both images are float with max <= 1.0; skugen.metrics expects [0, 255]. "
            "If they are in [0, 1], multiply by 255 first.",
            stacklevel=3,
        )
    if crop_border:
        a = a[:, crop_border:-crop_border, crop_border:-crop_border, :]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border, :]
    if y_channel and c == 3:
        a, b = _y(a)[..., None], _y(b)[..., None]
    return a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)


def _y(rgb: np.ndarray) -> np.ndarray:
    # (..., 3) in [0, 255] -> (...) in [16, 235]; MATLAB rgb2ycbcr, no rounding.
    return 16.0 + (rgb.astype(np.float64, copy=False) @ _Y_COEFFS_RGB) / 255.0


def rgb_to_y(img) -> np.ndarray:
    """Y of YCbCr (MATLAB rgb2ycbcr / BasicSR `y_only=True`) of RGB `img` (..., 3) in [0, 255].

    Returns float64 (...) in [16, 235], unrounded:
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
    """
    x = _check_image_array(img, "img")
    if x.ndim < 1 or x.shape[-1] != 3:
        raise InputError(f"rgb_to_y needs RGB channels last (..., 3); got shape {x.shape}.")
    return _y(x)


# ----------------------------------------------------------------------------- PSNR
def psnr_result(a, b, *, y_channel: bool = False, crop_border: int = 0) -> QualityResult:
    """PSNR in dB (BasicSR calculate_psnr) with its convention. See the module docstring.

    Identical images give inf.
    """
    x, y = _as_batch(a, b, y_channel=y_channel, crop_border=crop_border, min_side=1)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))  # (N,)
    with np.errstate(divide="ignore"):
        per = 10.0 * np.log10(DATA_RANGE**2 / mse)  # mse 0 -> inf
    per_t = tuple(float(v) for v in per)
    return QualityResult(
        value=float(np.mean(per)),
        per_image=per_t,
        metric="psnr",
        y_channel=bool(y_channel),
        crop_border=int(crop_border),
    )


def psnr(a, b, *, y_channel: bool = False, crop_border: int = 0) -> float:
    """PSNR in dB as a plain float (mean over a batch). Identical images give inf."""
    return psnr_result(a, b, y_channel=y_channel, crop_border=crop_border).value


# ----------------------------------------------------------------------------- SSIM
def _gaussian_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    # Same taps as cv2.getGaussianKernel(11, 1.5) and scipy's gaussian_filter(sigma=1.5,
    # truncate=3.5); the 2-D window is the outer product, so filtering is separable.
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


_KERNEL = _gaussian_1d()


def _filter_valid(x: np.ndarray, axis: int) -> np.ndarray:
    """'valid' correlation of x with the 11-tap Gaussian along `axis` (length shrinks by 10).

    A tap loop over shifted slices: every step is one vectorised pass, no padding and no
    11x copy (as sliding_window_view @ kernel would make). The kernel is symmetric, so
    mirrored slices are added first: 6 multiplies instead of 11.
    """
    size = _KERNEL.size
    n = x.shape[axis] - size + 1
    half = size // 2

    def sl(i: int):
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(i, i + n)
        return tuple(idx)

    out = x[sl(half)] * _KERNEL[half]
    tmp = np.empty_like(out)
    for i in range(half):
        np.add(x[sl(i)], x[sl(size - 1 - i)], out=tmp)
        tmp *= _KERNEL[i]
        out += tmp
    return out


def _ssim_image(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one (H, W, C) float64 pair: mean of the valid-mode map per channel, then over C."""
    q = np.stack([x, y, x * x, y * y, x * y])  # (5, H, W, C): one filtering pass for all moments
    f = _filter_valid(_filter_valid(q, 1), 2)  # (5, H-10, W-10, C)
    mu1, mu2, e11, e22, e12 = f
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    # Population moments (E[x^2] - mu^2), as BasicSR and skimage use_sample_covariance=False.
    s11, s22, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + _C1) * (2 * s12 + _C2)) / ((mu1_sq + mu2_sq + _C1) * (s11 + s22 + _C2))
    return float(ssim_map.mean(axis=(0, 1)).mean())


def ssim_result(a, b, *, y_channel: bool = False, crop_border: int = 0) -> QualityResult:
    """SSIM (BasicSR calculate_ssim) with its convention. See the module docstring.

    Images must be at least 11x11 after cropping. Identical images give 1.0.
    """
    x, y = _as_batch(a, b, y_channel=y_channel, crop_border=crop_border, min_side=SSIM_WIN)
    # One image at a time keeps the 5 moment planes small (cache-friendly, bounded memory).
    per = tuple(_ssim_image(xi, yi) for xi, yi in zip(x, y))
    return QualityResult(
        value=float(np.mean(per)),
        per_image=per,
        metric="ssim",
        y_channel=bool(y_channel),
        crop_border=int(crop_border),
    )


def ssim(a, b, *, y_channel: bool = False, crop_border: int = 0) -> float:
    """SSIM as a plain float (mean over a batch)."""
    return ssim_result(a, b, y_channel=y_channel, crop_border=crop_border).value


# ----------------------------------------------------------------------------- Fréchet / KID
def _check_features(f, name: str, min_rows: int = 2) -> np.ndarray:
    f = np.asarray(f)
    if f.dtype.kind not in "uif":
        raise InputError(f"{name} has dtype {f.dtype}; features must be a numeric (N, D) array.")
    if f.ndim != 2:
        raise InputError(f"{name} must be (N, D) features, one row per image; got shape {f.shape}.")
    if f.shape[0] < min_rows or f.shape[1] < 1:
        raise InputError(
            f"{name} has shape {f.shape}; need at least {min_rows} rows (images) and 1 column."
        )
    f = f.astype(np.float64, copy=False)
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or inf; check the feature extractor's output.")
    return f


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of (N, D) features: mean (D,) and unbiased covariance (D, D), as pytorch-fid."""
    f = _check_features(feats, "feats")
    mu = f.mean(axis=0)
    sigma = np.atleast_2d(np.cov(f, rowvar=False))
    return mu, sigma


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    # Symmetric PSD square root via eigh; tiny negative eigenvalues are round-off.
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + Tr(s1) + Tr(s2) - 2 Tr((s1 s2)^(1/2)).

    Only the trace of the square root is needed. s1 s2 = A B with A = s1^(1/2),
    B = s1^(1/2) s2, and A B has the same eigenvalues as B A = s1^(1/2) s2 s1^(1/2) =: M.
    M is symmetric PSD, so `eigh` applies (real, stable, no complex round-off as in
    scipy.linalg.sqrtm of the non-symmetric s1 s2), and Tr((s1 s2)^(1/2)) = sum sqrt(eig(M)).
    Negative round-off eigenvalues are clipped to 0. The result is clipped at 0 as well.
    Called "FID-proxy" in reports when the features are not Inception's.
    """
    mu1 = np.asarray(mu1, dtype=np.float64)
    mu2 = np.asarray(mu2, dtype=np.float64)
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != mu1.shape:
        raise InputError(f"mu1 and mu2 must be vectors of the same length; got {mu1.shape} and {mu2.shape}.")
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(
            f"sigma1 and sigma2 must be ({d}, {d}) covariances to match mu; got {s1.shape} and {s2.shape}."
        )
    for name, v in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(v).all():
            raise InputError(f"{name} contains NaN or inf; check the features the statistics came from.")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        scale = max(float(np.abs(s).max()), 1e-300)
        if np.abs(s - s.T).max() > 1e-6 * scale:
            raise InputError(f"{name} is not symmetric; pass a covariance matrix (e.g. from feature_stats).")
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


def fid_from_features(f1, f2) -> float:
    """Fréchet distance between the Gaussian fits of two (N, D) feature sets."""
    mu1, s1 = feature_stats(f1)
    mu2, s2 = feature_stats(f2)
    if mu1.shape != mu2.shape:
        raise InputError(f"feature sets have different widths: {mu1.shape[0]} vs {mu2.shape[0]} columns.")
    return frechet_distance(mu1, s1, mu2, s2)


def kid_from_features(
    f1, f2, *, subsets: int = 100, subset_size: int = 1000, seed: int | None = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018) as (mean, std) over random subsets.

    Per subset: the unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3 between `m` rows drawn without replacement from each set,
    m = min(subset_size, N1, N2); as torch-fidelity, the std is np.std over subsets
    (ddof 0). Unbiased means it can be slightly negative for matching distributions.
    `seed` makes the draw reproducible (None: fresh randomness).
    """
    x_all = _check_features(f1, "f1")
    y_all = _check_features(f2, "f2")
    if x_all.shape[1] != y_all.shape[1]:
        raise InputError(
            f"feature sets have different widths: {x_all.shape[1]} vs {y_all.shape[1]} columns."
        )
    for name, v in (("subsets", subsets), ("subset_size", subset_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be a positive int; got {v!r}.")
    if subset_size < 2:
        raise InputError(f"subset_size must be at least 2 for the unbiased estimator; got {subset_size}.")
    d = x_all.shape[1]
    m = int(min(subset_size, x_all.shape[0], y_all.shape[0]))
    rng = np.random.default_rng(seed)
    vals = np.empty(int(subsets))
    for t in range(int(subsets)):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]  # (m, D)
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]  # (m, D)
        kxx = (x @ x.T / d + 1.0) ** 3  # (m, m)
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        # Unbiased: drop the diagonals of the within-set kernels.
        sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals[t] = sxx + syy - 2.0 * kxy.mean()
    return float(vals.mean()), float(vals.std())
