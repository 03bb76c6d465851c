"""Everyday runtime commands: `skugen generate`, `skugen enhance`, `skugen env`.

Argument parsing only; the work is skugen.pipeline's (the CLI prints and saves
the same Report object the API returns).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import InputError

_BACKEND_HELP = "auto (TensorRT when usable, else ONNX Runtime) | onnxruntime | tensorrt"
_PRECISION_HELP = "auto (int8 on ONNX Runtime when the bundle has it, fp16 on TensorRT) | fp32 | fp16 | int8"


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"), help=_BACKEND_HELP)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "int8"), help=_PRECISION_HELP)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for ONNX Runtime (default: all cores)")
    p.add_argument("--report", metavar="JSON", help="also write the call's Report (latency, memory, env) here")
    p.add_argument("--json", action="store_true", help="print the Report as JSON instead of a summary")


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    g = sub.add_parser(
        "generate", help="generate product images from a generator bundle", formatter_class=fmt,
        description="Generate product images. Writes a grid PNG (--out) and/or one PNG per image (--out-dir); "
                    "every PNG carries provenance tEXt (software, bundle sha256, model, seed, class, "
                    "ai_generated=true, creation time).",
        epilog="Examples:\n"
               "  skugen generate runs/demo/bundle --class sneaker --n 16 --seed 0 --out grid.png\n"
               "  skugen generate bundle.tar --class sneaker --class bag --seed 7 --out-dir out/\n"
               "  skugen generate runs/demo/bundle --n 10 --seed 0 --out all_classes.png   # one per class\n")
    g.add_argument("bundle", help="bundle directory or .tar")
    g.add_argument("--class", dest="classes", action="append", metavar="NAME",
                   help="class name or index (repeat, or comma-separate, for several; default: every class in turn)")
    g.add_argument("--n", type=int, default=None, help="number of images (default: one per --class, else 16)")
    g.add_argument("--seed", type=int, default=None, help="latent seed (default: random, printed and recorded)")
    g.add_argument("--out", metavar="PNG", help="grid PNG to write")
    g.add_argument("--out-dir", metavar="DIR", help="directory for one PNG per image")
    g.add_argument("--cols", type=int, default=None, help="grid columns (default: square-ish)")
    _add_runtime_args(g)
    g.set_defaults(func=_cmd_generate)

    e = sub.add_parser(
        "enhance", help="enhance (x2) product photos with an enhancer bundle", formatter_class=fmt,
        description="Enhance photos with an enhancer bundle. Large photos are processed in overlapping tiles "
                    "(bounded memory; the result equals the untiled one), with a progress bar when tqdm is "
                    "installed (SKUGEN_NO_PROGRESS=1 hides it).",
        epilog="Examples:\n"
               "  skugen enhance runs/demo/sr_bundle photo.jpg --out photo_x2.png\n"
               "  skugen enhance sr_bundle.tar a.jpg b.png --out-dir enhanced/\n"
               "  skugen enhance sr_bundle photo.jpg --out big.png --no-tile   # whole image at once\n")
    e.add_argument("bundle", help="bundle directory or .tar")
    e.add_argument("images", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    e.add_argument("--out", metavar="PNG", help="output PNG (one input image only)")
    e.add_argument("--out-dir", metavar="DIR", help="directory for the outputs (several images)")
    e.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: the bundle's)")
    e.add_argument("--no-tile", action="store_true", help="run each image whole (more memory)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_runtime_args(e)
    e.set_defaults(func=_cmd_enhance)

    v = sub.add_parser(
        "env", help="show SKUGEN_* settings and the environment", formatter_class=fmt,
        description="Show every SKUGEN_* setting (value, default, meaning), the machine, library versions "
                    "and which backends are usable here.",
        epilog="Examples:\n  skugen env\n  skugen env --json > env.json\n")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_cmd_env)


def _emit(report, args) -> None:
    if args.report:
        report.save(args.report)
    if args.json:
        print(report.to_json())
    else:
        print(report.summary_text(), file=sys.stderr)


def _cmd_generate(args) -> int:
    from .pipeline import load

    if not args.out and not args.out_dir:
        raise InputError("pass --out GRID.png and/or --out-dir DIR: where should the images go?")
    labels = None
    if args.classes:
        labels = [c.strip() for item in args.classes for c in item.split(",") if c.strip()]
    n = args.n if args.n is not None else (None if labels else 16)
    with load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads) as pipe:
        res = pipe.generate(labels=labels, seed=args.seed, n=n)
        written = []
        if args.out:
            written.append(res.save_grid(args.out, cols=args.cols))
        if args.out_dir:
            written += res.save(args.out_dir)
        rep = res.report
    print(f"generated {len(res)} image(s) of {sorted(set(res.class_names))} with seed {res.seeds[0]}; "
          f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""), file=sys.stderr)
    _emit(rep, args)
    return 0


def _cmd_enhance(args) -> int:
    from .pipeline import load

    if not args.out and not args.out_dir:
        raise InputError("pass --out OUT.png (one image) or --out-dir DIR")
    if args.out and len(args.images) > 1:
        raise InputError(f"--out takes one output but {len(args.images)} images were given; use --out-dir DIR")
    tile = False if args.no_tile else (args.tile if args.tile is not None else True)
    progress = not args.no_progress and sys.stderr.isatty()
    with load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads) as pipe:
        # One image per call keeps peak memory at one photo's output (plus one tile batch).
        written = []
        for path in args.images:
            res = pipe.enhance([path], tile=tile, progress=progress)
            if args.out:
                written.append(_save_one(res, Path(args.out)))
            else:
                written.append(_save_one(res, Path(args.out_dir) / f"{Path(path).stem}_x{pipe.spec.scale}.png"))
        rep = pipe.report()
    for w in written:
        print(f"wrote {w}", file=sys.stderr)
    _emit(rep, args)
    return 0


def _save_one(res, path: Path) -> Path:
    from . import prepost
    from .io import atomic_write_bytes
    from .pipeline import _now

    img = res.images[0]
    return atomic_write_bytes(path, prepost.encode_png(img, {**res.provenance[0], "Creation Time": _now()}))


def _cmd_env(args) -> int:
    from . import config
    from .backends import tensorrt_usable
    from .backends.onnxruntime import available_providers
    from .report import environment

    info = {"settings": config.settings_table(), "environment": environment(),
            "backends": {"onnxruntime": available_providers(), "tensorrt_usable": tensorrt_usable()}}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("SKUGEN_* settings:")
    for s in info["settings"]:
        src = "set" if os.environ.get(s["name"]) not in (None, "") else "default"
        print(f"  {s['name']:22s} = {s['value']!s:30s} ({src})")
        print(f"      {s['doc']}")
    env = info["environment"]
    cpu = env["cpu"]
    print(f"machine: {cpu['model']} ({cpu['usable_cores']}/{cpu['logical_cores']} cores; {', '.join(cpu['flags'])})")
    print(f"  os {env['os']}, python {env['python']}")
    print("  GPUs: " + (", ".join(g["name"] or "?" for g in env["gpus"]) or "none"))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v))
    print(f"backends: onnxruntime providers {info['backends']['onnxruntime']}; "
          f"tensorrt {'usable' if info['backends']['tensorrt_usable'] else 'not usable'}")
    return 0
