"""Quality of each backend x precision, measured on fixed seeds (identical inputs in every cell and every run).

    vs_reference    PSNR/SSIM against the bundle's golden outputs (made by its source
                    PyTorch model): what quantization/conversion cost;
    vs_teacher      PSNR/SSIM against the eager-PyTorch teacher on the same inputs;
    vs_ground_truth (enhancers) PSNR-Y/SSIM-Y against clean GroceryStore test crops;
    class_fidelity, fid_proxy (generators) with the fmnist-classifier:
                    "FID-proxy (fmnist-classifier features)", never Inception FID.
A metric that cannot be computed here carries `skipped` with the reason.

torch is imported only by the classifier-based metrics and the teacher (through
skugen.export / skugen.backends.torch, lazily).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import runner_for
from ..backends.base import Runner
from .. import evaluate
from ..errors import SkugenError, need_extra
from . import cells as _cells
from .cells import _io_dims, _Target, resolve_model_dir
from ..evaluate import FID_NAME
from .config import BenchConfig

# ----------------------------------------------------------------------------- quality inputs and outputs


@dataclass
class _QualityInputs:
    """Fixed inputs shared by every cell of one bundle (so cells and runs compare like for like)."""

    golden_in: dict
    golden_out: np.ndarray
    # generator
    z: np.ndarray | None = None
    labels: np.ndarray | None = None
    # enhancer
    lr_u8: np.ndarray | None = None     # (n, h, w, 3) uint8
    hr_u8: np.ndarray | None = None     # (n, 2h, 2w, 3) uint8 ground truth (None: not available)
    gt_source: str | None = None
    gt_skipped: str | None = None


def _quality_inputs(t: _Target, cfg: BenchConfig) -> _QualityInputs:
    gi, go = t.bundle.golden()
    out_name = t.bundle.spec.output
    q = _QualityInputs(golden_in=gi, golden_out=go.get(out_name, next(iter(go.values()))))
    dims = _io_dims(t)
    if t.kind == "generator":
        ncls = dims["n_classes"]
        n = cfg.quality_n or 500
        per = max(1, -(-n // ncls))
        q.labels = np.repeat(np.arange(ncls), per)                        # (n,) class-major: grids read rows off it
        q.z = np.random.default_rng(cfg.seed + 1234).standard_normal((len(q.labels), dims["z_dim"]),
                                                                     dtype=np.float32)  # (n, z_dim)
        return q
    n = cfg.quality_n or 16
    h, w = t.input_hw
    try:
        from skugen.export import data

        lr, hr = data.sr_eval_set("test", n, hr_size=h * t.scale, seed=1234 + cfg.seed)
        q.lr_u8, q.hr_u8 = lr, hr
        q.gt_source = f"GroceryStore test photos: {len(lr)} centre crops {h * t.scale}px, degraded (sr_eval_set seed {1234 + cfg.seed})"
        return q
    except ImportError as e:
        q.gt_skipped = f"no ground truth: the toolchain (skugen.export.data) is not installed ({e})"
    except SkugenError as e:
        q.gt_skipped = f"no ground truth: GroceryStore test crops unavailable ({e})"
    # Fallback inputs: the bundle's golden LR images (no clean HR for them).
    lr = np.clip(np.rint(np.asarray(gi["lr"], np.float32) * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    q.lr_u8 = np.ascontiguousarray(lr[:n])
    return q


def _run_chunks(runner: Runner, feeds: dict[str, np.ndarray], chunk: int) -> np.ndarray:
    n = len(next(iter(feeds.values())))
    outs = []
    for i in range(0, n, chunk):
        o = runner.infer({k: np.ascontiguousarray(v[i:i + chunk]) for k, v in feeds.items()}, check=False)
        outs.append(next(iter(o.values())))
    return np.concatenate(outs)


def _quality_outputs(runner: Runner, t: _Target, q: _QualityInputs, chunk: int) -> dict:
    """Everything quality needs from one backend x precision: golden outputs and the quality-set images."""
    from skugen.kernels.reference import postprocess

    from .. import prepost

    out: dict = {}
    feeds = {k: np.asarray(v, np.float32) for k, v in q.golden_in.items()}
    out["golden"] = _run_chunks(runner, feeds, chunk)
    if t.kind == "generator":
        oh = prepost.onehot(q.labels, _io_dims(t)["n_classes"])
        x = _run_chunks(runner, {"z": q.z, "onehot": oh}, chunk)         # (n, 1, 32, 32) in [-1, 1]
        out["images"] = postprocess(x, t.bundle.spec.value_range, "GRAY" if x.shape[1] == 1 else "RGB")  # (n, 32, 32, C) uint8
    else:
        proc = prepost.get_processor("cpu")
        lr = prepost.images_to_unit_nchw(list(q.lr_u8), proc)            # (n, 3, h, w) in [0, 1]
        x = _run_chunks(runner, {"lr": lr}, chunk)                        # (n, 3, 2h, 2w)
        out["images"] = postprocess(x, t.bundle.spec.value_range, "RGB")  # (n, 2h, 2w, 3) uint8
    return out

# ----------------------------------------------------------------------------- metrics


def _bench_judge(cfg: BenchConfig, threads: int):
    """(the torch judge, None) or (None, why not): the one place bench builds its classifier.

    Built lazily, only when a generator is measured: an enhancer-only run never imports torch for it.
    """
    try:
        from skugen.export.zoo import load_judge
    except ImportError as e:
        return None, str(need_extra("class fidelity / FID-proxy (needs the fmnist-classifier in torch)", "export", e))
    try:
        d = resolve_model_dir(cfg.classifier) if cfg.classifier else None
        return load_judge(d, batch=256, threads=threads), None
    except SkugenError as e:
        return None, f"no classifier for class fidelity / FID-proxy: {e}"


def _reference_features(judge, n: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return judge.reference_features(n), None
    except (ImportError, SkugenError) as e:
        return None, f"no Fashion-MNIST test set for the FID-proxy reference ({e})"


def _real_vs_real(judge, n: int) -> float | None:
    try:
        return judge.real_vs_real(n)
    except (ImportError, SkugenError):
        return None


def _generator_metrics(images_u8: np.ndarray, labels: np.ndarray, judge, why_not: str | None, n_classes: int) -> dict:
    why = why_not if judge is None else judge.fits(images_u8, n_classes)
    if why:
        return {"class_fidelity": {"skipped": why}, "fid_proxy": {"name": FID_NAME, "skipped": why}}
    feats, pred = judge.outputs(judge.to_model(images_u8))   # what users see (uint8) -> [-1, 1]
    out: dict = {"class_fidelity": {
        **evaluate.class_fidelity(pred, labels, n_classes),
        "classifier": str(judge.dir), "definition": "fraction of generated images the classifier assigns the requested class"}}
    ref, why = _reference_features(judge, len(labels))
    if ref is None:
        out["fid_proxy"] = {"name": FID_NAME, "skipped": why}
    else:
        out["fid_proxy"] = evaluate.fid_proxy_entry(
            feats, ref, reference=f"first {len(labels)} Fashion-MNIST test images",
            note="Frechet distance on the classifier's penultimate features, not Inception FID; "
                 "it depends on n, so compare only reports with the same n")
    return out

# ----------------------------------------------------------------------------- the quality pass


def _run_quality(cfg, threads, targets, runnable, combos, cells, references, samples, prog, notes) -> None:
    runnable_set = set((id(t), be, p) for t, be, p in runnable)
    judge, judge_why = None, "quality disabled"
    judge_built = False
    for t in targets:
        q = _quality_inputs(t, cfg)
        ncls = _io_dims(t).get("n_classes", 0)
        chunk = max(1, min(t.max_batch, 64))
        ref: dict = {"kind": t.kind}
        if t.kind == "enhancer":
            ref["ground_truth"] = q.gt_source or {"skipped": q.gt_skipped}
        references[t.name] = ref
        outs: dict[tuple[str, str], dict] = {}
        for tt, be, prec in combos:
            if tt is not t:
                continue
            if (id(t), be, prec) not in runnable_set:
                prog.step(f"{t.name} {be} {prec} quality n/a")
                continue
            try:
                with _cells._make_runner(t, be, prec, threads) as r:
                    outs[(be, prec)] = _quality_outputs(r, t, q, chunk)
            except SkugenError as e:
                outs[(be, prec)] = {"error": str(e)}
            prog.step(f"{t.name} {be} {prec} quality")

        # The teacher's outputs on the same inputs (also when the torch backend was not selected).
        teacher_out = None
        teacher_why = None
        if t.teacher_dir is None:
            teacher_why = "no --teacher of this family was given"
        elif t.teacher_mismatch:
            teacher_why = t.teacher_mismatch
        elif ("torch", "fp32") in outs and "error" not in outs[("torch", "fp32")]:
            teacher_out = outs[("torch", "fp32")]
        else:
            try:
                with runner_for(t.bundle, "torch", "fp32", threads=threads, model_dir=t.teacher_dir) as r:
                    teacher_out = _quality_outputs(r, t, q, chunk)
            except SkugenError as e:
                teacher_why = f"teacher could not run: {e}"
            except (RuntimeError, KeyError, ValueError) as e:  # e.g. a teacher with another z_dim
                teacher_why = f"teacher does not take this bundle's inputs ({type(e).__name__}: {str(e)[:200]})"

        if t.kind == "generator":
            if not judge_built:
                judge, judge_why = _bench_judge(cfg, threads)
                judge_built = True
            if judge is not None:
                ref["fid_proxy_real_vs_real"] = {
                    "name": FID_NAME, "value": _real_vs_real(judge, len(q.labels)), "n": int(len(q.labels)),
                    "what": "Fashion-MNIST train vs test at the same n: the floor a perfect generator would reach"}
        if t.kind == "enhancer" and q.hr_u8 is not None:
            bic = evaluate.bicubic_upscale(q.lr_u8, t.scale)
            ref["bicubic"] = evaluate.pair_report(bic.astype(np.float64), q.hr_u8.astype(np.float64), t.kind, t.scale,
                                           "ground truth")

        for (be, prec), o in outs.items():
            model = t.torch_model[0] if be == "torch" else "student"
            qd: dict = {}
            if "error" in o:
                qd = {"skipped": o["error"]}
            else:
                vr = t.bundle.spec.value_range
                qd["vs_reference"] = evaluate.pair_report(evaluate.to_255(o["golden"], vr), evaluate.to_255(q.golden_out, vr),
                                                   t.kind, t.scale, "bundle golden outputs (source PyTorch model, fp32)")
                if teacher_out is None:
                    qd["vs_teacher"] = {"skipped": teacher_why}
                elif model == "teacher":
                    qd["vs_teacher"] = {"skipped": "this cell is the teacher"}
                else:
                    qd["vs_teacher"] = evaluate.pair_report(o["images"].astype(np.float64),
                                                     teacher_out["images"].astype(np.float64), t.kind, t.scale,
                                                     "eager-PyTorch teacher on the same inputs (uint8 outputs)")
                if t.kind == "enhancer":
                    if q.hr_u8 is None:
                        qd["vs_ground_truth"] = {"skipped": q.gt_skipped}
                    else:
                        qd["vs_ground_truth"] = evaluate.pair_report(o["images"].astype(np.float64),
                                                              q.hr_u8.astype(np.float64), t.kind, t.scale,
                                                              "clean GroceryStore test crops")
                else:
                    qd.update(_generator_metrics(o["images"], q.labels, judge, judge_why, ncls))
            for c in cells:
                if c["bundle"] == t.name and c["backend"] == be and c["precision"] == prec and c["status"] == "ok":
                    c["quality"] = qd
                    c["quality_note"] = "measured once per backend x precision (outputs do not depend on batch)"
        samples[t.name] = _collect_samples(t, q, outs, teacher_out, cfg)


def _collect_samples(t: _Target, q: _QualityInputs, outs: dict, teacher_out: dict | None, cfg: BenchConfig) -> dict:
    """uint8 images for the HTML report: same seeds / crops in every column."""
    k = cfg.sample_k
    cols: dict[str, np.ndarray] = {}

    def student_cols():
        seen = set()
        for prec in ("fp32", "fp16", "int8"):
            for be in cfg.backends:
                if be == "torch" or (be, prec) not in outs or "error" in outs[(be, prec)] or prec in seen:
                    continue
                seen.add(prec)
                yield f"student {prec} ({be})", outs[(be, prec)]["images"]

    if t.kind == "generator":
        ncls = _io_dims(t)["n_classes"]
        per = len(q.labels) // ncls

        def grid(images):  # (n, H, W, C) class-major -> (classes, k, H, W, C)
            return np.stack([images[c * per:c * per + min(k, per)] for c in range(ncls)])

        if teacher_out is not None:
            cols["teacher (torch fp32)"] = grid(teacher_out["images"])
        elif ("torch", "fp32") in outs and "error" not in outs[("torch", "fp32")]:
            cols["source (torch fp32)"] = grid(outs[("torch", "fp32")]["images"])
        for label, im in student_cols():
            cols[label] = grid(im)
        names = t.bundle.class_names or [str(c) for c in range(ncls)]
        return {"kind": "generator", "rows": list(names[:ncls]), "columns": cols,
                "seeds": f"latents from default_rng({cfg.seed + 1234}); the same z per column"}
    lr = q.lr_u8[:k]
    cols["input (nearest x%d)" % t.scale] = lr.repeat(t.scale, axis=1).repeat(t.scale, axis=2)
    cols["bicubic"] = evaluate.bicubic_upscale(lr, t.scale)
    if teacher_out is not None:
        cols["teacher (torch fp32)"] = teacher_out["images"][:k]
    for label, im in student_cols():
        cols[label] = im[:k]
    if q.hr_u8 is not None:
        cols["ground truth"] = q.hr_u8[:k]
    return {"kind": "enhancer", "rows": [f"crop {i}" for i in range(len(lr))], "columns": cols,
            "source": q.gt_source or "bundle golden inputs (no ground truth)"}
