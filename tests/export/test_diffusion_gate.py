"""export/diffusion_gate.py: the final-image judge (real fmnist-classifier, real images)."""
from __future__ import annotations

import numpy as np

from skugen.export import data, diffusion_gate, zoo


def test_the_judge_tells_real_images_from_damaged_ones():
    judge = zoo.load_judge()
    x, y = data.load_fmnist("test")
    ref = data.fmnist_to_model(x[1000:1200])               # real test images in [-1, 1], not the FID reference
    cfg = diffusion_gate.DiffusionGateConfig(n=200)
    same = diffusion_gate.judge_images(ref, ref.copy(), y[1000:1200], judge, cfg)
    assert same["psnr_vs_fp32_db"] == 100.0 and same["fidelity_drop_pts"] == 0.0 and same["within_budget"]
    rng = np.random.default_rng(0)
    noisy = np.clip(ref + rng.normal(0, 0.6, ref.shape).astype(np.float32), -1, 1)
    bad = diffusion_gate.judge_images(ref, noisy, y[1000:1200], judge, cfg)
    assert bad["psnr_vs_fp32_db"] < 20 and bad["fid_ratio"] > 1.25 and not bad["within_budget"]


def test_without_a_judge_nothing_is_accepted():
    ref = np.zeros((4, 1, 32, 32), np.float32)
    r = diffusion_gate.judge_images(ref, ref + 0.01, np.zeros(4, int), None, diffusion_gate.DiffusionGateConfig(n=4))
    assert r["within_budget"] is None and "no classifier judge" in r["reason"] and r["psnr_vs_fp32_db"] > 40
