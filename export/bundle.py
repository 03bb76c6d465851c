"""`skugen export`: a trained model directory (or zoo name) -> a verified bundle.

    path = export_bundle("fmnist-cgan", "runs/demo/bundle", BundleConfig(int8=True))

Steps, each a stage function from this package:
  1. load the source model (safetensors + card, no pickle);
  2. onnx_from_torch -> model.fp32.onnx, and parity_report against PyTorch (raises on mismatch);
  3. golden inputs (fixed seeds) and golden outputs made by the reference PyTorch model;
  4. optional quantize_gated -> model.int8.onnx (only when the quality budget holds);
     with openvino installed, also model.int8.openvino.xml/.bin (NNCF on the OpenVINO model, gated on
     OpenVINO CPU) and the BF16 record of the FP32 model (skugen.export.openvino_quant);
  5. reports (parity, quality, quantization), the model card and the source weights;
  6. skugen.bundle.write_bundle (sha256 of every file, atomic).
The runtime side (`skugen verify`) re-runs the golden inputs on any backend and
compares with the tolerances written here.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from skugen import __version__ as skugen_version
from skugen.bundle import check_bundle_dest, npz_bytes, write_bundle
from skugen.errors import BudgetError, DataError, ModelError, VerificationError, need_extra
from skugen.io import json_text, jsonable, sha256_bytes
from skugen.manifest import (DEFAULT_VALUE_RANGE, Golden, IOSpec, Manifest, Postprocess, Preprocess,
                             TensorSpec, Tile, Variant, schema_for)

from . import ckpt, models, zoo
from .onnx_export import ExportConfig, compare_outputs, onnx_from_torch, ort_outputs, parity_report
from . import userdata
from .evalsets import enhancer_eval_set, gate_sets
from .quantize import QualityBudget, QuantConfig, quantize_gated_auto
from .tolerances import FP16_TOL, FP32_TOL, int8_golden_tolerance, worse_stats

KIND_OF_FAMILY = {"cgan": "generator", "sr": "enhancer"}

# Golden tolerances per precision: skugen.export.tolerances.


@dataclass(frozen=True)
class BundleConfig:
    int8: bool = False                      # add model.int8.onnx (quality-gated mixed precision)
    budget: QualityBudget = QualityBudget()  # how much quality INT8 may cost
    quant: QuantConfig = QuantConfig(tool="auto")  # calibrator (auto | nncf | ort) and Q/DQ flavour
    calib_n: int = 128                      # calibration samples (real inputs)
    eval_n: int | None = None               # held-out eval samples; None: 500 latents / 128 photo crops
    classifier: str | None = "auto"         # generator class fidelity: zoo name/dir, "auto" = zoo's if shipped, None = off
    export: ExportConfig = ExportConfig()
    parity_n: int = 8                       # samples in the torch-vs-ONNX parity report
    golden_seed: int = 1234
    max_batch: int = 64                     # largest batch the runtime/engines are built for
    name: str | None = None                 # the bundle's name (None: the model card's); Jetson packages and Triton
                                            # models are named after it, so two models must not share one
    fp16: bool | None = None                # add model.fp16.onnx (quality-gated FP32 nodes); None = with --int8
    strict_budget: bool = False             # raise BudgetError (after writing the bundle) when INT8 misses
                                            # the budget and the bundle ships FP32 only
    openvino: bool | None = None            # OpenVINO INT8 IR (NNCF on the OpenVINO model) + the BF16 record, with
                                            # --int8: None = when openvino is installed, True = required, False = off
    openvino_eval_n: int = 64               # enhancer tiles for the OpenVINO gate: whole deployment tiles (7x the
                                            # pixels of a 48 px crop), so 64 cost about what 256 small crops do
    tile: tuple[int, int] = (128, 32)       # enhancer tiling (size, overlap) in LR pixels: bounds memory on Jetson;
                                            # overlap/2 = 16 px of context >= the SR teacher's 15-px receptive radius (no seams)


def receptive_radius(module: torch.nn.Module) -> int:
    """LR pixels of context each output pixel sees: one per stacked 3x3 conv (k//2 for kxk), in forward order.

    The runtime needs tile overlap/2 >= this for tiled output to equal untiled output. A user's
    model (whose layers may run in any order, or hide in a frozen graph) is measured instead.
    """
    if isinstance(getattr(module, "cfg", None), models.CustomConfig):
        return measured_receptive_radius(module)
    return int(sum(m.kernel_size[0] // 2 for m in module.modules() if isinstance(m, torch.nn.Conv2d)))


@torch.no_grad()
def measured_receptive_radius(module: torch.nn.Module, size: int = 96) -> int:
    """Perturb one LR pixel in the middle of a random image; the LR radius of the output change is the
    receptive radius (for this input; ReLU gating can hide a little, hence the caller's margin)."""
    c = module.cfg
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, c.in_ch, size, size, generator=g)
    y0 = module.eval()(x)
    x2 = x.clone()
    x2[:, :, size // 2, size // 2] += 0.5
    diff = (module(x2) - y0).abs().amax(1)[0]                         # (H*s, W*s)
    ys, xs = torch.nonzero(diff > 1e-6, as_tuple=True)
    if len(ys) == 0:
        return 0
    centre = (size // 2) * c.scale + c.scale / 2.0
    r_hr = max((ys.float() - centre).abs().max().item(), (xs.float() - centre).abs().max().item())
    r = int(math.ceil(r_hr / c.scale))
    if r >= size // 2 - 1:
        raise ModelError(f"the model's output depends on pixels {r}+ px away (global context); tiled enhancement "
                         "would not equal whole-image enhancement. Such models are not supported as enhancers.")
    return r


def kind_of(card: dict, module: torch.nn.Module) -> str:
    fam = card.get("config", {}).get("family")
    if fam == "custom":
        return module.cfg.kind
    if fam not in KIND_OF_FAMILY:
        raise ModelError(f"model family {fam!r} cannot be bundled; bundles hold a generator (cgan) or an "
                         "enhancer (sr). Classifiers are evaluation tools only.")
    return KIND_OF_FAMILY[fam]

# ----------------------------------------------------------------------------- golden data


def golden_inputs(module, kind: str, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Fixed inputs: one latent per class for the generator; two real degraded photo crops for the enhancer."""
    c = module.cfg
    if kind == "generator":
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((c.n_classes, c.z_dim)).astype(np.float32)   # (n_classes, z_dim)
        onehot = np.eye(c.n_classes, dtype=np.float32)                        # one image per class
        return {"z": z, "onehot": onehot}, f"N(0,1) latents seed {seed}, one per class"
    try:
        from . import data

        lr, _ = data.sr_eval_set("test", 2, hr_size=128, seed=seed)          # (2, 64, 64, 3) uint8
        lr = lr[:, :, :48]                                                    # non-square: h != w is exercised
        x = np.ascontiguousarray(lr.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        return {"lr": x}, f"GroceryStore test, 2 degraded centre crops 64x48 LR, seed {seed}"
    except DataError:
        x = np.random.default_rng(seed).random((2, c.in_ch, 64, 48), dtype=np.float32)
        return {"lr": x}, f"uniform [0,1] noise 64x48 LR, seed {seed} (GroceryStore not found)"


@torch.no_grad()
def torch_outputs(module, kind: str, feeds: dict) -> dict[str, np.ndarray]:
    from .onnx_export import IO_NAMES

    ins, outs = IO_NAMES[kind]
    y = module.eval()(*[torch.from_numpy(feeds[k]) for k in ins])
    return {outs[0]: y.numpy().astype(np.float32)}


# ----------------------------------------------------------------------------- manifest pieces


def io_spec(module, kind: str, max_batch: int) -> IOSpec:
    c = module.cfg
    if kind == "generator":
        return IOSpec(
            inputs=(TensorSpec("z", ("batch", c.z_dim), extra={"distribution": "normal(0,1)"}),
                    TensorSpec("onehot", ("batch", c.n_classes), range=(0.0, 1.0), extra={"encoding": "one-hot"})),
            outputs=(TensorSpec("image", ("batch", c.out_ch, c.image_size, c.image_size),
                                range=DEFAULT_VALUE_RANGE[kind]),),
            class_names=tuple(_class_names(c.n_classes, c)), z_dim=c.z_dim, n_classes=c.n_classes,
            image_size=c.image_size, channels=c.out_ch, max_batch=max_batch)
    return IOSpec(
        inputs=(TensorSpec("lr", ("batch", c.in_ch, "h", "w"), range=(0.0, 1.0)),),
        outputs=(TensorSpec("hr", ("batch", c.in_ch, f"{c.scale}h", f"{c.scale}w"), range=DEFAULT_VALUE_RANGE[kind],
                            extra={"note": "unclamped; postprocess clamps"}),),
        channels=c.in_ch, scale=c.scale, max_batch=max_batch)


def _class_names(n: int, cfg=None) -> tuple[str, ...]:
    if getattr(cfg, "class_names", None):
        return tuple(cfg.class_names)
    from .data import FMNIST_CLASSES

    return FMNIST_CLASSES if n == len(FMNIST_CLASSES) else tuple(f"class-{i}" for i in range(n))


def _macs(module) -> tuple[int, list[int]]:
    x = models.example_inputs(module.cfg, batch=1, size=64)
    return models.count_macs(module, x), list(x[0].shape)


def _classifier(cfg: BundleConfig, kind: str, module):
    """A callable images (N,1,32,32) [-1,1] -> logits, or None (with the reason)."""
    if kind != "generator" or cfg.classifier is None:
        return None, "not used"
    c = module.cfg
    if (c.n_classes, c.out_ch, c.image_size) != (10, 1, 32):
        return None, (f"class fidelity not measured: the fmnist-classifier judges 10-class 1x32x32 images, this "
                      f"generator makes {c.n_classes}-class {c.out_ch}x{c.image_size}x{c.image_size}")
    try:
        path = zoo.classifier_dir() if cfg.classifier == "auto" else zoo.resolve(cfg.classifier)
    except ModelError as e:
        if cfg.classifier == "auto":
            return None, "no classifier in the zoo (class fidelity not measured)"
        raise e
    clf, _ = ckpt.load_model(path)

    @torch.no_grad()
    def fn(x: np.ndarray) -> np.ndarray:
        return clf(torch.from_numpy(x)).numpy()
    return fn, str(path)

# ----------------------------------------------------------------------------- export_bundle


def export_bundle(model_dir_or_zoo_name, out, cfg: BundleConfig | None = None) -> Path:
    """Export, verify and write a bundle; returns its path. See the module docstring."""
    cfg = cfg or BundleConfig()
    check_bundle_dest(out)  # before minutes of work, not after
    src = zoo.resolve(model_dir_or_zoo_name)
    if zoo.family_of(src) == "diffusion":  # two graphs + a sampling loop
        from .diffusion_bundle import export_diffusion_bundle

        return export_diffusion_bundle(src, out, cfg)
    module, card = ckpt.load_model(src)
    kind = kind_of(card, module)
    name = cfg.name or card.get("name") or src.name
    vr = DEFAULT_VALUE_RANGE[kind]
    span = vr[1] - vr[0]

    # 1-2. FP32 ONNX + parity against PyTorch (VerificationError stops the export)
    res = onnx_from_torch(module, cfg.export)
    parity = parity_report(module, res.onnx_bytes, n=cfg.parity_n, atol=FP32_TOL["atol"], rtol=FP32_TOL["rtol"])

    # 3. golden data: reference outputs come from PyTorch, not from the ONNX under test
    g_in, g_src = golden_inputs(module, kind, cfg.golden_seed)
    g_out = torch_outputs(module, kind, g_in)
    out_name = next(iter(g_out))
    golden_stats = {"fp32": compare_outputs(ort_outputs(res.onnx_bytes, g_in)[out_name], g_out[out_name],
                                            FP32_TOL["atol"], FP32_TOL["rtol"], vr)}
    if not golden_stats["fp32"]["pass"]:
        raise VerificationError(f"the FP32 ONNX does not reproduce the golden outputs ({golden_stats['fp32']}); "
                                "the bundle was not written.")
    tolerances = {"fp32": dict(FP32_TOL), "fp16": dict(FP16_TOL)}

    macs, macs_input = _macs(module)
    fp32_entry = Variant("model.fp32.onnx", sha256_bytes(res.onnx_bytes), bytes=len(res.onnx_bytes),
                         precision="fp32", opset=res.opset, params=res.params, macs=macs,
                         macs_input=tuple(macs_input), op_counts=res.op_counts, bn_folded=res.folded_bn)
    files: dict[str, bytes | os.PathLike] = {"model.fp32.onnx": res.onnx_bytes}
    models_m: dict[str, Variant] = {"fp32": fp32_entry}
    quality = {"fp32": {"parity_max_abs": parity["outputs"][out_name]["max_abs"],
                        "golden_max_abs": golden_stats["fp32"]["max_abs"]}}
    reports = {"parity": "reports/parity.json", "quality": "reports/quality.json"}
    quant_report = None

    # 4. optional INT8, gated by measured quality
    if cfg.int8:
        clf, clf_src = _classifier(cfg, kind, module)
    gs = None
    want_fp16 = cfg.fp16 if cfg.fp16 is not None else cfg.int8
    if cfg.int8 or want_fp16 or userdata.from_card(card) is not None:  # also the bicubic baseline's eval set
        c = module.cfg  # x3/x4 enhancers need LR/HR pairs at THEIR scale; user data at the deployment tile
        gs = gate_sets(kind, scale=int(getattr(c, "scale", 2)), z_dim=getattr(c, "z_dim", None),
                       n_classes=getattr(c, "n_classes", None), calib_n=cfg.calib_n, eval_n=cfg.eval_n,
                       data=userdata.from_card(card), tile=cfg.tile[0])
    if cfg.int8:
        calib, ev, confirm = gs.calib, gs.gate, gs.confirm
        # every calibration sample asked for is used (QuantConfig.subset_size alone capped --calib at 128)
        qr = quantize_gated_auto(res.onnx_bytes, calib, ev, cfg.budget, replace(cfg.quant, subset_size=cfg.calib_n),
                                 classifier=clf, confirm_set=confirm)
        quant_report = {**qr.report, "classifier": clf_src}
        reports["quantization"] = "reports/quantization.json"
        quality["int8"] = {"outcome": qr.report["outcome"], "kept_float": list(qr.kept_float),
                           "float_layers": qr.report.get("float_layers", []),
                           "budget_ok": qr.met_budget, "final": _strip(qr.report.get("final")),
                           "all_int8": _strip(qr.report["int8_all_layers"]), "confirm": qr.report.get("confirm"),
                           # final/confirm: the TensorRT flavour; ONNX Runtime ships its own file, gated too
                           "final_onnxruntime_flavour": _strip(qr.report.get("final_onnxruntime_flavour")),
                           "confirm_onnxruntime_flavour": qr.report.get("confirm_onnxruntime_flavour")}
        if qr.met_budget:
            # Both flavours run on ORT here; the golden tolerance comes from the worse of the two.
            st = compare_outputs(ort_outputs(qr.onnx_bytes, g_in)[out_name], g_out[out_name],
                                 FP32_TOL["atol"], FP32_TOL["rtol"], vr)
            st_trt = compare_outputs(ort_outputs(qr.trt_onnx_bytes, g_in)[out_name], g_out[out_name],
                                     FP32_TOL["atol"], FP32_TOL["rtol"], vr)
            golden_stats["int8"], golden_stats["int8_tensorrt_flavour"] = st, st_trt
            tolerances["int8"] = int8_golden_tolerance(worse_stats(st, st_trt), span)
            files["model.int8.onnx"] = qr.onnx_bytes
            files["model.int8.trt.onnx"] = qr.trt_onnx_bytes
            models_m["int8"] = Variant(
                "model.int8.onnx", sha256_bytes(qr.onnx_bytes), bytes=len(qr.onnx_bytes),
                precision="int8", opset=res.opset, params=res.params, macs=macs, macs_input=tuple(macs_input),
                quantization={"tool": qr.report["calibrator"]["tool"],
                                 "calibrate_method": qr.report["calibrator"]["calibrate_method"],
                                 "format": "QDQ (QuantizeLinear/DequantizeLinear)",
                                 "scheme": "symmetric int8, per-channel weights" if cfg.quant.per_channel
                                 else "symmetric int8, per-tensor weights",
                                 "preset": cfg.quant.preset, "calibration_samples": cfg.calib_n,
                                 "ignored_layers": list(qr.kept_float), "budget": asdict(cfg.budget),
                                 "outcome": qr.report["outcome"], "report": "reports/quantization.json"},
                activations="uint8 (zero point 0/128) for ONNX Runtime x86's fused U8S8 kernels",
                # TensorRT takes int8-only Q/DQ; ORT x86 runs int8-activation QDQ un-fused (slower than FP32).
                variants={"tensorrt": Variant(
                    "model.int8.trt.onnx", sha256_bytes(qr.trt_onnx_bytes), bytes=len(qr.trt_onnx_bytes),
                    activations="int8, zero point 0 (TensorRT explicit quantization)", use_for=("tensorrt",))})

    if gs is not None:  # sanity baseline: bicubic vs the FP32 model on the gate's eval set (enhancers)
        fp32_y = (quant_report or {}).get("fp32", {}).get("psnr_y_db")
        quality["baseline"] = userdata.baseline_report(kind, res.onnx_bytes, gs.gate, fp32_y)
        quality["data"] = {"source": gs.source, **gs.info}
        if quality["baseline"] and quality["baseline"]["warning"]:
            warnings.warn(quality["baseline"]["warning"], userdata.BaselineWarning, stacklevel=2)
    # 4c. FP16 (model.fp16.onnx, gated like INT8) and the TensorRT INT8 twin in FP16: see _fp16_variant
    if want_fp16:
        f16 = _fp16_variant(cfg, kind, module, res, files, models_m, g_in, g_out, golden_stats.get("int8"), span,
                            gs.gate, gs.confirm)
        quality.update(f16["quality"])
        golden_stats.update(f16["golden"])
        tolerances.update(f16["tolerances"])
        if f16["report"] is not None:
            reports["fp16"] = "reports/fp16.json"
            files["reports/fp16.json"] = json_text(f16["report"]).encode()
    # 4a. OpenVINO: its own INT8 (NNCF on the OpenVINO model) and the BF16 record, gated on what OpenVINO runs
    if cfg.int8 and _want_openvino(cfg):
        models_m, quality["openvino"], st_ov = _openvino_variants(cfg, kind, module, res.onnx_bytes, models_m, files,
                                                                  calib, ev, confirm, clf, g_in,
                                                                  user_data=userdata.from_card(card) is not None)
        reports["quantization_openvino"] = OV_REPORT
        if st_ov is not None:  # OpenVINO's INT8 is its own quantization: its own golden tolerance
            st_ov = compare_outputs(st_ov[out_name], g_out[out_name], FP32_TOL["atol"], FP32_TOL["rtol"], vr)
            golden_stats["int8_openvino"] = st_ov
            tolerances["int8.openvino"] = int8_golden_tolerance(st_ov, span)

    # 4b. which precision is faster on THIS machine's ONNX Runtime CPU? INT8 is not always
    # (small students: Q/DQ transposes and float islands can cost more than int8 GEMMs save).
    # The runtime's precision="auto" reads this instead of assuming INT8 wins.
    models_m = {p: replace(v, cpu_latency=_cpu_latency(files[v.file], kind, module)) for p, v in models_m.items()}

    # 5. reports, card, source
    quality_report = {
        "kind": kind, "reference": "PyTorch fp32 (source weights) on the golden inputs",
        "golden_vs_reference": golden_stats, "int8_gate": quality.get("int8"), "fp16_gate": quality.get("fp16"),
        "baseline": quality.get("baseline"), "data": quality.get("data"),
        "convention": "PSNR BasicSR, [0,255] after mapping the output range, per-image mean; "
                      "gate metrics: see reports/quantization.json",
        "card_metrics": card.get("metrics"),
    }
    quality_summary = {**quality, "golden": {p: {"max_abs": s["max_abs"], "mean_abs": s["mean_abs"],
                                                 "psnr_db": s.get("psnr_db")} for p, s in golden_stats.items()}}
    bundle_card = {**card, "bundle": {"kind": kind, "precisions": list(models_m), "quality": quality_summary}}
    files.update({
        "golden/inputs.npz": npz_bytes(g_in), "golden/outputs.npz": npz_bytes(g_out),
        "reports/parity.json": json_text(parity).encode(), "reports/quality.json": json_text(quality_report).encode(),
        "card.json": json_text(bundle_card).encode(),
        "source/model.safetensors": src / "model.safetensors", "source/card.json": src / "card.json",
    })
    if card.get("program"):  # a user's frozen program (TorchScript / ExportedProgram): the teacher's graph
        files[f"source/{card['program']['file']}"] = src / card["program"]["file"]
    if quant_report is not None:
        files["reports/quantization.json"] = json_text(quant_report).encode()

    manifest = Manifest(
        schema_version=schema_for(None), skugen_version=skugen_version, name=name, kind=kind,
        io=io_spec(module, kind, cfg.max_batch),
        preprocess=(Preprocess(layout="RGB", tensor_layout="NCHW", dtype="float32", input_range=(0.0, 1.0),
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) if kind == "enhancer" else
                    Preprocess(z="float32 normal(0,1), seeded", labels="float32 one-hot over class_names")),
        postprocess=Postprocess(
            value_range=vr, clamp=True, to_uint8="round((x - lo) / (hi - lo) * 255)",
            layout="GRAY" if (module.cfg.out_ch if kind == "generator" else module.cfg.in_ch) == 1 else "RGB"),
        tile=_tile(cfg, module) if kind == "enhancer" else None,
        models=models_m,
        golden=Golden("golden/inputs.npz", "golden/outputs.npz", source=g_src, reference="pytorch fp32",
                      n=int(next(iter(g_in.values())).shape[0]), tolerances=tolerances),
        reports=reports, card="card.json",
        source={"name": name, "weights": "source/model.safetensors", "card": "source/card.json",
                "sha256": card.get("weights", {}).get("sha256")},
        quality=jsonable(quality_summary, finite=False),
    )
    from skugen import tune  # engine x precision timings + machine fingerprint -> manifest["tune"] (backend="auto")

    table = tune.table_for_export(manifest, files, budget_s=0.5)
    path = write_bundle(out, {**manifest.to_dict(), "tune": table} if table else manifest, files)
    if cfg.strict_budget and quant_report is not None and quant_report["outcome"].startswith("fp32"):
        raise BudgetError(f"the bundle {path} ships FP32 only (strict budget): {quant_report['message']}")
    return path


OV_REPORT = "reports/quantization.openvino.json"


def _want_openvino(cfg: BundleConfig) -> bool:
    if cfg.openvino is False:
        return False
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        if cfg.openvino:
            raise need_extra("OpenVINO (the OpenVINO INT8 variant, BundleConfig(openvino=True))", "openvino", e) from e
        return False
    return True


def _openvino_variants(cfg: BundleConfig, kind: str, module, fp32: bytes, models_m: dict, files: dict, calib: dict,
                       ev, confirm, clf, g_in: dict, user_data: bool = False):
    """The OpenVINO INT8 IR (models["int8"].variants["openvino"]) and the BF16 record
    (models["fp32"].runtime_precisions.openvino.bf16), both through the quality gate on OpenVINO CPU.

    The enhancer is gated on whole deployment tiles (the bundle's tile size): on the AVX2 machine the ORT
    INT8 loss showed there and hid on 48 px crops. Returns (models, quality summary, OpenVINO INT8 outputs on
    the golden inputs or None when no IR ships). Writes the IR and reports/quantization.openvino.json into `files`.
    """
    from .openvino_quant import (OV_INT8_FILE, OV_INT8_WEIGHTS, OVQuantConfig, bf16_record, manifest_quantization,
                                 ov_runner, quantize_openvino_gated, read_ir)

    if kind == "enhancer" and not user_data:  # the user's gate sets are at the deployment tile already
        scale = int(getattr(module.cfg, "scale", 2))
        hr = _tile(cfg, module).size * scale
        n = cfg.eval_n or cfg.openvino_eval_n
        ev = enhancer_eval_set(n, hr_size=hr, scale=scale)
        confirm = enhancer_eval_set(n, hr_size=hr, seed=8642, scale=scale)
    ocfg = OVQuantConfig(subset_size=cfg.calib_n, preset=cfg.quant.preset,
                         fast_bias_correction=cfg.quant.fast_bias_correction)
    try:
        r = quantize_openvino_gated(fp32, calib, ev, cfg.budget, ocfg, classifier=clf, confirm_set=confirm)
    except ModelError as e:  # a layer the gate cannot name in OpenVINO: the bundle ships without the variant
        if cfg.openvino:
            raise
        warnings.warn(f"no OpenVINO INT8 variant: {e}", UserWarning, stacklevel=3)
        files[OV_REPORT] = json_text({"outcome": "skipped", "reason": str(e)}).encode()
        return models_m, {"int8": {"outcome": "skipped", "reason": str(e)}}, None
    bf16 = bf16_record(fp32, ev, cfg.budget, clf, confirm, ocfg)
    files[OV_REPORT] = json_text({**r.report, "bf16": bf16}).encode()
    fp = models_m["fp32"]
    models_m = {**models_m, "fp32": replace(fp, extra={**fp.extra, "runtime_precisions": {"openvino": {"bf16": bf16}}})}
    summary = {"int8": {"outcome": r.report["outcome"], "kept_float": list(r.kept_float), "budget_ok": r.met_budget,
                        "final": r.report.get("final") and _strip(r.report["final"]), "confirm": r.report.get("confirm"),
                        "eval": r.report["eval"]["source"]},
               "bf16": {"accepted": bf16["accepted"], "native": bf16["native"]}}
    if not r.met_budget:
        return models_m, summary, None
    if "int8" not in models_m:
        summary["int8"]["note"] = ("met the budget but not shipped: the bundle has no ONNX Runtime INT8 "
                                   "(models['int8']) to hold the OpenVINO variant")
        return models_m, summary, None
    files[OV_INT8_FILE], files[OV_INT8_WEIGHTS] = r.xml, r.bin
    v = Variant(OV_INT8_FILE, sha256_bytes(r.xml), bytes=len(r.xml), weights=OV_INT8_WEIGHTS, precision="int8",
                activations="NNCF FakeQuantize on the OpenVINO model (OpenVINO CPU int8 kernels)", use_for=("openvino",),
                quantization=manifest_quantization(r, cfg.calib_n, OV_REPORT))
    q8 = models_m["int8"]
    models_m["int8"] = replace(q8, variants={**q8.variants, "openvino": v})
    out = ov_runner(ocfg.inference_precision, ocfg)(read_ir(r.xml, r.bin), g_in)
    return models_m, summary, {next(iter(_golden_out_names(kind))): out}


def _golden_out_names(kind: str) -> tuple[str, ...]:
    from .onnx_export import IO_NAMES

    return IO_NAMES[kind][1]
def _fp16_variant(cfg: BundleConfig, kind: str, module, res, files: dict, models_m: dict, g_in, g_out,
                  golden_int8: dict | None, span: float, ev, confirm) -> dict:
    """model.fp16.onnx through the FP16 gate (skugen.export.fp16_gate), its manifest entry and golden statistics;
    with INT8, the TensorRT twin rewritten to FP16 (the gate's FP32 nodes kept) and re-measured.
    Adds to `files` and `models_m` in place; returns quality / golden / tolerances / report to merge."""
    from .fp16 import fp16_storage_sim
    from .fp16_gate import METHOD, fp16_gated, run_fp16
    from .qdq import tensorrt_fp16, with_tensorrt_twin
    from .quantize import _classifier_fn, _Judge

    clf, clf_src = _classifier(cfg, kind, module)
    r = fp16_gated(res.onnx_bytes, ev, cfg.budget, classifier=clf, confirm_set=confirm)
    report = {**r.report, "classifier": clf_src}
    vr = DEFAULT_VALUE_RANGE[kind]
    out_name = next(iter(g_out))
    final = r.report.get("final") or {}
    q = {"outcome": r.report["outcome"], "kept_fp32": list(r.kept_fp32), "budget_ok": r.met_budget,
         "psnr_vs_fp32_db": final.get("psnr_vs_fp32_db"), "final": _strip(final) if final else None,
         "all_fp16": _strip(r.report["fp16_all_nodes"]), "confirm": r.report.get("confirm"),
         "method": METHOD["name"], "message": r.message}
    out = {"quality": {"fp16": q}, "golden": {}, "tolerances": {}, "report": report}
    if not r.met_budget:
        return out
    b16 = r.onnx_bytes
    st = compare_outputs(ort_outputs(b16, g_in)[out_name], g_out[out_name], FP16_TOL["atol"], FP16_TOL["rtol"], vr)
    st_sim = compare_outputs(ort_outputs(fp16_storage_sim(b16), g_in)[out_name], g_out[out_name],
                             FP16_TOL["atol"], FP16_TOL["rtol"], vr)
    if not (st["pass"] and st_sim["pass"]):
        raise VerificationError(f"the FP16 ONNX does not reproduce the golden outputs within {FP16_TOL} (ONNX "
                                f"Runtime: {st}; FP16 storage: {st_sim}); the bundle was not written. Export "
                                "without FP16 (BundleConfig(fp16=False)) and report the model.")
    out["golden"] = {"fp16": st, "fp16_storage": st_sim}
    files["model.fp16.onnx"] = b16
    models_m["fp16"] = Variant(
        "model.fp16.onnx", sha256_bytes(b16), bytes=len(b16), precision="fp16", opset=res.opset, params=res.params,
        macs=models_m["fp32"].macs, macs_input=models_m["fp32"].macs_input,
        activations=f"fp16; fp32 inputs/outputs; {len(r.kept_fp32)} node(s) fp32",
        quantization={"tool": "skugen.export.fp16", "format": "FP16 ONNX (casts at FP32 boundaries, FP32 I/O)",
                      "kept_fp32": list(r.kept_fp32), "psnr_vs_fp32_db": q["psnr_vs_fp32_db"],
                      "confirm_psnr_vs_fp32_db": (r.report.get("confirm") or {}).get("psnr_vs_fp32_db"),
                      "method": METHOD["name"], "budget": r.report["budget"], "outcome": r.report["outcome"],
                      "report": "reports/fp16.json"})
    if "int8" in models_m:  # the TensorRT INT8 twin carries FP16 for everything not quantized
        twin = tensorrt_fp16(files["model.int8.trt.onnx"], r.kept_fp32)
        judge = _Judge(kind, res.onnx_bytes, ev, cfg.budget, _classifier_fn(clf) if kind == "generator" else None,
                       run=run_fp16)
        m = judge.measure(twin)
        st_trt = compare_outputs(run_fp16(twin, g_in), g_out[out_name], FP32_TOL["atol"], FP32_TOL["rtol"], vr)
        out["golden"]["int8_tensorrt_flavour"] = st_trt
        out["tolerances"]["int8"] = int8_golden_tolerance(worse_stats(golden_int8, st_trt), span)
        out["quality"]["int8_tensorrt_fp16"] = {**_strip(m), "method": METHOD["name"], "kept_fp32": list(r.kept_fp32)}
        files["model.int8.trt.onnx"] = twin
        models_m["int8"] = with_tensorrt_twin(models_m["int8"], twin, r.kept_fp32)
    return out


def _tile(cfg: BundleConfig, module) -> Tile:
    """Tiling for the runtime: overlap/2 must cover the receptive radius (raised, in steps of 8, when it does not)."""
    r = receptive_radius(module)
    overlap = max(cfg.tile[1], -(-2 * r // 8) * 8)
    if overlap >= cfg.tile[0]:
        raise ModelError(f"receptive radius {r} px needs a tile overlap of {overlap} >= the tile size {cfg.tile[0]}; "
                         "export with a larger tile.")
    return Tile(size=cfg.tile[0], overlap=overlap, units="LR pixels", receptive_radius=r)


def _cpu_latency(onnx_bytes: bytes, kind: str, module, iters: int = 20) -> dict:
    """p50 ms of one ORT CPU call (2 threads) on a typical request: batch 16 latents, or one 128x128 LR tile."""
    import os
    import time

    from skugen.backends.onnxruntime import OnnxRuntimeRunner

    rng = np.random.default_rng(0)
    c = module.cfg
    if kind == "generator":
        feed = {"z": rng.standard_normal((16, c.z_dim)).astype(np.float32),
                "onehot": np.eye(c.n_classes, dtype=np.float32)[np.arange(16) % c.n_classes]}
        what = "batch 16"
    else:
        feed = {"lr": rng.random((1, c.in_ch, 128, 128), dtype=np.float32)}
        what = "one 128x128 LR tile"
    threads = min(2, os.cpu_count() or 1)
    with OnnxRuntimeRunner(onnx_bytes, intra_op_threads=threads) as r:
        for _ in range(3):
            r.infer(feed)
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            r.infer(feed)
            ts.append(time.perf_counter() - t)
    return {"p50_ms": round(float(np.median(ts)) * 1e3, 4), "request": what, "threads": threads,
            "note": "measured at export time on the exporting machine; guides precision='auto' on ONNX Runtime"}


def _strip(m: dict | None) -> dict | None:
    return None if m is None else {k: v for k, v in m.items() if k != "budget"} | {"budget_ok": m["budget"]["ok"]}

