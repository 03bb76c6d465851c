#!/usr/bin/env python3
"""Print the README's "Shipped students" speed table from the committed suite output (never hand-edit numbers).

    python benchmarks/readme_speed.py [--results benchmarks/results]

Reads results/summary.json (the best cell per suite and batch, with its ratios to the ORT FP32 student and the
eager FP32 teacher, all from ONE run) and each suite's NAME.json (which file the best cell ran, and its fraction
of the same engine's GEMM ceiling at that precision).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}


def _label(name: str, cfg: dict) -> str:
    if name.startswith("grocery-sr2x"):
        t = cfg.get("tile") or 128
        return f"SR, {t}×{t} → {2 * t}×{2 * t} tile"
    return "cGAN" if name.startswith("fmnist-cgan") else name


def _cell(rep: dict, backend: str, precision: str, batch: int) -> dict | None:
    return next((c for c in rep["cells"] if c["status"] == "ok" and c["model"] == "student"
                 and c["backend"] == backend and c["precision"] == precision and c["batch"] == batch), None)


def rows(results_dir: Path) -> list[str]:
    summ = json.loads((results_dir / "summary.json").read_text())
    out = ["| model | batch | best CPU cell | best | FP32 student (ORT) | FP32 teacher (eager PyTorch) | "
           "best vs FP32 student | best vs teacher | best cell, % of its engine's ceiling |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in summ["results"]:
        rep = json.loads((results_dir / f"{r['name']}.json").read_text())
        label = _label(r["name"], rep.get("config") or {})
        for batch, best in r["best"].items():
            b = int(batch)
            backend, prec = best["cell"].split()
            c = _cell(rep, backend, prec.lower(), b) or {}
            src = (c.get("runner") or {}).get("model_source") or ""
            what = f"{ENGINE.get(backend, backend)} {prec}"
            if backend == "openvino" and prec == "INT8":
                what += " (own IR)" if "OpenVINO IR variant" in src else " (Q/DQ ONNX)"
            row = next(x for x in r["ratios"] if x["batch"] == b and x["backend"] == "onnxruntime")
            comp = c.get("compute") or {}
            frac = comp.get("fraction_of_ceiling")
            ceil = f"{frac * 100:.0f}% of {comp.get('ceiling')}" if frac is not None else "–"
            f = lambda v, s="": "–" if v is None else f"{v:.2f}{s}"  # noqa: E731
            out.append(f"| {label} | {b} | {what} | {f(best['ms'], ' ms')} | {f(row['p50_ms']['student_fp32'], ' ms')} | "
                       f"{f(row['p50_ms']['teacher_fp32_torch'], ' ms')} | {f(best['vs_ort_fp32'], '×')} | "
                       f"{f(best['vs_teacher'], '×')} | {ceil} |")
            if label.startswith("SR"):  # the README names the tile once
                label = "SR, same tile"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    print("\n".join(rows(Path(ap.parse_args().results))))


if __name__ == "__main__":
    main()
