"""The one report type: environment + config + latency + throughput + memory + quality.

`Pipeline` calls, `Pipeline.report()`, `Pipeline.evaluate()`, the CLI and the
benchmarks all produce the same `Report` dataclass, so a number printed by the
CLI is the number a script gets back.

Public helpers reused by the benchmark suite:
- `environment()`: machine + library versions (cached per process; no subprocess,
  no heavy imports, so it is cheap enough for the cold-start path; probe=True adds the
  benchmark's probes), and `machine()`, its short form for model cards;
- `ReportBase`: the report family's to_dict/to_json/save (schema_version, kind, environment);
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
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterable

from . import __version__
from .io import atomic_write_json, jsonable

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
    """The SIMD flags that decide INT8 speed on ORT CPU (VNNI), fp16 (AVX512-FP16) and OpenVINO's BF16/INT8 (AMX)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8",
              "amx_tile", "asimd")
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


def environment(*, probe: bool = False, **extra: Any) -> dict:
    """The one environment builder: machine and library versions for a report (cached per process).

    probe=True adds what a benchmark also needs and costs a little (torch if already loaded, onnx,
    the CUDA toolkit via nvcc, the Jetson power mode via nvpmodel, the load average);
    `extra` fields (e.g. threads=4) are set at the top level.
    """
    env = json.loads(json.dumps(_static_environment()))  # a copy callers may edit
    env["skugen_settings"] = {k: v for k, v in os.environ.items() if k.startswith("SKUGEN_")}
    if probe:
        _probe(env)
    env.update(extra)
    return env


def machine(**extra: Any) -> dict:
    """The short machine record of a model card or toolchain report: {'cpu', **extra, 'python'}.

    The same facts as environment() (cpu is platform.processor(), else the architecture); pass what the
    caller adds, e.g. machine(threads=torch.get_num_threads(), torch=torch.__version__). A `cpu` in
    `extra` replaces the default one.
    """
    env = _static_environment()
    out = {"cpu": platform.processor() or env["cpu"]["arch"], **extra}
    out.setdefault("python", env["python"])
    return out


def _probe(env: dict) -> None:
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
    env["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _cmd_version(cmd: list[str], pattern: str) -> str | None:
    import re
    import shutil
    import subprocess

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
    import re
    import shutil
    import subprocess

    if not shutil.which("nvpmodel"):
        return None
    try:
        r = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": str(e)}
    text = (r.stdout or r.stderr).strip()
    m = re.search(r"Power Mode:\s*(\S+)", text)
    return {"mode": m.group(1) if m else None, "raw": text[:500]}


def invocation() -> str | None:
    """The `skugen ...` command line of this process (for model cards), or None when not run as the CLI."""
    return "skugen " + " ".join(sys.argv[1:]) if sys.argv and "skugen" in sys.argv[0] else None

# ----------------------------------------------------------------------------- the report


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ReportBase:
    """The one report family (a mixin for dataclasses): Report, skugen.bench.BenchReport,
    skugen.verify.VerifyReport. Each has `schema_version` and `kind` fields, carries an environment,
    and is written the same way: `to_dict()` through the JSON cleaner (skugen.io.jsonable),
    `to_json()`, `save(path)` through skugen.io's atomic writer. The toolchain's dict reports
    (pipeline report.json, reports/quantization.json) carry the same `schema_version`.

    FINITE: the NaN/inf policy of to_dict (True: they become None, strict JSON).
    """

    FINITE: ClassVar[bool] = True

    def _fields(self) -> dict:
        """The fields written, in order (a subclass may leave some out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return jsonable(self._fields(), finite=self.FINITE)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=not self.FINITE)

    def save_json(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    def save(self, path: str | os.PathLike) -> Path:
        return self.save_json(path)

    @classmethod
    def check_schema(cls, d: dict, supported: int, what: str) -> int:
        """d's schema_version, or InputError when this skugen cannot read it."""
        from .errors import InputError

        v = d.get("schema_version")
        if not isinstance(v, int) or v > supported:
            raise InputError(f"{what} schema_version {v!r} is not readable by skugen {__version__} "
                             f"(supports <= {supported}); upgrade skugen.")
        return v


@dataclass
class Report(ReportBase):
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

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        cls.check_schema(d, SCHEMA_VERSION, "report")
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

