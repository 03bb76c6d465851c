"""skugen.sampler: the numpy Euler loop, checked against velocity fields whose Euler solution is known exactly.

A rectified flow to a fixed image x0 has v(x, t) = (x - x0) / t, and Euler on its straight path lands on x0 for
ANY number of steps. Guidance mixes two such fields, so the result is x_u + g (x_c - x_u), also exact.
"""
from __future__ import annotations

import numpy as np
import pytest

from skugen import sampler
from skugen.errors import InputError
from skugen.tokenizer import Tokenizer

TOK = Tokenizer.from_words(["a", "b"], context=4)


def _to(targets: dict[int, np.ndarray]):
    """A denoiser whose velocity flows every row to the image of its prompt's first word id."""
    def denoise(feed):
        word = feed["context"][:, 1, 0].astype(int)          # encode() below puts the word id there
        x0 = np.stack([targets[w] for w in word])
        t = feed["t"][:, None, None, None]
        return (feed["x"] - x0) / t
    return denoise


def _encode(tokens):
    return np.repeat(tokens[:, :, None].astype(np.float32), 3, axis=2)  # (B, L, 3): ids as the "context"


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_euler_on_a_straight_flow_lands_on_the_target(steps):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 4, 4)).astype(np.float32)
    ids, _ = TOK.encode_batch(["a", "a"])
    noise = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    x = sampler.sample(_encode, _to({ids[0, 1]: a}), ids, TOK.null(), noise, steps, 1.0, max_batch=8)
    np.testing.assert_allclose(x, np.stack([a, a]), atol=1e-5)


def test_guidance_extrapolates_from_uncond_to_cond_in_one_batch():
    rng = np.random.default_rng(1)
    a, null_img = (rng.standard_normal((1, 2, 2)).astype(np.float32) for _ in range(2))
    ids, _ = TOK.encode_batch(["a"])
    calls = []
    den = _to({ids[0, 1]: a, TOK.null()[1]: null_img})

    def counting(feed):
        calls.append(len(feed["x"]))
        return den(feed)

    noise = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    x = sampler.sample(_encode, counting, ids, TOK.null(), noise, 4, 2.5, max_batch=8)
    np.testing.assert_allclose(x[0], null_img + 2.5 * (a - null_img), atol=1e-4)
    assert calls == [2, 2, 2, 2]  # [cond; uncond] together: one denoiser call per step


def test_chunking_never_exceeds_max_batch_and_changes_nothing():
    rng = np.random.default_rng(2)
    targets = {i: rng.standard_normal((1, 2, 2)).astype(np.float32) for i in range(8)}
    ids = np.stack([[1, 4 + i % 2, 2, 0] for i in range(7)]).astype(np.int64)
    targets[TOK.null()[1]] = np.zeros((1, 2, 2), np.float32)
    noise = rng.standard_normal((7, 1, 2, 2)).astype(np.float32)
    sizes = []
    den = _to(targets)

    def rec(feed):
        sizes.append(len(feed["x"]))
        return den(feed)

    whole = sampler.sample(_encode, den, ids, TOK.null(), noise, 3, 2.0, max_batch=64)
    t = sampler.SampleTiming()
    chunked = sampler.sample(_encode, rec, ids, TOK.null(), noise, 3, 2.0, max_batch=4, timing=t)
    assert max(sizes) <= 4 and len(t.steps) == 3
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


@pytest.mark.parametrize("steps, msg", [(0, "outside"), (-3, "outside"), (65, "outside"), (2.5, "must be an int"),
                                        (True, "must be an int")])
def test_bad_steps(steps, msg):
    with pytest.raises(InputError, match=msg):
        sampler.check_steps(steps, 4, 64)


@pytest.mark.parametrize("g", [float("nan"), float("inf"), -0.5, "3", True])
def test_bad_guidance(g):
    with pytest.raises(InputError, match="guidance"):
        sampler.check_guidance(g, 3.0)


def test_time_grid_runs_from_noise_to_image():
    ts = sampler.time_grid(4)
    assert ts.dtype == np.float32 and ts[0] == 1.0 and ts[-1] == 0.0 and np.all(np.diff(ts) < 0)
