"""fmnist-diffusion: the model (two graphs), the prompts with held-out parts, and the trainer (real Fashion-MNIST)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skugen.errors import DataError
from skugen.export import ckpt, diffusion, models, prompts
from skugen.tokenizer import UNK


def test_shapes_and_the_prompt_reaches_the_velocity(diffusion_model_dir):
    m, card = ckpt.load_model(diffusion_model_dir)
    tok = prompts.build_vocab()
    ids = torch.from_numpy(tok.encode_batch(["a photo of a sneaker", "a dress"])[0])
    ctx = m.text_encoder(ids)
    assert ctx.shape == (2, tok.context, m.cfg.text_dim)
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([0.3, 0.9])
    v = m.denoiser(x, t, ctx, (ids != 0).float())
    assert v.shape == x.shape
    other = m.denoiser(x, t, m.text_encoder(ids.flip(0)), (ids.flip(0) != 0).float())
    assert (v - other).abs().max() > 1e-4  # the text conditions the output (cross-attention + pooled path)


def test_padding_is_masked_out_of_the_text_encoder(diffusion_model_dir):
    """Whatever the padding embedding holds, the real tokens' context is the same: padded keys are masked."""
    m, _ = ckpt.load_model(diffusion_model_dir)
    tok = prompts.build_vocab()
    ids = torch.from_numpy(tok.encode_batch(["white sneakers"])[0])
    n = int((ids != 0).sum())
    with torch.no_grad():
        a = m.text_encoder(ids)[0, :n].clone()
        m.text_encoder.tok.weight[0].normal_(0.0, 5.0)   # PAD's embedding: only padded positions use it
        b = m.text_encoder(ids)[0, :n]
    torch.testing.assert_close(a, b)


def test_config_round_trip_reads_widths_back(diffusion_model_dir):
    m, card = ckpt.load_model(diffusion_model_dir)
    cfg = models.config_from_model(m)
    assert cfg == m.cfg and models.config_from_dict(models.config_to_dict(cfg)) == cfg
    assert models.count_macs(m, models.example_inputs(cfg, 1)) > diffusion.denoiser_macs(m) > 0


def test_no_conv_transpose_and_widths_are_multiples_of_8():
    m = diffusion.DiffusionModel(diffusion.DiffusionConfig())
    assert not any(isinstance(x, torch.nn.ConvTranspose2d) for x in m.modules())
    convs = [x for x in m.denoiser.modules() if isinstance(x, torch.nn.Conv2d) and x.out_channels > 1]
    assert all(c.out_channels % 8 == 0 for c in convs)


def test_held_out_templates_and_synonyms_are_never_trained_on():
    rng = np.random.default_rng(0)
    y = np.arange(2000) % 10
    seen = set(prompts.train_prompts(y, np.zeros(len(y), np.int8), rng))
    frames = {t for t in prompts.HELD_OUT_TEMPLATES}
    assert not frames & set(prompts.TEMPLATES)
    held, _ = prompts.eval_prompts("held_out", 200)
    assert not set(held) & seen
    tok = prompts.build_vocab()
    _, unknown = tok.encode_batch(prompts.eval_prompts("held_out_synonyms", 50)[0])
    assert any(unknown)  # words of held-out synonyms are not in the vocabulary: they map to <unk>
    ids, unk = tok.encode_batch(held)
    assert (ids != UNK).any()


def test_brightness_words_come_from_the_image():
    x = np.stack([np.full((4, 4), v, np.uint8) for v in range(0, 200, 2)])  # 100 images, brighter and brighter
    y = np.zeros(100, np.int64)
    b = prompts.brightness_attr(x, y)
    assert (b[:30] == -1).all() and (b[-30:] == 1).all() and (b[35:65] == 0).all()
    p = prompts.make_prompt(7, -1, np.random.default_rng(0), templates=("{attr} {item}",))
    assert p.split()[0] in prompts.DARK


def test_trainer_resumes_exactly(tmp_path):
    """Two short runs (stop, resume) give the same weights as one run: each step is a function of (seed, step)."""
    from skugen.export import data, train

    try:
        data.find_fmnist()
    except DataError as e:  # the data is a system package
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    cfgkw = dict(steps=6, batch=8, evaluate=False, threads=1, amp="fp32")
    a = train.train("fmnist-diffusion", out=tmp_path / "a", **cfgkw)
    train.train("fmnist-diffusion", out=tmp_path / "b", stop_after=3, **cfgkw)
    b = train.train("fmnist-diffusion", out=tmp_path / "b", **cfgkw)
    wa, _ = ckpt.load_model(a)
    wb, card = ckpt.load_model(b)
    for (k, p), (_, q) in zip(wa.state_dict().items(), wb.state_dict().items()):
        torch.testing.assert_close(p, q, msg=k)
    assert card["vocab"]["file"] == "vocab.json" and json.loads((b / "vocab.json").read_text())["context"] == 16
    assert card["macs_denoiser_step"] > 100_000_000 and card["sampler"]["steps"] == 32
