"""Runtime commands (numpy + onnxruntime; never torch): generate, enhance, env, info, verify, tune, build,
deploy, engines, export-triton.

Argument parsing and printing only; the work is the library's (the CLI prints and saves
the same objects the API returns). Library modules are imported inside each function so
that `skugen --help` and `skugen generate` load nothing they do not use.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import InputError
from ._common import add_bundle, add_json, add_runtime_args, add_threads, add_trust, command, integer, number

# ----------------------------------------------------------------------------- generate / enhance / env


def add_generate(sub) -> None:
    g = command(
        sub, "generate", "generate product images from a generator bundle", func=_generate, examples="""\
skugen generate runs/demo/bundle --class sneaker --n 16 --seed 0 --out grid.png
skugen generate bundle.tar --class sneaker --class bag --seed 7 --out-dir out/
skugen generate runs/demo/bundle --n 10 --seed 0 --out all_classes.png   # one per class
skugen generate runs/diffusion/bundle --prompt "white sneakers" --prompt "a black handbag" --seed 0 --out g.png
""",
        description="Generate product images. Writes a grid PNG (--out) and/or one PNG per image (--out-dir); "
                    "every PNG carries provenance tEXt (software, bundle sha256, model, seed, class, "
                    "ai_generated=true, creation time).")
    add_bundle(g)
    g.add_argument("--class", dest="classes", action="append", metavar="NAME",
                   help="class name or index (repeat, or comma-separate, for several; default: every class in turn)")
    g.add_argument("--prompt", dest="prompts", action="append", metavar="TEXT",
                   help="diffusion bundles: a text prompt (repeat for several; one image each)")
    g.add_argument("--steps", type=int, default=None, help="diffusion bundles: sampling steps (default: the bundle's)")
    g.add_argument("--guidance", type=float, default=None,
                   help="diffusion bundles: classifier-free guidance scale (default: the bundle's)")
    g.add_argument("--n", type=int, default=None, help="number of images (default: one per --class, else 16)")
    g.add_argument("--seed", type=int, default=None, help="latent seed (default: random, printed and recorded)")
    g.add_argument("--out", metavar="PNG", help="grid PNG to write")
    g.add_argument("--out-dir", metavar="DIR", help="directory for one PNG per image")
    g.add_argument("--cols", type=integer(1), default=None, help="grid columns (default: square-ish)")
    add_runtime_args(g)


def add_enhance(sub) -> None:
    e = command(
        sub, "enhance", "enhance (x2) product photos with an enhancer bundle", func=_enhance, examples="""\
skugen enhance runs/demo/sr_bundle photo.jpg --out photo_x2.png
skugen enhance sr_bundle.tar a.jpg b.png --out-dir enhanced/
skugen enhance sr_bundle photo.jpg --out big.png --no-tile   # whole image at once
""",
        description="Enhance photos with an enhancer bundle. Large photos are processed in overlapping tiles "
                    "(bounded memory; the result equals the untiled one), with a progress bar when tqdm is "
                    "installed (SKUGEN_NO_PROGRESS=1 hides it).")
    add_bundle(e)
    e.add_argument("images", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    e.add_argument("--out", metavar="PNG", help="output PNG (one input image only)")
    e.add_argument("--out-dir", metavar="DIR", help="directory for the outputs (several images)")
    e.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: the bundle's)")
    e.add_argument("--no-tile", action="store_true", help="run each image whole (more memory)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_runtime_args(e)


def add_env(sub) -> None:
    v = command(sub, "env", "show SKUGEN_* settings and the environment", func=_env, examples="""\
skugen env
skugen env --json > env.json
""",
                description="Show every SKUGEN_* setting (value, default, meaning), the machine, library versions "
                            "and which backends are usable here.")
    add_json(v)


def _check_outputs(files=(), dirs=()) -> None:
    """Refuse, before any work, output paths the command could not write: so it never writes some outputs and
    then fails on the next (a grid written, then a traceback on --report)."""
    def writable_ancestor(p: Path) -> None:
        a = p
        while not a.exists():
            a = a.parent
        if not a.is_dir():
            raise InputError(f"cannot write {p}: {a} is a file, not a directory. Choose another path.")
        if not os.access(a, os.W_OK | os.X_OK):
            raise InputError(f"cannot write {p}: no write permission in {a}. Choose another path.")

    for f in filter(None, files):
        f = Path(f)
        if f.is_dir():
            raise InputError(f"{f} is a directory; pass a file path (e.g. {f / 'out.png'}).")
        writable_ancestor(f.parent)
    for d in filter(None, dirs):
        d = Path(d)
        if d.exists() and not d.is_dir():
            raise InputError(f"--out-dir {d} is a file; pass a directory (created if missing).")
        writable_ancestor(d)


def _emit(report, args) -> None:
    if args.report:
        report.save(args.report)
    if args.json:
        print(report.to_json())
    else:
        print(report.summary_text(), file=sys.stderr)


def _generate(args) -> int:
    from ..loader import load

    if not args.out and not args.out_dir:
        raise InputError("pass --out GRID.png and/or --out-dir DIR: where should the images go?")
    _check_outputs(files=(args.out, args.report), dirs=(args.out_dir,))
    labels = None
    if args.classes:
        labels = [c.strip() for item in args.classes for c in item.split(",") if c.strip()]
    n = args.n if args.n is not None else (None if labels else 16)
    with load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
              trusted_keys=args.trusted_key) as pipe:
        if pipe.spec.kind == "diffusion":
            if labels or args.n is not None or not args.prompts:
                raise InputError(f"{pipe.bundle.name!r} is a text-to-image bundle: describe each image with "
                                 "--prompt TEXT (repeatable) instead of --class / --n.")
            res = pipe.generate(prompts=args.prompts, steps=args.steps, guidance=args.guidance, seed=args.seed)
        else:
            if args.prompts or args.steps is not None or args.guidance is not None:
                raise InputError(f"{pipe.bundle.name!r} is a class-conditional generator: choose classes with "
                                 "--class NAME; --prompt / --steps / --guidance are for diffusion bundles.")
            res = pipe.generate(labels=labels, seed=args.seed, n=n)
        written = []
        if args.out:
            written.append(res.save_grid(args.out, cols=args.cols))
        if args.out_dir:
            written += res.save(args.out_dir)
        rep = res.report
    what = f"prompts {res.prompts}" if res.prompts is not None else sorted(set(res.class_names))
    print(f"generated {len(res)} image(s) of {what} with seed {res.seeds[0]}; "
          f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""), file=sys.stderr)
    _emit(rep, args)
    return 0


def _enhance(args) -> int:
    from ..loader import load

    if not args.out and not args.out_dir:
        raise InputError("pass --out OUT.png (one image) or --out-dir DIR")
    if args.out and len(args.images) > 1:
        raise InputError(f"--out takes one output but {len(args.images)} images were given; use --out-dir DIR")
    _check_outputs(files=(args.out, args.report), dirs=(args.out_dir,))
    from ..prepost import check_image_file

    stems: dict[str, str] = {}
    for path in args.images:  # every input is readable before the first output is written
        check_image_file(path, read_header=True)
        if Path(path).stem in stems:
            raise InputError(f"{stems[Path(path).stem]} and {path} would both be written as "
                             f"{Path(path).stem}_xN.png in --out-dir; rename one, or enhance them in two runs.")
        stems[Path(path).stem] = path
    tile = False if args.no_tile else (args.tile if args.tile is not None else True)
    progress = not args.no_progress and sys.stderr.isatty()
    with load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
              trusted_keys=args.trusted_key) as pipe:
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
    from .. import prepost
    from ..io import atomic_write_bytes
    from ..result import _now

    img = res.images[0]
    return atomic_write_bytes(path, prepost.encode_png(img, {**res.provenance[0], "Creation Time": _now()}))


def _env(args) -> int:
    from .. import config
    from ..backends import tensorrt as trt_backend
    from ..backends.onnxruntime import available_providers
    from ..report import environment

    trt_status = trt_backend.status()
    info = {"settings": config.settings_table(), "environment": environment(),
            "backends": {"onnxruntime": available_providers(), "tensorrt_usable": trt_status["usable"],
                         "tensorrt": trt_status}}
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
          f"tensorrt {'usable' if trt_status['usable'] else 'not usable'}")
    found = trt_status["found"]
    print(f"  TensorRT: {found or 'not installed'}" + (f" ({'in' if trt_status['in_range'] else 'OUTSIDE'} the supported "
          f"range {trt_status['supported']})" if found else "") + (f"; {trt_status['reason']}" if trt_status["reason"] else ""))
    return 0

# ----------------------------------------------------------------------------- info / verify


def add_info(sub) -> None:
    p = command(sub, "info", "show a bundle's manifest summary (verifies every sha256)", examples="""\
skugen info runs/demo/bundle
skugen info bundle.tar --json
""", func=_info)
    add_bundle(p, None)
    add_trust(p)
    add_json(p)


def _info(args) -> int:
    from ..bundle import load_bundle, summary

    b = load_bundle(args.bundle, trusted_keys=args.trusted_key)
    s = summary(b)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['name']}  ({s['kind']}, schema {s['schema_version']}, skugen {s['skugen_version']})  verified: all sha256 OK")
    print(f"  path: {s['path']}")
    for io_ in ("inputs", "outputs"):
        for t in s[io_]:
            print(f"  {io_[:-1]:6s} {t['name']:8s} {t['dtype']:8s} {t['shape']}")
    for k, v in s["models"].items():
        print(f"  model  {k:5s} {v['file']}  {v.get('bytes', 0) / 1e6:.2f} MB  sha256 {v['sha256'][:12]}")
    if s["class_names"]:
        print(f"  classes: {', '.join(s['class_names'])}")
    if s["engines"]:
        print(f"  engines: {', '.join(s['engines'])}")
    print(f"  signature: {b.signature.describe()}")
    return 0


def add_verify(sub) -> None:
    from ..verify import BACKENDS, PRECISIONS

    p = command(
        sub, "verify", "run a bundle's golden inputs through a backend and compare", func=_verify, examples="""\
skugen verify runs/demo/bundle
skugen verify runs/demo/bundle --precision int8 --json
skugen verify bundle.tar --backend tensorrt --precision fp16
""",
        description="Check a bundle (every sha256) and that a backend reproduces its golden outputs within the "
                    "manifest's tolerances. Exit status 1 on mismatch.")
    add_bundle(p)
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    add_trust(p)
    add_json(p, "print the report as JSON")


def _verify(args) -> int:
    import json

    from ..bundle import load_bundle
    from ..verify import verify_graphs

    reps = verify_graphs(load_bundle(args.bundle, trusted_keys=args.trusted_key), backend=args.backend,
                         precision=args.precision)
    if args.json:  # one graph: the report; a multi-graph bundle: one report per graph, the bundle's own first
        print(reps[0].to_json() if len(reps) == 1 else json.dumps([r.to_dict() for r in reps], indent=2))
    else:
        print("\n".join(line for r in reps for line in r.lines()))
    for r in reps:
        r.raise_if_failed()
    return 0

# ----------------------------------------------------------------------------- tune


def add_tune(sub) -> None:
    p = command(sub, "tune", "measure the CPU engines x precisions here; auto uses the result", func=_tune, examples="""\
skugen tune runs/demo/bundle
skugen tune runs/demo/bundle --threads 2 --json
skugen tune /opt/app/bundle      # read-only bundle: the table goes to $SKUGEN_CACHE_DIR/tune/
""",
                description="Time every installed CPU engine (OpenVINO, ONNX Runtime) at every precision the "
                            "bundle's gate accepted, at the bundle's deployment shape, and store the table with "
                            "this machine's fingerprint beside the bundle (engines/tune.json, not hashed: the "
                            "sha256s stay valid). backend/precision 'auto' then load the fastest cell.")
    add_bundle(p)
    add_threads(p, "CPU threads to measure with (default: SKUGEN_NUM_THREADS, else all cores)")
    p.add_argument("--budget", type=number(above=0.0), default=2.0, metavar="S", help="seconds of timed calls per cell")
    p.add_argument("--no-save", action="store_true", help="measure and print only")
    add_json(p, "print the table as JSON")


def _tune(args) -> int:
    from .. import tune
    from ..bundle import load_bundle

    from ..selection import check_threads

    check_threads(args.threads)  # --budget: checked by its argparse type
    b = load_bundle(args.bundle)
    table = tune.measure(b, threads=args.threads, budget_s=args.budget)
    path = None if args.no_save else tune.save_sidecar(b, table)
    if args.json:
        print(json.dumps({**table, "saved_to": str(path) if path else None}, indent=2))
        return 0
    fp = table["fingerprint"]
    print(f"[skugen] {b.name}: {table['request']} on {fp['cpu_model']} ({fp['cores']} cores; "
          f"{', '.join(fp['isa_flags']) or 'no SIMD flags read'})")
    best = tune.fastest(table)
    for c in table["cells"]:
        mark = "  <- fastest" if c is best else ""
        val = f"{c['p50_ms']:9.3f} ms" if c["status"] == "ok" else f"{c['status']}: {c.get('reason')}"
        print(f"  {c['engine']:12s} {c['precision']:5s} {val}{mark}")
    if path:
        print(f"[skugen] saved {path}")
    return 0

# ----------------------------------------------------------------------------- build (TensorRT)


def add_build(sub) -> None:
    from ..backends.tensorrt import plan as tp

    p = command(
        sub, "build", "build TensorRT engines for this GPU from a bundle", func=_build, examples="""\
skugen build runs/demo/bundle --precision fp16
skugen build runs/demo/bundle --precision fp16 int8 --max-batch 64
skugen build runs/sr/bundle --precision int8 --opt-hw 128 --max-hw 256 --force
""",
        description="Build TensorRT 10 engines from a bundle's ONNX for THIS GPU and store them under "
                    "BUNDLE/engines/<gpu>-sm<cc>-trt<version>-<precision>/ (engine.plan + engine.json).")
    add_bundle(p)
    p.add_argument("--backend", default="tensorrt", choices=["tensorrt"], help="engine backend (only tensorrt)")
    p.add_argument("--precision", nargs="+", default=["fp16"], choices=tp.PRECISIONS, help="one or more precisions")
    d = tp.BuildConfig()
    p.add_argument("--min-batch", type=int, default=d.min_batch)
    p.add_argument("--opt-batch", type=int, default=d.opt_batch, help="batch the kernels are tuned for")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="larger batches are run in chunks")
    p.add_argument("--min-hw", type=int, default=None, help="enhancer: smallest input side (default min(8, tile))")
    p.add_argument("--opt-hw", type=int, default=None, help="enhancer: tuned input side (default manifest tile size)")
    p.add_argument("--max-hw", type=int, default=None, help="enhancer: largest input side (default tile size)")
    p.add_argument("--workspace-mb", type=int, default=d.workspace_mb, help="builder scratch memory cap (MiB)")
    p.add_argument("--opt-level", type=int, default=None, help="builder optimisation level 0..5 (default 3)")
    p.add_argument("--no-timing-cache", action="store_true", help="do not reuse/persist the tactic timing cache")
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal")
    p.add_argument("--force", action="store_true", help="rebuild even if an up-to-date engine exists")
    add_json(p, "print the engine records as JSON")


def _build(args) -> int:
    from ..backends import tensorrt as trt_backend
    from ..bundle import load_bundle

    trt_backend._require(args.device)  # before verifying the bundle: say at once what is missing
    b = load_bundle(args.bundle)
    cfg = trt_backend.BuildConfig(
        min_batch=args.min_batch, opt_batch=args.opt_batch, max_batch=args.max_batch, min_hw=args.min_hw,
        opt_hw=args.opt_hw, max_hw=args.max_hw, workspace_mb=args.workspace_mb, force=args.force,
        optimization_level=args.opt_level,
        timing_cache=not args.no_timing_cache, device=args.device)
    # every graph of a multi-graph bundle (a diffusion text encoder too), each at the precision the runtime runs
    records = [trt_backend.engine_from_onnx(g, p, cfg) for prec in dict.fromkeys(args.precision)
               for g, p in b.graphs_at(prec)]
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    for r in records:
        m = r.metadata
        counts = ", ".join(f"{k} {v}" for k, v in (m.get("precision_counts") or {}).get("compute", {}).items())
        what = f"built in {m.get('build_seconds', 0):.1f} s" if r.built else "up to date"
        print(f"{r.key}: {what} ({m.get('quantization')}) -> {r.plan_path}")
        print("  profile: " + "; ".join(f"{n} {v['min']}..{v['max']} (opt {v['opt']})"
                                        for n, v in (m.get("profile") or {}).items()))
        if counts:
            print(f"  layers by precision: {counts}")
    return 0

# ----------------------------------------------------------------------------- deploy / engines

_DEPLOY_TARGETS = """\
Targets:
  jetson-orin     AGX Orin / Orin NX / Orin Nano, JetPack 6.1+ (sm_87, TensorRT 10)
  jetson-xavier   AGX Xavier / Xavier NX, JetPack 5.1 (sm_72; onnxruntime only, see docs/jetson.md)
  x86-gpu         x86-64 Linux + any NVIDIA GPU (TensorRT 10 from pip when missing)

"""


def add_deploy(sub) -> None:
    from ..deploy import TARGETS

    p = command(sub, "deploy", "package a bundle for Jetson / x86-gpu", func=_deploy, examples="""\
skugen deploy runs/demo/bundle --target jetson-orin --out cgan-orin.tar.gz
skugen deploy bundle.tar --target x86-gpu --out pkg.tgz --json
# on the device:
tar xzf cgan-orin.tar.gz && cd skugen-*-jetson-orin && ./install.sh
""", before=_DEPLOY_TARGETS,
                description="Verify a bundle, then write a self-contained .tar.gz for one target: the bundle "
                            "(no engines), the runtime (no torch), requirements, install.sh (device checks, "
                            "engine build + verify on the device) and a README.")
    add_bundle(p)
    p.add_argument("--target", required=True, metavar="TARGET", help=f"one of: {', '.join(TARGETS)}")
    p.add_argument("--out", default=None, help="package file (.tar.gz); default skugen-NAME-TARGET.tar.gz")
    p.add_argument("--no-verify", action="store_true", help="package without running `skugen verify` first")
    add_trust(p)
    add_json(p, "print the package summary as JSON")


def _deploy(args) -> int:
    from ..bundle import load_bundle
    from ..deploy import deploy, engine_precisions, get_target, package_name
    from ..io import sha256_file

    t = get_target(args.target)  # fail on a bad target before touching the bundle
    b = load_bundle(args.bundle, trusted_keys=args.trusted_key)
    path = deploy(b, t.name, args.out, verify=not args.no_verify, trusted_keys=args.trusted_key)
    s = {"package": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path), "target": t.name,
         "bundle": b.name, "engine_precisions": engine_precisions(b), "verified": not args.no_verify}
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{path}  ({s['bytes'] / 1e6:.2f} MB, sha256 {s['sha256'][:16]}...)")
        print(f"  bundle {b.name} ({b.kind}) for {t.title}; verified on this host: {'yes' if s['verified'] else 'NO'}")
        print(f"  signature: {b.signature.describe()}"
              + (f"; install.sh trusts {len(args.trusted_key)} pinned key(s)" if args.trusted_key else ""))
        print(f"  on the device: tar xzf {path.name} && cd {package_name(b, t.name)} && ./install.sh")
    return 0


def add_engines(sub) -> None:
    p = command(
        sub, "engines", "list a bundle's TensorRT engines, mark one verified (install.sh runs this)", examples="""\
skugen engines status bundle
skugen engines mark-verified bundle --precision fp16 --log logs/verify-tensorrt-fp16.log
""",
        description="The device-side engine helpers: list the engines built in a bundle and whether `skugen verify` "
                    "passed on each; mark the newest engine of a precision verified (only after it did).")
    sp = p.add_subparsers(dest="engines_cmd", required=True)
    m = sp.add_parser("mark-verified",
                      help="mark the newest engine of a precision verified (only after skugen verify passed)")
    add_bundle(m, None)
    m.add_argument("--precision", required=True, choices=("fp32", "fp16", "int8"))  # = tensorrt.plan.PRECISIONS
    m.add_argument("--log", default=None, help="file with the `skugen verify` output to keep in verified.json")
    m.set_defaults(func=_engines_mark)
    s = sp.add_parser("status", help="list the bundle's engines and whether each is verified")
    add_bundle(s, None)
    s.set_defaults(func=_engines_status)


def _engines_mark(args) -> int:
    from ..deploy import mark_engine_verified

    log = Path(args.log).read_text(errors="replace")[-20000:] if args.log else None
    print(f"[skugen] marked verified: {mark_engine_verified(args.bundle, args.precision, log)}")
    return 0


def _engines_status(args) -> int:
    from ..backends.tensorrt import store

    rows = store.list_engines(args.bundle)
    for e in rows:
        state = "VERIFIED" if e.verified else "not verified"
        where = "" if e.in_bundle else f" (read-only bundle: in {e.dir.parent})"
        print(f"[skugen] engine {e.key}: {e.precision}, {state}{where}")
    if not rows:
        print("[skugen] no TensorRT engines built (onnxruntime only)")
    return 0

# ----------------------------------------------------------------------------- export-triton

_TRITON_EXAMPLES = """\
skugen export-triton runs/demo/bundle --out triton_repo
skugen export-triton bundle --out repo --max-batch 32 --preferred-batch 8,32 --max-queue-delay-us 200
skugen export-triton bundle --out repo --precision int8 --cpu-instances 2 --ort-threads 1
tritonserver --model-repository=$PWD/triton_repo
perf_analyzer -m NAME --input-data zero -b 8 --concurrency-range 1:8   # see docs/triton.md
"""


def _batch_list(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 8,16, got {s!r}") from None


def add_export_triton(sub) -> None:
    from ..triton import PLAN_MODES

    p = command(sub, "export-triton", "write a Triton Inference Server model repository", func=_export_triton,
                examples=_TRITON_EXAMPLES,
                description="Write a Triton model repository: an onnxruntime model (KIND_CPU), a tensorrt_plan "
                            "model per built engine precision (KIND_GPU), numpy Python-backend pre/post steps "
                            "and ensembles wiring pre -> model -> post.")
    add_bundle(p)
    p.add_argument("--out", required=True, help="repository directory to write (replaced atomically)")
    p.add_argument("--name", default=None, help="model name prefix (default: the bundle name)")
    p.add_argument("--precision", default="fp32", help="ONNX for the onnxruntime model: fp32 (default) or int8")
    p.add_argument("--max-batch", type=int, default=None, help="max_batch_size (default: the manifest's io.max_batch)")
    p.add_argument("--preferred-batch", type=_batch_list, default=None, metavar="N,M",
                   help="dynamic_batching preferred_batch_size (default: the two largest powers of 2 <= max batch)")
    p.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic batching queue delay (default 100)")
    p.add_argument("--cpu-instances", type=int, default=1, help="KIND_CPU instances per CPU model (default 1)")
    p.add_argument("--gpu-instances", type=int, default=1, help="KIND_GPU instances per plan model (default 1)")
    p.add_argument("--ort-threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    p.add_argument("--plans", choices=PLAN_MODES, default="all",
                   help="which built TensorRT engines to add: all (default), verified (install.sh-verified), none")
    add_trust(p)
    add_json(p, "print skugen_triton.json")


def _export_triton(args) -> int:
    from ..triton import TritonConfig, export_triton

    cfg = TritonConfig(name=args.name, precision=args.precision, max_batch=args.max_batch,
                       preferred_batch_sizes=args.preferred_batch, max_queue_delay_us=args.max_queue_delay_us,
                       cpu_instances=args.cpu_instances, gpu_instances=args.gpu_instances,
                       ort_threads=args.ort_threads, plans=args.plans)
    from ..bundle import load_bundle

    repo = export_triton(load_bundle(args.bundle, trusted_keys=args.trusted_key), args.out, cfg)
    s = json.loads((repo / "skugen_triton.json").read_text())
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{repo}: {len(s['models'])} models for bundle {s['bundle']['name']} ({s['bundle']['kind']})")
    for ep, what in s["entry_points"].items():
        print(f"  entry {ep:31s} {what}")
    if not s["plans"]:
        print("  no TensorRT plans (no engines built in the bundle; "
              "`skugen build BUNDLE` on the serving GPU adds them)")
    print(f"  serve: tritonserver --model-repository={repo.resolve()}")
    return 0
