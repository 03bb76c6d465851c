"""Measured engine x precision choice for backend/precision "auto" (`skugen tune BUNDLE`).

    table = skugen.tune.measure(bundle)          # {"fingerprint": ..., "shape": ..., "cells": [{engine, precision, p50_ms}]}
    skugen.tune.save_sidecar(bundle, table)      # beside the bundle: engines/tune.json (not hashed), or the user cache
    skugen.tune.table_for_export(manifest, files)  # the exporter's hook: the same table in manifest.json["tune"]

What is measured: every installed CPU engine (OpenVINO, ONNX Runtime) at every precision the bundle's
gate accepted for it, at the bundle's deployment shape (generator: a batch of min(16, io.max_batch);
enhancer: one tile.size^2 LR tile, 128^2 without a tile), p50 of a short time-boxed loop.

A table is used only on the machine it was measured on: its fingerprint (CPU model, the ISA flags that
decide CPU speed, usable cores, engine versions) must equal this machine's. skugen.selection.choose
reads, in order: the tune sidecar, the manifest's record, then a static preference (documented there).

The sidecar lives in the bundle's unhashed engines/ directory (device caches, like TensorRT engines), so
the bundle's sha256s stay valid; a read-only bundle's goes to <SKUGEN_CACHE_DIR>/tune/.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, config
from .errors import BackendUnavailable, SkugenError
from .io import atomic_write_bytes, atomic_write_json, sha256_bytes

log = logging.getLogger("skugen.tune")

SCHEMA = 1
SIDECAR = "tune.json"
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile", "asimd", "sve")

# ----------------------------------------------------------------------------- machine fingerprint


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in ISA_FLAGS if w in have]
    except OSError:
        pass
    return []


def engine_versions() -> dict[str, str | None]:
    from .report import _first_version, _version

    return {"onnxruntime": _first_version("onnxruntime", "onnxruntime-gpu"), "openvino": _version("openvino")}


def fingerprint() -> dict:
    """What makes a measurement valid only here: CPU model, ISA flags, usable cores, engine versions."""
    from .report import _cpu_model

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return {"cpu_model": _cpu_model(), "isa_flags": _cpu_flags(), "cores": cores, "engines": engine_versions()}


def fingerprint_mismatch(fp: Any, here: dict | None = None) -> str | None:
    """Why a recorded fingerprint is not this machine's (None: it is)."""
    here = here or fingerprint()
    if not isinstance(fp, dict):
        return "the record has no machine fingerprint"
    diffs = [f"{k} {fp.get(k)!r} != here {here[k]!r}" for k in ("cpu_model", "isa_flags", "cores", "engines")
             if fp.get(k) != here[k]]
    return "; ".join(diffs) or None

# ----------------------------------------------------------------------------- what may run


def bf16_gate(bundle) -> tuple[bool, str]:
    """(accepted, why) of the BF16 quality gate the exporter recorded for the fp32 model:
    models.fp32.runtime_precisions.openvino.bf16 = {accepted, native, measured_on, ...} (skugen.export.openvino_quant).
    Absent means not gated; a record made where BF16 was not native says so (it measured nothing)."""
    fp = bundle.spec.models.get("fp32")
    if fp is None:
        return False, "the bundle has no fp32 model"
    rec = (((fp.extra or {}).get("runtime_precisions") or {}).get("openvino") or {}).get("bf16")
    if not isinstance(rec, dict):
        return False, "the bundle records no BF16 quality gate (re-export with openvino installed to gate it)"
    if not rec.get("native", False):
        return False, ("the exporting CPU has no native BF16, so the gate measured nothing for bf16 (re-export on a "
                       "CPU with AVX512-BF16/AMX to gate it)")
    ok = bool(rec.get("accepted"))
    return ok, f"bf16 gate: {'accepted' if ok else 'rejected'} on the exporting machine"


def candidates(bundle, engines: list[str] | None = None) -> list[tuple[str, str, str | None]]:
    """[(engine, precision, why not | None)]: every CPU engine x precision, and why it may not run here."""
    from .backends import registry

    have = set(bundle.precisions)
    out = []
    for e in engines or list(registry.CPU_ENGINES):
        st = registry.backend_status(e)
        precs = ["fp32", "int8"] if e == "onnxruntime" else ["fp32", "bf16", "int8"]
        if e == "onnxruntime" and "fp16" in have:
            precs.append("fp16")
        for p in precs:
            why = None if st.usable else st.reason
            if why is None and ("fp32" if p == "bf16" else p) not in have:
                why = f"the bundle has no {p} model"
            if why is None and p == "bf16":
                ok, gate = bf16_gate(bundle)
                if not ok:
                    why = gate
                else:
                    from .backends.openvino import native_bf16

                    native, nwhy = native_bf16()
                    why = None if native else nwhy
            out.append((e, p, why))
    return out

# ----------------------------------------------------------------------------- measuring


def deployment_feed(bundle) -> tuple[dict[str, np.ndarray], str]:
    """The bundle's typical request, as the model's inputs, and its description."""
    spec = bundle.spec
    rng = np.random.default_rng(0)
    if spec.kind == "generator":
        b = min(16, spec.max_batch)
        z = rng.standard_normal((b, spec.z_dim)).astype(np.float32)
        oh = np.eye(spec.n_classes, dtype=np.float32)[np.arange(b) % spec.n_classes]
        return {"z": z, "onehot": oh}, f"batch {b}"
    if spec.kind == "diffusion":  # the denoiser runs N times per image: one step of 8 prompts with CFG (16 rows)
        b = 2 * min(8, max(1, spec.max_batch // 2))
        io = spec.io
        L, D = (int(x) for x in io.input("context").shape[1:])
        shape = tuple(int(x) for x in io.input("x").shape[1:])
        m = np.zeros((b, L), np.float32)
        m[:, :6] = 1.0                                     # BOS + a few words + EOS, the rest padding
        return {"x": rng.standard_normal((b, *shape), dtype=np.float32), "t": np.full(b, 0.5, np.float32),
                "context": rng.standard_normal((b, L, D), dtype=np.float32), "mask": m}, \
            f"one denoiser step: {b // 2} prompts with guidance ({b} rows)"
    side = spec.tile_size or 128
    ch = spec.io.input("lr").shape[1]
    ch = ch if isinstance(ch, int) else 3
    return {"lr": rng.random((1, ch, side, side), dtype=np.float32)}, f"one {side}x{side} LR tile"


def _time(runner, feed: dict, warmup: int, budget_s: float, min_iters: int, max_iters: int) -> float:
    for _ in range(warmup):
        runner.infer(feed, check=False)
    ts: list[float] = []
    t_end = time.perf_counter() + budget_s
    while len(ts) < max_iters and (len(ts) < min_iters or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        runner.infer(feed, check=False)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def measure(bundle, *, engines: list[str] | None = None, threads: int | None = None, warmup: int = 2,
            budget_s: float = 1.0, min_iters: int = 5, max_iters: int = 200) -> dict:
    """The measured table: p50 ms of each runnable engine x precision at the deployment shape, plus why the
    others did not run, and this machine's fingerprint. `bundle`: a Bundle or a bundle path."""
    from .backends import registry
    from .bundle import Bundle, load_bundle

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    feed, what = deployment_feed(b)
    cells = []
    for e, p, why in candidates(b, engines):
        cell: dict = {"engine": e, "precision": p}
        if why:
            cells.append({**cell, "status": "skipped", "reason": why})
            continue
        try:
            with registry.runner_for(b, e, p, threads=threads) as r:
                cell["p50_ms"] = round(_time(r, feed, warmup, budget_s, min_iters, max_iters), 4)
                info = r.info or {}
                cell.update(status="ok", threads=info.get("intra_op_threads"))
                if info.get("model_source"):
                    cell["model_source"] = info["model_source"]
        except (BackendUnavailable, SkugenError) as ex:
            cell.update(status="skipped" if isinstance(ex, BackendUnavailable) else "error", reason=str(ex)[:300])
        cells.append(cell)
    return {"schema": SCHEMA, "bundle": b.name, "manifest_sha256": b.manifest_sha256, "request": what,
            "threads": threads or config.get_int("SKUGEN_NUM_THREADS"), "fingerprint": fingerprint(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "skugen_version": __version__, "cells": cells}


def fastest(table: dict, *, backend: str | None = None, precision: str | None = None,
            allowed: set[tuple[str, str]] | None = None) -> dict | None:
    """The fastest measured cell (optionally of one engine / precision, among `allowed` pairs)."""
    ok = [c for c in table.get("cells", []) if c.get("status") == "ok" and isinstance(c.get("p50_ms"), (int, float))
          and (backend is None or c["engine"] == backend) and (precision is None or c["precision"] == precision)
          and (allowed is None or (c["engine"], c["precision"]) in allowed)]
    return min(ok, key=lambda c: c["p50_ms"]) if ok else None

# ----------------------------------------------------------------------------- where tables live


def _fallback(bundle) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle.name)
    return config.cache_dir("tune") / f"{slug}-{bundle.manifest_sha256[:16]}.json"


def sidecar_paths(bundle) -> list[Path]:
    """Lookup order: <bundle>/engines/tune.json, then the user-cache fallback."""
    return [Path(bundle.root) / "engines" / SIDECAR, _fallback(bundle)]


def save_sidecar(bundle, table: dict) -> Path:
    """Write `table` beside the bundle (not in its files map: the sha256s stay valid); read-only -> the cache."""
    primary = sidecar_paths(bundle)[0]
    probe = next((p for p in (primary.parent, Path(bundle.root)) if p.exists()), Path(bundle.root))
    dest = primary if os.access(probe, os.W_OK) else _fallback(bundle)
    if dest != primary:
        log.warning("bundle %s is read-only; writing the tune table to %s", bundle.root, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(dest, table)


def load_sidecar(bundle) -> tuple[dict | None, Path | None, str | None]:
    """(table, path, why not used) of the first sidecar that is this bundle's and this machine's."""
    why = None
    for p in sidecar_paths(bundle):
        try:
            t = json.loads(p.read_text())
        except FileNotFoundError:
            continue
        except (OSError, json.JSONDecodeError) as e:
            why = f"{p} is unreadable ({e})"
            continue
        if not isinstance(t, dict) or t.get("manifest_sha256") != bundle.manifest_sha256:
            why = f"{p} was measured for another version of the bundle"
            continue
        bad = fingerprint_mismatch(t.get("fingerprint"))
        if bad:
            why = f"{p} was measured on another machine ({bad})"
            continue
        return t, p, None
    return None, None, why


def manifest_record(bundle) -> tuple[dict | None, str | None]:
    """(the manifest's export-time table, why not used) when its fingerprint is this machine's."""
    t = bundle.spec.extra.get("tune")
    if not isinstance(t, dict):
        return None, "the manifest records no tune table"
    bad = fingerprint_mismatch(t.get("fingerprint"))
    return (None, f"the manifest's tune table was measured on another machine ({bad})") if bad else (t, None)


def table_for_export(manifest: Any, files: dict, **measure_kw) -> dict | None:
    """The exporter's hook: the table for manifest.json["tune"], measured on the bundle-to-be written to a
    temporary directory, so the real bundle is written once, atomically, with the table already inside
    (rewriting a written bundle's manifest.json + manifest.sha256 would be two writes a crash could split).
    Never fails an export: a measuring problem is logged and None returned."""
    import tempfile

    from .bundle import load_bundle, write_bundle

    with tempfile.TemporaryDirectory(prefix=".skugen-tune.") as td:
        try:
            table = measure(load_bundle(write_bundle(Path(td) / "bundle", manifest, files)), **measure_kw)
        except SkugenError as e:
            log.warning("could not measure the engines (%s); backend='auto' will use the static preference", e)
            return None
    table.pop("manifest_sha256", None)  # the manifest cannot hold its own digest
    return table
