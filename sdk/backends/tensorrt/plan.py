"""TensorRT build planning: everything about an engine build that needs no GPU.

Pure functions over a parsed bundle manifest (skugen.manifest.Manifest) and plain dicts, so the CPU test suite can
check them thoroughly. `skugen.backends.tensorrt.build` turns a `BuildPlan` into
TensorRT API calls (10.3 through 11.x, one strongly-typed path); nothing here imports tensorrt or pycuda.

Strongly typed builds only: every layer runs in the type the ONNX graph gives its tensors, so a plan's
precision only picks WHICH graph is parsed (fp32 -> model.fp32.onnx, fp16 -> the bundle's FP16 graph,
int8 -> the TensorRT Q/DQ twin). There are no precision builder flags and no calibration-based implicit INT8;
TensorRT 11 has neither, and NVIDIA's explicit-quantization guide uses Q/DQ + strong typing on 10.x too.

What lives here:
- `BuildConfig`: the frozen build settings (batch range, spatial range, workspace, ...);
- `make_build_plan`: manifest + precision + config -> source ONNX, optimisation-profile shapes per
  input, quantization mode;
- `network_creation_flags`: the NetworkDefinitionCreationFlag names for a TensorRT version;
- engine identity: `device_slug`, `engine_key`, `timing_cache_path`;
- the engine.json sidecar: `engine_metadata`, and `engine_mismatches`, which
  compares a sidecar with the current device/TensorRT/ONNX;
- `layer_precisions` / `precision_counts`: read the engine inspector's JSON.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from skugen.errors import BundleError, InputError, SkugenError
from skugen.manifest import Manifest, Variant

PRECISIONS = ("fp32", "fp16", "int8")
# 2: strongly typed builds (no builder precision flags, no implicit INT8; fp16 from the FP16 graph). A
# schema-1 engine (weakly typed, FP16/INT8 flags) no longer matches and is rebuilt / reported as stale.
SIDECAR_SCHEMA = 2
ENGINE_FILE = "engine.plan"
SIDECAR_FILE = "engine.json"

# The TensorRT versions skugen builds with: 10.3 (JetPack 6, the first with STRONGLY_TYPED) <= v < 12.
TRT_MIN, TRT_MAX = (10, 3), (12, 0)
TYPING = "strong"  # recorded in the sidecar; the only mode skugen builds

# Quantization modes recorded in the plan and the sidecar.
QUANT_NONE = "none"
QUANT_QDQ = "explicit-qdq"          # the TensorRT twin of model.int8.onnx carries QuantizeLinear/DequantizeLinear

_REEXPORT_INT8 = ("Run skugen's quantizer first: `skugen export STUDENT --int8` (or `skugen quantize`) writes the "
                  "Q/DQ graph and its TensorRT twin.")

# Default smallest spatial side of an enhancer profile (skugen bench's --tile floor too).
MIN_HW = 8

# Axis names that mean "batch" / "height" / "width" in a manifest io shape.
_BATCH_NAMES = {"batch", "batch_size", "n", "b"}
_H_NAMES = {"height", "h", "in_height", "tile_h"}
_W_NAMES = {"width", "w", "in_width", "tile_w"}

# The fields of a sidecar that must equal this machine's for the plan to be loadable.
IDENTITY_FIELDS = ("device_name", "compute_capability", "tensorrt_version", "onnx_sha256", "precision")
_FIELD_WORDS = {"device_name": "GPU", "compute_capability": "compute capability",
                "tensorrt_version": "TensorRT version", "onnx_sha256": "source ONNX sha256",
                "precision": "precision"}


@dataclass(frozen=True)
class BuildConfig:
    """How to build a TensorRT engine. None means "derive from the bundle's manifest"."""

    # Batch range of the optimisation profile. Kernels are tuned for opt_batch;
    # any batch in [min_batch, max_batch] runs, larger ones are chunked by the runner.
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    # Spatial range (square side, LR pixels) for inputs with dynamic H/W (the enhancer).
    # Defaults: opt = max = manifest tile.size (skugen.tiling cuts photos into tiles of
    # exactly that size, overlap included), min = min(8, tile): a photo side shorter
    # than a tile is run as one smaller tile.
    min_hw: int | None = None
    opt_hw: int | None = None
    max_hw: int | None = None
    # Explicit per-input (min, opt, max) shapes; wins over everything above.
    shapes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None = None
    # Tactic scratch memory cap. Jetson shares DRAM between CPU and GPU, so keep it modest.
    workspace_mb: int = 1024
    # Rebuild even when an up-to-date engine with the same profile exists.
    force: bool = False
    # Reuse/persist TensorRT's tactic timing cache (cuts rebuild time a lot).
    timing_cache: bool = True
    # TensorRT builder optimisation level 0..5 (None = TensorRT's default, 3).
    optimization_level: int | None = None
    # CUDA device ordinal to build on and run with.
    device: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["shapes"] is not None:
            d["shapes"] = {k: [list(s) for s in v] for k, v in dict(d["shapes"]).items()}
        return d


@dataclass(frozen=True)
class InputProfile:
    name: str
    dtype: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class BuildPlan:
    precision: str
    source_model: str          # key in manifest.models the engine is built from
    source_file: str           # bundle-relative ONNX path
    onnx_sha256: str
    quantization: str          # QUANT_NONE | QUANT_QDQ
    workspace_bytes: int
    profile: tuple[InputProfile, ...]
    optimization_level: int | None = None
    outputs: tuple[str, ...] = field(default=())

    def profile_dict(self) -> dict:
        return {p.name: p.to_dict() for p in self.profile}

    def to_dict(self) -> dict:
        return {"precision": self.precision, "source_model": self.source_model, "source_file": self.source_file,
                "onnx_sha256": self.onnx_sha256, "quantization": self.quantization, "typing": TYPING,
                "workspace_bytes": self.workspace_bytes, "profile": self.profile_dict(),
                "optimization_level": self.optimization_level,
                "outputs": list(self.outputs)}

# ----------------------------------------------------------------------------- the plan


def check_precision(precision: str) -> str:
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise InputError(f"TensorRT precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)}.")
    return p


def parse_version(v: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string ('10.3.0.30' -> (10, 3)); (0, 0) when unreadable."""
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", str(v))
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def version_in_range(v: str) -> bool:
    """True for the TensorRT versions skugen supports: 10.3 <= v < 12."""
    return TRT_MIN <= parse_version(v) < TRT_MAX


def version_problem(v: str) -> str | None:
    """None when TensorRT `v` is supported, else why not, ending with the fix."""
    if version_in_range(v):
        return None
    return (f"TensorRT {v} is outside the supported range 10.3 <= version < 12 (skugen builds strongly typed "
            "networks, which need TensorRT 10.3+). Install a supported one: pip install 'skugen[tensorrt]'")


def network_creation_flags(trt_version: str) -> tuple[str, ...]:
    """NetworkDefinitionCreationFlag member names to OR into create_network for `trt_version`.

    10.x: STRONGLY_TYPED (since 10.3; every layer runs in the type the ONNX gives its tensors).
    11+: none. Networks are always strongly typed there (the 11.4 bindings still list the flag, but it only
    restates the default, so skugen does not depend on it staying).
    """
    return ("STRONGLY_TYPED",) if parse_version(trt_version)[0] < 11 else ()


def source_model(manifest: Manifest, precision: str) -> tuple[str, str]:
    """(key in manifest.models the engine is built from, quantization mode).

    Strongly typed: the precision is the graph's. fp32 -> models["fp32"], fp16 -> models["fp16"] (FP16 with
    gate-chosen nodes kept in FP32), int8 -> models["int8"]'s TensorRT Q/DQ twin. Raises BundleError naming the
    re-export when the bundle lacks that graph.
    """
    precision = check_precision(precision)
    models = manifest.models
    if precision not in models:
        if precision == "int8":
            raise BundleError(f"bundle {manifest.name!r} has no INT8 (Q/DQ) model (has {sorted(models)}); TensorRT "
                              f"builds INT8 engines only from an explicitly quantized graph. {_REEXPORT_INT8}")
        if precision == "fp16":
            raise BundleError(f"bundle {manifest.name!r} has no FP16 model (has {sorted(models)}); TensorRT builds "
                              "strongly typed FP16 engines from the bundle's model.fp16.onnx. Re-export the bundle "
                              "with the current skugen: `skugen export STUDENT --int8` writes it.")
        raise BundleError(f"bundle {manifest.name!r} has no fp32 ONNX model (has {sorted(models)}). Re-export the "
                          "bundle.")
    if precision == "int8":
        if "tensorrt" not in models["int8"].variants:
            raise BundleError(f"bundle {manifest.name!r} has an INT8 model but no TensorRT twin of it (signed-int8 "
                              f"Q/DQ, variants.tensorrt). Re-export it with the current skugen. {_REEXPORT_INT8}")
        return "int8", QUANT_QDQ
    return precision, QUANT_NONE


def tensorrt_source(manifest: Manifest, model: str) -> Variant:
    """The file TensorRT must read for models[model].

    The INT8 entry's main file has uint8 activations (fast fused U8S8 kernels on ONNX
    Runtime x86), which TensorRT rejects; export writes a signed-int8 twin under
    variants.tensorrt (same calibration) for TensorRT's explicit quantization.
    Other precisions use their TensorRT twin when the bundle has one, else the main file.
    """
    return manifest.variant(model, "tensorrt")


def engine_source_sha256(manifest: Manifest, precision: str) -> str | None:
    """sha256 of the ONNX an engine of `precision` is built from (what its sidecar's onnx_sha256 must be);
    None when the bundle has no model TensorRT could build that precision from."""
    try:
        return tensorrt_source(manifest, source_model(manifest, precision)[0]).sha256
    except SkugenError:
        return None


def make_build_plan(manifest: Manifest, precision: str, cfg: BuildConfig | None = None,
                    cover: Mapping[str, Iterable[Iterable[int]]] | None = None) -> BuildPlan:
    """Everything `engine_from_onnx` will ask TensorRT for, decided from the manifest alone.

    cover: input name -> shapes the profile must admit (e.g. the golden inputs'
    shapes, so `skugen verify` can run them); the range is widened to include them.
    """
    cfg = cfg or BuildConfig()
    precision = check_precision(precision)
    _check_config(cfg)
    source, quant = source_model(manifest, precision)
    src = tensorrt_source(manifest, source)
    return BuildPlan(
        precision=precision, source_model=source, source_file=src.file,
        onnx_sha256=src.sha256, quantization=quant,
        workspace_bytes=int(cfg.workspace_mb) * (1 << 20), profile=tuple(profile_shapes(manifest, cfg, cover)),
        optimization_level=cfg.optimization_level,
        outputs=tuple(o.name for o in manifest.io.outputs),
    )


def _check_config(cfg: BuildConfig) -> None:
    b = (cfg.min_batch, cfg.opt_batch, cfg.max_batch)
    if not all(isinstance(x, int) and x >= 1 for x in b) or not b[0] <= b[1] <= b[2]:
        raise InputError(f"batch range min={b[0]} opt={b[1]} max={b[2]} is invalid: need 1 <= min <= opt <= max "
                         "(e.g. --min-batch 1 --opt-batch 8 --max-batch 32).")
    hw = [x for x in (cfg.min_hw, cfg.opt_hw, cfg.max_hw) if x is not None]
    if any((not isinstance(x, int)) or x < 1 for x in hw):
        raise InputError(f"spatial sizes must be positive integers, got min_hw={cfg.min_hw} opt_hw={cfg.opt_hw} "
                         f"max_hw={cfg.max_hw}.")
    if cfg.workspace_mb < 1:
        raise InputError(f"workspace_mb={cfg.workspace_mb} must be at least 1 (MiB); 1024 is a good default.")
    if cfg.optimization_level is not None and not 0 <= cfg.optimization_level <= 5:
        raise InputError(f"optimization_level={cfg.optimization_level} must be in 0..5 (TensorRT's default is 3).")


def _is_static(d: Any) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and int(d) >= 0


def _axis_role(shape: list, axis: int) -> str:
    """'static' | 'batch' | 'height' | 'width' | 'other' for one axis of a manifest io shape."""
    d = shape[axis]
    if _is_static(d):
        return "static"
    name = str(d).lower() if isinstance(d, str) else ""
    if name in _BATCH_NAMES or (axis == 0 and name not in _H_NAMES | _W_NAMES):
        return "batch"
    if name in _H_NAMES:
        return "height"
    if name in _W_NAMES:
        return "width"
    if len(shape) == 4 and axis in (2, 3):  # NCHW: an unnamed dynamic axis 2/3 is spatial
        return "height" if axis == 2 else "width"
    return "other"


def spatial_range(manifest: Manifest, cfg: BuildConfig) -> tuple[int, int, int]:
    """(min, opt, max) side length for dynamic H/W axes."""
    size = manifest.tile_size
    opt = cfg.opt_hw if cfg.opt_hw is not None else size
    mx = cfg.max_hw if cfg.max_hw is not None else size
    if opt is None and mx is not None:
        opt = mx
    if mx is None and opt is not None:
        mx = opt
    if opt is None:
        raise InputError(f"bundle {manifest.name!r} has inputs with dynamic height/width but its manifest has "
                         "no tile.size; pass the spatial range: --min-hw/--opt-hw/--max-hw (BuildConfig.min_hw/...).")
    mn = cfg.min_hw if cfg.min_hw is not None else min(MIN_HW, int(opt))
    mn, opt, mx = int(mn), int(opt), int(mx)
    if not 1 <= mn <= opt <= mx:
        raise InputError(f"spatial range min={mn} opt={opt} max={mx} is invalid: need 1 <= min <= opt <= max.")
    return mn, opt, mx


def profile_shapes(manifest: Manifest, cfg: BuildConfig | None = None,
                   cover: Mapping[str, Iterable[Iterable[int]]] | None = None) -> list[InputProfile]:
    """One (min, opt, max) triple per manifest input, dynamic axes filled from the config."""
    cfg = cfg or BuildConfig()
    inputs = manifest.io.inputs
    if not inputs:
        raise InputError(f"bundle {manifest.name!r} manifest lists no io.inputs; re-export the bundle.")
    explicit = dict(cfg.shapes or {})
    unknown = set(explicit) - {i.name for i in inputs}
    if unknown:
        raise InputError(f"BuildConfig.shapes names {sorted(unknown)}, which are not inputs of this bundle "
                         f"({[i.name for i in inputs]}).")
    hw: tuple[int, int, int] | None = None
    out: list[InputProfile] = []
    for spec in inputs:
        name, shape, dtype = spec.name, list(spec.shape), spec.dtype
        if name in explicit:
            mn, op, mx = (tuple(int(x) for x in s) for s in explicit[name])
            _check_triplet(name, shape, mn, op, mx)
        else:
            mn, op, mx = [], [], []
            for axis in range(len(shape)):
                role = _axis_role(shape, axis)
                if role == "static":
                    trip = (int(shape[axis]),) * 3
                elif role == "batch":
                    trip = (cfg.min_batch, cfg.opt_batch, cfg.max_batch)
                elif role in ("height", "width"):
                    hw = hw or spatial_range(manifest, cfg)
                    trip = hw
                else:
                    raise InputError(f"input {name!r} axis {axis} ({shape[axis]!r}) is dynamic and is neither batch "
                                     f"nor height/width; give its range in BuildConfig.shapes[{name!r}].")
                mn.append(trip[0]), op.append(trip[1]), mx.append(trip[2])
            mn, op, mx = tuple(mn), tuple(op), tuple(mx)
        for cshape in (cover or {}).get(name, ()):
            mn, mx = _widen(name, shape, mn, mx, tuple(int(x) for x in cshape))
        op = tuple(min(max(o, a), b) for o, a, b in zip(op, mn, mx))
        out.append(InputProfile(name, dtype, mn, op, mx))
    return out


def _check_triplet(name: str, shape: list, mn: tuple, op: tuple, mx: tuple) -> None:
    if not (len(mn) == len(op) == len(mx) == len(shape)):
        raise InputError(f"BuildConfig.shapes[{name!r}] must give three shapes of rank {len(shape)} "
                         f"(the manifest shape is {shape}).")
    for a, (lo, o, hi) in enumerate(zip(mn, op, mx)):
        if not 1 <= lo <= o <= hi:
            raise InputError(f"BuildConfig.shapes[{name!r}] axis {a}: need 1 <= min <= opt <= max, got {lo}, {o}, {hi}.")
        if _is_static(shape[a]) and not lo == o == hi == int(shape[a]):
            raise InputError(f"BuildConfig.shapes[{name!r}] axis {a} is fixed at {shape[a]} in the model; "
                             f"got {lo}, {o}, {hi}.")


def _widen(name: str, shape: list, mn: tuple, mx: tuple, c: tuple) -> tuple[tuple, tuple]:
    if len(c) != len(shape):
        raise InputError(f"input {name!r}: shape {c} has rank {len(c)}, the model's is {len(shape)} ({shape}).")
    for a, d in enumerate(c):
        if _is_static(shape[a]) and d != int(shape[a]):
            raise InputError(f"input {name!r}: shape {c} axis {a} is {d}, the model fixes it at {shape[a]}.")
    # The batch axis is not widened: the runner splits larger batches into chunks.
    keep = [a for a in range(len(shape)) if _axis_role(shape, a) == "batch"]
    mn = tuple(m if a in keep else min(m, d) for a, (m, d) in enumerate(zip(mn, c)))
    mx = tuple(m if a in keep else max(m, d) for a, (m, d) in enumerate(zip(mx, c)))
    return mn, mx

# ----------------------------------------------------------------------------- identity


def device_slug(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'nvidia-geforce-rtx-4090' (safe as a directory name)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return s or "unknown-gpu"


def cc_string(cc: Any) -> str:
    """Compute capability as 'major.minor' from (8, 7), '8.7', 8.7 or '87'."""
    if isinstance(cc, (tuple, list)) and len(cc) == 2:
        return f"{int(cc[0])}.{int(cc[1])}"
    s = str(cc).strip().lower().removeprefix("sm_").removeprefix("sm")
    if re.fullmatch(r"\d+\.\d+", s):
        major, minor = s.split(".")
        return f"{int(major)}.{int(minor)}"
    if re.fullmatch(r"\d{2,3}", s):
        return f"{int(s[:-1])}.{int(s[-1])}"
    raise InputError(f"compute capability {cc!r} is not of the form (major, minor) or 'major.minor'.")


def cc_compact(cc: Any) -> str:
    return cc_string(cc).replace(".", "")


def engine_key(device_name: str, compute_capability: Any, trt_version: str, precision: str) -> str:
    """Directory name of an engine under bundle.engines_dir(): device, arch, TensorRT version and precision."""
    return f"{device_slug(device_name)}-sm{cc_compact(compute_capability)}-trt{_version_slug(trt_version)}-" \
           f"{check_precision(precision)}"


def _version_slug(v: str) -> str:
    return re.sub(r"[^0-9A-Za-z.]+", "-", str(v)).strip("-") or "unknown"


def timing_cache_path(cache_root: str | Path, device_name: str, compute_capability: Any, trt_version: str) -> Path:
    """TensorRT's tactic timing cache is only valid for one GPU model and TensorRT version."""
    return Path(cache_root) / f"timing-{device_slug(device_name)}-sm{cc_compact(compute_capability)}-" \
                              f"trt{_version_slug(trt_version)}.cache"


# ----------------------------------------------------------------------------- sidecar


def engine_metadata(plan: BuildPlan, device: Mapping, *, trt_version: str, skugen_version: str,
                    build_seconds: float, plan_sha256: str, plan_bytes: int, layers: list[dict] | None = None,
                    io: Mapping | None = None, bundle: Mapping | None = None, extra: Mapping | None = None,
                    built_at: str | None = None) -> dict:
    """The engine.json sidecar: what built the engine, from what, and what TensorRT chose."""
    layers = list(layers or [])
    meta = {
        "schema_version": SIDECAR_SCHEMA,
        "kind": "skugen-tensorrt-engine",
        "key": engine_key(device["name"], device["compute_capability"], trt_version, plan.precision),
        # identity: compared with the current machine on every load
        "device_name": str(device["name"]),
        "compute_capability": cc_string(device["compute_capability"]),
        "tensorrt_version": str(trt_version),
        "onnx_sha256": plan.onnx_sha256,
        "precision": plan.precision,
        # provenance
        "source": {"model": plan.source_model, "file": plan.source_file, "sha256": plan.onnx_sha256},
        "quantization": plan.quantization,
        "typing": TYPING,
        "network_flags": list(network_creation_flags(trt_version)),
        "workspace_bytes": plan.workspace_bytes,
        "optimization_level": plan.optimization_level,
        "profile": plan.profile_dict(),
        "device": {k: v for k, v in dict(device).items()},
        "skugen_version": str(skugen_version),
        "built_at": built_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "build_seconds": round(float(build_seconds), 3),
        "plan_file": ENGINE_FILE,
        "plan_sha256": plan_sha256,
        "plan_bytes": int(plan_bytes),
        "io": dict(io or {}),
        "bundle": dict(bundle or {}),
        "precision_counts": precision_counts(layers),
        "layers": layers,
    }
    if extra:
        meta.update(dict(extra))
    return meta


def current_identity(device: Mapping, trt_version: str, onnx_sha256: str, precision: str) -> dict:
    return {"device_name": str(device["name"]), "compute_capability": cc_string(device["compute_capability"]),
            "tensorrt_version": str(trt_version), "onnx_sha256": str(onnx_sha256),
            "precision": check_precision(precision)}


def engine_mismatches(sidecar: Mapping, current: Mapping) -> list[str]:
    """Human-readable differences between an engine.json and this machine (empty = loadable)."""
    diffs = []
    if sidecar.get("schema_version") != SIDECAR_SCHEMA:
        diffs.append(f"sidecar schema_version {sidecar.get('schema_version')!r} != {SIDECAR_SCHEMA}")
    for f in IDENTITY_FIELDS:
        have, want = sidecar.get(f), current.get(f)
        if f == "compute_capability" and have is not None:
            try:
                have = cc_string(have)
            except InputError:
                pass
        if f == "onnx_sha256":
            if have != want:
                diffs.append(f"{_FIELD_WORDS[f]}: engine built from {str(have)[:12]}..., the bundle's ONNX is "
                             f"{str(want)[:12]}...")
        elif have != want:
            diffs.append(f"{_FIELD_WORDS[f]}: engine built for {have!r}, this machine has {want!r}")
    return diffs


def mismatch_message(diffs: list[str], engine_dir: str | Path, bundle_root: str | Path, precision: str) -> str:
    return (f"TensorRT engine {engine_dir} does not match this machine/bundle: " + "; ".join(diffs) + ". "
            "Engines are not portable across GPUs, TensorRT versions or re-exported models. Rebuild it with "
            f"`skugen build {bundle_root} --backend tensorrt --precision {precision} --force`, or pass "
            "rebuild=True to TensorRTRunner.")


def profile_matches(sidecar: Mapping, plan: BuildPlan) -> bool:
    """True when a cached engine was built with this plan's profile, typing and quantization."""
    return (sidecar.get("profile") == plan.profile_dict() and sidecar.get("typing") == TYPING
            and sidecar.get("quantization") == plan.quantization and sidecar.get("workspace_bytes") == plan.workspace_bytes
            and sidecar.get("optimization_level") == plan.optimization_level)


def build_config_from_dict(d: Any) -> BuildConfig | None:
    """The BuildConfig recorded in a sidecar (to rebuild with the same profile); None if unusable."""
    if not isinstance(d, Mapping):
        return None
    from dataclasses import fields

    names = {f.name for f in fields(BuildConfig)}
    kw = {k: v for k, v in d.items() if k in names and k != "force"}
    if kw.get("shapes"):
        kw["shapes"] = {k: tuple(tuple(int(x) for x in s) for s in v) for k, v in dict(kw["shapes"]).items()}
    try:
        cfg = BuildConfig(**kw)
        _check_config(cfg)
    except (TypeError, InputError):
        return None
    return cfg


def shape_in_profile(name: str, shape: tuple, prof: Mapping) -> str | None:
    """None if `shape` fits the sidecar/engine profile {min, opt, max}; else why not (for InputError)."""
    mn, mx = list(prof["min"]), list(prof["max"])
    if len(shape) != len(mn):
        return f"input {name!r} has rank {len(shape)}, the engine wants rank {len(mn)} (min {mn}, max {mx})"
    bad = [a for a, (d, lo, hi) in enumerate(zip(shape, mn, mx)) if not lo <= d <= hi]
    if bad:
        return (f"input {name!r} shape {tuple(shape)} is outside the engine's profile (min {mn}, max {mx}) on axis "
                f"{bad}; rebuild with a wider range (skugen build --max-batch / --max-hw)")
    return None

# ----------------------------------------------------------------------------- engine inspector


_DTYPE_PATTERNS = (  # order matters: the first match wins ("UInt8" before "Int8", "BFloat16" before "Float")
    ("bf16", ("bfloat16", "bf16")),
    ("fp8", ("fp8", "float8", "e4m3")),
    ("fp4", ("fp4", "float4", "e2m1")),
    ("uint8", ("uint8",)),
    ("int8", ("int8",)),
    ("int4", ("int4",)),
    ("fp16", ("fp16", "half", "float16")),
    ("int64", ("int64",)),
    ("int32", ("int32",)),
    ("bool", ("bool",)),
    ("fp32", ("fp32", "float32", "float")),
)
# Lower = narrower. A layer's precision is its narrowest float/quantized input.
_RANK = {"fp4": 0, "int4": 0, "int8": 1, "uint8": 1, "fp8": 1, "fp16": 2, "bf16": 2, "fp32": 3}
_BOOKKEEPING = {"Reformat", "NoOp", "Shuffle", "Constant", "Identity", "Cast"}


def tensor_dtype(fmt: str | None) -> str:
    """Datatype from an inspector tensor's 'Format/Datatype' (TRT 10) or 'Datatype' (TRT 11) string."""
    if not fmt:
        return "unknown"
    s = str(fmt).lower()
    if "n/a" in s:
        return "unknown"
    for tag, words in _DTYPE_PATTERNS:
        if any(re.search(rf"(?<![a-z]){re.escape(w)}", s) for w in words):
            return tag
    return "unknown"


def _tensor_fmt(t: Mapping) -> str:
    if "Format/Datatype" in t:
        return str(t["Format/Datatype"])
    return " ".join(str(t[k]) for k in ("Datatype", "Format") if t.get(k))


def layer_precisions(engine_info: str | Mapping) -> list[dict]:
    """Per-layer precision actually chosen, from IEngineInspector.get_engine_information(JSON).

    Needs an engine built with ProfilingVerbosity.DETAILED and an inspector whose
    execution_context has concrete input shapes (else TensorRT prints 'N/A due to
    dynamic shapes' and the precision is 'unknown').
    """
    info = json.loads(engine_info) if isinstance(engine_info, (str, bytes)) else engine_info
    out = []
    for layer in (info or {}).get("Layers", []):
        if not isinstance(layer, Mapping):  # LAYER_NAMES_ONLY verbosity: a bare name
            out.append({"name": str(layer), "type": "unknown", "precision": "unknown", "inputs": [], "outputs": []})
            continue
        ins = [tensor_dtype(_tensor_fmt(t)) for t in layer.get("Inputs", []) if isinstance(t, Mapping)]
        outs = [tensor_dtype(_tensor_fmt(t)) for t in layer.get("Outputs", []) if isinstance(t, Mapping)]
        out.append({"name": str(layer.get("Name", "?")), "type": str(layer.get("LayerType", "?")),
                    "precision": _layer_precision(ins, outs), "inputs": ins, "outputs": outs,
                    "tactic": layer.get("TacticName", layer.get("TacticValue"))})
    return out


def _layer_precision(ins: list[str], outs: list[str]) -> str:
    for group in (ins, outs):
        ranked = [d for d in group if d in _RANK]
        if ranked:
            return min(ranked, key=lambda d: _RANK[d])
    known = [d for d in ins + outs if d != "unknown"]
    return known[0] if known else "unknown"


def precision_counts(layers: list[Mapping]) -> dict:
    """{'all': {precision: n}, 'compute': {...}} where compute leaves out reformat/no-op/shuffle layers."""
    all_, compute = {}, {}
    for layer in layers:
        p = layer.get("precision", "unknown")
        all_[p] = all_.get(p, 0) + 1
        if layer.get("type") not in _BOOKKEEPING:
            compute[p] = compute.get(p, 0) + 1
    order = lambda d: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
    return {"all": order(all_), "compute": order(compute), "layers": len(layers)}
