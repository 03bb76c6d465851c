"""What every `add_<name>` of the CLI shares: the parser of one command, with its "Examples:" epilog,
and the arguments several commands take (bundle, --json, --threads, the runtime options).
argparse only; imports nothing of skugen.
"""
from __future__ import annotations

import argparse

FMT = argparse.RawDescriptionHelpFormatter
BUNDLE_HELP = "bundle directory or .tar"
_BACKEND_HELP = ("auto (TensorRT when usable, else the measured fastest of OpenVINO / ONNX Runtime: `skugen tune`) | "
                 "onnxruntime | openvino | tensorrt")
_PRECISION_HELP = ("auto (the fastest measured precision the bundle's gate accepted; fp16 on TensorRT) | fp32 | fp16 | "
                   "bf16 (OpenVINO, native-BF16 CPUs) | int8")


class DefaultsFormatter(FMT):
    """Raw description/epilog, and every option's default appended to its help when it has one to show."""

    def _get_help_string(self, action):
        h = action.help or ""
        if (not action.option_strings or any(action.default is v for v in (None, False, argparse.SUPPRESS))
                or "default" in h):  # `is`: 0 == False, and a default of 0 is worth showing
            return h
        return f"{h} (default: %(default)s)" if h else "(default: %(default)s)"


def epilog(examples: str, *, before: str = "", after: str = "") -> str:
    """`before`, then "Examples:" with each line of `examples` indented, then `after`."""
    return before + "Examples:\n" + "".join(f"  {e}\n" for e in examples.strip("\n").splitlines()) + after


def command(sub, name: str, help: str | None = None, description: str | None = None, *,
            examples: str = "", before: str = "", after: str = "", func=None,
            formatter_class: type[argparse.HelpFormatter] = FMT) -> argparse.ArgumentParser:
    """Add the parser of command `name` to `sub`: raw description, an "Examples:" epilog of `examples`
    (one command line per line; a line continued with a backslash goes on the next), and `func` runs it."""
    kw = {"help": help} if help is not None else {}
    p = sub.add_parser(name, formatter_class=formatter_class, description=description,
                       epilog=epilog(examples, before=before, after=after) if examples else None, **kw)
    if func is not None:
        p.set_defaults(func=func)
    return p


def add_bundle(p: argparse.ArgumentParser, help: str | None = BUNDLE_HELP) -> None:
    p.add_argument("bundle", help=help)


def add_trust(p: argparse.ArgumentParser) -> None:
    """--trusted-key: the bundle trust policy of this command (skugen.signing)."""
    p.add_argument("--trusted-key", action="append", default=None, metavar="KEY",
                   help="trust only bundles signed by this key: a public key file (NAME.pub.pem), a directory of "
                        "them, or a key id; repeatable (key rotation). Default: SKUGEN_TRUSTED_KEYS when set. With a "
                        "policy, unsigned, forged and foreign-signed bundles are refused.")


def add_json(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_threads(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--threads", type=int, default=None, help=help)


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that loads a bundle into a pipeline (generate, enhance)."""
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "openvino", "tensorrt"), help=_BACKEND_HELP)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16", "int8"), help=_PRECISION_HELP)
    add_threads(p, "CPU threads for ONNX Runtime / OpenVINO (default: all cores)")
    add_trust(p)
    p.add_argument("--report", metavar="JSON", help="also write the call's Report (latency, memory, env) here")
    add_json(p, "print the Report as JSON instead of a summary")
