"""run_bench: TensorRT cells through a stand-in runner; the run itself writes nothing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.bench import BenchConfig, compare_reports, run_bench


def test_tensorrt_cells_plumbing_with_a_stand_in_runner(bench, monkeypatch):
    """No GPU here: a stand-in runner (ORT underneath, TensorRT's info keys) checks what TRT cells record."""
    from skugen.bench import cells

    class FakeTRT(OnnxRuntimeRunner):
        """Stand-in for TensorRTRunner: ONNX Runtime (CPU) on the bundle's fp32 ONNX, named "tensorrt", with
        TensorRT's info keys and a hard-coded gpu_memory; `_tensorrt_status` is patched to "usable" and the real
        `cells._make_runner` is bypassed for the tensorrt backend only.

        Can catch: how run_bench handles a tensorrt cell once a runner loads: the skip rules letting fp16 through
        when TensorRT is usable, runner.info["gpu_memory"] copied into the cell (memory.gpu, CSV gpu_used_mb), no
        CPU-GEMM fraction or same-run normalisation for GPU cells, gmacs still computed, and compare_reports
        calling GPU cells cross-run.

        Cannot catch: anything of TensorRT or pycuda (engine build/load, API names, fp16/int8 numerics, GPU
        timings: it times the fp32 ONNX on the CPU); runner_for's dispatch to TensorRTRunner; the real
        `_tensorrt_status` probe; the keys and values the real runner reports in gpu_memory; the `_gpu_memory()`
        fallback (info always has gpu_memory); the CUDA pre/post path (device is "cpu", so numpy pre/post run).
        """

        name = "tensorrt"

        def _activate(self):
            super()._activate()
            self.info = {"backend": "tensorrt", "device": "cpu",  # "cpu": keep the numpy pre/post here
                         "gpu_memory": {"engine_bytes": 1 << 20, "used_by_runner_bytes": 3 << 20}}

    real = cells._make_runner
    monkeypatch.setattr(cells, "_tensorrt_status", lambda: (True, ""))
    monkeypatch.setattr(cells, "_make_runner", lambda t, be, p, th: FakeTRT(t.bundle.model_path("fp32"), intra_op_threads=1)
                        if be == "tensorrt" else real(t, be, p, th))
    rep = run_bench(BenchConfig(bundles=(str(bench["cgan"]),), backends=("tensorrt",), precisions=("fp16",),
                                batches=(1,), warmup=1, iters=2, threads=1, quality=False, ceiling_size=64,
                                progress=False))
    (c,) = rep.cells
    assert c["status"] == "ok" and c["backend"] == "tensorrt"
    assert c["memory"]["gpu"]["used_by_runner_bytes"] == 3 << 20
    assert rep.csv_rows()[0]["gpu_used_mb"] == pytest.approx(3.0)
    assert c["compute"]["fraction_of_ceiling"] is None and "GPU cell" in c["compute"]["note"]
    assert c["compute"]["gmacs_per_s"] > 0
    assert c["normalized"]["p50_over_fp32_gemm"] is None  # no same-run GPU yardstick ...
    res = compare_reports(rep.to_dict(), rep.to_dict())
    assert res.cross_run and "GPU cell" in res.rows[0]["metric"]  # ... so the gate says the figures are cross-run


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_run_bench_writes_nothing(bench, tmp_path, monkeypatch):
    """run_bench returns the report; saving it is the caller's job (no file appears or changes, not even in cwd)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(bench["cgan"], bundle)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    rep = run_bench(BenchConfig(bundles=(str(bundle),), precisions=("fp32", "int8"), batches=(1,), warmup=1,
                                iters=2, threads=1, quality_n=8, ceiling_size=64, progress=False))
    assert _tree(tmp_path) == before
    assert [c["status"] for c in rep.cells] == ["ok", "ok"] and rep.to_markdown()
    written = rep.save(json_path=work / "r.json", md_path=work / "r.md")
    assert sorted(p.name for p in written) == sorted(p.name for p in work.iterdir()) == ["r.json", "r.md"]
