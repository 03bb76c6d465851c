#!/usr/bin/env python3
"""Regenerate benchmarks/results/: one `skugen bench` run per suite in benchmarks/suite.json.

    python benchmarks/run_suite.py                       # the committed results (real students + zoo teachers)
    python benchmarks/run_suite.py --bundle fmnist-cgan=runs/demo/bundle --only fmnist-cgan
    python benchmarks/run_suite.py --quick --out /tmp/suite \\
        --bundle fmnist-cgan=PATH --teacher fmnist-cgan=MODEL_DIR --bundle grocery-sr2x=PATH --teacher grocery-sr2x=DIR

For every suite it writes NAME.json (the full report: environment, exact command,
config, ceilings, every cell), NAME.csv, NAME.md and NAME.html (self-contained),
then summary.json + summary.md with, per suite and batch, the INT8 student vs FP32
student vs FP32 teacher (eager PyTorch) latency ratios -- all three measured in the
SAME run, so machine load affects them alike -- and the p50 spread of two
back-to-back runs of one cell (`repeats: 2`), which says how much of a ratio near 1
is noise. All logic lives in skugen.bench; this script only reads the suite file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            sys.exit(f"run_suite: {what} {it!r} must be NAME=PATH (e.g. fmnist-cgan=runs/demo/bundle)")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _path(p: str | None) -> str | None:
    if p is None or p.lower() == "none":
        return None
    q = Path(p)
    return str(q if q.is_absolute() else (Path.cwd() / q if (Path.cwd() / q).exists() else ROOT / q))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default=str(ROOT / "benchmarks" / "suite.json"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder (default benchmarks/results)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these suites (repeatable)")
    p.add_argument("--bundle", action="append", default=[], metavar="NAME=PATH", help="override a suite's bundle")
    p.add_argument("--teacher", action="append", default=[], metavar="NAME=PATH",
                   help="override a suite's teacher (NAME=none: no teacher; the torch backend then runs the bundle's source)")
    p.add_argument("--classifier", default=None, help="classifier model dir for class fidelity / FID-proxy "
                                                      "(default: export/zoo/fmnist-classifier)")
    p.add_argument("--backends", default=None, help="override every suite's backends, e.g. onnxruntime,tensorrt,torch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny iteration counts (never commit its numbers)")
    p.add_argument("--no-html", action="store_true")
    return p.parse_args(argv)


def build_configs(args, suite: dict):
    from skugen.bench import BenchConfig

    bundles, teachers = _pairs(args.bundle, "--bundle"), _pairs(args.teacher, "--teacher")
    names = [s["name"] for s in suite["suites"]]
    for n in list(bundles) + list(teachers) + args.only:
        if n not in names:
            sys.exit(f"run_suite: no suite named {n!r} in {args.suite} (have {', '.join(names)})")
    base = dict(suite.get("defaults", {}))
    if args.quick:
        base.update({k: v for k, v in suite.get("quick", {}).items() if k != "why"})
    out = []
    for s in suite["suites"]:
        if args.only and s["name"] not in args.only:
            continue
        kw = {**base, **{k: v for k, v in s.items() if k in ("warmup", "iters", "repeats", "threads", "tile",
                                                             "quality_n", "ceiling_size", "seed")}}
        if args.quick:  # quick settings win over the suite's own counts
            kw.update({k: v for k, v in suite.get("quick", {}).items() if k != "why"})
        bundle = _path(bundles.get(s["name"], s["bundle"]))
        teacher = _path(teachers.get(s["name"], s.get("teacher")))
        if not bundle or not (Path(bundle) / "manifest.json").is_file():
            sys.exit(f"run_suite: bundle for {s['name']!r} not found at {bundle}. Build it (`skugen pipeline --model "
                     f"{s['name']} --out runs/students/{s['name']}-student --preset full`) or pass "
                     f"--bundle {s['name']}=PATH.")
        cfg = BenchConfig(
            bundles=(bundle,), teachers=(teacher,) if teacher else (),
            backends=tuple(args.backends.split(",")) if args.backends else tuple(s["backends"]),
            precisions=tuple(s["precisions"]), batches=tuple(s["batches"]),
            warmup=int(kw.get("warmup", 10)), iters=int(args.iters or kw.get("iters", 100)),
            repeats=int(kw.get("repeats", 2)), threads=args.threads or kw.get("threads"),
            tile=kw.get("tile"), quality_n=kw.get("quality_n"), classifier=_path(args.classifier),
            ceiling_size=int(kw.get("ceiling_size", 1024)), seed=int(kw.get("seed", 0)))
        out.append((s, cfg.check()))
    return out


def spread_of(rep, s: dict) -> dict | None:
    """The p50s of the two back-to-back runs of the suite's spread cell, and their relative spread."""
    want = s.get("spread_cell") or {}
    for c in rep.cells:
        if c["status"] == "ok" and c["model"] == "student" and all(c[k] == v for k, v in want.items()):
            return {"cell": c["key"], "p50_runs_ms": c["p50_runs_ms"], "spread": c["p50_spread"]}
    return None


def _f(v, fmt=".2f"):
    return "–" if v is None else format(v, fmt)


def best_cells(rows: list[dict], precisions: tuple[str, ...] = ("int8", "fp32")) -> dict:
    """batch -> the fastest student cell of any CPU engine, with its ratios to ORT FP32 and to the torch teacher.

    Only `precisions` compete: the ones the bundle's gates accepted (`gated_precisions`). The bench times bf16
    wherever it is native, but a bf16 cell is a candidate only when the exporter's BF16 gate accepted it."""
    out = {}
    for b in sorted({r["batch"] for r in rows}):
        at = [r for r in rows if r["batch"] == b]
        ort32 = next((r["p50_ms"]["student_fp32"] for r in at if r["backend"] == "onnxruntime"), None)
        tch = next((r["p50_ms"]["teacher_fp32_torch"] for r in at if r["p50_ms"]["teacher_fp32_torch"]), None)
        cands = [(r["p50_ms"][f"student_{p}"], f"{r['backend']} {p.upper()}") for r in at
                 for p in precisions if r["p50_ms"].get(f"student_{p}")]
        if cands:
            ms, cell = min(cands)
            out[b] = {"cell": cell, "ms": ms, "vs_ort_fp32": ort32 / ms if ort32 else None,
                      "vs_teacher": tch / ms if tch else None}
    return out


def gated_precisions(bundle_path: str) -> tuple[tuple[str, ...], str | None]:
    """(the precisions whose cells may be "best": int8/fp32 as shipped, bf16 when its gate accepted it, why not bf16)."""
    from skugen.bundle import load_bundle
    from skugen.tune import bf16_gate

    b = load_bundle(bundle_path)
    precs = tuple(p for p in ("int8", "fp32") if p in b.precisions)
    ok, why = bf16_gate(b)
    return (precs + ("bf16",) if ok else precs), (None if ok else why)


def summary_md(results: list[dict], env: dict) -> str:
    cpu = env.get("cpu") or {}
    v = env.get("versions") or {}
    lines = ["# skugen benchmark suite — summary", "",
             f"Machine: {cpu.get('model')}, {cpu.get('usable_cores')} cores, flags {', '.join(cpu.get('flags') or [])}; "
             f"GPU: {', '.join(g.get('name') or '?' for g in env.get('gpus') or []) or 'none'}; "
             f"onnxruntime {v.get('onnxruntime')}, torch {v.get('torch')}, numpy {v.get('numpy')}, "
             f"OpenVINO {v.get('openvino') or '-'}, TensorRT {v.get('tensorrt') or '-'}.", "",
             "Ratios are p50 latency per call (pre + infer + post) of cells measured in the SAME run; > 1 means "
             "the first is faster.", ""]
    for r in results:
        lines += [f"## {r['name']}", "", r.get("what", ""), "",
                  f"Command: `{' '.join(r['command'])}`  ", f"Files: {', '.join(r['files'])}", "",
                  "| backend | batch | INT8 student ms | FP32 student ms | BF16 student ms | FP32 teacher (torch) ms | "
                  "INT8 vs FP32 | INT8 vs teacher | FP32 vs teacher |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["ratios"]:
            pm, sp = row["p50_ms"], row["speedup"]
            lines.append(f"| {row['backend']} | {row['batch']} | {_f(pm['student_int8'])} | {_f(pm['student_fp32'])} | "
                         f"{_f(pm.get('student_bf16'))} | "
                         f"{_f(pm['teacher_fp32_torch'])} | {_f(sp['int8_vs_fp32'])}x | {_f(sp['int8_vs_teacher'])}x | "
                         f"{_f(sp['fp32_vs_teacher'])}x |")
        gp = r.get("gated_precisions") or ["int8", "fp32"]
        lines += ["", f"Best CPU cell per batch (any engine; precisions the bundle's gates accepted: {', '.join(gp)}"
                      + (f"; bf16 not a candidate: {r['bf16_not_gated']}" if r.get("bf16_not_gated") else "")
                      + ") against the FP32 student on ONNX Runtime and the FP32 teacher in eager PyTorch, same run:", "",
                  "| batch | best cell | ms | vs FP32 student (ORT) | vs teacher (torch) |", "|---:|---|---:|---:|---:|"]
        for b, best in best_cells(r["ratios"], tuple(gp)).items():
            lines.append(f"| {b} | {best['cell']} | {_f(best['ms'])} | {_f(best['vs_ort_fp32'])}x | "
                         f"{_f(best['vs_teacher'])}x |")
        sp = r.get("spread")
        if sp:
            lines += ["", f"Back-to-back p50 of `{sp['cell']}`: {', '.join(_f(x, '.3f') for x in sp['p50_runs_ms'])} ms "
                          f"(spread {_f(sp['spread'] * 100 if sp['spread'] is not None else None, '.1f')}%)."]
        if r.get("max_spread") is not None:
            lines.append(f"Largest back-to-back p50 spread of any cell: {r['max_spread'] * 100:.1f}%.")
        if r.get("quality"):
            lines += ["", "Quality (same inputs in every cell):", ""]
            lines += [f"- {k}: {q}" for k, q in r["quality"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from skugen.bench import quality_headline, run_bench
    from skugen.errors import SkugenError
    from skugen.io import atomic_write_json, atomic_write_text

    suite = json.loads(Path(args.suite).read_text())
    configs = build_configs(args, suite)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, env = [], {}
    t0 = time.time()
    for s, cfg in configs:
        print(f"== {s['name']}: {cfg.bundles[0]} (teacher {cfg.teachers[0] if cfg.teachers else 'bundle source'})",
              file=sys.stderr)
        argv_eq = ["python", "benchmarks/run_suite.py", *(argv if argv is not None else sys.argv[1:])]
        try:
            rep = run_bench(cfg, argv=argv_eq)
        except SkugenError as e:
            print(f"run_suite: {s['name']}: {e}", file=sys.stderr)
            return 2
        stem = out / s["name"]
        rep.save_json(stem.with_suffix(".json"))
        rep.save_csv(stem.with_suffix(".csv"))
        rep.save_md(stem.with_suffix(".md"))
        files = [f"{s['name']}.json", f"{s['name']}.csv", f"{s['name']}.md"]
        if not args.no_html:
            rep.save_html(stem.with_suffix(".html"))
            files.append(f"{s['name']}.html")
        env = rep.environment
        bsum = next(iter(rep.summary.values()), {})
        gated, no_bf16 = gated_precisions(cfg.bundles[0])
        qual = {}
        for c in rep.ok_cells():
            if c["batch"] == min(cfg.batches):
                label, val = quality_headline(c)
                if label:
                    qual[f"{c['model']} {c['precision']} ({c['backend']})"] = f"{label} {_f(val, '.3f')}"
        results.append({"name": s["name"], "what": s.get("what"), "bundle": cfg.bundles[0],
                        "teacher": cfg.teachers[0] if cfg.teachers else None, "command": argv_eq, "files": files,
                        "ratios": bsum.get("rows", []), "gated_precisions": list(gated), "bf16_not_gated": no_bf16,
                        "best": best_cells(bsum.get("rows", []), gated),
                        "spread": spread_of(rep, s),
                        "max_spread": bsum.get("max_p50_spread"), "quality": qual, "wall_s": rep.wall_s})
        print(rep.to_markdown(), file=sys.stderr)
    summary = {"schema_version": 1, "kind": "bench-suite", "suite": str(args.suite), "quick": args.quick,
               "environment": env, "results": results, "wall_s": time.time() - t0}
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_md(results, env))
    print(summary_md(results, env))
    print(f"wrote {out}/ ({', '.join(f for r in results for f in r['files'])}, summary.json, summary.md)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
