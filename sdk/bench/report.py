"""BenchReport: the one object `run_bench` returns, the CLI prints and `save_*` writes.

Environment + command + config + ceilings + every cell, as plain JSON (`to_dict`),
plus `samples` (uint8 images for the HTML page, never written to JSON).
Writing is the caller's choice: run_bench itself writes nothing.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..io import atomic_write_text
from ..report import ReportBase, _now
from .config import SCHEMA_VERSION
from .views import CSV_FIELDS, _fmt_csv, flat_row, markdown_table


@dataclass
class BenchReport(ReportBase):
    """The one benchmark report: environment + command + config + ceilings + every cell.

    `samples` holds the images the HTML report shows (uint8 arrays); it is not
    written to JSON. Everything else is plain JSON (`to_dict`).
    """

    config: dict
    cells: list
    ceilings: dict
    environment: dict
    command: list
    references: dict = field(default_factory=dict)  # per bundle: bicubic baseline, real-vs-real FID-proxy, ...
    notes: list = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    kind: str = "bench"
    created: str = field(default_factory=_now)
    skugen_version: str = __version__
    wall_s: float | None = None
    summary: dict = field(default_factory=dict)      # speed_summary(): int8 vs fp32 vs teacher ratios per bundle
    samples: dict = field(default_factory=dict, repr=False)

    def _fields(self) -> dict:  # ReportBase.to_dict writes these, in this order (never `samples`)
        return {k: getattr(self, k) for k in ("schema_version", "kind", "created", "skugen_version", "command",
                                              "environment", "config", "ceilings", "summary", "cells", "references",
                                              "notes", "wall_s")}

    @classmethod
    def from_dict(cls, d: dict) -> "BenchReport":
        check_report_dict(d)
        keys = ("config", "cells", "ceilings", "environment", "command", "references", "notes", "schema_version",
                "created", "skugen_version", "wall_s", "summary")
        return cls(**{k: d[k] for k in keys if k in d})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BenchReport":
        return cls.from_dict(load_report_json(path))

    def ok_cells(self) -> list[dict]:
        return [c for c in self.cells if c["status"] == "ok"]

    def cell(self, key: str) -> dict | None:
        return next((c for c in self.cells if c["key"] == key), None)

    # -- writers (save_json, to_json: ReportBase) ---------------------------------------------
    def csv_rows(self) -> list[dict]:
        return [flat_row(c) for c in self.cells]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
        w.writeheader()
        for r in self.csv_rows():
            w.writerow({k: _fmt_csv(v) for k, v in r.items()})
        return buf.getvalue()

    def save_csv(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.to_csv())

    def to_markdown(self) -> str:
        return markdown_table(self.to_dict())

    def save_md(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.to_markdown())

    def save_html(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """The self-contained HTML page (skugen.bench.html; matplotlib for the plots, loaded lazily)."""
        from .html import write_html

        return write_html(self, path, title=title)

    def save(self, json_path=None, csv_path=None, md_path=None, html_path=None) -> list[Path]:
        """Write each format whose path is given (None: skip it); returns the paths written."""
        out = []
        for p, write in ((json_path, self.save_json), (csv_path, self.save_csv), (md_path, self.save_md),
                         (html_path, self.save_html)):
            if p:
                out.append(write(p))
        return out


def check_report_dict(d: dict) -> dict:
    """InputError unless `d` is a `skugen bench` report this skugen can read (kind and schema_version)."""
    v = d.get("schema_version")
    if d.get("kind") != "bench" or not isinstance(v, int):
        raise InputError("this JSON is not a `skugen bench` report (no kind='bench' / schema_version). "
                         "Pass a file written by `skugen bench --json`.")
    if v > SCHEMA_VERSION:
        raise InputError(f"bench report schema_version {v} is newer than this skugen supports "
                         f"({SCHEMA_VERSION}); upgrade skugen.")
    return d


def load_report_json(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"report {p} does not exist. Write one with `skugen bench BUNDLE --json {p}`.")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p} is not valid JSON ({e}). Pass a file written by `skugen bench --json`.") from e
    if not isinstance(d, dict):
        raise InputError(f"{p} holds a JSON {type(d).__name__}, not a `skugen bench` report (an object). "
                         "Pass a file written by `skugen bench --json`.")
    return d

