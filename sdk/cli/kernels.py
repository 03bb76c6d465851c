"""`skugen kernels emulate | compile-check`: the CUDA kernel checks that need no GPU (developers; hidden).

emulate: the same .cu sources built by g++ (skugen.kernels.host_emu) against the numpy
reference; with --sanitize under ASan+UBSan (this command re-executes itself with
libasan preloaded). compile-check: nvcc + ptxas resource report (skugen.kernels.compile_check).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ._common import command, integer



def add_kernels(sub) -> None:
    from ..kernels.compile_check import DEFAULT_REPORT

    k = command(
        sub, "kernels", None,
        "CUDA kernel checks without a GPU: host emulation against the numpy reference "
        "(optionally under ASan+UBSan) and the nvcc compile check with the ptxas report.", examples="""\
skugen kernels emulate --cases 40
skugen kernels emulate --sanitize
skugen kernels compile-check --out benchmarks/kernels/ptxas_report.json
""")
    ks = k.add_subparsers(dest="kernels_cmd", required=True)
    e = ks.add_parser("emulate", help="emulated kernels vs the numpy reference on random cases; exit 1 on mismatch")
    e.add_argument("--sanitize", action="store_true", help="build with -fsanitize=address,undefined")
    e.add_argument("--cases", type=integer(1), default=40, help="random cases per kernel")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--variant", choices=["strided", "x4"], default="strided",
                   help="kernel variant for preprocess/postprocess (see KernelProcessor.DEFAULT_VARIANTS)")
    e.add_argument("--plant-oob", action="store_true",
                   help="(test of the checker) launch preprocess with a pitch 1 byte too large")
    e.set_defaults(func=_emulate)
    c = ks.add_parser("compile-check", help="nvcc every kernel for sm_87/sm_90 and write the ptxas report")
    c.add_argument("--out", type=Path, default=DEFAULT_REPORT)
    c.add_argument("--arch", action="append", help="sm_XY (repeatable); default: oldest, sm_87, sm_90")
    c.add_argument("--nvcc", default="nvcc")
    c.set_defaults(func=_compile_check)


def _emulate(args) -> int:
    from ..kernels import host_emu

    if host_emu.needs_reexec(args.sanitize):
        env = host_emu.sanitized_env()
        if env is None:
            print("no libasan for this compiler", file=sys.stderr)
            return 3
        argv = ["kernels", "emulate", "--sanitize", "--cases", str(args.cases), "--seed", str(args.seed),
                "--variant", args.variant] + (["--plant-oob"] if args.plant_oob else [])
        return subprocess.run([sys.executable, "-m", "skugen.cli", *argv], env=env).returncode
    proc = host_emu.emulated_processor(sanitize=args.sanitize, variant=args.variant)
    if args.plant_oob:
        host_emu.plant_oob(proc)
        print("planted out-of-bounds read was NOT detected")
        return 0
    failures = host_emu.emulation_mismatches(proc, args.cases, args.seed)
    for f in failures:
        print("MISMATCH", f, file=sys.stderr)
    print(f"host emulation{' (ASan+UBSan)' if args.sanitize else ''}: "
          f"{args.cases * 3} cases, {len(failures)} mismatches")
    return 1 if failures else 0


def _compile_check(args) -> int:
    from ..io import atomic_write_json
    from ..kernels.compile_check import compile_check

    report = compile_check(args.arch, args.nvcc)
    atomic_write_json(args.out, report)
    for k in report["kernels"]:
        print(f"{k['arch']:>7} {k['kernel']:<24} {k['registers']:>3} regs  spills {k['spill_store_bytes']}/"
              f"{k['spill_load_bytes']} B  stack {k['stack_bytes']} B  smem {k['smem_bytes']} B")
    for s, v in report["sources"].items():
        if not v["ok"]:
            print(f"FAILED {s}:\n{v['log']}", file=sys.stderr)
    print(f"{'ok' if report['ok'] else 'FAILED'}: wrote {args.out}")
    return 0 if report["ok"] else 1
