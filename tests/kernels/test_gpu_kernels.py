"""The kernels on a real GPU through pycuda, against the numpy reference. Skips cleanly without
pycuda or a GPU (CI); run on a GPU machine with `pytest -m gpu tests/kernels`."""
from __future__ import annotations

import numpy as np
import pytest

from skugen.errors import BackendUnavailable
from skugen.kernels import CudaProcessor, get_processor, reference
from skugen.kernels.selftest import compare, random_cases

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    try:
        return CudaProcessor(sync_after_launch=True)
    except BackendUnavailable as exc:
        pytest.skip(f"no CUDA processor: {exc}")


def test_get_processor_picks_cuda(gpu):
    assert get_processor().device == "cuda"


@pytest.mark.parametrize("variant", ["strided", "x4"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gpu_matches_numpy(gpu, seed, variant):
    """uint8 bit-exact; floats within 1e-6 (scaled) or one float16 ulp. Expected bit-exact too
    (see the arithmetic contract in reference.py); the script reports the exact max error."""
    gpu.variants = {"preprocess": variant, "postprocess": variant}
    try:
        assert compare(gpu, random_cases(np.random.default_rng(seed), 40), exact=False) == []
    finally:
        gpu.variants = dict(gpu.DEFAULT_VARIANTS)


def test_device_pointers_pitched_roi_and_stream(gpu):
    import pycuda.driver as cuda

    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (2, 120, 200, 4), dtype=np.uint8)  # BGRA camera frames
    roi = frame[:, 10:100, 30:170]  # crop without a copy: pitch stays 200 * 4
    src = cuda.to_device(frame)
    offset = 10 * frame.strides[1] + 30 * 4
    out = np.empty((2, 3, 64, 96), np.float16)
    dst = cuda.mem_alloc(out.nbytes)
    stream = cuda.Stream()
    gpu.preprocess_device(int(src) + offset, dst, batch=2, in_hw=(90, 140), out_hw=(64, 96),
                          pitch=frame.strides[1], image_stride=frame.strides[0], layout="BGRA",
                          dtype=np.float16, stream=stream)
    cuda.memcpy_dtoh_async(out, dst, stream)
    stream.synchronize()
    want = reference.preprocess(roi, (64, 96), layout="BGRA", dtype=np.float16)
    np.testing.assert_allclose(out.astype(np.float32), want.astype(np.float32), rtol=0, atol=2.0**-10)


def test_compiled_module_is_cached(gpu):
    from skugen import config

    assert list(config.cache_dir("kernels").glob(f"skugen-{gpu.arch}-*.cubin"))
    again = CudaProcessor()
    assert again.arch == gpu.arch
