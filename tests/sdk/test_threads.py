"""One Pipeline shared by many threads: results equal to serial ones, no crash, no deadlock.

Every worker runs in a ThreadPoolExecutor and the main thread calls `.result()` on each
future, so an exception or failed assertion inside a worker fails the test (a bare
threading.Thread would print it and carry on).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest

import skugen
from skugen.errors import InputError

THREADS, CALLS = 8, 200
# Both CPU engines: ONNX Runtime's session is re-entrant, OpenVINO's runner keeps one InferRequest per thread.
ENGINES = pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="openvino not installed (skugen[openvino])"))])
JOIN_TIMEOUT_S = 60  # a deadlock fails the test instead of hanging CI


def _args(t: int, i: int) -> dict:
    # Different seeds, labels (ints and names) and batch sizes per call, so mixed-up results would show.
    k = t * CALLS + i
    return {"labels": [k % 10, "sneaker"][: 1 + k % 2], "seed": k, "n": None}


def _run_threads(target, n_threads: int) -> list:
    """Run target(t) for t in range(n_threads) concurrently; return their results, re-raising any worker's error."""
    pool = ThreadPoolExecutor(max_workers=n_threads)
    try:
        futures = [pool.submit(target, t) for t in range(n_threads)]
        _, pending = wait(futures, timeout=JOIN_TIMEOUT_S)
        assert not pending, f"{len(pending)} threads still running after {JOIN_TIMEOUT_S}s: deadlock?"
        return [f.result() for f in futures]  # raises the first worker exception here, in the main thread
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_run_threads_reraises_a_worker_failure():
    """The harness itself: an assertion failing inside a worker must fail the caller."""
    def work(t):
        assert t != 2, "worker 2 failed"
        return t

    with pytest.raises(AssertionError, match="worker 2 failed"):
        _run_threads(work, 4)
    assert _run_threads(lambda t: t * t, 3) == [0, 1, 4]


@ENGINES
def test_generate_from_8_threads_equals_serial(cgan_bundle, backend):
    with skugen.load(cgan_bundle, backend=backend, precision="fp32", threads=1) as pipe:
        assert pipe.backend == backend
        serial = {(t, i): pipe.generate(**_args(t, i)).images for t in range(THREADS) for i in range(CALLS)}
        pipe.stats.reset()

        def work(t):
            return {(t, i): pipe.generate(**_args(t, i)).images for i in range(CALLS)}

        got = {k: v for part in _run_threads(work, THREADS) for k, v in part.items()}  # JOIN_TIMEOUT_S: deadlock
        assert len(got) == THREADS * CALLS
        for key, want in serial.items():
            np.testing.assert_array_equal(got[key], want, err_msg=str(key))
        sess = pipe.report().latency["session"]
        assert sess["calls"] == THREADS * CALLS  # the rolling stats lost no update under contention


@ENGINES
def test_enhance_from_threads_equals_serial(sr_bundle, backend):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (int(rng.integers(8, 40)), int(rng.integers(8, 40)), 3), dtype=np.uint8)
            for _ in range(12)]
    with skugen.load(sr_bundle, backend=backend, precision="fp32", threads=1) as pipe:
        serial = [pipe.enhance(im).images[0] for im in imgs]

        def work(t):
            return {(t, r, j): pipe.enhance(imgs[j]).images[0] for r in range(5) for j in range(t % 3, len(imgs), 3)}

        got = {k: v for part in _run_threads(work, 4) for k, v in part.items()}
    assert len(got) == 4 * 5 * 4
    for (t, r, j), out in got.items():
        np.testing.assert_array_equal(out, serial[j])


@ENGINES
def test_close_waits_for_in_flight_calls_and_then_refuses(cgan_bundle, backend):
    pipe = skugen.load(cgan_bundle, backend=backend, precision="fp32", threads=1)
    started = threading.Barrier(5)  # 4 workers + the main thread

    def work(t):
        outcomes = []
        started.wait(10)
        for i in range(200):
            try:
                pipe.generate(labels=t % 10, n=2, seed=i)
                outcomes.append("ok")
            except InputError as e:
                assert "closed" in str(e), e  # any other error (a torn-down session, ...) fails the test
                outcomes.append("closed")
                break
        return outcomes

    pool = ThreadPoolExecutor(max_workers=4)
    try:
        futures = [pool.submit(work, t) for t in range(4)]
        started.wait(10)
        time.sleep(0.05)  # let some calls run
        pipe.close()  # must not tear the session down under a running call
        _, pending = wait(futures, timeout=JOIN_TIMEOUT_S)
        assert not pending, "threads still running after close(): deadlock?"
        outcomes = [o for f in futures for o in f.result()]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert "ok" in outcomes and set(outcomes) <= {"ok", "closed"}
    assert not pipe.runner.is_active
    with pytest.raises(InputError, match="closed"):
        pipe.generate(n=1, seed=0)
