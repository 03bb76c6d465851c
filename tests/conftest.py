"""Shared fixtures: small random-init models and bundles built from them (session-scoped, fast, seeded).

The zoo teachers may not be trained yet, so tests never depend on them. The
random models are made "image-like" cheaply: BatchNorm running statistics are
recomputed on a few batches (so activations are normalised, as in a trained
model, instead of shrinking to a constant image) and the enhancer's residual
branch is scaled down (output ~ bilinear upsample + small detail, as EDSR at init).

Fixtures (helpers are exposed as fixtures, never imported: several conftest.py files coexist):
    cgan_model_dir / sr_model_dir   model directories (card.json + model.safetensors)
    cgan_model / sr_model           those models loaded (eval mode; treat as read-only)
    need_grocery                     skips the test when GroceryStoreDataset is absent
    cgan_bundle / sr_bundle          bundles with fp32 + int8 (Path); do NOT modify them in place:
                                     copy first (shutil.copytree) for tamper tests.
    diffusion_model_dir / diffusion_bundle   a small random-init fmnist-diffusion (4 default steps) and its
                                     fp32 two-graph bundle (same rule: copy before tampering)
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("SKUGEN_NO_PROGRESS", "1")


def pytest_sessionstart(session):
    """`make install` installs skugen in strict editable mode (a link tree in build/__editable__.*, see the
    Makefile): edits show at once, but a module added since the install is missing there. Say so once, with the
    fix, instead of a ModuleNotFoundError in whichever test imports it first."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("skugen")
    tree = Path(spec.origin).parent if spec and spec.origin else None
    if tree is None or "__editable__" not in str(tree):
        return
    repo = Path(__file__).resolve().parents[1]
    missing = [f"{d}/{f.relative_to(repo / d)}" for d, sub in (("sdk", ""), ("export", "export"), ("kernels", "kernels"))
               for f in (repo / d).rglob("*.py") if "zoo" not in f.parts and "__pycache__" not in f.parts
               and not (tree / sub / f.relative_to(repo / d)).exists()]
    if missing:
        pytest.exit(f"skugen's editable install predates {', '.join(sorted(missing)[:5])}: run `make install` "
                    "(new modules appear in the strict editable install only after a re-install).", returncode=4)

CGAN_SMALL = dict(base=64, stages=((32, 32), (16, 16), (16, 16)), attn_qk=8)
SR_SMALL = dict(head=16, blocks=(16, 16))
DIFFUSION_SMALL = dict(widths=(16, 16, 24), inner=(16, 16, 24, 24, 24, 24, 16, 16), attn_dim=(16, 24, 24, 24, 16),
                       cond_dim=32, text_dim=32, text_layers=1, text_heads=2, steps=4, max_steps=64)


def _recalibrate_bn(model, inputs_fn, n_batches: int = 4) -> None:
    """Set BN running stats to the exact mean/var of a few random batches (cumulative average)."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(n_batches):
            model(*inputs_fn(i))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def make_cgan(seed: int = 0, **overrides):
    import torch

    from skugen.export import models

    torch.manual_seed(seed)
    cfg = models.CGANConfig(**{**CGAN_SMALL, **overrides})
    m = models.build(cfg)
    if m.attn is not None:
        m.attn.gamma.data.fill_(0.5)  # exercise the attention path (it starts as identity)
    _recalibrate_bn(m, lambda i: models.example_inputs(cfg, batch=64, seed=100 + i))
    return m


def make_sr(seed: int = 0, **overrides):
    import torch

    from skugen.export import models

    torch.manual_seed(seed)
    m = models.build(models.SRConfig(**{**SR_SMALL, **overrides}))
    with torch.no_grad():
        m.up.weight.mul_(0.1)
        m.up.bias.mul_(0.1)
    return m.eval()


def make_diffusion(seed: int = 0, **overrides):
    """Random init with the cross-attention outputs switched on (they start at zero: the text path would be
    invisible to every test of the graphs and the loop)."""
    import torch

    from skugen.export import models, prompts

    torch.manual_seed(seed)
    tok = prompts.build_vocab()
    m = models.build(models.DiffusionConfig(**{**DIFFUSION_SMALL, "vocab_size": tok.size, "context": tok.context,
                                               **overrides}))
    with torch.no_grad():
        for a in m.denoiser.attn:
            a.out.weight.normal_(0.0, 0.2)
    return m.eval(), tok


def grocery_available() -> bool:
    """False only when the dataset is missing (DataError); any other error is a bug and propagates."""
    from skugen.errors import DataError
    from skugen.export import data

    try:
        data.find_grocery()
        return True
    except DataError:
        return False


@pytest.fixture(scope="session")
def cgan_model_dir(tmp_path_factory):
    from skugen.export import ckpt

    d = tmp_path_factory.mktemp("models") / "test-cgan"
    return ckpt.save_model(make_cgan(), d, card={"name": "test-cgan", "kind": "generator"})


@pytest.fixture(scope="session")
def sr_model_dir(tmp_path_factory):
    from skugen.export import ckpt

    d = tmp_path_factory.mktemp("models") / "test-sr"
    return ckpt.save_model(make_sr(), d, card={"name": "test-sr", "kind": "enhancer"})


@pytest.fixture(scope="session")
def diffusion_model_dir(tmp_path_factory):
    import json

    from skugen.export import ckpt
    from skugen.io import sha256_file

    m, tok = make_diffusion()
    d = tmp_path_factory.mktemp("models") / "test-diffusion"
    d.mkdir()
    (d / "vocab.json").write_text(json.dumps(tok.to_dict()))
    return ckpt.save_model(m, d, card={"name": "test-diffusion", "kind": "diffusion",
                                       "vocab": {"file": "vocab.json", "sha256": sha256_file(d / "vocab.json")}})


@pytest.fixture(scope="session")
def diffusion_bundle(diffusion_model_dir, tmp_path_factory):
    from skugen.export.bundle import BundleConfig, export_bundle

    return export_bundle(diffusion_model_dir, tmp_path_factory.mktemp("bundles") / "diffusion", BundleConfig())


@pytest.fixture(scope="session")
def cgan_model(cgan_model_dir):
    from skugen.export import ckpt

    return ckpt.load_model(cgan_model_dir)[0]


@pytest.fixture(scope="session")
def sr_model(sr_model_dir):
    from skugen.export import ckpt

    return ckpt.load_model(sr_model_dir)[0]


@pytest.fixture
def need_grocery():
    if not grocery_available():
        pytest.skip("GroceryStoreDataset not found (SKUGEN_GROCERY_DIR / ../shared/data/grocery-store)")


# Fixture bundles use small calibration/eval sets and a budget loose enough that a
# random-init model reliably ships INT8 (the gate itself is tested in tests/export/test_quantize.py).
def _fixture_cfg(kind: str):
    from skugen.export.bundle import BundleConfig
    from skugen.export.quantize import QualityBudget, QuantConfig

    return BundleConfig(int8=True, fp16=False, calib_n=32, eval_n=64 if kind == "generator" else 8, classifier=None,
                        quant=QuantConfig(subset_size=32),
                        budget=QualityBudget(min_psnr_db=20.0, max_psnr_drop_db=2.0))


@pytest.fixture(scope="session")
def cgan_bundle(cgan_model_dir, tmp_path_factory):
    from skugen.export.bundle import export_bundle

    return export_bundle(cgan_model_dir, tmp_path_factory.mktemp("bundles") / "cgan", _fixture_cfg("generator"))


@pytest.fixture(scope="session")
def cgan_bundle_without_openvino_int8(cgan_model_dir, tmp_path_factory):
    """The generator fixture bundle exported with openvino=False: INT8 ships as the Q/DQ ONNX alone."""
    from dataclasses import replace

    from skugen.export.bundle import export_bundle

    return export_bundle(cgan_model_dir, tmp_path_factory.mktemp("bundles") / "cgan-qdq",
                         replace(_fixture_cfg("generator"), openvino=False))


@pytest.fixture(scope="session")
def sr_bundle(sr_model_dir, tmp_path_factory):
    if not grocery_available():
        pytest.skip("GroceryStoreDataset not found (SKUGEN_GROCERY_DIR / ../shared/data/grocery-store): "
                    "the enhancer's INT8 calibration needs real photos")
    from skugen.export.bundle import export_bundle

    return export_bundle(sr_model_dir, tmp_path_factory.mktemp("bundles") / "sr", _fixture_cfg("enhancer"))

