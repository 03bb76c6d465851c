"""Views of a bench report dict: flat rows, the CSV/Markdown tables, the speed summary, the headline quality.

Pure functions of `BenchReport.to_dict()` (plain JSON); they run on a report loaded
from disk as well as on a fresh run. skugen.bench.html and skugen.bench.gate read
reports only through these.
"""
from __future__ import annotations

import math
from typing import Any

from .config import FID_NAME

# ----------------------------------------------------------------------------- flat views (CSV / Markdown)


CSV_FIELDS = ("key", "bundle", "kind", "model", "backend", "precision", "batch", "status", "reason",
              "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "pre_p50_ms", "infer_p50_ms", "post_p50_ms",
              "throughput_ips", "throughput_ips_mean", "p50_spread", "peak_rss_mb", "gpu_used_mb", "model_bytes", "params", "macs_per_image",
              "gmacs_per_s", "ceiling", "fraction_of_ceiling", "p50_over_fp32_gemm",
              "psnr_ref_db", "ssim_ref", "psnr_teacher_db", "ssim_teacher", "psnr_gt_db", "ssim_gt",
              "class_fidelity", "fid_proxy")


# Every ceiling a report may hold, in display order (skugen.bench.ceilings; the OpenVINO ones when benched).
CEILING_NAMES = ("fp32_gemm", "fp32_gemm_ort", "int8_gemm", "ov_f32_gemm", "ov_bf16_gemm", "ov_int8_gemm")
CPU_ENGINES = ("onnxruntime", "openvino")


def _g(d: Any, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _psnr_val(m: dict | None) -> float | None:
    """A PSNR dict's value, with identical outputs (inf, stored as None + value_is_inf) as inf."""
    if not isinstance(m, dict) or "value" not in m:
        return None
    if m.get("value_is_inf"):
        return math.inf
    return m["value"]


def _gpu_mb(g: Any) -> float | None:
    if not isinstance(g, dict):
        return None
    if g.get("used_mb") is not None:
        return g["used_mb"]
    b = g.get("used_by_runner_bytes")
    return b / 2**20 if b is not None else None


def flat_row(c: dict) -> dict:
    q = c.get("quality") or {}
    lat = c.get("latency_ms") or {}
    return {
        "key": c["key"], "bundle": c["bundle"], "kind": c["kind"], "model": c["model"], "backend": c["backend"],
        "precision": c["precision"], "batch": c["batch"], "status": c["status"], "reason": c.get("reason"),
        "p50_ms": _g(lat, "total", "p50"), "p90_ms": _g(lat, "total", "p90"), "p99_ms": _g(lat, "total", "p99"),
        "mean_ms": _g(lat, "total", "mean"), "min_ms": _g(lat, "total", "min"),
        "pre_p50_ms": _g(lat, "pre", "p50"), "infer_p50_ms": _g(lat, "infer", "p50"),
        "post_p50_ms": _g(lat, "post", "p50"),
        "throughput_ips": c.get("throughput_ips"), "throughput_ips_mean": c.get("throughput_ips_mean"),
        "p50_spread": c.get("p50_spread"),
        "peak_rss_mb": _g(c, "memory", "peak_rss_mb"), "gpu_used_mb": _gpu_mb(_g(c, "memory", "gpu")),
        "model_bytes": _g(c, "model_info", "bytes"), "params": _g(c, "model_info", "params"),
        "macs_per_image": _g(c, "model_info", "macs_per_image"),
        "gmacs_per_s": _g(c, "compute", "gmacs_per_s"), "ceiling": _g(c, "compute", "ceiling"),
        "fraction_of_ceiling": _g(c, "compute", "fraction_of_ceiling"),
        "p50_over_fp32_gemm": _g(c, "normalized", "p50_over_fp32_gemm"),
        "psnr_ref_db": _psnr_val(_g(q, "vs_reference", "psnr")), "ssim_ref": _g(q, "vs_reference", "ssim", "value"),
        "psnr_teacher_db": _psnr_val(_g(q, "vs_teacher", "psnr")), "ssim_teacher": _g(q, "vs_teacher", "ssim", "value"),
        "psnr_gt_db": _psnr_val(_g(q, "vs_ground_truth", "psnr")), "ssim_gt": _g(q, "vs_ground_truth", "ssim", "value"),
        "class_fidelity": _g(q, "class_fidelity", "value"), "fid_proxy": _g(q, "fid_proxy", "value"),
    }


def _fmt_csv(v: Any) -> Any:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.6g}"
    return "" if v is None else v


def _f(v: Any, fmt: str = ".2f", none: str = "–") -> str:
    if v is None:
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    try:
        return format(v, fmt)
    except (TypeError, ValueError):
        return str(v)


def quality_headline(c: dict) -> tuple[str | None, float | None]:
    """The one quality number a cell is plotted by: GT PSNR-Y (enhancer), class fidelity (generator), else ref PSNR."""
    r = flat_row(c)
    if c["kind"] == "enhancer" and r["psnr_gt_db"] is not None:
        return "PSNR-Y vs ground truth (dB)", r["psnr_gt_db"]
    if c["kind"] == "generator" and r["class_fidelity"] is not None:
        return "class fidelity", r["class_fidelity"]
    if r["psnr_ref_db"] is not None:
        return "PSNR vs bundle reference (dB)", r["psnr_ref_db"]
    return None, None


def markdown_table(rep: dict) -> str:
    """The matrix as GitHub Markdown: environment line, ceilings, one row per cell (skipped ones with reasons)."""
    env = rep.get("environment") or {}
    cpu = env.get("cpu") or {}
    v = env.get("versions") or {}
    cfg = rep.get("config") or {}
    lines = [f"# skugen bench ({rep.get('created')})", "",
             f"- command: `{' '.join(rep.get('command') or [])}`",
             f"- CPU: {cpu.get('model')} ({cpu.get('usable_cores')} usable cores; flags {', '.join(cpu.get('flags') or [])}); "
             f"GPU: {', '.join(g.get('name') or '?' for g in env.get('gpus') or []) or 'none'}",
             f"- versions: skugen {v.get('skugen')}, onnxruntime {v.get('onnxruntime')}, openvino {v.get('openvino') or '-'}, "
             f"numpy {v.get('numpy')}, "
             f"torch {v.get('torch') or '-'}, TensorRT {v.get('tensorrt') or '-'}, CUDA {v.get('cuda_toolkit') or v.get('cuda_driver') or '-'}",
             f"- threads: {cfg.get('threads_resolved')}; warmup {cfg.get('warmup')}, "
             + (f"duration {cfg.get('duration_s')} s" if cfg.get('duration_s') else f"iters {cfg.get('iters')}")
             + f", repeats {cfg.get('repeats')}"]
    if env.get("jetson_power_mode"):
        lines.append(f"- Jetson power mode: {env['jetson_power_mode'].get('mode')}")
    ce = rep.get("ceilings") or {}
    if ce:
        parts = []
        for name in [n for n in CEILING_NAMES if n in ce]:
            e = ce.get(name) or {}
            if e.get("available") is False:
                parts.append(f"{name}: unavailable ({e.get('reason')})")
                continue
            bt = e.get("by_threads") or {}
            parts.append(f"{name}: " + ", ".join(f"{k} thr {_f(x.get('gmacs_per_s'), '.1f')} GMAC/s ({_f(x.get('ms'), '.2f')} ms)"
                                                  for k, x in bt.items()))
        lines.append("- measured ceilings: " + "; ".join(parts)
                     + (f"; end-of-run drift x{ce['drift']:.2f}" if ce.get("drift") else ""))
    lines += ["", "| bundle | model | backend | prec | batch | p50 ms | p90 | p99 | pre/infer/post p50 | img/s | "
                  "peak RSS MiB | GMAC/s | % ceiling | quality |",
              "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    skipped = []
    for c in rep.get("cells") or []:
        r = flat_row(c)
        if c["status"] != "ok":
            skipped.append(c)
            lines.append(f"| {c['bundle']} | {c['model']} | {c['backend']} | {c['precision']} | {c['batch']} | "
                         f"{c['status']} | | | | | | | | see below |")
            continue
        label, val = quality_headline(c)
        qual = []
        if r["psnr_ref_db"] is not None:
            qual.append(f"ref {_f(r['psnr_ref_db'], '.1f')} dB")
        if r["psnr_teacher_db"] is not None:
            qual.append(f"teacher {_f(r['psnr_teacher_db'], '.1f')} dB")
        if r["psnr_gt_db"] is not None:
            qual.append(f"GT {_f(r['psnr_gt_db'], '.2f')} dB / SSIM {_f(r['ssim_gt'], '.3f')}")
        if r["class_fidelity"] is not None:
            qual.append(f"fidelity {_f(r['class_fidelity'], '.3f')}")
        if r["fid_proxy"] is not None:
            qual.append(f"FID-proxy {_f(r['fid_proxy'], '.2f')}")
        frac = r["fraction_of_ceiling"]
        lines.append(
            f"| {c['bundle']} | {c['model']} | {c['backend']} | {c['precision']} | {c['batch']} | "
            f"{_f(r['p50_ms'])} | {_f(r['p90_ms'])} | {_f(r['p99_ms'])} | "
            f"{_f(r['pre_p50_ms'])} / {_f(r['infer_p50_ms'])} / {_f(r['post_p50_ms'])} | {_f(r['throughput_ips'], '.1f')} | "
            f"{_f(r['peak_rss_mb'], '.0f')} | {_f(r['gmacs_per_s'], '.2f')} | "
            f"{_f(frac * 100 if frac is not None else None, '.1f')} | {'; '.join(qual) or '–'} |")
    lines += engine_comparison_markdown(rep)
    summ = rep.get("summary") or speed_summary(rep)
    srows = [(b, r) for b, v in summ.items() for r in v.get("rows", [])
             if any(x is not None for x in r["speedup"].values())]
    if srows:
        lines += ["", "Speed ratios measured in this one run (p50 per call; > 1 = faster):", "",
                  "| bundle | backend | batch | INT8 student ms | FP32 student ms | FP32 teacher (torch) ms | "
                  "INT8 vs FP32 | INT8 vs teacher | FP32 vs teacher |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for b, r in srows:
            pm, sp = r["p50_ms"], r["speedup"]
            lines.append(f"| {b} | {r['backend']} | {r['batch']} | {_f(pm['student_int8'])} | {_f(pm['student_fp32'])} | "
                         f"{_f(pm['teacher_fp32_torch'])} | {_f(sp['int8_vs_fp32'])}x | {_f(sp['int8_vs_teacher'])}x | "
                         f"{_f(sp['fp32_vs_teacher'])}x |")
        for b, v in summ.items():
            if v.get("max_p50_spread") is not None:
                lines.append(f"- {b}: largest back-to-back p50 spread {v['max_p50_spread'] * 100:.1f}% "
                             f"(`{v['max_p50_spread_cell']}`)")
    if skipped:
        lines += ["", "Cells not measured here:", ""]
        lines += [f"- `{c['key']}` {c['status']}: {c.get('reason')}" for c in skipped]
    refs = rep.get("references") or {}
    extra = []
    for name, r in refs.items():
        if not isinstance(r, dict):
            continue
        if isinstance(r.get("bicubic"), dict) and "psnr" in r["bicubic"]:
            extra.append(f"- {name}: bicubic baseline vs ground truth {_f(r['bicubic']['psnr']['value'])} dB "
                         f"{r['bicubic']['psnr']['label']}, SSIM {_f(r['bicubic']['ssim']['value'], '.4f')}")
        rr = r.get("fid_proxy_real_vs_real")
        if isinstance(rr, dict) and rr.get("value") is not None:
            extra.append(f"- {name}: {FID_NAME} real-vs-real floor at n={rr['n']}: {_f(rr['value'])}")
    if extra:
        lines += ["", "References:", ""] + extra
    conv = []
    for c in rep.get("cells") or []:
        for k in ("vs_reference", "vs_teacher", "vs_ground_truth"):
            p = _g(c, "quality", k, "psnr")
            if isinstance(p, dict) and p.get("label") and p["label"] not in conv:
                conv.append(p["label"])
    if conv:
        lines += ["", "PSNR/SSIM conventions: " + "; ".join(conv) + " (data range 255; SSIM gaussian 11x11 σ1.5)."]
    lines += [f"", f"{FID_NAME}: Fréchet distance on our own classifier's features, not Inception FID."]
    for n in rep.get("notes") or []:
        lines.append(f"- note: {n}")
    return "\n".join(lines) + "\n"


def speed_summary(rep: dict) -> dict:
    """Per bundle, backend and batch: INT8 student vs FP32 student vs FP32 teacher (eager torch), from ONE run
    (and the BF16 student's p50 where the engine ran one: OpenVINO on a native-BF16 CPU).

    Ratios are of p50 per call (pre + infer + post) and of infer alone; > 1 means the first is faster.
    Also the largest back-to-back p50 spread of the run (how much to trust a ratio near 1).
    """
    ok = [c for c in rep.get("cells", []) if c["status"] == "ok"]
    out: dict = {}
    for b in dict.fromkeys(c["bundle"] for c in ok):
        cs = [c for c in ok if c["bundle"] == b]
        ref = {c["batch"]: c for c in cs if c["backend"] == "torch" and c["precision"] == "fp32"}
        rows = []
        for be in dict.fromkeys(c["backend"] for c in cs if c["backend"] != "torch"):
            for batch in sorted({c["batch"] for c in cs}):
                get = {c["precision"]: c for c in cs if c["backend"] == be and c["batch"] == batch}
                i8, f32, bf, tch = get.get("int8"), get.get("fp32"), get.get("bf16"), ref.get(batch)

                def p(c, stage="total"):
                    return c["latency_ms"][stage]["p50"] if c else None

                def ratio(a, b_):
                    return (a / b_) if a and b_ else None

                rows.append({
                    "backend": be, "batch": batch, "torch_model": tch["model"] if tch else None,
                    "p50_ms": {"student_int8": p(i8), "student_fp32": p(f32), "student_bf16": p(bf),
                               "teacher_fp32_torch": p(tch)},
                    "speedup": {"int8_vs_fp32": ratio(p(f32), p(i8)), "int8_vs_teacher": ratio(p(tch), p(i8)),
                                "fp32_vs_teacher": ratio(p(tch), p(f32))},
                    "speedup_infer_only": {"int8_vs_fp32": ratio(p(f32, "infer"), p(i8, "infer")),
                                           "int8_vs_teacher": ratio(p(tch, "infer"), p(i8, "infer")),
                                           "fp32_vs_teacher": ratio(p(tch, "infer"), p(f32, "infer"))},
                    "images_per_s": {"student_int8": (i8 or {}).get("throughput_ips"),
                                     "student_fp32": (f32 or {}).get("throughput_ips"),
                                     "student_bf16": (bf or {}).get("throughput_ips"),
                                     "teacher_fp32_torch": (tch or {}).get("throughput_ips")}})
        spreads = [(c["p50_spread"], c["key"]) for c in cs if c.get("p50_spread") is not None]
        out[b] = {"rows": rows, "max_p50_spread": max(spreads)[0] if spreads else None,
                  "max_p50_spread_cell": max(spreads)[1] if spreads else None,
                  "note": "ratios of p50 latency measured in this one run (> 1: the first is faster)"}
    return out


def engine_comparison(rep: dict) -> list[dict]:
    """The CPU engines side by side: one row per bundle x precision x batch with each engine's p50 (ms) and
    fraction of its own runtime's ceiling, the faster engine, and the run's fastest cell per bundle x batch."""
    cells = [c for c in rep.get("cells", []) if c.get("status") == "ok" and c["backend"] in CPU_ENGINES
             and c["model"] == "student"]
    rows: dict[tuple, dict] = {}
    for c in cells:
        k = (c["bundle"], c["precision"], c["batch"])
        r = rows.setdefault(k, {"bundle": c["bundle"], "precision": c["precision"], "batch": c["batch"], "engines": {}})
        r["engines"][c["backend"]] = {"p50_ms": _g(c, "latency_ms", "total", "p50"),
                                      "infer_p50_ms": _g(c, "latency_ms", "infer", "p50"),
                                      "fraction_of_ceiling": _g(c, "compute", "fraction_of_ceiling"),
                                      "ceiling": _g(c, "compute", "ceiling")}
    out = []
    best: dict[tuple, tuple] = {}
    for k, r in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        timed = {e: v["p50_ms"] for e, v in r["engines"].items() if v["p50_ms"]}
        r["faster"] = min(timed, key=timed.get) if len(timed) > 1 else None
        if len(timed) == 2:
            r["openvino_speedup"] = timed["onnxruntime"] / timed["openvino"]
        for e, ms in timed.items():
            bk = (r["bundle"], r["batch"])
            if bk not in best or ms < best[bk][2]:
                best[bk] = (e, r["precision"], ms)
        out.append(r)
    for r in out:
        e, p, ms = best.get((r["bundle"], r["batch"]), (None, None, None))
        r["best_cell"] = f"{e}/{p} {ms:.3f} ms" if e else None
    return out


def engine_comparison_markdown(rep: dict) -> list[str]:
    rows = engine_comparison(rep)
    if not rows:
        return []
    lines = ["", "## CPU engines side by side (same run; % of each runtime's own GEMM ceiling)", "",
             "| bundle | precision | batch | ONNX Runtime ms | OpenVINO ms | ORT / OpenVINO | faster | best cell of the bundle x batch |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        def cell(e):
            v = r["engines"].get(e)
            if not v:
                return "–"
            fr = v.get("fraction_of_ceiling")
            return f"{_f(v['p50_ms'], '.3f')}" + (f" ({fr * 100:.0f}%)" if fr else "")
        lines.append(f"| {r['bundle']} | {r['precision']} | {r['batch']} | {cell('onnxruntime')} | {cell('openvino')} | "
                     f"{_f(r.get('openvino_speedup'), '.2f')} | {r['faster'] or '–'} | {r['best_cell'] or '–'} |")
    return lines
