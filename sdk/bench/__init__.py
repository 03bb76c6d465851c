"""`skugen bench`: latency, throughput, memory, compute efficiency and quality over a matrix.

    from skugen.bench import BenchConfig, GateConfig, compare_reports, run_bench
    cfg = BenchConfig(bundles=("runs/demo/bundle",), backends=("onnxruntime", "torch"),
                      precisions=("fp32", "int8"), batches=(1, 8, 32), teachers=("export/zoo/fmnist-cgan",))
    rep = run_bench(cfg)                       # BenchReport; run_bench writes nothing
    rep.save_json("bench.json"); rep.save_csv("bench.csv"); rep.save_md("bench.md"); rep.save_html("bench.html")
    gate = compare_reports(rep.to_dict(), json.load(open("old.json")), GateConfig())   # regression gate

One module per concern:
    config    BenchConfig (what to measure), GateConfig (what the gate tolerates)
    ceilings  the run's measured fp32/int8 GEMM ceilings (GMAC/s fractions, the gate's yardstick)
    cells     targets, skip reasons, per-cell timing (pre / infer / post) and model facts
    quality   PSNR/SSIM vs reference / teacher / ground truth, class fidelity, FID-proxy
    run       run_bench: the matrix, then quality; returns a BenchReport
    report    BenchReport (to_dict / from_dict / save_*)
    views     flat rows, CSV / Markdown tables, speed_summary, quality_headline
    gate      compare_reports -> GateResult
    html      the self-contained HTML page (reads the views only)

The eager-PyTorch backend is skugen.backends.torch (TorchRunner). torch is imported
only by that backend and the classifier-based metrics (through skugen.export, lazily):
the runtime install benches ONNX Runtime and TensorRT without it.
"""
from __future__ import annotations

from ..backends.torch import TorchRunner
from .ceilings import ceiling_gmacs, ceiling_ms, fp32_gemm_ceiling, measure_ceilings, ort_gemm_ceiling
from .cells import resolve_model_dir
from .config import BACKENDS, FID_NAME, PRECISIONS, SCHEMA_VERSION, BenchConfig, GateConfig
from .gate import GateResult, compare_reports
from .html import render_html, write_html
from .report import BenchReport, load_report_json
from ..report import environment  # the one builder (run_bench uses probe=True, threads=...)
from .run import run_bench
from .views import CSV_FIELDS, flat_row, markdown_table, quality_headline, speed_summary

__all__ = ["BACKENDS", "CSV_FIELDS", "FID_NAME", "PRECISIONS", "SCHEMA_VERSION", "BenchConfig", "BenchReport",
           "GateConfig", "GateResult", "TorchRunner", "ceiling_gmacs", "ceiling_ms", "compare_reports", "environment",
           "flat_row", "fp32_gemm_ceiling", "load_report_json", "markdown_table", "measure_ceilings",
           "ort_gemm_ceiling", "quality_headline", "render_html", "resolve_model_dir", "run_bench",
           "speed_summary", "write_html"]

