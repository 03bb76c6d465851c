"""The diffusion exporter: two graphs in one manifest, both checked against PyTorch, the loop too."""
from __future__ import annotations

import json
import shutil

import pytest

from skugen.errors import ModelError
from skugen.export.bundle import BundleConfig, export_bundle


def test_parity_report_covers_both_graphs_and_the_loop(diffusion_bundle):
    rep = json.loads((diffusion_bundle / "reports/parity.json").read_text())
    assert set(rep["graphs"]) == {"denoiser", "text_encoder"}
    assert all(g["pass"] and g["max_abs"] < 1e-4 for g in rep["graphs"].values())
    assert rep["loop"]["steps"] == 4 and rep["loop"]["pass"]
    m = json.loads((diffusion_bundle / "manifest.json").read_text())
    assert m["schema_version"] == 2 and m["diffusion"]["vocab"] == "vocab.json"
    ops = m["models"]["fp32"]["op_counts"]
    assert "ConvTranspose" not in ops and ops.get("Softmax", 0) == 5  # the five cross-attention blocks


def test_a_vocabulary_altered_after_training_is_refused(diffusion_model_dir, tmp_path):
    d = shutil.copytree(diffusion_model_dir, tmp_path / "m")
    v = json.loads((d / "vocab.json").read_text())
    v["tokens"] = v["tokens"][:-1] + ["zebra"]
    (d / "vocab.json").write_text(json.dumps(v))
    with pytest.raises(ModelError, match="does not match the sha256 its card records"):
        export_bundle(d, tmp_path / "b", BundleConfig())
    assert not (tmp_path / "b").exists()


def test_a_missing_vocabulary_is_refused(diffusion_model_dir, tmp_path):
    d = shutil.copytree(diffusion_model_dir, tmp_path / "m")
    (d / "vocab.json").unlink()
    with pytest.raises(ModelError, match="carries its tokenizer's vocabulary"):
        export_bundle(d, tmp_path / "b", BundleConfig())
