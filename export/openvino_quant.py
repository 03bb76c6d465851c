"""OpenVINO INT8 quantized by NNCF on the OpenVINO model, and the BF16 record, through the quality gate.

    r = quantize_openvino_gated(fp32_onnx, calib, eval_set, budget, confirm_set=confirm)   # OVQuantResult (IR)
    b = bf16_record(fp32_onnx, eval_set, budget, confirm_set=confirm)                     # dict for the manifest

Why a second INT8 and not the ORT Q/DQ: OpenVINO reads the ORT-flavoured Q/DQ ONNX, but runs it about half
as fast as a model NNCF quantized on the OpenVINO graph (SR student 15.9 vs 7.9 ms, issue #16). The quantizer
and the runtime must match, so NNCF's OpenVINO backend quantizes `ov.convert_model(fp32_onnx)` directly.

The gate is `quantize.search_float_layers` with this module's two engine parts: `make(float_layers)` (an NNCF
quantization with those layers in the IgnoredScope), `probe` (`keep_float_ov`, a graph edit of the all-int8
model for the sensitivity ranking) and `run(model, feeds)` (OpenVINO's CPU plugin, with the precision hint
the runtime must use). Every candidate is executed by OpenVINO, and the shipped one is a real NNCF
quantization, serialized, read back and measured again, so what is measured is what OpenVINO executes.
Layers are named by their ONNX node names in reports and the manifest (the same names the ORT gate uses);
`layer_names` maps them to OpenVINO op names, which NNCF's IgnoredScope needs.

What OpenVINO executes is read back from the compiled model (`executed_precisions`): on a CPU without native
BF16 (e.g. AVX2-only), a bf16 hint silently runs f32; that is recorded as `native: False` and no bf16
quality is claimed. INT8 on a CPU without VNNI runs through AVX2's u8s8 multiply-add, which saturates; NNCF's
overflow fix (7-bit weights in the first layer by default) is on, and the gate measures the result on the CPU
it runs on, recorded in `measured_on`.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skugen.errors import InputError, ModelError, need_extra
from skugen.io import jsonable
from skugen.progress import quiet_stdout

from .onnx_export import WEIGHTED_OPS
from .onnx_export import as_bytes, as_proto
from .quantize import (QUANT_REPORT_VERSION, EvalSet, QualityBudget, _classifier_fn, _Judge, _jsonable_metrics,
                       check_feeds, confirm_miss_message, confirm_record, gate_report_rows, model_kind,
                       search_float_layers)

log = logging.getLogger("skugen.export.openvino_quant")

OV_INT8_FILE, OV_INT8_WEIGHTS = "model.int8.openvino.xml", "model.int8.openvino.bin"
# OpenVINO op types of the ONNX WEIGHTED_OPS (Conv, Gemm, MatMul); ConvTranspose would be *BackpropData
OV_WEIGHTED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
# compiled-model layer types whose runtimePrecision says how a weighted layer really ran
RUNTIME_WEIGHTED = ("Convolution", "FullyConnected", "MatMul", "Deconvolution", "GroupConvolution")
_PASS_THROUGH = ("Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze")


@dataclass(frozen=True)
class OVQuantConfig:
    subset_size: int = 128            # calibration samples (the same real inputs the ORT path uses)
    preset: str = "performance"       # symmetric activations and weights; "mixed": asymmetric activations
    fast_bias_correction: bool = True  # NNCF's cheap per-layer bias shift (cancels the int8 mean error)
    overflow_fix: str = "first_layer_only"  # 7-bit weights where AVX2/AVX-512 without VNNI would saturate
                                            # (u8s8 vpmaddubsw); measured on the SR student at the 128 px tile,
                                            # AVX2: 0.137 dB drop with it, 0.365 dB with "disable"
    inference_precision: str = "f32"  # OpenVINO INFERENCE_PRECISION_HINT for the int8 model's float parts. The
                                      # gate measures with it, and the runtime must compile with it: the CPU
                                      # plugin's default is bf16 on AMX/AVX512-BF16 CPUs, which the gate did not see
    threads: int = 2                  # INFERENCE_NUM_THREADS while gating (a shared 2-core box)
    generator_batch: int = 16         # rows per infer call; the enhancer runs one tile per call, as deployed


@dataclass(frozen=True)
class OVQuantResult:
    xml: bytes | None                 # the IR (None when the budget was not met)
    bin: bytes | None
    met_budget: bool
    kept_float: tuple[str, ...]       # ONNX node names left float
    report: dict = field(hash=False)

    @property
    def message(self) -> str:
        return self.report["message"]


def _ov():
    try:
        import openvino as ov
    except ImportError as e:
        raise need_extra("OpenVINO (the OpenVINO INT8 / BF16 export)", "openvino", e) from e
    return ov


def ov_model(fp32_onnx):
    """The OpenVINO model of an ONNX model (bytes / path / ModelProto), converted in memory."""
    ov = _ov()
    with tempfile.TemporaryDirectory(prefix="skugen-ov-") as tmp:
        p = Path(tmp) / "model.onnx"
        p.write_bytes(as_bytes(fp32_onnx))
        return ov.convert_model(str(p))


def layer_names(fp32_onnx) -> dict[str, str]:
    """ONNX node name -> OpenVINO op name of each weighted layer, in ONNX order.

    OpenVINO's ONNX frontend keeps the node name, and splits a biased Conv/Gemm into `<name>/WithoutBiases`
    + an Add named `<name>`; the weighted op is the one NNCF quantizes and IgnoredScope must name.
    """
    onnx_names = [n.name for n in as_proto(fp32_onnx).graph.node if n.op_type in WEIGHTED_OPS]
    ops = [op.get_friendly_name() for op in ov_model(fp32_onnx).get_ordered_ops() if op.get_type_name() in OV_WEIGHTED]
    out: dict[str, str] = {}
    for name in onnx_names:
        hits = [o for o in ops if o == name or o.startswith(name + "/")]
        if len(hits) != 1:
            raise ModelError(f"ONNX layer {name!r} maps to OpenVINO ops {hits}, not exactly one; the OpenVINO INT8 "
                             "gate cannot name it. Give every Conv/Gemm/MatMul node a unique name in the ONNX export, "
                             "or export without the OpenVINO variant (BundleConfig(openvino=False)).")
        out[name] = hits[0]
    return out


def _quantized(op) -> bool:
    """A weighted op NNCF quantized: a FakeQuantize or an int8 constant feeds it (through converts/scales)."""
    todo, seen = [(i.get_source_output().get_node(), 0) for i in op.inputs()], set()
    while todo:
        node, depth = todo.pop()
        if id(node) in seen or depth > 5:
            continue
        seen.add(id(node))
        t = node.get_type_name()
        if t == "FakeQuantize":
            return True
        if t == "Constant" and node.get_output_element_type(0).get_type_name() in ("i8", "u8", "i4", "u4"):
            return True
        if t in _PASS_THROUGH:
            todo += [(i.get_source_output().get_node(), depth + 1) for i in node.inputs()]
    return False


def int8_layers(model, names: dict[str, str]) -> list[str]:
    """ONNX names of the weighted layers NNCF quantized in `model`, in ONNX order."""
    q = {op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in OV_WEIGHTED and _quantized(op)}
    return [onnx for onnx, ov_name in names.items() if ov_name in q]


def nncf_int8(fp32_onnx, calib: dict, float_layers: tuple[str, ...] = (), cfg: OVQuantConfig | None = None,
              names: dict[str, str] | None = None, float_ops: tuple[str, ...] = ()):
    """NNCF post-training INT8 on the OpenVINO model; `float_layers` (ONNX names of weighted layers) stay float,
    and so do `float_ops` (OpenVINO op names of other ops, e.g. a diffusion denoiser's timestep phase; each must be
    an op of the model: ops_named() finds them). -> ov.Model."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    cfg = cfg or OVQuantConfig()
    names = names or layer_names(fp32_onnx)
    bad = [x for x in float_layers if x not in names]
    if bad:
        raise InputError(f"float layers {bad} are not weighted layers of the model; they are {list(names)}.")
    n = check_feeds(as_proto(fp32_onnx), calib)
    k = min(n, cfg.subset_size)
    items = [{name: a[i:i + 1] for name, a in calib.items()} for i in range(k)]  # NNCF assumes batch-1 items
    nncf.set_log_level(logging.ERROR)
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[cfg.preset]
    with quiet_stdout():
        return nncf.quantize(
            ov_model(fp32_onnx), nncf.Dataset(items), subset_size=k, preset=preset,
            target_device=nncf.TargetDevice.CPU, fast_bias_correction=cfg.fast_bias_correction,
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(cfg.overflow_fix)),
            # validate=True (the default): NNCF raises if a name is not an op of the OpenVINO model
            ignored_scope=(nncf.IgnoredScope(names=[names[x] for x in float_layers] + list(float_ops))
                           if float_layers or float_ops else None))


def ops_named(fp32_onnx, onnx_names) -> list[str]:
    """The OpenVINO op names (the ONNX frontend keeps node names) of those ONNX nodes that survive conversion."""
    have = {op.get_friendly_name() for op in ov_model(fp32_onnx).get_ordered_ops()}
    return [n for n in onnx_names if n in have]


def _constant_subgraph(node, depth: int = 0) -> bool:
    if node.get_type_name() == "Constant":
        return True
    if node.get_type_name() == "Parameter" or node.get_input_size() == 0 or depth > 6:
        return False
    return all(_constant_subgraph(i.get_source_output().get_node(), depth + 1) for i in node.inputs())


def _bypass_activation_fq(op, i: int) -> None:
    """Un-quantize input i of `op`: a FakeQuantize right in front is bypassed for this op only; one behind
    reshapes/transposes (attention MatMuls) is bypassed when nothing else reads it. A FakeQuantize shared
    with other layers behind a reshape stays (the probe is then approximate; the real re-quantization that
    confirms every accepted mix is not)."""
    s_out = op.input_value(i)
    while s_out.get_node().get_type_name() == "FakeQuantize":
        s_out = s_out.get_node().input_value(0)
    op.input(i).replace_source_output(s_out)
    node = s_out.get_node()
    while node.get_type_name() in _PASS_THROUGH and len(node.output(0).get_target_inputs()) == 1:
        src = node.input_value(0)
        fq = src.get_node()
        if fq.get_type_name() == "FakeQuantize":
            if len(fq.output(0).get_target_inputs()) == 1:
                fq.output(0).replace(fq.input_value(0))
            return
        node = fq


def keep_float_ov(q_model, fp32_onnx, layers, names: dict[str, str]):
    """A copy of the NNCF model with `layers` (ONNX names) switched back to float, without re-calibrating.

    The sensitivity probes of the OpenVINO gate (an NNCF run costs ~10 s on 2 cores; a probe is a graph edit).
    Each layer gets its FP32 inputs back: FakeQuantize on activations bypassed, the FP32 weight constant, and
    the FP32 bias of the Add after it (fast bias correction shifted the int8 model's). The chosen mix is then
    re-quantized for real with IgnoredScope and measured again before it is accepted.
    """
    import openvino.opset13 as ops

    m = q_model.clone()
    fp = ov_model(fp32_onnx)  # fresh per probe: where an FP32 input is a subgraph, its nodes are wired in
    by_name = {op.get_friendly_name(): op for op in m.get_ordered_ops()}
    fp_by = {op.get_friendly_name(): op for op in fp.get_ordered_ops()}

    def fp_source(out):
        node = out.get_node()
        if node.get_type_name() == "Constant":
            return ops.constant(node.get_data().copy()).output(0)
        return out

    for layer in layers:
        op, ref = by_name[names[layer]], fp_by[names[layer]]
        for i in range(op.get_input_size()):
            src = ref.input_value(i)
            if _constant_subgraph(src.get_node()):  # weights (maybe through Convert/Transpose in the FP32 graph)
                op.input(i).replace_source_output(fp_source(src))
            else:
                _bypass_activation_fq(op, i)
        for target in op.output(0).get_target_inputs():
            add = target.get_node()
            ref_add = fp_by.get(add.get_friendly_name())
            if add.get_type_name() != "Add" or ref_add is None:
                continue
            for j in range(add.get_input_size()):
                if ref_add.input_value(j).get_node().get_type_name() == "Constant":
                    add.input(j).replace_source_output(fp_source(ref_add.input_value(j)))
    m.validate_nodes_and_infer_types()
    return m


def ir_bytes(model) -> tuple[bytes, bytes]:
    """The IR files (xml, bin) of an ov.Model, weights kept as they are (no fp16 compression)."""
    ov = _ov()
    with tempfile.TemporaryDirectory(prefix="skugen-ov-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        return xml.read_bytes(), xml.with_suffix(".bin").read_bytes()


def read_ir(xml: bytes, bin_: bytes):
    """An ov.Model from IR bytes: what a bundle ships, read back the way the runtime reads it."""
    ov = _ov()
    return ov.Core().read_model(model=xml.decode(), weights=ov.Tensor(np.frombuffer(bin_, np.uint8).copy()))


def compile_cpu(model, hint: str, threads: int = 2):
    ov = _ov()
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                  "INFERENCE_NUM_THREADS": int(threads)})


def executed_precisions(compiled) -> dict[str, dict[str, int]]:
    """How the compiled model really runs: weighted-layer type -> {runtime precision: count}."""
    out: dict[str, dict[str, int]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        t = info["layerType"].astype(str) if "layerType" in info else ""
        if t in RUNTIME_WEIGHTED:
            p = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
            out.setdefault(t, {})
            out[t][p] = out[t].get(p, 0) + 1
    return out


def ov_runner(hint: str, cfg: OVQuantConfig | None = None, record: dict | None = None):
    """run(model, feeds) -> first output, on OpenVINO CPU with `hint`; `record["executed"]` gets the last
    compiled model's executed precisions."""
    cfg = cfg or OVQuantConfig()

    def run(model, feeds: dict) -> np.ndarray:
        compiled = compile_cpu(model, hint, cfg.threads)
        if record is not None:
            record["executed"] = executed_precisions(compiled)
        req = compiled.create_infer_request()
        n = next(iter(feeds.values())).shape[0]
        b = 1 if set(feeds) == {"lr"} else cfg.generator_batch
        return np.concatenate([req.infer({k: v[i:i + b] for k, v in feeds.items()})[compiled.output(0)].copy()
                               for i in range(0, n, b)])
    return run


def measured_on() -> dict:
    """The machine and versions a gate result holds for (INT8/BF16 numerics depend on the CPU's ISA)."""
    import nncf

    from skugen.report import environment

    ov = _ov()
    cpu = environment()["cpu"]
    return {"cpu": cpu.get("model"), "isa": cpu.get("flags"), "openvino": ov.get_version(), "nncf": nncf.__version__,
            "openvino_capabilities": list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}

# ----------------------------------------------------------------------------- INT8


def quantize_openvino_gated(fp32_onnx, calib: dict, eval_set: EvalSet, budget: QualityBudget | None = None,
                            cfg: OVQuantConfig | None = None, classifier=None,
                            confirm_set: EvalSet | None = None) -> OVQuantResult:
    """NNCF INT8 on the OpenVINO model with the fewest float layers that hold `budget` on OpenVINO CPU.

    The chosen IR is serialized, read back and measured on `confirm_set` (a second, independent draw):
    the shipped bytes are what was confirmed. A miss on the confirm draw does not ship the IR.
    """
    t0 = time.perf_counter()
    budget, cfg = budget or QualityBudget(), cfg or OVQuantConfig()
    fp32 = as_bytes(fp32_onnx)
    kind = model_kind(as_proto(fp32))
    n_cal = check_feeds(as_proto(fp32), calib)
    check_feeds(as_proto(fp32), eval_set.feeds, what="eval inputs")
    names = layer_names(fp32)
    classify = _classifier_fn(classifier) if kind == "generator" else None
    executed: dict = {}
    run = ov_runner(cfg.inference_precision, cfg, executed)
    judge = _Judge(kind, fp32, eval_set, budget, classify, run=run)
    search = search_float_layers(judge, lambda fl: nncf_int8(fp32, calib, fl, cfg, names),
                                 lambda q: int8_layers(q, names), budget.max_float_fraction,
                                 probe=lambda q, fl: keep_float_ov(q, fp32, fl, names), op_of=lambda name: names[name], how="NNCF re-quantized (OpenVINO ignored scope)")
    report: dict[str, Any] = {
        "schema_version": QUANT_REPORT_VERSION, "engine": "openvino", "tool": "nncf (OpenVINO backend)", "kind": kind,
        "config": asdict(cfg), "budget": asdict(budget), "measured_on": measured_on(),
        "calibration": {"n": n_cal, "used": min(n_cal, cfg.subset_size),
                        "shapes": {k: list(v.shape) for k, v in calib.items()}},
        "eval": {"n": int(next(iter(eval_set.feeds.values())).shape[0]), "source": eval_set.source,
                 "shapes": {k: list(v.shape[1:]) for k, v in eval_set.feeds.items()}, "metric": judge.primary,
                 "classifier": classify is not None, "runs_on": f"OpenVINO CPU, INFERENCE_PRECISION_HINT "
                                                                 f"{cfg.inference_precision}"},
        "layer_names": names, "fp32": judge.fp32, "int8_all_layers": search.all_int8,
        "quantizable_layers": list(search.layers), "sensitivity": search.sensitivity, "steps": search.steps,
        "kept_float": gate_report_rows(search, judge) if search.model is not None else [],
    }
    xml = bin_ = None
    met = search.model is not None
    if met:
        xml, bin_ = ir_bytes(search.model)
        shipped = read_ir(xml, bin_)
        report["final"] = search.measured
        if confirm_set is not None:
            c = confirm_record(fp32, shipped, confirm_set, budget, classifier, run=run)
            report["confirm"] = c
            met = c["within_budget"]
        report["executed"] = executed.get("executed")  # of the last compiled model: the chosen IR, read back
    chosen = search.chosen if met else ()
    if met:
        msg = (f"OpenVINO INT8 (NNCF): {len(chosen)}/{len(search.layers)} layers kept float"
               f"{' (' + ', '.join(chosen) + ')' if chosen else ''}; {_line(search.measured)}"
               f"{'; confirm draw ' + _line(report['confirm']) if 'confirm' in report else ''}.")
        outcome = "int8" if not chosen else "int8-mixed"
    elif search.model is not None:
        msg = "OpenVINO INT8 not shipped:" + confirm_miss_message(confirm_set, report["confirm"])
        outcome = "fp32 (confirm draw missed the budget)"
    else:
        msg = (f"OpenVINO INT8 not shipped: all-int8 gives {_line(search.all_int8)}, and up to {search.max_float}/"
               f"{len(search.layers)} layers float did not meet the budget. Relax the budget (--budget-db / "
               "--min-psnr-db / --budget-fidelity-pts) to ship it.")
        outcome = "fp32 (budget not met)"
    report.update(outcome=outcome, message=msg, kept_float_openvino=[names[n] for n in chosen],
                  n_evals=judge.n_evals, seconds=round(time.perf_counter() - t0, 2))
    return OVQuantResult(xml if met else None, bin_ if met else None, met, tuple(chosen), jsonable(report))


def manifest_quantization(r: OVQuantResult, calibration_samples: int, report_file: str) -> dict:
    """The `quantization` record of models["int8"].variants["openvino"]."""
    rep = r.report
    return jsonable({
        "tool": "nncf", "engine": "openvino", "format": "OpenVINO IR (FakeQuantize, int8 weights)",
        "preset": rep["config"]["preset"], "overflow_fix": rep["config"]["overflow_fix"],
        "inference_precision": rep["config"]["inference_precision"], "calibration_samples": calibration_samples,
        "ignored_layers": list(r.kept_float), "ignored_openvino_ops": rep["kept_float_openvino"],
        "float_layers": len(r.kept_float), "quantizable_layers": len(rep["quantizable_layers"]),
        "budget": rep["budget"], "eval": {k: rep["eval"][k] for k in ("n", "source", "shapes")},
        "final": _jsonable_metrics(rep.get("final")), "confirm": _strip_confirm(rep.get("confirm")),
        "executed": rep.get("executed"), "measured_on": rep["measured_on"], "outcome": rep["outcome"],
        "report": report_file}, finite=False)

# ----------------------------------------------------------------------------- BF16


def bf16_record(fp32_onnx, eval_set: EvalSet, budget: QualityBudget | None = None, classifier=None,
                confirm_set: EvalSet | None = None, cfg: OVQuantConfig | None = None) -> dict:
    """Is BF16 (an OpenVINO runtime precision of the FP32 model) within `budget` on this CPU?

    Compiles the FP32 model with a bf16 hint and reads back what the CPU plugin executes. Without native
    BF16 it runs f32: the record says native False, accepted False, and holds no quality numbers (they
    would be f32's). Otherwise the same judge as INT8 measures it on the eval draw and the confirm draw.
    """
    budget, cfg = budget or QualityBudget(), cfg or OVQuantConfig()
    fp32 = as_bytes(fp32_onnx)
    kind = model_kind(as_proto(fp32))
    model = ov_model(fp32)
    executed = executed_precisions(compile_cpu(model, "bf16", cfg.threads))
    native = any("bf16" in precs for precs in executed.values())
    rec: dict[str, Any] = {"hint": "bf16", "native": native, "executed": executed, "measured_on": measured_on(),
                           "budget": asdict(budget)}
    if not native:
        rec.update(accepted=False, measured=False,
                   reason="this CPU has no native BF16: OpenVINO ran the bf16 hint as f32, so no bf16 quality was "
                          "measured. Re-run the gate on a BF16 CPU (AVX512-BF16 / AMX) to accept bf16 there.")
        return jsonable(rec, finite=False)
    run = ov_runner("bf16", cfg)
    judge = _Judge(kind, fp32, eval_set, budget, _classifier_fn(classifier) if kind == "generator" else None, run=run)
    m = judge.measure(model)
    rec.update(measured=True, eval={"source": eval_set.source, "n": int(next(iter(eval_set.feeds.values())).shape[0]),
                                    **_jsonable_metrics(m), "within_budget": bool(m["budget"]["ok"])})
    ok = bool(m["budget"]["ok"])
    if confirm_set is not None:
        c = confirm_record(fp32, model, confirm_set, budget, classifier, run=run)
        rec["confirm"] = _strip_confirm(c)
        ok = ok and c["within_budget"]
    rec["accepted"] = ok
    return jsonable(rec, finite=False)


def _strip_confirm(c: dict | None) -> dict | None:
    return None if c is None else {k: v for k, v in c.items() if k != "budget_check"}


def _line(m: dict) -> str:
    keys = ("psnr_vs_fp32_db", "fidelity_drop_pts", "psnr_y_drop_db")
    return ", ".join(f"{k} {m[k]:.3g}" for k in keys if isinstance(m.get(k), (int, float)))
