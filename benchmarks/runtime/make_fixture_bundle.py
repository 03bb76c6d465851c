#!/usr/bin/env python3
"""Build the fixture-sized bundles the runtime benchmarks run on before the real students exist.

    python benchmarks/runtime/make_fixture_bundle.py --out /tmp/skugen-bench

Writes OUT/cgan (test-cgan: the small random-init generator of tests/conftest.py, fp32 + int8)
and, when GroceryStoreDataset is present, OUT/sr (test-sr). Needs the toolchain (skugen[export]).
The lead re-runs overhead.py / memory.py on the real student bundles instead.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _conftest():
    # tests/conftest.py holds the fixture model recipes (make_cgan / make_sr); reuse, don't copy.
    spec = importlib.util.spec_from_file_location("skugen_tests_conftest", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    from skugen.export import ckpt
    from skugen.export.bundle import export_bundle

    c = _conftest()
    md = ckpt.save_model(c.make_cgan(), args.out / "models" / "test-cgan", card={"name": "test-cgan", "kind": "generator"})
    print(export_bundle(md, args.out / "cgan", c._fixture_cfg("generator")))
    if c.grocery_available():
        md = ckpt.save_model(c.make_sr(), args.out / "models" / "test-sr", card={"name": "test-sr", "kind": "enhancer"})
        print(export_bundle(md, args.out / "sr", c._fixture_cfg("enhancer")))
    else:
        print("GroceryStoreDataset not found: no enhancer bundle", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
