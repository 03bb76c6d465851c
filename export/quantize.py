"""INT8 post-training quantization to explicit Q/DQ ONNX, gated by measured image quality.

Two stages, each a plain function:

    q = quantize_qdq(fp32_onnx, calib)                         # bytes: QuantizeLinear/DequantizeLinear graph
    r = quantize_gated(fp32_onnx, calib, eval_set, budget)     # QuantResult: mixed precision that meets the budget

Calibration runs on the exported FP32 ONNX (NNCF's ONNX backend by default, or ONNX
Runtime's quantize_static), never on the torch module: NNCF's torch path emits
OpenVINO FakeQuantize, while the ONNX path gives plain Q/DQ that ORT and TensorRT
both read (DESIGN.md traps).

Two INT8 flavours come out of ONE calibration, because the two engines disagree:
- ONNX Runtime x86 fuses QDQ into int8 kernels only for uint8 activations (U8S8):
  its QDQ selectors refuse int8 activations off ARM (QDQIsInt8Allowed() is false),
  and the un-fused graph runs SLOWER than FP32 (default cGAN, batch 16, 2 cores:
  int8 activations ~1.8x slower than FP32, uint8 ~1.7-2x faster). So the ORT model keeps NNCF's uint8
  post-ReLU activations (zero point 0), turns its signed int8 activations into uint8 zero point 128
  (exact, `qdq.int8_acts_to_uint8`), and keeps int8 symmetric per-channel weights. On the SR student that
  took the fused Convs from 2 of 19 to 19 of 19 (with the residual scale folded into conv2 at export):
  INT8 5.4 ms vs FP32 13.1 ms per 128x128 tile, where it had been 29 ms.
- TensorRT accepts only int8 Q/DQ with zero point 0 (its parser rejects uint8
  QuantizeLinear, onnx-tensorrt #884). `qdq.to_signed_int8` rewrites every uint8 pair:
  zero point 128 -> int8 zero point 0, same scale (exact); zero point 0 (post-ReLU,
  [0, 255 s]) -> int8 with scale 255/127 s (same range, one bit less).
The quality gate measures the TensorRT flavour (the coarser one), so the budget holds
for both.

Quality-gated mixed precision (our edge): INT8 can ruin generated images
(TensorRT #1187, #4092), so which layers stay float is chosen by measuring image
quality on held-out inputs, not by guesswork; first and last layers are candidates
like any other. See `quantize_gated`.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from skugen import evaluate
from skugen.errors import BudgetError, InputError
from skugen.io import jsonable
from skugen.progress import quiet_stdout

from .data import EvalSet
from .onnx_export import WEIGHTED_OPS, as_bytes, as_proto
from .onnx_export import run_onnx as _run
from .onnx_export import session as _session
from .qdq import int8_acts_to_uint8, keep_float, qdq_summary, to_signed_int8, uint8_to_int8

log = logging.getLogger("skugen.export.quantize")

TOOLS = ("nncf", "ort")
QUANT_REPORT_VERSION = 1  # schema_version of reports/quantization.json (QuantResult.report)
# tool="auto" (quantize_gated_auto): calibrators tried in this order until one meets the budget. NNCF first (bias correction);
# ORT's entropy/percentile ranges clip outliers that NNCF's min-max keeps, which is what the SR student
# needed (all-INT8 PSNR-Y drop 0.133 dB with NNCF, 0.094 with ORT entropy, budget 0.1).
AUTO_CALIBRATORS = (("nncf", "minmax"), ("ort", "entropy"), ("ort", "percentile"))
ORT_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantConfig:
    tool: str = "nncf"              # "nncf" (NNCF ONNX backend) | "ort" (onnxruntime.quantization.quantize_static)
                                    # | "auto" (quantize_gated_auto: AUTO_CALIBRATORS until one meets the budget)
    subset_size: int = 128          # calibration samples used; 64-128 give stable ranges and stay fast on 2 cores
    preset: str = "performance"     # NNCF preset: symmetric weights + activations (TensorRT supports zero point 0 only)
    fast_bias_correction: bool = True  # NNCF: cheap per-layer bias shift that cancels the int8 mean error
    calibrate_method: str = "minmax"   # ort only: minmax | entropy | percentile
    per_channel: bool = True        # per-output-channel weight scales: big accuracy win, free on ORT and TensorRT
    signed_int8: bool = False       # quantize_qdq output: False = ORT x86 flavour (uint8 acts), True = TensorRT's
    ignored: tuple[str, ...] = ()   # node names kept in float (the mixed-precision knob)


@dataclass(frozen=True)
class QualityBudget:
    """How much quality INT8 may cost. A check only applies to the kind it names."""

    min_psnr_db: float = 30.0           # generator: PSNR of the int8 image vs the fp32 image ([-1,1] -> [0,255])
    max_fidelity_drop_pts: float = 1.0  # generator + classifier: class-fidelity drop in percentage points
    max_psnr_drop_db: float = 0.1       # enhancer: PSNR-Y drop vs ground-truth HR (BasicSR, crop 2)
    max_float_fraction: float = 0.5     # more layers than this kept float = INT8 is not worth shipping


@dataclass(frozen=True)
class QuantResult:
    onnx_bytes: bytes                 # INT8 Q/DQ for ONNX Runtime (uint8 acts), or the FP32 model when the budget fails
    precision: str                    # "int8" | "fp32"
    met_budget: bool
    kept_float: tuple[str, ...]       # layers left in float (empty = fully INT8)
    report: dict = field(hash=False)
    trt_onnx_bytes: bytes | None = None  # the same model with int8-only Q/DQ for TensorRT (None when fp32)

    @property
    def message(self) -> str:
        return self.report["message"]

    def error(self) -> BudgetError | None:
        """The BudgetError to raise when the caller wants a hard failure (None when the budget was met)."""
        return None if self.met_budget else BudgetError(self.message)

# ----------------------------------------------------------------------------- helpers: models and feeds


def _input_specs(mp) -> dict[str, tuple[np.dtype, tuple]]:
    import onnx

    out = {}
    inits = {i.name for i in mp.graph.initializer}
    for v in mp.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dims = tuple(d.dim_param or None if not d.dim_value else int(d.dim_value) for d in t.shape.dim)
        out[v.name] = (np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)), dims)
    return out


def model_kind(mp) -> str:
    names = set(_input_specs(as_proto(mp)))
    if names == {"z", "onehot"}:
        return "generator"
    if names == {"lr"}:
        return "enhancer"
    raise InputError(f"ONNX inputs {sorted(names)} are neither a skugen generator (z, onehot) nor an enhancer (lr). "
                     "Export the model with skugen.export.onnx_export.onnx_from_torch first.")


def check_feeds(mp, feeds: dict, what: str = "calibration data") -> int:
    """Validate (N, ...) feeds against the model inputs; returns N. Raises InputError with a hint."""
    specs = _input_specs(as_proto(mp))
    hint = ("Build them with skugen.export.evalsets.generator_calibration(z_dim, n_classes) or "
            "enhancer_calibration() (float32, NCHW, batch axis first).")
    if not isinstance(feeds, dict) or set(feeds) != set(specs):
        got = sorted(feeds) if isinstance(feeds, dict) else type(feeds).__name__
        raise InputError(f"{what} must be a dict with exactly the model inputs {sorted(specs)}; got {got}. {hint}")
    n = None
    for name, (dtype, dims) in specs.items():
        a = feeds[name]
        if not isinstance(a, np.ndarray):
            raise InputError(f"{what}: {name!r} must be a numpy array, got {type(a).__name__}. {hint}")
        if a.dtype != dtype:
            raise InputError(f"{what}: {name!r} has dtype {a.dtype}, the model wants {dtype}. "
                             f"Convert with .astype(np.{dtype.name}). {hint}")
        if a.ndim != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, a.shape)):
            want = ["N" if i == 0 else (d if isinstance(d, int) else d or "?") for i, d in enumerate(dims)]
            raise InputError(f"{what}: {name!r} has shape {tuple(a.shape)}, the model wants {want} "
                             f"(N samples along axis 0). {hint}")
        if n is not None and a.shape[0] != n:
            raise InputError(f"{what}: inputs disagree on the sample count ({n} vs {a.shape[0]} for {name!r}).")
        n = a.shape[0]
        if n == 0:
            raise InputError(f"{what}: {name!r} has no samples. {hint}")
        if not np.isfinite(a).all():
            raise InputError(f"{what}: {name!r} contains NaN or inf. {hint}")
    return int(n)


# ----------------------------------------------------------------------------- stage: quantize_qdq


def quantize_qdq(fp32_onnx, calib: dict, cfg: QuantConfig | None = None) -> bytes:
    """FP32 ONNX + (N, ...) calibration feeds -> explicit Q/DQ INT8 ONNX bytes."""
    import onnx

    cfg = cfg or QuantConfig()
    if cfg.tool not in TOOLS:
        raise InputError(f"quantization tool {cfg.tool!r} unknown; use one of {TOOLS}.")
    mp = as_proto(fp32_onnx)
    n = check_feeds(mp, calib)
    k = min(n, cfg.subset_size)
    # One sample per item: NNCF's statistics assume batch 1 items (it warns otherwise).
    items = [{name: a[i:i + 1] for name, a in calib.items()} for i in range(k)]
    if cfg.tool == "nncf":
        q = _nncf_quantize(mp, items, cfg)
    else:
        q = _ort_quantize(mp, items, cfg)
    if cfg.signed_int8:
        uint8_to_int8(q)
    else:
        int8_acts_to_uint8(q)
    onnx.checker.check_model(q)
    return q.SerializeToString()


def _nncf_quantize(mp, items: list[dict], cfg: QuantConfig):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    nncf.set_log_level(logging.ERROR)
    names = {n.name for n in mp.graph.node}
    bad = [x for x in cfg.ignored if x not in names]
    if bad:
        raise InputError(f"ignored layers {bad} are not nodes of the model; quantizable layers are "
                         f"{[n.name for n in mp.graph.node if n.op_type in WEIGHTED_OPS]}.")
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[cfg.preset]
    adv = AdvancedQuantizationParameters()
    if not cfg.per_channel:
        from nncf.quantization.advanced_parameters import QuantizationParameters

        adv = AdvancedQuantizationParameters(weights_quantization_params=QuantizationParameters(per_channel=False))
    with quiet_stdout():
        return nncf.quantize(
            mp, nncf.Dataset(items), subset_size=len(items), preset=preset,
            fast_bias_correction=cfg.fast_bias_correction, advanced_parameters=adv,
            ignored_scope=nncf.IgnoredScope(names=list(cfg.ignored), validate=False) if cfg.ignored else None)


def _ort_quantize(mp, items: list[dict], cfg: QuantConfig):
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if cfg.calibrate_method not in ORT_METHODS:
        raise InputError(f"calibrate_method {cfg.calibrate_method!r} unknown; use one of {ORT_METHODS}.")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(items)

        def get_next(self):
            return next(self.it, None)

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[cfg.calibrate_method]
    with tempfile.TemporaryDirectory(prefix="skugen-ortq-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(mp, str(src))
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=cfg.per_channel,
            # Symmetric: uint8 activations get zero point 128 (ORT x86's fast U8S8 path, and exactly int8
            # zero point 0 after to_signed_int8 for TensorRT), int8 weights zero point 0.
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
            nodes_to_exclude=list(cfg.ignored),
            # Biases stay float (as NNCF leaves them): TensorRT takes no int32 DequantizeLinear.
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        return onnx.load(str(dst))


# ----------------------------------------------------------------------------- quality


def _classifier_fn(classifier) -> Callable[[np.ndarray], np.ndarray] | None:
    """A classifier given as ONNX (bytes/path/ModelProto), a TorchJudge or a callable -> images (N,1,32,32) [-1,1]
    -> labels (N,)."""
    if classifier is None:
        return None
    if hasattr(classifier, "outputs") and hasattr(classifier, "predict"):  # skugen.export.judge.TorchJudge
        return lambda x: classifier.outputs(x)[1]
    if callable(classifier):
        def fn(x):
            y = np.asarray(classifier(x))
            return y.argmax(1) if y.ndim == 2 else y
        return fn
    model = as_bytes(classifier)

    def fn_onnx(x):
        r = _session(model)
        try:
            name = next(iter(r.input_metadata()))
            return np.concatenate([r.infer({name: x[i:i + 256]})[r.output_names()[0]].argmax(1)
                                   for i in range(0, len(x), 256)])
        finally:
            r.deactivate()
    return fn_onnx


class _Judge:
    """Measures a candidate model on the eval set against the FP32 ONNX and checks the budget.

    `run(candidate, feeds) -> first output` executes a candidate on the engine that will ship it (default:
    ONNX Runtime on ONNX bytes; the OpenVINO gate passes its own), so the gate measures what that engine
    executes. The FP32 reference always comes from the FP32 ONNX on ONNX Runtime.
    """

    def __init__(self, kind: str, fp32: bytes, ev: EvalSet, budget: QualityBudget, classify,
                 run: Callable[[Any, dict], np.ndarray] | None = None):
        self.kind, self.ev, self.budget, self.classify = kind, ev, budget, classify
        self.run = run or _run
        self.ref = _run(fp32, ev.feeds)                                            # (N, C, H, W)
        if kind == "generator":
            self.labels = ev.labels if ev.labels is not None else ev.feeds["onehot"].argmax(1)
            self.ref_img = evaluate.to_255(self.ref, (-1.0, 1.0))                # (N, H, W, 1) [0,255]
            self.fp32 = {"psnr_vs_fp32_db": math.inf}
            if classify is not None:
                self.fp32["class_fidelity_pct"] = self._fidelity(self.ref)
        else:
            if ev.hr is None:
                raise InputError("the enhancer's eval set needs ground-truth HR crops (EvalSet.hr); build it with "
                                 "skugen.export.evalsets.enhancer_eval_set().")
            self.fp32 = {"psnr_y_db": self._psnr_y(self.ref)}
        self.n_evals = 0

    def _fidelity(self, out: np.ndarray) -> float:
        return evaluate.class_fidelity(self.classify(out.astype(np.float32)), self.labels)["value"] * 100.0

    @property
    def scale(self) -> int:
        return self.ev.hr.shape[1] // next(iter(self.ev.feeds.values())).shape[2]

    def _psnr_y(self, out: np.ndarray) -> float:
        sr = evaluate.to_uint8(out, (0.0, 1.0))                                    # (N, s*h, s*w, 3), as saved
        y, crop = evaluate.pair_convention("enhancer", self.scale, sr.shape[-1])  # BasicSR: Y, crop = scale
        return evaluate.psnr_result(sr, self.ev.hr, y_channel=y, crop_border=crop).value

    @property
    def primary(self) -> str:
        return "psnr_vs_fp32_db" if self.kind == "generator" else "psnr_y_db"

    def measure(self, model) -> dict:
        self.n_evals += 1
        m = self.metrics(self.run(model, self.ev.feeds))
        m["budget"] = self.check(m)
        return m

    def metrics(self, out: np.ndarray) -> dict:
        if self.kind == "generator":
            m = {"psnr_vs_fp32_db": evaluate.psnr_result(evaluate.to_255(out, (-1.0, 1.0)), self.ref_img).value}
            if self.classify is not None:
                m["class_fidelity_pct"] = self._fidelity(out)
                m["fidelity_drop_pts"] = self.fp32["class_fidelity_pct"] - m["class_fidelity_pct"]
        else:
            m = {"psnr_y_db": self._psnr_y(out)}
            m["psnr_y_drop_db"] = self.fp32["psnr_y_db"] - m["psnr_y_db"]
        return m

    def confirm_entry(self, model: bytes) -> dict:
        """The measurement of `model` on this judge's eval set, as the report's "confirm" entry."""
        m = self.measure(model)
        return {"source": self.ev.source, "n": int(next(iter(self.ev.feeds.values())).shape[0]), "fp32": self.fp32,
                **_jsonable_metrics(m), "within_budget": bool(m["budget"]["ok"]), "budget_check": m["budget"]}

    def check(self, m: dict) -> dict:
        b = self.budget
        if self.kind == "generator":
            checks = [{"name": "psnr_vs_fp32_db", "value": m["psnr_vs_fp32_db"], "limit": b.min_psnr_db,
                       "rule": ">=", "ok": m["psnr_vs_fp32_db"] >= b.min_psnr_db}]
            if "fidelity_drop_pts" in m:
                checks.append({"name": "fidelity_drop_pts", "value": m["fidelity_drop_pts"],
                               "limit": b.max_fidelity_drop_pts, "rule": "<=",
                               "ok": m["fidelity_drop_pts"] <= b.max_fidelity_drop_pts})
        else:
            checks = [{"name": "psnr_y_drop_db", "value": m["psnr_y_drop_db"], "limit": b.max_psnr_drop_db,
                       "rule": "<=", "ok": m["psnr_y_drop_db"] <= b.max_psnr_drop_db}]
        return {"ok": all(c["ok"] for c in checks), "checks": checks}

    def score(self, m: dict) -> float:
        """Higher is better: the primary PSNR."""
        return m[self.primary]

    def rank_key(self, m_all: dict):
        """Sort key for probes: by the check that fails. Fidelity moves in coarse steps, so PSNR breaks ties."""
        failing = {c["name"] for c in m_all["budget"]["checks"] if not c["ok"]}
        if failing == {"fidelity_drop_pts"}:
            return lambda p: (p["class_fidelity_pct"], p[self.primary])
        return lambda p: p[self.primary]


# ----------------------------------------------------------------------------- stage: quantize_gated


def quantize_gated_auto(fp32_onnx, calib: dict, eval_set: EvalSet | dict, budget: QualityBudget | None = None,
                        cfg: QuantConfig | None = None, classifier=None,
                        confirm_set: EvalSet | None = None) -> QuantResult:
    """`quantize_gated` with the calibrator chosen by measurement when cfg.tool == "auto".

    Tries AUTO_CALIBRATORS in order and keeps the FIRST that meets the budget (NNCF whenever it
    can); the next one is only tried when the previous missed. Not "fewest float layers": on the
    demo cGAN student ORT entropy made every layer INT8 within budget where NNCF kept one float,
    but ran 0.70x the FP32 speed on ORT CPU and cost 0.8 more fidelity points than NNCF's mix.
    Every attempt is listed in report["calibrators_tried"]; the one used in report["calibrator"].

    `confirm_set`: a second held-out draw. Choosing the first calibrator (and the float layers) that meets
    the budget on one eval set favours models that got lucky on it, so the chosen model is measured once
    more on samples that took no part in any choice; report["confirm"] holds that unbiased estimate.
    """
    cfg = cfg or QuantConfig()
    if cfg.tool != "auto":
        r = quantize_gated(fp32_onnx, calib, eval_set, budget, cfg, classifier)
        r.report["calibrator"] = {"tool": cfg.tool, "calibrate_method": cfg.calibrate_method if cfg.tool == "ort" else None}
        return _confirm(r, fp32_onnx, confirm_set, budget, classifier)
    tried, r = [], None
    for tool, method in AUTO_CALIBRATORS:
        r = quantize_gated(fp32_onnx, calib, eval_set, budget, replace(cfg, tool=tool, calibrate_method=method),
                           classifier)
        r.report["calibrator"] = {"tool": tool, "calibrate_method": method if tool == "ort" else None}
        tried.append({**r.report["calibrator"], "met_budget": r.met_budget, "kept_float": list(r.kept_float),
                      "outcome": r.report["outcome"], "all_int8": _jsonable_metrics(r.report.get("int8_all_layers"))})
        if r.met_budget:
            break
    r.report["calibrators_tried"] = tried
    return _confirm(r, fp32_onnx, confirm_set, budget, classifier)


def _confirm(r: QuantResult, fp32_onnx, confirm_set: EvalSet | None, budget: QualityBudget | None,
             classifier) -> QuantResult:
    if confirm_set is None or r.trt_onnx_bytes is None:
        return r
    # both files that ship, each on the draw that took no part in any choice
    r.report["confirm"] = c = confirm_record(fp32_onnx, r.trt_onnx_bytes, confirm_set, budget, classifier)
    r.report["confirm_onnxruntime_flavour"] = c_ort = confirm_record(fp32_onnx, r.onnx_bytes, confirm_set, budget,
                                                                     classifier)
    for name, rec in (("TensorRT", c), ("ONNX Runtime", c_ort)):
        if not rec["within_budget"]:
            r.report["message"] += f" ({name} flavour)" + confirm_miss_message(confirm_set, rec)
    return r


def confirm_record(fp32_onnx, candidate, confirm_set: EvalSet, budget: QualityBudget | None, classifier,
                   run: Callable[[Any, dict], np.ndarray] | None = None) -> dict:
    """The chosen candidate measured once more on `confirm_set`, a draw that took no part in any choice.

    Choosing the fewest float layers that meet the budget on one eval set favours models that got lucky
    on it; this is the unbiased estimate. `run` executes the candidate (default ONNX Runtime on ONNX bytes).
    """
    fp32 = as_bytes(fp32_onnx)
    kind = model_kind(as_proto(fp32))
    judge = _Judge(kind, fp32, confirm_set, budget or QualityBudget(),
                   _classifier_fn(classifier) if kind == "generator" else None, run=run)
    m = judge.measure(candidate)
    return {"source": confirm_set.source, "n": int(next(iter(confirm_set.feeds.values())).shape[0]),
            "fp32": judge.fp32, **_jsonable_metrics(m), "within_budget": bool(m["budget"]["ok"]),
            "budget_check": jsonable(m["budget"])}


def confirm_miss_message(confirm_set: EvalSet, c: dict) -> str:
    return (f" On a second held-out draw ({confirm_set.source}) the same model is OUTSIDE the budget: "
            f"{_checks({'budget': c['budget_check']})}. Tighten the budget (--budget-db / --budget-fidelity-pts) or "
            "gate on more samples (--eval-n).")


@dataclass(frozen=True)
class GateSearch:
    """What `search_float_layers` found. `model`/`measured` are None when no mix within the limit held."""

    layers: tuple[str, ...]           # quantizable layers, topological order
    chosen: tuple[str, ...]           # kept float (empty = all int8)
    model: Any
    measured: dict | None
    all_int8: dict                    # the all-int8 candidate's measurement
    sensitivity: list = field(hash=False)
    steps: list = field(hash=False)
    max_float: int = 0


def search_float_layers(judge: _Judge, make: Callable[[tuple[str, ...]], Any],
                        layers_of: Callable[[Any], Sequence[str]], max_float_fraction: float,
                        probe: Callable[[Any, tuple[str, ...]], Any] | None = None,
                        op_of: Callable[[str], str] = lambda name: "?", how: str = "re-quantized",
                        also: Callable[[tuple[str, ...]], dict] | None = None) -> GateSearch:
    """The engine-free core of the gate: the fewest float layers that keep `judge`'s budget.

    make(float_layers) -> a real candidate, quantized with those layers left out (re-calibrated);
    layers_of(all_int8_candidate) -> its quantizable layers; judge.run executes a candidate on its engine;
    probe(all_int8_candidate, float_layers) -> a cheap stand-in for make (a graph edit without
    re-calibration), confirmed by make before it is accepted; None: every probe is a real make.

    1. all int8; within budget -> done.
    2. Sensitivity: per layer, the candidate with ONLY that layer float ("only this layer float" measures
       exactly the gain the greedy step buys, and reuses the calibrated graph).
    3. Greedy: the top-ranked layers float, one more at a time, until the budget holds (confirmed by a
       real make when probes are graph edits), at most floor(max_float_fraction * layers).

    also(float_layers) -> a measurement (with "budget") of another file made by the same real make (the ONNX
    Runtime flavour beside the TensorRT one): a real candidate is accepted only when it ALSO holds the budget,
    because each engine ships its own file. Probes are ranked on `judge` alone (the cost stays one flavour).
    """
    steps: list[dict] = []

    def holds(names: tuple[str, ...], m: dict) -> bool:  # a REAL candidate: its other flavour must hold too
        if not m["budget"]["ok"] or also is None:
            return m["budget"]["ok"]
        m2 = also(names)
        steps.append({"kept_float": list(names), "how": "other flavour of the same make", **m2})
        return m2["budget"]["ok"]

    q_all = make(())
    m_all = judge.measure(q_all)
    layers = tuple(layers_of(q_all))
    max_float = int(math.floor(max_float_fraction * len(layers)))
    probe_fn = probe or (lambda _q, names: make(names))
    sensitivity: list[dict] = []
    if holds((), m_all):
        return GateSearch(layers, (), q_all, m_all, m_all, sensitivity, steps, max_float)
    if max_float == 0:  # nothing may be kept float: ranking the layers cannot change the outcome
        return GateSearch(layers, (), None, None, m_all, sensitivity, steps, max_float)
    for name in layers:
        m = judge.measure(probe_fn(q_all, (name,)))
        sensitivity.append({"layer": name, "op": op_of(name), "metric_if_float": m[judge.primary],
                            "gain": judge.score(m) - judge.score(m_all), **{k: v for k, v in m.items() if k != "budget"}})
    sensitivity.sort(key=judge.rank_key(m_all), reverse=True)
    for r, p in enumerate(sensitivity):
        p["rank"] = r + 1
    ranked = [p["layer"] for p in sensitivity]
    for k in range(1, max_float + 1):
        names = tuple(ranked[:k])
        q = probe_fn(q_all, names)
        m = judge.measure(q)
        steps.append({"kept_float": list(names), "how": "graph-edit probe" if probe else how, **m})
        if not m["budget"]["ok"]:
            continue
        if probe is not None:
            q = make(names)
            m = judge.measure(q)
            steps.append({"kept_float": list(names), "how": how, **m})
        if holds(names, m):
            return GateSearch(layers, names, q, m, m_all, sensitivity, steps, max_float)
    return GateSearch(layers, (), None, None, m_all, sensitivity, steps, max_float)


def gate_report_rows(search: GateSearch, judge: _Judge) -> list[dict]:
    """report["kept_float"]: why each float layer is float."""
    gains = {p["layer"]: p for p in search.sensitivity}
    return [{"layer": n, "rank": gains[n]["rank"], "gain": gains[n]["gain"],
             "reason": f"most sensitive #{gains[n]['rank']}: keeping only it float moves {judge.primary} "
                       f"{_fmt(judge.score(search.all_int8))} -> {_fmt(gains[n]['metric_if_float'])}"}
            for n in search.chosen]


def _jsonable_metrics(m: dict | None) -> dict | None:
    """The scalar entries of a measurement (not its budget checks), JSON-clean (inf kept as it was)."""
    return None if m is None else {k: v for k, v in jsonable(m, finite=False).items() if not isinstance(v, (dict, list))}


def quantize_gated(fp32_onnx, calib: dict, eval_set: EvalSet | dict, budget: QualityBudget | None = None,
                   cfg: QuantConfig | None = None, classifier=None) -> QuantResult:
    """INT8 with the fewest float layers that keeps quality within `budget` (measured, not guessed).

    1. Quantize every Conv/Gemm/MatMul; measure on `eval_set` against the FP32 ONNX. Within budget -> done.
    2. Sensitivity: for each int8 layer, the same INT8 graph with ONLY that layer switched
       back to float (a graph edit of the one calibrated model: no re-calibration, so N
       probes cost N evaluations). We pick "only this layer float" over "only this layer
       int8" because it measures exactly the gain the greedy step below buys, and it
       reuses the calibrated graph; the other scheme needs each layer's scales
       transplanted into the float graph and measures a noise level that is masked once
       the other layers are quantized.
    3. Greedy: keep the top-ranked layers float, one more at a time (graph edits), until the
       budget holds; then re-quantize for real with NNCF IgnoredScope (bias correction and
       ranges re-computed without those layers) and confirm by measurement, adding the next
       layer if needed.
    4. If that needs more than `budget.max_float_fraction` of the layers float, INT8 is not
       worth shipping: the FP32 model is returned with met_budget=False and a message
       saying so (`result.error()` gives the BudgetError; the caller decides).
    """
    t0 = time.perf_counter()
    budget = budget or QualityBudget()
    cfg = cfg or QuantConfig()
    fp32 = as_bytes(fp32_onnx)
    fp_proto = as_proto(fp32)
    kind = model_kind(fp_proto)
    n_cal = check_feeds(fp_proto, calib)
    ev = eval_set if isinstance(eval_set, EvalSet) else EvalSet(dict(eval_set))
    check_feeds(fp_proto, ev.feeds, what="eval inputs")
    classify = _classifier_fn(classifier) if kind == "generator" else None
    judge = _Judge(kind, fp32, ev, budget, classify)

    # The gate measures the TensorRT flavour (coarser post-ReLU steps); the ORT flavour of each real candidate
    # is kept beside it (for the record, and for ORT's file).
    ort_of: dict[tuple[str, ...], bytes] = {}

    def make(ignored: tuple[str, ...]) -> bytes:
        ort_of[ignored] = quantize_qdq(fp32, calib, replace(cfg, ignored=ignored, signed_int8=False))
        return to_signed_int8(ort_of[ignored])

    ort_m: dict[tuple[str, ...], dict] = {}

    def ort_flavour(names: tuple[str, ...]) -> dict:  # what ONNX Runtime CPU ships: its own uint8-activation file
        ort_m[names] = judge.measure(ort_of[names])
        return ort_m[names]

    search = search_float_layers(judge, make, lambda q: qdq_summary(q)["int8_layers"], budget.max_float_fraction,
                                 probe=lambda q, names: keep_float(q, fp32, list(names)),
                                 op_of=lambda name: _op(fp_proto, name), how=f"re-quantized ({cfg.tool} ignored scope)",
                                 also=ort_flavour)
    layers, m_all, max_float = list(search.layers), search.all_int8, search.max_float
    weighted = [n.name for n in fp_proto.graph.node if n.op_type in WEIGHTED_OPS]
    report: dict[str, Any] = {
        "schema_version": QUANT_REPORT_VERSION, "kind": kind, "tool": cfg.tool, "config": asdict(cfg), "budget": asdict(budget),
        "calibration": {"n": n_cal, "used": min(n_cal, cfg.subset_size),
                        "shapes": {k: list(v.shape) for k, v in calib.items()}},
        "eval": {"n": int(next(iter(ev.feeds.values())).shape[0]), "source": ev.source,
                 "metric": judge.primary, "classifier": classify is not None,
                 "convention": ("PSNR of int8 vs fp32 image, [-1,1] mapped to [0,255], BasicSR per-image mean"
                                if kind == "generator" else
                                f"PSNR-Y vs ground-truth HR, BasicSR, crop {judge.scale}, uint8 output")},
        "fp32": judge.fp32, "int8_all_layers": m_all, "quantizable_layers": layers,
        "first_layer": weighted[0] if weighted else None, "last_layer": weighted[-1] if weighted else None,
        "sensitivity": search.sensitivity, "steps": search.steps,
    }
    chosen = list(search.chosen)
    if search.model is not None:
        final_bytes, final_ort, final_m = search.model, ort_of[search.chosen], search.measured
    else:
        final_bytes, final_ort, final_m = fp32, fp32, None
    met = final_m is not None and final_m["budget"]["ok"]
    report["kept_float"] = gate_report_rows(search, judge)
    report["first_last_kept_float"] = {"first": report["first_layer"] in chosen, "last": report["last_layer"] in chosen}
    report["final"] = final_m
    if final_m is not None:  # the ORT flavour of the shipped model: the gate required it within budget too
        report["final_onnxruntime_flavour"] = ort_m.get(search.chosen) or judge.measure(final_ort)
    report["flavours"] = {"onnxruntime": "uint8 activations (zero point 0 or 128), int8 weights: ORT x86 U8S8 kernels",
                          "tensorrt": "int8 activations and weights, zero point 0 (layers ranked on this one)",
                          "rule": "a mix ships only when BOTH flavours hold the budget (each engine runs its own file)"}
    report["budget_check"] = final_m["budget"] if final_m else {"ok": False, "checks": m_all["budget"]["checks"]}
    report["qdq"] = qdq_summary(final_ort)
    report["n_evals"] = judge.n_evals
    report["seconds"] = round(time.perf_counter() - t0, 2)
    # Every compute op the shipped graph still runs in float: kept by the gate, or left alone by the quantizer
    # (e.g. ConvTranspose; WEIGHTED_OPS, which the gate ranks, does not list it).
    report["float_layers"] = float_layers(final_ort, chosen, cfg.tool) if met else []
    left = [f"{f['layer']} ({f['op']}: {f['reason']})" for f in report["float_layers"]
            if f["reason"] != "kept float by the gate"]
    convt = any(f["op"] == "ConvTranspose" for f in report["float_layers"] if f["reason"] != "kept float by the gate")
    left_note = (f" Still float: {'; '.join(left)}. Float layers can make INT8 slower than FP32"
                 + ("; upsample with nearest + Conv or PixelShuffle instead of ConvTranspose." if convt else ".")
                 if left else "")
    if met and not chosen and not left:
        msg = f"INT8: all {len(layers)} layers int8 within budget ({_checks(final_m)})."
        outcome = "int8"
    elif met and not chosen:
        msg = f"INT8: {len(layers)} layers int8 within budget ({_checks(final_m)}).{left_note}"
        outcome = "int8"  # the gate kept nothing float; float_layers names what still runs in float
    elif met:
        ends = [f"{w} layer {report[f'{w}_layer']}" for w in ("first", "last") if report["first_last_kept_float"][w]]
        msg = (f"INT8 mixed precision: {len(chosen)}/{len(layers)} layers kept float ({', '.join(chosen)})"
               f"{' incl. the ' + ' and the '.join(ends) if ends else ''}; "
               f"{_checks(m_all)} with all int8 -> {_checks(final_m)}.{left_note}")
        outcome = "int8-mixed"
    else:
        msg = (f"budget not met: all-int8 gives {_checks(m_all)}, and keeping up to {max_float}/{len(layers)} layers "
               f"float (max_float_fraction {budget.max_float_fraction}) did not fix it. Shipping FP32 only. Relax the "
               "budget (--budget-db / --min-psnr-db / --budget-fidelity-pts) or skip --int8.")
        outcome = "fp32 (budget not met)"
    report["outcome"], report["message"] = outcome, msg
    # JSON has no inf: identical images (PSNR inf) are written as None
    return QuantResult(final_ort, "int8" if met else "fp32", met, tuple(chosen), jsonable(report),
                       trt_onnx_bytes=final_bytes if met else None)


COMPUTE_OPS = (*WEIGHTED_OPS, "ConvTranspose")  # every op that does the heavy arithmetic
# Ops ONNX Runtime's CPU EP does not fuse into an int8 kernel even with Q/DQ around them: they run as
# DequantizeLinear -> float op -> QuantizeLinear (docs/custom_models.md; measured slower than FP32).
ORT_CPU_UNFUSED = ("ConvTranspose",)


def float_layers(model, kept: list[str] | tuple[str, ...], tool: str) -> list[dict]:
    """Every compute op of a Q/DQ graph that runs in float on ONNX Runtime CPU, each with why."""
    mp = as_proto(model)
    prod = {o: n for n in mp.graph.node for o in n.output}
    out = []
    for n in (n for n in mp.graph.node if n.op_type in COMPUTE_OPS):
        qdq = any(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in n.input)
        if n.name in kept:
            why = "kept float by the gate"
        elif not qdq:
            why = f"not quantized by {tool}"
        elif n.op_type in ORT_CPU_UNFUSED:
            why = "has Q/DQ, but ONNX Runtime CPU has no fused int8 kernel for it: it runs in float"
        else:
            continue
        out.append({"layer": n.name, "op": n.op_type, "reason": why})
    return out


def _op(mp, name: str) -> str:
    return next((n.op_type for n in mp.graph.node if n.name == name), "?")


def _fmt(v: float) -> str:
    return "inf dB" if not math.isfinite(v) else f"{v:.2f} dB"


def _checks(m: dict) -> str:
    return ", ".join(f"{c['name']} {c['value']:.3g} (need {c['rule']} {c['limit']:g})" for c in m["budget"]["checks"])
