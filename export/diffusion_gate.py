"""The quality gate of diffusion bundles: judged on FINAL images of whole sampling runs, not per-layer error.

A reduced precision of the denoiser perturbs every one of its N calls, and the errors compound along the
trajectory, so the gate runs the runtime's own sampler (skugen.sampler.sample) end to end on the
candidate engine x precision and on the FP32 reference, from the same prompts (held-in prompt set, 10
classes balanced) and the same noise, and compares the images:
    psnr_vs_fp32_db      per-image PSNR in [0, 255] against the FP32 images (how far the trajectory moved);
    fidelity_drop_pts    class fidelity (fmnist-classifier judge) of FP32 minus the candidate's, in points;
    fid_ratio            FID-proxy (fmnist-classifier features, vs Fashion-MNIST test) candidate / FP32.
Accepted when fidelity_drop_pts <= max_fidelity_drop_pts and fid_ratio <= max_fid_ratio. PSNR is recorded,
not gated: a trajectory may move to another, equally good image of the same prompt.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from skugen.sampler import make_noise, sample
from skugen.evaluate import FID_NAME, class_fidelity, fid_proxy
from skugen.tokenizer import Tokenizer

from . import prompts


@dataclass(frozen=True)
class DiffusionGateConfig:
    n: int = 200                        # prompts (20 per class): FID-proxy needs a few hundred images
    seed: int = 4321                    # prompts and noise; another draw than the evaluation's 1234
    max_fidelity_drop_pts: float = 2.0
    max_fid_ratio: float = 1.25


@dataclass(frozen=True)
class LoopSpec:
    tokenizer: Tokenizer
    steps: int
    guidance: float
    max_batch: int
    shape: tuple[int, int, int]


Encode = Callable[[np.ndarray], np.ndarray]
Denoise = Callable[[dict], np.ndarray]


def gate_prompts(cfg: DiffusionGateConfig) -> tuple[list[str], np.ndarray]:
    return prompts.eval_prompts("held_in", cfg.n, cfg.seed)


def loop_images(encode: Encode, denoise: Denoise, spec: LoopSpec, texts: list[str], seed: int) -> np.ndarray:
    """(n, C, H, W) float images in [-1, 1] of `texts` from default_rng(seed) noise, on the given graphs."""
    ids, _ = spec.tokenizer.encode_batch(texts)
    noise = make_noise(seed, len(ids), spec.shape)
    x = sample(encode, denoise, ids, spec.tokenizer.null(), noise, spec.steps, spec.guidance, spec.max_batch)
    return np.clip(x, -1.0, 1.0)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR (dB) on the [0, 255] scale of [-1, 1] images; identical images count 100 dB."""
    mse = (((a - b) * 127.5) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), 100.0)))


def judge_images(ref: np.ndarray, cand: np.ndarray, labels: np.ndarray, judge,
                 cfg: DiffusionGateConfig) -> dict:
    """The gate's metrics of candidate images against the FP32 images of the same prompts and noise."""
    out: dict = {"psnr_vs_fp32_db": _psnr(cand, ref), "n": int(len(ref)), "budget": asdict(cfg)}
    if judge is None:
        out.update(within_budget=None, reason="no classifier judge: only PSNR was measured, nothing is accepted")
        return out
    f_ref, p_ref = judge.outputs(ref)
    f_c, p_c = judge.outputs(cand)
    real = judge.reference_features(max(len(ref), 200))
    fid_r, fid_c = fid_proxy(f_ref, real), fid_proxy(f_c, real)
    fr, fc = class_fidelity(p_ref, labels)["value"], class_fidelity(p_c, labels)["value"]
    out.update(class_fidelity_fp32=fr, class_fidelity=fc, fidelity_drop_pts=100.0 * (fr - fc),
               fid_proxy_fp32=fid_r, fid_proxy=fid_c, fid_ratio=fid_c / fid_r if fid_r > 0 else (1.0 if fid_c == 0 else float("inf")),
               fid_name=FID_NAME)
    out["within_budget"] = bool(out["fidelity_drop_pts"] <= cfg.max_fidelity_drop_pts
                                and out["fid_ratio"] <= cfg.max_fid_ratio)
    return out


def gate(reference: tuple[Encode, Denoise], candidate: tuple[Encode, Denoise], spec: LoopSpec, judge,
         cfg: DiffusionGateConfig | None = None) -> dict:
    """Run the gate prompts through both (encode, denoise) pairs and judge the candidate's final images."""
    cfg = cfg or DiffusionGateConfig()
    texts, labels = gate_prompts(cfg)
    ref = loop_images(*reference, spec, texts, cfg.seed)
    cand = loop_images(*candidate, spec, texts, cfg.seed)
    m = judge_images(ref, cand, labels, judge, cfg)
    return {**m, "prompts": f"held-in prompt set, {cfg.n} prompts, seed {cfg.seed}", "steps": spec.steps,
            "guidance": spec.guidance, "judged": "final images of whole sampling runs"}

# ----------------------------------------------------------------------------- OpenVINO BF16


def openvino_pair(text_onnx: bytes, den_onnx: bytes, hint: str, threads: int = 2) -> tuple[Encode, Denoise, dict]:
    """(encode, denoise, executed precisions) of the two graphs compiled on OpenVINO CPU with `hint`."""
    from .openvino_quant import compile_cpu, executed_precisions, ov_model

    ct, cd = (compile_cpu(ov_model(b), hint, threads) for b in (text_onnx, den_onnx))
    rt, rd = ct.create_infer_request(), cd.create_infer_request()

    def encode(tokens):
        return rt.infer({"tokens": tokens})[ct.output(0)].copy()

    def denoise(feed):
        return rd.infer(feed)[cd.output(0)].copy()

    return encode, denoise, {"denoiser": executed_precisions(cd), "text_encoder": executed_precisions(ct)}


def bf16_record(text_onnx: bytes, den_onnx: bytes, reference: tuple[Encode, Denoise], spec: LoopSpec, judge,
                cfg: DiffusionGateConfig | None = None) -> dict:
    """The manifest's models.fp32.runtime_precisions.openvino.bf16 record for a diffusion bundle (the same keys
    skugen.tune.bf16_gate reads for every family): native or not, and the final-image gate when native."""
    from skugen.io import jsonable

    from .openvino_quant import measured_on

    enc, den, executed = openvino_pair(text_onnx, den_onnx, "bf16")
    native = any("bf16" in precs for precs in executed["denoiser"].values())
    rec: dict = {"hint": "bf16", "native": native, "executed": executed, "measured_on": measured_on()}
    if not native:
        rec.update(accepted=False, measured=False,
                   reason="this CPU has no native BF16: OpenVINO ran the bf16 hint as f32, so no bf16 quality was "
                          "measured. Re-export on a BF16 CPU (AVX512-BF16 / AMX) to gate it there.")
        return jsonable(rec, finite=False)
    g = gate(reference, (enc, den), spec, judge, cfg)
    rec.update(measured=True, eval=g, accepted=bool(g.get("within_budget")))
    return jsonable(rec, finite=False)
