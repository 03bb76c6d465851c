"""FP16 graphs of diffusion bundles (for TensorRT: strongly typed, so the ONNX itself says which tensors are FP16),
gated like the diffusion INT8 on the FINAL images of whole sampling runs.

    r = fp16_graphs(text_onnx, den_onnx, spec, judge)     # DiffusionFP16: both FP16 graphs, what stayed FP32, report

1. Always FP32 (by rule, before any measurement):
   - the nodes computed from t and mask alone (skugen.export.diffusion_quant.conditioning_nodes): the phase
     argument t * 1000 * freq reaches 280 rad, where FP16's spacing is 0.25 rad;
   - AutoCast's range rule (skugen.export.fp16_gate._range_forced): a node whose FP32 output on real sampler
     states (every timestep of FP32 sampling runs), or whose weight, comes near the FP16 range.
2. Everything else FP16 in both graphs, executed as the one-graph FP16 gate executes FP16 on this CPU
   (fp16_gate.METHOD: FP16 storage simulation on ONNX Runtime), through the runtime's own sampler from the same
   prompts and noise as FP32. Accepted when the images are within `min_psnr_db` of FP32's AND within the
   diffusion gate's budget (class fidelity drop, FID-proxy ratio).
3. Otherwise a search over the denoiser's nodes: each candidate kept FP32 alone, ranked by the velocity error
   it leaves on sampler states (one denoiser call: cheap); then the top 1, 2, 4, ... kept FP32, each judged by
   whole sampling runs, up to `max_float_fraction` of the candidates. None holds: no FP16 graph ships.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from skugen.io import jsonable

from .diffusion_gate import DiffusionGateConfig, LoopSpec, gate
from .diffusion_quant import DenoiserQuantConfig, conditioning_nodes, trajectory_calibration
from .fp16 import fp16_plan, fp16_storage_sim, fp16_summary, to_fp16
from .fp16_gate import FP16_MIN_PSNR_DB, METHOD, _range_forced
from .onnx_export import session


@dataclass(frozen=True)
class DiffusionFP16Config:
    gate: DiffusionGateConfig = DiffusionGateConfig()
    min_psnr_db: float = FP16_MIN_PSNR_DB  # final images vs FP32's, [0, 255]
    max_float_fraction: float = 0.5
    calib_prompts: int = 16                # sampler states for the range rule and the search's ranking
    rows_per_step: int = 4


@dataclass
class DiffusionFP16:
    met_budget: bool
    text_bytes: bytes | None
    den_bytes: bytes | None
    kept_text: tuple[str, ...]
    kept_den: tuple[str, ...]
    report: dict = field(repr=False)


def _pair(text: bytes, den: bytes):
    tr, dr = session(text), session(den)
    return (lambda tk: tr.infer({"tokens": tk})["context"], lambda f: dr.infer(f)["v"]), (tr, dr)


def _rel_err(den_fp32_v: np.ndarray, den16: bytes, feeds: dict) -> float:
    r = session(fp16_storage_sim(den16))
    try:
        v = r.infer(feeds)["v"]
    finally:
        r.deactivate()
    return float(np.linalg.norm(v - den_fp32_v) / max(np.linalg.norm(den_fp32_v), 1e-12))


def fp16_graphs(text_onnx: bytes, den_onnx: bytes, spec: LoopSpec, judge,
                cfg: DiffusionFP16Config | None = None) -> DiffusionFP16:
    """FP16 text encoder and denoiser with the fewest FP32 nodes that hold the budget (see the module docstring)."""
    cfg = cfg or DiffusionFP16Config()
    t0 = time.perf_counter()
    calib, _ = trajectory_calibration(text_onnx, den_onnx, spec, DenoiserQuantConfig(
        calib_prompts=cfg.calib_prompts, rows_per_step=cfg.rows_per_step))
    ids, _ = spec.tokenizer.encode_batch(["a photo of a sneaker", "a dark dress"])
    tokens = np.concatenate([ids, np.asarray([spec.tokenizer.null()], np.int64)])
    plan_t, plan_d = fp16_plan(text_onnx), fp16_plan(den_onnx)
    rule = {n: "computed from t / mask alone (the timestep's phase, the attention bias)"
            for n in conditioning_nodes(den_onnx) if n in plan_d["fp16_capable"]}
    range_d = _range_forced(den_onnx, calib, plan_d["fp16_capable"], len(calib["x"]))
    range_t = _range_forced(text_onnx, {"tokens": tokens}, plan_t["fp16_capable"], len(tokens))
    keep_t = sorted(range_t)
    keep_d0 = sorted(set(rule) | set(range_d))
    text16 = to_fp16(text_onnx, keep_t)
    ref, ref_runners = _pair(text_onnx, den_onnx)
    n_evals = 0

    def measure(den16: bytes) -> dict:
        nonlocal n_evals
        n_evals += 1
        cand, runners = _pair(fp16_storage_sim(text16), fp16_storage_sim(den16))
        try:
            m = gate(ref, cand, spec, judge, cfg.gate)
        finally:
            for r in runners:
                r.deactivate()
        psnr_ok = m["psnr_vs_fp32_db"] >= cfg.min_psnr_db
        m["budget"] = {"ok": bool(psnr_ok and m.get("within_budget")), "checks": [
            {"name": "psnr_vs_fp32_db", "value": m["psnr_vs_fp32_db"], "rule": ">=", "limit": cfg.min_psnr_db,
             "ok": bool(psnr_ok)},
            {"name": "fidelity_drop_pts", "value": m.get("fidelity_drop_pts"), "rule": "<=",
             "limit": cfg.gate.max_fidelity_drop_pts, "ok": bool(m.get("within_budget"))},
            {"name": "fid_ratio", "value": m.get("fid_ratio"), "rule": "<=", "limit": cfg.gate.max_fid_ratio,
             "ok": bool(m.get("within_budget"))}]}
        return m

    try:
        cands = [c for c in plan_d["candidates"] if c not in keep_d0]
        max_fp32 = int(math.floor(cfg.max_float_fraction * len(cands)))
        m_all = measure(to_fp16(den_onnx, keep_d0))
        chosen, final, ranking, steps = [], (m_all if m_all["budget"]["ok"] else None), [], []
        if final is None and max_fp32 > 0:
            r32 = session(den_onnx)
            try:
                v32 = r32.infer(calib)["v"]
            finally:
                r32.deactivate()
            ranking = sorted(({"node": c, "op": plan_d["fp16_capable"][c],
                               "velocity_rel_err_if_fp32": _rel_err(v32, to_fp16(den_onnx, keep_d0 + [c]), calib)}
                              for c in cands), key=lambda p: p["velocity_rel_err_if_fp32"])
            k = 1
            while k <= max_fp32:
                top = [p["node"] for p in ranking[:k]]
                m = measure(to_fp16(den_onnx, keep_d0 + top))
                steps.append({"kept_fp32": top, **{x: m.get(x) for x in ("psnr_vs_fp32_db", "fidelity_drop_pts",
                                                                          "fid_ratio", "budget")}})
                if m["budget"]["ok"]:
                    chosen, final = top, m
                    break
                k = k * 2 if k * 2 <= max_fp32 or k == max_fp32 else max_fp32
    finally:
        for r in ref_runners:
            r.deactivate()
    met = final is not None
    keep_d = tuple(keep_d0 + chosen)
    den16 = to_fp16(den_onnx, keep_d) if met else None
    report = {
        "kind": "diffusion fp16 (text encoder + denoiser)", "method": METHOD,
        "judged": "final images of whole sampling runs (FP16 storage simulation on ONNX Runtime) vs FP32's",
        "config": jsonable(asdict(cfg)),
        "kept_fp32": {"denoiser": [{"node": n, "reason": rule.get(n) or f"range: {range_d.get(n)}"} for n in keep_d0]
                      + [{"node": n, "reason": "search: most velocity error removed"} for n in chosen],
                      "text_encoder": [{"node": n, "reason": f"range: {why}"} for n, why in sorted(range_t.items())]},
        "fp16_all_nodes": m_all, "search": {"ranking": ranking, "steps": steps, "max_fp32": max_fp32},
        "final": final, "n_evals": n_evals,
        "summary": {"denoiser": fp16_summary(den16), "text_encoder": fp16_summary(text16)} if met else None,
        "outcome": ("fp16" if met and not chosen else "fp16-mixed" if met else "no fp16 (budget not met)"),
    }
    if met:
        report["message"] = (f"FP16 graphs: denoiser {len(keep_d)} node(s) FP32 ({len(keep_d0)} by rule, "
                             f"{len(chosen)} by search), text encoder {len(keep_t)}; final images "
                             f"{final['psnr_vs_fp32_db']:.1f} dB vs FP32, fidelity drop "
                             f"{final.get('fidelity_drop_pts', 0.0):.2f} pts, FID-proxy ratio {final.get('fid_ratio'):.3f}")
    else:
        report["message"] = (f"no FP16 graphs: all-FP16 final images are {m_all['psnr_vs_fp32_db']:.1f} dB from FP32 "
                             f"(budget {cfg.min_psnr_db:g}), and keeping up to {max_fp32} more denoiser nodes FP32 "
                             "did not hold the budget. TensorRT runs these bundles in FP32 or INT8.")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return DiffusionFP16(met, text16 if met else None, den16, tuple(keep_t), keep_d, jsonable(report, finite=False))


def int8_twin_fp16(text_onnx: bytes, den_onnx: bytes, twin: bytes, keep_fp32: tuple[str, ...], spec: LoopSpec, judge,
                   gate_cfg: DiffusionGateConfig) -> tuple[bytes, dict]:
    """The TensorRT INT8 twin of the denoiser with FP16 (not FP32) outside its Q/DQ layers, as the one-graph families
    ship theirs (skugen.export.qdq.tensorrt_fp16), keeping the FP16 gate's FP32 nodes (the timestep phase among
    them). -> (the twin, its final-image metrics: whole sampling runs with the FP32 text encoder, the graph TensorRT
    pairs with an INT8 denoiser, against FP32). The caller ships it only when metrics["within_budget"]."""
    from .qdq import tensorrt_fp16

    twin16 = tensorrt_fp16(twin, keep_fp32)
    ref, runners = _pair(text_onnx, den_onnx)
    cand, cand_runners = _pair(text_onnx, fp16_storage_sim(twin16))
    try:
        m = gate(ref, cand, spec, judge, gate_cfg)
    finally:
        for r in runners + cand_runners:
            r.deactivate()
    return twin16, {**m, "method": METHOD["name"], "kept_fp32": list(keep_fp32)}
