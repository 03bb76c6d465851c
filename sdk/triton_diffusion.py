"""`skugen export-triton` for diffusion bundles: a repository that runs the whole sampling loop.

A one-graph bundle is served as an ensemble (pre -> model -> post). A diffusion image needs a loop: the text
encoder once, then the denoiser N times with classifier-free guidance and an Euler update between calls. An
ensemble cannot loop, so the client-facing model is a Python-backend model that drives the two graphs through
Business Logic Scripting (BLS), with skugen's own sampler copied verbatim beside it:

    REPO/
        NAME_text_onnx/        onnxruntime_onnx, KIND_CPU: tokens -> context
        NAME_denoiser_onnx/    onnxruntime_onnx, KIND_CPU, dynamic batching: (x, t, context, mask) -> v
        NAME/                  Python backend (BLS): prompt + seed [+ steps, guidance] -> image   (clients call it)
                               1/model.py, 1/vocab.json, 1/skugen_prepost/{sampler,tokenizer,...}.py
        NAME_denoiser_trt_P/   tensorrt_plan, KIND_GPU (only when the bundle has built denoiser engines)
        NAME_text_trt_P/       tensorrt_plan (when the text encoder has an engine of precision P too)
        NAME_gpu_P/            the same loop on the plans (the text encoder's ONNX when it has no P plan)

One request is one `generate()` call: a list of prompts and one seed. The loop model's images are the
runtime's images for the same prompts and seed (tests/sdk/test_triton_diffusion.py runs the loop on the
repository's own ONNX files and compares bit for bit).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Callable

from .bundle import Bundle
from .errors import BundleError, InputError
from .triton_models import (PREPOST_DIR, Tensor, TritonConfig, _batched, _io_tensor, _plan_max_batch, _plan_sources,
                     newest_by_cc, onnx_model_config, plan_model_config, plan_summary, python_model_config,
                     python_model_files, summary_head)

VOCAB = "vocab.json"


def _graph_batch(g: Bundle, cfg: TritonConfig) -> int:
    if not _batched(g):
        raise BundleError(f"graph {g.graph_name or 'denoiser'} of bundle {g.name!r} has a fixed batch axis; "
                          "export-triton needs a dynamic one. Re-export the bundle.")
    mb = int(cfg.max_batch if cfg.max_batch is not None else g.spec.io.max_batch)
    if mb < 1:
        raise InputError(f"max_batch must be >= 1, got {mb}.")
    return mb


def _client_tensors(b: Bundle) -> tuple[list[Tensor], list[Tensor], list[bool]]:
    out = _io_tensor(b.spec.io.outputs[0], True)
    if len(out.dims) != 3:
        raise BundleError(f"the denoiser of bundle {b.name!r} returns dims {out.dims}, not (C, H, W). Re-export it.")
    c, h, w = out.dims
    ins = [Tensor("prompt", "TYPE_STRING", (-1,)), Tensor("seed", "TYPE_INT64", (1,)),
           Tensor("steps", "TYPE_INT32", (1,)), Tensor("guidance", "TYPE_FP32", (1,))]
    outs = [Tensor("image", "TYPE_UINT8", (-1, h, w, c)), Tensor("unknown_words", "TYPE_STRING", (-1,))]
    return ins, outs, [False, False, True, True]


def _loop_config(name: str, cfg: TritonConfig, ins: list[Tensor], outs: list[Tensor], optional: list[bool],
                 params: dict) -> dict:
    c = python_model_config(name, cfg, 0, ins, outs, params)  # max_batch_size 0: a request is one generate()
    c["input"] = [{**t.cfg(), "optional": True} if opt else t.cfg() for t, opt in zip(ins, optional)]
    return c


def diffusion_repository(b: Bundle, name: str, cfg: TritonConfig) -> tuple[dict[str, dict], dict, Callable]:
    """The models of the sampling-loop repository, skugen_triton.json and the README (see the module doc)."""
    d = b.spec.diffusion
    text = b.graph(d.text_graph)
    if cfg.precision not in b.precisions:
        raise InputError(f"bundle {b.name!r} has no {cfg.precision!r} denoiser ONNX (it has "
                         f"{', '.join(b.precisions)}); pass --precision {b.precisions[0]}.")
    text_prec = cfg.precision if cfg.precision in text.precisions else "fp32"
    den_batch, text_batch = _graph_batch(b, cfg), _graph_batch(text, cfg)
    ins, outs, optional = _client_tensors(b)
    c, h, w = _io_tensor(b.spec.io.outputs[0], True).dims
    lo, hi = b.spec.value_range
    py_files, sources = python_model_files()
    vocab = (b.root / d.vocab).read_bytes()  # verified with the bundle (its sha256 is in the manifest)
    py_files = {**py_files, f"1/{VOCAB}": vocab}
    sources = dict(sorted({**sources, VOCAB: {"source": f"bundle {d.vocab}",
                                              "sha256": hashlib.sha256(vocab).hexdigest()}}.items()))

    def loop_params(text_model: str, denoiser_model: str, max_batch: int) -> dict:
        return {"skugen_role": "diffusion", "kind": "diffusion", "bundle": b.name, "vocab": VOCAB,
                "text_model": text_model, "text_output": text.spec.io.outputs[0].name,
                "denoiser_model": denoiser_model, "denoiser_output": b.spec.io.outputs[0].name,
                "steps": d.steps, "max_steps": d.max_steps, "guidance": repr(float(d.guidance)),
                "distilled_guidance": "" if not d.distilled_guidance else repr(float(d.distilled_guidance)),
                "max_batch": max_batch, "shape": f"{c},{h},{w}", "value_range": f"{lo!r},{hi!r}"}

    models: dict[str, dict] = {}
    text_onnx, den_onnx = f"{name}_text_onnx", f"{name}_denoiser_onnx"
    models[text_onnx] = {"config": onnx_model_config(text, text_onnx, cfg, text_batch),
                         "files": {"1/model.onnx": text.model_path(text_prec)}}
    models[den_onnx] = {"config": onnx_model_config(b, den_onnx, cfg, den_batch),
                        "files": {"1/model.onnx": b.model_path(cfg.precision)}}
    # the loop never sends more rows than either model takes (text: prompts and empty prompts of a chunk)
    models[name] = {"config": _loop_config(name, cfg, ins, outs, optional,
                                           loop_params(text_onnx, den_onnx, min(den_batch, text_batch))),
                    "files": py_files}

    entry_points = {name: "CPU (onnxruntime), the whole sampling loop"}
    summary_plans: dict[str, list[dict]] = {}
    text_plans = _plan_sources(text, cfg.plans)
    for prec, engines in sorted(_plan_sources(b, cfg.plans).items()):
        by_cc, files = newest_by_cc(engines)
        den_trt, gpu = f"{name}_denoiser_trt_{prec}", f"{name}_gpu_{prec}"
        mb = _plan_max_batch(list(by_cc.values()), den_batch)
        models[den_trt] = {"config": plan_model_config(b, den_trt, cfg, mb, files),
                           "files": {f"1/{files[cc]}": e["plan"] for cc, e in by_cc.items()}}
        summary_plans[den_trt] = plan_summary(by_cc, files)
        text_model, text_mb = text_onnx, text_batch
        if prec in text_plans:
            t_cc, t_files = newest_by_cc(text_plans[prec])
            text_model = f"{name}_text_trt_{prec}"
            text_mb = _plan_max_batch(list(t_cc.values()), text_batch)
            models[text_model] = {"config": plan_model_config(text, text_model, cfg, text_mb, t_files),
                                  "files": {f"1/{t_files[cc]}": e["plan"] for cc, e in t_cc.items()}}
            summary_plans[text_model] = plan_summary(t_cc, t_files)
        models[gpu] = {"config": _loop_config(gpu, cfg, ins, outs, optional,
                                              loop_params(text_model, den_trt, min(mb, text_mb))),
                       "files": py_files}
        entry_points[gpu] = (f"GPU (TensorRT {prec} denoiser, "
                             f"{'TensorRT' if text_model != text_onnx else 'onnxruntime'} text encoder)")

    summary = {
        **summary_head(b, cfg), "max_batch_size": 0,
        "text_encoder_precision": text_prec,
        "sampling": {"steps": d.steps, "max_steps": d.max_steps, "guidance": d.guidance,
                     "distilled_guidance": d.distilled_guidance, "sampler": d.sampler},
        "entry_points": entry_points, "models": sorted(models), "plans": summary_plans,
        "client_inputs": [{**asdict(t), "optional": opt} for t, opt in zip(ins, optional)],
        "client_outputs": [asdict(t) for t in outs],
        "prepost_sources": sources,
    }
    return models, summary, lambda summary: _readme(b, name, summary)


def _readme(b: Bundle, name: str, summary: dict) -> str:
    from . import __version__

    rows = "\n".join(f"| `{t['name']}` | {t['data_type']} | {t['dims']} | {'optional' if t['optional'] else ''} |"
                     for t in summary["client_inputs"])
    srcs = "\n".join(f"| `{rel}` | {v['source'] or '(empty package marker)'} | `{v['sha256']}` |"
                     for rel, v in summary["prepost_sources"].items())
    eps = "\n".join(f"- `{k}`: {v}" for k, v in summary["entry_points"].items())
    eps += "".join(f"\n\nAlso served from this repository: `{e}` (bundle `{(r.get('bundle') or {}).get('name')}`)."
                   for e, r in summary.get("repository", {}).items() if e != name)
    s = summary["sampling"]
    guidance = (f"guidance is distilled into the weights ({s['distilled_guidance']:g}): send none, or 1"
                if s["distilled_guidance"] else f"guidance defaults to {s['guidance']:g}")
    return f"""# Triton model repository for `{b.name}` (diffusion: text -> image)

Generated by skugen {__version__}. Serve it with

```bash
tritonserver --model-repository=$PWD
```

Entry points (Python-backend models that run the whole sampling loop through BLS):

{eps}

One request is one `generate()` call: send a list of prompts and one seed; the images are those
`skugen.load(bundle).generate(prompts=..., seed=...)` returns for the same prompts and seed.
Steps default to {s['steps']} (at most {s['max_steps']}); {guidance}.

| input | type | dims | |
|---|---|---|---|
{rows}

Outputs: `image` (uint8, (n, H, W, C)) and `unknown_words` (one JSON list per prompt: words not in the
model's vocabulary, mapped to `<unk>`).

```python
import numpy as np, tritonclient.grpc as grpcclient
c = grpcclient.InferenceServerClient("localhost:8001")
inp = [grpcclient.InferInput("prompt", [2], "BYTES"), grpcclient.InferInput("seed", [1], "INT64")]
inp[0].set_data_from_numpy(np.array([b"a photo of a sneaker", b"a dark dress"], dtype=object))
inp[1].set_data_from_numpy(np.array([0], dtype=np.int64))
res = c.infer("{name}", inp, outputs=[grpcclient.InferRequestedOutput("image")])
images = res.as_numpy("image")   # uint8, (2, H, W, C)
```

The loop model needs only numpy. `1/model.py` is the Triton glue; the tokenizer, sampler and
post-processing beside it in `1/{PREPOST_DIR}/` are skugen {__version__}'s own, copied verbatim at export:

| file | from | sha256 |
|---|---|---|
{srcs}

The BLS calls go to the denoiser model, which has dynamic batching, so concurrent requests share
denoiser batches. TensorRT plans only load on the GPU model and TensorRT version that built them.
"""
