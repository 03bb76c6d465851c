"""What a bench run measures (BenchConfig) and what the regression gate tolerates (GateConfig).

Both are frozen dataclasses: the CLI builds them from its arguments (skugen.cli.bench),
Python callers build them directly. `BenchConfig.check()` raises InputError for
anything a user can get wrong, with the fix in the message.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from ..errors import InputError
from ..evaluate import FID_NAME  # noqa: F401  (re-exported by skugen.bench)

SCHEMA_VERSION = 1
BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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
    # No output paths here: run_bench writes nothing; save the report with BenchReport.save_json/csv/md/html.

    def all_teachers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(((self.teacher,) if self.teacher else ()) + tuple(self.teachers)))

    def resolved_threads(self) -> int:
        if self.threads:
            return int(self.threads)
        from .. import config

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
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise InputError(f"--duration must be a finite number of seconds > 0, got {self.duration_s}.")
        if self.quality_n is not None and self.quality_n < 1:
            raise InputError(f"--quality-n must be >= 1 (or --no-quality), got {self.quality_n}.")
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

    def __post_init__(self) -> None:
        # a NaN threshold passes every comparison ("<= xnan ok"): a gate that cannot fail
        for k, lo in (("max_slowdown", 1.0), ("max_fid_rise", 1.0), ("max_quality_drop", 0.0),
                      ("max_ssim_drop", 0.0), ("max_fidelity_drop", 0.0)):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= lo):
                raise InputError(f"--{k.replace('_', '-')} must be a finite number >= {lo:g}, got {v}.")