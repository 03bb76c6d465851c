"""Triton model-repository pieces shared by `skugen export-triton`'s two repository kinds (skugen.triton: the
one-graph ensembles; skugen.triton_diffusion: the sampling-loop model): the protobuf text format, tensor specs
from a bundle, the onnxruntime / tensorrt_plan / python / ensemble model configs, the bundle's built TensorRT
engines, and the Python-backend files (model.py plus skugen's own modules copied verbatim beside it)."""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from . import __version__
from .bundle import Bundle
from .errors import BundleError, InputError
from .manifest import TensorSpec

log = logging.getLogger("skugen.triton")
PROVENANCE = "skugen_bundle"  # the signed bundle's manifest + signature (only when the bundle is signed)

DTYPES = {  # numpy dtype name -> Triton data type
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
    "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "uint16": "TYPE_UINT16", "int16": "TYPE_INT16",
    "uint32": "TYPE_UINT32", "int32": "TYPE_INT32", "uint64": "TYPE_UINT64", "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL", "object": "TYPE_STRING", "bytes": "TYPE_STRING", "str": "TYPE_STRING",
}
PLAN_MODES = ("all", "verified", "none")
# What the Python-backend models run beside model.py: skugen's own modules, copied verbatim at export time
# into 1/skugen_prepost/ (a tiny package, so their relative imports work). Path there -> skugen module.
PREPOST_SOURCES = {
    "errors.py": "skugen.errors",
    "gen_inputs.py": "skugen.gen_inputs",
    "kernels/_spec.py": "skugen.kernels._spec",
    "kernels/reference.py": "skugen.kernels.reference",
    "tokenizer.py": "skugen.tokenizer",     # the diffusion sampling loop (triton_diffusion): prompt -> token ids
    "sampler.py": "skugen.sampler",         # ... and the numpy Euler loop itself
}
PREPOST_DIR = "skugen_prepost"


@dataclass(frozen=True)
class TritonConfig:
    # Model-name prefix. None: the bundle name (one repo can then hold several bundles side by side).
    name: str | None = None
    # ONNX the CPU model serves. fp32 is the safe default; int8 (Q/DQ) is faster on VNNI CPUs but is
    # only worth it when `skugen bench` says so (ORT CPU leaves some Q/DQ patterns unfused).
    precision: str = "fp32"
    # Triton max_batch_size. None: the manifest's io.max_batch (64 when absent). Plans are capped
    # further by their engine's optimisation profile.
    max_batch: int | None = None
    # dynamic_batching.preferred_batch_size. None: the two largest powers of two <= max_batch;
    # Triton then waits up to max_queue_delay_us to fill one of them.
    preferred_batch_sizes: tuple[int, ...] | None = None
    # How long a request may wait for others to batch with (latency vs throughput knob).
    max_queue_delay_us: int = 100
    cpu_instances: int = 1   # instance_group count of the onnxruntime and Python models (KIND_CPU)
    gpu_instances: int = 1   # instance_group count of each plan model (KIND_GPU)
    # ORT intra-op threads per instance; 0 = ORT's default (all cores). Set it when cpu_instances > 1.
    ort_threads: int = 0
    # Which built TensorRT engines (bundle/engines/*) become tensorrt_plan models: all that match the
    # bundle's ONNX, only those install.sh verified on the device, or none.
    plans: str = "all"


# ----------------------------------------------------------------------------- protobuf text format

class _Enum(str):
    """A protobuf enum value: written bare (TYPE_FP32), not quoted."""


def _scalar(v: Any) -> str:
    if isinstance(v, _Enum):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        # Text-format string: escape backslash/quote/control chars; non-ASCII as UTF-8 octal escapes.
        out = []
        for byte in v.encode("utf-8"):
            c = chr(byte)
            if c in '"\\':
                out.append("\\" + c)
            elif c == "\n":
                out.append("\\n")
            elif 32 <= byte < 127:
                out.append(c)
            else:
                out.append(f"\\{byte:03o}")
        return '"' + "".join(out) + '"'
    raise TypeError(f"cannot write {type(v).__name__} to pbtxt")


def pbtxt(msg: dict, indent: int = 0) -> str:
    """dict -> protobuf text format. Lists of dicts are repeated messages; lists of scalars use [a, b]."""
    pad = "  " * indent
    lines = []
    for k, v in msg.items():
        if v is None:
            continue
        if isinstance(v, dict):
            lines.append(f"{pad}{k} {{\n{pbtxt(v, indent + 1)}{pad}}}")
        elif isinstance(v, (list, tuple)):
            if not v:
                continue
            if all(isinstance(x, dict) for x in v):
                items = [f"{pad}  {_inline(x) or f'{{{chr(10)}{pbtxt(x, indent + 2)}{pad}  }}'}" for x in v]
                lines.append(f"{pad}{k} [\n" + ",\n".join(items) + f"\n{pad}]")
            else:
                lines.append(f"{pad}{k}: [ {', '.join(_scalar(x) for x in v)} ]")
        else:
            lines.append(f"{pad}{k}: {_scalar(v)}")
    return "".join(line + "\n" for line in lines)


def _inline(msg: dict, width: int = 100) -> str | None:
    """`{ a: 1 b { c: "x" } }` on one line when short and free of repeated messages (readability only)."""
    parts = []
    for k, v in msg.items():
        if v is None:
            continue
        if isinstance(v, dict):
            inner = _inline(v, width)
            if inner is None:
                return None
            parts.append(f"{k} {inner}")
        elif isinstance(v, (list, tuple)):
            if any(isinstance(x, dict) for x in v):
                return None
            parts.append(f"{k}: [ {', '.join(_scalar(x) for x in v)} ]")
        else:
            parts.append(f"{k}: {_scalar(v)}")
    text = "{ " + " ".join(parts) + " }"
    return text if len(text) <= width else None


def _params(d: dict) -> list[dict]:
    """Triton `parameters` map entries (string values only)."""
    return [{"key": k, "value": {"string_value": str(v)}} for k, v in d.items()]


# ----------------------------------------------------------------------------- bundle -> tensor specs

@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str    # TYPE_FP32, ...
    dims: tuple[int, ...]  # WITHOUT the batch axis; -1 = dynamic

    def cfg(self) -> dict:
        return {"name": self.name, "data_type": _Enum(self.data_type), "dims": list(self.dims)}


def triton_dtype(dtype: str) -> str:
    if str(dtype) not in DTYPES:
        raise BundleError(f"tensor dtype {dtype!r} has no Triton data type (known: {', '.join(sorted(DTYPES))}). "
                          "Re-export the bundle with float32 I/O.")
    return DTYPES[str(dtype)]


def _is_dim(d: Any) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and d >= 0


def _io_tensor(spec: TensorSpec, batched: bool) -> Tensor:
    shape = list(spec.shape)
    dims = shape[1:] if batched else shape
    return Tensor(spec.name, triton_dtype(spec.dtype),
                  tuple(int(d) if _is_dim(d) else -1 for d in dims))


def _batched(b: Bundle) -> bool:
    """True when every model tensor's axis 0 is dynamic (the batch axis Triton owns)."""
    specs = b.spec.io.inputs + b.spec.io.outputs
    return all(s.shape and not _is_dim(s.shape[0]) for s in specs)


def _num(v, default: float):
    """A manifest mean/std (one number or one per channel) as JSON-ready plain numbers (ints stay ints)."""
    if v is None:
        return default
    vals = [int(x) if float(x).is_integer() else x for x in (v if isinstance(v, tuple) else (v,))]
    return vals if isinstance(v, tuple) else vals[0]


def _gen_sizes(b: Bundle) -> tuple[int, int]:
    """(z_dim, n_classes): the parsed manifest has them (filled from the z/onehot shapes when io lacks them)."""
    return b.spec.io.z_dim, b.spec.io.n_classes


# ----------------------------------------------------------------------------- model configs

def _dyn_batching(cfg: TritonConfig, max_batch: int) -> dict:
    pref = cfg.preferred_batch_sizes
    if pref is None:
        pows = [1 << i for i in range(max_batch.bit_length()) if (1 << i) <= max_batch]
        pref = tuple(pows[-2:]) if len(pows) > 1 else tuple(pows)
    bad = [p for p in pref if not 1 <= int(p) <= max_batch]
    if bad:
        raise InputError(f"preferred batch sizes {bad} must be within 1..max_batch ({max_batch}); "
                         f"e.g. --preferred-batch {max(1, max_batch // 2)},{max_batch}.")
    return {"preferred_batch_size": sorted({int(p) for p in pref}),
            "max_queue_delay_microseconds": int(cfg.max_queue_delay_us)}


def onnx_model_config(b: Bundle, name: str, cfg: TritonConfig, max_batch: int) -> dict:
    batched = max_batch > 0
    c = {
        "name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch,
        "input": [_io_tensor(s, batched).cfg() for s in b.spec.io.inputs],
        "output": [_io_tensor(s, batched).cfg() for s in b.spec.io.outputs],
        "dynamic_batching": _dyn_batching(cfg, max_batch) if batched else None,
        "instance_group": [{"count": int(cfg.cpu_instances), "kind": _Enum("KIND_CPU")}],
        "parameters": _params({"intra_op_thread_count": cfg.ort_threads}) if cfg.ort_threads else None,
    }
    return c


def plan_model_config(b: Bundle, name: str, cfg: TritonConfig, max_batch: int, files: dict[str, str]) -> dict:
    """files: compute capability ('8.7') -> plan file name in the version dir."""
    batched = max_batch > 0
    default = files[next(iter(files))]
    return {
        "name": name,
        "platform": "tensorrt_plan",
        "max_batch_size": max_batch,
        "default_model_filename": default,
        # Triton picks the plan built for the GPU it runs on; engines are not portable across GPUs.
        "cc_model_filenames": [{"key": cc, "value": f} for cc, f in files.items()] if len(files) > 1 else None,
        "input": [_io_tensor(s, batched).cfg() for s in b.spec.io.inputs],
        "output": [_io_tensor(s, batched).cfg() for s in b.spec.io.outputs],
        "dynamic_batching": _dyn_batching(cfg, max_batch) if batched else None,
        "instance_group": [{"count": int(cfg.gpu_instances), "kind": _Enum("KIND_GPU")}],
    }


def _pre_post_io(b: Bundle, batched: bool) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], dict, dict]:
    """(pre inputs, pre outputs, post inputs, post outputs, pre params, post params)."""
    out_spec = b.spec.io.outputs[0]
    out_t = _io_tensor(out_spec, batched)
    if len(out_t.dims) != 3:
        raise BundleError(f"bundle {b.name!r} output {out_t.name!r} shape {list(out_spec.shape)} is not (batch, C, H, W); "
                          "export-triton needs an image output.")
    c, h, w = out_t.dims
    lo, hi = b.spec.value_range
    post_in = [Tensor("raw", out_t.data_type, out_t.dims)]
    post_out = [Tensor("image", "TYPE_UINT8", (h, w, c))]  # HWC, like PIL / cv2 images
    post_params = {"skugen_role": "post", "kind": b.kind, "value_range": f"{lo!r},{hi!r}"}
    if b.kind == "generator":
        z_dim, n_classes = _gen_sizes(b)
        names = b.class_names
        if names and len(names) != n_classes:
            raise BundleError(f"bundle {b.name!r} has {len(names)} class names but {n_classes} classes. Re-export it.")
        ins = {t.name: _io_tensor(t, batched) for t in b.spec.io.inputs}
        pre_in = [Tensor("label", "TYPE_STRING", (1,)), Tensor("seed", "TYPE_INT64", (1,))]
        pre_out = [ins["z"], ins["onehot"]]
        pre_params = {"skugen_role": "pre", "kind": "generator", "z_dim": z_dim, "n_classes": n_classes,
                      "class_names": json.dumps(names)}
    else:
        ins = b.spec.io.inputs
        if len(ins) != 1:
            raise BundleError(f"enhancer bundle {b.name!r} has inputs {[t.name for t in ins]}, expected one image.")
        lr = _io_tensor(ins[0], batched)
        if len(lr.dims) != 3 or lr.dims[0] not in (1, 3):
            raise BundleError(f"enhancer input {lr.name!r} dims {lr.dims} are not (C, H, W) with C in (1, 3).")
        pre_in = [Tensor("photo", "TYPE_UINT8", (lr.dims[1], lr.dims[2], lr.dims[0]))]
        pre_out = [lr]
        pre = b.spec.preprocess
        pre_params = {"skugen_role": "pre", "kind": "enhancer", "output": lr.name,
                      "mean": json.dumps(_num(pre.mean, 0.0)), "std": json.dumps(_num(pre.std, 1.0))}
    return pre_in, pre_out, post_in, post_out, pre_params, post_params


def python_model_config(name: str, cfg: TritonConfig, max_batch: int, ins: list[Tensor], outs: list[Tensor],
                        params: dict) -> dict:
    return {
        "name": name,
        "backend": "python",
        "max_batch_size": max_batch,
        "input": [t.cfg() for t in ins],
        "output": [t.cfg() for t in outs],
        "instance_group": [{"count": int(cfg.cpu_instances), "kind": _Enum("KIND_CPU")}],
        "parameters": _params(params),
    }


def ensemble_config(name: str, max_batch: int, pre: str, model: str, post: str, pre_in: list[Tensor],
                    pre_out: list[Tensor], model_out: str, post_in: list[Tensor], post_out: list[Tensor]) -> dict:
    """pre -> model -> post. Ensemble tensor names: the client's names, the model's own input names,
    and `<output>_raw` for the float model output (so it cannot clash with the uint8 `image`)."""
    raw = f"{model_out}_raw"
    return {
        "name": name,
        "platform": "ensemble",
        "max_batch_size": max_batch,
        "input": [t.cfg() for t in pre_in],
        "output": [t.cfg() for t in post_out],
        "ensemble_scheduling": {"step": [
            {"model_name": pre, "model_version": -1,
             "input_map": [{"key": t.name, "value": t.name} for t in pre_in],
             "output_map": [{"key": t.name, "value": t.name} for t in pre_out]},
            {"model_name": model, "model_version": -1,
             "input_map": [{"key": t.name, "value": t.name} for t in pre_out],
             "output_map": [{"key": model_out, "value": raw}]},
            {"model_name": post, "model_version": -1,
             "input_map": [{"key": post_in[0].name, "value": raw}],
             "output_map": [{"key": t.name, "value": t.name} for t in post_out]},
        ]},
    }


# ----------------------------------------------------------------------------- engines

def _plan_sources(b: Bundle, mode: str) -> dict[str, list[dict]]:
    """precision -> [{dir, cc, trt, built_at, verified}] of the store's engines (the read-only fallback's too)
    built from the ONNX TensorRT builds from (for int8: the TensorRT twin, not the file ONNX Runtime runs)."""
    from .backends.tensorrt import plan as tp
    from .backends.tensorrt import store as engine_store

    if mode == "none":
        return {}
    want = {p: sha for p in tp.PRECISIONS if (sha := tp.engine_source_sha256(b.spec, p))}
    out: dict[str, list[dict]] = {}
    for e in engine_store.list_engines(b):
        d, info, prec, plan = e.dir, e.info, e.precision, e.plan
        if prec not in want or not plan.is_file():
            continue
        if info.get("onnx_sha256") and info["onnx_sha256"] != want[prec]:
            log.warning("skipping stale engine %s: built from another ONNX (%s...)", d.name,
                        str(info["onnx_sha256"])[:12])
            continue
        ok = e.verified
        if mode == "verified" and not ok:
            log.warning("skipping engine %s: not verified on its device (run install.sh / skugen verify)", d.name)
            continue
        cc = str(info.get("compute_capability") or _cc_from_key(d.name) or "unknown")
        out.setdefault(prec, []).append({"dir": d, "plan": plan, "cc": cc, "trt": info.get("tensorrt_version"),
                                         "device": info.get("device_name"), "built_at": str(info.get("built_at", "")),
                                         "verified": ok, "profile": info.get("profile") or {}})
    return out


def _cc_from_key(key: str) -> str | None:
    m = re.search(r"-sm(\d)(\d+)-", key)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _plan_max_batch(engines: list[dict], max_batch: int) -> int:
    """Cap max_batch at the smallest profile max batch of the engines (Triton may not exceed it)."""
    caps = [int(p["max"][0]) for e in engines for p in e["profile"].values() if p.get("max")]
    return min([max_batch] + caps)


def summary_head(b: Bundle, cfg: TritonConfig) -> dict:
    """What every skugen_triton.json starts with: who wrote it, from which bundle, with which options."""
    return {
        "skugen_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"name": b.name, "kind": b.kind, "manifest_sha256": b.manifest_sha256, "precision": cfg.precision,
                   "signature": b.signature.to_dict(),
                   "provenance": f"{PROVENANCE}/" if b.signature.status != "unsigned" else None},
        "config": asdict(cfg),
    }


def newest_by_cc(engines: list[dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """({compute capability: newest engine}, {cc: plan file name in the version dir}) of one precision's plans."""
    by_cc: dict[str, dict] = {}
    for e in sorted(engines, key=lambda e: e["built_at"]):  # newest engine per GPU arch wins
        by_cc[e["cc"]] = e
    files = ({cc: "model.plan" for cc in by_cc} if len(by_cc) == 1
             else {cc: f"model.sm{cc.replace('.', '')}.plan" for cc in by_cc})
    return by_cc, files


def plan_summary(by_cc: dict[str, dict], files: dict[str, str]) -> list[dict]:
    return [{"engine": e["dir"].name, "compute_capability": cc, "tensorrt_version": e["trt"],
             "device": e["device"], "verified": e["verified"], "file": files[cc]} for cc, e in by_cc.items()]


# ----------------------------------------------------------------------------- the Python-backend files

def python_model_files() -> tuple[dict[str, Path | bytes], dict[str, dict]]:
    """The files of each Python-backend version dir ({relpath: source file | bytes}) and what
    skugen_triton.json records of them ({relpath in the version dir: {source, sha256}}; source None: an
    empty package marker)."""
    files: dict[str, Path | bytes] = {
        "1/model.py": resources.files("skugen").joinpath("triton_files/model.py").read_bytes(),
        f"1/{PREPOST_DIR}/__init__.py": b"",  # package markers (empty): the copies import each other relatively
        f"1/{PREPOST_DIR}/kernels/__init__.py": b"",
    }
    sources = {rel[2:]: {"source": None, "sha256": hashlib.sha256(b"").hexdigest()}
               for rel in files if rel.endswith("__init__.py")}
    for rel, module in PREPOST_SOURCES.items():
        data = Path(find_spec(module).origin).read_bytes()
        files[f"1/{PREPOST_DIR}/{rel}"] = data  # read once: the bytes hashed are the bytes written
        sources[f"{PREPOST_DIR}/{rel}"] = {"source": module, "sha256": hashlib.sha256(data).hexdigest()}
    sources["model.py"] = {"source": "skugen/triton_files/model.py (package data)",
                           "sha256": hashlib.sha256(files["1/model.py"]).hexdigest()}
    return files, dict(sorted(sources.items()))
