"""`run_bench(cfg)`: run the whole matrix and return a BenchReport. It writes nothing.

    cfg = BenchConfig(bundles=("runs/demo/bundle",), backends=("onnxruntime", "torch"),
                      precisions=("fp32", "int8"), batches=(1, 8, 32), teachers=("export/zoo/fmnist-cgan",))
    rep = run_bench(cfg)                       # BenchReport (the CLI prints and saves this same object)
    rep.save_json("bench.json"); rep.save_csv("bench.csv"); rep.save_md("bench.md"); rep.save_html("bench.html")

The order of a run: GEMM ceilings (skugen.bench.ceilings), then every cell
(skugen.bench.cells: skip reasons, timing, facts), the end-of-run ceiling re-time
(load drift), then quality once per backend x precision (skugen.bench.quality).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from ..errors import BackendUnavailable, InputError, SkugenError
from . import cells as _cells
from .ceilings import ceiling_ms, fp32_gemm_ceiling, measure_ceilings
from .cells import (_fill_timing, _gpu_memory, _load_target, _make_post, _make_pre, _model_facts, _model_family,
                    _model_kind, _new_cell, _skip_reason, _Target, _time_cell, _vm, resolve_model_dir)
from .config import BenchConfig
from .quality import _run_quality
from .report import BenchReport, _clean
from .views import speed_summary

# ----------------------------------------------------------------------------- progress


class _Progress:
    """tqdm over the whole matrix when tqdm is installed (it is a toolchain dependency), else silent."""

    def __init__(self, total: int, enabled: bool) -> None:
        from .. import config

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
    from ..report import environment as base_env

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


# ----------------------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, argv: list[str] | None = None) -> BenchReport:
    """Run the whole matrix and return the report; nothing is written (see the module docstring)."""
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

    trt = _cells._tensorrt_status() if "tensorrt" in cfg.backends else (False, "not selected")
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
                runner = _cells._make_runner(t, be, prec, threads)
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
    return rep
