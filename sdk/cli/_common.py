"""What every `add_<name>` of the CLI shares: the parser of one command, with its "Examples:" epilog,
and the arguments several commands take (bundle, --json, --threads, the runtime options).
argparse only; imports nothing of skugen.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

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


def integer(lo: int) -> "Callable[[str], int]":
    """argparse type: an integer >= lo (argparse reports "argument --x: must be an integer >= lo, got ...")."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {s!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {v}")
        return v
    return parse


def number(lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> "Callable[[str], float]":
    """argparse type: a finite float in [lo, hi] (or > above). NaN compares false with everything, so an unchecked
    NaN threshold or weight passes every gate and check downstream."""
    want = " and ".join(w for w in (f">= {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else "",
                                    f"> {above:g}" if above is not None else "") if w)
    want = f"a finite number{' ' + want if want else ''}"

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {want}, got {s!r}") from None
        if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi) or (
                above is not None and v <= above):
            raise argparse.ArgumentTypeError(f"must be {want}, got {s}")
        return v
    return parse


def integers(lo: int) -> "Callable[[str], tuple[int, ...]]":
    """argparse type: a comma list of integers >= lo, e.g. --batch 1,16."""
    one = integer(lo)

    def parse(s: str) -> tuple[int, ...]:
        vals = tuple(one(x.strip()) for x in s.split(",") if x.strip())
        if not vals:
            raise argparse.ArgumentTypeError(f"must be a comma list of integers >= {lo}, got {s!r}")
        return vals
    return parse


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
    p.add_argument("--threads", type=integer(1), default=None, help=help)  # leave it out for all cores; 0 is refused


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that loads a bundle into a pipeline (generate, enhance)."""
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "openvino", "tensorrt"), help=_BACKEND_HELP)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16", "int8"), help=_PRECISION_HELP)
    add_threads(p, "CPU threads for ONNX Runtime / OpenVINO (default: all cores)")
    add_trust(p)
    p.add_argument("--report", metavar="JSON", help="also write the call's Report (latency, memory, env) here")
    add_json(p, "print the Report as JSON instead of a summary")
