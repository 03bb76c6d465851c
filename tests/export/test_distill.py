"""Distillation: the loss goes down, checkpoints resume the step count, adapters start as the pruning
selection, and the same entry point runs as 2 DDP processes on gloo with parameters kept in sync."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from skugen.errors import DataError, InputError, ModelError
from skugen.export import ckpt, data, distill, models, prune
from skugen.export.train import recalibrate_bn

SMALL_CGAN = models.CGANConfig(base=64, stages=((32, 32), (32, 32), (16, 16)))
SMALL_SR = models.SRConfig(head=16, blocks=(16, 16))
FAST = dict(threads=1, bn_recal_batches=2, log_every=1, w_percep=0.0)  # w_percep: no dependency on the zoo


def _teacher_and_pruned(seed: int = 0):
    torch.manual_seed(seed)
    t = models.Generator(SMALL_CGAN)
    with torch.no_grad():
        t.attn.gamma.fill_(0.5)
    recalibrate_bn(t, n_batches=2, batch=32)  # a trained teacher has standing BN statistics
    res = prune.prune_channels(t, prune.PruneConfig(ratio=0.5))
    kept = {layer: res.kept[u] for layer, u in distill.feature_units(t, distill.default_feature_layers(t)).items()}
    return t.eval(), res, kept


def _has_grocery() -> bool:
    try:
        data.grocery_split("val")
        return True
    except DataError:  # missing dataset only; any other error fails collection
        return False


def test_distill_generator_lowers_loss(tmp_path):
    t, res, kept = _teacher_and_pruned()
    cfg = distill.DistillConfig(steps=25, batch=16, lr=2e-3, **FAST)
    out = distill.distill(t, res.model, cfg, tmp_path / "d", adapter_init=kept)
    assert out.val_l1_end < 0.9 * out.val_l1_start
    first, last = out.history[0], out.history[-1]
    assert last["loss"] < first["loss"] and {"pixel", "feat"} <= first.keys()
    assert out.start_step == 0 and out.steps == 25 and out.world_size == 1
    assert not out.student.training
    assert (tmp_path / "d" / "ckpt.safetensors").is_file()


@pytest.mark.skipif(not _has_grocery(), reason="GroceryStoreDataset not installed")
def test_distill_enhancer_on_grocery_crops_lowers_loss(tmp_path):
    torch.manual_seed(0)
    t = models.Enhancer(SMALL_SR).eval()
    res = prune.prune_channels(t, prune.PruneConfig(ratio=0.5))
    # w_percep pulls toward the real HR crop, which a random teacher doesn't match: off for this check
    cfg = distill.DistillConfig(steps=12, batch=4, hr_size=32, lr=2e-3, w_percep=0.0, threads=1, log_every=1)
    out = distill.distill(t, res.model, cfg, None)
    assert out.val_l1_end < out.val_l1_start
    one = distill.distill(t, res.model, distill.DistillConfig(steps=1, batch=2, hr_size=32, threads=1), None)
    assert {"pixel", "feat", "percep"} <= one.history[0].keys()  # percep = SRLoss against the real HR crop


def test_resume_continues_step_count(tmp_path):
    t, res, kept = _teacher_and_pruned()
    d = tmp_path / "d"
    a = distill.distill(t, res.model, distill.DistillConfig(steps=3, batch=8, ckpt_every=3, **FAST), d, kept)
    assert (a.start_step, a.steps) == (0, 3)
    # a fresh process would start from the pruned weights again: the checkpoint must win
    _, res2, _ = _teacher_and_pruned()
    b = distill.distill(t, res2.model, distill.DistillConfig(steps=6, batch=8, ckpt_every=3, **FAST), d, kept)
    assert (b.start_step, b.steps) == (3, 6)
    assert [h["step"] for h in b.history] == [1, 2, 3, 4, 5, 6]
    assert b.val_l1_start == a.val_l1_start  # the 'before' number survives the restart
    st = json.loads((d / "ckpt.json").read_text())["state"]
    assert st["step"] == 6


def test_resume_with_another_student_is_a_clear_error(tmp_path):
    t, res, kept = _teacher_and_pruned()
    distill.distill(t, res.model, distill.DistillConfig(steps=1, batch=4, **FAST), tmp_path, kept)
    other = prune.prune_channels(t, prune.PruneConfig(ratio=0.25)).model
    with pytest.raises(ModelError, match="different student.*fresh --out"):
        distill.distill(t, other, distill.DistillConfig(steps=2, batch=4, **FAST), tmp_path)


def test_resume_with_another_teacher_or_settings_is_a_clear_error(tmp_path):
    t, res, kept = _teacher_and_pruned()
    distill.distill(t, res.model, distill.DistillConfig(steps=1, batch=4, **FAST), tmp_path, kept)
    retrained = copy.deepcopy(t)  # same architecture and name, other weights: shapes alone would let it resume
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    _, res2, _ = _teacher_and_pruned()
    with pytest.raises(ModelError, match="different teacher"):
        distill.distill(retrained, res2.model, distill.DistillConfig(steps=2, batch=4, **FAST), tmp_path)
    with pytest.raises(ModelError, match="different distillation settings"):
        distill.distill(t, res2.model, distill.DistillConfig(steps=2, batch=4, lr=1e-5, **FAST), tmp_path)
    # more steps with the same teacher and settings is a resume
    assert distill.distill(t, res2.model, distill.DistillConfig(steps=2, batch=4, **FAST), tmp_path).start_step == 1


def test_adapters_start_as_the_pruning_selection():
    t, res, kept = _teacher_and_pruned()
    layers = distill.default_feature_layers(t)
    ad = distill.make_adapters(res.model, t, layers, kept)
    name = layers[0]
    s_ch = len(kept[name])
    x = torch.randn(2, s_ch, 4, 4)
    y = ad[0](x)                                        # (2, teacher width, 4, 4)
    assert y.shape[1] == dict(t.named_modules())[name].num_features
    torch.testing.assert_close(y[:, list(kept[name])], x)
    dropped = sorted(set(range(y.shape[1])) - set(kept[name]))
    assert y[:, dropped].abs().max() == 0


def test_config_validation():
    with pytest.raises(InputError, match="steps must be >= 0"):
        distill.resolve_config(distill.DistillConfig(steps=-1), "cgan")
    with pytest.raises(InputError, match="only defined for the cGAN"):
        distill.resolve_config(distill.DistillConfig(w_adv=0.1), "sr")
    with pytest.raises(ModelError, match="cgan and sr"):
        distill.resolve_config(None, "classifier")
    c = distill.resolve_config(None, "sr")
    assert (c.batch, c.w_feat) == (16, 0.1)


def test_adversarial_term_trains_a_discriminator(tmp_path):
    try:
        data.load_fmnist("train")
    except DataError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    t, res, kept = _teacher_and_pruned()
    out = distill.distill(t, res.model, distill.DistillConfig(steps=2, batch=8, w_adv=0.1, **FAST), tmp_path, kept)
    assert {"d", "adv"} <= out.history[-1].keys()
    state = json.loads((tmp_path / "ckpt.json").read_text())
    assert "opt_d" in state["optims"]


def test_ddp_two_processes_gloo_stay_in_sync(tmp_path):
    t, res, _ = _teacher_and_pruned()
    ckpt.save_model(t, tmp_path / "teacher", {"name": "tiny-teacher"})
    ckpt.save_model(res.model, tmp_path / "student", {"name": "tiny-student"})
    out = tmp_path / "out"
    env = {**os.environ, "SKUGEN_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "skugen.cli", "distill", "--teacher", str(tmp_path / "teacher"),
           "--student", str(tmp_path / "student"), "--out", str(out), "--steps", "3", "--batch", "8",
           "--w-percep", "0", "--bn-recal-batches", "1", "--threads", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    log = f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-5000:]}"
    assert p.returncode == 0, log
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("[distill rank")]
    assert sorted(ln.split()[2].rstrip("]") for ln in lines) == ["0/2", "1/2"], log  # both ranks ran
    assert len({ln.split()[-1] for ln in lines}) == 1, log                 # same weights on both
    summary = json.loads((out / "distill.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    d0, d1 = summary["param_digests"]
    assert d0 == d1
    student, card = ckpt.load_model(out)                                   # only rank 0 wrote the model
    assert card["distill"]["world_size"] == 2 and card["teacher"]["name"] == "tiny-teacher"
    assert distill.param_digest(student) == d0
    assert not list(out.glob("*.tmp"))
