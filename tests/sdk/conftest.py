"""Shared sdk test fixtures: one real bench run over the small fixture bundles (tiny iteration counts).

`bench` runs the matrix once per session; `bench_cell`, `fabricate` and `gate_key`
are the small helpers the bench (tests/sdk/bench/) and CLI (tests/sdk/cli/test_bench.py) tests read it with.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from skugen.bench import BenchConfig, BenchReport, run_bench

BATCHES = (1, 2)
BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _tiny_classifier(tmp: Path) -> Path:
    """A random-init fmnist-shaped classifier: enough to exercise class fidelity and the FID-proxy plumbing."""
    import torch

    from skugen.export import ckpt, models

    torch.manual_seed(0)
    m = models.build(models.ClassifierConfig(widths=(8, 8, 16, 16, 16), feat_dim=16)).eval()
    return ckpt.save_model(m, tmp / "clf", {"name": "tiny-classifier"})


@pytest.fixture(scope="session")
def bench(request, tmp_path_factory) -> dict:
    """Run the bench once per session and return paths + the report (saved as JSON by the caller, not run_bench)."""
    bundles = [request.getfixturevalue("cgan_bundle")]
    teachers = [request.getfixturevalue("cgan_model_dir")]
    try:
        bundles.append(request.getfixturevalue("sr_bundle"))
        teachers.append(request.getfixturevalue("sr_model_dir"))
    except pytest.skip.Exception:  # no GroceryStore here: the generator alone still covers the matrix
        pass
    tmp = tmp_path_factory.mktemp("bench")
    cfg = BenchConfig(bundles=tuple(str(b) for b in bundles), backends=BACKENDS, precisions=PRECISIONS,
                      batches=BATCHES, warmup=1, iters=3, repeats=2, threads=1,
                      teachers=tuple(str(t) for t in teachers), tile=32, quality_n=20,
                      classifier=str(_tiny_classifier(tmp)), ceiling_size=256, progress=False)
    rep = run_bench(cfg, argv=["skugen", "bench", "(test)"])
    rep.save_json(tmp / "report.json")
    return {"report": rep, "dir": tmp, "json": tmp / "report.json", "bundles": bundles,
            "cgan": bundles[0], "has_sr": len(bundles) > 1,
            "matrix": {"backends": BACKENDS, "precisions": PRECISIONS, "batches": BATCHES}}


@pytest.fixture
def bench_cell():
    """cell(rep, bundle, model, backend, precision, batch) -> the cell dict (asserts it exists)."""
    def cell(rep: BenchReport, bundle: str, model: str, backend: str, prec: str, batch: int) -> dict:
        c = rep.cell(f"{bundle}|{model}|{backend}|{prec}|b{batch}")
        assert c is not None, f"cell {bundle}|{model}|{backend}|{prec}|b{batch} missing"
        return c
    return cell


@pytest.fixture
def fabricate():
    """fabricate(report_dict, key, p50_factor, psnr_delta): a baseline made from a real report, one cell edited."""
    def make(d: dict, key: str, p50_factor: float = 1.0, psnr_delta: float = 0.0) -> dict:
        b = copy.deepcopy(d)
        for c in b["cells"]:
            if c["key"] == key:
                c["normalized"]["p50_over_fp32_gemm"] *= p50_factor
                c["latency_ms"]["total"]["p50"] *= p50_factor
                if psnr_delta:
                    c["quality"]["vs_reference"]["psnr"]["value"] += psnr_delta
        return b
    return make


@pytest.fixture
def gate_key():
    """gate_key(rep, backend, precision, batch): the key of a measured generator cell."""
    def key(rep: BenchReport, backend="onnxruntime", precision="int8", batch=1) -> str:
        return next(c["key"] for c in rep.ok_cells() if c["backend"] == backend and c["precision"] == precision
                    and c["batch"] == batch and c["kind"] == "generator")
    return key
