"""A self-contained HTML page for a `skugen bench` report (one file, no network).

    from skugen.bench import run_bench, BenchConfig, write_html
    rep = run_bench(BenchConfig(bundles=("runs/demo/bundle",), backends=("onnxruntime", "torch")))
    write_html(rep, "bench.html")          # images default to rep.samples; same as rep.save_html("bench.html")

What the page holds, all inline (images and plots are base64 data: URIs, CSS
and JS are in the page, nothing is fetched, so it opens offline and can be
mailed or attached to a CI run):
- the environment, the exact command and the measured GEMM ceilings;
- the matrix table of measured cells, then every cell that could not run here with its reason;
- a latency-vs-quality Pareto plot and a throughput-vs-batch plot (matplotlib Agg
  PNGs; when matplotlib is missing the page says so instead);
- image comparisons with the same seeds / crops in every column: generators
  teacher | student fp32 | student int8 per class, enhancers input | bicubic |
  teacher | student | ground truth;
- a rating form (1-5 per image group) whose "Download ratings" button saves a
  JSON file through a Blob URL (no server, no network).
On load, the page's script counts the decoded images and sets
`document.body.dataset.ready = "1"`, `data-images` and `data-decoded`, so a
headless browser can check the page rendered (tests/sdk/bench/test_html.py does).

It reads the report only through skugen.bench.views (a report dict in, HTML out).
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_text
from .views import CEILING_NAMES, _f, engine_comparison, flat_row, quality_headline, speed_summary

# ----------------------------------------------------------------------------- encoding helpers


def _png_data_uri(img: np.ndarray) -> str:
    """(H, W, 1|3) or (H, W) uint8 -> 'data:image/png;base64,...'."""
    from PIL import Image

    a = np.ascontiguousarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _strip(images: np.ndarray, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(k, H, W, C) uint8 -> one (H, k*(W+pad)-pad, C) row with white gaps."""
    k, h, w, c = images.shape
    out = np.full((h, k * (w + pad) - pad, c), fill, dtype=np.uint8)
    for i in range(k):
        out[:, i * (w + pad): i * (w + pad) + w] = images[i]
    return out


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(v: Any, fmt: str = ".2f") -> str:
    """The Markdown view's number format (– for None, inf), HTML-escaped."""
    return _e(_f(v, fmt))

# ----------------------------------------------------------------------------- plots


def _fig_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series_label(c: dict) -> str:
    return f"{c['model']} {c['precision']} ({c['backend']})"


def _pyplot():
    """(matplotlib.pyplot with the Agg backend, None) or (None, why the plots are omitted)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:
        return None, f"matplotlib is not installed ({e}): plots omitted. pip install matplotlib"
    return plt, None


def _bundle_panels(rep: dict, key: str, height: float):
    """(the ok cells with `key`, the figure, [(axis, bundle), ...]), one panel per bundle;
    or ([], None, why) when there is nothing to plot."""
    plt, why = _pyplot()
    if plt is None:
        return [], None, why
    ok = [c for c in rep.get("cells", []) if c["status"] == "ok" and c.get(key)]
    bundles = list(dict.fromkeys(c["bundle"] for c in ok))
    if not bundles:
        return [], None, "no measured cells to plot"
    fig, axes = plt.subplots(1, len(bundles), figsize=(6.2 * len(bundles), height), squeeze=False)
    return ok, fig, list(zip(axes[0], bundles))


def pareto_plot(rep: dict) -> tuple[str | None, str | None]:
    """Latency (per image, smallest batch) vs the cell's headline quality, one panel per bundle."""
    ok, fig, panels = _bundle_panels(rep, "latency_ms", 4.4)
    if fig is None:
        return None, panels  # why not
    for ax, b in panels:
        cs = [c for c in ok if c["bundle"] == b]
        bmin = min(c["batch"] for c in cs)
        pts = []
        ylabel = None
        for c in cs:
            if c["batch"] != bmin:
                continue
            label, q = quality_headline(c)
            if q is None:
                continue
            ylabel = label
            x = c["latency_ms"]["total"]["p50"] / c["batch"]
            pts.append((x, q, _series_label(c)))
        if not pts:
            ax.text(0.5, 0.5, "no quality measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(b)
            continue
        finite = [p[1] for p in pts if math.isfinite(p[1])]
        cap = (max(finite) + 5) if finite else 100.0
        pts = [(x, (q if math.isfinite(q) else cap), lab) for x, q, lab in pts]
        markers = "osD^vP*Xh<>"
        for i, (x, q, lab) in enumerate(pts):
            ax.scatter([x], [q], s=52, zorder=3, marker=markers[i % len(markers)], label=lab)
        # Pareto front: no other point is both faster and better.
        front = sorted(p for p in pts if not any(o[0] <= p[0] and o[1] >= p[1] and o != p for o in pts))
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#888", lw=1, ls="--",
                    label="Pareto front")
        ref = (rep.get("references") or {}).get(b) or {}
        bic = ((ref.get("bicubic") or {}).get("psnr") or {}).get("value")
        if bic is not None and ylabel and ylabel.startswith("PSNR-Y vs ground truth"):
            ax.axhline(bic, color="#c33", lw=1, ls=":", label=f"bicubic {bic:.2f} dB")
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.15)
        ax.set_xlabel(f"p50 latency per image (ms, batch {bmin}, pre+infer+post)")
        ax.set_ylabel(ylabel or "quality")
        ax.set_title(f"{b}: latency vs quality")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best", framealpha=0.85)
        ax.text(0.99, 1.01, "better: up and left", ha="right", va="bottom", fontsize=7, color="#666",
                transform=ax.transAxes)
    return _fig_uri(fig), None


def throughput_plot(rep: dict) -> tuple[str | None, str | None]:
    """Images/s vs batch size, one line per model x precision x backend, one panel per bundle."""
    ok, fig, panels = _bundle_panels(rep, "throughput_ips", 4.2)
    if fig is None:
        return None, panels  # why not
    for ax, b in panels:
        series: dict[str, list] = {}
        for c in ok:
            if c["bundle"] == b:
                series.setdefault(_series_label(c), []).append((c["batch"], c["throughput_ips"]))  # batch / p50
        for lab, pts in series.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s (batch / p50 call)")
        ax.set_title(f"{b}: throughput vs batch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _fig_uri(fig), None

# ----------------------------------------------------------------------------- sections


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f0f0f0;padding:8px;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;font-size:12px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#eee;position:sticky;top:0} td.l,th.l{text-align:left}
tr.skipped td{color:#777;background:#fbfbfb} tr.error td{color:#a00}
.meta{font-size:13px;line-height:1.5} .note{color:#666;font-size:12px}
.plot{max-width:100%;border:1px solid #ddd;background:#fff;margin:6px 0}
table.grid td,table.grid th{text-align:center;padding:4px} table.grid img{image-rendering:pixelated;display:block;margin:auto}
.rate{font-size:11px;color:#444;white-space:nowrap;margin-top:2px} .rate label{margin:0 1px}
#status{font-size:12px;color:#070} button{font-size:13px;padding:4px 10px;margin:6px 0}
"""

_JS = r"""
(function(){
  var errors = 0;
  window.addEventListener('error', function(){ errors++; document.body.dataset.jsErrors = String(errors); });
  window.addEventListener('load', function(){
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.filter(function(i){ return i.complete && i.naturalWidth > 0; }).length;
    document.body.dataset.images = String(imgs.length);
    document.body.dataset.decoded = String(ok);
    document.getElementById('status').textContent = ok + ' of ' + imgs.length + ' images decoded';
    document.body.dataset.ready = '1';
  });
  window.skugenRatings = function(){
    var groups = {}, out = [];
    document.querySelectorAll('input.rating').forEach(function(r){ groups[r.name] = groups[r.name] || null;
      if (r.checked) groups[r.name] = parseInt(r.value, 10); });
    Object.keys(groups).forEach(function(g){
      var p = g.split('::'); out.push({group: g, bundle: p[0], row: p[1], column: p[2], score: groups[g]}); });
    return {kind: 'skugen-ratings', report_created: document.body.dataset.created,
            rated_at: new Date().toISOString(), scale: '1 (bad) .. 5 (excellent)',
            rated: out.filter(function(x){ return x.score !== null; }).length, ratings: out};
  };
  window.skugenDownloadRatings = function(){
    var blob = new Blob([JSON.stringify(window.skugenRatings(), null, 2)], {type: 'application/json'});
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'skugen-ratings.json';
    document.body.appendChild(a); a.click();
    setTimeout(function(){ URL.revokeObjectURL(a.href); a.remove(); }, 0);
  };
})();
"""


def _env_section(rep: dict) -> str:
    env = rep.get("environment") or {}
    cpu = env.get("cpu") or {}
    v = env.get("versions") or {}
    gpus = ", ".join(g.get("name") or "?" for g in env.get("gpus") or []) or "none"
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    rows = [("CPU", f"{cpu.get('model')} ({cpu.get('arch')}), {cpu.get('usable_cores')} usable of "
                    f"{cpu.get('logical_cores')} cores; flags: {', '.join(cpu.get('flags') or []) or '–'}"),
            ("GPU", gpus), ("versions", vers), ("threads", env.get("threads")),
            ("load average at the end", env.get("load_average")),
            ("Jetson power mode", (env.get("jetson_power_mode") or {}).get("mode") if env.get("jetson_power_mode") else "n/a"),
            ("host / OS / Python", f"{env.get('hostname')} / {env.get('os')} / {env.get('python')}"),
            ("wall time", f"{rep.get('wall_s'):.1f} s" if rep.get("wall_s") else "–")]
    for name, ref in (rep.get("references") or {}).items():  # who signed each bundle (skugen.signing)
        if (ref or {}).get("signature"):
            rows.append((f"bundle {name}", ref["signature"].get("summary") or ref["signature"].get("status")))
    out = ['<div class="meta"><table>']
    out += [f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(val)}</td></tr>' for k, val in rows]
    out.append("</table></div>")
    out.append(f"<h3>Command</h3><pre>{_e(' '.join(rep.get('command') or []))}</pre>")
    ce = rep.get("ceilings") or {}
    if ce:
        out.append("<h3>Measured ceilings (same machine, same run)</h3><table><tr><th class='l'>GEMM</th>"
                   "<th>threads</th><th>ms</th><th>GMAC/s</th></tr>")
        for name in (*[n for n in CEILING_NAMES if n in ce], "fp32_gemm_end"):
            e = ce.get(name)
            if not e:
                continue
            if e.get("available") is False:
                out.append(f"<tr><td class='l'>{_e(name)}</td><td class='l' colspan=3>unavailable: {_e(e.get('reason'))}</td></tr>")
                continue
            for t, x in (e.get("by_threads") or {}).items():
                out.append(f"<tr><td class='l'>{_e(name)}: {_e(e.get('what'))}</td><td>{_e(t)}</td>"
                           f"<td>{_num(x.get('ms'), '.3f')}</td><td>{_num(x.get('gmacs_per_s'), '.1f')}</td></tr>")
        out.append("</table>")
        out.append(f"<p class='note'>{_e(ce.get('note'))}"
                   + (f" End-of-run fp32 GEMM drift: x{ce['drift']:.2f}." if ce.get("drift") else "") + "</p>")
    else:
        out.append("<p class='note'>No ceilings were measured in this run (--no-ceilings).</p>")
    return "\n".join(out)


def _matrix_section(rep: dict) -> str:
    head = ["bundle", "model", "backend", "prec", "batch", "status", "p50 ms", "p90", "p99", "pre p50", "infer p50",
            "post p50", "img/s", "peak RSS MiB", "size KB", "GMAC/s", "% ceiling", "PSNR ref dB", "PSNR teacher dB",
            "PSNR-Y GT dB", "SSIM-Y GT", "class fidelity", "FID-proxy", "reason / note"]
    out = ['<div style="overflow-x:auto"><table id="matrix"><tr>'
           + "".join(f'<th class="{"l" if i < 6 or i == len(head) - 1 else ""}">{_e(h)}</th>' for i, h in enumerate(head))
           + "</tr>"]
    cells = rep.get("cells") or []
    for c in cells:
        if c["status"] == "skipped":
            continue
        r = flat_row(c)
        frac = r["fraction_of_ceiling"]
        vals = [r["p50_ms"], r["p90_ms"], r["p99_ms"], r["pre_p50_ms"], r["infer_p50_ms"], r["post_p50_ms"]]
        tds = [f"<td class='l'>{_e(x)}</td>" for x in (c["bundle"], c["model"], c["backend"], c["precision"])]
        tds.append(f"<td>{c['batch']}</td><td class='l'>{_e(c['status'])}</td>")
        tds += [f"<td>{_num(v)}</td>" for v in vals]
        tds += [f"<td>{_num(r['throughput_ips'], '.1f')}</td>", f"<td>{_num(r['peak_rss_mb'], '.0f')}</td>",
                f"<td>{_num(r['model_bytes'] / 1024 if r['model_bytes'] else None, '.0f')}</td>",
                f"<td>{_num(r['gmacs_per_s'])}</td>",
                f"<td>{_num(frac * 100 if frac is not None else None, '.1f')}</td>",
                f"<td>{_num(r['psnr_ref_db'], '.1f')}</td>", f"<td>{_num(r['psnr_teacher_db'], '.1f')}</td>",
                f"<td>{_num(r['psnr_gt_db'])}</td>", f"<td>{_num(r['ssim_gt'], '.4f')}</td>",
                f"<td>{_num(r['class_fidelity'], '.3f')}</td>", f"<td>{_num(r['fid_proxy'])}</td>",
                f"<td class='l'>{_e(c.get('reason') or '')}</td>"]
        out.append(f"<tr class='{_e(c['status'])}'>" + "".join(tds) + "</tr>")
    out.append("</table></div>")
    # Cells that cannot run here, grouped (one row per bundle/model/backend/precision, batches listed).
    groups: dict[tuple, list] = {}
    for c in cells:
        if c["status"] == "skipped":
            groups.setdefault((c["bundle"], c["model"], c["backend"], c["precision"], c.get("reason")), []).append(c["batch"])
    if groups:
        out.append("<h3>Not measured here (listed, not dropped)</h3><table id='skipped'><tr><th class='l'>bundle</th>"
                   "<th class='l'>model</th><th class='l'>backend</th><th class='l'>prec</th><th class='l'>batches</th>"
                   "<th class='l'>reason</th></tr>")
        for (b, m, be, p, why), batches in groups.items():
            out.append(f"<tr class='skipped'><td class='l'>{_e(b)}</td><td class='l'>{_e(m)}</td><td class='l'>{_e(be)}</td>"
                       f"<td class='l'>{_e(p)}</td><td class='l'>{_e(', '.join(map(str, batches)))}</td>"
                       f"<td class='l' style='max-width:720px'>{_e(why)}</td></tr>")
        out.append("</table>")
    convs = []
    for c in rep.get("cells") or []:
        for k in ("vs_reference", "vs_teacher", "vs_ground_truth"):
            p = ((c.get("quality") or {}).get(k) or {}).get("psnr")
            if isinstance(p, dict) and p.get("label"):
                s = f"{k}: {p['label']} vs {(c['quality'][k] or {}).get('reference')}"
                if s not in convs:
                    convs.append(s)
    if convs:
        out.append("<p class='note'>Quality conventions (BasicSR: data range 255, SSIM 11x11 Gaussian σ=1.5): "
                   + "; ".join(_e(x) for x in convs) + ". FID-proxy = Fréchet distance on the fmnist-classifier's "
                   "penultimate features, not Inception FID.</p>")
    for n in rep.get("notes") or []:
        out.append(f"<p class='note'>note: {_e(n)}</p>")
    return "\n".join(out)


def _engines_section(rep: dict) -> str:
    """ONNX Runtime and OpenVINO side by side per bundle x precision x batch (views.engine_comparison)."""
    rows = engine_comparison(rep)
    if not rows:
        return "<p class='note'>Only one CPU engine was benched (add --backends onnxruntime,openvino).</p>"
    out = ["<table><tr><th class='l'>bundle</th><th>precision</th><th>batch</th><th>ONNX Runtime p50 ms "
           "(% of ORT ceiling)</th><th>OpenVINO p50 ms (% of OpenVINO ceiling)</th><th>ORT / OpenVINO</th>"
           "<th class='l'>faster</th><th class='l'>best cell (bundle x batch)</th></tr>"]
    for r in rows:
        tds = []
        for e in ("onnxruntime", "openvino"):
            v = r["engines"].get(e)
            fr = (v or {}).get("fraction_of_ceiling")
            tds.append(f"<td>{_num(v['p50_ms'], '.3f')}{f' ({fr * 100:.0f}%)' if fr else ''}</td>" if v else "<td>–</td>")
        out.append(f"<tr><td class='l'>{_e(r['bundle'])}</td><td>{_e(r['precision'])}</td><td>{r['batch']}</td>"
                   f"{''.join(tds)}<td>{_num(r.get('openvino_speedup'), '.2f')}</td>"
                   f"<td class='l'>{_e(r['faster'] or '–')}</td><td class='l'>{_e(r['best_cell'] or '–')}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _summary_section(rep: dict) -> str:
    summ = rep.get("summary") or speed_summary(rep)
    rows = [(b, r) for b, v in summ.items() for r in v.get("rows", [])
            if any(x is not None for x in r["speedup"].values())]
    if not rows:
        return "<p class='note'>No INT8 / FP32 / teacher pair was measured in this run.</p>"
    out = ["<table><tr><th class='l'>bundle</th><th class='l'>backend</th><th>batch</th><th>INT8 student ms</th>"
           "<th>FP32 student ms</th><th>FP32 teacher (torch) ms</th><th>INT8 vs FP32</th><th>INT8 vs teacher</th>"
           "<th>FP32 vs teacher</th></tr>"]
    for b, r in rows:
        pm, sp = r["p50_ms"], r["speedup"]
        out.append(f"<tr><td class='l'>{_e(b)}</td><td class='l'>{_e(r['backend'])}</td><td>{r['batch']}</td>"
                   f"<td>{_num(pm['student_int8'])}</td><td>{_num(pm['student_fp32'])}</td>"
                   f"<td>{_num(pm['teacher_fp32_torch'])}</td><td>{_num(sp['int8_vs_fp32'])}x</td>"
                   f"<td>{_num(sp['int8_vs_teacher'])}x</td><td>{_num(sp['fp32_vs_teacher'])}x</td></tr>")
    out.append("</table><p class='note'>p50 per call (pre + infer + post), all measured in this one run; "
               "&gt; 1 means the first is faster.")
    for b, v in summ.items():
        if v.get("max_p50_spread") is not None:
            out.append(f" {_e(b)}: largest back-to-back p50 spread {v['max_p50_spread'] * 100:.1f}%.")
    out.append("</p>")
    return "\n".join(out)


def _rating(group: str) -> str:
    name = _e(group)
    radios = "".join(f'<label><input type="radio" class="rating" name="{name}" value="{i}">{i}</label>'
                     for i in range(1, 6))
    return f'<div class="rate">rate: {radios}</div>'


def _images_section(rep: dict, images: dict | None) -> str:
    if not images:
        return ("<p class='note'>No images in this report (it was loaded from JSON, or quality was not measured). "
                "Re-run <code>skugen bench ... --html OUT</code> to include them.</p>")
    out = []
    for bundle, s in images.items():
        cols: dict = s.get("columns") or {}
        rows = s.get("rows") or []
        if not cols:
            continue
        out.append(f"<h3>{_e(bundle)} ({_e(s.get('kind'))})</h3>")
        if s.get("seeds"):
            out.append(f"<p class='note'>{_e(s['seeds'])}</p>")
        if s.get("source"):
            out.append(f"<p class='note'>inputs: {_e(s['source'])}</p>")
        out.append("<div style='overflow-x:auto'><table class='grid'><tr><th class='l'>"
                   + ("class" if s.get("kind") == "generator" else "crop") + "</th>"
                   + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>")
        for i, row in enumerate(rows):
            tds = [f"<td class='l'>{_e(row)}</td>"]
            for label, arr in cols.items():
                a = np.asarray(arr)
                if i >= len(a):
                    tds.append("<td>–</td>")
                    continue
                if s.get("kind") == "generator":
                    img = _strip(a[i])                      # (H, k*(W+2)-2, C): k samples of this class
                    width = img.shape[1] * 2                # 2x: 32 px products are tiny on screen
                else:
                    img = a[i]
                    width = 192 if img.shape[1] < 192 else min(img.shape[1], 256)
                rate = "" if label.startswith(("input", "ground truth")) else _rating(f"{bundle}::{row}::{label}")
                tds.append(f"<td><img alt='{_e(label)} {_e(row)}' width='{width}' src='{_png_data_uri(img)}'>{rate}</td>")
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</table></div>")
    out.append("<p><button type='button' onclick='skugenDownloadRatings()'>Download ratings</button> "
               "<span class='note'>saves skugen-ratings.json locally (nothing is sent anywhere)</span></p>")
    return "\n".join(out)


def render_html(report: Any, images: dict | None = None, title: str | None = None) -> str:
    """The page as a string. `report`: a BenchReport or its to_dict(); `images`: default report.samples."""
    rep = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    if images is None:
        images = getattr(report, "samples", None) or {}
    title = title or f"skugen bench — {', '.join(dict.fromkeys(c['bundle'] for c in rep.get('cells', [])))}"
    plots = []
    for name, fn in (("Latency vs quality (Pareto)", pareto_plot), ("Throughput vs batch", throughput_plot)):
        uri, why = fn(rep)
        plots.append(f"<h3>{_e(name)}</h3>" + (f"<img class='plot' alt='{_e(name)}' src='{uri}'>" if uri
                                               else f"<p class='note'>{_e(why)}</p>"))
    n_ok = sum(c["status"] == "ok" for c in rep.get("cells", []))
    n_all = len(rep.get("cells", []))
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<div class='meta'>created {_e(rep.get('created'))} · skugen {_e(rep.get('skugen_version'))} · "
        f"schema {_e(rep.get('schema_version'))} · {n_ok} of {n_all} cells measured · <span id='status'>"
        "loading…</span></div>",
        "<h2>Speed ratios (same run)</h2>", _summary_section(rep),
        "<h2>CPU engines side by side</h2>", _engines_section(rep),
        "<h2>Plots</h2>", *plots,
        "<h2>Matrix</h2>", _matrix_section(rep),
        "<h2>Images (same seeds in every column) and ratings</h2>", _images_section(rep, images),
        "<h2>Environment</h2>", _env_section(rep),
    ]
    return page(title, "\n".join(body), rep.get("created"))


def page(title: str, body: str, created: str | None = None) -> str:
    """A self-contained report page: no network (CSP), the shared style and the rating/download script."""
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data: blob:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body data-created='{_e(created)}'>\n" + body + f"\n<script>{_JS}</script>\n</body></html>\n")


def write_html(report: Any, out: str | os.PathLike, images: dict | None = None, title: str | None = None) -> Path:
    """Write the self-contained report page atomically; returns its path."""
    return atomic_write_text(out, render_html(report, images=images, title=title))
