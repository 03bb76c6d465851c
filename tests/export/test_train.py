"""Smoke trainings (a few steps): resumable, reproducible from the seed, pickle-free outputs."""
import json

import pytest
import torch
from safetensors.torch import load_file

from skugen.export import ckpt, train


def _weights(d):
    return load_file(str(d / "model.safetensors"))


@pytest.mark.parametrize("name,batch", [("fmnist-classifier", 16), ("fmnist-cgan", 8), ("grocery-sr2x", 2)])
def test_resume_equals_uninterrupted_and_seed_reproduces(tmp_path, name, batch):
    torch.set_num_threads(1)
    a, b = tmp_path / "a", tmp_path / "b"
    train.train(name, a, steps=4, seed=3, batch=batch, evaluate=False)
    # b: interrupted after 2 steps, then resumed with the same command
    train.train(name, b, steps=4, seed=3, batch=batch, evaluate=False, stop_after=2)
    assert ckpt.checkpoint_step(b / "ckpt") == 2 and not (b / "model.safetensors").exists()
    train.train(name, b, steps=4, seed=3, batch=batch, evaluate=False)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{name}: {k} differs after resume"
    card = json.loads((a / "card.json").read_text())
    assert card["weights"]["sha256"] and card["macs"] > 0 and card["params"] > 0
    assert card["config"]["family"] in ("classifier", "cgan", "sr")
    model, _ = ckpt.load_model(a)  # round trip through the card's config
    assert sum(p.numel() for p in model.parameters()) == card["params"]


def test_different_seed_differs(tmp_path):
    train.train("fmnist-classifier", tmp_path / "s0", steps=2, seed=0, batch=8, evaluate=False)
    train.train("fmnist-classifier", tmp_path / "s1", steps=2, seed=1, batch=8, evaluate=False)
    w0, w1 = _weights(tmp_path / "s0"), _weights(tmp_path / "s1")
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)


def test_bad_inputs(tmp_path):
    from skugen.errors import InputError, ModelError
    with pytest.raises(InputError, match="unknown model"):
        train.train("resnet", tmp_path)
    with pytest.raises(InputError, match="positive"):
        train.train("fmnist-cgan", tmp_path, steps=-1)
    (tmp_path / "x").mkdir()
    with pytest.raises(ModelError, match="not a skugen model directory"):
        ckpt.load_model(tmp_path / "x")


def test_tampered_weights_refused(tmp_path):
    from skugen.errors import ModelError
    d = train.train("fmnist-classifier", tmp_path / "m", steps=1, seed=0, batch=4, evaluate=False)
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-5] ^= 0x01
    (d / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        ckpt.load_model(d)


def test_sr_validation_curve_is_logged_and_survives_a_resume(tmp_path):
    """Val-split PSNR-Y every val_every steps (train_log.jsonl, copied into the card); points past the
    checkpoint a resumed run starts from (a run that died before saving) are dropped, not duplicated."""
    from dataclasses import replace

    torch.set_num_threads(1)
    tc = train.TrainConfig(name="grocery-sr2x", steps=4, seed=0, batch=2, ckpt_every=2, val_every=2, amp="bf16")
    train.train_sr(tc, tmp_path)
    log = tmp_path / "train_log.jsonl"
    pts = [json.loads(x) for x in log.read_text().splitlines()]
    assert [p["step"] for p in pts] == [2, 4] and all(20 < p["val_psnr_y"] < 50 for p in pts)
    with open(log, "a") as f:
        f.write(json.dumps({"step": 99, "val_psnr_y": 0.0, "loss": 0.0}) + "\n")
    train.train_sr(replace(tc, steps=6), tmp_path)  # resumes at the step-4 checkpoint
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [2, 4, 6]


def test_amp_choice_is_checked(tmp_path):
    from skugen.errors import InputError
    with pytest.raises(InputError, match="only wired for grocery-sr2x"):
        train.train("fmnist-cgan", tmp_path, steps=1, amp="bf16")
    with pytest.raises(InputError, match="fp32 or bf16"):
        train.train("grocery-sr2x", tmp_path, steps=1, amp="fp16")


def test_checkpoint_counters_travel_with_the_weights(tmp_path):
    """Step and weights are one atomic file: a kill after the weights but before the .json mirror cannot pair
    the new weights with the old step."""
    m = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(m.parameters())
    ckpt.save_checkpoint(tmp_path / "ckpt", {"m": m}, {"opt": opt}, {"step": 1})
    stale = (tmp_path / "ckpt.json").read_text()
    with torch.no_grad():
        m.weight.add_(1.0)
    ckpt.save_checkpoint(tmp_path / "ckpt", {"m": m}, {"opt": opt}, {"step": 2})
    (tmp_path / "ckpt.json").write_text(stale)                       # as if killed before the mirror was written
    m2 = torch.nn.Linear(2, 2)
    state = ckpt.load_checkpoint(tmp_path / "ckpt", {"m": m2}, {"opt": torch.optim.Adam(m2.parameters())})
    assert state["step"] == 2 and ckpt.checkpoint_step(tmp_path / "ckpt") == 2
    torch.testing.assert_close(m2.weight, m.weight)
