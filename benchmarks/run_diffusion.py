#!/usr/bin/env python3
"""Regenerate benchmarks/results/fmnist-diffusion.*: the diffusion student's `generate` end to end per CPU engine x
precision beside the teacher (eager PyTorch FP32, its own default 32 steps with guidance), one run.

    skugen export fmnist-diffusion-student --out runs/students/fmnist-diffusion-student/bundle --int8
    python benchmarks/run_diffusion.py                                   # the committed results
    python benchmarks/run_diffusion.py --bundle PATH --teacher MODEL_DIR --quick --out /tmp/d

Writes NAME.json (environment, command, config, every cell, the teacher), NAME.md (the table and the speed-up
of the best cell) and NAME.html (the table and teacher / student grids for the same prompts and seeds, with
ratings). All measuring lives in skugen.export.diffusion_bench; this script only picks the settings and writes
the files. The one-graph families' suite is benchmarks/run_suite.py (skugen bench does not take diffusion).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "fmnist-diffusion"
BUNDLE = "runs/students/fmnist-diffusion-student/bundle"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(ROOT / BUNDLE))
    p.add_argument("--teacher", default="fmnist-diffusion", help="zoo name or model dir of the teacher")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=8, help="prompts per generate() call (default 8)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--teacher-iters", type=int, default=5)
    p.add_argument("--quality-n", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny counts (never commit its numbers)")
    return p.parse_args(argv)


def _f(v, fmt=".1f"):
    return "–" if v is None else format(v, fmt)


def to_markdown(rep: dict, command: list[str]) -> str:
    env = rep["environment"]
    cpu = env.get("cpu") or {}
    v = env.get("versions") or {}
    t = rep.get("teacher")
    lines = [f"# {NAME}: text-to-image `generate`, end to end", "",
             f"Machine: {cpu.get('model')}, {cpu.get('usable_cores')} cores, flags {', '.join(cpu.get('flags') or [])}; "
             f"onnxruntime {v.get('onnxruntime')}, OpenVINO {v.get('openvino') or '-'}, torch {v.get('torch')}.", "",
             f"Command: `{' '.join(command)}`", "",
             f"One call = {rep['config']['batch']} held-in prompts (text encoder + every denoiser step + post). p50 over "
             f"{rep['config']['iters']} calls (teacher: {rep['config']['teacher_iters']}), all in ONE run. Quality: "
             f"{rep['prompts']['quality']}, same noise in every column ({rep['fid_name']}).", "",
             "| model | engine | precision | steps | p50 ms / call | denoise loop ms | per step ms | class fidelity | "
             "FID-proxy | vs teacher |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in rep["cells"] + ([t] if t else []):
        if c["status"] != "ok":
            lines.append(f"| {c['model']} | {c['engine']} | {c['precision']} | skipped: {c.get('reason', '')[:120]} "
                         "| | | | | | |")
            continue
        ratio = t["p50_ms"] / c["p50_ms"] if t else None
        lines.append(f"| {c['model']} | {c['engine']} | {c['precision']} | {c['steps']} | {_f(c['p50_ms'])} | "
                     f"{_f(c.get('denoise_p50_ms'))} | {_f(c.get('per_step_ms'), '.2f')} | "
                     f"{100 * c['class_fidelity']:.1f}% | {c['fid_proxy']:.2f} | {_f(ratio, '.1f')}x |")
    s = rep.get("summary") or {}
    if s:
        lines += ["", f"**Best cell: {s['best_cell']}, {s['speedup_vs_teacher']:.1f}x the teacher** "
                      f"({_f(s['best_p50_ms'])} vs {_f(s['teacher_p50_ms'])} ms per call); class fidelity "
                      f"{s['fidelity_delta_pts']:+.1f} pts vs the teacher, FID-proxy {s['fid_ratio_vs_teacher']:.2f}x "
                      "the teacher's."]
    if t:
        lines += ["", f"The teacher samples {t['steps']} Euler steps with guidance {t['guidance']:g} "
                      f"({t['denoiser_rows_per_prompt']} denoiser rows per prompt and step); the student "
                      "8 steps with the guidance distilled in (1 row)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from skugen.errors import SkugenError
    from skugen.export.diffusion_bench import DiffusionBenchConfig, run_diffusion_bench, save
    from skugen.io import atomic_write_text

    if not (Path(args.bundle) / "manifest.json").is_file():
        sys.exit(f"run_diffusion: no bundle at {args.bundle}. Build it: skugen export fmnist-diffusion-student "
                 f"--out {BUNDLE} --int8")
    quick = dict(iters=2, teacher_iters=1, quality_n=20, grid_prompts=4, batch=2) if args.quick else {}
    cfg = DiffusionBenchConfig(bundle=args.bundle, teacher=args.teacher, threads=args.threads,
                               **{"batch": args.batch, "iters": args.iters, "teacher_iters": args.teacher_iters,
                                  "quality_n": args.quality_n, **quick})
    command = ["python", "benchmarks/run_diffusion.py", *(argv if argv is not None else sys.argv[1:])]
    t0 = time.time()
    try:
        rep = run_diffusion_bench(cfg)
    except SkugenError as e:
        print(f"run_diffusion: {e}", file=sys.stderr)
        return 2
    rep["command"], rep["wall_s"] = command, time.time() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save(rep, out / f"{NAME}.json", out / f"{NAME}.html")
    md = to_markdown(rep, command)
    atomic_write_text(out / f"{NAME}.md", md)
    print(md)
    print(f"wrote {out}/{NAME}.json, .md, .html in {rep['wall_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
