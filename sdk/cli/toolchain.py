"""Toolchain commands (`pip install 'skugen[export]'`): data, train, eval, zoo, import, compress, distill,
export, pipeline.

Argument parsing and printing only: each command builds the stage's config and calls the
stage function of skugen.export. Each `add_*` imports its toolchain module when the parser
is built, so on a runtime-only install the command reports the missing extra instead.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..report import invocation
from ._common import DefaultsFormatter, add_json, add_threads, command, integer, integers, number

# ----------------------------------------------------------------------------- data / train / zoo / eval


def add_data(sub) -> None:
    from ..export.data import DATASET_ALIASES

    p = command(sub, "data", "check the product datasets",
                "Locate and verify the datasets skugen trains and evaluates on.", examples="""\
skugen data check
skugen data check --require fmnist
skugen data check --json --data-dir ~/fmnist
""")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    c = dsub.add_parser("check", help="find both datasets, count splits, verify checksums")
    add_json(c, "print JSON")
    c.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (overrides SKUGEN_FMNIST_DIR)")
    c.add_argument("--require", action="append", default=[], choices=sorted(DATASET_ALIASES),
                   help="fail (exit 1) unless this dataset is usable; repeatable. Without it: exit 0 if any is")
    c.set_defaults(func=_data_check)


def _data_check(args) -> int:
    from ..export.data import check_data

    rep = check_data(args.require, args.data_dir)
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep.format())
    return 0 if rep.ok else 1


def add_train(sub) -> None:
    from ..export.train import TRAINERS

    p = command(sub, "train", "train a zoo teacher (resumable, seeded)", func=_train, examples="""\
skugen train fmnist-classifier --out runs/cls
skugen train fmnist-cgan --steps 4000 --seed 0 --out runs/cgan   # re-run resumes
""",
                description="Train one of the zoo teachers from scratch on real data.")
    p.add_argument("name", choices=list(TRAINERS))
    p.add_argument("--steps", type=integer(1), default=None, help="optimizer steps (default: the shipped recipe)")
    p.add_argument("--out", default=None, help="output model directory (default runs/NAME)")
    p.add_argument("--seed", type=integer(0), default=0)
    p.add_argument("--batch", type=integer(1), default=None)
    add_threads(p, "torch threads")
    p.add_argument("--amp", choices=["fp32", "bf16"], default=None,
                   help="mixed precision (default: bf16 autocast for grocery-sr2x, fp32 otherwise)")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")


def _train(args) -> int:
    from ..export.train import train

    path = train(args.name, args.out, args.steps, args.seed, args.batch, args.threads, not args.no_eval,
                 invocation(), amp=args.amp)
    print(path)
    return 0


def add_zoo(sub) -> None:
    from ..export import zoo  # noqa: F401

    z = command(sub, "zoo", "list the shipped models", examples="""\
skugen zoo list
skugen zoo list --json
""")
    zs = z.add_subparsers(dest="zoo_cmd", required=True)
    zl = zs.add_parser("list")
    add_json(zl)
    zl.set_defaults(func=_zoo_list)


def _zoo_list(args) -> int:
    from ..export.zoo import model_table

    rows = model_table()
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:24s} {r['kind']:10s} params={r['params']:>9,} MACs={r['macs']:>13,}")
    return 0


def add_eval(sub) -> None:
    from ..export import zoo  # noqa: F401

    e = command(sub, "eval", "re-compute a model's metrics from its weights", examples="""\
skugen eval fmnist-cgan --json
skugen eval runs/my-student --quick
""", func=_eval)
    e.add_argument("name", help="zoo name or model directory")
    add_json(e)
    e.add_argument("--quick", action="store_true", help="smaller evaluation sets (smoke checks)")


def _eval(args) -> int:
    from ..export.zoo import evaluate_named

    out = evaluate_named(args.name, args.quick)
    print(json.dumps(out, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in out["metrics"].items()))
    return 0

# ----------------------------------------------------------------------------- import


def add_import(sub) -> None:
    from ..export import custom

    p = command(
        sub, "import", "import your own PyTorch model (factory, TorchScript, ExportedProgram) with an I/O spec",
        custom.__doc__, examples="""\
skugen import my_pkg.nets:make_upscaler --io-spec io.json --weights up.safetensors --out runs/up
skugen import nets.py:make_gen --io-spec gen_io.json --out runs/gen
skugen import upscaler.pt2 --io-spec io.json --out runs/up-ep       # torch.export.save
skugen import upscaler.ts --io-spec io.json --out runs/up-ts        # torch.jit.save
skugen pipeline --model runs/up --out runs/up-deploy
""", func=_import)
    p.add_argument("ref", help="package.module:function, file.py:function, a .pt2 or a TorchScript file")
    p.add_argument("--io-spec", required=True, help="JSON I/O spec (kind, shapes, ranges; see docs/custom_models.md)")
    p.add_argument("--weights", default=None, help="safetensors state dict for a factory's module")
    p.add_argument("--data", default=None,
                   help="your data: an HR image folder, DIR with lr/ and hr/ pairs, an .npz of model inputs, or "
                        "module:function (docs/custom_models.md, 'Your data'); default: skugen's data")
    p.add_argument("--degradation", choices=("bicubic", "skugen-realistic"), default=None,
                   help="how LR is made from an --data image folder (default: bicubic)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--name", default=None,
                   help="model name (default: the spec's `name`, else the --out folder's); bundles, Jetson "
                        "packages, Triton models and reports are named after it")


def _import(args) -> int:
    from ..export.custom import import_model

    from ..export.userdata import for_import

    out = import_model(args.ref, args.io_spec, args.out, args.weights, args.name,
                       data=for_import(args.io_spec, args.data, args.degradation))
    card = json.loads((out / "card.json").read_text())
    print(f"{out}: {card['kind']} ({card['config']['format']}), {card['params']:,} params, {card['macs']:,} MACs "
          f"per {card['macs_input']}")
    return 0

# ----------------------------------------------------------------------------- compress / distill


def add_compress(sub) -> None:
    from ..export import prune
    from ..export.compress import PRESET_NAMES

    p = command(
        sub, "compress", "prune + distill a teacher into a student (resumable, seeded)", func=_compress, examples="""\
skugen compress fmnist-cgan --target-macs 0.25 --preset fast --out runs/cgan-st
skugen compress grocery-sr2x --target-macs 0.25 --preset full --out runs/sr-st --seed 0
skugen compress runs/my-cgan --prune-ratio 0.5 --distill-steps 500 --out runs/my-st
torchrun --standalone --nproc_per_node 2 -m skugen.cli compress fmnist-cgan --preset full --out runs/st
""",
        formatter_class=DefaultsFormatter,
        description="Compress a zoo model or model directory: sensitivity-guided structured pruning to a MACs "
                    "target (channels physically removed, widths multiples of 8), then distillation from the "
                    "teacher. Writes a model directory with a card comparing teacher and student.",
        after="Re-running the same command resumes (sensitivity reused, distillation from its checkpoint).")
    p.add_argument("model", help="zoo name (skugen zoo list) or model directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-macs", type=float, default=None, metavar="F",
                   help="student MACs as a fraction of the teacher's (default 0.25); per-layer ratios from sensitivity")
    g.add_argument("--prune-ratio", type=float, default=None, metavar="R",
                   help="remove this fraction of channels from every layer instead (0 < R < 1)")
    p.add_argument("--distill-steps", type=int, default=None, metavar="N", help="default: the preset's; 0 = prune only")
    p.add_argument("--out", default=None, help="output model directory (default runs/compress-MODEL)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="fast",
                   help="fast: ~5 min demo; full: the shipped recipe (~35 min per model on 2 cores)")
    p.add_argument("--importance", choices=prune.IMPORTANCES, default="l1", help="channel importance for pruning")
    p.add_argument("--w-adv", type=number(0.0), default=None, metavar="W",
                   help="cGAN: weight of the adversarial distillation term (default 0: off)")
    p.add_argument("--seed", type=int, default=0, help="seed for pruning and distillation")
    add_threads(p, "torch threads (default: all cores)")
    p.add_argument("--quick-eval", action="store_true", default=None,
                   help="small evaluation sets (default: the preset's)")
    add_json(p, "print the student's card as JSON")


def compress_config(args):
    """The CompressConfig of parsed `skugen compress` arguments (the MACs target is 0.25 unless given)."""
    from ..export.compress import CompressConfig

    target = args.target_macs if args.target_macs is not None or args.prune_ratio is not None else 0.25
    return CompressConfig(out=args.out, preset=args.preset, target_macs_frac=target, prune_ratio=args.prune_ratio,
                          distill_steps=args.distill_steps, w_adv=args.w_adv, importance=args.importance,
                          seed=args.seed, quick_eval=args.quick_eval, threads=args.threads, command=invocation())


def _compress(args) -> int:
    from ..export.compress import compress

    res = compress(args.model, compress_config(args))
    if not res.card:  # not rank 0 under torchrun
        return 0
    c = res.card
    if args.json:
        print(json.dumps(c, indent=2))
        return 0
    if c.get("kind") == "diffusion":
        print(f"student: {res.out}\n  denoiser MACs per call {c['macs_teacher_denoiser_step']:,} -> "
              f"{c['macs_denoiser_step']:,} ({c['macs_ratio_per_call']:.1%}); per step with the teacher's CFG "
              f"{c['macs_ratio_per_step']:.1%}; {c['sampler']['steps']} steps, guidance {c['sampler']['distilled_guidance']:g} "
              f"distilled in")
        for k in ("class_fidelity", "fid_proxy"):
            print(f"  {k:15s} teacher {(c.get('metrics_teacher') or {}).get(k, float('nan')):.4f}  student "
                  f"{(c.get('metrics') or {}).get(k, float('nan')):.4f}")
        return 0
    if isinstance(res.prune, dict):  # the uniform strategy (a user's model): quality is measured against the teacher
        print(f"student: {res.out}\n  MACs {c['macs_teacher']:,} -> {c['macs']:,} ({c['macs_ratio']:.1%})\n"
              f"  PSNR vs teacher output {c['metrics']['psnr_vs_teacher_db']:.2f} dB ({c['metrics']['inputs']})")
        return 0
    print(f"student: {res.out}")
    print(f"  MACs   {c['macs_teacher']:>13,} -> {c['macs']:>13,}  ({c['macs_ratio']:.1%})")
    print(f"  params {c['params_teacher']:>13,} -> {c['params']:>13,}  ({c['params_ratio']:.1%})")
    keys = ("fid_proxy", "class_fidelity") if c["prune"]["student_config"]["family"] == "cgan" else ("psnr_y", "ssim_y")
    for k in keys:
        mt, ms = c["metrics_teacher"].get(k), c["metrics"].get(k)
        if mt is not None and ms is not None:
            print(f"  {k:15s} teacher {mt:.4f}  student {ms:.4f}")
    if "skipped" in c["metrics"]:
        print(f"  metrics skipped: {c['metrics']['skipped']}")
    print(f"  wall time {c['wall_time_s']:.0f} s ({', '.join(f'{k}={v}' for k, v in c['timings_s'].items())})")
    return 0


def add_distill(sub) -> None:
    from ..export.distill import DistillConfig

    p = command(
        sub, "distill", "distil a pruned student from its teacher (resumable; DDP under torchrun)",
        "Distil a pruned student model directory from its teacher (resumable; DDP under torchrun).", examples="""\
skugen distill --teacher fmnist-cgan --student runs/pruned --out runs/st
torchrun --standalone --nproc_per_node 2 -m skugen.cli distill \\
    --teacher grocery-sr2x --student runs/sr-pruned --out runs/sr-st --steps 3000
""", func=_distill)
    p.add_argument("--teacher", required=True, help="zoo name or model directory")
    p.add_argument("--student", required=True, help="model directory of the pruned student (initial weights)")
    p.add_argument("--out", required=True, help="output directory: ckpt.* (resume), model + card, distill.json")
    d = DistillConfig()
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=integer(1), default=None, help="global batch over all ranks")
    p.add_argument("--lr", type=number(above=0.0), default=None)
    p.add_argument("--hr-size", type=int, default=d.hr_size)
    p.add_argument("--w-pixel", type=number(0.0), default=d.w_pixel)
    p.add_argument("--w-feat", type=number(0.0), default=None)
    p.add_argument("--w-percep", type=number(0.0), default=d.w_percep)
    p.add_argument("--w-adv", type=number(0.0), default=d.w_adv)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ckpt-every", type=integer(1), default=d.ckpt_every)
    p.add_argument("--bn-recal-batches", type=integer(0), default=d.bn_recal_batches)
    add_threads(p)


def _distill(args) -> int:
    from ..export.distill import DistillConfig, distill_dirs, param_digest

    cfg = DistillConfig(steps=args.steps, batch=args.batch, lr=args.lr, hr_size=args.hr_size, w_pixel=args.w_pixel,
                        w_feat=args.w_feat, w_percep=args.w_percep, w_adv=args.w_adv, seed=args.seed,
                        ckpt_every=args.ckpt_every, bn_recal_batches=args.bn_recal_batches, threads=args.threads)
    res = distill_dirs(args.teacher, args.student, args.out, cfg, command=invocation())
    # one write() per line: with PYTHONUNBUFFERED, print() would emit text and newline separately
    # and the ranks' lines could interleave on the shared stdout
    sys.stdout.write(f"[distill rank {res.rank}/{res.world_size}] steps {res.start_step}->{res.steps} "
                     f"digest {param_digest(res.student)[:16]}\n")
    sys.stdout.flush()
    return 0

# ----------------------------------------------------------------------------- export / pipeline


def add_export(sub) -> None:
    from ..export.evalsets import ENHANCER_EVAL_N

    p = command(
        sub, "export", "export a model to ONNX (+INT8) and write a verified bundle", func=_export, examples="""\
skugen export fmnist-cgan --out runs/demo/bundle
skugen export fmnist-cgan --out runs/demo/bundle --int8 --min-psnr-db 30 --budget-fidelity-pts 1.0
skugen export grocery-sr2x --out runs/sr/bundle --int8 --budget-db 0.1 --calib 128 --tar
skugen export runs/my-student --out b --int8 --tool ort --calibrate-method percentile
""",
        description="Export a trained generator/enhancer to a bundle: FP32 ONNX checked against PyTorch, golden "
                    "inputs/outputs, reports, source weights; with --int8 a quality-gated INT8 Q/DQ model.")
    p.add_argument("model", help="zoo name (skugen zoo list) or a model directory (card.json + model.safetensors)")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument("--int8", action="store_true", help="add a quality-gated INT8 (explicit Q/DQ) model")
    p.add_argument("--budget-db", type=number(0.0), default=0.1, help="enhancer: max PSNR-Y drop vs FP32 (dB, default 0.1)")
    p.add_argument("--min-psnr-db", type=number(), default=30.0,
                   help="generator: min PSNR of INT8 vs FP32 images (dB, default 30)")
    p.add_argument("--budget-fidelity-pts", type=number(0.0), default=1.0,
                   help="generator: max class-fidelity drop in points (needs the zoo classifier; default 1.0)")
    p.add_argument("--max-float-fraction", type=number(0.0, 1.0), default=0.5,
                   help="give up on INT8 if more than this fraction of layers must stay float (default 0.5)")
    p.add_argument("--calib", type=integer(1), default=128, help="calibration samples (default 128)")
    p.add_argument("--eval-n", type=integer(1), default=None,
                   help=f"held-out samples the quality gate measures (default 500 latents / {ENHANCER_EVAL_N} photo crops)")
    p.add_argument("--tool", choices=["auto", "nncf", "ort"], default="auto",
                   help="calibrator (default auto: NNCF; ORT entropy, then percentile, only if the budget is missed)")
    p.add_argument("--calibrate-method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="ORT calibrator range method (only with --tool ort)")
    p.add_argument("--classifier", default="auto", help="classifier for class fidelity ('auto', a zoo name/dir, 'none')")
    p.add_argument("--strict-budget", action="store_true", help="exit non-zero when INT8 misses the budget")
    p.add_argument("--no-fp16", action="store_true",
                   help="skip the gated FP16 graph (model.fp16.onnx; written with --int8 by default)")
    p.add_argument("--no-openvino", action="store_true",
                   help="skip the OpenVINO INT8 IR and BF16 record (written with --int8 when openvino is installed)")
    p.add_argument("--tar", action="store_true", help="also pack the bundle into OUT.tar")
    p.add_argument("--sign-key", default=None, metavar="KEY",
                   help="sign the bundle with this private key (NAME.key.pem from skugen keygen) before packing")
    add_json(p, "print the bundle summary as JSON")


def _export(args) -> int:
    from ..bundle import load_bundle, summary, to_tar
    from ..export.bundle import BundleConfig, export_bundle
    from ..export.quantize import QualityBudget, QuantConfig
    from ..bundle import sign_bundle
    from ..signing import check_private_key

    if args.sign_key:
        check_private_key(args.sign_key)  # before minutes of export, not after

    cfg = BundleConfig(
        int8=args.int8, calib_n=args.calib, eval_n=args.eval_n,
        budget=QualityBudget(min_psnr_db=args.min_psnr_db, max_fidelity_drop_pts=args.budget_fidelity_pts,
                             max_psnr_drop_db=args.budget_db, max_float_fraction=args.max_float_fraction),
        quant=QuantConfig(tool=args.tool, calibrate_method=args.calibrate_method),
        classifier=None if args.classifier.lower() == "none" else args.classifier, strict_budget=args.strict_budget,
        fp16=False if args.no_fp16 else None, openvino=False if args.no_openvino else None)
    path = export_bundle(args.model, args.out, cfg)
    if args.sign_key:
        sign_bundle(path, args.sign_key)
    b = load_bundle(path, trusted_keys=False)
    s = summary(b)
    qrep = b.report("quantization")
    tar = to_tar(path, Path(str(path).rstrip("/") + ".tar")) if args.tar else None
    if args.json:
        print(json.dumps({**s, "quantization": qrep and {k: qrep.get(k) for k in ("outcome", "message", "budget_check",
                                                                                   "confirm")},
                          "tar": str(tar) if tar else None}, indent=2))
        return 0
    print(f"wrote {path}  ({s['kind']}, models: {', '.join(s['models'])})")
    for k, v in s["models"].items():
        size = "".join(f"  {label} {v[key]:,}" for label, key in (("params", "params"), ("MACs", "macs")) if key in v)
        print(f"  {k:5s} {v['file']:18s} {v['bytes'] / 1e6:7.2f} MB{size}")
    print(f"  parity vs PyTorch: max |err| {b.spec.quality['fp32']['parity_max_abs']:.2e}")
    if qrep:
        print(f"  int8: {qrep['message']}")
        if qrep.get("confirm"):
            c = qrep["confirm"]
            shown = ", ".join(f"{k} {v:.4g}" for k, v in c.items()
                              if k.endswith(("_db", "_pts", "_pct")) and isinstance(v, float))
            print(f"  int8 on a second held-out draw ({c['source']}): {shown or 'no metrics'}")
    if tar:
        print(f"  tar: {tar}")
    return 0


def add_pipeline(sub) -> None:
    from ..export import pipeline

    p = command(
        sub, "pipeline", "the main job: teacher -> student -> bundle -> verify -> bench -> report",
        pipeline.__doc__, examples="""\
skugen pipeline --model fmnist-cgan --out runs/demo --preset fast
skugen pipeline --model grocery-sr2x --out runs/sr --preset full --budget-db 0.1
skugen pipeline --model path/to/model_dir --out runs/mine   # re-run resumes
skugen pipeline --model nets.py:make_upscaler --io-spec io.json --weights w.safetensors --out runs/up
""",
        func=_pipeline, formatter_class=DefaultsFormatter)
    p.add_argument("--model", required=True,
                   help="zoo name (fmnist-cgan, grocery-sr2x), a model directory, or your own model: "
                        "pkg.module:factory, file.py:factory, a .pt2 (torch.export) or TorchScript file (needs --io-spec)")
    p.add_argument("--io-spec", default=None, help="JSON I/O spec for your own model (docs/custom_models.md)")
    p.add_argument("--weights", default=None, help="safetensors weights for a factory model")
    p.add_argument("--data", default=None,
                   help="your data: an HR image folder, DIR with lr/ and hr/ pairs, an .npz of model inputs, or "
                        "module:function (docs/custom_models.md, 'Your data'); default: skugen's data")
    p.add_argument("--degradation", choices=("bicubic", "skugen-realistic"), default=None,
                   help="how LR is made from an --data image folder (default: bicubic)")
    p.add_argument("--name", default=None,
                   help="name of the model: the bundle, Jetson package, Triton models and reports are NAME-student "
                        "(default: the I/O spec's `name`, else the teacher card's)")
    p.add_argument("--out", required=True, help="run directory (stages, student, bundle, reports; re-run resumes)")
    p.add_argument("--preset", choices=pipeline.PRESETS, default="fast",
                   help="fast: the demo (minutes; FP32 + gated INT8 only); full: the shipped students (also the gated "
                        "FP16 graph and the OpenVINO INT8 IR)")
    p.add_argument("--target-macs", type=float, default=0.25, help="student MACs / teacher MACs")
    p.add_argument("--budget-db", type=number(0.0), default=0.1, help="INT8 PSNR-Y budget (enhancer)")
    p.add_argument("--budget-fidelity-pts", type=number(0.0), default=1.0, help="INT8 class-fidelity budget (generator)")
    p.add_argument("--batch", type=integers(1), default=(1, 16), help="bench batch sizes, e.g. 1,16")
    p.add_argument("--iters", type=integer(1), default=30, help="bench iterations per cell")
    add_threads(p, "torch/ORT threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed of every stage")
    p.add_argument("--skip-bench", action="store_true", help="skip the benchmark stage")
    p.add_argument("--distill-steps", type=int, default=None, help="override the preset's distillation steps")
    p.add_argument("--calib", type=integer(1), default=128, help="INT8 calibration samples")


def _pipeline(args) -> int:
    from ..export.pipeline import PipelineConfig, format_summary, run_pipeline

    cfg = PipelineConfig(model=args.model, out=args.out, preset=args.preset, target_macs=args.target_macs,
                         budget_db=args.budget_db, budget_fidelity_pts=args.budget_fidelity_pts, seed=args.seed,
                         bench_batches=args.batch, bench_iters=args.iters,
                         threads=args.threads, skip_bench=args.skip_bench, distill_steps=args.distill_steps,
                         calib_n=args.calib, io_spec=args.io_spec, weights=args.weights, data=args.data,
                         degradation=args.degradation, name=args.name)
    report = run_pipeline(cfg)
    print(format_summary(report))
    return 0
