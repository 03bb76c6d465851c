"""OpenVINO's own INT8 of the diffusion denoiser: NNCF on the OpenVINO model, gated on final images on OpenVINO.

    r = openvino_int8_denoiser(text_onnx, den_onnx, spec, judge, gate_cfg, ort_kept_float)   # DenoiserOVInt8

Why: OpenVINO runs the ONNX Runtime-flavoured Q/DQ graph, but a model NNCF quantized on the OpenVINO graph is
the one its CPU plugin is built for (skugen.export.openvino_quant, issue #16). Calibration is the ORT path's
(every timestep of real FP32 sampling runs, stratified: diffusion_quant.trajectory_calibration), and the nodes
computed from t and mask alone stay float, for the reason diffusion_quant.conditioning_nodes gives.

Gate: whole sampling runs with the INT8 IR as OpenVINO's runtime compiles it (inference precision f32 for the
float parts, what the runner uses) and the FP32 text encoder on OpenVINO, against the FP32 images on ONNX Runtime,
same prompts and noise, the diffusion gate's budget. Candidates, in order, the first that holds ships:
all weight layers INT8, then the float layers the ONNX Runtime search chose (`ort_kept_float`). This reuses that
search's answer instead of running a second one on OpenVINO (each probe is a whole sampling run); when neither
holds, no IR ships and OpenVINO keeps running the Q/DQ ONNX.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from skugen.io import jsonable

from .diffusion_gate import DiffusionGateConfig, LoopSpec, gate
from .diffusion_quant import DenoiserQuantConfig, conditioning_nodes, trajectory_calibration
from .onnx_export import session
from .openvino_quant import (OVQuantConfig, compile_cpu, executed_precisions, int8_layers, ir_bytes, layer_names,
                             measured_on, nncf_int8, ops_named, ov_model, read_ir)


@dataclass
class DenoiserOVInt8:
    met_budget: bool
    xml: bytes | None
    bin: bytes | None
    kept_float: tuple[str, ...]
    report: dict = field(repr=False)


def openvino_int8_denoiser(text_onnx: bytes, den_onnx: bytes, spec: LoopSpec, judge, gate_cfg: DiffusionGateConfig,
                           ort_kept_float: tuple[str, ...] = (), qcfg: DenoiserQuantConfig | None = None,
                           ocfg: OVQuantConfig | None = None) -> DenoiserOVInt8:
    qcfg = qcfg or DenoiserQuantConfig()
    ocfg = ocfg or OVQuantConfig()
    t0 = time.perf_counter()
    calib, _ = trajectory_calibration(text_onnx, den_onnx, spec, qcfg)
    names = layer_names(den_onnx)
    float_ops = tuple(ops_named(den_onnx, conditioning_nodes(den_onnx)))
    ct = compile_cpu(ov_model(text_onnx), "f32", ocfg.threads)
    rt = ct.create_infer_request()
    tr, dr = session(text_onnx), session(den_onnx)
    ref = (lambda tk: tr.infer({"tokens": tk})["context"], lambda f: dr.infer(f)["v"])
    tries, chosen = [], None
    try:
        for kept in dict.fromkeys([(), tuple(ort_kept_float)]):  # the ORT search's answer, when it differs
            q = nncf_int8(den_onnx, {**calib}, kept, ocfg, names, float_ops)
            xml, bin_ = ir_bytes(q)
            shipped = read_ir(xml, bin_)                                   # what ships, read back
            cd = compile_cpu(shipped, ocfg.inference_precision, ocfg.threads)
            rd = cd.create_infer_request()
            cand = (lambda tk: rt.infer({"tokens": tk})[ct.output(0)].copy(),
                    lambda f, rd=rd, cd=cd: rd.infer(f)[cd.output(0)].copy())
            m = gate(ref, cand, spec, judge, gate_cfg)
            tries.append({"kept_float": list(kept), "int8_layers": len(int8_layers(shipped, names)),
                          "executed": executed_precisions(cd), **m})
            if m.get("within_budget"):
                chosen = (kept, xml, bin_, m)
                break
    finally:
        tr.deactivate()
        dr.deactivate()
    met = chosen is not None
    report = {
        "kind": "diffusion denoiser, OpenVINO INT8 IR (NNCF on the OpenVINO model)",
        "judged": "final images of whole sampling runs on OpenVINO vs FP32 on ONNX Runtime",
        "calibration": {"rows": int(len(calib["x"])), "rows_per_step": qcfg.rows_per_step, "steps": spec.steps,
                        "prompts": qcfg.calib_prompts, "seed": qcfg.seed},
        "config": {"preset": ocfg.preset, "overflow_fix": ocfg.overflow_fix, "fast_bias_correction":
                   ocfg.fast_bias_correction, "inference_precision": ocfg.inference_precision},
        "always_float_openvino_ops": list(float_ops), "quantizable_layers": list(names),
        "candidates": "all weight layers INT8, then the ONNX Runtime search's float layers", "tries": tries,
        "kept_float": list(chosen[0]) if met else None, "final": chosen[3] if met else None,
        "measured_on": measured_on(), "outcome": ("int8" if met and not chosen[0] else "int8-mixed" if met
                                                  else "no OpenVINO INT8 IR (budget not met)"),
        "seconds": round(time.perf_counter() - t0, 1)}
    report["message"] = (f"OpenVINO INT8 IR: {len(chosen[0])} of {len(names)} layers float; final images: fidelity "
                         f"drop {chosen[3].get('fidelity_drop_pts'):.2f} pts, FID-proxy ratio "
                         f"{chosen[3].get('fid_ratio'):.3f}" if met else
                         "no OpenVINO INT8 IR: neither candidate held the budget; OpenVINO runs the Q/DQ ONNX")
    return DenoiserOVInt8(met, chosen[1] if met else None, chosen[2] if met else None,
                          tuple(chosen[0]) if met else (), jsonable(report, finite=False))
