"""The FP16 quality gate: the fewest FP32 nodes that hold the budget, measured by executing each FP16 graph.

    r = fp16_gated(fp32_onnx, eval_set, budget, classifier=clf, confirm_set=confirm)   # FP16Result
    r.onnx_bytes, r.kept_fp32, r.report["final"]["psnr_vs_fp32_db"]

In the spirit of ModelOpt's AutoCast (nodes kept in FP32 by data, not by op lists), with the INT8 gate's
machinery (skugen.export.quantize: the judge, budgets, the second draw). How the graphs are executed on
this CPU, and why, is METHOD (recorded in every report and in the manifest).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from skugen import evaluate
from skugen.errors import BudgetError
from skugen.io import jsonable

from .fp16 import FLOAT, FP16_MAX, _typed, fp16_plan, fp16_storage_sim, fp16_summary, to_fp16
from .onnx_export import as_bytes, as_proto
from .quantize import (EvalSet, QualityBudget, _classifier_fn, _fmt, _Judge, _run, _session, check_feeds,
                       model_kind)

# What executing an FP16 graph means on this CPU, found by running a probe graph y = (x + 1000) - 1000 in FP16
# (FP16 gives 0 for x = 0.1: 1000.1 rounds to 1000; FP32 gives 0.1):
METHOD = {
    "name": "fp16-storage simulation on ONNX Runtime CPU (skugen.export.fp16.fp16_storage_sim)",
    "what": "the shipped FP16 graph, node for node: FP16 weights, FP32-kept nodes and boundary casts as shipped; "
            "each FP16 node computes in FP32 on its FP16 inputs and every FP16 tensor is rounded to FP16 "
            "(a real float16 tensor between nodes), as TensorRT stores FP16 activations",
    "captures": "FP16 weight rounding, FP16 rounding of every activation between layers, FP16 overflow "
                "(inf) and underflow, the exact FP32 islands and casts",
    "misses": "arithmetic inside a kernel (TensorRT tactics may accumulate a Conv/MatMul in FP16, or compute "
              "Softmax/Tanh with FP16 intermediates: the simulation is optimistic there) and layer fusion "
              "(TensorRT rounds a fused Conv+Add+ReLU once, the simulation after each node: pessimistic there)",
    "why_not_onnxruntime": "ONNX Runtime's CPU provider has no FP16 kernels for these ops on x86; its "
                           "InsertCastTransformer runs each FP16 island in FP32 and drops the casts between its "
                           "nodes (\"InsertedPrecisionFreeCast\"), so activations are never rounded to FP16 (the "
                           "probe gives 0.1). `skugen verify --precision fp16` runs the graph that way.",
    "why_not_openvino": "OpenVINO's CPU plugin on this AVX2 CPU reports OPTIMIZATION_CAPABILITIES without FP16 and "
                        "an inference precision of f32 even with INFERENCE_PRECISION_HINT f16; it folds the FP16 "
                        "graph to FP32 (the probe gives 0.1)",
}
FP16_MIN_PSNR_DB = 45.0         # FP16 output vs FP32 output, [0,255] after mapping the value range
RANGE_HEADROOM = 0.5            # a node whose FP32 output reaches 0.5 x FP16_MAX on the eval inputs stays FP32
FP16_REPORT_VERSION = 1


def run_fp16(model: bytes, feeds: dict) -> np.ndarray:
    """First output of an FP16 graph executed as METHOD says (FP16 storage; FP32 arithmetic inside a node)."""
    return _run(fp16_storage_sim(model), feeds)


@dataclass(frozen=True)
class FP16Result:
    onnx_bytes: bytes | None          # model.fp16.onnx, or None when no FP16 graph holds the budget
    met_budget: bool
    kept_fp32: tuple[str, ...]        # nodes left in FP32 (range-forced ones included)
    report: dict = field(hash=False)

    @property
    def message(self) -> str:
        return self.report["message"]

    def error(self) -> BudgetError | None:
        return None if self.met_budget else BudgetError(self.message)


class FP16Judge(_Judge):
    """The INT8 gate's judge with PSNR vs FP32 for both kinds, checked against budget.min_psnr_db."""

    def __init__(self, *a, **kw):
        super().__init__(*a, run=run_fp16, **kw)
        self.fp32["psnr_vs_fp32_db"] = math.inf

    @property
    def primary(self) -> str:
        return "psnr_vs_fp32_db"

    def metrics(self, out):
        m = super().metrics(out)
        if self.kind == "enhancer":
            m["psnr_vs_fp32_db"] = evaluate.psnr_result(evaluate.to_255(out, (0.0, 1.0)),
                                                        evaluate.to_255(self.ref, (0.0, 1.0))).value
        return m

    def check(self, m):
        r = super().check(m)
        if self.kind == "enhancer":
            v, lim = m["psnr_vs_fp32_db"], self.budget.min_psnr_db
            r["checks"].insert(0, {"name": "psnr_vs_fp32_db", "value": v, "limit": lim, "rule": ">=", "ok": v >= lim})
            r["ok"] = all(c["ok"] for c in r["checks"])
        return r


def _range_forced(fp32: bytes, feeds: dict, capable: dict, n: int) -> dict[str, str]:
    """AutoCast's range rule, measured: nodes whose FP32 outputs come near the FP16 range -> reason."""
    import onnx
    from onnx import numpy_helper

    mp = copy.deepcopy(as_proto(fp32))
    _, dtype = _typed(mp)
    have = {o.name for o in mp.graph.output}
    watch = {o: nd.name for nd in mp.graph.node if nd.name in capable for o in nd.output if dtype.get(o) == FLOAT}
    for o in watch:
        if o not in have:
            mp.graph.output.append(onnx.helper.make_tensor_value_info(o, FLOAT, None))
    r = _session(mp.SerializeToString())
    try:
        names = r.output_names()
        outs = r.infer({k: v[:n] for k, v in feeds.items()})
    finally:
        r.deactivate()
    forced = {}
    for o in names:
        if o in watch:
            peak = float(np.abs(outs[o]).max(initial=0.0))
            if not np.isfinite(peak) or peak >= RANGE_HEADROOM * FP16_MAX:
                forced[watch[o]] = f"FP32 output reaches |x| = {peak:.4g} on the eval inputs (FP16 max {FP16_MAX:g})"
    inits = {t.name: t for t in mp.graph.initializer}
    for nd in mp.graph.node:
        if nd.name in capable and nd.name not in forced:
            for x in nd.input:
                if x in inits and inits[x].data_type == FLOAT:
                    peak = float(np.abs(numpy_helper.to_array(inits[x])).max(initial=0.0))
                    if peak > FP16_MAX:
                        forced[nd.name] = f"weight {x!r} reaches |x| = {peak:.4g} > FP16 max {FP16_MAX:g}"
    return forced


def fp16_gated(fp32_onnx, eval_set, budget=None, classifier=None, confirm_set=None,
               min_psnr_db: float = FP16_MIN_PSNR_DB, range_n: int = 16) -> FP16Result:
    """FP16 with the fewest FP32 nodes that keep quality within budget, measured by executing each FP16 graph.

    The INT8 gate's method (skugen.export.quantize.quantize_gated) and judge, with FP16's budget: PSNR vs the
    FP32 output >= `min_psnr_db` for both kinds, plus the INT8 budget's class-fidelity drop (generators) or
    PSNR-Y drop vs ground-truth HR (enhancers).
    1. Nodes whose FP32 activations (first `range_n` eval samples) or weights come near the FP16 range stay FP32.
    2. Everything else FP16; within budget -> done.
    3. Sensitivity: for each candidate (FP16 nodes except exact data-movement ops, EXACT_OPS), the graph with only
       it in FP32; ranked by the failing check. Greedy: keep the top-ranked in FP32 one more at a time until the
       budget holds (each probe IS the shippable graph: FP16 conversion is deterministic, nothing to re-calibrate).
       More than budget.max_float_fraction of the candidates -> no FP16 graph (met_budget False, message says so).
    4. `confirm_set`: the chosen graph measured once more on a draw that took part in no choice (report["confirm"]).
    """
    t0 = time.perf_counter()
    user_budget = budget or QualityBudget()
    budget = replace(user_budget, min_psnr_db=min_psnr_db)
    fp32 = as_bytes(fp32_onnx)
    proto = as_proto(fp32)
    kind = model_kind(proto)
    ev = eval_set if isinstance(eval_set, EvalSet) else EvalSet(dict(eval_set))
    check_feeds(proto, ev.feeds, what="eval inputs")
    classify = _classifier_fn(classifier) if kind == "generator" else None
    judge = FP16Judge(kind, fp32, ev, budget, classify)
    plan = fp16_plan(fp32)
    forced = _range_forced(fp32, ev.feeds, plan["fp16_capable"], range_n)
    cands = [c for c in plan["candidates"] if c not in forced]
    max_fp32 = int(math.floor(budget.max_float_fraction * len(cands)))
    report: dict[str, Any] = {
        "schema_version": FP16_REPORT_VERSION, "kind": kind, "method": METHOD, "budget": asdict(budget),
        "eval": {"n": int(next(iter(ev.feeds.values())).shape[0]), "source": ev.source, "metric": judge.primary,
                 "classifier": classify is not None,
                 "convention": "PSNR of the FP16 output vs the FP32 output, value range mapped to [0,255], BasicSR "
                               "per-image mean" + ("" if kind == "generator" else
                                                   f"; PSNR-Y vs ground-truth HR, crop {judge.scale}, uint8 output")},
        "fp32": judge.fp32, "plan": plan, "range_forced": forced, "candidates": cands, "sensitivity": [], "steps": []}
    keep0 = sorted(forced)
    m_all = judge.measure(to_fp16(fp32, keep0))
    report["fp16_all_nodes"] = m_all
    chosen, final_m = [], (m_all if m_all["budget"]["ok"] else None)
    if final_m is None:
        probes = []
        for c in cands:
            m = judge.measure(to_fp16(fp32, keep0 + [c]))
            probes.append({"node": c, "op": plan["fp16_capable"][c], "metric_if_fp32": m[judge.primary],
                           "gain": judge.score(m) - judge.score(m_all), **{k: v for k, v in m.items() if k != "budget"}})
        probes.sort(key=judge.rank_key(m_all), reverse=True)
        for r, p in enumerate(probes):
            p["rank"] = r + 1
        report["sensitivity"] = probes
        ranked = [p["node"] for p in probes]
        for k in range(1, max_fp32 + 1):
            m = judge.measure(to_fp16(fp32, keep0 + ranked[:k]))
            report["steps"].append({"kept_fp32": ranked[:k], **m})
            if m["budget"]["ok"]:
                chosen, final_m = ranked[:k], m
                break
    met = final_m is not None
    gains = {p["node"]: p for p in report["sensitivity"]}
    report["kept_fp32"] = (
        [{"node": n, "op": _op(proto, n), "reason": f"range: {why}"} for n, why in sorted(forced.items())]
        + [{"node": n, "op": gains[n]["op"], "rank": gains[n]["rank"], "gain": gains[n]["gain"],
            "reason": f"most sensitive #{gains[n]['rank']}: keeping only it FP32 moves {judge.primary} "
                      f"{_fmt(judge.score(m_all))} -> {_fmt(gains[n]['metric_if_fp32'])}"} for n in chosen])
    kept = tuple(keep0 + chosen)
    b16 = to_fp16(fp32, kept) if met else None
    report["final"] = final_m
    report["budget_check"] = final_m["budget"] if met else {"ok": False, "checks": m_all["budget"]["checks"]}
    if met and confirm_set is not None:
        report["confirm"] = FP16Judge(kind, fp32, confirm_set, budget, classify).confirm_entry(b16)
    report["summary"] = fp16_summary(b16) if met else None
    report["n_evals"] = judge.n_evals
    report["seconds"] = round(time.perf_counter() - t0, 2)
    p = _fmt(final_m["psnr_vs_fp32_db"]) if met else None
    if met and not kept:
        msg, outcome = f"FP16: every node FP16 within budget (PSNR vs FP32 {p}).", "fp16"
    elif met:
        msg = (f"FP16 mixed precision: {len(kept)} node(s) kept FP32 ({', '.join(kept)}); PSNR vs FP32 "
               f"{_fmt(m_all['psnr_vs_fp32_db'])} with all FP16 -> {p}.")
        outcome = "fp16-mixed"
    else:
        msg = (f"FP16 budget not met: all-FP16 gives PSNR vs FP32 {_fmt(m_all['psnr_vs_fp32_db'])}, and keeping up "
               f"to {max_fp32}/{len(cands)} nodes FP32 did not reach the budget {budget.min_psnr_db:g} dB. No FP16 "
               "graph shipped. Relax max_float_fraction or ship FP32 on TensorRT.")
        outcome = "no fp16 (budget not met)"
    if met and report.get("confirm") and not report["confirm"]["within_budget"]:
        msg += (f" On a second held-out draw ({confirm_set.source}) it is OUTSIDE the budget: "
                f"{report['confirm']['budget_check']}. Gate on more samples (--eval-n).")
    report["outcome"], report["message"] = outcome, msg
    return FP16Result(b16, met, kept, jsonable(report))


def _op(mp, name: str) -> str:
    return next((n.op_type for n in mp.graph.node if n.name == name), "?")
