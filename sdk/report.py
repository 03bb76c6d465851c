"""The one report type: environment + config + latency + throughput + memory + quality.

`Pipeline` calls, `Pipeline.report()`, `Pipeline.evaluate()`, the CLI and the
benchmarks all produce the same `Report` dataclass, so a number printed by the
CLI is the number a script gets back.

Public helpers reused by the benchmark suite:
- `environment()`: machine + library versions (cached per process; no subprocess,
  no heavy imports, so it is cheap enough for the cold-start path);
- `percentiles(samples)` and `LatencyStats`: p50/p90/p99/mean of pre/infer/post;
- `peak_rss_mb()`, `rss_mb()`, `gpu_memory()`.
"""
from __future__ import annotations

import functools
import json
import math
import os
import platform
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from . import __version__
from .io import atomic_write_json

SCHEMA_VERSION = 1
STAGES = ("pre", "infer", "post", "total")
QUANTILES = (50, 90, 99)

# ----------------------------------------------------------------------------- latency


def percentiles(samples: Iterable[float], qs: Iterable[float] = QUANTILES) -> dict:
    """{'p50': .., 'p90': .., 'p99': .., 'mean': .., 'n': ..} of `samples` (same unit in and out).

    Linear interpolation between order statistics (numpy's default), done in pure
    Python so the report module does not depend on numpy at import time.
    An empty sample gives None values (JSON null), never NaN.
    """
    xs = sorted(float(s) for s in samples)
    n = len(xs)
    out: dict = {}
    for q in qs:
        key = f"p{q:g}"
        if not n:
            out[key] = None
            continue
        pos = (n - 1) * float(q) / 100.0
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        out[key] = xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
    out["mean"] = (sum(xs) / n) if n else None
    out["n"] = n
    return out


class LatencyStats:
    """Thread-safe rolling window of per-call stage timings (seconds in, milliseconds out).

    The window is a preallocated ring buffer, so a process serving millions of calls
    holds a constant `window` samples (the percentiles are of those) and its memory
    never grows; the lifetime counters (calls, images, busy seconds) keep counting.
    """

    def __init__(self, window: int = 10_000) -> None:
        from array import array

        self.window = int(window)
        self._lock = threading.Lock()
        # One flat float64 ring per stage + images per call: allocated once, never resized.
        self._ring = {s: array("d", bytes(8 * self.window)) for s in (*STAGES, "images")}
        self._next = 0  # ring position of the next sample
        self._filled = 0  # samples in the ring (<= window)
        self.calls = 0
        self.images = 0
        self.busy_s = 0.0  # sum of per-call totals (lifetime)
        self.first_t: float | None = None  # perf_counter at the first call's start
        self.last_t: float | None = None  # perf_counter at the last call's end

    def add(self, pre: float, infer: float, post: float, n_images: int, total: float | None = None) -> None:
        total = (pre + infer + post) if total is None else total
        now = time.perf_counter()
        with self._lock:
            k = self._next
            for s, v in zip((*STAGES, "images"), (pre, infer, post, total, n_images)):
                self._ring[s][k] = v
            self._next = (k + 1) % self.window
            self._filled = min(self._filled + 1, self.window)
            self.calls += 1
            self.images += int(n_images)
            self.busy_s += total
            if self.first_t is None:
                self.first_t = now - total
            self.last_t = now

    def summary(self) -> dict:
        """{'pre': {p50..}, 'infer': .., 'post': .., 'total': .., 'calls', 'images', 'window'} in ms."""
        with self._lock:
            n = self._filled
            snap = {s: self._ring[s][:n] for s in (*STAGES, "images")}  # copies, taken under the lock
            calls, images, busy = self.calls, self.images, self.busy_s
            span = (self.last_t - self.first_t) if self.first_t is not None else 0.0
        out: dict = {s: {k: (v * 1e3 if isinstance(v, float) else v) for k, v in percentiles(snap[s]).items()}
                     for s in STAGES}
        out.update(calls=calls, images=images, window=self.window, images_in_window=int(sum(snap["images"])),
                   unit="ms")
        # Two throughputs, because they differ under concurrency:
        #   per_call: images / busy time of the calls (what one caller sees);
        #   wall: images / time from the first call's start to the last call's end (what a server sees).
        out["throughput"] = {
            "images_per_s_per_call": (images / busy) if busy > 0 else None,
            "images_per_s_wall": (images / span) if span > 0 else None,
        }
        return out

    def reset(self) -> None:
        with self._lock:
            self._next = self._filled = 0
            self.calls = self.images = 0
            self.busy_s = 0.0
            self.first_t = self.last_t = None


@dataclass(frozen=True)
class CallTiming:
    """Seconds spent in one call, split by stage (tiles/chunks of one call are summed)."""

    pre: float
    infer: float
    post: float
    n_images: int
    total: float

    def to_dict(self) -> dict:
        return {"pre_ms": self.pre * 1e3, "infer_ms": self.infer * 1e3, "post_ms": self.post * 1e3,
                "total_ms": self.total * 1e3, "images": self.n_images,
                "images_per_s": (self.n_images / self.total) if self.total > 0 else None}

# ----------------------------------------------------------------------------- memory


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (ru_maxrss; KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float | None:
    """Current resident set size in MiB (from /proc, so no psutil needed)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil  # optional
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / (1024 * 1024)


def gpu_memory() -> dict | None:
    """{'used_mb', 'total_mb'} of the current CUDA context, only if pycuda is ALREADY imported.

    Never imports pycuda itself: a CPU-only report must not pay for (or fail on) CUDA init.
    """
    if "pycuda.driver" not in sys.modules:
        return None
    try:
        cuda = sys.modules["pycuda.driver"]
        free, total = cuda.mem_get_info()
        return {"used_mb": (total - free) / 2**20, "total_mb": total / 2**20}
    except Exception:  # no current context, driver error: memory is simply not reported
        return None

# ----------------------------------------------------------------------------- environment


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _first_version(*dists: str) -> str | None:
    for d in dists:
        v = _version(d)
        if v:
            return v
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The SIMD flags that decide INT8 speed on ORT CPU (VNNI) and fp16 (AVX512-FP16)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "asimd")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def _gpus() -> list[dict]:
    """NVIDIA GPUs from the driver's /proc files (no nvidia-smi subprocess, no CUDA init)."""
    out = []
    root = Path("/proc/driver/nvidia/gpus")
    try:
        for d in sorted(root.iterdir()):
            info = {}
            for line in (d / "information").read_text().splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    info[k.strip()] = v.strip()
            out.append({"name": info.get("Model"), "bus": d.name})
    except OSError:
        pass
    # Jetson (integrated GPU) has no /proc/driver/nvidia/gpus; its model string names the module.
    if not out:
        try:
            model = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
            if "jetson" in model.lower() or "orin" in model.lower():
                out.append({"name": model, "bus": "integrated"})
        except OSError:
            pass
    return out


def _cuda_driver() -> str | None:
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    parts = [p for p in first.split() if p[:1].isdigit() and "." in p]
    return parts[0] if parts else first.strip()


@functools.lru_cache(maxsize=1)
def _static_environment() -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count()
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu": {"model": _cpu_model(), "arch": platform.machine(), "logical_cores": os.cpu_count(),
                "usable_cores": affinity, "flags": _cpu_flags()},
        "gpus": _gpus(),
        "versions": {
            "skugen": __version__,
            "numpy": _version("numpy"),
            "onnxruntime": _first_version("onnxruntime", "onnxruntime-gpu"),
            "tensorrt": _first_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_libs"),
            "pycuda": _version("pycuda"),
            "pillow": _version("pillow"),
            "cuda_driver": _cuda_driver(),
        },
    }


def environment() -> dict:
    """Machine and library versions for a report. Cached per process (the machine does not change)."""
    env = json.loads(json.dumps(_static_environment()))  # a copy callers may edit
    env["skugen_settings"] = {k: v for k, v in os.environ.items() if k.startswith("SKUGEN_")}
    return env


def invocation() -> str | None:
    """The `skugen ...` command line of this process (for model cards), or None when not run as the CLI."""
    return "skugen " + " ".join(sys.argv[1:]) if sys.argv and "skugen" in sys.argv[0] else None

# ----------------------------------------------------------------------------- the report


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Report:
    """Everything one measurement says, with the conventions needed to read it.

    kind: 'call' (one generate/enhance), 'session' (a Pipeline's rolling stats),
        'evaluate' (quality), or 'bench' (the benchmark suite).
    latency: {'call': CallTiming.to_dict() or None, 'session': LatencyStats.summary() or None}, ms.
    throughput: images/s, for the call and for the session.
    memory: peak RSS (MiB), current RSS, GPU memory when pycuda is in use.
    quality: PSNR/SSIM as skugen.metrics.QualityResult.to_dict() (convention fields
        included), 'fid_proxy' ({'name': 'FID-proxy (fmnist-classifier features)', ...}),
        'class_fidelity'; a metric that could not be computed has 'skipped': reason.
    """

    kind: str
    schema_version: int = SCHEMA_VERSION
    created: str = field(default_factory=_now)
    skugen_version: str = __version__
    backend: str | None = None
    precision: str | None = None
    device: str | None = None
    bundle: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=environment)
    latency: dict = field(default_factory=dict)
    throughput: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON types only: numpy scalars become Python numbers, inf/NaN become None."""
        return _clean(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        from .errors import InputError

        v = d.get("schema_version")
        if not isinstance(v, int) or v > SCHEMA_VERSION:
            raise InputError(f"report schema_version {v!r} is not readable by skugen {__version__} "
                             f"(supports <= {SCHEMA_VERSION}); upgrade skugen.")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary_text(self) -> str:
        """A few human lines (what the CLI prints)."""
        lines = [f"{self.kind} report  backend={self.backend} precision={self.precision} device={self.device}"]
        if self.bundle:
            lines.append(f"  bundle {self.bundle.get('name')}  sha256 {str(self.bundle.get('sha256'))[:12]}")
        call = self.latency.get("call")
        if call:
            lines.append(f"  call: {call['images']} images in {call['total_ms']:.1f} ms "
                         f"(pre {call['pre_ms']:.1f} / infer {call['infer_ms']:.1f} / post {call['post_ms']:.1f})")
        sess = self.latency.get("session")
        if sess and sess.get("calls"):
            t = sess["total"]
            lines.append(f"  session: {sess['calls']} calls, total p50 {t['p50']:.2f} ms p90 {t['p90']:.2f} "
                         f"p99 {t['p99']:.2f} ms")
        if self.memory.get("peak_rss_mb") is not None:
            lines.append(f"  peak RSS {self.memory['peak_rss_mb']:.0f} MiB")
        for k, q in self.quality.items():
            if isinstance(q, dict):
                if q.get("skipped"):
                    lines.append(f"  {k}: skipped ({q['skipped']})")
                elif "label" in q:
                    lines.append(f"  {q['label']}: {q['value'] if q['value'] is not None else 'inf'}")
                elif "value" in q:
                    lines.append(f"  {q.get('name', k)}: {q['value']}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def memory_snapshot() -> dict:
    return {"peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb(), "gpu": gpu_memory()}


def _clean(o):
    """Recursively convert to JSON-safe values (JSON has no inf/NaN: they become None)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, deque)):
        return [_clean(v) for v in o]
    if isinstance(o, bool) or o is None or isinstance(o, (str, int)):
        return o
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if hasattr(o, "to_dict"):
        return _clean(o.to_dict())
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # numpy scalar or array (numpy not imported here on purpose)
        return _clean(o.tolist())
    return str(o)
