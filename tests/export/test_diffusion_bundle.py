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


def test_bf16_is_gated_on_final_images_where_openvino_is_installed(diffusion_bundle):
    pytest.importorskip("openvino")
    m = json.loads((diffusion_bundle / "manifest.json").read_text())
    rec = m["models"]["fp32"]["runtime_precisions"]["openvino"]["bf16"]
    assert rec["hint"] == "bf16" and "denoiser" in rec["executed"]
    if not rec["native"]:  # an AVX2-only CPU: nothing measured, nothing accepted
        assert rec["accepted"] is False and "no native BF16" in rec["reason"]
        return
    ev = rec["eval"]
    assert ev["judged"] == "final images of whole sampling runs" and ev["steps"] == 4
    assert ev["n"] == 200 and 0 < ev["psnr_vs_fp32_db"] <= 100 and ev["fid_proxy_fp32"] > 0
    budget = BundleConfig().budget.max_fidelity_drop_pts  # the export's budget, as INT8 and FP16 get it
    assert ev["budget"]["max_fidelity_drop_pts"] == budget
    assert rec["accepted"] == (ev["fidelity_drop_pts"] <= budget and ev["fid_ratio"] <= ev["budget"]["max_fid_ratio"])
    from skugen.bundle import load_bundle
    from skugen.tune import bf16_gate

    assert bf16_gate(load_bundle(diffusion_bundle))[0] == rec["accepted"]


def test_bf16_gate_takes_the_export_budget(diffusion_model_dir, tmp_path, monkeypatch):
    """--budget reaches the BF16 gate as it reaches INT8 and FP16 (it once got the gate's default 2.0 points)."""
    pytest.importorskip("openvino")
    from skugen.export import diffusion_gate
    from skugen.export.quantize import QualityBudget

    seen = []

    class Stop(BaseException):  # not an Exception: nothing in the exporter may catch it
        pass

    def stop(*a, **k):
        seen.append(a[5])
        raise Stop  # the config is what is checked; nothing is written

    monkeypatch.setattr(diffusion_gate, "bf16_record", stop)
    with pytest.raises(Stop):
        export_bundle(diffusion_model_dir, tmp_path / "b", BundleConfig(budget=QualityBudget(max_fidelity_drop_pts=0.25)))
    assert seen and seen[0].max_fidelity_drop_pts == 0.25 and not (tmp_path / "b").exists()
