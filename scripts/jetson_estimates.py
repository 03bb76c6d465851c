#!/usr/bin/env python3
"""Paper estimates of skugen model latency on Jetson Orin modules, from MACs and published peak rates.

    python scripts/jetson_estimates.py                       # zoo cards if present, else reference MACs
    python scripts/jetson_estimates.py --bundle runs/demo/bundle --card export/zoo/fmnist-cgan/card.json
    python scripts/jetson_estimates.py --update-doc docs/jetson.md   # rewrite the table in the doc

These are ESTIMATES, not measurements. The model:

    compute_s = 2 * MACs * batch / (dense_peak_ops * utilisation)
    floor_s   = kernels * per_kernel_s             (launch + tiny-kernel overhead; what batch 1 hits)
    latency   = max(compute_s, floor_s)            (memory traffic is not modelled, see docs/jetson.md)

Dense peaks are derived from each module's GPU: SMs x clock x 4096 INT8 ops/clk/SM (Ampere tensor
cores, dense) and x 2048 FP16 FLOP/clk/SM. They reproduce NVIDIA's published *sparse* GPU INT8 TOPS
divided by 2; the module "AI performance" headline (sparse INT8, GPU + DLA) is listed for reference
only. Figures are the original (JetPack 5/6.0/6.1) MAXN clocks; JetPack 6.2 "Super" modes raise Orin
Nano / NX GPU clocks (pass --gpu-clock-scale to rescale). Check them against the current data sheets.
No torch, no skugen import: plain Python, so it runs anywhere.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- jetson-estimates:begin -->", "<!-- jetson-estimates:end -->"

INT8_OPS_PER_CLK_SM = 4096   # dense, Ampere (GA10B) tensor cores; 2x with 2:4 structured sparsity
FP16_FLOP_PER_CLK_SM = 2048  # dense tensor-core FP16


@dataclass(frozen=True)
class Module:
    name: str
    sms: int                 # CUDA cores / 128
    gpu_mhz: float           # max GPU clock at MAXN (original modes)
    ai_tops_sparse: int      # NVIDIA headline: sparse INT8, GPU + DLA (reference only)
    gpu_tops_sparse: float   # published GPU-only sparse INT8 TOPS (cross-check of the derivation)
    mem_gbs: float           # LPDDR5 bandwidth, GB/s
    power_modes: str

    @property
    def int8_dense_tops(self) -> float:
        return self.sms * INT8_OPS_PER_CLK_SM * self.gpu_mhz * 1e6 / 1e12

    @property
    def fp16_dense_tflops(self) -> float:
        return self.sms * FP16_FLOP_PER_CLK_SM * self.gpu_mhz * 1e6 / 1e12


MODULES = (
    Module("Orin Nano 4GB", 4, 625, 20, 20, 34, "7W, 10W"),
    Module("Orin Nano 8GB", 8, 625, 40, 40, 68, "7W, 15W"),
    Module("Orin NX 8GB", 8, 765, 70, 50, 102.4, "10W, 15W, 20W, MAXN"),
    Module("Orin NX 16GB", 8, 918, 100, 60, 102.4, "10W, 15W, 25W, MAXN"),
    Module("AGX Orin 32GB", 14, 930, 200, 108, 204.8, "15W, 30W, 40W, MAXN"),
    Module("AGX Orin 64GB", 16, 1300, 275, 170, 204.8, "15W, 30W, 50W, MAXN"),
)


@dataclass(frozen=True)
class Workload:
    name: str
    macs: float      # per sample (enhancer: per LR input of `input`)
    kernels: int     # kernels after TensorRT fusion (approx.: weighted layers + resize/softmax/shuffle)
    input: str
    source: str


# Counted with skugen.export.models.count_macs on the default (teacher) configs; used when no card
# or bundle is given. The student bound is the brief's budget (<= 25 % of the teacher's MACs).
REFERENCE = (
    Workload("fmnist-cgan teacher", 91_914_560, 17, "one 32x32 sample", "count_macs(CGANConfig())"),
    Workload("fmnist-cgan student (<= 25 %)", 91_914_560 * 0.25, 17, "one 32x32 sample", "teacher x 0.25 (budget)"),
    Workload("grocery-sr2x teacher, 64x64 LR", 2_602_303_488, 21, "64x64 -> 128x128",
             "count_macs(TEACHER_ARCH['grocery-sr2x'])"),
    Workload("grocery-sr2x teacher, 256x256 LR", 2_602_303_488 * 16, 21, "256x256 -> 512x512",
             "64x64 MACs x 16 (MACs scale with LR pixels)"),
)

_KERNEL_OPS = ("Conv", "Gemm", "MatMul", "Softmax", "Resize", "DepthToSpace")


def _kernels_from_ops(op_counts: dict | None, default: int) -> int:
    if not op_counts:
        return default
    return max(1, sum(int(op_counts.get(k, 0)) for k in _KERNEL_OPS))


def workload_from_card(path: Path) -> list[Workload]:
    c = json.loads(path.read_text())
    if not c.get("macs") or c.get("kind") not in ("generator", "enhancer"):
        return []
    name, macs = c.get("name", path.parent.name), float(c["macs"])
    try:  # the doc table names files relative to the repo, whatever the working directory was
        path = path.resolve().relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    if c["kind"] == "enhancer":
        cfg = c.get("config") or {}
        # EDSR family: head + 2 convs per block + body_tail + up, plus Resize (skip) and DepthToSpace
        k = 3 + 2 * len(cfg["blocks"]) + 2 if cfg.get("family") == "sr" and cfg.get("blocks") else 18
        return [Workload(f"{name}, 64x64 LR", macs, k, str(c.get("macs_input", "64x64 LR")), str(path)),
                Workload(f"{name}, 256x256 LR", macs * 16, k, "256x256 LR (x16 MACs)", str(path))]
    return [Workload(name, macs, 17, str(c.get("macs_input", "one sample")), str(path))]


def workload_from_bundle(root: Path) -> list[Workload]:
    m = json.loads((root / "manifest.json").read_text())
    fp32 = m["models"].get("fp32") or next(iter(m["models"].values()))
    if not fp32.get("macs"):
        raise SystemExit(f"{root}: manifest models.fp32 has no 'macs'; re-export the bundle")
    macs, k = float(fp32["macs"]), _kernels_from_ops(fp32.get("op_counts"), 18)
    inp = fp32.get("macs_input")
    if m["kind"] == "enhancer":
        side = int(inp[-1]) if isinstance(inp, list) and inp else 64
        return [Workload(f"{m['name']}, {side}x{side} LR", macs, k, f"{side}x{side} LR", str(root)),
                Workload(f"{m['name']}, {side * 4}x{side * 4} LR", macs * 16, k, f"{side * 4}x{side * 4} LR",
                         str(root))]
    return [Workload(m["name"], macs, k, "one sample", str(root))]


def estimate(w: Workload, mod: Module, util: tuple[float, float], kernel_us: tuple[float, float],
             clock_scale: float = 1.0) -> dict:
    out = {}
    for prec, peak in (("int8", mod.int8_dense_tops * 1e12), ("fp16", mod.fp16_dense_tflops * 1e12)):
        peak *= clock_scale
        fast = max(2 * w.macs / (peak * util[1]), w.kernels * kernel_us[0] * 1e-6)  # best case
        slow = max(2 * w.macs / (peak * util[0]), w.kernels * kernel_us[1] * 1e-6)  # worst case
        thr = (peak * util[0] / (2 * w.macs), peak * util[1] / (2 * w.macs))       # batch-large, compute-bound
        out[prec] = {"latency_ms": (fast * 1e3, slow * 1e3), "images_per_s": thr}
    return out


def _ms(a: float, b: float) -> str:
    f = (lambda x: f"{x:.2f}") if b < 10 else (lambda x: f"{x:.0f}") if a >= 10 else (lambda x: f"{x:.1f}")
    return f"{f(a)}-{f(b)}"


def _k(x: float) -> str:
    return f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def markdown(works: list[Workload], util, kernel_us, clock_scale: float) -> str:
    lines = ["_Estimates, not measurements: computed on paper by `scripts/jetson_estimates.py` from model "
             f"MACs and dense peak rates at utilisation {util[0]:.0%}-{util[1]:.0%}, with a launch floor of "
             f"{kernel_us[0]:g}-{kernel_us[1]:g} us per kernel"
             + (f", GPU clock x{clock_scale:g}" if clock_scale != 1 else "") + "._", "",
             "Modules (GPU dense peaks derived from SMs x MAXN clock; the headline TOPS are sparse INT8, GPU + DLA):",
             "", "| module | SMs | GPU MHz | GPU INT8 dense TOPS | GPU FP16 dense TFLOPS | published GPU sparse INT8 "
             "| headline (sparse, +DLA) | DRAM GB/s | power modes |", "|---|---|---|---|---|---|---|---|---|"]
    for m in MODULES:
        lines.append(f"| {m.name} | {m.sms} | {m.gpu_mhz:g} | {m.int8_dense_tops:.1f} | {m.fp16_dense_tflops:.1f} | "
                     f"{m.gpu_tops_sparse:g} | {m.ai_tops_sparse} | {m.mem_gbs:g} | {m.power_modes} |")
    lines += ["", "Models:", "", "| model | MACs | input | kernels (approx.) | source |", "|---|---|---|---|---|"]
    for w in works:
        lines.append(f"| {w.name} | {w.macs / 1e6:,.0f} M | {w.input} | {w.kernels} | {w.source} |")
    lines += ["", "Batch-1 latency in ms (best-worst case), and large-batch throughput in images/s as a "
              "compute-bound CEILING (memory traffic ignored: real throughput is lower):", "",
              "| model | module | INT8 latency | FP16 latency | INT8 img/s ceiling | FP16 img/s ceiling |",
              "|---|---|---|---|---|---|"]
    for w in works:
        for m in MODULES:
            e = estimate(w, m, util, kernel_us, clock_scale)
            lines.append(f"| {w.name} | {m.name} | {_ms(*e['int8']['latency_ms'])} | {_ms(*e['fp16']['latency_ms'])} | "
                         f"{_k(e['int8']['images_per_s'][0])}-{_k(e['int8']['images_per_s'][1])} | "
                         f"{_k(e['fp16']['images_per_s'][0])}-{_k(e['fp16']['images_per_s'][1])} |")
    return "\n".join(lines) + "\n"


def _pair(s: str) -> tuple[float, float]:
    a, b = (float(x) for x in s.split(","))
    if not 0 < a <= b:
        raise argparse.ArgumentTypeError(f"need 0 < low <= high, got {s!r}")
    return a, b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--card", action="append", default=[], type=Path, help="model card.json (repeatable)")
    p.add_argument("--bundle", action="append", default=[], type=Path, help="bundle directory (repeatable)")
    p.add_argument("--utilisation", type=_pair, default=(0.10, 0.30), metavar="LO,HI",
                   help="fraction of dense peak a small convnet reaches (default 0.10,0.30)")
    p.add_argument("--kernel-us", type=_pair, default=(5.0, 10.0), metavar="LO,HI",
                   help="per-kernel launch/tail overhead in microseconds (default 5,10)")
    p.add_argument("--gpu-clock-scale", type=float, default=1.0,
                   help="rescale peaks for another power mode: mode GPU max MHz / MAXN MHz (see /etc/nvpmodel.conf)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--update-doc", type=Path, default=None, metavar="MD",
                   help=f"replace the text between {BEGIN} and {END} in this markdown file")
    a = p.parse_args(argv)

    works: list[Workload] = []
    for c in a.card:
        works += workload_from_card(c)
    for b in a.bundle:
        works += workload_from_bundle(b)
    if not a.card and not a.bundle:
        for c in sorted((REPO / "export" / "zoo").glob("*/card.json")):
            works += workload_from_card(c)
        if not works:
            works = list(REFERENCE)
    if not works:
        p.error("no generator/enhancer MACs found in the given cards/bundles")

    if a.json:
        rows = [{"model": w.name, "macs": w.macs, "module": m.name, **estimate(w, m, a.utilisation, a.kernel_us,
                                                                               a.gpu_clock_scale)}
                for w in works for m in MODULES]
        print(json.dumps({"utilisation": a.utilisation, "kernel_us": a.kernel_us, "rows": rows}, indent=2))
        return 0
    md = markdown(works, a.utilisation, a.kernel_us, a.gpu_clock_scale)
    if a.update_doc:
        text = a.update_doc.read_text()
        pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
        if not pat.search(text):
            p.error(f"{a.update_doc} has no {BEGIN} ... {END} block")
        from skugen.io import atomic_write_text

        atomic_write_text(a.update_doc, pat.sub(lambda _: f"{BEGIN}\n{md}{END}", text))
        print(f"updated {a.update_doc}")
        return 0
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
