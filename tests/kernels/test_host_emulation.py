"""The CUDA kernel sources, compiled by g++ through host_emu.h and run on the CPU, against the
numpy reference: bit-identical on randomised cases, and free of out-of-bounds accesses (ASan)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from skugen.kernels import preprocess, reference
from skugen.kernels._launch import kernel_signatures
from skugen.kernels.selftest import random_cases

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="host emulation needs g++")


@pytest.fixture(scope="module", params=["strided", "x4"])
def emu(request):
    """Every test runs on both kernel variants (strided: the default; x4: vector loads/stores)."""
    from skugen.kernels.host_emu import EmulatedProcessor

    p = EmulatedProcessor()
    p.variants = {"preprocess": request.param, "postprocess": request.param}
    return p


def test_every_kernel_is_emulated(emu):
    assert set(emu._fns) == set(kernel_signatures()) == {
        "skugen_preprocess_f32", "skugen_preprocess_f16", "skugen_postprocess_f32",
        "skugen_postprocess_f16", "skugen_rgb_to_y", "skugen_preprocess_f32_x4", "skugen_preprocess_f16_x4",
        "skugen_postprocess_f32_x4", "skugen_postprocess_f16_x4"}


@pytest.mark.parametrize("seed", [0, 1])
def test_kernels_are_bit_identical_to_numpy(emu, seed):
    """uint8 and float outputs alike: the kernels and numpy do the same float32 ops in the same order."""
    from skugen.kernels.selftest import compare

    cases = random_cases(np.random.default_rng(seed), 40)
    kinds = {c.kind for c in cases}
    assert kinds == {"preprocess", "postprocess", "rgb_to_y"}
    assert compare(emu, cases, exact=True) == []


@pytest.mark.parametrize("w", [4, 8, 12, 13, 15, 16, 33])
def test_vector_and_tail_paths_at_every_width_phase(emu, w):
    """x4 takes the vector path for whole aligned quads and the scalar path for tails and misaligned rows."""
    rng = np.random.default_rng(w)
    for layout in ("RGB", "GRAY"):
        c = 1 if layout == "GRAY" else 3
        for dtype in (np.float32, np.float16):
            x = rng.uniform(-1.2, 1.2, (2, c, 5, w)).astype(dtype)
            np.testing.assert_array_equal(emu.postprocess(x, layout=layout), reference.postprocess(x, layout=layout))
            img = rng.integers(0, 256, (2, 7, 11, 3), dtype=np.uint8)
            np.testing.assert_array_equal(emu.preprocess(img, (5, w), dtype=dtype), preprocess(img, (5, w), dtype=dtype))


def test_real_photo_and_large_scale_factors(emu, photo):
    crop = photo[10:300, 7:341]  # pitched view into the photo
    for out_hw in [(256, 256), (17, 700), (700, 9)]:
        for dtype in (np.float32, np.float16):
            np.testing.assert_array_equal(emu.preprocess(crop, out_hw, dtype=dtype),
                                          preprocess(crop, out_hw, dtype=dtype))
    x = preprocess(photo, (64, 64))
    np.testing.assert_array_equal(emu.postprocess(x, layout="BGR"), reference.postprocess(x, layout="BGR"))
    np.testing.assert_array_equal(emu.rgb_to_y(crop), reference.rgb_to_y(crop))


@pytest.mark.parametrize("pitch", [9 * 3 + 5, 9 * 3 + 6])  # 32: word-aligned rows; 33: every row misaligned
def test_device_api_writes_into_a_pitched_destination(emu, pitch):
    """postprocess_device into a wider frame: pixels land at the pitch, the gap bytes stay untouched."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (2, 3, 5, 9)).astype(np.float32)
    stride = 6 * pitch
    frame = np.full(2 * stride, 77, np.uint8)
    src, dst = emu._upload(x.reshape(-1).view(np.uint8)), emu._upload(frame)  # "device" buffers
    emu.postprocess_device(src, dst, batch=2, hw=(5, 9), pitch=pitch, image_stride=stride)
    emu._download(dst, frame)
    as_view = lambda a: np.lib.stride_tricks.as_strided(a, (2, 5, 9, 3), (stride, pitch, 3, 1))  # noqa: E731
    np.testing.assert_array_equal(as_view(frame), reference.postprocess(x))
    gaps = np.ones(frame.shape, bool)
    as_view(gaps)[...] = False
    assert np.all(frame[gaps] == 77)


def test_half_conversion_matches_numpy(emu):
    rng = np.random.default_rng(8)
    special = np.float32([0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e9, -1e9, np.inf, -np.inf,
                          6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-10, 0.5 + 2.0**-12, 0.5 + 3 * 2.0**-12])
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([special, bits, rng.uniform(-2, 2, 100_000).astype(np.float32)])
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore"):  # numpy warns on overflow to inf, which is the point here
        want = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(emu.float2half_bits(x), want)
    assert emu.float2half_bits(np.float32([np.nan]))[0] & 0x7FFF > 0x7C00  # NaN stays NaN
    every = np.arange(2**16, dtype=np.uint16)
    np.testing.assert_array_equal(emu.half2float(every), every.view(np.float16).astype(np.float32))


def _asan_available() -> bool:
    from skugen.kernels.host_emu import asan_runtime

    return asan_runtime() is not None


def _run_sanitized(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skugen.cli", "kernels", "emulate", "--sanitize", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("g++") is None or not _asan_available(), reason="needs g++ with libasan")
@pytest.mark.parametrize("variant", ["strided", "x4"])
def test_no_kernel_reads_or_writes_out_of_bounds(variant):
    """Every buffer is an exact-size malloc under AddressSanitizer (+UBSan): any stray byte aborts."""
    r = _run_sanitized("--cases", "30", "--seed", "3", "--variant", variant)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "90 cases, 0 mismatches" in r.stdout


@pytest.mark.skipif(shutil.which("g++") is None or not _asan_available(), reason="needs g++ with libasan")
def test_the_bounds_checker_catches_a_planted_overrun():
    r = _run_sanitized("--plant-oob")
    assert r.returncode != 0 and "heap-buffer-overflow" in r.stderr, r.stdout + r.stderr
