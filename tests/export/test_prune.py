"""Structured pruning: channels physically removed, widths rounded to 8, I/O and conditioning intact,
configs round-trip, the attention block survives, the pruned generator exports to ONNX. Sensitivity and the
MACs allocation: tests/export/test_sensitivity.py."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn as nn

from skugen.errors import BudgetError, InputError, ModelError
from skugen.export import ckpt, models, prune

SMALL_CGAN = models.CGANConfig(base=64, stages=((32, 32), (32, 32), (16, 16)))


def _gen(cfg=None, seed=0) -> models.Generator:
    torch.manual_seed(seed)
    g = models.Generator(cfg or models.CGANConfig()).eval()
    with torch.no_grad():
        g.attn.gamma.fill_(0.7)  # make the attention branch matter (it starts at 0)
    return g


def _sr(cfg=None, seed=0) -> models.Enhancer:
    torch.manual_seed(seed)
    return models.Enhancer(cfg or models.SRConfig()).eval()


@pytest.fixture(scope="module")
def pruned_gen():
    g = _gen()
    return g, prune.prune_channels(g, prune.PruneConfig(ratio=0.5))


@pytest.fixture(scope="module")
def pruned_sr():
    m = _sr()
    return m, prune.prune_channels(m, prune.PruneConfig(ratio=0.5))


def _convs(m: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: c for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}


def test_generator_channels_physically_removed_and_rounded(pruned_gen):
    teacher, res = pruned_gen
    s = res.model
    assert res.config.base == 128 and res.config.stages == ((64, 64), (32, 32), (16, 16))
    assert s.fc.out_features == 128 * 16 and s.fc_bn.num_features == 128       # fc rows follow the seed channels
    assert s.blocks[0]["conv1"].weight.shape == (64, 128, 3, 3)                 # real tensors shrank
    assert res.params_after < 0.45 * res.params_before
    assert 0.2 < res.macs_ratio < 0.3
    assert res.macs_after == models.count_macs(s, models.example_inputs(res.config, 1))
    for name, c in _convs(s).items():
        if name != "to_img":
            assert c.out_channels % 8 == 0, name
        assert c.in_channels % 8 == 0, name
    assert all(w[1] % 8 == 0 for w in res.widths.values())


def test_io_and_conditioning_layers_intact(pruned_gen, pruned_sr):
    teacher, res = pruned_gen
    s = res.model
    assert torch.equal(s.embed.weight, teacher.embed.weight)                    # conditioning path untouched
    assert s.fc.in_features == teacher.cfg.z_dim + teacher.cfg.embed_dim
    assert s.to_img.out_channels == 1
    assert s.attn.q.out_channels == s.attn.k.out_channels == 8
    # the kept seed channels carry exactly the teacher's fc rows (16 per channel)
    kept = torch.tensor(res.kept["base"])
    rows = (kept[:, None] * 16 + torch.arange(16)).flatten()
    assert torch.equal(s.fc.weight, teacher.fc.weight[rows])
    t_sr, r_sr = pruned_sr
    assert r_sr.model.head.in_channels == 3
    assert r_sr.model.up.out_channels == 3 * 2 ** 2                              # PixelShuffle needs in_ch*scale^2


def test_teacher_is_not_modified():
    g = _gen(SMALL_CGAN)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    prune.prune_channels(g, prune.PruneConfig(ratio=0.5))
    after = g.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("which", ["gen", "sr"])
def test_config_round_trip(which, pruned_gen, pruned_sr, tmp_path):
    _, res = pruned_gen if which == "gen" else pruned_sr
    cfg = models.config_from_model(res.model)
    assert cfg == res.config
    rebuilt = models.build(cfg)
    rebuilt.load_state_dict(res.model.state_dict(), strict=True)
    ex = models.example_inputs(cfg, 2, 16, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(*ex), res.model(*ex))
    # and through the model-directory format (JSON config + safetensors, no pickle)
    ckpt.save_model(res.model, tmp_path / "m", {"name": "pruned"})
    loaded, card = ckpt.load_model(tmp_path / "m")
    assert models.config_from_dict(card["config"]) == cfg
    with torch.no_grad():
        torch.testing.assert_close(loaded(*ex), res.model(*ex))


def test_attention_block_pruned_consistently(pruned_gen):
    teacher, res = pruned_gen
    a, w = res.model.attn, res.config.stages[1][1]
    assert a.v.in_channels == a.v.out_channels == a.q.in_channels == a.k.in_channels == w == 32
    assert a.gamma.item() == pytest.approx(0.7)
    with torch.no_grad():
        y = res.model(*models.example_inputs(res.config, 3))
    assert y.shape == (3, 1, 32, 32) and torch.isfinite(y).all()


def test_enhancer_trunk_is_one_coupled_group():
    m = _sr()
    res = prune.prune_channels(m, prune.PruneConfig(ratio=None, per_layer={"trunk": 0.5}))
    s = res.model
    assert res.config.head == 24 and res.config.blocks == (48,) * 6
    assert all(b.conv1.in_channels == 24 and b.conv2.out_channels == 24 for b in s.body)
    assert s.body_tail.in_channels == s.body_tail.out_channels == s.up.in_channels == 24
    assert s(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)


def test_enhancer_inner_widths(pruned_sr):
    _, res = pruned_sr
    assert res.config.head == 24 and res.config.blocks == (24,) * 6
    assert 0.2 < res.macs_ratio < 0.3


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_pruned_generator_exports_to_onnx(pruned_gen):
    ort = pytest.importorskip("onnxruntime")
    _, res = pruned_gen
    m = res.model
    z, oh = models.example_inputs(res.config, 2, seed=5)
    buf = io.BytesIO()
    torch.onnx.export(m, (z, oh), buf, input_names=["z", "onehot"], output_names=["image"],
                      dynamic_axes={"z": {0: "b"}, "onehot": {0: "b"}, "image": {0: "b"}},
                      opset_version=17, dynamo=False)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"z": z.numpy(), "onehot": oh.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, m(z, oh).numpy(), atol=1e-4)


def test_taylor_importance_ranks_by_gradient_not_magnitude():
    """block0's even channels get 10x conv1 weights but zero conv2 input weights: large (L1 keeps them) yet
    dead, so |w * grad| is 0 on every layer of their group and Taylor drops exactly those channels."""
    m = _sr(models.SRConfig(head=32, blocks=(32, 32)))
    dead = list(range(0, 32, 2))
    with torch.no_grad():
        m.body[0].conv1.weight[dead] *= 10.0
        m.body[0].conv2.weight[:, dead] = 0.0
    res = prune.prune_channels(m, prune.PruneConfig(ratio=0.5, importance="taylor"))
    assert res.config.head == 16 and res.config.blocks == (16, 16)
    assert res.kept["block0"] == tuple(range(1, 32, 2))
    l1 = prune.prune_channels(m, prune.PruneConfig(ratio=0.5, importance="l1"))
    assert set(dead) <= set(l1.kept["block0"])
    assert prune.prune_channels(m, prune.PruneConfig(ratio=0.5, importance="taylor")).kept == res.kept  # seeded


def test_per_layer_ratios_override_global():
    g = _gen(SMALL_CGAN)
    res = prune.prune_channels(g, prune.PruneConfig(ratio=None, per_layer={"stage0.a": 0.5, "stage2.b": 0.5}))
    assert res.config.stages == ((16, 32), (32, 32), (16, 8)) and res.config.base == 64


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_impossible_ratio_is_input_error(ratio):
    with pytest.raises(InputError, match=r"must be in \(0, 1\)"):
        prune.prune_channels(_gen(SMALL_CGAN), prune.PruneConfig(ratio=ratio))


def test_ratio_leaving_fewer_than_8_channels_is_budget_error():
    with pytest.raises(BudgetError, match=r"fewer than 8 channels\. A uniform ratio must be <= 0\.50"):
        prune.prune_channels(_gen(SMALL_CGAN), prune.PruneConfig(ratio=0.8))
    with pytest.raises(BudgetError, match=r"'stage2\.a' \(16 channels\).*Use a ratio <= 0\.50 for this layer"):
        prune.prune_channels(_gen(SMALL_CGAN), prune.PruneConfig(ratio=None, per_layer={"stage2.a": 0.9}))


def test_unknown_unit_and_foreign_model():
    with pytest.raises(InputError, match="unknown pruning unit 'stage9.a'.*units: base"):
        prune.prune_channels(_gen(SMALL_CGAN), prune.PruneConfig(per_layer={"stage9.a": 0.5}))
    with pytest.raises(ModelError, match="not a skugen model"):
        prune.prune_channels(nn.Sequential(nn.Conv2d(3, 8, 3)))
