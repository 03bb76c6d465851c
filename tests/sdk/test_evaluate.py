"""skugen.evaluate: the one evaluator (numpy only), with a numpy judge standing in for a classifier."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skugen import evaluate as E
from skugen import metrics as M
from skugen.errors import InputError


class MeanJudge:
    """A numpy judge: features = per-image mean and std, label = brightness decile (values 0..9)."""

    def features(self, images_u8):
        x = images_u8.reshape(len(images_u8), -1).astype(np.float64)
        return np.stack([x.mean(1), x.std(1)], axis=1)

    def predict(self, images_u8):
        return np.minimum(images_u8.reshape(len(images_u8), -1).mean(1) // 25.6, 9).astype(np.int64)


def test_to_255_maps_the_value_range_and_clips():
    x = np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0], dtype=np.float32).reshape(1, 1, 2, 3)  # (N, C, H, W)
    y = E.to_255(x, (-1.0, 1.0))
    assert y.shape == (1, 2, 3, 1) and y.dtype == np.float64
    np.testing.assert_allclose(y.ravel(), [0, 0, 127.5, 191.25, 255, 255])
    u = E.to_uint8(x, (-1.0, 1.0))
    assert u.dtype == np.uint8 and u.ravel().tolist() == [0, 0, 128, 191, 255, 255]  # rint: 127.5 -> 128 (even)
    np.testing.assert_allclose(E.to_255(np.full((2, 3, 4, 5), 0.25), (0.0, 1.0)), 63.75)


def test_bicubic_upscale_is_pil_bicubic_for_arrays_and_lists():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    up = E.bicubic_upscale(lr, 3)
    assert up.shape == (2, 18, 15, 3)
    want = np.asarray(Image.fromarray(lr[1]).resize((15, 18), Image.BICUBIC))
    assert np.array_equal(up[1], want)
    mixed = E.bicubic_upscale([lr[0], lr[1, :4]], 2)
    assert isinstance(mixed, list) and mixed[1].shape == (8, 10, 3)


def test_pair_report_uses_the_kind_convention():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 24, 24, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 6, a.shape), 0, 255)
    enh = E.pair_report(a, b, "enhancer", 2, "gt")
    assert enh["psnr"]["y_channel"] and enh["psnr"]["crop_border"] == 2 and enh["psnr"]["data_range"] == 255
    assert enh["psnr"]["value"] == pytest.approx(M.psnr(a, b, y_channel=True, crop_border=2))
    assert enh["ssim"]["value"] == pytest.approx(M.ssim(a, b, y_channel=True, crop_border=2))
    assert "per_image" not in enh["psnr"] and enh["n"] == 2 and enh["reference"] == "gt"
    gen = E.pair_report(a, b, "generator", 1, "ref")
    assert not gen["psnr"]["y_channel"] and gen["psnr"]["crop_border"] == 0
    assert "cannot compare" in E.pair_report(a, b[:, :20], "generator", 1, "ref")["skipped"]


def test_sr_quality_and_pairwise_of_mixed_sizes():
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    sr = np.clip(hr + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    q = E.sr_quality(sr, hr)
    assert q["psnr_y"] == M.psnr(sr, hr, y_channel=True, crop_border=2)
    assert q["ssim_rgb"] == M.ssim(sr, hr, y_channel=False, crop_border=2)
    outs, refs = [sr[0], sr[1, :16, :18]], [hr[0], hr[1, :16, :18]]
    r = E.pairwise(M.psnr_result, outs, refs, crop_border=1)
    per = [M.psnr(o, g, y_channel=True, crop_border=1) for o, g in zip(outs, refs)]
    assert r.per_image == pytest.approx(per) and r.value == pytest.approx(np.mean(per)) and r.y_channel


def test_fid_proxy_and_class_fidelity_with_a_judge():
    judge = MeanJudge()
    assert isinstance(judge, E.Judge)
    rng = np.random.default_rng(3)
    dark = rng.integers(0, 100, (40, 8, 8, 1), dtype=np.uint8)
    light = rng.integers(150, 256, (40, 8, 8, 1), dtype=np.uint8)
    f_dark, f_light = judge.features(dark), judge.features(light)
    same = E.fid_proxy_entry(f_dark, f_dark, against="itself")
    assert same["name"] == E.FID_NAME and same["value"] == pytest.approx(0, abs=1e-9) and same["n"] == 40
    assert same["against"] == "itself"
    assert E.fid_proxy(f_dark, f_light) == pytest.approx(M.fid_from_features(f_dark, f_light))
    assert E.fid_proxy(f_dark, f_light) > 1000  # means ~ 50 vs ~ 200 apart
    labels = judge.predict(dark)
    cf = E.class_fidelity(labels, labels, 10)
    assert cf["value"] == 1.0 and cf["n"] == 40 and len(cf["per_class"]) == 10
    wrong = E.class_fidelity(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), 2)
    assert wrong["value"] == 0.75 and wrong["per_class"] == [0.5, 1.0]
    with pytest.raises(InputError, match="one prediction per image"):
        E.class_fidelity(np.zeros(3), np.zeros(4))


def test_fid_name_is_defined_once():
    from skugen.bench import FID_NAME

    assert FID_NAME is E.FID_NAME
