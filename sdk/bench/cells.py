"""One cell of the bench matrix: what runs (targets), why a cell cannot run here, and its timing and facts.

The matrix is bundle x backend x precision x batch. A cell that cannot run here (no
GPU, no TensorRT, a precision the bundle lacks, fp16 on ONNX Runtime's CPU provider,
batch > io.max_batch) carries `status: "skipped"` and the reason, so a report never
hides what was not measured.

One call of a cell is what an application does per request, split into stages:
    pre   = building the model inputs: latents + one-hot (generator), or uint8 HWC
            photos -> float NCHW through skugen.prepost / skugen.kernels (enhancer);
    infer = Runner.infer (ONNX Runtime, TensorRT, or eager PyTorch);
    post  = float model output -> uint8 images (skugen.kernels postprocess).
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backends.base import Runner
from ..backends.torch import FAMILY_KIND
from ..errors import InputError, ModelError, need_extra
from .ceilings import ceiling_gmacs, ceiling_ms, ceiling_name
from .config import BenchConfig


# ----------------------------------------------------------------------------- small helpers


def _percentiles(samples_s: list[float]) -> dict:
    """ms stats of second samples: p50/p90/p99/mean (skugen.report.percentiles) + min."""
    from ..report import percentiles

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
    from ..report import gpu_memory

    return gpu_memory()


# ----------------------------------------------------------------------------- model directories


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
    return FAMILY_KIND.get(fam)


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
    from ..bundle import load_bundle

    b = load_bundle(path)
    spec = b.spec
    kind = b.kind
    if kind == "diffusion":
        from ..errors import InputError

        raise InputError(f"bundle {b.name!r} is a diffusion bundle: the bench matrix times one model call, a "
                         "sampling run is N denoiser calls plus the text encoder. Time the denoiser step per engine "
                         "with `skugen tune BUNDLE`, and whole generate() calls with `skugen generate ... --json` "
                         "(its report splits text / denoise loop / post).")
    max_batch = int(spec.max_batch)
    hw = None
    scale = 1
    if kind == "enhancer":
        side = cfg.tile or spec.tile_size or 64
        hw = (int(side), int(side))
        scale = int(spec.scale)
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
    io = t.bundle.spec.io
    d: dict = {}
    if t.kind == "generator":
        d["z_dim"] = int(io.input("z").shape[1])
        d["n_classes"] = int(io.input("onehot").shape[1])
        out = io.outputs[0].shape
        d["out_ch"] = int(out[1]) if isinstance(out[1], int) else 1
    else:
        c = io.input("lr").shape[1]
        d["in_ch"] = int(c) if isinstance(c, int) else 3
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
    if backend == "openvino":
        from ..backends import backend_status

        st = backend_status("openvino")
        if not st.usable:
            return st.reason
        if precision == "fp16":
            return "fp16 on OpenVINO's CPU plugin: use bf16 (native-BF16 CPUs) or a TensorRT engine (--backends tensorrt)"
        need = "fp32" if precision == "bf16" else precision
        if need not in t.bundle.precisions:
            return f"the bundle has no {need} model for OpenVINO {precision} (it has {', '.join(t.bundle.precisions)})"
        if precision == "bf16":
            from ..backends.openvino import native_bf16

            ok, why = native_bf16()
            if not ok:
                return f"bf16 is not native here: {why}"
        return None
    if backend == "onnxruntime":
        if precision == "bf16":
            return "bf16 on ONNX Runtime's CPU provider: no bf16 path; bf16 is an OpenVINO precision (--backends openvino)"
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
        if precision == "bf16":
            return "bf16 is not a TensorRT precision in skugen (fp16 / int8 engines); bf16 runs on OpenVINO"
        if precision == "int8" and "int8" not in t.bundle.precisions:
            return f"the bundle has no int8 (Q/DQ) model for TensorRT to build from (it has {', '.join(t.bundle.precisions)})"
        if "fp32" not in t.bundle.precisions and precision != "int8":
            return "the bundle has no fp32 ONNX for TensorRT to build fp32/fp16 engines from"
        return None
    return f"unknown backend {backend}"


def _tensorrt_status() -> tuple[bool, str]:
    """(usable, why not) for TensorRT here, from the backend registry."""
    from ..backends import backend_status

    s = backend_status("tensorrt")
    if s.usable:
        return True, ""
    return False, f"no NVIDIA GPU with TensorRT + pycuda here: {s.reason}"


def _make_runner(t: _Target, backend: str, precision: str, threads: int) -> Runner:
    from ..backends import runner_for

    if backend == "torch":
        return runner_for(t.bundle, "torch", precision, threads=threads, model_dir=t.torch_model[1])
    return runner_for(t.bundle, backend, precision, threads=threads)

# ----------------------------------------------------------------------------- workloads (pre / post)


def _make_pre(t: _Target, batch: int, seed: int, device: str) -> Callable[[int], dict[str, np.ndarray]]:
    from .. import prepost

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
    from .. import prepost

    proc = prepost.get_processor(device)  # numpy reference on CPU, CUDA kernels next to a GPU model
    vr = t.bundle.spec.value_range

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
    spec = t.bundle.spec
    facts: dict = {}
    if backend == "torch":
        model, d = t.torch_model
        card = json.loads((d / "card.json").read_text()) if d else {}
        w = d / "model.safetensors" if d else None
        if not card.get("macs") and model == "source":
            # The bundle's source model is what was exported: the manifest's counts are its counts.
            fp32 = (spec.models.get("fp32") or next(iter(spec.models.values()))).to_dict()
            card = {**card, **{k: fp32[k] for k in ("macs", "macs_input", "params") if k in fp32}}
        if not card.get("macs") and d is not None:
            card = {**card, **_count_torch(d, t)}
        facts.update(model=model, file=str(w) if w else None, bytes=w.stat().st_size if w and w.is_file() else None,
                     params=card.get("params"))
        facts["macs_per_image"], facts["macs_source"] = _macs_per_image(card, t.kind, t.input_hw)
        return facts
    runs = "fp32" if precision == "bf16" else precision  # bf16 is OpenVINO's runtime precision of the fp32 file
    v = spec.models.get(runs) or spec.models.get("fp32")
    entry = v.to_dict() if v is not None else {}
    path = t.bundle.model_path(runs) if runs in t.bundle.precisions else None
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
        meta = {"macs": entry["macs"], "trace_size": (spec.extra.get("export") or {}).get("trace_size", 32)}
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
        # The same runtime's GEMM at the cell's precision (skugen.bench.ceilings.CEILING_OF): ORT cells against
        # ORT's fp32 / u8s8 GEMM, OpenVINO cells against OpenVINO's f32 / bf16 / int8 GEMM.
        name = ceiling_name(cell["backend"], cell["precision"]) or "fp32_gemm"
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
