"""`skugen export-triton`: a Triton Inference Server model repository from a bundle.

    repo = export_triton("runs/demo/bundle", "triton_repo")

Layout (NAME = the bundle name, made safe for a directory):

    REPO/
        README.md, skugen_triton.json     how to serve it; what was exported from which bundle
        NAME_onnx/       platform onnxruntime_onnx, KIND_CPU, dynamic batching; 1/model.onnx
        NAME_trt_fp16/   platform tensorrt_plan, KIND_GPU (only when the bundle has built engines); 1/model.plan
        NAME_pre/        Python backend (numpy only): user inputs -> model tensors; 1/model.py + 1/skugen_prepost/
        NAME_post/       Python backend (numpy only): model output -> uint8 HWC image; the same two
        NAME/            ensemble NAME_pre -> NAME_onnx -> NAME_post   (the one clients call)
        NAME_gpu_fp16/   ensemble NAME_pre -> NAME_trt_fp16 -> NAME_post

Client-facing tensors of the ensembles:
    generator  in: label (TYPE_STRING [1]: class name or index), seed (TYPE_INT64 [1])
               out: image (TYPE_UINT8 [H, W, C])
    enhancer   in: photo (TYPE_UINT8 [-1, -1, C], an RGB photo)
               out: image (TYPE_UINT8 [-1, -1, C], the x2 photo)

The pre/post arithmetic IS the skugen runtime's: model.py (package data,
sdk/triton_files/model.py) is only the Triton glue, and export copies skugen's own
modules (PREPOST_SOURCES: skugen.gen_inputs for labels/seeds -> onehot/latents,
skugen.kernels.reference for normalisation and float -> uint8) verbatim into
1/skugen_prepost/ beside it, their sha256 recorded in skugen_triton.json. So latents
are row 0 of `skugen generate --seed S --n 1` and the images match bit for bit, with
only numpy in the Triton container. Every config.pbtxt is plain protobuf text format;
the tests parse each with tritonclient's ModelConfig.

Diffusion bundles get a different repository: a Python-backend model running the whole sampling loop
through BLS around the text-encoder and denoiser models (skugen.triton_diffusion). The model-config
pieces both kinds share live in skugen.triton_models.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from . import __version__
from .bundle import Bundle, load_bundle
from .errors import InputError
from .io import atomic_dir
from .signing import SIGNATURE
from .triton_models import (PLAN_MODES, PREPOST_DIR, PREPOST_SOURCES, PROVENANCE, Tensor,  # noqa: F401 (API)
                            TritonConfig, _batched, _plan_max_batch, _plan_sources, _pre_post_io, ensemble_config,
                            newest_by_cc, onnx_model_config, pbtxt, plan_model_config, plan_summary,
                            python_model_config, python_model_files, summary_head)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- export

def _safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._-")
    return s or "model"


def export_triton(bundle: str | os.PathLike | Bundle, out: str | os.PathLike,
                  cfg: TritonConfig | None = None) -> Path:
    """Write the model repository to `out` (atomically: a complete repo or the old one); returns `out`."""
    cfg = cfg or TritonConfig()
    if cfg.plans not in PLAN_MODES:
        raise InputError(f"plans={cfg.plans!r}: use one of {', '.join(PLAN_MODES)}.")
    for k in ("cpu_instances", "gpu_instances"):
        if int(getattr(cfg, k)) < 1:
            raise InputError(f"{k}={getattr(cfg, k)} must be at least 1.")
    if cfg.max_queue_delay_us < 0 or cfg.ort_threads < 0:
        raise InputError("max_queue_delay_us and ort_threads must be >= 0.")
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "skugen_triton.json").is_file())):
        raise InputError(f"{out} exists and is not a skugen Triton repository; refusing to replace it. "
                         "Pick a new --out directory (or delete it first).")
    name = _safe_name(cfg.name or b.name)
    if b.kind == "diffusion":
        from .triton_diffusion import diffusion_repository  # the sampling-loop (BLS) repository

        models, summary, readme = diffusion_repository(b, name, cfg)
    else:
        models, summary, readme = _one_graph_repository(b, name, cfg)
    _write_repository(out, b, name, models, summary, readme)
    return out


def _one_graph_repository(b: Bundle, name: str, cfg: TritonConfig) -> tuple[dict[str, dict], dict, Callable]:
    """The models (pre -> model -> post ensembles) of a one-graph bundle, skugen_triton.json, and the README
    (a function of the final skugen_triton.json, which lists the other bundles the repository serves)."""
    if cfg.precision not in b.precisions:
        raise InputError(f"bundle {b.name!r} has no {cfg.precision!r} ONNX (it has {', '.join(b.precisions)}); "
                         f"pass --precision {b.precisions[0]}.")
    batched = _batched(b)
    max_batch = int(cfg.max_batch if cfg.max_batch is not None else b.spec.io.max_batch) if batched else 0
    if batched and max_batch < 1:
        raise InputError(f"max_batch must be >= 1, got {max_batch}.")
    pre_in, pre_out, post_in, post_out, pre_p, post_p = _pre_post_io(b, batched)
    model_out = b.spec.io.outputs[0].name
    plans = _plan_sources(b, cfg.plans)

    models: dict[str, dict] = {}  # name -> {"config": dict, "files": {relpath: src path | text}}
    onnx_name, pre_name, post_name = f"{name}_onnx", f"{name}_pre", f"{name}_post"
    models[onnx_name] = {"config": onnx_model_config(b, onnx_name, cfg, max_batch),
                         "files": {"1/model.onnx": b.model_path(cfg.precision)}}
    py_files, prepost_sources = python_model_files()
    models[pre_name] = {"config": python_model_config(pre_name, cfg, max_batch, pre_in, pre_out, pre_p),
                        "files": py_files}
    models[post_name] = {"config": python_model_config(post_name, cfg, max_batch, post_in, post_out, post_p),
                         "files": py_files}
    models[name] = {"config": ensemble_config(name, max_batch, pre_name, onnx_name, post_name, pre_in, pre_out,
                                              model_out, post_in, post_out), "files": {"1/.keep": ""}}
    summary_plans = {}
    for prec, engines in sorted(plans.items()):
        by_cc, files = newest_by_cc(engines)
        trt_name, gpu_name = f"{name}_trt_{prec}", f"{name}_gpu_{prec}"
        mb = _plan_max_batch(list(by_cc.values()), max_batch) if batched else 0
        models[trt_name] = {"config": plan_model_config(b, trt_name, cfg, mb, files),
                            "files": {f"1/{files[cc]}": e["plan"] for cc, e in by_cc.items()}}
        models[gpu_name] = {"config": ensemble_config(gpu_name, mb, pre_name, trt_name, post_name, pre_in, pre_out,
                                                      model_out, post_in, post_out), "files": {"1/.keep": ""}}
        summary_plans[trt_name] = plan_summary(by_cc, files)

    summary = {
        **summary_head(b, cfg), "max_batch_size": max_batch,
        "entry_points": {name: "CPU (onnxruntime)",
                         **{f"{name}_gpu_{p}": f"GPU (TensorRT {p})" for p in sorted(plans)}},
        "models": sorted(models), "plans": summary_plans,
        "client_inputs": [asdict(t) for t in pre_in],
        "client_outputs": [asdict(t) for t in post_out],
        "prepost_sources": prepost_sources,
    }
    return models, summary, lambda summary: _readme(b, name, summary, pre_in, post_out)


def _write_repository(out: Path, b: Bundle, name: str, models: dict[str, dict], summary: dict,
                      readme: Callable[[dict], str]) -> None:
    # One repository serves many bundles: the models other bundles put here are kept (each bundle's entry is
    # named after it, so give each its own name: `skugen pipeline --name`, or TritonConfig.name).
    others = _other_entries(out, name, set(models))
    summary["repository"] = {**{k: v for k, v in others.items()},
                             name: {"bundle": summary["bundle"], "models": summary["models"]}}
    with atomic_dir(out) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it 0700; the server often runs as another user
        for entry in others.values():
            for mname in entry["models"]:
                shutil.copytree(out / mname, tmp / mname, symlinks=True)
        for mname, spec in models.items():
            d = tmp / mname
            d.mkdir(parents=True)
            header = f"# Generated by skugen {__version__} export-triton from bundle {b.name!r} ({b.kind}).\n"
            (d / "config.pbtxt").write_text(header + pbtxt(spec["config"]))
            for rel, src in spec["files"].items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                if isinstance(src, (str, bytes)):
                    (d / rel).write_bytes(src.encode() if isinstance(src, str) else src)
                else:
                    shutil.copyfile(src, d / rel)
        if b.signature.status != "unsigned":
            # The bundle's signature covers its directory, not this repository: keep the signed manifest and its
            # signature so the model files here can be traced to the signer (their sha256s are in the manifest).
            (tmp / PROVENANCE).mkdir()
            for f in ("manifest.json", "manifest.sha256", SIGNATURE):
                shutil.copyfile(b.root / f, tmp / PROVENANCE / f)
        (tmp / "skugen_triton.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / "README.md").write_text(readme(summary))


def _other_entries(out: Path, name: str, new_models: set[str]) -> dict[str, dict]:
    """The entries (ensemble name -> bundle + model directories) that other bundles exported into `out`.

    A re-export of the same entry replaces it; an entry whose model directories this export would overwrite
    is replaced too (logged), so the repository never mixes two bundles' pieces under one name."""
    f = out / "skugen_triton.json"
    if not f.is_file():
        return {}
    s = json.loads(f.read_text())
    repo = s.get("repository") or {next(iter(s.get("entry_points", {"?": 0}))): {"bundle": s.get("bundle"),
                                                                               "models": s.get("models", [])}}
    kept = {}
    for entry, rec in repo.items():
        if entry == name:
            continue
        clash = set(rec["models"]) & new_models
        if clash:
            log.warning("replacing %s of bundle %r in %s (same model names)", sorted(clash),
                        (rec.get("bundle") or {}).get("name"), out)
        elif all((out / m).is_dir() for m in rec["models"]):
            kept[entry] = rec
    return kept


def _readme(b: Bundle, name: str, summary: dict, pre_in: list[Tensor], post_out: list[Tensor]) -> str:
    ins = "\n".join(f"| `{t.name}` | {t.data_type} | {list(t.dims)} |" for t in pre_in)
    outs = "\n".join(f"| `{t.name}` | {t.data_type} | {list(t.dims)} |" for t in post_out)
    if b.kind == "generator":
        example = ('inp = [grpcclient.InferInput("label", [2, 1], "BYTES"),\n'
                   '       grpcclient.InferInput("seed", [2, 1], "INT64")]\n'
                   f'inp[0].set_data_from_numpy(np.array([[b"{(b.class_names or ["0"])[0]}"], [b"1"]], dtype=object))\n'
                   f'inp[1].set_data_from_numpy(np.array([[0], [1]], dtype=np.int64))')
    else:
        example = ('import PIL.Image\n'
                   'photo = np.asarray(PIL.Image.open("photo.jpg").convert("RGB"))[None]   # (1, H, W, 3) uint8\n'
                   'inp = [grpcclient.InferInput("photo", list(photo.shape), "UINT8")]\n'
                   'inp[0].set_data_from_numpy(photo)')
    gpu = [k for k in summary["entry_points"] if k != name]
    srcs = "\n".join(f"| `{rel}` | {v['source'] or '(empty package marker)'} | `{v['sha256']}` |"
                     for rel, v in summary["prepost_sources"].items())
    also = "".join(f"\nAlso served from this repository: `{e}` (bundle `{(r.get('bundle') or {}).get('name')}`)."
                   for e, r in summary.get("repository", {}).items() if e != name)
    return f"""# Triton model repository for `{b.name}` ({b.kind})

Generated by skugen {__version__}. Serve it with

```bash
tritonserver --model-repository=$PWD
```

Entry points (ensembles): `{name}` (CPU, onnxruntime){"".join(f", `{g}`" for g in gpu)}{"" if gpu else
" (no TensorRT plans: none were built in the bundle; see docs/triton.md)"}.
max_batch_size {summary["max_batch_size"]}.{also}

| input | type | dims (per item; the batch axis is implicit) |
|---|---|---|
{ins}

| output | type | dims |
|---|---|---|
{outs}

```python
import numpy as np, tritonclient.grpc as grpcclient
c = grpcclient.InferenceServerClient("localhost:8001")
{example}
res = c.infer("{name}", inp, outputs=[grpcclient.InferRequestedOutput("image")])
images = res.as_numpy("image")   # uint8, (B, H, W, C)
```

TensorRT plans only load on the GPU model and TensorRT version that built them
(see skugen_triton.json); use a Triton release whose TensorRT matches.

The Python-backend models (`{name}_pre`, `{name}_post`) need only numpy: `1/model.py` is the
Triton glue, and the pre/post code beside it in `1/{PREPOST_DIR}/` is skugen {__version__}'s own,
copied verbatim at export (so the images match `skugen generate` bit for bit):

| file | from skugen | sha256 |
|---|---|---|
{srcs}
"""
