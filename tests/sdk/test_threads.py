"""One Pipeline shared by many threads: results equal to serial ones, no crash, no deadlock."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import skugen
from skugen.errors import InputError

THREADS, CALLS = 8, 200
JOIN_TIMEOUT_S = 60  # a deadlock fails the test instead of hanging CI


def _args(t: int, i: int) -> dict:
    # Different seeds, labels (ints and names) and batch sizes per call, so mixed-up results would show.
    k = t * CALLS + i
    return {"labels": [k % 10, "sneaker"][: 1 + k % 2], "seed": k, "n": None}


def _run_threads(target, n_threads: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(t):
        try:
            target(t)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(t,), daemon=True) for t in range(n_threads)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for th in threads:
        th.join(max(deadline - time.monotonic(), 0))
    assert not any(th.is_alive() for th in threads), "threads still running: deadlock?"
    return errors


def test_generate_from_8_threads_equals_serial(cgan_bundle):
    with skugen.load(cgan_bundle, backend="onnxruntime", threads=1) as pipe:
        serial = {(t, i): pipe.generate(**_args(t, i)).images for t in range(THREADS) for i in range(CALLS)}
        pipe.stats.reset()
        got: dict = {}

        def work(t):
            for i in range(CALLS):
                got[(t, i)] = pipe.generate(**_args(t, i)).images

        t0 = time.perf_counter()
        errors = _run_threads(work, THREADS)
        elapsed = time.perf_counter() - t0
        assert not errors, errors[:3]
        assert len(got) == THREADS * CALLS
        for key, want in serial.items():
            np.testing.assert_array_equal(got[key], want, err_msg=str(key))
        sess = pipe.report().latency["session"]
        assert sess["calls"] == THREADS * CALLS  # the rolling stats lost no update under contention
    assert elapsed < 30


def test_enhance_from_threads_equals_serial(sr_bundle):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (int(rng.integers(8, 40)), int(rng.integers(8, 40)), 3), dtype=np.uint8)
            for _ in range(12)]
    with skugen.load(sr_bundle, backend="onnxruntime", threads=1) as pipe:
        serial = [pipe.enhance(im).images[0] for im in imgs]
        got: dict = {}

        def work(t):
            for r in range(5):
                for j in range(t % 3, len(imgs), 3):
                    got[(t, r, j)] = pipe.enhance(imgs[j]).images[0]

        errors = _run_threads(work, 4)
    assert not errors, errors[:3]
    for (t, r, j), out in got.items():
        np.testing.assert_array_equal(out, serial[j])


def test_close_waits_for_in_flight_calls_and_then_refuses(cgan_bundle):
    pipe = skugen.load(cgan_bundle, backend="onnxruntime", threads=1)
    started = threading.Event()
    outcomes: list[str] = []

    def work(t):
        for i in range(200):
            started.set()
            try:
                pipe.generate(labels=t % 10, n=2, seed=i)
                outcomes.append("ok")
            except InputError as e:
                assert "closed" in str(e)
                outcomes.append("closed")
                return

    th = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(4)]
    for x in th:
        x.start()
    started.wait(10)
    pipe.close()  # must not tear the session down under a running call
    for x in th:
        x.join(JOIN_TIMEOUT_S)
    assert not any(x.is_alive() for x in th)
    assert "ok" in outcomes and all(o in ("ok", "closed") for o in outcomes)
    assert not pipe.runner.is_active
    with pytest.raises(InputError, match="closed"):
        pipe.generate(n=1, seed=0)
