"""The numpy reference (also the CPU path): resize convention against torch, normalisation,
rounding, Y channel against scikit-image, and the errors users get for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skugen.errors import BackendUnavailable, InputError
from skugen.kernels import (NumpyProcessor, bilinear_taps, get_processor, postprocess, preprocess,
                            rgb_to_y)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RAW = dict(mean=0.0, std=1 / 255)  # normalisation that leaves resized values in [0, 255]


def torch_atol(in_hw) -> float:
    """Same formula as torch, but torch may evaluate scale * (x + 0.5) - 0.5 with an FMA, which moves
    the source coordinate by up to one float32 ulp: at most 255 * 2 ulp(max side) on a 0..255 value."""
    return 255 * 2 * float(np.spacing(np.float32(max(in_hw))))


def torch_resize(img: np.ndarray, out_hw) -> np.ndarray:
    """(B, H, W, C) uint8 -> (B, C, h, w) float32 with the convention the kernels follow."""
    x = torch.from_numpy(np.array(img)).permute(0, 3, 1, 2).float()
    return F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=False).numpy()


@pytest.mark.parametrize("in_hw,out_hw", [
    ((1, 1), (5, 3)), ((7, 13), (7, 13)), ((9, 31), (4, 5)), ((5, 6), (17, 33)),
    ((100, 37), (256, 256)), ((480, 640), (256, 192)), ((2, 3), (1, 1)),
])
def test_resize_matches_torch_interpolate(in_hw, out_hw):
    rng = np.random.default_rng(sum(in_hw) + sum(out_hw))
    img = rng.integers(0, 256, (2, *in_hw, 3), dtype=np.uint8)
    got = preprocess(img, out_hw, **RAW)
    np.testing.assert_allclose(got, torch_resize(img, out_hw), rtol=0, atol=torch_atol(in_hw))


def test_resize_matches_torch_on_a_real_photo(photo):
    for out_hw in [(256, 256), (97, 530)]:
        got = preprocess(photo, out_hw, **RAW)
        np.testing.assert_allclose(got, torch_resize(photo[None], out_hw), rtol=0, atol=torch_atol(photo.shape[:2]))


def test_bilinear_taps_follow_the_half_pixel_rule():
    i0, i1, w0, w1 = bilinear_taps(4, 2)  # downscale x2: centres at 0.5 and 2.5
    assert i0.tolist() == [0, 2] and i1.tolist() == [1, 3]
    np.testing.assert_array_equal(w1, [0.5, 0.5])
    i0, i1, w0, w1 = bilinear_taps(2, 4)  # upscale x2: src = -0.25 -> 0, 0.25, 0.75, 1.25
    assert i0.tolist() == [0, 0, 0, 1] and i1.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(w1, np.float32([0, 0.25, 0.75, 0.25]))


def test_normalisation_matches_torchvision_style():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (11, 3, 3), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    got = preprocess(img, (11, 3), mean=mean, std=std)[0]
    want = (img.transpose(2, 0, 1) / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    default = preprocess(img, (11, 3))  # [-1, 1]
    assert default.min() >= -1 - 1e-6 and default.max() <= 1 + 1e-6
    unit = preprocess(img, (11, 3), mean=0, std=1)  # [0, 1]
    np.testing.assert_allclose(unit[0], img.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_layouts_channel_order_gray_and_float16():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (2, 9, 14, 3), dtype=np.uint8)
    ref = preprocess(rgb, (5, 6))
    np.testing.assert_array_equal(preprocess(rgb[..., ::-1].copy(), (5, 6), layout="BGR"), ref)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (2, 9, 14, 1), dtype=np.uint8)], axis=-1)
    np.testing.assert_array_equal(preprocess(rgba, (5, 6), layout="RGBA"), ref)
    half = preprocess(rgb, (5, 6), dtype=np.float16)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, ref.astype(np.float16))
    # Colour -> 1-channel BT.601 gray, computed after the resize.
    raw = preprocess(rgb, (5, 6), **RAW)
    gray = preprocess(rgb, (5, 6), out_channels=1, **RAW)
    np.testing.assert_allclose(gray[:, 0], 0.299 * raw[:, 0] + 0.587 * raw[:, 1] + 0.114 * raw[:, 2], rtol=1e-6)
    # GRAY input: (H, W) or (H, W, 1); out_channels=3 replicates.
    g = rgb[0, :, :, 0].copy()  # (H, W): a channel slice would not be pixel-packed
    one = preprocess(g, (5, 6), layout="GRAY")
    assert one.shape == (1, 1, 5, 6)
    np.testing.assert_array_equal(preprocess(g[:, :, None], (5, 6), layout="GRAY"), one)
    np.testing.assert_array_equal(preprocess(g, (5, 6), layout="GRAY", out_channels=3), np.repeat(one, 3, axis=1))


def test_pitched_crops_and_lists_need_no_copy():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    crop = frame[:, 5:40, 9:60]  # rows at a 210-byte pitch, images at a 10500-byte stride
    np.testing.assert_array_equal(preprocess(crop, (16, 24)), preprocess(crop.copy(), (16, 24)))
    sizes = [frame[0], frame[1, :20, :33], frame[2, 3:, 1:]]
    batch = preprocess(sizes, (16, 24))
    assert batch.shape == (3, 3, 16, 24)
    for i, img in enumerate(sizes):
        np.testing.assert_array_equal(batch[i], preprocess(img, (16, 24))[0])


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), oh=st.integers(1, 40), ow=st.integers(1, 40),
       y=st.integers(0, 5), x=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_crop_is_the_same_as_its_copy(h, w, oh, ow, y, x, seed):
    frame = np.random.default_rng(seed).integers(0, 256, (h + y + 2, w + x + 3, 4), dtype=np.uint8)
    crop = frame[y:y + h, x:x + w]
    np.testing.assert_array_equal(preprocess(crop, (oh, ow), layout="RGBA"),
                                  preprocess(np.ascontiguousarray(crop), (oh, ow), layout="RGBA"))


def test_postprocess_rounds_half_to_even_clamps_and_maps_nan_to_zero():
    x = np.float32([[[[0.5, 1.5, 2.5, 254.5, -3.0, 300.0, np.nan, np.inf, -np.inf]]]])
    out = postprocess(x, value_range=(0, 255), layout="GRAY")
    assert out.shape == (1, 1, 9, 1)
    assert out[0, 0, :, 0].tolist() == [0, 2, 2, 254, 0, 255, 0, 255, 0]
    assert postprocess(np.float32([[[[-1.0]]], [[[1.0]]], [[[0.0]]]]).reshape(1, 3, 1, 1)).tolist() == [[[[0, 255, 128]]]]
    assert postprocess(np.float32([0.0, 1.0, np.nan]).reshape(3, 1, 1), "0,1").tolist() == [[[0, 255, 0]]]


def test_postprocess_inverts_preprocess_and_orders_channels():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    img[0, 0, :, 0] = np.arange(16) * 17  # every level from 0 to 255 in steps of 17
    for dtype in (np.float32, np.float16):
        x = preprocess(img, (16, 16), dtype=dtype)  # same size: the resize is the identity
        np.testing.assert_array_equal(postprocess(x), img)
        np.testing.assert_array_equal(postprocess(x, layout="BGR"), img[..., ::-1])
    unit = preprocess(img, (16, 16), mean=0, std=1)
    np.testing.assert_array_equal(postprocess(unit, "0,1"), img)


def test_rgb_to_y_matches_scikit_image_and_basicsr():
    color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (2, 13, 17, 3), dtype=np.uint8)
    y = rgb_to_y(img)
    assert y.shape == (2, 13, 17) and y.dtype == np.float32
    np.testing.assert_allclose(y, color.rgb2ycbcr(img)[..., 0], rtol=0, atol=1e-3)
    basicsr = (img.astype(np.float32) / 255.0) @ np.float32([65.481, 128.553, 24.966]) + 16.0
    np.testing.assert_allclose(y, basicsr, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(rgb_to_y(img[..., ::-1].copy(), layout="BGR"), y)
    np.testing.assert_array_equal(rgb_to_y(img[1]), y[1])
    assert [a.shape for a in rgb_to_y([img[0], img[1, :5]])] == [(13, 17), (5, 17)]


BAD_PRE = [
    (dict(images=np.zeros((4, 4, 3), np.float32)), r"must be uint8.*np.clip"),
    (dict(images=np.zeros((4, 4, 4), np.uint8)), r"layout 'RGB' needs 3 channel.*has 4.*RGBA"),
    (dict(images=np.zeros((4, 4), np.uint8)), r"\(H, W, C\)"),
    (dict(images=np.zeros((0, 4, 3), np.uint8)), r"empty"),
    (dict(images=np.zeros((4, 4, 3), np.uint8)[:, ::-1]), r"pixels must be packed.*np.ascontiguousarray"),
    (dict(images=np.zeros((4, 4, 6), np.uint8)[..., ::2]), r"pixels must be packed"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), layout="XYZ"), r"unknown layout 'XYZ'"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), std=[0.5, 0, 0.5]), r"std must be > 0"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), mean=[0.5, 0.5]), r"mean must be a number or 3 numbers"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), dtype=np.int8), r"dtype must be float32 or float16"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), out_hw=(0, 4)), r"out_hw must be positive"),
    (dict(images=np.zeros((4, 4, 3), np.uint8), out_channels=2), r"out_channels must be 1 or 3"),
    (dict(images=[]), r"empty list"),
    (dict(images="photo.jpg"), r"numpy array or a list"),
]


@pytest.mark.parametrize("kwargs,match", BAD_PRE)
def test_preprocess_bad_input_says_what_to_do(kwargs, match):
    kwargs = dict(dict(out_hw=(8, 8)), **kwargs)
    with pytest.raises(InputError, match=match):
        preprocess(**kwargs)


@pytest.mark.parametrize("x,kw,match", [
    (np.zeros((1, 3, 4, 4), np.uint8), {}, r"float32 or float16.*astype"),
    (np.zeros((1, 3, 4, 4), np.float64), {}, r"float32 or float16"),
    (np.zeros((1, 4, 4, 4), np.float32), {}, r"needs 3 channel.*has 4"),
    (np.zeros((1, 3, 4, 4), np.float32), dict(layout="GRAY"), r"needs 1 channel"),
    (np.zeros((1, 3, 0, 4), np.float32), {}, r"empty"),
    (np.zeros((1, 3, 4, 8), np.float32)[..., ::2], {}, r"C-contiguous.*np.ascontiguousarray"),
    (np.zeros((4, 4), np.float32), {}, r"\(B, C, H, W\)"),
    (np.zeros((1, 3, 4, 4), np.float32), dict(value_range="0,255"), r"value_range must be"),
    (np.zeros((1, 3, 4, 4), np.float32), dict(value_range=(1, 1)), r"low < high"),
    (np.zeros((1, 3, 4, 4), np.float32), dict(layout="RGBA"), r"unknown layout 'RGBA'"),
])
def test_postprocess_bad_input_says_what_to_do(x, kw, match):
    with pytest.raises(InputError, match=match):
        postprocess(x, **kw)


def test_rgb_to_y_bad_input():
    with pytest.raises(InputError, match="unknown layout 'GRAY'"):
        rgb_to_y(np.zeros((4, 4, 1), np.uint8), layout="GRAY")
    with pytest.raises(InputError, match="must be uint8"):
        rgb_to_y(np.zeros((4, 4, 3), np.float32))


def test_get_processor_falls_back_to_numpy_without_cuda():
    proc = get_processor("numpy")
    assert isinstance(proc, NumpyProcessor) and proc.device == "cpu"
    with pytest.raises(InputError, match="prefer must be"):
        get_processor("tpu")
    try:
        import pycuda.driver  # noqa: F401  (only: is it installed?)
    except ImportError:
        auto = get_processor()
        assert isinstance(auto, NumpyProcessor) and "pycuda" in auto.fallback_reason
        with pytest.raises(BackendUnavailable, match=r"pip install 'skugen\[tensorrt\]'"):
            get_processor("cuda")
    img = np.zeros((5, 7, 3), np.uint8)
    np.testing.assert_array_equal(proc.preprocess(img, (3, 3)), preprocess(img, (3, 3)))
