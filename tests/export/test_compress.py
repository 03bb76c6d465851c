"""compress: bad input gives a clear SkugenError (CLI and API), and a tiny teacher goes end to end
(sensitivity -> allocation -> prune -> distill -> card), resuming on re-run."""
from __future__ import annotations

import json

import pytest
import torch

from skugen import cli
from skugen.errors import BudgetError, InputError, ModelError
from skugen.export import ckpt, compress, models
from skugen.export.train import recalibrate_bn

TINY = models.CGANConfig(base=64, stages=((32, 32), (32, 32), (16, 16)))


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    torch.manual_seed(0)
    g = models.Generator(TINY)
    with torch.no_grad():
        g.attn.gamma.fill_(0.5)
    recalibrate_bn(g, n_batches=2, batch=32)
    d = tmp_path_factory.mktemp("teacher") / "tiny-cgan"
    ckpt.save_model(g, d, {"name": "tiny-cgan", "kind": "generator"})
    return d


def _run(argv):
    """Parse with the real `skugen` parser and run the command function (errors propagate)."""
    args = cli.build_parser(only="compress").parse_args(["compress", *argv])
    return args.func(args)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser(only="compress").parse_args(["compress", "--help"])
    h = capsys.readouterr().out
    assert "Examples:" in h and "--target-macs" in h and "--prune-ratio" in h and "torchrun" in h


def test_not_our_model_file(tmp_path):
    f = tmp_path / "model.pt"
    f.write_bytes(b"\x80\x04not a skugen model")
    with pytest.raises(ModelError, match=r"is a file; compress takes a skugen model directory"):
        _run([str(f), "--out", str(tmp_path / "o")])


def test_not_our_model_directory(tmp_path):
    with pytest.raises(ModelError, match="neither a zoo model"):
        _run([str(tmp_path), "--out", str(tmp_path / "o")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text(json.dumps({"config": {"family": "resnet50"}}))
    (bad / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelError, match="unknown model family 'resnet50'"):
        _run([str(bad), "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("argv, err, msg", [
    (["--prune-ratio", "0"], InputError, r"--prune-ratio must be in \(0, 1\)"),
    (["--prune-ratio", "1"], InputError, r"--prune-ratio must be in \(0, 1\)"),
    (["--prune-ratio", "-0.5"], InputError, r"--prune-ratio must be in \(0, 1\)"),
    (["--target-macs", "1.5"], InputError, r"--target-macs must be in \(0, 1\)"),
    (["--distill-steps", "-3"], InputError, r"--distill-steps must be >= 0"),
    (["--prune-ratio", "0.9"], BudgetError, r"fewer than 8 channels\. A uniform ratio must be <= 0\.50 \('stage2\.a'"),
])
def test_impossible_settings(tiny_teacher, tmp_path, argv, err, msg):
    with pytest.raises(err, match=msg):
        _run([str(tiny_teacher), "--out", str(tmp_path / "o"), *argv])


def test_classifier_is_not_compressible(tmp_path):
    ckpt.save_model(models.Classifier(), tmp_path / "clf", {"name": "clf"})
    with pytest.raises(ModelError, match="supports generators.*classifier"):
        _run([str(tmp_path / "clf"), "--out", str(tmp_path / "o")])


def test_api_rejects_unknown_preset():
    with pytest.raises(InputError, match="preset must be one of"):
        compress.compress("whatever", compress.CompressConfig(preset="turbo"))


def test_cli_main_prints_error_and_exit_code(tmp_path, capsys):
    rc = cli.main(["compress", str(tmp_path / "missing"), "--prune-ratio", "0.5"])
    assert rc == 2
    assert "skugen compress: error:" in capsys.readouterr().err


def test_end_to_end_tiny_teacher_and_resume(tiny_teacher, tmp_path, monkeypatch):
    calls = []
    real_eval = compress._evaluate

    def counted(model, quick):  # the real evaluation (zoo fmnist-classifier judge, Fashion-MNIST features)
        calls.append(quick)
        return real_eval(model, quick)

    monkeypatch.setattr(compress, "_evaluate", counted)
    out = tmp_path / "st"
    cfg = compress.CompressConfig(out=str(out), target_macs_frac=0.35, distill_steps=4, threads=1)
    res = compress.compress(str(tiny_teacher), cfg)
    card = json.loads((out / "card.json").read_text())
    assert card["macs_ratio"] <= 0.35 and card["macs"] < card["macs_teacher"]
    assert card["teacher"]["name"] == "tiny-cgan" and card["teacher"]["sha256"]
    assert card["prune"]["prune_config"]["per_layer"].keys() == {"base", "stage0.a", "stage0.b", "stage1.a",
                                                                 "stage1.b", "stage2.a", "stage2.b"}
    assert card["distill"]["steps"] == 4
    mt, ms, vs = card["metrics_teacher"], card["metrics"], card["vs_teacher"]
    for m in (mt, ms):  # measured, not made up: a random-init tiny generator is far from the data
        assert m["fid_proxy"] > 0 and 0 <= m["class_fidelity"] <= 1, m
    assert vs["macs_ok"] is (card["macs"] / card["macs_teacher"] <= 0.25)
    assert vs["fid_proxy_ratio"] == pytest.approx(ms["fid_proxy"] / mt["fid_proxy"], abs=1e-4)
    assert vs["class_fidelity_drop"] == pytest.approx(mt["class_fidelity"] - ms["class_fidelity"], abs=1e-4)
    assert card["seed"] == 0 and card["wall_time_s"] > 0 and calls == [True, True]
    for f in ("sensitivity.json", "sensitivity.png", "pruned/card.json", "distill/ckpt.safetensors",
              "distill/distill.json", "model.safetensors"):
        assert (out / f).is_file(), f
    student, _ = ckpt.load_model(out)
    assert models.config_from_model(student) == res.prune.config
    assert all(w % 8 == 0 for _, w in res.prune.widths.values())

    # re-run: sensitivity reused, distillation resumes from its checkpoint (no steps left)
    mtime = (out / "sensitivity.json").stat().st_mtime_ns
    res2 = compress.compress(str(tiny_teacher), cfg)
    assert res2.distill.start_step == 4
    assert (out / "sensitivity.json").stat().st_mtime_ns == mtime
    # an unreachable target is reported from the same (cached) table
    with pytest.raises(BudgetError, match="out of reach.*--target-macs >="):
        compress.compress(str(tiny_teacher), compress.CompressConfig(out=str(out), target_macs_frac=0.01))


@pytest.mark.parametrize("family, teacher, student, ratio, verdicts", [
    ("cgan", {"fid_proxy": 2.0, "class_fidelity": 0.90}, {"fid_proxy": 2.4, "class_fidelity": 0.88}, 0.20,
     {"macs_ok": True, "fid_proxy_ok": True, "class_fidelity_ok": True}),
    ("cgan", {"fid_proxy": 2.0, "class_fidelity": 0.90}, {"fid_proxy": 2.6, "class_fidelity": 0.86}, 0.30,
     {"macs_ok": False, "fid_proxy_ok": False, "class_fidelity_ok": False}),
    ("sr", {"psnr_y": 30.0}, {"psnr_y": 29.8}, 0.25, {"macs_ok": True, "psnr_y_ok": True}),
    ("sr", {"psnr_y": 30.0}, {"psnr_y": 29.5}, 0.25, {"macs_ok": True, "psnr_y_ok": False}),
    ("cgan", {"skipped": "no judge"}, {"skipped": "no judge"}, 0.2, {"macs_ok": True}),
])
def test_targets_judge_the_student_against_the_teacher(family, teacher, student, ratio, verdicts):
    """The card's vs_teacher verdicts on both sides of each threshold (MACs <= 25%, FID-proxy <= 1.25x, class
    fidelity drop <= 3 points, PSNR-Y drop <= 0.3 dB); no verdict where a metric was not measured."""
    got = compress._targets(family, ratio, teacher, student)
    assert {k: v for k, v in got.items() if k.endswith("_ok")} == verdicts


def test_adapter_answers_for_a_family_and_a_users_model(tiny_teacher, tmp_path):
    """One protocol: the family and the user's model answer the same questions; the strategy follows the answers."""
    from pathlib import Path

    from skugen.export import custom
    from skugen.export.adapter import FamilyAdapter, UserModelAdapter, adapter_for

    fam = adapter_for(tiny_teacher)
    assert isinstance(fam, FamilyAdapter) and (fam.prune_strategy, fam.distill_strategy) == ("sensitivity", "features")
    assert fam.kind == "generator" and fam.io_spec()["inputs"] == ["z", "onehot"]
    assert fam.macs() == models.count_macs(fam.model, models.example_inputs(fam.cfg, 1, 64)) > 0
    assert "to_img" in fam.ignored_layers() and "cgan_fid_proxy_ratio_max" in fam.quality_target()
    assert fam.calibration_feeds(4)["z"].shape == (4, fam.cfg.z_dim)

    fix = Path(__file__).parent / "fixtures" / "user_models.py"
    spec = {"kind": "generator", "z_dim": 16, "n_classes": 4, "conditioning": "index", "out_ch": 3, "image_size": 16,
            "output_range": [0, 1], "ignored_layers": ["fc"]}
    user = adapter_for(custom.import_model(f"{fix}:make_generator", spec, tmp_path / "u"))
    assert isinstance(user, UserModelAdapter) and (user.prune_strategy, user.distill_strategy) == ("uniform", "outputs")
    assert user.kind == fam.kind and user.io_spec()["inputs"] == fam.io_spec()["inputs"]
    assert user.ignored_layers() == ["net.conv2", "net.fc"] and user.quality_target() == {}
    z, onehot = user.inputs("train")(3, 7)
    assert z.shape == (3, 16) and onehot.shape == (3, 4)
    with pytest.raises(InputError, match="--prune-ratio is for skugen families"):
        compress.compress(str(tmp_path / "u"), compress.CompressConfig(prune_ratio=0.5, out=str(tmp_path / "s")))
