"""Bench of diffusion bundles: end-to-end `generate` latency per CPU engine x precision beside the teacher in eager
PyTorch, quality against the teacher on the same prompts and seeds, and an HTML page with image grids to rate.

    rep = run_diffusion_bench(DiffusionBenchConfig(bundle="runs/d/bundle", teacher="fmnist-diffusion"))
    write_diffusion_html(rep, "runs/d/reports/bench.html")

One run measures everything side by side (machine speed varies ~2x between sessions: compare ratios only):
- speed: `batch` held-in prompts per call, `iters` timed calls after `warmup`, p50 of the whole call and of its
  text / denoise-loop / post split (skugen.pipeline.DiffusionPipeline's report); the teacher runs its own
  default steps and guidance (eager FP32, torch threads = the same count);
- quality: class fidelity (fmnist-classifier judge) and FID-proxy on `quality_n` held-in prompts, for every
  cell and the teacher, from the SAME noise (default_rng(seed)).
Lives in the toolchain because the teacher column needs torch; the runtime side is skugen.load.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from skugen.sampler import make_noise
from skugen.evaluate import FID_NAME, class_fidelity, fid_proxy
from skugen.io import atomic_write_text, jsonable
from skugen.report import environment

from . import ckpt, prompts, zoo


@dataclass(frozen=True)
class DiffusionBenchConfig:
    bundle: str
    teacher: str | None = "fmnist-diffusion"
    engines: tuple[str, ...] = ("onnxruntime", "openvino")
    precisions: tuple[str, ...] = ("fp32", "bf16", "int8")
    batch: int = 8
    iters: int = 5
    warmup: int = 1
    teacher_iters: int = 3
    threads: int | None = None
    quality_n: int = 200
    grid_prompts: int = 10
    seed: int = 0


def _p50(xs: list[float]) -> float:
    return float(np.median(xs)) * 1e3


def _quality(images_m11: np.ndarray, labels: np.ndarray, judge) -> dict:
    f, p = judge.outputs(images_m11)
    return {"class_fidelity": class_fidelity(p, labels)["value"],
            "fid_proxy": fid_proxy(f, judge.reference_features(max(len(labels), 200))), "n": int(len(labels))}


def _to_m11(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0


def run_diffusion_bench(cfg: DiffusionBenchConfig) -> dict:
    import skugen
    from skugen.bundle import load_bundle
    from skugen.errors import SkugenError
    from skugen.tune import bf16_gate

    b = load_bundle(cfg.bundle)
    judge = zoo.load_judge()
    texts, _ = prompts.eval_prompts("held_in", cfg.batch, cfg.seed + 1)
    q_texts, q_labels = prompts.eval_prompts("held_in", cfg.quality_n, cfg.seed + 2)
    g_texts, _ = prompts.eval_prompts("held_in", cfg.grid_prompts, cfg.seed + 3)
    shape = (b.spec.io.channels or 1, b.spec.io.image_size, b.spec.io.image_size)
    cells, grids = [], {}
    for engine in cfg.engines:
        for prec in cfg.precisions:
            cell: dict = {"engine": engine, "precision": prec, "model": "student"}
            if prec == "bf16" and not bf16_gate(b)[0]:
                cells.append({**cell, "status": "skipped", "reason": bf16_gate(b)[1]})
                continue
            try:
                pipe = skugen.load(b.root, backend=engine, precision=prec, threads=cfg.threads)
            except SkugenError as e:
                cells.append({**cell, "status": "skipped", "reason": str(e)[:300]})
                continue
            with pipe:
                for _ in range(cfg.warmup):
                    pipe.generate(prompts=texts, seed=cfg.seed)
                tot, txt, den, post = [], [], [], []
                for _ in range(cfg.iters):
                    t0 = time.perf_counter()
                    r = pipe.generate(prompts=texts, seed=cfg.seed)
                    tot.append(time.perf_counter() - t0)
                    s = r.sampling
                    txt.append(s["text_ms"] / 1e3)
                    den.append(s["denoise_ms"] / 1e3)
                    post.append(s["post_ms"] / 1e3)
                q = pipe.generate(prompts=q_texts, noise=make_noise(cfg.seed, len(q_texts), shape))
                grid = pipe.generate(prompts=g_texts, noise=make_noise(cfg.seed, len(g_texts), shape)).images
                cell.update(status="ok", steps=r.sampling["steps"], batch=cfg.batch, p50_ms=_p50(tot),
                            text_p50_ms=_p50(txt), denoise_p50_ms=_p50(den), post_p50_ms=_p50(post),
                            per_step_ms=_p50(den) / r.sampling["steps"], **_quality(_to_m11(q.images), q_labels, judge))
                grids[f"student {engine} {prec}"] = grid
            cells.append(cell)
    teacher = None
    if cfg.teacher:
        tm, tcard = ckpt.load_model(zoo.resolve(cfg.teacher))
        tm.eval()
        tok = prompts.build_vocab()
        null = torch.tensor(tok.null())
        prev = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            def gen(ts, noise):
                ids = torch.from_numpy(tok.encode_batch(ts)[0])
                with torch.no_grad():
                    return torch.cat([tm.sample(ids[i:i + 50], null, noise=torch.from_numpy(noise[i:i + 50]))
                                      for i in range(0, len(ts), 50)]).numpy()

            n0 = make_noise(cfg.seed, cfg.batch, shape)
            gen(texts, n0)
            tt = []
            for _ in range(cfg.teacher_iters):
                t0 = time.perf_counter()
                gen(texts, n0)
                tt.append(time.perf_counter() - t0)
            qi = gen(q_texts, make_noise(cfg.seed, len(q_texts), shape))
            gi = gen(g_texts, make_noise(cfg.seed, len(g_texts), shape))
        finally:
            torch.set_num_threads(prev)
        teacher = {"engine": "torch", "precision": "fp32", "model": "teacher", "status": "ok", "batch": cfg.batch,
                   "steps": tm.cfg.steps, "guidance": tm.cfg.guidance, "p50_ms": _p50(tt),
                   "denoiser_rows_per_prompt": 2 if tm.cfg.guidance != 1.0 else 1, **_quality(qi, q_labels, judge)}
        grids = {"teacher (eager PyTorch)": np.round((np.clip(gi, -1, 1) + 1) * 127.5).astype(np.uint8)
                 .transpose(0, 2, 3, 1), **grids}
    ok = [c for c in cells if c["status"] == "ok"]
    best = min(ok, key=lambda c: c["p50_ms"]) if ok else None
    summary = {}
    if best and teacher:
        summary = {"best_cell": f"{best['engine']} {best['precision']}", "best_p50_ms": best["p50_ms"],
                   "teacher_p50_ms": teacher["p50_ms"], "speedup_vs_teacher": teacher["p50_ms"] / best["p50_ms"],
                   "fidelity_delta_pts": 100.0 * (best["class_fidelity"] - teacher["class_fidelity"]),
                   "fid_ratio_vs_teacher": best["fid_proxy"] / teacher["fid_proxy"] if teacher["fid_proxy"] else None}
    from skugen.tune import engine_versions

    env = environment(probe=True, threads=cfg.threads)
    env.setdefault("versions", {}).update({k: v for k, v in engine_versions().items() if v})  # openvino too
    return {"schema_version": 1, "kind": "diffusion-bench", "bundle": b.name, "bundle_sha256": b.manifest_sha256,
            "config": asdict(cfg), "environment": env,
            "prompts": {"timed": texts, "quality": f"{cfg.quality_n} held-in prompts (classes balanced)",
                        "grid": g_texts, "noise": f"default_rng({cfg.seed}).standard_normal, same in every column"},
            "cells": cells, "teacher": teacher, "summary": summary, "fid_name": FID_NAME,
            "_grids": grids}


def write_diffusion_html(rep: dict, out) -> None:
    """A self-contained page: the table, then one row per prompt with the teacher and every cell side by side."""
    from skugen.bench.html import _e, _png_data_uri, _rating, page

    rows = []
    for c in rep["cells"] + ([rep["teacher"]] if rep.get("teacher") else []):
        if c["status"] != "ok":
            rows.append(f"<tr><td class='l'>{_e(c['model'])} {_e(c['engine'])} {_e(c['precision'])}</td>"
                        f"<td colspan='7' class='l'>skipped: {_e(c.get('reason'))}</td></tr>")
            continue
        rows.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
            f"{c['model']} {c['engine']} {c['precision']}", c["steps"], c["batch"], f"{c['p50_ms']:.1f}",
            f"{c.get('denoise_p50_ms', float('nan')):.1f}", f"{100 * c['class_fidelity']:.1f}%",
            f"{c['fid_proxy']:.2f}")) + "</tr>")
    grids = rep.get("_grids") or {}
    img_rows = []
    for i, p in enumerate(rep["prompts"]["grid"]):
        tds = [f"<td class='l'>{_e(p)}</td>"]
        for label, arr in grids.items():
            key = f"{rep['bundle']}::{i}::{label}"
            tds.append(f"<td><img alt='{_e(label)}' width='96' src='{_png_data_uri(arr[i])}'>{_rating(key)}</td>")
        img_rows.append("<tr>" + "".join(tds) + "</tr>")
    s = rep.get("summary") or {}
    head = (f"<p>best cell <b>{_e(s.get('best_cell'))}</b>: {s.get('speedup_vs_teacher', 0):.1f}x the teacher "
            f"(eager PyTorch FP32, its default steps); class fidelity {s.get('fidelity_delta_pts', 0):+.1f} pts, "
            f"{_e(rep['fid_name'])} {s.get('fid_ratio_vs_teacher') or 0:.2f}x the teacher's</p>") if s else ""
    body = (f"<h1>skugen diffusion bench: {_e(rep['bundle'])}</h1>{head}"
            "<table><tr><th>cell</th><th>steps</th><th>prompts/call</th><th>p50 ms</th><th>denoise ms</th>"
            f"<th>class fidelity</th><th>{_e(rep['fid_name'])}</th></tr>{''.join(rows)}</table>"
            f"<h2>Same prompts and seeds in every column</h2><p class='note'>{_e(rep['prompts']['noise'])}</p>"
            "<table class='grid'><tr><th class='l'>prompt</th>"
            + "".join(f"<th>{_e(k)}</th>" for k in grids) + f"</tr>{''.join(img_rows)}</table>"
            "<p><button type='button' onclick='skugenDownloadRatings()'>Download ratings</button></p>")
    atomic_write_text(out, page("skugen diffusion bench", body, rep["environment"].get("created", "")))


def save(rep: dict, json_path, html_path=None) -> None:
    import json

    atomic_write_text(json_path, json.dumps(jsonable({k: v for k, v in rep.items() if k != "_grids"}), indent=2))
    if html_path is not None:
        write_diffusion_html(rep, html_path)
