"""`skugen` console script: argument parsing only, no logic.

Each sub-command lives in the module that owns its logic and exposes
`register(subparsers)`, which adds a parser whose `func(args) -> int` is run.
Modules are imported lazily per command so that runtime-only installs
(no torch) still get every runtime command, and toolchain commands explain
which extra to install.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help). Order is the --help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("skugen.export.data", "check the product datasets (Fashion-MNIST, GroceryStore)"),
    "train": ("skugen.export.train", "train a zoo teacher from scratch (resumable)"),
    "eval": ("skugen.export.zoo", "re-compute a zoo model's metrics from its weights"),
    "zoo": ("skugen.export.zoo", "list the shipped models"),
    "import": ("skugen.export.custom", "import your own PyTorch model (factory/TorchScript/ExportedProgram)"),
    "compress": ("skugen.export.compress", "prune + distill a teacher into a student"),
    "export": ("skugen.export.bundle", "export a model to ONNX (+INT8) and write a bundle"),
    "pipeline": ("skugen.export.pipeline", "the main job: teacher -> student -> bundle -> verify -> bench -> report"),
    "verify": ("skugen.verify", "run a bundle's golden inputs through a backend and compare"),
    "build": ("skugen.backends.tensorrt", "build TensorRT engines for this GPU from a bundle"),
    "info": ("skugen.bundle", "show a bundle's manifest summary"),
    "generate": ("skugen.commands", "generate product images from a generator bundle"),
    "enhance": ("skugen.commands", "enhance (x2) product photos with an enhancer bundle"),
    "bench": ("skugen.bench", "benchmark bundles over backend x precision x batch"),
    "deploy": ("skugen.deploy", "package a bundle for Jetson / x86-gpu"),
    "export-triton": ("skugen.triton", "write a Triton Inference Server model repository"),
    "env": ("skugen.commands", "show SKUGEN_* settings and the environment"),
}

TOOLCHAIN_MODULES = ("skugen.export",)


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
    wanted = [only] if only is not None else []  # `skugen --help` imports nothing heavy
    done: set[str] = set()
    for name in wanted:
        mod, help_ = COMMANDS[name]
        if mod in done:
            continue
        done.add(mod)
        try:
            m = importlib.import_module(mod)
        except ImportError as e:  # toolchain not installed (or optional extra missing)
            for n2, (mod2, h2) in COMMANDS.items():
                if mod2 == mod and n2 not in sub.choices:
                    sp = sub.add_parser(n2, help=h2)
                    sp.set_defaults(func=_missing(n2, mod, e))
            continue
        m.register(sub)
    # Placeholders keep `skugen --help` complete without importing every module.
    for name, (mod, help_) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_, add_help=False)
    return p


def _missing(name: str, mod: str, exc: Exception):
    def run(args) -> int:
        from .errors import need_extra

        extra = "export" if mod.startswith(TOOLCHAIN_MODULES) else "tensorrt"
        raise need_extra(f"`skugen {name}` (module {mod})", extra, exc)

    return run


def invocation() -> str | None:
    """The `skugen ...` command line of this process (for model cards), or None when not run as the CLI."""
    return "skugen " + " ".join(sys.argv[1:]) if sys.argv and "skugen" in sys.argv[0] else None


def main(argv: list[str] | None = None) -> int:
    from .errors import SkugenError

    argv = list(sys.argv[1:] if argv is None else argv)
    # Only import the module of the command being run (fast start, no torch for runtime commands).
    cmd = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=cmd if cmd in COMMANDS else None)
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


if __name__ == "__main__":
    sys.exit(main())
