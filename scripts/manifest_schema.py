#!/usr/bin/env python3
"""Regenerate sdk/manifest.schema.json from the dataclasses in skugen.manifest.

    python scripts/manifest_schema.py          # writes the file
    python scripts/manifest_schema.py --check  # exit 1 if the committed file is stale

tests/sdk/test_manifest.py runs the same comparison.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "sdk" / "manifest.schema.json"


def render() -> str:
    from skugen.manifest import manifest_schema

    return json.dumps(manifest_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        ok = SCHEMA.is_file() and SCHEMA.read_text() == text
        print(f"{SCHEMA}: {'up to date' if ok else 'stale; run python scripts/manifest_schema.py'}")
        return 0 if ok else 1
    from skugen.io import atomic_write_text

    atomic_write_text(SCHEMA, text)
    print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
