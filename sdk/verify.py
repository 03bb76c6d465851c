"""`skugen verify`: run a bundle's golden inputs through a backend and compare with the golden outputs.

Runtime side: numpy + the backend only, never torch. The golden outputs were made
by the source PyTorch model at export time; the tolerances per precision are in
the parsed manifest's golden.tolerances (Bundle.spec.tolerance(precision)):

- fp32 / fp16: element-wise, Polygraphy semantics: |out - golden| <= atol + rtol * |golden|; fp16 runs the
  bundle's model.fp16.onnx (ONNX Runtime on the CPU, or the TensorRT engine built from it);
- int8: INT8 cannot match element-wise, so image statistics: PSNR >= min_psnr_db and
  mean |out - golden| <= max_mean_abs (see skugen.export.tolerances.int8_golden_tolerance).

    rep = verify_bundle("runs/demo/bundle", backend="onnxruntime", precision="int8")
    rep.passed, rep.outputs["image"]["psnr_db"]
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from . import __version__
from .bundle import Bundle, load_bundle
from .errors import InputError, VerificationError
from .report import ReportBase

SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
# Measured (skugen.export.fp16_gate.METHOD): on x86 ONNX Runtime's CPU provider has no FP16 kernels for these ops and
# runs the FP16 graph in FP32 with its FP16 weights; the FP16 quality figures in the manifest come from an
# FP16-storage execution instead.
FP16_ON_CPU = ("ONNX Runtime CPU: FP16 weights and graph, FP32 arithmetic and activations between nodes "
               "(InsertCastTransformer); the manifest's FP16 gate figures model FP16 storage")

# ----------------------------------------------------------------------------- statistics


def _psnr_255(got: np.ndarray, ref: np.ndarray, value_range) -> float:
    """PSNR (BasicSR: per-image mean over [0,255]) after mapping `value_range` to [0,255] and clipping."""
    lo, hi = value_range
    a = np.clip((got - lo) * (255.0 / (hi - lo)), 0, 255).reshape(got.shape[0], -1)
    b = np.clip((ref - lo) * (255.0 / (hi - lo)), 0, 255).reshape(ref.shape[0], -1)
    mse = ((a - b) ** 2).mean(axis=1)                                   # (N,)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(255.0 ** 2 / mse)))


def output_stats(got, ref, atol: float, rtol: float, value_range=None) -> dict:
    """Polygraphy-style comparison of `got` with the reference `ref` (float64 arithmetic).

    An element passes when |got - ref| <= atol + rtol * |ref| (numpy.isclose, Polygraphy's
    --atol/--rtol). "pass" is element-wise; PSNR (dB, None when identical) is added for
    image outputs when `value_range` is given.
    """
    got64, ref64 = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got64.shape != ref64.shape:
        return {"pass": False, "error": f"shape {list(got64.shape)} != golden {list(ref64.shape)}"}
    diff = np.abs(got64 - ref64)
    rel = diff / np.maximum(np.abs(ref64), 1e-12)
    ok = diff <= atol + rtol * np.abs(ref64)
    finite = bool(np.isfinite(got64).all())
    out = {
        "max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "median_abs": float(np.median(diff)),
        "max_rel": float(rel.max()), "mean_rel": float(rel.mean()), "median_rel": float(np.median(rel)),
        "n_fail": int((~ok).sum()), "n": int(ok.size), "atol": atol, "rtol": rtol,
        "worst_index": [int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)],
        "finite": finite, "pass": bool(ok.all()) and finite,
    }
    if value_range is not None and got64.ndim >= 2:
        # JSON has no inf: identical outputs give psnr_db None with psnr_is_inf True
        p = _psnr_255(got64, ref64, value_range) if finite else math.nan
        out["psnr_db"] = p if math.isfinite(p) else None
        out["psnr_is_inf"] = bool(finite and math.isinf(p))
        out["psnr_convention"] = (f"BasicSR-style per-image mean over [0,255], output range {list(value_range)} "
                                  "mapped to [0,255] and clipped")
    return out


def check_output(got, ref, tol: dict, value_range) -> dict:
    """Stats + pass/fail under a tolerance dict: {atol, rtol} (element-wise) or {min_psnr_db, max_mean_abs}."""
    if "min_psnr_db" in tol and "atol" not in tol:
        st = output_stats(got, ref, atol=0.0, rtol=0.0, value_range=value_range)
        if "error" in st:
            return st
        psnr = math.inf if st.get("psnr_is_inf") else (st.get("psnr_db") if st.get("psnr_db") is not None else -math.inf)
        st["element_pass"] = st.pop("pass")
        st["min_psnr_db"], st["max_mean_abs"] = tol["min_psnr_db"], tol.get("max_mean_abs", math.inf)
        st["rule"] = "psnr_db >= min_psnr_db and mean_abs <= max_mean_abs"
        st["pass"] = st["finite"] and psnr >= tol["min_psnr_db"] and st["mean_abs"] <= st["max_mean_abs"]
        return st
    st = output_stats(got, ref, tol["atol"], tol["rtol"], value_range)
    st["rule"] = "|out - golden| <= atol + rtol * |golden| for every element"
    return st

# ----------------------------------------------------------------------------- report


@dataclass
class VerifyReport(ReportBase):
    bundle: str
    name: str
    backend: str
    precision: str
    model_file: str | None
    tolerance: dict
    outputs: dict                      # output name -> stats (see output_stats / check_output)
    passed: bool
    n_inputs: int = 0
    seconds: float = 0.0
    environment: dict = field(default_factory=dict)
    signature: dict = field(default_factory=dict)   # skugen.signing.SignatureInfo: who signed, checked or not
    schema_version: int = SCHEMA_VERSION
    kind: str = "verify"

    FINITE: ClassVar[bool] = False  # to_dict keeps inf/NaN statistics as they are

    def lines(self) -> list[str]:
        head = (f"{self.name}: {self.backend} {self.precision} on {self.n_inputs} golden inputs -> "
                f"{'PASS' if self.passed else 'FAIL'}")
        out = [head]
        if self.signature:
            from .signing import SignatureInfo

            out.append(f"  signature: {SignatureInfo(**self.signature).describe()}")
        for k, s in self.outputs.items():
            if "error" in s:
                out.append(f"  {k}: FAIL {s['error']}")
                continue
            psnr = s.get("psnr_db")
            psnr_s = "inf" if psnr is None else f"{psnr:.2f}"
            out.append(f"  {k}: {'PASS' if s['pass'] else 'FAIL'}  max_abs {s['max_abs']:.3g}  mean_abs "
                       f"{s['mean_abs']:.3g}  median_abs {s['median_abs']:.3g}  max_rel {s['max_rel']:.3g}  "
                       f"PSNR {psnr_s} dB  ({_tol_str(self.tolerance)})")
        return out

    def raise_if_failed(self) -> "VerifyReport":
        if not self.passed:
            bad = "; ".join(line.strip() for line in self.lines()[1:] if "FAIL" in line)
            raise VerificationError(f"{self.name}: {self.backend} {self.precision} disagrees with the golden outputs "
                                    f"({bad}). Rebuild the engine (`skugen build`) or re-export the bundle; "
                                    "if the backend is new, compare with `skugen verify --backend onnxruntime`.")
        return self


def _tol_str(t: dict) -> str:
    if "atol" in t:
        return f"atol {t['atol']:g}, rtol {t['rtol']:g}"
    return f"PSNR >= {t['min_psnr_db']:g} dB, mean_abs <= {t.get('max_mean_abs', math.inf):g}"

# ----------------------------------------------------------------------------- runners


def make_runner(bundle: Bundle, backend: str, precision: str):
    """The backend runner for `precision` (not yet activated), from the registry (skugen.backends.runner_for)."""
    from .backends import runner_for

    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {BACKENDS}.")
    return runner_for(bundle, backend, precision)


def verify_bundle(bundle_or_path, backend: str = "onnxruntime", precision: str = "fp32") -> VerifyReport:
    """Run the golden inputs through `backend` at `precision` and compare with the golden outputs.

    Returns the report (passed or not); call `.raise_if_failed()` for a VerificationError.
    """
    t0 = time.perf_counter()
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {PRECISIONS}.")
    b = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    tol = b.spec.tolerance(precision, backend)
    g_in, g_out = b.golden()
    vr = b.spec.value_range
    runner = make_runner(b, backend, precision)
    with runner:
        got = runner.infer(g_in)
        info = dict(getattr(runner, "info", {}) or {})
    outputs = {}
    for name, ref in g_out.items():
        if name not in got:
            outputs[name] = {"pass": False, "error": f"backend produced no output {name!r} (got {sorted(got)})"}
            continue
        outputs[name] = check_output(got[name], ref, tol, vr)
    # fp16: the bundle's model.fp16.onnx (older bundles have none, and no fp16 engine can be built from them);
    # bf16: OpenVINO's precision hint on the fp32 model; int8 has a TensorRT and an OpenVINO flavour
    src = "fp32" if (precision == "fp16" and "fp16" not in b.spec.models) or precision == "bf16" else precision
    model_file = b.spec.variant(src, backend).file if src in b.spec.models else None
    env = {"skugen": __version__, "python": platform.python_version(), "machine": platform.machine(), **info}
    if precision == "fp16" and info.get("device") == "cpu":
        env["fp16_execution"] = FP16_ON_CPU
    try:
        import onnxruntime

        env.setdefault("onnxruntime", onnxruntime.__version__)
    except ImportError:  # pragma: no cover - base dependency
        pass
    return VerifyReport(
        bundle=str(b.root), name=b.name, backend=backend, precision=precision, model_file=model_file,
        tolerance=tol, outputs=outputs, passed=all(s["pass"] for s in outputs.values()),
        n_inputs=int(next(iter(g_in.values())).shape[0]), seconds=round(time.perf_counter() - t0, 3), environment=env,
        signature=b.signature.to_dict())


def verify_graphs(bundle_or_path, backend: str = "onnxruntime", precision: str = "fp32") -> list[VerifyReport]:
    """verify_bundle on the bundle's own graph, then on every further graph of a multi-graph bundle (a diffusion
    bundle's text encoder) at the same precision when that graph has it, else fp32 (what the runtime runs)."""
    b = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    return [verify_bundle(g, backend, p) for g, p in b.graphs_at(precision)]
