"""`skugen pipeline`: the main job, as plain stage calls in a row.

    teacher -> compress (prune + sensitivity + distill) -> export (ONNX + gated INT8 + bundle)
            -> verify (every available backend x precision) -> bench (+ HTML) -> summary

Resumable: each stage records a content hash of its inputs and of its outputs in
OUT/pipeline_state.json (written atomically, *after* the stage's outputs). A re-run
skips a stage whose inputs hash is unchanged and whose outputs still hash the same;
anything else is recomputed. The bundle itself is written by write_bundle (temp dir +
rename), so a kill -9 at any point never leaves a bundle that loads but is incomplete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from skugen.errors import InputError, ModelError, SkugenError
from skugen.io import atomic_write_json, atomic_write_text, jsonable, sha256_file
from skugen.report import invocation, machine

from . import zoo

PRESETS = ("fast", "full")


@dataclass(frozen=True)
class PipelineConfig:
    model: str                          # zoo name, or a model directory (card.json + model.safetensors)
    out: str
    preset: str = "fast"                # fast: the demo (minutes); full: the shipped students
    target_macs: float = 0.25           # student MACs as a fraction of the teacher's
    budget_db: float = 0.1              # INT8 budget for enhancers: max PSNR-Y loss vs fp32 (dB)
    budget_fidelity_pts: float = 1.0    # INT8 budget for generators: max class-fidelity loss (points)
    seed: int = 0
    bench_batches: tuple[int, ...] = (1, 16)
    bench_iters: int = 30
    bench_quality_n: int | None = None  # images for the bench's quality columns (None: bench default, 500)
    threads: int | None = None          # torch/ORT threads (None: all cores)
    skip_bench: bool = False
    distill_steps: int | None = None    # override the preset's distillation steps (tests, quick looks)
    calib_n: int = 128                  # INT8 calibration samples
    io_spec: str | None = None          # a user's model (--model REF): its I/O spec JSON (skugen import)
    weights: str | None = None          # ... and a factory's safetensors weights
    data: str | None = None             # ... and its data (--data: image folder, DIR/lr+DIR/hr, .npz, module:function)
    degradation: str | None = None      # --data image folder: bicubic (default) | skugen-realistic
    name: str | None = None             # --name: the bundle, Jetson package, Triton models and reports are named
                                        # NAME-student (None: the spec's `name`, else the teacher's card name)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _path_digest(p: Path) -> str | None:
    """Content hash of a stage output: a file's sha256, or for a directory the hash of its files' hashes."""
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and "engines" not in f.relative_to(p).parts
                       and not f.name.startswith("ckpt"))
        return _digest({str(f.relative_to(p)): sha256_file(f) for f in files}) if files else None
    return None


def _version() -> str:
    from skugen import __version__

    return __version__


def model_key(model_dir: Path) -> dict:
    """What a model directory contributes to a later stage's cache key: the weights, the config, the factory
    source's sha256 (copied into the directory at import) and a frozen program's sha256."""
    card = json.loads((model_dir / "card.json").read_text())
    return {"weights": sha256_file(model_dir / "model.safetensors"), "config": card.get("config"),
            "source": (card.get("source") or {}).get("sha256"), "program": (card.get("program") or {}).get("sha256")}


def _data_key(value: Any) -> Any:
    """A data spec as a cache key: a file by its sha256, a folder by its files' names, sizes and mtimes (cheap
    on a photo folder; a copied folder just re-runs), anything else (a 'module:function', a dict) as written."""
    if isinstance(value, dict):
        return {k: _data_key(v) for k, v in value.items()}
    if isinstance(value, (str, os.PathLike)) and Path(value).exists():
        p = Path(value)
        if p.is_file():
            return {"file": str(p), "sha256": sha256_file(p)}
        return {"dir": str(p), "files": _digest([(str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns)
                                                 for f in sorted(p.rglob("*")) if f.is_file()])}
    return value


class StageRunner:
    """Runs named stages with skip-if-unchanged semantics and records timings."""

    def __init__(self, out: Path):
        self.out = out
        self.state_path = out / "pipeline_state.json"
        self.state: dict = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.timings: dict[str, dict] = {}

    def run(self, name: str, inputs: Any, outputs: list[Path], fn: Callable[[], Any],
            reset: Callable[[], None] | None = None) -> Any:
        """Run `fn` unless its inputs and outputs are unchanged.

        `reset` clears a stage's partial state (e.g. a distillation checkpoint) when the stage
        last STARTED with different inputs: same inputs resume, different inputs start over.
        """
        key = _digest(inputs)
        rec = self.state.get(name)
        if rec and rec["key"] == key and all(_path_digest(p) == rec["outputs"].get(str(p)) for p in outputs):
            print(f"[pipeline] {name}: up to date, skipped", file=sys.stderr)
            self.timings[name] = {"skipped": True, "seconds": 0.0}
            return rec.get("result")
        started = self.out / ".started" / name
        if reset is not None and started.is_file() and started.read_text().strip() != key:
            reset()
        started.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(started, key)
        print(f"[pipeline] {name} ...", file=sys.stderr)
        t0 = time.time()
        result = fn()
        dt = time.time() - t0
        self.timings[name] = {"skipped": False, "seconds": round(dt, 2)}
        self.state[name] = {"key": key, "outputs": {str(p): _path_digest(p) for p in outputs},
                            "result": result, "seconds": round(dt, 2)}
        atomic_write_json(self.state_path, self.state)
        print(f"[pipeline] {name}: done in {dt:.1f}s", file=sys.stderr)
        return result


def _teacher(cfg: PipelineConfig, runner: StageRunner, out: Path) -> Path:
    """A zoo name or model directory as is; a user's model reference (+ --io-spec) imported into OUT/teacher."""
    try:
        teacher_dir = zoo.resolve(cfg.model)
    except ModelError:
        teacher_dir = None  # not a zoo name or model directory: a user's model reference
    if teacher_dir is not None:
        if cfg.io_spec or cfg.weights or cfg.data:
            raise InputError("--io-spec/--weights/--data are for a user's model reference; "
                             f"{cfg.model!r} is already a skugen model directory or zoo name (zoo models keep "
                             "their own data). Pass --data to `skugen import` (or the pipeline's model reference).")
        return teacher_dir
    from . import custom

    fmt = custom.detect_format(cfg.model)  # InputError when it is none of the accepted forms
    if not cfg.io_spec:
        raise InputError(f"{cfg.model!r} is a {fmt.replace('_', ' ')}: give its --io-spec JSON "
                         "(see docs/custom_models.md).")
    spec = custom.parse_io_spec(cfg.io_spec)
    from . import userdata

    data_spec = userdata.for_import(cfg.io_spec, cfg.data, cfg.degradation)
    raw = custom.load_io_spec(cfg.io_spec)
    # everything that shapes the imported model: its code (the factory file and the local modules it imports,
    # or the program file), factory_kwargs and the rest of the spec, the weights, the data (--data or the spec's
    # key: its files by name, size and mtime), skugen itself
    code = custom.source_digest(cfg.model) if fmt == "factory" else \
        (sha256_file(Path(cfg.model)) if Path(cfg.model).is_file() else None)
    if cfg.weights and not Path(cfg.weights).exists():
        raise InputError(f"--weights {cfg.weights} does not exist. Check the path.")
    key = {"ref": cfg.model, "spec": raw, "parsed": spec, "code": code, "name": cfg.name,
           "data": _data_key(data_spec.to_dict()) if data_spec else None, "skugen": _version(),
           "weights": sha256_file(Path(cfg.weights)) if cfg.weights else None}
    # the model's name: --name, the spec's, else the factory function's / the program file's
    name = cfg.name or custom.spec_name(raw) or (cfg.model.rpartition(":")[2] if fmt == "factory"
                                                   else Path(cfg.model).stem)
    teacher_dir = out / "teacher"
    runner.run("import", key, [teacher_dir],  # the whole directory: weights, card, the copied source
               lambda: str(custom.import_model(cfg.model, cfg.io_spec, teacher_dir, cfg.weights, name,
                                               data=data_spec)),
               reset=lambda: shutil.rmtree(teacher_dir, True))
    return teacher_dir


def _compress_custom(cfg: PipelineConfig, runner: StageRunner, teacher_dir: Path, teacher_key: dict,
                     student_dir: Path) -> Path:
    """A user's model: MetaPruner + output distillation for factories; frozen graphs skip compression."""
    from . import custom

    card = json.loads((teacher_dir / "card.json").read_text())
    if card["config"].get("format") != "factory":
        why = (f"skipped: a {card['config']['format'].replace('_', ' ')} is a frozen graph (structured pruning needs "
               "the module structure); the bundle holds the teacher. Import a factory to compress.")
        print(f"[pipeline] compress: {why}", file=sys.stderr)
        runner.timings["compress"] = {"skipped": True, "seconds": 0.0, "reason": why}
        return teacher_dir
    steps = cfg.distill_steps if cfg.distill_steps is not None else custom.DISTILL_STEPS[cfg.preset]

    def do() -> dict:
        from .compress import CompressConfig, compress

        d = compress(str(teacher_dir), CompressConfig(out=str(student_dir), target_macs_frac=cfg.target_macs,
                                                     distill_steps=steps, seed=cfg.seed)).out
        c = json.loads((d / "card.json").read_text())
        return {"macs": c.get("macs"), "params": c.get("params"), "metrics": c.get("metrics")}

    runner.run("compress", {"teacher": teacher_key, "target": cfg.target_macs, "steps": steps, "seed": cfg.seed,
                            "data": _data_key(getattr(cfg, "data", None)), "skugen": _version()},
               [student_dir / "model.safetensors"], do, reset=lambda: shutil.rmtree(student_dir, True))
    return student_dir


def _available_backends() -> list[str]:
    from skugen.backends import tensorrt_usable

    return ["onnxruntime"] + (["tensorrt"] if tensorrt_usable() else [])


def _bench_backends() -> tuple[str, ...]:
    """The CPU engines installed here (ONNX Runtime, OpenVINO) and the eager teacher: the summary names the fastest."""
    from skugen.backends import registry

    return (*registry.cpu_engines(), "torch")


def run_pipeline(cfg: PipelineConfig) -> dict:
    if cfg.preset not in PRESETS:
        raise InputError(f"--preset must be one of {PRESETS}, got {cfg.preset!r}.")
    if not 0.0 < cfg.target_macs < 1.0:
        raise InputError(f"--target-macs must be in (0, 1), got {cfg.target_macs}.")
    for what, v in (("--batch", cfg.bench_batches), ("--iters", (cfg.bench_iters,)), ("--calib", (cfg.calib_n,)),
                    ("--threads", (cfg.threads or 1,))):
        if not v or any(not isinstance(x, int) or x < 1 for x in v):  # checked before minutes of stages, not after
            raise InputError(f"{what} must be integers >= 1, got {v}.")
    out = Path(cfg.out)
    if out.is_file():
        raise InputError(f"--out {out} is a file; pass a directory for the run (new, or an earlier run to resume).")
    # a run is known by its state file, or by the stage markers of one interrupted in its first stage
    is_run = (out / "pipeline_state.json").is_file() or (out / ".started").is_dir()
    if out.is_dir() and any(out.iterdir()) and not is_run:
        raise InputError(f"--out {out} is a non-empty directory that is not a pipeline run (no pipeline_state.json); "
                         "a run writes several directories there. Pass a new directory, or an earlier run to resume.")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    runner = StageRunner(out)
    t_start = time.time()

    # 1. teacher: resolve and fingerprint (weights, config, source and program sha256s drive every later key)
    teacher_dir = _teacher(cfg, runner, out)
    teacher_key = model_key(teacher_dir)
    tcard = json.loads((teacher_dir / "card.json").read_text())
    family = tcard.get("config", {}).get("family")
    name = cfg.name or tcard.get("name") or teacher_dir.name

    # 2. compress: prune (with sensitivity report) + distill
    student_dir = out / "student"
    if family == "custom":
        student_dir = _compress_custom(cfg, runner, teacher_dir, teacher_key, student_dir)
    else:
        from .compress import CompressConfig, compress

        ccfg = CompressConfig(out=str(student_dir), preset=cfg.preset, target_macs_frac=cfg.target_macs, seed=cfg.seed,
                              distill_steps=cfg.distill_steps,
                              threads=cfg.threads, command=invocation())

        def do_compress() -> dict:
            r = compress(str(teacher_dir), ccfg)
            return {"macs": r.card.get("macs"), "params": r.card.get("params"), "metrics": r.card.get("metrics")}

        runner.run("compress", {"teacher": teacher_key, "cfg": {**asdict(ccfg), "command": None},
                                "data": _data_key(getattr(cfg, "data", None)), "skugen": _version()},
                   [student_dir / "model.safetensors"], do_compress, reset=lambda: shutil.rmtree(student_dir, True))

    # 3. export: ONNX fp32 + quality-gated INT8 + bundle
    bundle_dir = out / "bundle"
    from .bundle import BundleConfig, export_bundle

    from .quantize import QualityBudget

    bcfg = BundleConfig(int8=True, budget=QualityBudget(max_psnr_drop_db=cfg.budget_db,
                                                        max_fidelity_drop_pts=cfg.budget_fidelity_pts),
                        calib_n=cfg.calib_n, name=name if student_dir == teacher_dir else f"{name}-student",
                        # fast (the demo, minutes): FP32 + the gated ONNX Runtime / TensorRT INT8 only; the full preset
                        # also gates the FP16 graph and the OpenVINO INT8 IR (each gate costs minutes on 2 cores)
                        fp16=None if cfg.preset == "full" else False,
                        openvino=None if cfg.preset == "full" else False)
    runner.run("export", {"student": model_key(student_dir), "teacher": teacher_key, "cfg": asdict(bcfg),
                          "data": _data_key(getattr(cfg, "data", None)), "skugen": _version()},
               [bundle_dir / "manifest.json"], lambda: str(export_bundle(student_dir, bundle_dir, bcfg)))

    # 4. verify on every available backend x precision
    from skugen.bundle import load_bundle
    from skugen.verify import verify_bundle

    bundle = load_bundle(bundle_dir)

    def verify_all() -> dict:
        res = {}
        if bundle.kind == "diffusion":  # both graphs, every precision the bundle ships, on ONNX Runtime
            from skugen.verify import verify_graphs

            for p in bundle.precisions:
                for r in verify_graphs(bundle, "onnxruntime", p):
                    res[f"onnxruntime/{p}/{r.name}"] = jsonable(r, finite=False)
            atomic_write_json(out / "reports" / "verify.json", res)
            return {k: bool(v.get("passed")) for k, v in res.items()}
        for backend in _available_backends():
            precs = bundle.precisions if backend == "onnxruntime" else ["fp16"] + (["int8"] if "int8" in bundle.precisions else [])
            for p in precs:
                r = verify_bundle(bundle, backend=backend, precision=p)
                res[f"{backend}/{p}"] = jsonable(r, finite=False)
        atomic_write_json(out / "reports" / "verify.json", res)
        return {k: bool(v.get("passed")) for k, v in res.items()}

    verify = runner.run("verify", {"bundle": bundle.manifest_sha256, "backends": _available_backends(),
                                   "skugen": _version()},
                        [out / "reports" / "verify.json"], verify_all)
    if not all(verify.values()):
        raise SkugenError(f"verification failed: {verify}. See {out / 'reports' / 'verify.json'}.")

    # 5. bench: student int8/fp32 on ORT beside the teacher in eager PyTorch, one run; + HTML
    bench_json, bench_html = out / "reports" / "bench.json", out / "reports" / "bench.html"
    if not cfg.skip_bench and family == "diffusion":  # generate() end to end per engine, beside the eager teacher
        from .diffusion_bench import DiffusionBenchConfig, run_diffusion_bench, save

        dcfg = DiffusionBenchConfig(bundle=str(bundle_dir), teacher=str(teacher_dir), threads=cfg.threads,
                                    seed=cfg.seed, iters=3 if cfg.preset == "fast" else 5,
                                    quality_n=100 if cfg.preset == "fast" else 500)
        runner.run("bench", {"bundle": bundle.manifest_sha256, "cfg": asdict(dcfg), "teacher": teacher_key,
                             "skugen": _version()},
                   [bench_json, bench_html], lambda: save(run_diffusion_bench(dcfg), bench_json, bench_html))
    elif not cfg.skip_bench:
        from skugen.bench import BenchConfig, run_bench

        # the teacher also on the student's engine (its FP32 ONNX on ONNX Runtime): the like-for-like headline
        teacher_bundle = out / "teacher_bundle"
        runner.run("export-teacher", {"teacher": teacher_key, "student_bundle": bundle.manifest_sha256},
                   [teacher_bundle / "manifest.json"],
                   lambda: str(export_bundle(teacher_dir, teacher_bundle, BundleConfig(int8=False))),
                   reset=lambda: shutil.rmtree(teacher_bundle, True))
        bench_cfg = BenchConfig(bundles=(str(bundle_dir), str(teacher_bundle)), backends=_bench_backends(),
                                precisions=("fp32", "int8"), batches=tuple(cfg.bench_batches),
                                iters=cfg.bench_iters, warmup=5, threads=cfg.threads, seed=cfg.seed,
                                quality_n=cfg.bench_quality_n,
                                teacher=str(teacher_dir))
        runner.run("bench", {"bundle": bundle.manifest_sha256, "cfg": asdict(bench_cfg), "teacher": teacher_key,
                             "skugen": _version()},
                   [bench_json, bench_html],
                   lambda: (run_bench(bench_cfg).save(json_path=bench_json, html_path=bench_html), None)[1])

    # 6. summary: three lines a human reads first
    if family == "diffusion":
        summary = _diffusion_summary(bundle, bench_json if not cfg.skip_bench else None)
    else:
        summary = _summary(bundle, bench_json if not cfg.skip_bench else None, out / "teacher_bundle")
    report = {"schema_version": 1, "kind": "pipeline", "config": asdict(cfg), "out": str(out), "teacher": str(teacher_dir), "student": str(student_dir),
              "bundle": str(bundle_dir), "verify": verify, "stages": runner.timings,
              "wall_time_s": round(time.time() - t_start, 1), "summary": summary,
              "name": bundle.name,
              "reports": {k: (str(p) if p.is_file() else None)  # only files this run has: None, not a dead path
                          for k, p in (("bench_json", bench_json), ("bench_html", bench_html),
                                       ("verify", out / "reports" / "verify.json"),
                                       ("sensitivity", student_dir / "sensitivity.json"))},
              "machine": machine(cores=os.cpu_count())}
    atomic_write_json(out / "report.json", report)
    return report


def _summary(bundle, bench_json: Path | None, teacher_bundle: Path | None = None) -> dict:
    """The headline numbers, all read from measurements of this run (bench JSON + bundle).

    Two speed-ups, labelled: INT8 student vs the teacher on the SAME engine (the teacher's FP32 ONNX on ONNX
    Runtime: like for like), and vs the teacher in eager PyTorch (what a user runs before skugen)."""
    quality = bundle.spec.quality or {}
    s: dict = {"bundle_bytes": sum(f.stat().st_size for f in bundle.root.rglob("*") if f.is_file()),
               "bundle_int8_onnx_bytes": (bundle.model_path("int8").stat().st_size
                                          if "int8" in bundle.precisions else None),
               "int8_outcome": quality.get("int8", {}).get("outcome"),
               "data": (quality.get("data") or {}).get("source")
               or "skugen default (GroceryStore blur+noise+JPEG crops / N(0,1) latents)",
               "baseline": quality.get("baseline")}
    if not (bench_json and bench_json.is_file()):
        return s
    from skugen.bench import flat_row

    cells = json.loads(bench_json.read_text()).get("cells", [])
    tb = str(teacher_bundle) if teacher_bundle is not None else None
    rows = [{**flat_row(c), "_teacher_bundle": tb is not None and str(c.get("bundle_path")) == tb} for c in cells]
    ok = [r for r in rows if r["status"] == "ok"]
    batch = max((r["batch"] for r in ok), default=None)
    pick = {(r["backend"], r["precision"], r["_teacher_bundle"]): r for r in ok if r["batch"] == batch}
    t, i8, f32 = pick.get(("torch", "fp32", False)), pick.get(("onnxruntime", "int8", False)), \
        pick.get(("onnxruntime", "fp32", False))
    t_ort = pick.get(("onnxruntime", "fp32", True))
    s["batch"] = batch
    if t and i8:
        s["speedup_int8_vs_teacher"] = t["p50_ms"] / i8["p50_ms"]          # kept: vs eager PyTorch
        s["speedup_int8_vs_teacher_torch"] = s["speedup_int8_vs_teacher"]
        s["throughput_ips"] = {"teacher_torch_fp32": t["throughput_ips"], "student_ort_int8": i8["throughput_ips"]}
    if t_ort and i8:
        s["speedup_int8_vs_teacher_same_engine"] = t_ort["p50_ms"] / i8["p50_ms"]
        s.setdefault("throughput_ips", {})["teacher_ort_fp32"] = t_ort["throughput_ips"]
    if f32 and i8:
        s["speedup_int8_vs_fp32_student"] = f32["p50_ms"] / i8["p50_ms"]
    students = [r for (be, _p, tbun), r in pick.items() if be != "torch" and not tbun]
    if students:  # the fastest engine x precision of the student measured in this run
        best = min(students, key=lambda r: r["p50_ms"])
        s["fastest"] = {"backend": best["backend"], "precision": best["precision"], "p50_ms": best["p50_ms"],
                        "vs_student_ort_fp32": f32["p50_ms"] / best["p50_ms"] if f32 else None,
                        "vs_teacher_torch": t["p50_ms"] / best["p50_ms"] if t else None}
    q = {}
    for name, r in (("teacher", t), ("student_int8", i8), ("student_fp32", f32)):
        if r:
            q[name] = {k: r[k] for k in ("class_fidelity", "fid_proxy", "psnr_teacher_db", "ssim_teacher", "psnr_gt_db",
                                        "ssim_gt") if r.get(k) is not None}
    s["quality"] = q
    if bundle.kind == "generator":  # the generators' sanity check: the student against its teacher
        from .userdata import generator_baseline

        s["baseline"] = generator_baseline(q.get("student_fp32", {}).get("psnr_teacher_db"))
    return s


def _diffusion_summary(bundle, bench_json: Path | None) -> dict:
    q = bundle.spec.quality or {}
    s: dict = {"kind": "diffusion", "bundle_bytes": sum(f.stat().st_size for f in bundle.root.rglob("*") if f.is_file()),
               "int8_outcome": (q.get("int8") or {}).get("outcome"), "steps": bundle.spec.diffusion.steps,
               "data": "Fashion-MNIST with generated prompts (export/prompts.py)"}
    if bench_json and bench_json.is_file():
        rep = json.loads(bench_json.read_text())
        s["bench"] = rep.get("summary")
        s["teacher"] = {k: (rep.get("teacher") or {}).get(k) for k in ("steps", "p50_ms", "class_fidelity", "fid_proxy")}
    return s


def format_summary(report: dict) -> str:
    s = report["summary"]
    if s.get("kind") == "diffusion":
        b, t = s.get("bench") or {}, s.get("teacher") or {}
        lines = [f"report: {report['reports'].get('bench_html') or 'no benchmark report (--skip-bench)'}  "
                 f"(JSON: {Path(report['out']) / 'report.json'})"]
        if b:
            lines.append(f"speed-up vs teacher: {b['speedup_vs_teacher']:.1f}x end to end ({b['best_cell']}, "
                         f"{s['steps']} steps, {b['best_p50_ms']:.0f} ms per call, vs the teacher in eager PyTorch at "
                         f"{t.get('steps')} steps with guidance, {b['teacher_p50_ms']:.0f} ms)")
            lines.append(f"quality vs teacher: class fidelity {b['fidelity_delta_pts']:+.1f} pts, FID-proxy "
                         f"(fmnist-classifier features) {b['fid_ratio_vs_teacher']:.2f}x the teacher's")
        lines.append(f"INT8: {s.get('int8_outcome')}; data: {s['data']}; bundle size {s['bundle_bytes'] / 1e6:.2f} MB")
        return "\n".join(lines)
    html = report["reports"].get("bench_html")
    lines = [f"report: {html or 'no benchmark report (--skip-bench)'}  (JSON: {Path(report['out']) / 'report.json'})"]
    if "speedup_int8_vs_teacher_same_engine" in s or "speedup_int8_vs_teacher" in s:
        parts = []
        if "speedup_int8_vs_teacher_same_engine" in s:
            parts.append(f"{s['speedup_int8_vs_teacher_same_engine']:.2f}x like for like (teacher FP32 ONNX on ONNX "
                         "Runtime too)")
        if "speedup_int8_vs_teacher" in s:
            parts.append(f"{s['speedup_int8_vs_teacher']:.2f}x vs the teacher in eager PyTorch")
        lines.append(f"speed-up vs teacher: {'; '.join(parts)} (INT8 student on ONNX Runtime, batch {s['batch']}, "
                     f"p50 per call); INT8 vs FP32 student {s.get('speedup_int8_vs_fp32_student', float('nan')):.2f}x")
    else:
        lines.append("speed-up vs teacher: not benchmarked")
    if s.get("fastest"):
        f = s["fastest"]
        ratios = [f"{v:.2f}x {what}" for v, what in ((f.get("vs_student_ort_fp32"), "the FP32 student on ONNX Runtime"),
                                                      (f.get("vs_teacher_torch"), "the teacher in eager PyTorch")) if v]
        lines.append(f"fastest engine here: {f['backend']} {f['precision']}, {f['p50_ms']:.2f} ms per call at batch "
                     f"{s['batch']}" + (f" ({'; '.join(ratios)})" if ratios else ""))
    q = s.get("quality") or {}
    te, st = q.get("teacher", {}), q.get("student_int8", {})
    if "class_fidelity" in st:
        lines.append(f"quality vs teacher: class fidelity {st['class_fidelity']:.3f} vs {te.get('class_fidelity', float('nan')):.3f}, "
                     f"FID-proxy (fmnist-classifier features) {st.get('fid_proxy', float('nan')):.3f} vs "
                     f"{te.get('fid_proxy', float('nan')):.3f}; PSNR vs teacher output {st.get('psnr_teacher_db', float('nan')):.2f} dB")
    elif "psnr_gt_db" in st:
        lines.append(f"quality vs teacher: PSNR-Y vs ground truth {st['psnr_gt_db']:.2f} dB (student INT8) vs "
                     f"{te.get('psnr_gt_db', float('nan')):.2f} dB (teacher); PSNR vs teacher output "
                     f"{st.get('psnr_teacher_db', float('nan')):.2f} dB")
    elif "psnr_teacher_db" in st:  # e.g. a user's generator the fmnist-classifier cannot judge
        lines.append(f"quality vs teacher: PSNR vs teacher output {st['psnr_teacher_db']:.2f} dB (student INT8, same "
                     "seeds); class fidelity not measured (no classifier for these classes)")
    else:
        lines.append("quality vs teacher: n/a")
    b = s.get("baseline") or {}
    if b.get("bicubic_psnr_y_db") is not None:
        lines.append(f"baseline: bicubic {b['bicubic_psnr_y_db']:.2f} dB PSNR-Y vs the FP32 student "
                     f"{b['fp32_psnr_y_db']:.2f} dB ({b['margin_db']:+.2f} dB) on the gate's eval set")
    if b.get("warning"):
        lines.append(f"WARNING: {b['warning']}")
    lines.append(f"data: {s.get('data')}")
    i8 = s.get("bundle_int8_onnx_bytes")
    lines.append(f"bundle size: {s['bundle_bytes'] / 1e6:.2f} MB on disk" + (f" (INT8 ONNX {i8 / 1e6:.2f} MB)" if i8 else ""))
    return "\n".join(lines)
