"""Denoiser pruning (torch-pruning) and guided step distillation of fmnist-diffusion (small random teacher)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from skugen.errors import InputError
from skugen.export import ckpt, prune_diffusion
from skugen.export.diffusion import DiffusionConfig, DiffusionModel, denoiser_macs
from skugen.export.diffusion_distill import (STUDENT_ATTN, STUDENT_INNER, StepDistillConfig, compress_diffusion,
                                             student_widths, teacher_trajectories)

SMALL = dict(inner=(8, 8, 16, 16, 16, 16, 8, 8), attn_dim=(8, 16, 16, 16, 8))


def test_the_shipped_student_widths_are_at_most_half_the_teachers_macs():
    t = DiffusionModel(DiffusionConfig())
    assert student_widths(t.cfg) == (STUDENT_INNER, STUDENT_ATTN)
    s = DiffusionModel(DiffusionConfig(inner=STUDENT_INNER, attn_dim=STUDENT_ATTN))
    assert denoiser_macs(s) <= 0.5 * denoiser_macs(t)


def test_prune_keeps_the_strongest_channels_and_rebuilds_from_config(diffusion_model_dir):
    teacher, _ = ckpt.load_model(diffusion_model_dir)
    r = prune_diffusion.prune_diffusion(teacher, **SMALL)
    assert r.config.inner == SMALL["inner"] and r.config.attn_dim == SMALL["attn_dim"]
    assert r.macs_after < r.macs_before and teacher.cfg.inner != r.config.inner  # the teacher is untouched
    # the kept conv1 filters are the teacher's, at the indices the report names
    blk_t, blk_s = teacher.denoiser.res[1], r.model.denoiser.res[1]
    idx = list(r.kept["inner1"])
    torch.testing.assert_close(blk_s.conv1.weight, blk_t.conv1.weight[idx])
    torch.testing.assert_close(blk_s.conv2.weight, blk_t.conv2.weight[:, idx])
    l1 = blk_t.conv1.weight.abs().flatten(1).sum(1)
    assert l1[idx].mean() >= l1.mean()  # the L1 ranking kept the larger filters (group L1 over the coupled layers)


@pytest.mark.parametrize("bad", [dict(inner=(12,) * 8, attn_dim=SMALL["attn_dim"]),
                                 dict(inner=SMALL["inner"][:-1], attn_dim=SMALL["attn_dim"]),
                                 dict(inner=SMALL["inner"], attn_dim=(64,) * 5)])
def test_bad_widths_are_refused(diffusion_model_dir, bad):
    teacher, _ = ckpt.load_model(diffusion_model_dir)
    with pytest.raises(InputError):
        prune_diffusion.prune_diffusion(teacher, **bad)


def test_trajectories_are_the_teachers_guided_euler_states(diffusion_model_dir):
    teacher, _ = ckpt.load_model(diffusion_model_dir)
    cfg = StepDistillConfig(n_traj=3, traj_batch=3, teacher_steps=4, steps=2, amp="fp32")
    tr = teacher_trajectories(teacher, cfg)
    assert tr["xs"].shape == (3, 3, 1, 32, 32) and float(tr["guidance"]) == teacher.cfg.guidance
    from skugen.export import prompts

    null = torch.tensor(prompts.build_vocab().null())
    x_end = teacher.sample(torch.from_numpy(tr["tokens"]), null, steps=4, noise=torch.from_numpy(tr["xs"][:, 0].copy()))
    np.testing.assert_allclose(np.clip(tr["xs"][:, -1], -1, 1), x_end.numpy(), atol=1e-4)


def test_compress_writes_a_guidance_distilled_student_and_resumes(diffusion_model_dir, tmp_path):
    dcfg = StepDistillConfig(n_traj=16, traj_batch=8, teacher_steps=4, steps=2, train_steps=6, batch=8, ckpt_every=3,
                             amp="fp32", **SMALL)
    from dataclasses import replace

    out, _, card, _ = compress_diffusion(diffusion_model_dir, tmp_path / "st", replace(dcfg, stop_after=3),
                                         evaluate=False)
    assert card == {} and ckpt.checkpoint_step(out / "ckpt") == 3
    out, student, card, pr = compress_diffusion(diffusion_model_dir, tmp_path / "st", dcfg, evaluate=False)
    assert ckpt.checkpoint_step(out / "ckpt") == 6
    c = student.cfg
    assert c.steps == c.max_steps == 2 and c.guidance == 1.0 and c.distilled_guidance == 3.0
    assert card["macs_ratio_per_step"] == pytest.approx(card["macs_ratio_per_call"] / 2)
    assert card["sampler"]["denoiser_rows_per_prompt"] == 1 and (out / "vocab.json").is_file()
    loaded, lcard = ckpt.load_model(out)
    assert loaded.cfg == c and lcard["prune"]["student_config"]["inner"] == list(SMALL["inner"])
