"""skugen.metrics: PSNR/SSIM against scikit-image and a BasicSR-style reference,
Fréchet distance against closed forms and scipy's sqrtm, KID sanity.

The references (scikit-image, scipy) are test-only dependencies; the module itself
must import with numpy alone (checked in a subprocess).
"""
from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skugen import config
from skugen.errors import InputError
from skugen import metrics as M

skm = pytest.importorskip("skimage.metrics")
skcolor = pytest.importorskip("skimage.color")
scipy_linalg = pytest.importorskip("scipy.linalg")
scipy_signal = pytest.importorskip("scipy.signal")

SSIM_ATOL = 1e-4
PSNR_RTOL = 1e-6


def sk_ssim(a, b):
    a = np.asarray(a, dtype=np.float64)  # skimage computes float32 inputs in float32
    b = np.asarray(b, dtype=np.float64)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:
        kw["channel_axis"] = -1
    return skm.structural_similarity(a, b, **kw)


def sk_psnr(a, b):
    return skm.peak_signal_noise_ratio(np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=255)


def sk_y(img):
    # skimage's rgb2ycbcr takes [0, 1] floats (uint8 is divided by 255) and returns Y in [16, 235].
    return skcolor.rgb2ycbcr(np.asarray(img, np.float64) / 255.0)[..., 0]


def basicsr_ssim_ref(a, b):
    """BasicSR's _ssim written out with a 2-D valid convolution (scipy), per channel, mean."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        f = lambda z: scipy_signal.convolve2d(z, win, mode="valid")  # noqa: E731  (symmetric window)
        mu1, mu2 = f(x), f(y)
        s11 = f(x * x) - mu1**2
        s22 = f(y * y) - mu2**2
        s12 = f(x * y) - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


def _degrade(rng, a, kind):
    a = np.asarray(a, np.float64)
    if kind == "noise":
        out = a + rng.normal(0, rng.uniform(1, 40), a.shape)
    elif kind == "blur":  # cheap box blur along both axes
        out = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1) + np.roll(a, (1, 1), (0, 1))) / 4
    elif kind == "shift":
        out = a * rng.uniform(0.7, 1.0) + rng.uniform(0, 30)
    else:  # unrelated image
        out = rng.uniform(0, 255, a.shape)
    return np.clip(out, 0, 255)


def _random_pairs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    kinds = ["noise", "blur", "shift", "other"]
    for i in range(n):
        h, w = rng.integers(11, 72, size=2)
        shape = (h, w) if i % 2 else (h, w, 3)
        # smooth-ish images (low-frequency + noise) so SSIM spans a useful range
        base = rng.uniform(0, 255, (max(h // 8, 2), max(w // 8, 2)) + shape[2:])
        img = np.kron(base, np.ones((8, 8) + (1,) * (len(shape) - 2)))[:h, :w]
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255)
        b = _degrade(rng, img, kinds[i % 4])
        if i % 3 == 0:  # also exercise uint8 input
            img, b = img.round().astype(np.uint8), b.round().astype(np.uint8)
        yield img, b


# ----------------------------------------------------------------------------- agreement
def test_ssim_psnr_match_skimage_on_random_pairs():
    ds, dp = [], []
    for a, b in _random_pairs(60):
        ds.append(abs(M.ssim(a, b) - sk_ssim(a, b)))
        ref = sk_psnr(a, b)
        dp.append(abs(M.psnr(a, b) - ref) / abs(ref))
    assert len(ds) >= 50
    assert max(ds) < SSIM_ATOL, max(ds)
    assert max(dp) < PSNR_RTOL, max(dp)


def test_skimage_cropped_reflect_equals_valid_mode():
    # skimage filters with mode='reflect' and then drops (11-1)//2 = 5 pixels per side,
    # so it only averages pixels whose window never touched the padding: valid mode.
    rng = np.random.default_rng(1)
    for shape in [(11, 11), (12, 30), (40, 23, 3)]:
        a = rng.uniform(0, 255, shape)
        b = _degrade(rng, a, "noise")
        ref = basicsr_ssim_ref(a, b)
        assert abs(sk_ssim(a, b) - ref) < 1e-12
        assert abs(M.ssim(a, b) - ref) < 1e-12


def test_y_channel_metrics_match_skimage_on_y():
    rng = np.random.default_rng(2)
    for _ in range(6):
        a = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
        b = _degrade(rng, a, "noise").round().astype(np.uint8)
        ya, yb = sk_y(a), sk_y(b)
        assert abs(M.ssim(a, b, y_channel=True) - sk_ssim(ya, yb)) < SSIM_ATOL
        assert M.psnr(a, b, y_channel=True) == pytest.approx(sk_psnr(ya, yb), rel=PSNR_RTOL)


def _grocery_photos(k=4):
    env = config.get("SKUGEN_GROCERY_DIR")
    root = Path(env) if env else config.REPO_ROOT.parent / "shared" / "data" / "grocery-store"
    listing = root / "dataset" / "test.txt"
    if not listing.is_file():
        pytest.skip(f"GroceryStoreDataset not found at {root} (set SKUGEN_GROCERY_DIR)")
    Image = pytest.importorskip("PIL.Image")
    lines = [ln.split(",")[0].strip() for ln in listing.read_text().splitlines() if ln.strip()]
    picks = lines[:: max(len(lines) // k, 1)][:k]
    return [np.asarray(Image.open(root / "dataset" / p).convert("RGB")) for p in picks], Image


def test_real_photos_match_skimage():
    photos, Image = _grocery_photos(4)
    rng = np.random.default_rng(3)
    ds, dp = [], []
    for img in photos:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=25)
        jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        noisy = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).round().astype(np.uint8)
        for other in (jpeg, noisy):
            ds.append(abs(M.ssim(img, other) - sk_ssim(img, other)))
            ds.append(abs(M.ssim(img, other, y_channel=True) - sk_ssim(sk_y(img), sk_y(other))))
            ref = sk_psnr(img, other)
            dp.append(abs(M.psnr(img, other) - ref) / ref)
            ref_y = sk_psnr(sk_y(img), sk_y(other))
            dp.append(abs(M.psnr(img, other, y_channel=True) - ref_y) / ref_y)
        # sanity: a real degradation lowers quality, but not absurdly
        assert 20 < M.psnr(img, jpeg) < 45 and 0.5 < M.ssim(img, jpeg) < 1
    assert max(ds) < SSIM_ATOL, max(ds)
    assert max(dp) < PSNR_RTOL, max(dp)


def test_rgb_to_y_matches_skimage():
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(M.rgb_to_y(u8), sk_y(u8), rtol=0, atol=1e-10)
    f = rng.uniform(0, 255, (2, 5, 7, 3))
    np.testing.assert_allclose(M.rgb_to_y(f), sk_y(f), rtol=0, atol=1e-10)
    # MATLAB range: black -> 16, white -> 235
    assert M.rgb_to_y(np.zeros(3)) == pytest.approx(16.0)
    assert M.rgb_to_y(np.full(3, 255.0)) == pytest.approx(235.0)
    # RGB (not BGR) order: pure red uses 65.481
    assert M.rgb_to_y(np.array([255.0, 0, 0])) == pytest.approx(16 + 65.481)


# ----------------------------------------------------------------------------- conventions
def test_crop_border_equals_manual_crop():
    rng = np.random.default_rng(5)
    a = rng.uniform(0, 255, (2, 40, 36, 3))
    b = _degrade(rng, a, "noise")
    c = 4
    ac, bc = a[:, c:-c, c:-c], b[:, c:-c, c:-c]
    assert M.psnr(a, b, crop_border=c) == M.psnr(ac, bc)
    assert M.ssim(a, b, crop_border=c) == M.ssim(ac, bc)
    r = M.ssim_result(a, b, crop_border=c, y_channel=True)
    assert (r.crop_border, r.y_channel, r.metric, r.data_range, r.convention) == (c, True, "ssim", 255.0, "BasicSR")
    # differences only inside the border vanish once cropped
    b2 = a.copy()
    b2[:, :c] = 0
    b2[:, :, -c:] = 255
    assert math.isfinite(M.psnr(a, b2)) and M.psnr(a, b2, crop_border=c) == math.inf
    assert M.ssim(a, b2, crop_border=c) == pytest.approx(1.0)


def test_batch_per_image_and_mean():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (3, 24, 20, 3), dtype=np.uint8)
    b = np.stack([_degrade(rng, x, k) for x, k in zip(a, ["noise", "blur", "other"])]).astype(np.uint8)
    for fn_res, fn in ((M.psnr_result, M.psnr), (M.ssim_result, M.ssim)):
        r = fn_res(a, b, y_channel=True)
        singles = [fn(x, y, y_channel=True) for x, y in zip(a, b)]
        assert r.per_image == pytest.approx(singles, abs=1e-12)
        assert r.value == pytest.approx(np.mean(singles), abs=1e-12)
        assert fn(a, b, y_channel=True) == r.value
    # gray: (H, W) == (H, W, 1) == (1, H, W, 1); Y on one channel is a pass-through (BasicSR)
    g1, g2 = a[0, ..., 0], b[0, ..., 0]
    for fn in (M.psnr, M.ssim):
        v = fn(g1, g2)
        assert fn(g1[..., None], g2[..., None]) == v
        assert fn(g1[None, ..., None], g2[None, ..., None]) == v
        assert fn(g1, g2, y_channel=True) == v


def test_identical_images_and_json():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert M.psnr(a, a) == math.inf
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    flat = np.full((16, 16), 7, np.uint8)
    assert M.ssim(flat, flat) == pytest.approx(1.0, abs=1e-12)
    b = a.copy()
    b[1, 0, 0, 0] ^= 1
    r = M.psnr_result(a, b)
    assert r.per_image[0] == math.inf and math.isfinite(r.per_image[1]) and r.value == math.inf
    d = r.to_dict()
    json.dumps(d, allow_nan=False)  # JSON-safe
    assert d["value"] is None and d["value_is_inf"] is True
    assert d["per_image"][0] is None and d["per_image"][1] == r.per_image[1] and d["per_image_inf"] == [0]
    assert d["unit"] == "dB" and d["convention"] == "BasicSR" and d["data_range"] == 255.0
    s = M.ssim_result(a, b, crop_border=2).to_dict()
    json.dumps(s, allow_nan=False)
    assert s["value_is_inf"] is False and s["window"].startswith("gaussian 11x11 sigma 1.5")
    assert s["label"] == "SSIM-RGB (BasicSR, crop 2)"


def test_known_psnr_value():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 1, np.uint8)  # MSE 1 -> 20 log10(255)
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255), rel=1e-12)


def test_symmetry_and_bounds():
    for a, b in list(_random_pairs(8, seed=11)):
        assert M.ssim(a, b) == pytest.approx(M.ssim(b, a), abs=1e-12)
        assert M.ssim(a, b) <= 1.0 + 1e-12
        assert M.psnr(a, b) == pytest.approx(M.psnr(b, a), rel=1e-12)


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("fn", [M.psnr, M.ssim])
def test_bad_inputs(fn):
    ok = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(InputError, match="shape mismatch"):
        fn(ok, np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(InputError, match="ndim=1"):
        fn(np.zeros(16), np.zeros(16))
    with pytest.raises(InputError, match="ndim=5"):
        fn(np.zeros((1, 1, 16, 16, 3)), np.zeros((1, 1, 16, 16, 3)))
    with pytest.raises(InputError, match="channels-first"):
        fn(np.zeros((3, 16, 16)), np.zeros((3, 16, 16)))
    with pytest.raises(InputError, match="4 channels"):
        fn(np.zeros((16, 16, 4)), np.zeros((16, 16, 4)))
    bad = ok.astype(np.float64)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or inf"):
        fn(bad, ok)
    bad[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        fn(ok, bad)
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        fn(ok - 1.0, ok)
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        fn(ok, ok + 256.0)
    with pytest.raises(InputError, match="dtype bool"):
        fn(ok.astype(bool), ok.astype(bool))
    with pytest.raises(InputError, match="empty"):
        fn(np.zeros((0, 16, 16, 3)), np.zeros((0, 16, 16, 3)))
    for cb in (-1, 1.5, True):
        with pytest.raises(InputError, match="crop_border must be a non-negative int"):
            fn(ok, ok, crop_border=cb)
    with pytest.raises(InputError, match="crop_border=8 leave 0x0"):
        fn(ok, ok, crop_border=8)


def test_ssim_needs_11_pixels():
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(InputError, match="at least 11x11"):
        M.ssim(a, a, crop_border=5)
    assert M.psnr(a, a, crop_border=5) == math.inf  # PSNR has no window


def test_unit_range_warning_and_rgb_to_y_errors():
    a = np.full((16, 16, 3), 0.5)
    with pytest.warns(UserWarning, match="multiply by 255"):
        M.psnr(a, a * 0.9)
    with pytest.raises(InputError, match=r"\(\.\.\., 3\)"):
        M.rgb_to_y(np.zeros((4, 4)))
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        M.rgb_to_y(np.full((4, 4, 3), 300.0))


# ----------------------------------------------------------------------------- Fréchet
def fd_scipy(mu1, s1, mu2, s2):
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _random_cov(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    ev = np.exp(rng.uniform(0, np.log(cond), d))
    return (q * ev) @ q.T, q, ev


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(10)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    ref = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(ref, rel=1e-10)


def test_frechet_commuting_closed_form():
    rng = np.random.default_rng(11)
    d = 24
    _, q, _ = _random_cov(rng, d)
    e1, e2 = rng.uniform(0.05, 5, d), rng.uniform(0.05, 5, d)
    s1, s2 = (q * e1) @ q.T, (q * e2) @ q.T  # same eigenbasis -> commute
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref = np.sum((mu1 - mu2) ** 2) + np.sum(e1 + e2 - 2 * np.sqrt(e1 * e2))
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)


def test_frechet_matches_scipy_sqrtm_non_commuting():
    rng = np.random.default_rng(12)
    for d in (2, 8, 64):
        s1, _, _ = _random_cov(rng, d, cond=100)
        s2, _, _ = _random_cov(rng, d, cond=100)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(fd_scipy(mu1, s1, mu2, s2), rel=1e-8)
    # rank-deficient covariances (fewer samples than dims), as with small eval sets
    f1, f2 = rng.normal(size=(20, 32)), rng.normal(size=(20, 32)) + 0.3
    mu1, s1 = M.feature_stats(f1)
    mu2, s2 = M.feature_stats(f2)
    assert M.fid_from_features(f1, f2) == pytest.approx(fd_scipy(mu1, s1, mu2, s2), rel=1e-6)


def test_feature_stats_and_identity():
    rng = np.random.default_rng(13)
    f = rng.normal(size=(50, 6))
    mu, s = M.feature_stats(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(s, np.cov(f, rowvar=False))
    assert M.fid_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    mu1, s1 = M.feature_stats(rng.normal(size=(10, 1)))  # D = 1 keeps (1, 1)
    assert s1.shape == (1, 1) and mu1.shape == (1,)


def test_frechet_bad_inputs():
    s = np.eye(3)
    with pytest.raises(InputError, match="same length"):
        M.frechet_distance(np.zeros(3), s, np.zeros(4), np.eye(4))
    with pytest.raises(InputError, match=r"\(3, 3\) covariances"):
        M.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), s)
    with pytest.raises(InputError, match="not symmetric"):
        M.frechet_distance(np.zeros(3), s + np.triu(np.ones((3, 3)), 1), np.zeros(3), s)
    with pytest.raises(InputError, match="NaN or inf"):
        M.frechet_distance(np.array([0, np.nan, 0]), s, np.zeros(3), s)
    with pytest.raises(InputError, match=r"\(N, D\)"):
        M.feature_stats(np.zeros(5))
    with pytest.raises(InputError, match="at least 2 rows"):
        M.feature_stats(np.zeros((1, 5)))
    with pytest.raises(InputError, match="different widths"):
        M.fid_from_features(np.zeros((4, 3)), np.zeros((4, 2)))


# ----------------------------------------------------------------------------- KID
def test_kid_single_subset_matches_bruteforce():
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 5)) + 0.5
    d = 5
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m = 30
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    mean, std = M.kid_from_features(x, y, subsets=1, subset_size=m)
    assert mean == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10) and std == 0.0


def test_kid_behaviour():
    rng = np.random.default_rng(21)
    d = 32
    base = rng.normal(size=(400, d))
    same = rng.normal(size=(400, d))
    m0, s0 = M.kid_from_features(base, same, subsets=20, subset_size=200)
    assert abs(m0) < 3 * s0 + 1e-3 and abs(m0) < 0.01
    means = [M.kid_from_features(base, same + sh, subsets=20, subset_size=200)[0] for sh in (0.25, 0.5, 1.0)]
    assert means[0] > 0 and means[0] < means[1] < means[2]
    # reproducible with a seed; different seeds draw different subsets
    kid = lambda seed: M.kid_from_features(base, same, subsets=3, subset_size=50, seed=seed)  # noqa: E731
    assert kid(1) == kid(1) and kid(1) != kid(2)
    # subset_size larger than the sets falls back to m = the smaller set's rows: the same draws as subset_size=10
    big = M.kid_from_features(base[:10], same[:12], subsets=4, subset_size=1000, seed=3)
    assert big == M.kid_from_features(base[:10], same[:12], subsets=4, subset_size=10, seed=3)
    assert big != M.kid_from_features(base[:10], same[:12], subsets=4, subset_size=9, seed=3)
    # with equal sizes every subset is all rows (in some order): one value, the single all-rows MMD^2
    mean, std = M.kid_from_features(base[:10], same[:10], subsets=4, subset_size=1000, seed=3)
    full, _ = M.kid_from_features(base[:10], same[:10], subsets=1, subset_size=10)
    assert std == pytest.approx(0.0, abs=1e-12) and mean == pytest.approx(full, rel=1e-12)


def test_kid_bad_inputs():
    f = np.zeros((10, 4))
    with pytest.raises(InputError, match="different widths"):
        M.kid_from_features(f, np.zeros((10, 3)))
    with pytest.raises(InputError, match="subsets must be a positive int"):
        M.kid_from_features(f, f, subsets=0)
    with pytest.raises(InputError, match="subset_size must be at least 2"):
        M.kid_from_features(f, f, subset_size=1)
    with pytest.raises(InputError, match="NaN or inf"):
        M.kid_from_features(np.full((10, 4), np.nan), f)


# ----------------------------------------------------------------------------- runtime deps
def test_import_is_numpy_only():
    code = (
        "import sys, skugen.metrics\n"
        "bad = [m for m in ('torch', 'scipy', 'skimage', 'cv2') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
