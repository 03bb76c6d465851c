"""`skugen` console script: argument parsing and printing only, no logic.

The only package of skugen that imports argparse. One module per command group:

    runtime.py    generate, enhance, env, info, verify, build, deploy, engines, export-triton
    toolchain.py  data, train, eval, zoo, import, compress, distill, export, pipeline
    kernels.py    kernels emulate | compile-check (developer checks; hidden from --help)

Each command is an `add_<name>(subparsers)` function that adds its parser, with a
`func(args) -> int` that calls the library (config dataclass in, value out) and
prints the result. Only the module of the command being run is imported, and its
library modules only when the parser is built, so runtime-only installs (no torch)
still get every runtime command, and toolchain commands say which extra to install.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, function that adds its parser, one-line help). Order is the --help order.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("skugen.cli.toolchain", "add_data", "check the product datasets (Fashion-MNIST, GroceryStore)"),
    "train": ("skugen.cli.toolchain", "add_train", "train a zoo teacher from scratch (resumable)"),
    "eval": ("skugen.cli.toolchain", "add_eval", "re-compute a zoo model's metrics from its weights"),
    "zoo": ("skugen.cli.toolchain", "add_zoo", "list the shipped models"),
    "import": ("skugen.cli.toolchain", "add_import",
               "import your own PyTorch model (factory/TorchScript/ExportedProgram)"),
    "compress": ("skugen.cli.toolchain", "add_compress", "prune + distill a teacher into a student"),
    "distill": ("skugen.cli.toolchain", "add_distill",
                "distil a pruned student from its teacher (resumable; DDP under torchrun)"),
    "export": ("skugen.cli.toolchain", "add_export", "export a model to ONNX (+INT8) and write a bundle"),
    "pipeline": ("skugen.cli.toolchain", "add_pipeline",
                 "the main job: teacher -> student -> bundle -> verify -> bench -> report"),
    "verify": ("skugen.cli.runtime", "add_verify", "run a bundle's golden inputs through a backend and compare"),
    "build": ("skugen.cli.runtime", "add_build", "build TensorRT engines for this GPU from a bundle"),
    "info": ("skugen.cli.runtime", "add_info", "show a bundle's manifest summary"),
    "generate": ("skugen.cli.runtime", "add_generate", "generate product images from a generator bundle"),
    "enhance": ("skugen.cli.runtime", "add_enhance", "enhance (x2) product photos with an enhancer bundle"),
    "bench": ("skugen.cli.bench", "add_bench", "benchmark bundles over backend x precision x batch"),
    "deploy": ("skugen.cli.runtime", "add_deploy", "package a bundle for Jetson / x86-gpu"),
    "engines": ("skugen.cli.runtime", "add_engines",
                "list a bundle's TensorRT engines, mark one verified (install.sh runs this)"),
    "export-triton": ("skugen.cli.runtime", "add_export_triton", "write a Triton Inference Server model repository"),
    "env": ("skugen.cli.runtime", "add_env", "show SKUGEN_* settings and the environment"),
}
# Developer commands: parsed like the others, not listed by `skugen --help`.
HIDDEN: dict[str, tuple[str, str, str]] = {
    "kernels": ("skugen.cli.kernels", "add_kernels", "CUDA kernel checks without a GPU: host emulation, nvcc"),
}
# A command whose parser cannot be built for lack of these modules needs the `export` extra.
TOOLCHAIN_MODULES = ("skugen.cli.toolchain", "skugen.export")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skugen",
        description="skugen: compress, export, verify, run and benchmark product-image generators on the edge.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  skugen data check --json\n  skugen pipeline --model fmnist-cgan --out runs/demo --preset fast\n"
               "  skugen generate BUNDLE --class sneaker --n 16 --seed 0 --out grid.png\n",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    table = {**COMMANDS, **HIDDEN}
    if only is not None and only in table:  # `skugen --help` imports nothing heavy
        mod, fn, help_ = table[only]
        try:
            getattr(importlib.import_module(mod), fn)(sub)
        except ImportError as e:  # toolchain not installed (or optional extra missing)
            sp = sub.add_parser(only, help=help_)
            sp.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            sp.set_defaults(func=_missing(only, mod, e))
    # Placeholders keep `skugen --help` complete without importing every module.
    for name, (_, _, help_) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_, add_help=False)
    return p


def _missing(name: str, mod: str, exc: ImportError):
    def run(args) -> int:
        from ..errors import need_extra

        failed = exc.name or mod
        extra = "export" if mod.startswith(TOOLCHAIN_MODULES) or failed.startswith("skugen.export") else "tensorrt"
        raise need_extra(f"`skugen {name}` (module {failed})", extra, exc)

    return run


def main(argv: list[str] | None = None) -> int:
    from ..errors import SkugenError

    argv = list(sys.argv[1:] if argv is None else argv)
    # Only import the module of the command being run (fast start, no torch for runtime commands).
    cmd = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=cmd)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if cmd is None else 2
    try:
        rc = args.func(args)
    except SkugenError as e:
        print(f"skugen {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
