"""Tiled enhancement: the plan partitions the image, the stitched output equals the untiled one,
and memory stays bounded for large photos."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import skugen
import skugen.bundle
from skugen import tiling
from skugen.errors import InputError
from skugen.prepost import images_to_unit_nchw, nchw_to_images
from skugen.kernels.reference import NumpyProcessor, postprocess as ref_postprocess, preprocess as ref_preprocess


@pytest.fixture(scope="module")
def enh(sr_bundle):
    with skugen.load(sr_bundle, backend="onnxruntime", precision="fp32", threads=1) as p:
        yield p

# ----------------------------------------------------------------------------- the plan


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200), size=st.integers(2, 64), data=st.data())
def test_plan_partitions_the_image_with_margins(h, w, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    tiles = tiling.plan_tiles(h, w, size, overlap)
    cover = np.zeros((h, w), np.int32)
    shapes = {t.shape for t in tiles}
    assert shapes == {(min(size, h), min(size, w))}  # one shape: tiles batch together
    for t in tiles:
        assert 0 <= t.y and t.y + t.h <= h and 0 <= t.x and t.x + t.w <= w
        assert t.y <= t.cy0 < t.cy1 <= t.y + t.h and t.x <= t.cx0 < t.cx1 <= t.x + t.w
        cover[t.cy0:t.cy1, t.cx0:t.cx1] += 1
        # A core edge inside the image keeps >= overlap // 2 of real context from the tile edge.
        m = overlap // 2
        if t.cy0 > 0:
            assert t.cy0 - t.y >= m
        if t.cy1 < h:
            assert t.y + t.h - t.cy1 >= m
        if t.cx0 > 0:
            assert t.cx0 - t.x >= m
        if t.cx1 < w:
            assert t.x + t.w - t.cx1 >= m
    assert (cover == 1).all()  # cores partition the image: every output pixel written exactly once


def test_plan_examples():
    assert tiling.plan_axis(10, 32, 8) == [(0, 10, 0, 10)]
    assert tiling.plan_axis(100, 32, 8) == [(0, 32, 0, 28), (24, 32, 28, 52), (48, 32, 52, 74), (68, 32, 74, 100)]
    with pytest.raises(InputError, match="overlap"):
        tiling.plan_tiles(10, 10, 8, 8)


def test_fast_preprocess_is_bit_identical_to_the_kernel_reference():
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    crops = [img[3:20, 5:30], img[10:27, 0:25]]  # pitched views, as the tiler passes them
    for mean, std in ((0.0, 1.0), (0.5, 0.5)):
        got = images_to_unit_nchw(crops, NumpyProcessor(), mean, std)
        want = ref_preprocess(crops, (17, 25), "RGB", mean, std)
        np.testing.assert_array_equal(got, want)

@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(st.sampled_from([np.float32, np.float16]),
                    st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 9), st.integers(1, 9))),
       vr=st.sampled_from(["-1,1", "0,1", (-1, 1), (0.0, 1.0), (-0.5, 2.0)]))
def test_fast_postprocess_is_bit_identical_to_the_kernel_reference(x, vr):
    # Any float values, NaN and +-inf included: NaN -> 0 and clamping must match the reference exactly.
    want = ref_postprocess(x, vr, "GRAY" if x.shape[1] == 1 else "RGB").reshape(
        x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    np.testing.assert_array_equal(nchw_to_images(x, vr, NumpyProcessor()), want)
    # Strided views (tile crops) give the same bytes as their contiguous copies.
    v = x[:, :, 1:, :-1]
    if v.size:
        np.testing.assert_array_equal(nchw_to_images(v, vr, NumpyProcessor()),
                                      nchw_to_images(np.ascontiguousarray(v), vr, NumpyProcessor()))

# ----------------------------------------------------------------------------- tiled == untiled


def _float_untiled_and_tiled(pipe, img):
    """The float HR outputs (before quantisation): whole image, and stitched tile cores."""
    sp = pipe.spec
    s = sp.scale
    x = images_to_unit_nchw([img], pipe.processor)
    whole = pipe.runner.infer({"lr": x})["hr"][0]  # (3, sH, sW)
    out = np.full_like(whole, np.nan)
    for t in tiling.plan_tiles(img.shape[0], img.shape[1], sp.tile_size, sp.tile_overlap):
        xt = images_to_unit_nchw([img[t.y:t.y + t.h, t.x:t.x + t.w]], pipe.processor)
        yt = pipe.runner.infer({"lr": xt})["hr"][0]
        core = yt[:, (t.cy0 - t.y) * s:(t.cy1 - t.y) * s, (t.cx0 - t.x) * s:(t.cx1 - t.x) * s]
        out[:, t.cy0 * s:t.cy1 * s, t.cx0 * s:t.cx1 * s] = core
    return whole, out


def test_tiled_equals_untiled(enh):
    sp = enh.spec
    assert sp.tile_size and sp.tile_overlap, "the enhancer bundle must declare tile.size / tile.overlap"
    rng = np.random.default_rng(0)
    # Smooth-ish content plus noise, and a size that is not a multiple of the tile stride.
    h, w = 2 * sp.tile_size + 13, 3 * sp.tile_size - 5
    yy, xx = np.mgrid[0:h, 0:w]
    base = (127 + 100 * np.sin(yy / 7.0)[..., None] * np.cos(xx / 5.0)[..., None]).repeat(3, -1)
    img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    whole, stitched = _float_untiled_and_tiled(enh, img)
    assert not np.isnan(stitched).any()
    np.testing.assert_allclose(stitched, whole, atol=1e-4, rtol=0)  # float rounding only
    tiled = enh.enhance(img, tile=True).images[0]
    untiled = enh.enhance(img, tile=False).images[0]
    diff = np.abs(tiled.astype(int) - untiled.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_small_tile_override_and_mixed_sizes(enh):
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (45, 70, 3), dtype=np.uint8), rng.integers(0, 256, (9, 100, 3), dtype=np.uint8)]
    res = enh.enhance(imgs, tile=24)
    ref = enh.enhance(imgs, tile=False)
    for a, b in zip(res.images, ref.images):
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


class _ProfiledRunner:
    """The ORT runner behind a TensorRT-like optimisation profile (LR sides in [min, max])."""

    def __init__(self, inner, lo: int, hi: int):
        self.inner, self.lo, self.hi = inner, lo, hi
        self.info, self.is_active = inner.info, True
        self.shapes = []

    def profile(self):
        return {"lr": {"min": [1, 3, self.lo, self.lo], "opt": [1, 3, self.hi, self.hi], "max": [8, 3, self.hi, self.hi]}}

    def input_metadata(self):
        return self.inner.input_metadata()

    def infer(self, feed, check=True):
        h, w = feed["lr"].shape[2:]
        assert self.lo <= h <= self.hi and self.lo <= w <= self.hi, (h, w)
        self.shapes.append((h, w))
        return self.inner.infer(feed, check)

    def deactivate(self):
        pass


def test_engine_profile_limits_are_respected(enh):
    from skugen.pipeline import Pipeline

    p = Pipeline(enh.bundle, enh.spec, _ProfiledRunner(enh.runner, 16, 40), "onnxruntime", "fp32")
    rng = np.random.default_rng(4)
    big = rng.integers(0, 256, (100, 90, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out_big = p.enhance(big, tile=False).images[0]  # too big for the engine: tiled at its max anyway
    assert max(max(s) for s in p.runner.shapes) <= 40
    assert np.abs(out_big.astype(int) - enh.enhance(big, tile=False).images[0].astype(int)).max() <= 1
    out_small = p.enhance(small).images[0]  # below the engine's min: edge-padded, output cropped
    assert out_small.shape == (10, 14, 3)

# ----------------------------------------------------------------------------- bounded memory


class _UpsampleRunner:
    """A stand-in x2 model (nearest upsampling in numpy): isolates the pipeline's own memory use from
    the model's compute, so the full 4000x3000 case runs in seconds on 2 cores."""

    info = {"device": "cpu"}
    is_active = True

    def __init__(self):
        self.batches = []

    def input_metadata(self):
        from skugen.backends.base import TensorMeta

        return {"lr": TensorMeta("lr", np.dtype(np.float32), (None, 3, None, None))}

    def infer(self, feed, check=True):
        x = feed["lr"]  # (b, 3, h, w)
        self.batches.append(x.shape)
        b, c, h, w = x.shape
        y = np.empty((b, c, 2 * h, 2 * w), np.float32)  # (b, 3, 2h, 2w), like an ORT output
        for dy in (0, 1):
            for dx in (0, 1):
                y[:, :, dy::2, dx::2] = x
        return {"hr": y}

    def deactivate(self):
        pass


@pytest.mark.slow
def test_large_photo_memory_is_bounded(sr_bundle):
    """A 4000x3000 photo: numpy's peak is the uint8 output buffer plus one tile batch's working set,
    far below the whole-image float tensors an untiled run needs (input 144 MB + output 576 MB)."""
    from skugen.pipeline import Pipeline

    b = skugen.bundle.load_bundle(sr_bundle)
    spec = b.spec
    runner = _UpsampleRunner()
    p = Pipeline(b, spec, runner, "onnxruntime", "fp32")
    h, w = 3000, 4000
    img = np.zeros((h, w, 3), np.uint8)
    img[::7] = 200  # some structure, cheap to make
    img[:, ::5, 1] = 77
    out_bytes = h * w * 3 * 4  # (2H, 2W, 3) uint8
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        res = p.enhance(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out = res.images[0]
    assert out.shape == (2 * h, 2 * w, 3)
    np.testing.assert_array_equal(out[::2, ::2], img)  # every tile core landed in the right place
    np.testing.assert_array_equal(out[1::2, 1::2], img)
    tile_batch = max(n for n, *_ in runner.batches)
    batch_float = tile_batch * 3 * (2 * spec.tile_size) ** 2 * 4
    assert batch_float <= tiling.DEFAULT_BATCH_BYTES
    whole_float = h * w * 3 * 4 * (1 + 4)
    extra = peak - out_bytes
    assert extra < 6 * tiling.DEFAULT_BATCH_BYTES, \
        f"peak {peak / 2**20:.0f} MiB = output {out_bytes / 2**20:.0f} MiB + {extra / 2**20:.0f} MiB"
    assert extra < whole_float / 5
