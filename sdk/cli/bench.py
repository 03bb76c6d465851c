"""`skugen bench` argument parsing. No logic: it builds BenchConfig/GateConfig,
calls run_bench / compare_reports, prints and saves the report.
"""
from __future__ import annotations

import sys

from ..bench.config import BACKENDS, BenchConfig, GateConfig
from ..bench.gate import compare_reports
from ..bench.report import BenchReport, check_report_dict, load_report_json
from ..bench.run import run_bench
from ..errors import InputError
from ._common import add_threads, command, integer, number


def _csv_list(s: str, cast=str) -> tuple:
    try:
        return tuple(cast(x.strip()) for x in s.split(",") if x.strip())
    except ValueError as e:
        raise InputError(f"cannot parse {s!r} as a comma-separated list ({e}). Example: --batch 1,8,32") from e


def add_bench(sub) -> None:
    p = command(
        sub, "bench", "benchmark bundles over backend x precision x batch (latency, throughput, memory, quality)",
        "Benchmark bundles: latency p50/p90/p99 split into pre/infer/post, throughput, peak memory, "
        "GMAC/s against measured GEMM ceilings, and quality (PSNR/SSIM, class fidelity, FID-proxy).",
        func=_cmd_bench, examples="""\
skugen bench runs/demo/bundle --backends onnxruntime,torch --precisions fp32,int8 --batch 1,8,32 \\
    --teacher export/zoo/fmnist-cgan --json bench.json --md bench.md --html bench.html
skugen bench runs/demo/bundle --duration 5 --threads 2 --csv bench.csv
skugen bench runs/demo/bundle --json new.json --baseline benchmarks/results/cgan.json --max-slowdown 1.10 --max-quality-drop 0.1
skugen bench --from-report new.json --baseline old.json   # gate an existing report
""",
        after="Exit status: 0 ok, 1 regression gate failed, 2 usage/bundle error.")
    p.add_argument("bundles", nargs="*", metavar="BUNDLE", help="bundle directories (or .tar)")
    p.add_argument("--backends", default="onnxruntime", help=f"comma list of {','.join(BACKENDS)} (default onnxruntime)")
    p.add_argument("--precisions", default="fp32,int8", help="comma list of fp32,fp16,bf16,int8 (default fp32,int8; bf16 runs on "
                   "OpenVINO where the CPU has native BF16)")
    p.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per cell (default 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=int, default=None, help="timed calls per cell (default 30)")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="time-box each cell to S seconds instead")
    p.add_argument("--repeats", type=int, default=1, help="back-to-back timed runs per cell (p50 spread; default 1)")
    add_threads(p, "intra-op threads for ORT/torch and the ceilings (default SKUGEN_NUM_THREADS or all cores)")
    p.add_argument("--tile", type=int, default=None, help="enhancer LR input side (default: the bundle's tile.size)")
    p.add_argument("--teacher", action="append", default=[], metavar="MODEL_DIR_OR_BUNDLE",
                   help="eager-PyTorch teacher run beside the students (repeatable; matched to bundles by family)")
    p.add_argument("--classifier", default=None, help="classifier model dir for class fidelity / FID-proxy "
                                                      "(default: the zoo's fmnist-classifier)")
    p.add_argument("--quality-n", type=integer(1), default=None, help="images (generator, 500) / crops (enhancer, 16) for quality")
    p.add_argument("--no-quality", action="store_true", help="latency only")
    p.add_argument("--no-ceilings", action="store_true", help="skip the GEMM ceilings (the gate then compares "
                                                              "raw ms across runs, and says so)")
    p.add_argument("--ceiling-size", type=int, default=1024, help="M=K=N of the ceiling GEMMs (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT")
    p.add_argument("--csv", dest="csv_out", default=None, metavar="OUT")
    p.add_argument("--md", dest="md_out", default=None, metavar="OUT")
    p.add_argument("--html", dest="html_out", default=None, metavar="OUT")
    p.add_argument("--from-report", default=None, metavar="REPORT.json",
                   help="do not run: load this report (for --baseline gating or re-rendering --md/--csv/--html)")
    p.add_argument("--baseline", default=None, metavar="OLD.json", help="regression gate against this report")
    p.add_argument("--max-slowdown", type=number(1.0), default=GateConfig.max_slowdown)
    p.add_argument("--max-quality-drop", type=number(0.0), default=GateConfig.max_quality_drop, help="dB of PSNR")
    p.add_argument("--max-ssim-drop", type=number(0.0), default=GateConfig.max_ssim_drop)
    p.add_argument("--max-fidelity-drop", type=number(0.0), default=GateConfig.max_fidelity_drop)
    p.add_argument("--max-fid-rise", type=number(1.0), default=GateConfig.max_fid_rise)
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args) -> BenchConfig:
    return BenchConfig(
        bundles=tuple(args.bundles), backends=_csv_list(args.backends), precisions=_csv_list(args.precisions),
        batches=_csv_list(args.batch, int), warmup=args.warmup,
        iters=args.iters if args.iters is not None else (None if args.duration else 30),
        duration_s=args.duration, threads=args.threads, teachers=tuple(args.teacher), tile=args.tile,
        repeats=args.repeats, quality=not args.no_quality, quality_n=args.quality_n, classifier=args.classifier,
        ceilings=not args.no_ceilings, ceiling_size=args.ceiling_size, seed=args.seed,
        progress=not args.no_progress)


def _cmd_bench(args) -> int:
    if args.from_report:
        if args.bundles:
            raise InputError("give either BUNDLE(s) to run or --from-report REPORT.json, not both.")
        rep = BenchReport.load(args.from_report)
    else:
        rep = run_bench(config_from_args(args), argv=sys.argv)
    print(rep.to_markdown())
    rep.save(json_path=args.json_out, csv_path=args.csv_out, md_path=args.md_out, html_path=args.html_out)
    if args.baseline:
        gate = GateConfig(max_slowdown=args.max_slowdown, max_quality_drop=args.max_quality_drop,
                          max_ssim_drop=args.max_ssim_drop, max_fidelity_drop=args.max_fidelity_drop,
                          max_fid_rise=args.max_fid_rise)
        # the same check as --from-report: a baseline that is not a bench report would compare nothing and pass
        res = compare_reports(rep.to_dict(), check_report_dict(load_report_json(args.baseline)), gate)
        print(res.table())
        return 0 if res.passed else 1
    return 0
