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

import sys
import time

from ..errors import BackendUnavailable, InputError, SkugenError
from ..io import jsonable
from ..progress import Progress
from ..report import environment
from . import cells as _cells
from .ceilings import ceiling_ms, fp32_gemm_ceiling, measure_ceilings
from .cells import (_fill_timing, _gpu_memory, _load_target, _make_post, _make_pre, _model_facts, _model_family,
                    _model_kind, _new_cell, _skip_reason, _Target, _time_cell, _vm, resolve_model_dir)
from .config import BenchConfig
from .quality import _run_quality
from .report import BenchReport
from .views import speed_summary

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
    prog = Progress(len(combos) * len(cfg.batches) + n_quality, desc="bench", unit="cell", enabled=cfg.progress)

    ceilings = measure_ceilings(threads, cfg.ceiling_size, engines=tuple(cfg.backends)) if cfg.ceilings else {}
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
                    c["runner"] = jsonable(runner.info)
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

    for t in targets:  # who made each bundle (skugen.signing): the report says who signed, or "unsigned"
        references.setdefault(t.name, {})["signature"] = {**t.bundle.signature.to_dict(),
                                                           "summary": t.bundle.signature.describe()}
    env = environment(probe=True, threads=threads)
    from ..tune import engine_versions

    env.setdefault("versions", {}).update({k: v for k, v in engine_versions().items() if v})  # openvino too
    rep = BenchReport(config=cfg.to_dict(), cells=cells, ceilings=ceilings,
                      environment=env, command=list(argv if argv is not None else sys.argv),
                      references=references, notes=notes, samples=samples)
    rep.summary = speed_summary(rep.to_dict())
    rep.wall_s = time.perf_counter() - t_run
    return rep
