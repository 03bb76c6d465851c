"""`skugen` console script: argument parsing and printing only, no logic.

The only package of skugen that imports argparse. One module per command group:

    runtime.py    generate, enhance, env, info, verify, tune, build, deploy, engines, export-triton
    toolchain.py  data, train, eval, zoo, import, compress, distill, export, pipeline
    bench.py      bench
    trust.py      keygen, sign (bundle signatures; the policy is --trusted-key / SKUGEN_TRUSTED_KEYS)
    kernels.py    kernels emulate | compile-check (developer checks; hidden from --help)
    _common.py    what every add_<name> shares: command() (parser + Examples: epilog), add_bundle, add_json, ...

Each command (one table, COMMANDS) is an `add_<name>(subparsers)` function that adds its parser, with a
`func(args) -> int` that calls the library (config dataclass in, value out) and
prints the result. Only the module of the command being run is imported, and its
library modules only when the parser is built, so runtime-only installs (no torch)
still get every runtime command, and toolchain commands say which extra to install.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str  # the module (skugen.cli.<module>) with the command's `add_<name>(subparsers)`
    help: str  # its line in `skugen --help`
    hidden: bool = False  # developer commands: parsed like the others, not listed by `skugen --help`

    def adder(self, name: str) -> tuple[str, str]:
        """(module, function) that add the parser of command `name`."""
        return f"skugen.cli.{self.module}", "add_" + name.replace("-", "_")


_T, _R = "toolchain", "runtime"
# Every command. Order is the --help order.
COMMANDS: dict[str, Command] = {
    "data": Command(_T, "check the product datasets (Fashion-MNIST, GroceryStore)"),
    "train": Command(_T, "train a zoo teacher from scratch (resumable)"),
    "eval": Command(_T, "re-compute a zoo model's metrics from its weights"),
    "zoo": Command(_T, "list the shipped models"),
    "import": Command(_T, "import your own PyTorch model (factory/TorchScript/ExportedProgram)"),
    "compress": Command(_T, "prune + distill a teacher into a student"),
    "distill": Command(_T, "distil a pruned student from its teacher (resumable; DDP under torchrun)"),
    "export": Command(_T, "export a model to ONNX (+INT8) and write a bundle"),
    "pipeline": Command(_T, "the main job: teacher -> student -> bundle -> verify -> bench -> report"),
    "verify": Command(_R, "run a bundle's golden inputs through a backend and compare"),
    "tune": Command(_R, "measure the CPU engines x precisions here; backend/precision auto use it"),
    "build": Command(_R, "build TensorRT engines for this GPU from a bundle"),
    "info": Command(_R, "show a bundle's manifest summary"),
    "generate": Command(_R, "generate product images from a generator bundle"),
    "enhance": Command(_R, "enhance (x2) product photos with an enhancer bundle"),
    "bench": Command("bench", "benchmark bundles over backend x precision x batch"),
    "deploy": Command(_R, "package a bundle for Jetson / x86-gpu"),
    "engines": Command(_R, "list a bundle's TensorRT engines, mark one verified (install.sh runs this)"),
    "export-triton": Command(_R, "write a Triton Inference Server model repository"),
    "keygen": Command("trust", "make a key pair for signing bundles"),
    "sign": Command("trust", "sign a bundle (who made it; devices check it with --trusted-key)"),
    "env": Command(_R, "show SKUGEN_* settings and the environment"),
    "kernels": Command("kernels", "CUDA kernel checks without a GPU: host emulation, nvcc", hidden=True),
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
    if only in COMMANDS:  # `skugen --help` imports nothing heavy
        mod, fn = COMMANDS[only].adder(only)
        try:
            getattr(importlib.import_module(mod), fn)(sub)
        except ImportError as e:  # toolchain not installed (or optional extra missing)
            sp = sub.add_parser(only, help=COMMANDS[only].help)
            sp.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            sp.set_defaults(func=_missing(only, mod, e))
    # Placeholders keep `skugen --help` complete without importing every module.
    for name, c in COMMANDS.items():
        if name not in sub.choices and not c.hidden:
            sub.add_parser(name, help=c.help, add_help=False)
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
    except BrokenPipeError:  # `skugen env | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # so the interpreter's final flush does not raise again
        return 0
    except OSError as e:  # a path the OS refuses (missing folder, a directory where a file goes, no permission, ...)
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
        print(f"skugen {args.command}: error: {e.strerror or e}{': ' + where if where else ''}. Check the path "
              "(it must be a writable file path for outputs, an existing file for inputs) and run again.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
