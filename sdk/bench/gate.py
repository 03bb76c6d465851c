"""The regression gate: compare two bench reports cell by cell (`skugen bench --baseline OLD.json`).

Speed is compared as each cell's p50 divided by the SAME run's fp32-GEMM time, a
ratio measured in one run, never raw milliseconds from two runs (unless a report
has no ceilings, and then every such row says CROSS-RUN).
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import GateConfig
from .views import _f, _g, flat_row

_PSNR_CAP = 100.0  # dB; inf PSNR (identical outputs) is compared as this in the gate


@dataclass
class GateResult:
    passed: bool
    rows: list
    notes: list
    cross_run: bool

    def table(self) -> str:
        head = ("cell", "metric", "baseline", "current", "change", "limit", "verdict")
        rows = [head] + [tuple(str(r[k]) for k in ("key", "metric", "baseline", "current", "change", "limit", "verdict"))
                         for r in self.rows]
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        out = ["  ".join(x.ljust(w[i]) for i, x in enumerate(r)).rstrip() for r in rows]
        out.insert(1, "  ".join("-" * x for x in w))
        verdict = "PASS" if self.passed else "FAIL"
        n_fail = sum(r["verdict"].startswith("FAIL") for r in self.rows)
        lines = [f"regression gate: {verdict} ({n_fail} failing of {len(self.rows)} checks)"] + out
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "rows": self.rows, "notes": self.notes, "cross_run": self.cross_run}


def _quality_checks(c: dict) -> dict[str, tuple[float, str]]:
    """metric name -> (value, direction) for every gated quality number of a cell."""
    r = flat_row(c)
    out = {}
    for k in ("psnr_ref_db", "psnr_teacher_db", "psnr_gt_db"):
        if r[k] is not None:
            out[k] = (min(r[k], _PSNR_CAP), "psnr")
    for k in ("ssim_ref", "ssim_teacher", "ssim_gt"):
        if r[k] is not None:
            out[k] = (r[k], "ssim")
    if r["class_fidelity"] is not None:
        out["class_fidelity"] = (r["class_fidelity"], "fidelity")
    if r["fid_proxy"] is not None:
        out["fid_proxy"] = (r["fid_proxy"], "fid")
    return out


def compare_reports(current: dict, baseline: dict, gate: GateConfig | None = None) -> GateResult:
    """Compare two bench reports cell by cell (key = bundle|model|backend|precision|batch).

    Speed: each cell's p50 divided by its OWN run's fp32-GEMM time (`normalized.p50_over_fp32_gemm`),
    so both sides are ratios measured within one run; a different machine load cancels out to first order.
    Only when a report has no ceilings are raw milliseconds compared, and every such row says CROSS-RUN.
    Quality: PSNR may drop by max_quality_drop dB, SSIM by max_ssim_drop, class fidelity by
    max_fidelity_drop; FID-proxy may grow by max_fid_rise (x).
    """
    g = gate or GateConfig()
    cur = {c["key"]: c for c in current.get("cells", [])}
    base = {c["key"]: c for c in baseline.get("cells", [])}
    rows: list[dict] = []
    notes: list[str] = []
    cross = False
    ec, eb = (current.get("environment") or {}).get("cpu") or {}, (baseline.get("environment") or {}).get("cpu") or {}
    if ec.get("model") != eb.get("model"):
        notes.append(f"baseline ran on another CPU ({eb.get('model')!r} vs {ec.get('model')!r}); the same-run "
                     "ratios remove machine speed only to first order")
    vc, vb = (current.get("environment") or {}).get("versions") or {}, (baseline.get("environment") or {}).get("versions") or {}
    for eng in ("onnxruntime", "openvino", "tensorrt"):
        if vc.get(eng) != vb.get(eng) and any(c.get("backend") == eng for c in baseline.get("cells", [])):
            notes.append(f"{eng} version differs (baseline {vb.get(eng)}, current {vc.get(eng)}): its cells compare "
                         "two engine builds")
    tc, tb = (current.get("config") or {}).get("threads_resolved"), (baseline.get("config") or {}).get("threads_resolved")
    if tc != tb:
        notes.append(f"thread counts differ (baseline {tb}, current {tc})")

    for key, b in base.items():
        c = cur.get(key)
        if b["status"] != "ok":
            continue
        if c is None or c["status"] != "ok":
            why = "absent from this run" if c is None else f"{c['status']}: {c.get('reason')}"
            rows.append({"key": key, "metric": "-", "baseline": "ok", "current": why[:60], "change": "-", "limit": "-",
                         "verdict": "NOT COMPARED"})
            continue
        nb, nc = _g(b, "normalized", "p50_over_fp32_gemm"), _g(c, "normalized", "p50_over_fp32_gemm")
        if nb and nc:
            ratio = nc / nb
            rows.append({"key": key, "metric": "p50 / fp32-GEMM (same-run ratio)", "baseline": f"{nb:.4g}",
                         "current": f"{nc:.4g}", "change": f"x{ratio:.3f}", "limit": f"<= x{g.max_slowdown:.2f}",
                         "verdict": "FAIL slower" if ratio > g.max_slowdown else "ok"})
        else:
            cross = True
            pb, pc = _g(b, "latency_ms", "total", "p50"), _g(c, "latency_ms", "total", "p50")
            ratio = pc / pb if pb and pc else None
            why = "GPU cell" if c["backend"] == "tensorrt" else "no ceiling in one report"
            rows.append({"key": key, "metric": f"p50 ms (CROSS-RUN raw ms: {why})",
                         "baseline": _f(pb, ".3f"), "current": _f(pc, ".3f"),
                         "change": f"x{ratio:.3f}" if ratio else "-", "limit": f"<= x{g.max_slowdown:.2f}",
                         "verdict": ("FAIL slower (cross-run)" if ratio and ratio > g.max_slowdown else "ok (cross-run)")})
        qb, qc = _quality_checks(b), _quality_checks(c)
        for m, (vb, kind) in qb.items():
            if m not in qc:
                rows.append({"key": key, "metric": m, "baseline": _f(vb, ".4g"), "current": "not measured",
                             "change": "-", "limit": "-", "verdict": "NOT COMPARED"})
                continue
            vc = qc[m][0]
            if kind == "psnr":
                d, lim, bad = vc - vb, f">= -{g.max_quality_drop} dB", vc - vb < -g.max_quality_drop
                ch = f"{d:+.3f} dB"
            elif kind == "ssim":
                d, lim, bad = vc - vb, f">= -{g.max_ssim_drop}", vc - vb < -g.max_ssim_drop
                ch = f"{d:+.4f}"
            elif kind == "fidelity":
                d, lim, bad = vc - vb, f">= -{g.max_fidelity_drop}", vc - vb < -g.max_fidelity_drop
                ch = f"{d:+.4f}"
            else:
                lim = f"<= x{g.max_fid_rise} (+0.5)"
                bad = vc > vb * g.max_fid_rise + 0.5
                ch = f"x{vc / vb:.3f}" if vb else f"{vc - vb:+.3f}"
            rows.append({"key": key, "metric": m, "baseline": _f(vb, ".4g"), "current": _f(vc, ".4g"), "change": ch,
                         "limit": lim, "verdict": "FAIL worse" if bad else "ok"})
    new = [k for k, c in cur.items() if k not in base and c["status"] == "ok"]
    if new:
        notes.append(f"{len(new)} cell(s) are new (not in the baseline), not gated: {', '.join(new[:5])}"
                     + (" ..." if len(new) > 5 else ""))
    if cross:
        notes.append("CROSS-RUN: some speed rows compare raw milliseconds from two different runs (a report has no "
                     "measured ceilings); machine load between runs changes them. Re-run both with ceilings.")
    if not any(r["verdict"] not in ("NOT COMPARED",) for r in rows):
        notes.append("no cell of the baseline was measured in this run: nothing was compared")
    passed = not any(r["verdict"].startswith("FAIL") for r in rows)
    return GateResult(passed=passed, rows=rows, notes=notes, cross_run=cross)
