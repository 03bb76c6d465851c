"""`skugen bench`: latency, throughput, memory, compute efficiency and quality over a matrix.

    cfg = BenchConfig(bundles=("runs/demo/bundle",), backends=("onnxruntime", "torch"),
                      precisions=("fp32", "int8"), batches=(1, 8, 32), teachers=("export/zoo/fmnist-cgan",))
    rep = run_bench(cfg)                       # BenchReport (the CLI prints and saves this same object)
    rep.save_json("bench.json"); rep.save_csv("bench.csv"); rep.save_md("bench.md")
    gate = compare_reports(rep.to_dict(), json.load(open("old.json")), GateConfig())   # regression gate

The matrix is bundle x backend x precision x batch. Every cell is listed in the
report; a cell that cannot run here (no GPU, no TensorRT, a precision the bundle
lacks, fp16 on ONNX Runtime's CPU provider, batch > io.max_batch) carries
`status: "skipped"` and the reason, so a report never hides what was not measured.

One call of a cell is what an application does per request, split into stages:
    pre   = building the model inputs: latents + one-hot (generator), or uint8 HWC
            photos -> float NCHW through skugen.prepost / skugen.kernels (enhancer);
    infer = Runner.infer (ONNX Runtime, TensorRT, or eager PyTorch);
    post  = float model output -> uint8 images (skugen.kernels postprocess).

Compute efficiency is measured, not quoted: the same run times an fp32 GEMM
(numpy float32 matmul, 1 thread and T threads) and an int8 GEMM (ONNX Runtime
MatMulInteger on a tiny graph built with onnx.helper), and each cell reports its
achieved GMAC/s as a fraction of that ceiling. Those ceiling timings also make the
regression gate fair across runs: it compares each cell's p50 *divided by the
same run's fp32-GEMM time*, a ratio measured in one run, never raw milliseconds
from two runs (unless a report has no ceilings, and then the table says so).

Quality is measured on fixed seeds (identical inputs in every cell and every run):
    vs_reference    PSNR/SSIM against the bundle's golden outputs (made by its source
                    PyTorch model): what quantization/conversion cost;
    vs_teacher      PSNR/SSIM against the eager-PyTorch teacher on the same inputs;
    vs_ground_truth (enhancers) PSNR-Y/SSIM-Y against clean GroceryStore test crops;
    class_fidelity, fid_proxy (generators) with the fmnist-classifier:
                    "FID-proxy (fmnist-classifier features)", never Inception FID.
A metric that cannot be computed here carries `skipped` with the reason.

torch is imported only by the `torch` backend and the classifier-based metrics
(through skugen.export, lazily): the runtime install benches ONNX Runtime and
TensorRT without it.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .backends.base import Runner, TensorMeta
from .errors import BackendUnavailable, InputError, ModelError, SkugenError, need_extra
from .io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
BACKENDS = ("onnxruntime", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
FID_NAME = "FID-proxy (fmnist-classifier features)"  # same name as skugen.export.zoo.FID_NAME
_FAMILY_KIND = {"cgan": "generator", "sr": "enhancer"}
_VALUE_RANGE = {"generator": (-1.0, 1.0), "enhancer": (0.0, 1.0)}
_PSNR_CAP = 100.0  # dB; inf PSNR (identical outputs) is compared as this in the gate

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BenchConfig:
    bundles: tuple[str, ...]
    backends: tuple[str, ...] = ("onnxruntime",)
    precisions: tuple[str, ...] = ("fp32", "int8")
    batches: tuple[int, ...] = (1,)
    warmup: int = 3                  # untimed calls per cell first: ORT/TRT allocate and pick kernels on the first runs
    iters: int | None = 30           # timed calls per cell (used when duration_s is None)
    duration_s: float | None = None  # time-boxed cells instead: run until this many seconds (and >= min_iters calls)
    min_iters: int = 3               # a p50 needs a few samples even in a time-boxed cell
    threads: int | None = None       # intra-op threads for ORT and torch, and the GEMM ceiling; None: SKUGEN_NUM_THREADS or all usable cores
    teachers: tuple[str, ...] = ()   # model dirs / zoo names / bundles run by the torch backend next to the students (matched by family)
    tile: int | None = None          # enhancer LR input side; None: the bundle's tile.size, else 64
    repeats: int = 1                 # back-to-back timed runs per cell: their p50 spread says how noisy the machine is
    quality: bool = True             # measure quality (PSNR/SSIM, class fidelity, FID-proxy) per backend x precision
    quality_n: int | None = None     # images (generator, None: 500) or crops (enhancer, None: 16) for quality
    classifier: str | None = None    # FID-proxy / class-fidelity model dir; None: the zoo's fmnist-classifier
    ceilings: bool = True            # time the fp32/int8 GEMM ceilings (needed for GMAC/s fractions and a same-run gate)
    ceiling_size: int = 1024         # M = K = N of the ceiling GEMMs
    sample_k: int = 4                # images per class (generator) / crops (enhancer) kept for the HTML grids
    seed: int = 0                    # every latent, label and crop derives from it: same inputs in every run
    progress: bool = True            # tqdm bar over the matrix (stderr); SKUGEN_NO_PROGRESS=1 hides it
    teacher: str | None = None       # one teacher (convenience; added to `teachers`)
    json_out: str | None = None      # when set, run_bench also writes the report here (and csv/md/html below)
    csv_out: str | None = None
    md_out: str | None = None
    html_out: str | None = None

    def all_teachers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(((self.teacher,) if self.teacher else ()) + tuple(self.teachers)))

    def resolved_threads(self) -> int:
        if self.threads:
            return int(self.threads)
        from . import config

        env = config.get_int("SKUGEN_NUM_THREADS")
        if env:
            return env
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    def check(self) -> "BenchConfig":
        if not self.bundles:
            raise InputError("no bundle given. Pass at least one bundle directory: `skugen bench runs/demo/bundle`.")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad or not self.backends:
            raise InputError(f"unknown backend(s) {bad or self.backends}; choose from {', '.join(BACKENDS)}.")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise InputError(f"unknown precision(s) {bad or self.precisions}; choose from {', '.join(PRECISIONS)}.")
        if not self.batches or any((not isinstance(b, int)) or b < 1 for b in self.batches):
            raise InputError(f"batch sizes must be positive ints, got {self.batches}. Example: --batch 1,8,32")
        if self.duration_s is None and (self.iters is None or self.iters < 1):
            raise InputError(f"--iters must be >= 1 (got {self.iters}), or give --duration SECONDS.")
        if self.duration_s is not None and self.duration_s <= 0:
            raise InputError(f"--duration must be > 0 seconds, got {self.duration_s}.")
        if self.warmup < 0 or self.repeats < 1 or self.min_iters < 1:
            raise InputError("--warmup must be >= 0 and --repeats >= 1.")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}.")
        if self.tile is not None and self.tile < 8:
            raise InputError(f"--tile must be >= 8 LR pixels, got {self.tile}.")
        if self.ceiling_size < 16:
            raise InputError(f"ceiling_size must be >= 16, got {self.ceiling_size}.")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["threads_resolved"] = self.resolved_threads()
        return d


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the regression gate (`--baseline`). A cell fails when it is beyond any of them."""

    max_slowdown: float = 1.10       # p50 (normalised by the same run's fp32-GEMM time) may grow by this factor
    max_quality_drop: float = 0.1    # dB: PSNR (vs reference / teacher / ground truth) may drop by this much
    max_ssim_drop: float = 0.005     # SSIM may drop by this much (absolute)
    max_fidelity_drop: float = 0.02  # class fidelity may drop by this much (absolute fraction)
    max_fid_rise: float = 1.10       # FID-proxy may grow by this factor (+0.5 absolute slack for near-zero values)

# ----------------------------------------------------------------------------- report


@dataclass
class BenchReport:
    """The one benchmark report: environment + command + config + ceilings + every cell.

    `samples` holds the images the HTML report shows (uint8 arrays); it is not
    written to JSON. Everything else is plain JSON (`to_dict`).
    """

    config: dict
    cells: list
    ceilings: dict
    environment: dict
    command: list
    references: dict = field(default_factory=dict)  # per bundle: bicubic baseline, real-vs-real FID-proxy, ...
    notes: list = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    kind: str = "bench"
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    skugen_version: str = __version__
    wall_s: float | None = None
    summary: dict = field(default_factory=dict)      # speed_summary(): int8 vs fp32 vs teacher ratios per bundle
    samples: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("schema_version", "kind", "created", "skugen_version", "command",
                                           "environment", "config", "ceilings", "summary", "cells", "references",
                                           "notes", "wall_s")}
        return _clean(d)

    @classmethod
    def from_dict(cls, d: dict) -> "BenchReport":
        v = d.get("schema_version")
        if d.get("kind") != "bench" or not isinstance(v, int):
            raise InputError("this JSON is not a `skugen bench` report (no kind='bench' / schema_version). "
                             "Pass a file written by `skugen bench --json`.")
        if v > SCHEMA_VERSION:
            raise InputError(f"bench report schema_version {v} is newer than this skugen supports "
                             f"({SCHEMA_VERSION}); upgrade skugen.")
        keys = ("config", "cells", "ceilings", "environment", "command", "references", "notes", "schema_version",
                "created", "skugen_version", "wall_s", "summary")
        return cls(**{k: d[k] for k in keys if k in d})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BenchReport":
        return cls.from_dict(load_report_json(path))

    def ok_cells(self) -> list[dict]:
        return [c for c in self.cells if c["status"] == "ok"]

    def cell(self, key: str) -> dict | None:
        return next((c for c in self.cells if c["key"] == key), None)

    # -- writers --------------------------------------------------------------------------
    def save_json(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    def csv_rows(self) -> list[dict]:
        return [flat_row(c) for c in self.cells]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
        w.writeheader()
        for r in self.csv_rows():
            w.writerow({k: _fmt_csv(v) for k, v in r.items()})
        return buf.getvalue()

    def save_csv(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.to_csv())

    def to_markdown(self) -> str:
        return markdown_table(self.to_dict())

    def save_md(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.to_markdown())


def load_report_json(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"report {p} does not exist. Write one with `skugen bench BUNDLE --json {p}`.")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p} is not valid JSON ({e}).") from e


def _clean(o):
    """JSON-safe: numpy -> Python, inf/NaN -> None (JSON has neither)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, bool) or o is None or isinstance(o, (str, int)):
        return o
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, np.generic):
        return _clean(o.item())
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return _clean(o.to_dict())
    return str(o)

# ----------------------------------------------------------------------------- small helpers


def _percentiles(samples_s: list[float]) -> dict:
    """ms stats of second samples: p50/p90/p99/mean (skugen.report.percentiles) + min."""
    from .report import percentiles

    d = percentiles([s * 1e3 for s in samples_s])
    d["min"] = min(samples_s) * 1e3 if samples_s else None
    return d


def _vm(field_: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB from /proc (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_ + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs) so a cell gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _gpu_memory() -> dict | None:
    from .report import gpu_memory

    return gpu_memory()


class _Progress:
    """tqdm over the whole matrix when tqdm is installed (it is a toolchain dependency), else silent."""

    def __init__(self, total: int, enabled: bool) -> None:
        from . import config

        self.bar = None
        if enabled and not config.get_bool("SKUGEN_NO_PROGRESS"):
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="bench", unit="cell", file=sys.stderr, dynamic_ncols=True,
                                leave=True)
            except ImportError:
                self.bar = None

    def step(self, label: str, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label[:60], refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

# ----------------------------------------------------------------------------- environment


def environment(threads: int | None = None) -> dict:
    """skugen.report.environment() plus what a benchmark also needs: torch (if loaded), CUDA, nvpmodel."""
    from .report import environment as base_env

    env = base_env()
    v = env.setdefault("versions", {})
    if "torch" in sys.modules:  # never import torch just to print its version
        t = sys.modules["torch"]
        v["torch"] = getattr(t, "__version__", None)
        v["torch_cuda"] = getattr(getattr(t, "version", None), "cuda", None)
        try:
            v["torch_threads"] = t.get_num_threads()
        except Exception:  # pragma: no cover - exotic builds
            pass
    if "tensorrt" in sys.modules:
        v["tensorrt"] = getattr(sys.modules["tensorrt"], "__version__", v.get("tensorrt"))
    v["cuda_toolkit"] = _cmd_version(["nvcc", "--version"], r"release ([0-9.]+)")
    try:
        import onnx  # noqa: F401  (toolchain; only its version)

        v["onnx"] = onnx.__version__
    except ImportError:
        v["onnx"] = None
    env["jetson_power_mode"] = _nvpmodel()
    env["threads"] = threads
    env["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return env


def _cmd_version(cmd: list[str], pattern: str) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(pattern, out)
    return m.group(1) if m else None


def _nvpmodel() -> dict | None:
    """Jetson power mode (`nvpmodel -q`): MAXN vs 15W changes every latency by 2-3x, so reports carry it."""
    if not shutil.which("nvpmodel"):
        return None
    try:
        r = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": str(e)}
    text = (r.stdout or r.stderr).strip()
    m = re.search(r"Power Mode:\s*(\S+)", text)
    return {"mode": m.group(1) if m else None, "raw": text[:500]}

# ----------------------------------------------------------------------------- ceilings


def _time_min(fn: Callable[[], Any], reps: int, budget_s: float = 3.0) -> float:
    """Best-of-reps seconds (the ceiling is the machine's best, so min, not median), after one warm-up call."""
    fn()
    best = math.inf
    t_end = time.perf_counter() + budget_s
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > t_end:
            break
    return best


def _gemm_entry(seconds: float, macs: int) -> dict:
    return {"ms": seconds * 1e3, "gmacs_per_s": macs / seconds / 1e9}


def fp32_gemm_ceiling(threads: int, size: int = 1024, reps: int = 7) -> dict:
    """numpy float32 (size x size) @ (size x size), single-threaded and with `threads` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    macs = size ** 3
    out: dict = {"what": f"numpy float32 matmul {size}x{size}x{size}", "macs": macs, "by_threads": {}}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is None:
        out["by_threads"]["default"] = _gemm_entry(_time_min(lambda: a @ b, reps), macs)
        out["best"] = _best(out)
        out["note"] = ("threadpoolctl is not installed, so numpy's BLAS ran with its default thread count "
                       "(1-thread and T-thread ceilings could not be separated)")
        return out
    out["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "num_threads")} for i in threadpool_info()
                   if i.get("user_api") == "blas"]
    for t in sorted({1, int(threads)}):
        with threadpool_limits(limits=t, user_api="blas"):
            out["by_threads"][str(t)] = _gemm_entry(_time_min(lambda: a @ b, reps), macs)
    out["best"] = _best(out)
    return out


def _matmul_model(kind: str, size: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        # uint8 activations x int8 weights -> int32: ORT's MLAS QGEMM (VNNI on AVX512-VNNI CPUs),
        # the kernel a Q/DQ Conv/MatMul runs after ORT fuses it into QLinearConv/MatMulInteger.
        w = numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "B")
        a = helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])
        y = helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    else:
        w = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "B")
        a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [size, size])
        y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [size, size])
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    g = helper.make_graph([node], f"gemm_{kind}", [a], [y], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8  # readable by every ORT >= 1.10
    onnx.checker.check_model(m)
    return m.SerializeToString()


def ort_gemm_ceiling(kind: str, threads: int, size: int = 1024, reps: int = 7) -> dict:
    """ONNX Runtime MatMulInteger (int8) or MatMul (fp32) of size^3, 1 thread and `threads` threads."""
    macs = size ** 3
    what = (f"onnxruntime MatMulInteger uint8 x int8 -> int32 {size}x{size}x{size}" if kind == "int8"
            else f"onnxruntime MatMul float32 {size}x{size}x{size}")
    out: dict = {"what": what, "macs": macs, "by_threads": {}}
    try:
        model = _matmul_model(kind, size)
    except ImportError as e:
        return {"what": what, "available": False,
                "reason": f"onnx is not importable ({e}); the ceiling graph is built with onnx.helper. "
                          "Install it with: pip install 'skugen[export]' (or pip install onnx)."}
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, (size, size), dtype=np.uint8) if kind == "int8"
         else rng.standard_normal((size, size)).astype(np.float32))
    for t in sorted({1, int(threads)}):
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        out["by_threads"][str(t)] = _gemm_entry(_time_min(lambda: sess.run(None, {"A": x}), reps), macs)
        del sess
    out["best"] = _best(out)
    return out


def measure_ceilings(threads: int, size: int = 1024) -> dict:
    """The machine's measured GEMM ceilings for this run (fp32 numpy, fp32 ORT, int8 ORT)."""
    c = {"threads": int(threads), "size": int(size),
         "fp32_gemm": fp32_gemm_ceiling(threads, size),
         "fp32_gemm_ort": ort_gemm_ceiling("fp32", threads, size),
         "int8_gemm": ort_gemm_ceiling("int8", threads, size)}
    c["note"] = ("fraction_of_ceiling = achieved GMAC/s of the cell's inference / the GEMM's best GMAC/s with 1..T "
                 "threads (fp32 cells vs the faster of fp32_gemm (numpy) and fp32_gemm_ort, int8 cells vs int8_gemm "
                 "(ORT MatMulInteger)); the gate's yardstick is fp32_gemm (numpy). "
                 "Convolutions rarely reach GEMM speed; small models are dominated by per-op overhead.")
    return c


def _best(entry: dict) -> dict | None:
    """The fastest of the thread counts tried (<= T): what the machine can do with the threads it was given.

    On a loaded machine a T-thread BLAS can be far slower than 1 thread (threads wait for busy
    cores), so the ceiling is the best of 1..T threads, not blindly the T-thread figure.
    """
    bt = (entry or {}).get("by_threads") or {}
    if not bt:
        return None
    t, e = min(bt.items(), key=lambda kv: kv[1]["ms"])
    return {"threads": t, **e}


def ceiling_gmacs(ceilings: dict | None, name: str, threads: int | None = None) -> float | None:
    if not ceilings or name not in ceilings:
        return None
    b = ceilings[name].get("best") or _best(ceilings[name])
    return b.get("gmacs_per_s") if b else None


def ceiling_ms(ceilings: dict | None, name: str = "fp32_gemm") -> float | None:
    """The best fp32-GEMM time of this run: the same-run yardstick the gate normalises p50s by."""
    if not ceilings or name not in ceilings:
        return None
    b = ceilings[name].get("best") or _best(ceilings[name])
    return b.get("ms") if b else None

# ----------------------------------------------------------------------------- torch reference runner


def _model_family(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "card.json").read_text())["config"]["family"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def _model_kind(model_dir: Path) -> str | None:
    """generator / enhancer for skugen families and for users' models (skugen import), else None."""
    fam = _model_family(model_dir)
    if fam == "custom":
        return json.loads((model_dir / "card.json").read_text())["config"].get("kind")
    return _FAMILY_KIND.get(fam)


def resolve_model_dir(spec: str | os.PathLike) -> Path:
    """A teacher given as a model dir (card.json + model.safetensors), a bundle (its source/), or a zoo name."""
    p = Path(spec)
    if (p / "manifest.json").is_file():
        src = p / "source"
        if (src / "card.json").is_file() and (src / "model.safetensors").is_file():
            return src
        raise InputError(f"bundle {p} has no source/ model (source/card.json + source/model.safetensors), so it "
                         "cannot serve as an eager-PyTorch teacher. Pass the teacher's model directory instead.")
    if (p / "card.json").is_file() and (p / "model.safetensors").is_file():
        return p
    try:
        from skugen.export import zoo
    except ImportError as e:
        raise InputError(f"teacher {spec!r} is not a model directory or bundle, and zoo names need the toolchain "
                         f"({e}). pip install 'skugen[export]'") from e
    try:
        return zoo.resolve(spec)
    except ModelError as e:
        raise InputError(f"teacher {spec!r}: {e}") from e


class TorchRunner(Runner):
    """Eager PyTorch (fp32, CPU) reference: the teacher or the bundle's source model beside the students.

    Imports torch (through skugen.export) only in activate(); a runtime-only
    install gets BackendUnavailable naming the extra to install.
    """

    name = "torch"
    reentrant = False  # torch.set_num_threads is process-global

    def __init__(self, model_dir: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.model = None
        self.card: dict = {}

    def _activate(self) -> None:
        try:
            import torch

            from skugen.export import ckpt
        except ImportError as e:
            raise need_extra("the eager PyTorch reference backend (--backends torch)", "export", e) from e
        self._torch = torch
        self._prev_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model, self.card = ckpt.load_model(self.model_dir)
        fam = self.card["config"]["family"]
        kind = self.card["config"].get("kind") if fam == "custom" else _FAMILY_KIND.get(fam)
        if kind == "generator":
            c = self.card["config"]
            self._ins, self._out = ("z", "onehot"), "image"
            self._meta = {"z": TensorMeta("z", np.dtype(np.float32), (None, c["z_dim"])),
                          "onehot": TensorMeta("onehot", np.dtype(np.float32), (None, c["n_classes"]))}
        elif kind == "enhancer":
            self._ins, self._out = ("lr",), "hr"
            self._meta = {"lr": TensorMeta("lr", np.dtype(np.float32), (None, self.card["config"]["in_ch"], None, None))}
        else:
            raise ModelError(f"{self.model_dir} holds a {fam!r} model; the torch bench backend runs generators "
                             "(cgan) and enhancers (sr).")
        self.info = {"backend": "torch", "device": "cpu", "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "model_dir": str(self.model_dir)}

    def _deactivate(self) -> None:
        self.model = None
        self._torch.set_num_threads(self._prev_threads)

    def _input_metadata(self) -> dict[str, TensorMeta]:
        return self._meta

    def _output_names(self) -> list[str]:
        return [self._out]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            y = self.model(*[torch.from_numpy(np.ascontiguousarray(feed[k])) for k in self._ins])
        return {self._out: y.numpy()}

# ----------------------------------------------------------------------------- targets (what runs)


@dataclass
class _Target:
    """One bundle (and its optional teacher), with everything a cell needs to know about it."""

    path: str
    bundle: Any
    kind: str
    name: str
    max_batch: int
    input_hw: tuple[int, int] | None  # enhancer LR (h, w); None for generators
    scale: int
    teacher_dir: Path | None
    source_dir: Path | None
    teacher_mismatch: str | None = None  # why the teacher cannot take this bundle's inputs (None: it can)

    @property
    def torch_model(self) -> tuple[str, Path | None]:
        return ("teacher", self.teacher_dir) if self.teacher_dir is not None else ("source", self.source_dir)


def _load_target(path: str, cfg: BenchConfig, teachers: list[Path]) -> _Target:
    from .bundle import load_bundle

    b = load_bundle(path)
    io_ = b.io
    kind = b.kind
    max_batch = int(io_.get("max_batch") or b.manifest.get("max_batch") or 64)
    hw = None
    scale = 1
    if kind == "enhancer":
        tile = b.manifest.get("tile") or {}
        side = cfg.tile or tile.get("size") or 64
        hw = (int(side), int(side))
        scale = int(b.manifest.get("scale") or io_.get("scale") or tile.get("scale") or 2)
    src = b.root / "source"
    source_dir = src if (src / "card.json").is_file() and (src / "model.safetensors").is_file() else None
    teacher = next((t for t in teachers if _model_kind(t) == kind), None)
    t = _Target(path=str(path), bundle=b, kind=kind, name=b.name, max_batch=max_batch, input_hw=hw, scale=scale,
                teacher_dir=teacher, source_dir=source_dir)
    if teacher is not None:
        tc = json.loads((teacher / "card.json").read_text())["config"]
        d = _io_dims(t)
        if kind == "generator":
            bad = [f"{k} {tc.get(k)} vs the bundle's {d[k]}" for k in ("z_dim", "n_classes") if tc.get(k) != d[k]]
        else:
            bad = [f"scale {tc.get('scale')} vs the bundle's {scale}"] if tc.get("scale", scale) != scale else []
        if bad:
            t.teacher_mismatch = (f"teacher {teacher} cannot take this bundle's inputs ({'; '.join(bad)}), so it "
                                  "cannot be timed or compared on the same seeds")
    return t


def _io_dims(t: _Target) -> dict:
    ins = {i["name"]: i for i in t.bundle.io["inputs"]}
    d: dict = {}
    if t.kind == "generator":
        d["z_dim"] = int(ins["z"]["shape"][1])
        d["n_classes"] = int(ins["onehot"]["shape"][1])
        out = t.bundle.io["outputs"][0]["shape"]
        d["out_ch"] = int(out[1]) if isinstance(out[1], int) else 1
    else:
        d["in_ch"] = int(ins["lr"]["shape"][1]) if isinstance(ins["lr"]["shape"][1], int) else 3
    return d


def _skip_reason(t: _Target, backend: str, precision: str, batch: int, trt: tuple[bool, str]) -> str | None:
    """Why this cell cannot run here (None: it can). Checked before anything is loaded."""
    if batch > t.max_batch:
        return f"batch {batch} exceeds the bundle's io.max_batch {t.max_batch}"
    if backend == "torch":
        model, d = t.torch_model
        if precision != "fp32":
            return (f"the eager-PyTorch reference runs fp32 only ({precision} lives in the bundle's ONNX/engines; "
                    "bench it with --backends onnxruntime or tensorrt)")
        if d is None:
            return "no torch model: the bundle has no source/ model and no matching --teacher was given"
        if model == "teacher" and t.teacher_mismatch:
            return t.teacher_mismatch
        try:
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise ImportError("No module named 'torch'")
        except (ImportError, ValueError) as e:
            return str(need_extra("the eager PyTorch reference backend", "export", e))
        return None
    if backend == "onnxruntime":
        if precision == "fp16":
            if "fp16" in t.bundle.precisions:
                return None
            return ("fp16 on ONNX Runtime's CPU provider: no fp16 kernels for these ops and the bundle ships no fp16 "
                    "ONNX; fp16 is a TensorRT precision (--backends tensorrt on an NVIDIA GPU)")
        if precision not in t.bundle.precisions:
            return f"the bundle has no {precision} model (it has {', '.join(t.bundle.precisions)})"
        return None
    if backend == "tensorrt":
        ok, why = trt
        if not ok:
            return why
        if precision == "int8" and "int8" not in t.bundle.precisions:
            return f"the bundle has no int8 (Q/DQ) model for TensorRT to build from (it has {', '.join(t.bundle.precisions)})"
        if "fp32" not in t.bundle.precisions and precision != "int8":
            return "the bundle has no fp32 ONNX for TensorRT to build fp32/fp16 engines from"
        return None
    return f"unknown backend {backend}"


def _tensorrt_status() -> tuple[bool, str]:
    try:
        from .backends.tensorrt import is_available
    except ImportError as e:
        return False, f"skugen.backends.tensorrt cannot be imported ({e})"
    try:
        ok = bool(is_available())
    except Exception as e:  # a broken driver must not take the whole bench down
        return False, f"TensorRT availability check failed ({type(e).__name__}: {e})"
    if ok:
        return True, ""
    return False, ("no NVIDIA GPU with TensorRT + pycuda here (skugen.backends.tensorrt.is_available() is False); "
                   "install with pip install 'skugen[tensorrt]' on a CUDA machine")


def _make_runner(t: _Target, backend: str, precision: str, threads: int) -> Runner:
    if backend == "onnxruntime":
        from .backends.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(t.bundle.model_path(precision), intra_op_threads=threads)
    if backend == "tensorrt":
        from .backends.tensorrt import TensorRTRunner

        return TensorRTRunner(t.bundle, precision)
    if backend == "torch":
        return TorchRunner(t.torch_model[1], threads=threads)
    raise InputError(f"unknown backend {backend!r}")

# ----------------------------------------------------------------------------- workloads (pre / post)


def _make_pre(t: _Target, batch: int, seed: int, device: str) -> Callable[[int], dict[str, np.ndarray]]:
    from . import prepost

    dims = _io_dims(t)
    if t.kind == "generator":
        zdim, ncls = dims["z_dim"], dims["n_classes"]

        def pre(i: int) -> dict[str, np.ndarray]:
            # A fresh request each call: new latents (seeded per call) and cycling class labels.
            z = prepost.make_latents(seed + i, batch, zdim)                 # (B, z_dim)
            labels = (np.arange(batch) + i) % ncls
            return {"z": z, "onehot": prepost.onehot(labels, ncls)}        # (B, n_classes)
        return pre

    h, w = t.input_hw
    rng = np.random.default_rng(seed)
    # Camera-like uint8 frames: smooth gradients + noise (content does not change CPU/GPU time).
    base = rng.integers(0, 256, (batch, h, w, dims["in_ch"]), dtype=np.uint8)
    frames = [np.ascontiguousarray(f) for f in base]
    proc = prepost.get_processor(device)

    def pre(i: int) -> dict[str, np.ndarray]:
        return {"lr": prepost.images_to_unit_nchw(frames, proc, mean=0.0, std=1.0)}  # (B, 3, h, w) in [0, 1]
    return pre


def _make_post(t: _Target, device: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    from . import prepost

    proc = prepost.get_processor(device)  # numpy reference on CPU, CUDA kernels next to a GPU model
    vr = _VALUE_RANGE[t.kind]

    def post(out: dict[str, np.ndarray]) -> np.ndarray:
        x = next(iter(out.values()))                                               # (B, C, H, W) float
        return proc.postprocess(np.ascontiguousarray(x), vr, "GRAY" if x.shape[1] == 1 else "RGB")  # (B, H, W, C) uint8
    return post

# ----------------------------------------------------------------------------- MACs / model facts


def _pixels_of(spec: Any) -> int | None:
    """'one 64x64 LR image' / [64, 64] / 64 -> LR pixel count the MACs were counted at."""
    if isinstance(spec, (list, tuple)) and len(spec) >= 2:
        return int(spec[-2]) * int(spec[-1])
    if isinstance(spec, int):
        return spec * spec
    if isinstance(spec, str):
        m = re.search(r"(\d+)\s*[x×]\s*(\d+)", spec)
        if m:
            return int(m.group(1)) * int(m.group(2))
    return None


def _macs_per_image(meta: dict, kind: str, hw: tuple[int, int] | None) -> tuple[int | None, str]:
    """MACs for ONE image at this input size, from a card / manifest entry; scaled by pixels for enhancers."""
    macs = meta.get("macs")
    if not macs:
        return None, "no MACs in the card/manifest"
    if kind != "enhancer" or hw is None:
        return int(macs), "card/manifest (one sample)"
    # A fully convolutional enhancer costs MACs proportional to LR pixels.
    px = None
    for k in ("macs_input_hw", "macs_input", "macs_at", "trace_size"):
        if meta.get(k) is not None:
            px = _pixels_of(meta[k])
            if px:
                break
    assumed = px is None
    px = px or 32 * 32  # skugen.export.onnx_export traces enhancers at 32x32 LR
    scaled = int(round(int(macs) * hw[0] * hw[1] / px))
    return scaled, (f"card/manifest MACs at {'an assumed ' if assumed else ''}{int(math.sqrt(px))}^2 LR px, "
                    f"scaled to {hw[0]}x{hw[1]}")


def _count_torch(model_dir: Path, t: _Target) -> dict:
    """Params + MACs counted on the torch module (forward hooks), for cards that do not carry them."""
    try:
        from skugen.export import ckpt, models
    except ImportError:
        return {}
    m, _ = ckpt.load_model(model_dir)
    size = t.input_hw[0] if t.input_hw else 32
    ex = models.example_inputs(m.cfg, batch=1, size=size)
    return {"params": models.count_params(m), "macs": models.count_macs(m, ex),
            "macs_input": [size, size] if t.kind == "enhancer" else "one sample"}


def _model_facts(t: _Target, backend: str, precision: str) -> dict:
    """Size on disk, params, MACs per image (what the cell's GMAC/s is computed from)."""
    man = t.bundle.manifest
    facts: dict = {}
    if backend == "torch":
        model, d = t.torch_model
        card = json.loads((d / "card.json").read_text()) if d else {}
        w = d / "model.safetensors" if d else None
        if not card.get("macs") and model == "source":
            # The bundle's source model is what was exported: the manifest's counts are its counts.
            fp32 = man["models"].get("fp32") or next(iter(man["models"].values()))
            card = {**card, **{k: fp32[k] for k in ("macs", "macs_input", "params") if k in fp32}}
        if not card.get("macs") and d is not None:
            card = {**card, **_count_torch(d, t)}
        facts.update(model=model, file=str(w) if w else None, bytes=w.stat().st_size if w and w.is_file() else None,
                     params=card.get("params"))
        facts["macs_per_image"], facts["macs_source"] = _macs_per_image(card, t.kind, t.input_hw)
        return facts
    entry = dict(man["models"].get(precision) or man["models"].get("fp32") or {})
    path = t.bundle.model_path(precision) if precision in t.bundle.precisions else None
    src_card = {}
    for c in (t.bundle.root / "source" / "card.json", t.bundle.root / "card.json"):
        if c.is_file():
            try:
                src_card = json.loads(c.read_text())
                break
            except json.JSONDecodeError:
                pass
    meta = {**src_card, **{k: v for k, v in entry.items() if v is not None}}
    # MACs in the manifest were counted at the export trace size for enhancers; the card says its own input.
    if t.kind == "enhancer" and "macs" in entry and not any(k in entry for k in ("macs_input_hw", "macs_input", "macs_at")):
        meta = {"macs": entry["macs"], "trace_size": (man.get("export") or {}).get("trace_size", 32)}
    facts.update(model="student", file=str(path.relative_to(t.bundle.root)) if path else None,
                 bytes=path.stat().st_size if path else None, params=meta.get("params"))
    facts["macs_per_image"], facts["macs_source"] = _macs_per_image(meta, t.kind, t.input_hw)
    return facts

# ----------------------------------------------------------------------------- one cell


def _cell_key(bundle: str, model: str, backend: str, precision: str, batch: int) -> str:
    return f"{bundle}|{model}|{backend}|{precision}|b{batch}"


def _new_cell(t: _Target, backend: str, precision: str, batch: int) -> dict:
    model = t.torch_model[0] if backend == "torch" else "student"
    shape = ({"z": [batch, "z_dim"], "onehot": [batch, "n_classes"]} if t.kind == "generator"
             else {"lr": [batch, 3, *t.input_hw]})
    return {"key": _cell_key(t.name, model, backend, precision, batch), "bundle": t.name, "bundle_path": t.path,
            "kind": t.kind, "model": model, "backend": backend, "precision": precision, "batch": batch,
            "input_shape": shape, "status": "pending", "reason": None}


def _time_cell(runner: Runner, pre, post, cfg: BenchConfig) -> dict:
    """Warm up, then time `repeats` back-to-back runs of pre/infer/post calls."""
    call = 0
    for _ in range(cfg.warmup):
        post(runner.infer(pre(call), check=False))
        call += 1
    _reset_peak_rss()
    stages: dict[str, list[float]] = {"pre": [], "infer": [], "post": [], "total": []}
    run_p50: list[float] = []
    for _ in range(cfg.repeats):
        run_total: list[float] = []
        t_start = time.perf_counter()
        n = 0
        while True:
            t0 = time.perf_counter()
            feed = pre(call)
            t1 = time.perf_counter()
            out = runner.infer(feed, check=False)
            t2 = time.perf_counter()
            post(out)
            t3 = time.perf_counter()
            for k, v in zip(("pre", "infer", "post", "total"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                stages[k].append(v)
            run_total.append(t3 - t0)
            n += 1
            call += 1
            if cfg.duration_s is not None:
                if time.perf_counter() - t_start >= cfg.duration_s and n >= cfg.min_iters:
                    break
            elif n >= cfg.iters:
                break
        run_p50.append(float(np.percentile(run_total, 50)) * 1e3)
    return {"stages": stages, "run_p50_ms": run_p50}


def _fill_timing(cell: dict, timing: dict, facts: dict, ceilings: dict | None, threads: int) -> None:
    st = timing["stages"]
    b = cell["batch"]
    lat = {k: _percentiles(v) for k, v in st.items()}
    cell["latency_ms"] = lat
    tot = sum(st["total"])
    p50 = lat["total"]["p50"]
    # Typical throughput (batch / p50 call) for plots and comparisons; the mean-based one includes stalls.
    cell["throughput_ips"] = b / (p50 / 1e3) if p50 else None
    cell["throughput_ips_mean"] = b * len(st["total"]) / tot if tot > 0 else None
    cell["calls"] = len(st["total"])
    runs = timing["run_p50_ms"]
    cell["p50_runs_ms"] = runs
    cell["p50_spread"] = (max(runs) - min(runs)) / min(runs) if len(runs) > 1 and min(runs) > 0 else None
    cell["model_info"] = facts
    macs = facts.get("macs_per_image")
    infer_p50_s = (lat["infer"]["p50"] or 0) / 1e3
    comp: dict = {"gmacs_per_s": (macs * b / infer_p50_s / 1e9) if macs and infer_p50_s > 0 else None}
    if cell["backend"] == "tensorrt":
        comp.update(ceiling=None, fraction_of_ceiling=None,
                    note="GPU cell: the measured ceilings are CPU GEMMs, so no fraction is given")
    else:
        if cell["precision"] == "int8":
            name = "int8_gemm"
        else:  # the faster of numpy's and ORT's fp32 GEMM: a ceiling the cell's own kernels could reach
            name = max(("fp32_gemm", "fp32_gemm_ort"), key=lambda n: ceiling_gmacs(ceilings, n) or 0.0)
        ceil = ceiling_gmacs(ceilings, name, threads)
        comp.update(ceiling=name, ceiling_gmacs_per_s=ceil,
                    fraction_of_ceiling=(comp["gmacs_per_s"] / ceil) if ceil and comp["gmacs_per_s"] else None)
        if ceil is None:
            comp["note"] = f"{name} ceiling not measured in this run"
    cell["compute"] = comp
    ref = ceiling_ms(ceilings)
    if cell["backend"] == "tensorrt":
        # A CPU GEMM does not track GPU speed: GPU cells have no same-run yardstick (the gate says CROSS-RUN).
        cell["normalized"] = {"p50_over_fp32_gemm": None, "yardstick": "none for GPU cells"}
    else:
        cell["normalized"] = {"p50_over_fp32_gemm": (lat["total"]["p50"] / ref) if ref else None,
                              "yardstick": "best fp32_gemm ms (1..T threads) of the same run" if ref else None}

# ----------------------------------------------------------------------------- quality


@dataclass
class _QualityInputs:
    """Fixed inputs shared by every cell of one bundle (so cells and runs compare like for like)."""

    golden_in: dict
    golden_out: np.ndarray
    # generator
    z: np.ndarray | None = None
    labels: np.ndarray | None = None
    # enhancer
    lr_u8: np.ndarray | None = None     # (n, h, w, 3) uint8
    hr_u8: np.ndarray | None = None     # (n, 2h, 2w, 3) uint8 ground truth (None: not available)
    gt_source: str | None = None
    gt_skipped: str | None = None


def _quality_inputs(t: _Target, cfg: BenchConfig) -> _QualityInputs:
    gi, go = t.bundle.golden()
    out_name = t.bundle.io["outputs"][0]["name"]
    q = _QualityInputs(golden_in=gi, golden_out=go.get(out_name, next(iter(go.values()))))
    dims = _io_dims(t)
    if t.kind == "generator":
        ncls = dims["n_classes"]
        n = cfg.quality_n or 500
        per = max(1, -(-n // ncls))
        q.labels = np.repeat(np.arange(ncls), per)                        # (n,) class-major: grids read rows off it
        q.z = np.random.default_rng(cfg.seed + 1234).standard_normal((len(q.labels), dims["z_dim"]),
                                                                     dtype=np.float32)  # (n, z_dim)
        return q
    n = cfg.quality_n or 16
    h, w = t.input_hw
    try:
        from skugen.export import data

        lr, hr = data.sr_eval_set("test", n, hr_size=h * t.scale, seed=1234 + cfg.seed)
        q.lr_u8, q.hr_u8 = lr, hr
        q.gt_source = f"GroceryStore test photos: {len(lr)} centre crops {h * t.scale}px, degraded (sr_eval_set seed {1234 + cfg.seed})"
        return q
    except ImportError as e:
        q.gt_skipped = f"no ground truth: the toolchain (skugen.export.data) is not installed ({e})"
    except SkugenError as e:
        q.gt_skipped = f"no ground truth: GroceryStore test crops unavailable ({e})"
    # Fallback inputs: the bundle's golden LR images (no clean HR for them).
    lr = np.clip(np.rint(np.asarray(gi["lr"], np.float32) * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    q.lr_u8 = np.ascontiguousarray(lr[:n])
    return q


def _run_chunks(runner: Runner, feeds: dict[str, np.ndarray], chunk: int) -> np.ndarray:
    n = len(next(iter(feeds.values())))
    outs = []
    for i in range(0, n, chunk):
        o = runner.infer({k: np.ascontiguousarray(v[i:i + chunk]) for k, v in feeds.items()}, check=False)
        outs.append(next(iter(o.values())))
    return np.concatenate(outs)


def _quality_outputs(runner: Runner, t: _Target, q: _QualityInputs, chunk: int) -> dict:
    """Everything quality needs from one backend x precision: golden outputs and the quality-set images."""
    from skugen.kernels.reference import postprocess

    from . import prepost

    out: dict = {}
    feeds = {k: np.asarray(v, np.float32) for k, v in q.golden_in.items()}
    out["golden"] = _run_chunks(runner, feeds, chunk)
    if t.kind == "generator":
        oh = prepost.onehot(q.labels, _io_dims(t)["n_classes"])
        x = _run_chunks(runner, {"z": q.z, "onehot": oh}, chunk)         # (n, 1, 32, 32) in [-1, 1]
        out["images"] = postprocess(x, "-1,1", "GRAY" if x.shape[1] == 1 else "RGB")  # (n, 32, 32, C) uint8
    else:
        proc = prepost.get_processor("cpu")
        lr = prepost.images_to_unit_nchw(list(q.lr_u8), proc)            # (n, 3, h, w) in [0, 1]
        x = _run_chunks(runner, {"lr": lr}, chunk)                        # (n, 3, 2h, 2w)
        out["images"] = postprocess(x, "0,1", "RGB")                     # (n, 2h, 2w, 3) uint8
    return out


def _to_255(x: np.ndarray, kind: str) -> np.ndarray:
    """(N, C, H, W) float model output -> (N, H, W, C) float64 in [0, 255] (unrounded, clipped)."""
    lo, hi = _VALUE_RANGE[kind]
    return np.clip((np.asarray(x, np.float64) - lo) * (255.0 / (hi - lo)), 0, 255).transpose(0, 2, 3, 1)


def _pair_metrics(a: np.ndarray, b: np.ndarray, kind: str, scale: int, reference: str) -> dict:
    """PSNR + SSIM (BasicSR conventions) of NHWC [0,255] images; enhancers: Y channel, crop = scale."""
    from .metrics import psnr_result, ssim_result

    y = kind == "enhancer" and a.shape[-1] == 3
    crop = scale if kind == "enhancer" else 0
    try:
        p = psnr_result(a, b, y_channel=y, crop_border=crop).to_dict()
        s = ssim_result(a, b, y_channel=y, crop_border=crop).to_dict()
    except InputError as e:
        return {"skipped": f"cannot compare: {e}", "reference": reference}
    for d in (p, s):
        d.pop("per_image", None)  # keep the report small; the mean is what the matrix shows
        d.pop("per_image_inf", None)
    return {"psnr": p, "ssim": s, "reference": reference, "n": int(a.shape[0])}


class _Classifier:
    """The FID-proxy / class-fidelity feature extractor (fmnist-classifier, eager torch)."""

    def __init__(self, cfg: BenchConfig, threads: int) -> None:
        self.model = None
        self.skipped: str | None = None
        self.name = FID_NAME
        try:
            import torch

            from skugen.export import ckpt, zoo
        except ImportError as e:
            self.skipped = str(need_extra("class fidelity / FID-proxy (needs the fmnist-classifier in torch)", "export", e))
            return
        try:
            d = resolve_model_dir(cfg.classifier) if cfg.classifier else zoo.classifier_dir()
            model, card = ckpt.load_model(d)
        except SkugenError as e:
            self.skipped = f"no classifier for class fidelity / FID-proxy: {e}"
            return
        if card["config"].get("family") != "classifier":
            self.skipped = f"{d} is a {card['config'].get('family')!r} model, not a classifier"
            return
        self.torch, self.model, self.card, self.dir = torch, model.eval(), card, d
        self.threads = threads
        self._ref: dict[int, np.ndarray] = {}
        self._rr: dict[int, float | None] = {}

    def fits(self, images_u8: np.ndarray, n_classes: int) -> str | None:
        c = self.card["config"]
        if images_u8.shape[1:] != (c["image_size"], c["image_size"], c["in_ch"]):
            return (f"the classifier takes {c['image_size']}x{c['image_size']}x{c['in_ch']} images, the generator "
                    f"makes {images_u8.shape[1:]}")
        if c["n_classes"] != n_classes:
            return f"the classifier knows {c['n_classes']} classes, the generator {n_classes}"
        return None

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, 32, 32) float in [-1, 1] -> (features (N, D), predicted labels (N,))."""
        torch = self.torch
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            feats, preds = [], []
            with torch.inference_mode():
                for i in range(0, len(x), 256):
                    f = self.model.features(torch.from_numpy(np.ascontiguousarray(x[i:i + 256], np.float32)))
                    feats.append(f.numpy())
                    preds.append(self.model.head(f).argmax(1).numpy())
        finally:
            torch.set_num_threads(prev)
        return np.concatenate(feats), np.concatenate(preds)

    def reference_features(self, n: int) -> tuple[np.ndarray | None, str | None]:
        """Features of the first n Fashion-MNIST test images (the FID-proxy reference set)."""
        if n in self._ref:
            return self._ref[n], None
        try:
            from skugen.export import data

            x, _ = data.load_fmnist("test")
        except (ImportError, SkugenError) as e:
            return None, f"no Fashion-MNIST test set for the FID-proxy reference ({e})"
        f, _ = self.features(data.fmnist_to_model(x[:n]))
        self._ref[n] = f
        return f, None

    def real_vs_real(self, n: int) -> float | None:
        from .metrics import fid_from_features

        if n in self._rr:
            return self._rr[n]

        try:
            from skugen.export import data

            x, _ = data.load_fmnist("train")
        except (ImportError, SkugenError):
            return None
        idx = np.random.default_rng(0).choice(len(x), n, replace=False)
        f, _ = self.features(data.fmnist_to_model(x[np.sort(idx)]))
        ref, _ = self.reference_features(n)
        self._rr[n] = float(fid_from_features(f, ref)) if ref is not None else None
        return self._rr[n]


def _generator_metrics(images_u8: np.ndarray, labels: np.ndarray, clf: _Classifier | None, n_classes: int) -> dict:
    from .metrics import fid_from_features

    if clf is None or clf.model is None:
        why = clf.skipped if clf is not None else "quality disabled"
        return {"class_fidelity": {"skipped": why}, "fid_proxy": {"name": FID_NAME, "skipped": why}}
    why = clf.fits(images_u8, n_classes)
    if why:
        return {"class_fidelity": {"skipped": why}, "fid_proxy": {"name": FID_NAME, "skipped": why}}
    x = images_u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0   # what users see (uint8) -> [-1, 1]
    feats, pred = clf.features(x)
    out: dict = {"class_fidelity": {
        "value": float((pred == labels).mean()), "n": int(len(labels)),
        "per_class": [float((pred[labels == c] == c).mean()) for c in range(n_classes)],
        "classifier": str(clf.dir), "definition": "fraction of generated images the classifier assigns the requested class"}}
    ref, why = clf.reference_features(len(labels))
    if ref is None:
        out["fid_proxy"] = {"name": FID_NAME, "skipped": why}
    else:
        out["fid_proxy"] = {"name": FID_NAME, "value": float(fid_from_features(feats, ref)), "n": int(len(labels)),
                            "reference": f"first {len(labels)} Fashion-MNIST test images",
                            "note": "Frechet distance on the classifier's penultimate features, not Inception FID; "
                                    "it depends on n, so compare only reports with the same n"}
    return out

# ----------------------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, argv: list[str] | None = None) -> BenchReport:
    """Run the whole matrix and return the report (see the module docstring)."""
    cfg.check()
    t_run = time.perf_counter()
    threads = cfg.resolved_threads()
    teachers = [resolve_model_dir(s) for s in cfg.all_teachers()]
    for tdir in teachers:
        if _model_kind(tdir) is None:
            raise InputError(f"teacher {tdir} is a {_model_family(tdir)!r} model; teachers must be generators "
                             "(cgan) or enhancers (sr).")
    targets = [_load_target(p, cfg, teachers) for p in cfg.bundles]
    notes: list[str] = []
    for tdir in teachers:
        if not any(t.teacher_dir == tdir for t in targets):
            notes.append(f"teacher {tdir} ({_model_family(tdir)}) matched no bundle kind; unused")
    if teachers and "torch" not in cfg.backends:
        notes.append("a teacher was given but the torch backend was not selected: the teacher is used only as a "
                     "quality reference (vs_teacher), not timed")

    trt = _tensorrt_status() if "tensorrt" in cfg.backends else (False, "not selected")
    combos = [(t, be, p) for t in targets for be in cfg.backends for p in cfg.precisions]
    # Non-torch backends first: loading torch adds ~300 MiB RSS that would inflate the ONNX cells' peaks.
    combos.sort(key=lambda c: (targets.index(c[0]), c[1] == "torch"))
    n_quality = len(combos) if cfg.quality else 0
    prog = _Progress(len(combos) * len(cfg.batches) + n_quality, cfg.progress)

    ceilings = measure_ceilings(threads, cfg.ceiling_size) if cfg.ceilings else {}
    cells: list[dict] = []
    runnable: list[tuple[_Target, str, str]] = []
    try:
        for t, be, prec in combos:
            group = [_new_cell(t, be, prec, b) for b in cfg.batches]
            cells.extend(group)
            todo = []
            for c in group:
                why = _skip_reason(t, be, prec, c["batch"], trt)
                if why:
                    c.update(status="skipped", reason=why)
                    prog.step(f"{c['key']} skipped")
                else:
                    todo.append(c)
            if not todo:
                continue
            try:
                runner = _make_runner(t, be, prec, threads)
                rss0 = _vm("VmRSS")
                runner.activate()
            except (BackendUnavailable, SkugenError) as e:
                for c in todo:
                    c.update(status="skipped" if isinstance(e, BackendUnavailable) else "error", reason=str(e))
                    prog.step(f"{c['key']} {c['status']}")
                continue
            runnable.append((t, be, prec))
            try:
                facts = _model_facts(t, be, prec)
                device = (runner.info or {}).get("device", "cpu")
                post = _make_post(t, device)
                for c in todo:
                    try:
                        timing = _time_cell(runner, _make_pre(t, c["batch"], cfg.seed, device), post, cfg)
                    except SkugenError as e:
                        c.update(status="error", reason=str(e))
                        prog.step(f"{c['key']} error")
                        continue
                    c["status"] = "ok"
                    _fill_timing(c, timing, facts, ceilings, threads)
                    c["memory"] = {"rss_before_load_mb": rss0, "peak_rss_mb": _vm("VmHWM"),
                                   "method": "VmHWM of this process, reset (clear_refs) after warm-up; includes "
                                             "the Python process and every loaded library",
                                   "gpu": (runner.info or {}).get("gpu_memory") or _gpu_memory() if be == "tensorrt" else None}
                    c["runner"] = _clean(runner.info)
                    prog.step(f"{c['key']} p50 {c['latency_ms']['total']['p50']:.2f} ms")
            finally:
                runner.deactivate()

        end_ceiling = None
        if cfg.ceilings:
            # Re-time the fp32 GEMM at the end: a drift means the machine's load changed during the run.
            end_ceiling = fp32_gemm_ceiling(threads, cfg.ceiling_size, reps=5)
            ms0, ms1 = ceiling_ms(ceilings), ceiling_ms({**ceilings, "fp32_gemm": end_ceiling})
            ceilings["fp32_gemm_end"] = end_ceiling
            ceilings["drift"] = (ms1 / ms0) if ms0 and ms1 else None
            if ceilings["drift"] and not 0.8 <= ceilings["drift"] <= 1.25:
                notes.append(f"the fp32-GEMM ceiling changed by x{ceilings['drift']:.2f} between the start and end "
                             "of the run: the machine's load changed; treat latencies with care")

        references: dict = {}
        samples: dict = {}
        if cfg.quality:
            _run_quality(cfg, threads, targets, runnable, combos, cells, references, samples, prog, notes)
    finally:
        prog.close()

    rep = BenchReport(config=cfg.to_dict(), cells=cells, ceilings=ceilings,
                      environment=environment(threads), command=list(argv if argv is not None else sys.argv),
                      references=references, notes=notes, samples=samples)
    rep.summary = speed_summary(rep.to_dict())
    rep.wall_s = time.perf_counter() - t_run
    for path, write in ((cfg.json_out, rep.save_json), (cfg.csv_out, rep.save_csv), (cfg.md_out, rep.save_md)):
        if path:
            write(path)
    if cfg.html_out:
        from .html_report import write_html

        write_html(rep, cfg.html_out)
    return rep


def speed_summary(rep: dict) -> dict:
    """Per bundle, backend and batch: INT8 student vs FP32 student vs FP32 teacher (eager torch), from ONE run.

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
                i8, f32, tch = get.get("int8"), get.get("fp32"), ref.get(batch)

                def p(c, stage="total"):
                    return c["latency_ms"][stage]["p50"] if c else None

                def ratio(a, b_):
                    return (a / b_) if a and b_ else None

                rows.append({
                    "backend": be, "batch": batch, "torch_model": tch["model"] if tch else None,
                    "p50_ms": {"student_int8": p(i8), "student_fp32": p(f32), "teacher_fp32_torch": p(tch)},
                    "speedup": {"int8_vs_fp32": ratio(p(f32), p(i8)), "int8_vs_teacher": ratio(p(tch), p(i8)),
                                "fp32_vs_teacher": ratio(p(tch), p(f32))},
                    "speedup_infer_only": {"int8_vs_fp32": ratio(p(f32, "infer"), p(i8, "infer")),
                                           "int8_vs_teacher": ratio(p(tch, "infer"), p(i8, "infer")),
                                           "fp32_vs_teacher": ratio(p(tch, "infer"), p(f32, "infer"))},
                    "images_per_s": {"student_int8": (i8 or {}).get("throughput_ips"),
                                     "student_fp32": (f32 or {}).get("throughput_ips"),
                                     "teacher_fp32_torch": (tch or {}).get("throughput_ips")}})
        spreads = [(c["p50_spread"], c["key"]) for c in cs if c.get("p50_spread") is not None]
        out[b] = {"rows": rows, "max_p50_spread": max(spreads)[0] if spreads else None,
                  "max_p50_spread_cell": max(spreads)[1] if spreads else None,
                  "note": "ratios of p50 latency measured in this one run (> 1: the first is faster)"}
    return out


def _run_quality(cfg, threads, targets, runnable, combos, cells, references, samples, prog, notes) -> None:
    runnable_set = set((id(t), be, p) for t, be, p in runnable)
    clf: _Classifier | None = None
    for t in targets:
        q = _quality_inputs(t, cfg)
        ncls = _io_dims(t).get("n_classes", 0)
        chunk = max(1, min(t.max_batch, 64))
        ref: dict = {"kind": t.kind}
        if t.kind == "enhancer":
            ref["ground_truth"] = q.gt_source or {"skipped": q.gt_skipped}
        references[t.name] = ref
        outs: dict[tuple[str, str], dict] = {}
        for tt, be, prec in combos:
            if tt is not t:
                continue
            if (id(t), be, prec) not in runnable_set:
                prog.step(f"{t.name} {be} {prec} quality n/a")
                continue
            try:
                with _make_runner(t, be, prec, threads) as r:
                    outs[(be, prec)] = _quality_outputs(r, t, q, chunk)
            except SkugenError as e:
                outs[(be, prec)] = {"error": str(e)}
            prog.step(f"{t.name} {be} {prec} quality")

        # The teacher's outputs on the same inputs (also when the torch backend was not selected).
        teacher_out = None
        teacher_why = None
        if t.teacher_dir is None:
            teacher_why = "no --teacher of this family was given"
        elif t.teacher_mismatch:
            teacher_why = t.teacher_mismatch
        elif ("torch", "fp32") in outs and "error" not in outs[("torch", "fp32")]:
            teacher_out = outs[("torch", "fp32")]
        else:
            try:
                with TorchRunner(t.teacher_dir, threads) as r:
                    teacher_out = _quality_outputs(r, t, q, chunk)
            except SkugenError as e:
                teacher_why = f"teacher could not run: {e}"
            except (RuntimeError, KeyError, ValueError) as e:  # e.g. a teacher with another z_dim
                teacher_why = f"teacher does not take this bundle's inputs ({type(e).__name__}: {str(e)[:200]})"

        if t.kind == "generator":
            clf = clf or _Classifier(cfg, threads)
            if clf.model is not None:
                ref["fid_proxy_real_vs_real"] = {
                    "name": FID_NAME, "value": clf.real_vs_real(len(q.labels)), "n": int(len(q.labels)),
                    "what": "Fashion-MNIST train vs test at the same n: the floor a perfect generator would reach"}
        if t.kind == "enhancer" and q.hr_u8 is not None:
            bic = _bicubic_x2(q.lr_u8, t.scale)
            ref["bicubic"] = _pair_metrics(bic.astype(np.float64), q.hr_u8.astype(np.float64), t.kind, t.scale,
                                           "ground truth")

        for (be, prec), o in outs.items():
            model = t.torch_model[0] if be == "torch" else "student"
            qd: dict = {}
            if "error" in o:
                qd = {"skipped": o["error"]}
            else:
                qd["vs_reference"] = _pair_metrics(_to_255(o["golden"], t.kind), _to_255(q.golden_out, t.kind),
                                                   t.kind, t.scale, "bundle golden outputs (source PyTorch model, fp32)")
                if teacher_out is None:
                    qd["vs_teacher"] = {"skipped": teacher_why}
                elif model == "teacher":
                    qd["vs_teacher"] = {"skipped": "this cell is the teacher"}
                else:
                    qd["vs_teacher"] = _pair_metrics(o["images"].astype(np.float64),
                                                     teacher_out["images"].astype(np.float64), t.kind, t.scale,
                                                     "eager-PyTorch teacher on the same inputs (uint8 outputs)")
                if t.kind == "enhancer":
                    if q.hr_u8 is None:
                        qd["vs_ground_truth"] = {"skipped": q.gt_skipped}
                    else:
                        qd["vs_ground_truth"] = _pair_metrics(o["images"].astype(np.float64),
                                                              q.hr_u8.astype(np.float64), t.kind, t.scale,
                                                              "clean GroceryStore test crops")
                else:
                    qd.update(_generator_metrics(o["images"], q.labels, clf, ncls))
            for c in cells:
                if c["bundle"] == t.name and c["backend"] == be and c["precision"] == prec and c["status"] == "ok":
                    c["quality"] = qd
                    c["quality_note"] = "measured once per backend x precision (outputs do not depend on batch)"
        samples[t.name] = _collect_samples(t, q, outs, teacher_out, cfg)


def _bicubic_x2(lr_u8: np.ndarray, scale: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((im.shape[1] * scale, im.shape[0] * scale),
                                                            Image.BICUBIC)) for im in lr_u8])


def _collect_samples(t: _Target, q: _QualityInputs, outs: dict, teacher_out: dict | None, cfg: BenchConfig) -> dict:
    """uint8 images for the HTML report: same seeds / crops in every column."""
    k = cfg.sample_k
    cols: dict[str, np.ndarray] = {}

    def student_cols():
        seen = set()
        for prec in ("fp32", "fp16", "int8"):
            for be in cfg.backends:
                if be == "torch" or (be, prec) not in outs or "error" in outs[(be, prec)] or prec in seen:
                    continue
                seen.add(prec)
                yield f"student {prec} ({be})", outs[(be, prec)]["images"]

    if t.kind == "generator":
        ncls = _io_dims(t)["n_classes"]
        per = len(q.labels) // ncls

        def grid(images):  # (n, H, W, C) class-major -> (classes, k, H, W, C)
            return np.stack([images[c * per:c * per + min(k, per)] for c in range(ncls)])

        if teacher_out is not None:
            cols["teacher (torch fp32)"] = grid(teacher_out["images"])
        elif ("torch", "fp32") in outs and "error" not in outs[("torch", "fp32")]:
            cols["source (torch fp32)"] = grid(outs[("torch", "fp32")]["images"])
        for label, im in student_cols():
            cols[label] = grid(im)
        names = t.bundle.class_names or [str(c) for c in range(ncls)]
        return {"kind": "generator", "rows": list(names[:ncls]), "columns": cols,
                "seeds": f"latents from default_rng({cfg.seed + 1234}); the same z per column"}
    lr = q.lr_u8[:k]
    cols["input (nearest x%d)" % t.scale] = lr.repeat(t.scale, axis=1).repeat(t.scale, axis=2)
    cols["bicubic"] = _bicubic_x2(lr, t.scale)
    if teacher_out is not None:
        cols["teacher (torch fp32)"] = teacher_out["images"][:k]
    for label, im in student_cols():
        cols[label] = im[:k]
    if q.hr_u8 is not None:
        cols["ground truth"] = q.hr_u8[:k]
    return {"kind": "enhancer", "rows": [f"crop {i}" for i in range(len(lr))], "columns": cols,
            "source": q.gt_source or "bundle golden inputs (no ground truth)"}

# ----------------------------------------------------------------------------- flat views (CSV / Markdown)


CSV_FIELDS = ("key", "bundle", "kind", "model", "backend", "precision", "batch", "status", "reason",
              "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "pre_p50_ms", "infer_p50_ms", "post_p50_ms",
              "throughput_ips", "throughput_ips_mean", "p50_spread", "peak_rss_mb", "gpu_used_mb", "model_bytes", "params", "macs_per_image",
              "gmacs_per_s", "ceiling", "fraction_of_ceiling", "p50_over_fp32_gemm",
              "psnr_ref_db", "ssim_ref", "psnr_teacher_db", "ssim_teacher", "psnr_gt_db", "ssim_gt",
              "class_fidelity", "fid_proxy")


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
             f"- versions: skugen {v.get('skugen')}, onnxruntime {v.get('onnxruntime')}, numpy {v.get('numpy')}, "
             f"torch {v.get('torch') or '-'}, TensorRT {v.get('tensorrt') or '-'}, CUDA {v.get('cuda_toolkit') or v.get('cuda_driver') or '-'}",
             f"- threads: {cfg.get('threads_resolved')}; warmup {cfg.get('warmup')}, "
             + (f"duration {cfg.get('duration_s')} s" if cfg.get('duration_s') else f"iters {cfg.get('iters')}")
             + f", repeats {cfg.get('repeats')}"]
    if env.get("jetson_power_mode"):
        lines.append(f"- Jetson power mode: {env['jetson_power_mode'].get('mode')}")
    ce = rep.get("ceilings") or {}
    if ce:
        parts = []
        for name in ("fp32_gemm", "fp32_gemm_ort", "int8_gemm"):
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

# ----------------------------------------------------------------------------- regression gate


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

# ----------------------------------------------------------------------------- CLI


def _csv_list(s: str, cast=str) -> tuple:
    try:
        return tuple(cast(x.strip()) for x in s.split(",") if x.strip())
    except ValueError as e:
        raise InputError(f"cannot parse {s!r} as a comma-separated list ({e}). Example: --batch 1,8,32") from e


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark bundles over backend x precision x batch (latency, throughput, memory, quality)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark bundles: latency p50/p90/p99 split into pre/infer/post, throughput, peak memory, "
                    "GMAC/s against measured GEMM ceilings, and quality (PSNR/SSIM, class fidelity, FID-proxy).",
        epilog="Examples:\n"
               "  skugen bench runs/demo/bundle --backends onnxruntime,torch --precisions fp32,int8 --batch 1,8,32 \\\n"
               "      --teacher export/zoo/fmnist-cgan --json bench.json --md bench.md --html bench.html\n"
               "  skugen bench runs/demo/bundle --duration 5 --threads 2 --csv bench.csv\n"
               "  skugen bench runs/demo/bundle --json new.json --baseline benchmarks/results/cgan.json "
               "--max-slowdown 1.10 --max-quality-drop 0.1\n"
               "  skugen bench --from-report new.json --baseline old.json   # gate an existing report\n"
               "Exit status: 0 ok, 1 regression gate failed, 2 usage/bundle error.")
    p.add_argument("bundles", nargs="*", metavar="BUNDLE", help="bundle directories (or .tar)")
    p.add_argument("--backends", default="onnxruntime", help=f"comma list of {','.join(BACKENDS)} (default onnxruntime)")
    p.add_argument("--precisions", default="fp32,int8", help="comma list of fp32,fp16,int8 (default fp32,int8)")
    p.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per cell (default 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=int, default=None, help="timed calls per cell (default 30)")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="time-box each cell to S seconds instead")
    p.add_argument("--repeats", type=int, default=1, help="back-to-back timed runs per cell (p50 spread; default 1)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for ORT/torch and the ceilings "
                                                             "(default SKUGEN_NUM_THREADS or all cores)")
    p.add_argument("--tile", type=int, default=None, help="enhancer LR input side (default: the bundle's tile.size)")
    p.add_argument("--teacher", action="append", default=[], metavar="MODEL_DIR_OR_BUNDLE",
                   help="eager-PyTorch teacher run beside the students (repeatable; matched to bundles by family)")
    p.add_argument("--classifier", default=None, help="classifier model dir for class fidelity / FID-proxy "
                                                      "(default: the zoo's fmnist-classifier)")
    p.add_argument("--quality-n", type=int, default=None, help="images (generator, 500) / crops (enhancer, 16) for quality")
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
    p.add_argument("--max-slowdown", type=float, default=GateConfig.max_slowdown)
    p.add_argument("--max-quality-drop", type=float, default=GateConfig.max_quality_drop, help="dB of PSNR")
    p.add_argument("--max-ssim-drop", type=float, default=GateConfig.max_ssim_drop)
    p.add_argument("--max-fidelity-drop", type=float, default=GateConfig.max_fidelity_drop)
    p.add_argument("--max-fid-rise", type=float, default=GateConfig.max_fid_rise)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench)


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
    if args.json_out:
        rep.save_json(args.json_out)
    if args.csv_out:
        rep.save_csv(args.csv_out)
    if args.md_out:
        rep.save_md(args.md_out)
    if args.html_out:
        from .html_report import write_html

        write_html(rep, args.html_out)
    if args.baseline:
        gate = GateConfig(max_slowdown=args.max_slowdown, max_quality_drop=args.max_quality_drop,
                          max_ssim_drop=args.max_ssim_drop, max_fidelity_drop=args.max_fidelity_drop,
                          max_fid_rise=args.max_fid_rise)
        res = compare_reports(rep.to_dict(), load_report_json(args.baseline), gate)
        print(res.table())
        return 0 if res.passed else 1
    return 0
