"""`skugen export` for the diffusion family: two graphs, one manifest, the sampling loop checked end to end.

    path = export_diffusion_bundle("fmnist-diffusion", "runs/diff/bundle")

What the bundle holds (schema 2, skugen.manifest.Graph):
- the denoiser as the bundle's own model (`models`: it runs N times per image, so verify / bench / tune /
  every backend treat it like any bundle's model): x (B, C, H, W), t (B,), context (B, L, D), mask (B, L) -> v;
- `graphs.text_encoder`: tokens (B, L) int64 -> context (B, L, D), with its own variants, sha256s and golden;
- `diffusion`: sampler, default steps and guidance, the vocabulary file (the tokenizer's, hashed).
Checks, each raising VerificationError so no bundle is written when one fails:
1. graph parity: each ONNX against PyTorch on fixed inputs (Polygraphy tolerance semantics);
2. loop parity: the runtime's numpy sampler (skugen.sampler.sample) running both ONNX graphs on ONNX Runtime
   against the eager-PyTorch sampler from the same noise, prompts and steps, in image space.
Golden data are real sampler states: the denoiser's inputs captured along a sampling run of the golden prompts.
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from skugen import __version__ as skugen_version
from skugen.bundle import check_bundle_dest, npz_bytes, write_bundle
from skugen.sampler import make_noise, sample
from skugen.errors import ModelError, VerificationError
from skugen.io import json_text, sha256_bytes, sha256_file
from skugen.manifest import (DEFAULT_VALUE_RANGE, DiffusionSpec, Golden, Graph, IOSpec, Manifest, Postprocess,
                             Preprocess, TensorSpec, Variant, schema_for)
from skugen.tokenizer import Tokenizer

from . import ckpt, zoo
from .diffusion_gate import DiffusionGateConfig, LoopSpec
from .onnx_export import ExportConfig, compare_outputs, graph_to_onnx, ort_outputs
from .tolerances import FP16_TOL, FP32_TOL, int8_golden_tolerance, worse_stats

# The loop compounds N steps of float32 rounding differences (ORT vs torch kernels), in image units [-1, 1]:
# 32 Euler steps measured ~1e-5 max abs; 2e-3 is a quarter of one uint8 level.
LOOP_TOL = {"atol": 2e-3, "rtol": 0.0}
GOLDEN_PROMPTS = ("a photo of a sneaker", "dark ankle boots", "a product photo of a dress", "white t-shirt")
TEXT_GRAPH = "text_encoder"


class _Denoiser(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context, mask):
        return self.unet(x, t, context, mask)


def _onnx(module, args, ins, outs, axes, cfg: ExportConfig) -> tuple[bytes, dict]:
    from collections import Counter

    mp = graph_to_onnx(module.eval(), args, ins, outs, axes, cfg)
    return mp.SerializeToString(), dict(sorted(Counter(n.op_type for n in mp.graph.node).items()))


def _check(stats: dict, what: str) -> dict:
    if not stats["pass"]:
        raise VerificationError(f"{what}: ONNX disagrees with PyTorch (max_abs {stats['max_abs']:.3g}, "
                                f"{stats.get('n_fail')}/{stats.get('n')} elements outside); the bundle was not written.")
    return stats


def load_tokenizer(src: Path, card: dict) -> Tokenizer:
    v = card.get("vocab") or {}
    f = src / v.get("file", "vocab.json")
    if not f.is_file():
        raise ModelError(f"{src} has no {f.name}: a diffusion model directory carries its tokenizer's vocabulary. "
                         "Re-run `skugen train fmnist-diffusion`.")
    if v.get("sha256") and sha256_file(f) != v["sha256"]:
        raise ModelError(f"{f} does not match the sha256 its card records; the model directory was altered. "
                         "Restore it or re-train.")
    return Tokenizer.from_dict(json.loads(f.read_text()), str(f))


def export_diffusion_bundle(model_dir_or_zoo_name, out, cfg) -> Path:
    """Export, check and write a diffusion bundle (see the module docstring). cfg: the export.bundle.BundleConfig
    that `export_bundle` (the entry point) was given: name, export, golden_seed, max_batch, int8, fp16, openvino,
    classifier, eval_n and budget apply."""
    check_bundle_dest(out)
    src = zoo.resolve(model_dir_or_zoo_name)
    model, card = ckpt.load_model(src)
    model.eval()
    c = model.cfg
    tok = load_tokenizer(src, card)
    if tok.context != c.context or tok.size != c.vocab_size:
        raise ModelError(f"{src}: vocabulary ({tok.size} words, context {tok.context}) does not match the model "
                         f"(vocab_size {c.vocab_size}, context {c.context}).")
    name = cfg.name or card.get("name") or src.name
    ecfg = cfg.export
    shape = (c.channels, c.image_size, c.image_size)

    # 1. the two graphs, each checked against PyTorch
    ids, _ = tok.encode_batch(list(GOLDEN_PROMPTS))
    tokens = np.concatenate([ids, np.asarray([tok.null()], np.int64)])           # (5, L): the prompts + the null one
    text_bytes, text_ops = _onnx(model.text_encoder, (torch.from_numpy(tokens),), ["tokens"], ["context"],
                                 {"tokens": {0: "batch"}, "context": {0: "batch"}}, ecfg)
    with torch.no_grad():
        ctx_ref = model.text_encoder(torch.from_numpy(tokens)).numpy()
    text_parity = _check(compare_outputs(ort_outputs(text_bytes, {"tokens": tokens})["context"], ctx_ref,
                                         FP32_TOL["atol"], FP32_TOL["rtol"]), "text encoder")

    # golden denoiser inputs: states of a real sampling run (steps 0, mid, last) for the golden prompts
    noise = make_noise(cfg.golden_seed, len(GOLDEN_PROMPTS), shape)
    captured: list[dict] = []
    steps = c.steps
    keep = {0, steps // 2, steps - 1}

    def t_encode(tk):
        with torch.no_grad():
            return model.text_encoder(torch.from_numpy(tk)).numpy()

    def t_denoise(feed, _k=[0]):
        if _k[0] in keep:
            captured.append({k: v.copy() for k, v in feed.items()})
        _k[0] += 1
        with torch.no_grad():
            return model.denoiser(*[torch.from_numpy(feed[k]) for k in ("x", "t", "context", "mask")]).numpy()

    img_torch = sample(t_encode, t_denoise, ids, tok.null(), noise, steps, c.guidance, cfg.max_batch)
    g_in = {k: np.concatenate([f[k] for f in captured]) for k in ("x", "t", "context", "mask")}
    den = _Denoiser(model.denoiser)
    den_bytes, den_ops = _onnx(den, tuple(torch.from_numpy(g_in[k][:2]) for k in ("x", "t", "context", "mask")),
                               ["x", "t", "context", "mask"], ["v"],
                               {k: {0: "batch"} for k in ("x", "t", "context", "mask", "v")}, ecfg)
    with torch.no_grad():
        v_ref = den(*[torch.from_numpy(g_in[k]) for k in ("x", "t", "context", "mask")]).numpy()
    den_parity = _check(compare_outputs(ort_outputs(den_bytes, g_in)["v"], v_ref, FP32_TOL["atol"], FP32_TOL["rtol"]),
                        "denoiser")

    # 2. the whole loop: runtime sampler + both ONNX graphs on ORT vs the eager sampler, same noise
    from skugen.backends import onnx_runner

    with onnx_runner(text_bytes) as tr, onnx_runner(den_bytes) as dr:
        img_onnx = sample(lambda tk: tr.infer({"tokens": tk})["context"], lambda f: dr.infer(f)["v"], ids,
                          tok.null(), noise, steps, c.guidance, cfg.max_batch)
    loop = compare_outputs(np.clip(img_onnx, -1, 1), np.clip(img_torch, -1, 1), LOOP_TOL["atol"], LOOP_TOL["rtol"],
                           DEFAULT_VALUE_RANGE["diffusion"])
    if not loop["pass"]:
        raise VerificationError(f"the sampling loop on ONNX Runtime drifts from eager PyTorch over {steps} steps "
                                f"(max_abs {loop['max_abs']:.3g} > {LOOP_TOL['atol']}); the bundle was not written.")

    # the final-image judge of the gates below (None: only PSNR is measured and nothing is accepted)
    judge = None
    want_fp16 = cfg.fp16 if cfg.fp16 is not None else cfg.int8
    if cfg.classifier and (cfg.int8 or want_fp16 or cfg.openvino is not False):
        judge = zoo.load_judge() if cfg.classifier == "auto" else zoo.load_judge(cfg.classifier)
    loop_spec = LoopSpec(tok, steps, c.guidance, cfg.max_batch, shape)   # what every gate samples with
    gate_n = cfg.eval_n or DiffusionGateConfig.n
    gcfg = DiffusionGateConfig(n=gate_n, max_fidelity_drop_pts=cfg.budget.max_fidelity_drop_pts)
    with_openvino = cfg.openvino is not False and importlib.util.find_spec("openvino") is not None

    # 2b. OpenVINO BF16 (a runtime precision of the FP32 graphs): gated on final images, recorded in the manifest
    bf16 = None
    if with_openvino:
        from .diffusion_gate import bf16_record

        with onnx_runner(text_bytes) as tr, onnx_runner(den_bytes) as dr:
            ref = (lambda tk: tr.infer({"tokens": tk})["context"], lambda f: dr.infer(f)["v"])
            bf16 = bf16_record(text_bytes, den_bytes, ref, loop_spec, judge, gcfg)  # the budget INT8/FP16 get

    # 2c. INT8 denoiser: calibrated over sampling trajectories, gated on the final images (diffusion_quant)
    int8 = None
    if cfg.int8:
        from .diffusion_quant import DenoiserQuantConfig, quantize_denoiser

        int8 = quantize_denoiser(text_bytes, den_bytes, loop_spec, judge,
                                 DenoiserQuantConfig(gate=gcfg, max_float_fraction=cfg.budget.max_float_fraction))

    # 2c'. OpenVINO's own INT8 IR of the denoiser (NNCF on the OpenVINO model), when the ORT INT8 shipped
    ov8 = None
    if int8 is not None and int8.met_budget and with_openvino:
        from .diffusion_openvino import openvino_int8_denoiser

        ov8 = openvino_int8_denoiser(text_bytes, den_bytes, loop_spec, judge, gcfg, int8.kept_float)

    # 2d. FP16 graphs (TensorRT FP16 is strongly typed: it builds from these), gated on final images
    f16 = None
    if want_fp16:
        from .diffusion_fp16 import DiffusionFP16Config, fp16_graphs

        f16 = fp16_graphs(text_bytes, den_bytes, loop_spec, judge,
                          DiffusionFP16Config(gate=gcfg, max_float_fraction=cfg.budget.max_float_fraction))

    # 3. manifest: the denoiser is the bundle's model, the text encoder a further graph
    L, D = c.context, c.text_dim
    den_io = IOSpec(
        inputs=(TensorSpec("x", ("batch", *shape), extra={"note": "x_t: noise at t=1, the image at t=0"}),
                TensorSpec("t", ("batch",), range=(0.0, 1.0)),
                TensorSpec("context", ("batch", L, D), extra={"note": "the text encoder's output"}),
                TensorSpec("mask", ("batch", L), range=(0.0, 1.0), extra={"encoding": "1 = token, 0 = padding"})),
        outputs=(TensorSpec("v", ("batch", *shape), extra={"note": "velocity: noise - image"}),),
        channels=c.channels, image_size=c.image_size, max_batch=cfg.max_batch)
    text_io = IOSpec(inputs=(TensorSpec("tokens", ("batch", L), dtype="int64"),),
                     outputs=(TensorSpec("context", ("batch", L, D)),), max_batch=cfg.max_batch)
    macs_den, macs_text = card.get("macs_denoiser_step"), card.get("macs_text_encoder")
    den_v = Variant("model.fp32.onnx", sha256_bytes(den_bytes), bytes=len(den_bytes), precision="fp32",
                    opset=ecfg.opset, params=sum(p.numel() for p in model.denoiser.parameters()), macs=macs_den,
                    op_counts=den_ops,
                    extra={"runtime_precisions": {"openvino": {"bf16": bf16}}} if bf16 is not None else {})
    text_v = Variant("text_encoder.fp32.onnx", sha256_bytes(text_bytes), bytes=len(text_bytes), precision="fp32",
                     opset=ecfg.opset, params=sum(p.numel() for p in model.text_encoder.parameters()), macs=macs_text,
                     op_counts=text_ops)
    vocab_bytes = (json.dumps(tok.to_dict(), indent=1) + "\n").encode()
    parity = {"reference": "pytorch fp32 (eval)", "runtime": "onnxruntime CPU", "rule": "|onnx - torch| <= atol + "
              "rtol * |torch| per element", "tolerance": FP32_TOL,
              "graphs": {"denoiser": den_parity, TEXT_GRAPH: text_parity},
              "loop": {**loop, "tolerance": LOOP_TOL, "steps": steps, "guidance": c.guidance,
                       "prompts": list(GOLDEN_PROMPTS), "noise": f"default_rng({cfg.golden_seed}).standard_normal",
                       "what": "skugen.sampler.sample on both ONNX graphs vs the same loop in eager PyTorch"}}
    files: dict[str, bytes | os.PathLike] = {
        "model.fp32.onnx": den_bytes, "text_encoder.fp32.onnx": text_bytes, "vocab.json": vocab_bytes,
        "golden/inputs.npz": npz_bytes(g_in), "golden/outputs.npz": npz_bytes({"v": v_ref}),
        "golden/text_inputs.npz": npz_bytes({"tokens": tokens}),
        "golden/text_outputs.npz": npz_bytes({"context": ctx_ref}),
        "golden/loop.npz": npz_bytes({"noise": noise, "tokens": ids, "image": img_torch}),
        "reports/parity.json": json_text(parity).encode(),
        "card.json": json_text({**card, "bundle": {"kind": "diffusion"}}).encode(),
        "source/model.safetensors": src / "model.safetensors", "source/card.json": src / "card.json",
        "source/vocab.json": src / "vocab.json",
    }
    tol = {"fp32": dict(FP32_TOL)}
    models_m = {"fp32": den_v}
    reports = {"parity": "reports/parity.json"}
    if int8 is not None:
        files["reports/quantization.json"] = json_text(int8.report).encode()
        reports["quantization"] = "reports/quantization.json"
    if int8 is not None and int8.met_budget:
        got = ort_outputs(int8.onnx_bytes, g_in)["v"]
        st = compare_outputs(got, v_ref, FP32_TOL["atol"], FP32_TOL["rtol"], DEFAULT_VALUE_RANGE["diffusion"])
        st_trt = compare_outputs(ort_outputs(int8.trt_onnx_bytes, g_in)["v"], v_ref, FP32_TOL["atol"], FP32_TOL["rtol"],
                                 DEFAULT_VALUE_RANGE["diffusion"])
        int8_stats = worse_stats(st, st_trt)
        tol["int8"] = int8_golden_tolerance(int8_stats, span=2.0)  # v: velocities of [-1, 1] images
        files["model.int8.onnx"], files["model.int8.trt.onnx"] = int8.onnx_bytes, int8.trt_onnx_bytes
        models_m["int8"] = Variant(
            "model.int8.onnx", sha256_bytes(int8.onnx_bytes), bytes=len(int8.onnx_bytes), precision="int8",
            opset=ecfg.opset, macs=macs_den, activations="uint8 (zero point 0/128) for ONNX Runtime x86's U8S8 kernels",
            quantization={"tool": "nncf", "format": "QDQ (QuantizeLinear/DequantizeLinear)",
                          "calibration": int8.report["calibration"], "ignored_layers": list(int8.kept_float),
                          "outcome": int8.report["outcome"], "report": "reports/quantization.json",
                          "gate": "final images of whole sampling runs (class fidelity, FID-proxy)"},
            variants={"tensorrt": Variant("model.int8.trt.onnx", sha256_bytes(int8.trt_onnx_bytes),
                                          bytes=len(int8.trt_onnx_bytes), use_for=("tensorrt",),
                                          activations="int8, zero point 0 (TensorRT explicit quantization)")})
    if ov8 is not None:
        files["reports/quantization.openvino.json"] = json_text(ov8.report).encode()
        reports["quantization_openvino"] = "reports/quantization.openvino.json"
    if ov8 is not None and ov8.met_budget:
        from .openvino_quant import OV_INT8_FILE, OV_INT8_WEIGHTS, compile_cpu, read_ir

        cd = compile_cpu(read_ir(ov8.xml, ov8.bin), "f32")
        st_ov = compare_outputs(cd.create_infer_request().infer(g_in)[cd.output(0)], v_ref, FP32_TOL["atol"],
                                FP32_TOL["rtol"], DEFAULT_VALUE_RANGE["diffusion"])
        tol["int8.openvino"] = int8_golden_tolerance(st_ov, span=2.0)
        files[OV_INT8_FILE], files[OV_INT8_WEIGHTS] = ov8.xml, ov8.bin
        v8 = models_m["int8"]
        models_m["int8"] = replace(v8, variants={**v8.variants, "openvino": Variant(
            OV_INT8_FILE, sha256_bytes(ov8.xml), bytes=len(ov8.xml), weights=OV_INT8_WEIGHTS, precision="int8",
            use_for=("openvino",), activations="NNCF FakeQuantize on the OpenVINO model (OpenVINO CPU int8 kernels)",
            quantization={"tool": "nncf", "engine": "openvino", "format": "OpenVINO IR (FakeQuantize, int8 weights)",
                          "inference_precision": ov8.report["config"]["inference_precision"],
                          "ignored_layers": list(ov8.kept_float), "outcome": ov8.report["outcome"],
                          "report": "reports/quantization.openvino.json"})})
    text_models = {"fp32": text_v}
    if f16 is not None:
        files["reports/fp16.json"] = json_text(f16.report).encode()
        reports["fp16"] = "reports/fp16.json"
    if f16 is not None and f16.met_budget:
        vr = DEFAULT_VALUE_RANGE["diffusion"]
        st_d = compare_outputs(ort_outputs(f16.den_bytes, g_in)["v"], v_ref, FP16_TOL["atol"], FP16_TOL["rtol"], vr)
        st_t = compare_outputs(ort_outputs(f16.text_bytes, {"tokens": tokens})["context"], ctx_ref, FP16_TOL["atol"],
                               FP16_TOL["rtol"])
        if not (st_d["pass"] and st_t["pass"]):
            raise VerificationError(f"the FP16 graphs do not reproduce the golden outputs within {FP16_TOL} (denoiser "
                                    f"max_abs {st_d['max_abs']:.3g}, text encoder {st_t['max_abs']:.3g}); the bundle "
                                    "was not written. Export without FP16 (--no-fp16) and report the model.")
        tol["fp16"] = dict(FP16_TOL)
        files["model.fp16.onnx"], files["text_encoder.fp16.onnx"] = f16.den_bytes, f16.text_bytes
        how = {"tool": "skugen.export.fp16", "format": "FP16 ONNX (casts at FP32 boundaries, FP32 I/O)",
               "outcome": f16.report["outcome"], "report": "reports/fp16.json",
               "gate": "final images of whole sampling runs (PSNR vs FP32, class fidelity, FID-proxy)"}
        models_m["fp16"] = Variant("model.fp16.onnx", sha256_bytes(f16.den_bytes), bytes=len(f16.den_bytes),
                                   precision="fp16", opset=ecfg.opset, macs=macs_den,
                                   activations=f"fp16; fp32 I/O; {len(f16.kept_den)} node(s) fp32",
                                   quantization={**how, "kept_fp32": list(f16.kept_den)})
        text_models["fp16"] = Variant("text_encoder.fp16.onnx", sha256_bytes(f16.text_bytes),
                                      bytes=len(f16.text_bytes), precision="fp16", opset=ecfg.opset, macs=macs_text,
                                      activations=f"fp16; fp32 output; {len(f16.kept_text)} node(s) fp32",
                                      quantization={**how, "kept_fp32": list(f16.kept_text)})
    if f16 is not None and f16.met_budget and "int8" in models_m:  # the TensorRT INT8 twin: FP16 outside Q/DQ
        from .diffusion_fp16 import int8_twin_fp16

        twin16, m16 = int8_twin_fp16(text_bytes, den_bytes, files["model.int8.trt.onnx"], f16.kept_den, loop_spec,
                                     judge, gcfg)
        f16.report["int8_tensorrt_fp16"] = {k: v for k, v in m16.items() if k != "budget"}
        files["reports/fp16.json"] = json_text(f16.report).encode()
        if m16.get("within_budget"):
            from .fp16 import fp16_storage_sim

            st16 = compare_outputs(ort_outputs(fp16_storage_sim(twin16), g_in)["v"], v_ref, FP32_TOL["atol"],
                                   FP32_TOL["rtol"], DEFAULT_VALUE_RANGE["diffusion"])
            tol["int8"] = int8_golden_tolerance(worse_stats(int8_stats, st16), span=2.0)
            from .qdq import with_tensorrt_twin

            files["model.int8.trt.onnx"] = twin16
            models_m["int8"] = with_tensorrt_twin(models_m["int8"], twin16, f16.kept_den)
    manifest = Manifest(
        schema_version=schema_for({TEXT_GRAPH: 1}), skugen_version=skugen_version, name=name, kind="diffusion",
        io=den_io, models=models_m,
        golden=Golden("golden/inputs.npz", "golden/outputs.npz", source=f"denoiser inputs at steps {sorted(keep)} "
                      f"of a {steps}-step sampling run of {len(GOLDEN_PROMPTS)} prompts (+ their CFG halves)",
                      reference="pytorch fp32", n=int(len(g_in["x"])), tolerances=tol),
        graphs={TEXT_GRAPH: Graph(io=text_io, models=text_models,
                                  golden=Golden("golden/text_inputs.npz", "golden/text_outputs.npz",
                                                source="the golden prompts and the empty prompt",
                                                reference="pytorch fp32", n=len(tokens), tolerances=tol))},
        diffusion=DiffusionSpec(vocab="vocab.json", context=L, steps=steps, max_steps=c.max_steps,
                                guidance=c.guidance, distilled_guidance=c.distilled_guidance or None,
                                extra={"loop_golden": "golden/loop.npz"}),
        preprocess=Preprocess(extra={"prompts": "word-level tokenizer (skugen.tokenizer), vocab.json",
                                     "noise": "float32 normal(0,1) from default_rng(seed)"}),
        postprocess=Postprocess(value_range=DEFAULT_VALUE_RANGE["diffusion"], clamp=True,
                                to_uint8="round((x - lo) / (hi - lo) * 255)",
                                layout="GRAY" if c.channels == 1 else "RGB"),
        reports=reports, card="card.json",
        source={"name": name, "weights": "source/model.safetensors", "card": "source/card.json",
                "sha256": card.get("weights", {}).get("sha256")},
        quality={"fp32": {"parity_max_abs": den_parity["max_abs"], "loop_max_abs": loop["max_abs"]},
                 **({"bf16_openvino": {k: bf16.get(k) for k in ("native", "accepted", "eval")}} if bf16 else {}),
                 **({"int8": {k: int8.report.get(k) for k in ("outcome", "message", "kept_float", "final")}}
                    if int8 is not None else {}),
                 **({"int8_openvino": {k: ov8.report.get(k) for k in ("outcome", "message", "kept_float", "final")}}
                    if ov8 is not None else {}),
                 **({"fp16": {"outcome": f16.report["outcome"], "message": f16.report["message"],
                              "kept_fp32": {"denoiser": list(f16.kept_den), "text_encoder": list(f16.kept_text)},
                              "final": f16.report["final"]}} if f16 is not None else {}),
                 "card_metrics": card.get("metrics")},
    )
    return write_bundle(out, manifest, files)
