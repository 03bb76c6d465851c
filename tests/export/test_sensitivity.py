"""Pruning sensitivity and the MACs allocation (skugen.export.sensitivity): the table, its plot, per-unit ratios
that reach the target, and the default quality functions of both families."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skugen.errors import BudgetError, DataError
from skugen.export import models, prune, sensitivity


def _small_gen() -> models.Generator:
    torch.manual_seed(0)
    g = models.Generator(models.CGANConfig(base=64, stages=((32, 32), (32, 32), (16, 16)))).eval()
    with torch.no_grad():
        g.attn.gamma.fill_(0.7)  # make the attention branch matter (it starts at 0)
    return g


def test_sensitivity_table_png_and_macs_allocation(tmp_path):
    g = _small_gen()
    z = torch.randn(16, g.cfg.z_dim, generator=torch.Generator().manual_seed(0))
    oh = torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    with torch.no_grad():
        ref = g(z, oh)

    def quality(m):  # PSNR vs the unpruned output, images in [-1, 1] (data range 2)
        with torch.no_grad():
            mse = float((m(z, oh) - ref).pow(2).mean())
        return {"psnr": 10 * np.log10(4.0 / mse) if mse > 0 else float("inf")}

    rep = sensitivity.sensitivity(g, (0.5, 0.75), quality_fn=quality, out_dir=tmp_path, progress=False)
    table = json.loads((tmp_path / "sensitivity.json").read_text())
    assert table["units"].keys() == set(prune.unit_names(g))
    assert (tmp_path / "sensitivity.png").stat().st_size > 5000
    assert (tmp_path / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s2b = table["units"]["stage2.b"]["results"]  # 16 channels: keep 8, then 4 -> rounds to 0: skipped
    assert [r["keep"] for r in s2b] == [8, 0]
    assert "psnr" in s2b[0] and "macs_frac" in s2b[0] and "skipped" in s2b[1]
    assert all("psnr" in r for r in table["units"]["base"]["results"])
    # allocation reaches the MACs target and never beyond the probed ratios
    ratios = sensitivity.ratios_for_macs(g, rep, 0.3)
    res = prune.prune_channels(g, prune.PruneConfig(ratio=None, per_layer=ratios))
    assert res.macs_ratio <= 0.3
    assert all(r <= 0.75 + 1e-6 for r in ratios.values())
    with pytest.raises(BudgetError, match="out of reach.*--target-macs >="):
        sensitivity.ratios_for_macs(g, rep, 0.02)


def test_default_quality_fn_generator_reports_psnr():
    from skugen.export.train import recalibrate_bn

    g = _small_gen()
    recalibrate_bn(g, n_batches=4, batch=64)  # standing statistics, as a trained teacher has
    q = sensitivity.default_quality_fn(g, n=8, classifier=models.Classifier().eval())
    same = q(g)  # BN re-estimated from fresh latents: only sampling noise separates it from the teacher
    res = prune.prune_channels(g, prune.PruneConfig(ratio=0.5))
    pruned = q(res.model)
    assert same["psnr"] > pruned["psnr"] > 0
    assert 0.0 <= pruned["class_fidelity"] <= 1.0 and "class_fidelity" in q.baseline


def test_default_quality_fn_enhancer_on_grocery_crops():
    from skugen.export import data

    try:
        data.grocery_split("val")
    except DataError as e:
        pytest.skip(f"GroceryStoreDataset not installed: {e}")
    torch.manual_seed(0)
    m = models.Enhancer(models.SRConfig(head=16, blocks=(16, 16))).eval()
    q = sensitivity.default_quality_fn(m, n=2)
    assert q(m)["psnr"] == float("inf")  # identical outputs
    res = prune.prune_channels(m, prune.PruneConfig(ratio=0.5))
    assert 10 < q(res.model)["psnr"] < float("inf")
    assert "PSNR-Y" in q.description
