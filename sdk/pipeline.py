"""The runtime API: `skugen.load(bundle)` -> Pipeline -> generate / enhance / evaluate.

    with skugen.load("runs/demo/bundle") as pipe:            # backend/precision "auto"
        res = pipe.generate(labels=["sneaker"], n=16, seed=0)  # Result
        res.save("out/")                                       # PNGs with provenance tEXt
        print(res.report.to_json())                            # latency pre/infer/post, memory, env

Choosing a backend and precision ("auto"; skugen.selection has the full rules):
    backend   = TensorRT when it is usable (TensorRT + pycuda + a GPU; installed but unusable, or failing to
                load, it is skipped, never an error), else the measured fastest installed CPU engine among
                OpenVINO and ONNX Runtime (a `skugen tune` sidecar, else the manifest's export-time table, each
                only when measured on this machine), else a static preference;
    precision = the fastest measured precision the bundle's gate accepted for that engine; TensorRT: fp16.
    pipe.info["selection"] says what was chosen, from which measurement, and why TensorRT was skipped.

Batching: a request of n items runs in chunks of at most `io.max_batch` (the
largest batch the bundle was exported/profiled for); a smaller request uses the
model's dynamic batch axis as it is (no padding to a fixed batch), so batch 1
costs batch-1 compute. Enhancer tiles are batched the same way, further capped
so one batch's float output stays under 16 MiB (skugen.tiling).

Threads: one Pipeline may be shared by many threads. Inference goes through the
runner (ONNX Runtime's InferenceSession.run is re-entrant; the TensorRT runner
serialises itself), everything else is per-call state, and the rolling latency
statistics take a lock. close() waits for in-flight calls.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__, prepost, tiling
from .bundle import MANIFEST, Bundle
from .errors import BundleError, InputError
from .manifest import Manifest
from .progress import Progress
from .report import CallTiming, LatencyStats, Report, memory_snapshot
from .result import Result
from .selection import BACKENDS, PRECISIONS, check_threads, resolve  # noqa: F401  (PRECISIONS: public)

log = logging.getLogger("skugen.pipeline")


# ----------------------------------------------------------------------------- pipeline


class Pipeline:
    """A loaded bundle + backend runner + pre/post-processing. Create with skugen.load()."""

    def __init__(self, bundle: Bundle, spec: Manifest, runner, backend: str, precision: str,
                 threads: int | None = None) -> None:
        self.bundle = bundle
        self.spec = spec
        self.runner = runner
        self.backend = backend
        self.precision = precision
        self.threads = threads
        rinfo = dict(getattr(runner, "info", {}) or {})
        # The ONNX the backend runs: a TensorRT fp16 engine is built from the fp32 graph.
        src = precision if precision in bundle.precisions else ("fp32" if "fp32" in bundle.precisions
                                                                 else bundle.precisions[0])
        self.device = rinfo.get("device") or ("gpu" if backend == "tensorrt" else "cpu")
        self.processor = prepost.get_processor(self.device)
        # TensorRT + CUDA kernels: pre/post-processing on the engine's bindings (one uint8 copy each way).
        self._gpu = prepost.gpu_data_path(runner, self.processor, spec.kind) if self.device == "gpu" else None
        self.stats = LatencyStats()
        self._state = threading.Condition()
        self._inflight = 0
        self._closed = False
        self._check_runner_io()
        self.info = {
            "backend": backend,
            "precision": precision,
            "device": self.device,
            "providers": rinfo.get("providers", [backend]),
            "threads": rinfo.get("intra_op_threads", threads),
            **({"execution_precision": rinfo["execution_precision"]} if "execution_precision" in rinfo else {}),
            "processor": repr(self.processor),
            "data_path": "zero-copy GPU" if self._gpu is not None else "host",
            "max_batch": spec.max_batch,
            "bundle": {"name": bundle.name, "kind": bundle.kind, "path": str(bundle.root),
                       "sha256": bundle.manifest_sha256, "model_file": rinfo.get("model_file") or spec.variant(src).file,
                       "model_sha256": rinfo.get("model_sha256") or bundle.model_sha256(src),
                       "model_source": rinfo.get("model_source"), "engine": rinfo.get("engine"),
                       "schema_version": spec.schema_version},
            "signature": {**bundle.signature.to_dict(), "summary": bundle.signature.describe()},
            "versions": {"skugen": __version__, "numpy": np.__version__,
                         **{k: v for k, v in rinfo.items() if k in ("onnxruntime", "openvino", "tensorrt", "cuda")}},
        }
        # Fixed-range engines (TensorRT optimisation profiles) accept LR sizes only within [min, max]:
        # tiles are capped to max and smaller ones edge-padded up to min (and the output cropped).
        self._hw_min, self._hw_max = (1, 1), None
        prof = getattr(runner, "profile", None)
        if spec.kind == "enhancer" and callable(prof):
            lr = prof().get("lr") or {}
            if lr.get("min") and lr.get("max"):
                self._hw_min = (int(lr["min"][2]), int(lr["min"][3]))
                self._hw_max = (int(lr["max"][2]), int(lr["max"][3]))
                self.info["lr_profile"] = {"min": list(self._hw_min), "max": list(self._hw_max)}
        if spec.kind == "enhancer":
            self.info["tile"] = {"size": spec.tile_size, "overlap": spec.tile_overlap, "scale": spec.scale}
        else:
            self.info["classes"] = list(spec.class_names)

    def _check_runner_io(self) -> None:
        """The ONNX/engine must have the inputs the manifest promises (else a corrupted/mismatched bundle)."""
        try:
            meta = self.runner.input_metadata()
        except (AttributeError, NotImplementedError):
            return
        if set(meta) != set(self.spec.inputs):
            raise BundleError(f"bundle {self.bundle.name!r}: the model's inputs {sorted(meta)} do not match the "
                              f"manifest's {list(self.spec.inputs)}; re-export the bundle.")
        if self.spec.kind == "generator":
            z, oh = meta["z"].shape, meta["onehot"].shape
            if (isinstance(z[-1], int) and z[-1] != self.spec.z_dim) or \
                    (isinstance(oh[-1], int) and oh[-1] != self.spec.n_classes):
                raise BundleError(f"bundle {self.bundle.name!r}: model inputs z{z} / onehot{oh} disagree with the "
                                  f"manifest (z_dim={self.spec.z_dim}, n_classes={self.spec.n_classes}); re-export.")

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend (ORT session / TensorRT engine). Waits for in-flight calls; idempotent."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            while self._inflight:
                self._state.wait()
        self.runner.deactivate()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Pipeline({self.bundle.name!r}, kind={self.spec.kind}, backend={self.backend}, "
                f"precision={self.precision}, device={self.device}{', closed' if self._closed else ''})")

    @contextlib.contextmanager
    def _call(self, kind: str):
        if self.spec.kind != kind:
            other = {"generator": "generate(labels=...)", "enhancer": "enhance(images)",
                     "diffusion": "generate(prompts=[...])"}[self.spec.kind]
            a = {"generator": "a generator", "enhancer": "an enhancer", "diffusion": "a text-to-image diffusion model"}
            cli = {"generator": "skugen generate", "enhancer": "skugen enhance", "diffusion": "skugen generate --prompt"}
            raise InputError(f"bundle {self.bundle.name!r} is {a[self.spec.kind]}, not {a[kind]}: "
                             f"call pipe.{other} instead (on the command line: {cli[self.spec.kind]})")
        with self._state:
            if self._closed:
                raise InputError("this Pipeline is closed; open the bundle again with skugen.load(...)")
            self._inflight += 1
        try:
            yield
        finally:
            with self._state:
                self._inflight -= 1
                if not self._inflight:
                    self._state.notify_all()

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        # Inputs are built and validated by us, so the runner's own per-call check is skipped.
        return self.runner.infer(feed, check=False)[self.spec.output]

    # -- generator ------------------------------------------------------------------------
    def generate(self, labels: Any = None, seed: int | None = None, n: int | None = None,
                 latents: np.ndarray | None = None) -> Result:
        """Generate product images.

        labels: class index, class name (case-insensitive; '-', '_', ' ' ignored) or a list of them.
            One label with n=k gives k images of that class; None cycles through the classes.
        seed: latents are default_rng(seed).standard_normal((n, z_dim), float32); None draws a
            fresh seed, which is recorded in Result.seeds and the PNG metadata.
        latents: (n, z_dim) float array instead of a seed.
        Returns a Result with images uint8 (n, H, W, C) (C=1 for grey products).
        """
        with self._call("generator"):
            sp = self.spec
            t0 = time.perf_counter()
            if latents is not None:
                if seed is not None:
                    raise InputError("pass either seed= or latents=, not both (latents already fix the noise)")
                z = prepost.check_latents(latents, sp.z_dim)  # (n, z_dim)
                if n is not None and prepost.check_count(n) != z.shape[0]:
                    raise InputError(f"n={n} but latents has {z.shape[0]} rows; drop n or make them agree")
                y = prepost.resolve_labels(labels, z.shape[0], sp.class_names, sp.n_classes)
                seed_v = None
            else:
                y = prepost.resolve_labels(labels, n, sp.class_names, sp.n_classes)  # (n,)
                seed_v = prepost.check_seed(seed)
                if seed_v is None:
                    seed_v = prepost.fresh_seed()
                z = prepost.make_latents(seed_v, len(y), sp.z_dim)  # (n, z_dim)
            oh = prepost.onehot(y, sp.n_classes)  # (n, n_classes)
            count = len(y)
            pre = time.perf_counter() - t0
            infer = post = 0.0
            images = None
            for i in range(0, count, sp.max_batch):
                j = min(i + sp.max_batch, count)
                t1 = time.perf_counter()
                if self._gpu is not None:  # inference + postprocess on the GPU, uint8 back
                    u = self._gpu.generate({"z": z[i:j], "onehot": oh[i:j]}, sp.value_range)
                    out = None
                else:
                    out = self._infer({"z": z[i:j], "onehot": oh[i:j]})  # (b, C, H, W) in value_range
                t2 = time.perf_counter()
                if out is None:
                    pass
                elif out.ndim != 4 or out.shape[0] != j - i or out.shape[1] not in (1, 3):
                    raise BundleError(f"generator output has shape {out.shape}; expected ({j - i}, 1|3, H, W). "
                                      "The bundle's model does not match its manifest; re-export it.")
                else:
                    u = prepost.nchw_to_images(out, sp.value_range, self.processor)  # (b, H, W, C) uint8
                if j - i == count:  # one chunk: its fresh buffer is the result, no copy
                    images = u
                else:
                    if images is None:
                        images = np.empty((count, *u.shape[1:]), dtype=np.uint8)  # (n, H, W, C)
                    images[i:j] = u
                t3 = time.perf_counter()
                infer += t2 - t1
                post += t3 - t2
            timing = CallTiming(pre, infer, post, count, time.perf_counter() - t0)
            self.stats.add(pre, infer, post, count, timing.total)
        labels = y.tolist()
        cn = sp.class_names
        names = [cn[k] for k in labels] if cn else [str(k) for k in labels]
        idx = list(range(count)) if seed_v is not None else [None] * count
        return Result(images, labels, names, [seed_v] * count, idx, timing,
                      _prov_base=self._provenance_base(), _make_report=functools.partial(self._report, "call"))

    # -- enhancer ------------------------------------------------------------------------
    def enhance(self, images: Any, tile: bool | int | None = True, progress: bool = False) -> Result:
        """Enhance (x scale) photos: uint8 (H, W, 3) arrays (or a (B, H, W, 3) batch), PIL images
        or file paths, of any size.

        tile: True uses the bundle's tile size/overlap (large photos in bounded memory; output equal
            to the untiled one up to float rounding); False runs each image whole; an int overrides
            the tile size (LR pixels).
        progress: show a tqdm bar over tiles (when tqdm is installed).
        Returns a Result whose images are (N, sH, sW, 3) uint8, or a list when sizes differ.
        """
        with self._call("enhancer"):
            sp = self.spec
            s = sp.scale
            t0 = time.perf_counter()
            arrays, names = prepost.as_rgb_images(images)
            size, overlap = self._tile_params(tile, max(max(a.shape[:2]) for a in arrays))
            shapes = {a.shape for a in arrays}
            try:
                if len(shapes) == 1:
                    h, w, _ = arrays[0].shape
                    stacked = np.empty((len(arrays), h * s, w * s, 3), dtype=np.uint8)  # (N, sH, sW, 3)
                    outs: Sequence[np.ndarray] = list(stacked)
                else:
                    stacked = None
                    outs = [np.empty((a.shape[0] * s, a.shape[1] * s, 3), dtype=np.uint8) for a in arrays]
            except MemoryError:
                raise InputError(f"not enough memory for the x{s} output of {len(arrays)} image(s) of "
                                 f"{sorted(shapes)}; enhance fewer or smaller images per call") from None
            # Work items grouped by tile shape, so tiles of different images (and whole small
            # images) of the same size share a batch.
            groups: dict[tuple[int, int], list[tuple[int, tiling.Tile]]] = {}
            for i, a in enumerate(arrays):
                h, w = a.shape[:2]
                tiles = (tiling.plan_tiles(h, w, size, overlap) if size else
                         [tiling.Tile(0, 0, h, w, 0, h, 0, w)])
                for t in tiles:
                    groups.setdefault(t.shape, []).append((i, t))
            pre = time.perf_counter() - t0
            infer = post = 0.0
            bar = Progress(sum(len(v) for v in groups.values()), desc="enhance", unit="tile", enabled=progress,
                           min_total=2, leave=False)
            try:
                for (th, tw), items in groups.items():
                    bs = tiling.batch_size((th, tw), 3, s, sp.max_batch)
                    for chunk in tiling.chunks(items, bs):
                        t1 = time.perf_counter()
                        crops = [arrays[i][t.y: t.y + th, t.x: t.x + tw] for i, t in chunk]  # views
                        ph, pw = max(th, self._hw_min[0]), max(tw, self._hw_min[1])
                        if (ph, pw) != (th, tw):  # below the engine's minimum: edge-pad, crop the output below
                            crops = [np.pad(c, ((0, ph - th), (0, pw - tw), (0, 0)), mode="edge") for c in crops]
                        if self._gpu is not None:  # pre, inference and post on the GPU: uint8 in, uint8 out
                            t2 = time.perf_counter()
                            u = self._gpu.enhance(crops, sp.in_mean, sp.in_std, sp.value_range)
                            if u.shape != (len(chunk), ph * s, pw * s, 3):
                                raise BundleError(f"enhancer output has shape {u.shape} (NHWC), expected "
                                                  f"{(len(chunk), ph * s, pw * s, 3)} for x{s}; the bundle's model "
                                                  "does not match its manifest. Re-export it.")
                            u = u[:, : th * s, : tw * s]
                            for (i, t), ut in zip(chunk, u):
                                tiling.stitch(outs[i], t, ut, s)
                            pre, infer = pre + t2 - t1, infer + time.perf_counter() - t2
                            bar.update(len(chunk))
                            continue
                        x = prepost.images_to_unit_nchw(crops, self.processor, sp.in_mean, sp.in_std)  # (b,3,ph,pw)
                        t2 = time.perf_counter()
                        y = self._infer({"lr": x})  # (b, 3, s*ph, s*pw)
                        t3 = time.perf_counter()
                        if y.shape != (len(chunk), 3, ph * s, pw * s):
                            raise BundleError(f"enhancer output has shape {y.shape}, expected "
                                              f"{(len(chunk), 3, ph * s, pw * s)} for x{s}; the bundle's model "
                                              "does not match its manifest. Re-export it.")
                        u = prepost.nchw_to_images(y[:, :, : th * s, : tw * s], sp.value_range,
                                                   self.processor)  # (b, s*th, s*tw, 3) uint8
                        for (i, t), ut in zip(chunk, u):  # ut: (s*th, s*tw, 3)
                            tiling.stitch(outs[i], t, ut, s)
                        t4 = time.perf_counter()
                        pre += t2 - t1
                        infer += t3 - t2
                        post += t4 - t3
                        bar.update(len(chunk))
            finally:
                bar.close()
            timing = CallTiming(pre, infer, post, len(arrays), time.perf_counter() - t0)
            self.stats.add(pre, infer, post, len(arrays), timing.total)
        return Result(stacked if stacked is not None else list(outs), None, None, None, None, timing,
                      sources=names, _prov_base={**self._provenance_base(), "Scale": str(s)},
                      _make_report=functools.partial(self._report, "call"))

    def _tile_params(self, tile: Any, max_side: int) -> tuple[int | None, int]:
        """(tile size or None for whole images, overlap) for this call."""
        sp = self.spec
        if tile is True or tile is None:
            size = sp.tile_size
        elif tile is False:
            size = None
        elif isinstance(tile, (int, np.integer)) and not isinstance(tile, (bool, np.bool_)):
            size = int(tile)
            tiling.check_tile_params(size, min(sp.tile_overlap, max(size - 1, 0)))
        else:
            raise InputError(f"tile must be True, False or a tile size in LR pixels (int), got {tile!r}")
        if self._hw_max is not None:  # the engine cannot take more than its profile's max
            cap = min(self._hw_max)
            if size is None and max_side > cap:
                log.warning("image side %d exceeds the engine's max %d: tiling anyway", max_side, cap)
            size = cap if size is None and max_side > cap else (min(size, cap) if size else size)
        if size is None:
            return None, 0
        overlap = min(sp.tile_overlap, size - 1)
        if overlap < sp.tile_overlap:
            log.warning("tile size %d leaves overlap %d < the bundle's %d: tile seams may show",
                        size, overlap, sp.tile_overlap)
        return size, overlap

    def _provenance_base(self) -> dict[str, str]:
        return {"Software": f"skugen {__version__}", "Model": self.bundle.name,
                "Bundle-SHA256": self.bundle.manifest_sha256,
                "Model-SHA256": self.info["bundle"]["model_sha256"],
                "Backend": f"{self.backend}/{self.precision}", "AI-Generated": "true"}

    # -- reports ----------------------------------------------------------------------------
    def _report(self, kind: str, timing: CallTiming | None = None, quality: dict | None = None,
                notes: list | None = None, extra_config: dict | None = None) -> Report:
        sess = self.stats.summary()
        call = timing.to_dict() if timing is not None else None
        return Report(
            kind=kind, backend=self.backend, precision=self.precision, device=self.device,
            bundle=dict(self.info["bundle"]),
            config={"threads": self.info["threads"], "providers": self.info["providers"],
                    "max_batch": self.spec.max_batch, "processor": self.info["processor"],
                    **({"tile": self.info["tile"]} if "tile" in self.info else {}), **(extra_config or {})},
            latency={"call": call, "session": sess},
            throughput={"call_images_per_s": call["images_per_s"] if call else None, **sess["throughput"]},
            memory=self._memory(), quality=quality or {}, notes=list(notes or []),
        )

    def _memory(self) -> dict:
        mem = memory_snapshot()
        gm = getattr(self.runner, "gpu_memory", None)
        if callable(gm) and self.runner.is_active:
            with contextlib.suppress(Exception):  # memory is informational; never fail a report on it
                mem["gpu_runner"] = gm()
        return mem

    def report(self) -> Report:
        """The session report: rolling pre/infer/post percentiles over this pipeline's calls."""
        return self._report("session")

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, reference: Any = None, *, inputs: Any = None, classifier: Any = None,
                 n: int | None = None, seed: int = 0, labels: Any = None) -> Report:
        """Quality report, returned as a Report (kind 'evaluate').

        Generator:
            reference: a teacher bundle path / Pipeline (same latents -> PSNR/SSIM fidelity and
                FID-proxy student vs teacher), or real uint8 images (N, H, W[, 1]) for the FID-proxy.
            classifier: an ONNX file with input 'image' (batch, 1, 32, 32) in [-1, 1] and outputs
                'logits' (+ 'features' for the FID-proxy): class fidelity = top-1 agreement with the
                requested class. Without it those fields say why they were skipped.
            n (default 256) images of `labels` (default: every class in turn) from `seed`.
        Enhancer (PSNR-Y / SSIM-Y, BasicSR, crop = scale):
            reference: ground-truth HR images (arrays / paths), with inputs= LR images, or with LR
                made by PIL bicubic x1/scale of the references when inputs is None; or a teacher
                bundle path / Pipeline (inputs default: the bundle's golden inputs).
        """
        from . import evaluate

        if self.spec.kind == "generator":
            quality, notes, cfg = self._evaluate_generator(reference, classifier, n, seed, labels, evaluate)
        else:
            quality, notes, cfg = self._evaluate_enhancer(reference, inputs, evaluate)
        return self._report("evaluate", quality=quality, notes=notes, extra_config={"evaluate": cfg})

    def _open_reference(self, reference: Any) -> tuple["Pipeline | None", bool]:
        """A reference bundle (path or Pipeline) -> (pipeline, whether we opened it)."""
        if isinstance(reference, Pipeline):
            ref, own = reference, False
        elif isinstance(reference, (str, os.PathLike)) and _looks_like_bundle(reference):
            from . import load  # the public entry point (skugen.loader), not a sibling import

            ref, own = load(reference, backend="onnxruntime", precision="fp32", threads=self.threads), True
        else:
            return None, False
        sp, rp = self.spec, ref.spec
        same = sp.kind == rp.kind and ((sp.z_dim, sp.n_classes) == (rp.z_dim, rp.n_classes)
                                       if sp.kind == "generator" else sp.scale == rp.scale)
        if not same:
            if own:
                ref.close()
            raise InputError(f"reference bundle {ref.bundle.name!r} ({rp.kind}) does not take the same inputs "
                             f"as {self.bundle.name!r} ({sp.kind}); compare a student with its own teacher")
        return ref, own

    def _evaluate_generator(self, reference, classifier, n, seed, labels, ev):
        n = prepost.check_count(n) if n is not None else (None if labels is not None else 256)
        res = self.generate(labels=labels, seed=seed, n=n)
        n = len(res)
        seed = res.seeds[0]  # seed=None drew a fresh one: the reference must get the SAME latents, and cfg records it
        cfg = {"n": n, "seed": seed, "reference": _describe(reference), "classifier": _describe(classifier)}
        quality: dict = {}
        notes: list = []
        ref_pipe, own = self._open_reference(reference)
        real = None
        if reference is not None and ref_pipe is None:
            real = _gray_uint8(reference)
        try:
            ref_images = None
            if ref_pipe is not None:
                ref_images = ref_pipe.generate(labels=res.labels, seed=seed, n=n).images
                against = f"reference bundle {ref_pipe.bundle.name} ({ref_pipe.precision}) on the same latents"
                for key, r in ev.pair_quality(res.images, ref_images).items():
                    quality[key] = {**r.to_dict(), "against": against}
            else:
                why = "no reference bundle given (reference=TEACHER_BUNDLE compares outputs on the same latents)"
                quality["psnr"] = {"metric": "psnr", "skipped": why}
                quality["ssim"] = {"metric": "ssim", "skipped": why}
            if classifier is None:
                why = ("no classifier= given (an ONNX file with input 'image' [batch,1,32,32] and outputs "
                       "'logits', 'features', or a skugen.evaluate.Judge)")
                quality["fid_proxy"] = {"name": ev.FID_NAME, "skipped": why}
                quality["class_fidelity"] = {"name": "class fidelity", "skipped": why}
                return quality, notes, cfg
            with contextlib.ExitStack() as stack:
                if isinstance(classifier, ev.Judge):
                    judge = classifier
                else:
                    judge = stack.enter_context(ev.OnnxJudge(classifier, self.threads, self.processor))
                has_features = getattr(judge, "has_features", True)
                want = np.asarray(res.labels)
                quality["class_fidelity"] = {
                    "name": "class fidelity", **ev.class_fidelity(judge.predict(res.images), want),
                    "definition": "top-1 of the classifier == requested class, over generated images"}
                r_feats = None
                if ref_images is not None:
                    quality["class_fidelity"]["reference_value"] = ev.class_fidelity(
                        judge.predict(ref_images), want)["value"]
                    r_feats = judge.features(ref_images) if has_features else None
                elif real is not None and has_features:
                    r_feats = judge.features(real)
                if not has_features:
                    quality["fid_proxy"] = {"name": ev.FID_NAME, "skipped": "the classifier has no 'features' output"}
                elif r_feats is None:
                    quality["fid_proxy"] = {"name": ev.FID_NAME, "skipped": "no reference= (teacher bundle or real "
                                            "images) to compare features with"}
                else:
                    feats = judge.features(res.images)
                    quality["fid_proxy"] = ev.fid_proxy_entry(
                        feats, r_feats, n_reference=int(r_feats.shape[0]), feature_dim=int(feats.shape[1]),
                        against="reference bundle outputs" if ref_images is not None else "real images",
                        note="Frechet distance on our own classifier's features; not comparable to Inception FID")
                    if n < feats.shape[1]:
                        notes.append(f"FID-proxy from {n} images < feature dim {feats.shape[1]}: biased upward; "
                                     "use n >= 2000 for reportable numbers")
        finally:
            if own:
                ref_pipe.close()
        return quality, notes, cfg

    def _evaluate_enhancer(self, reference, inputs, ev):
        s = self.spec.scale
        cfg = {"reference": _describe(reference), "inputs": _describe(inputs), "crop_border": s,
               "y_channel": True}
        notes: list = []
        if reference is None:
            raise InputError("evaluate() needs reference=: ground-truth HR images (with inputs= LR images, or LR "
                             "made by bicubic downscaling) or a teacher bundle path")
        ref_pipe, own = self._open_reference(reference)
        try:
            if ref_pipe is not None:
                if inputs is None:
                    golden_in, _ = self.bundle.golden()
                    lr_f = golden_in["lr"]  # (B, 3, h, w) float in [0, 1]
                    inputs = list(np.clip(np.rint(lr_f * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1))
                    notes.append("inputs: the bundle's golden inputs")
                lr, _ = prepost.as_rgb_images(inputs)
                out = self.enhance(lr).images
                ref = ref_pipe.enhance(lr).images
                against = f"reference bundle {ref_pipe.bundle.name} ({ref_pipe.precision}) on the same inputs"
            else:
                hr, _ = prepost.as_rgb_images(reference)
                if inputs is None:
                    hr = [h[: h.shape[0] // s * s, : h.shape[1] // s * s] for h in hr]
                    if any(min(h.shape[:2]) < s for h in hr):
                        raise InputError(f"reference images must be at least {s}x{s} pixels")
                    lr = [ev.bicubic_resize(h, (h.shape[1] // s, h.shape[0] // s)) for h in hr]
                    notes.append(f"LR inputs made by PIL bicubic x1/{s} downscaling of the references "
                                 "(BasicSR protocol); pass inputs= for real degraded photos")
                else:
                    lr, _ = prepost.as_rgb_images(inputs)
                    if len(lr) != len(hr):
                        raise InputError(f"{len(lr)} inputs but {len(hr)} references: pass one HR image per LR one")
                    for i, (a, b) in enumerate(zip(lr, hr)):
                        if (a.shape[0] * s, a.shape[1] * s) != b.shape[:2]:
                            raise InputError(f"reference {i} is {b.shape[:2]} but input {i} x{s} is "
                                             f"{(a.shape[0] * s, a.shape[1] * s)}: crop the references to match")
                out = self.enhance(lr).images
                ref = hr
                against = "ground-truth images"
                quality_b = ev.pairwise(ev.psnr_result, ev.bicubic_upscale(lr, s), ref, crop_border=s)
            quality = {key: {**ev.pairwise(fn, out, ref, crop_border=s).to_dict(), "against": against}
                       for key, fn in (("psnr", ev.psnr_result), ("ssim", ev.ssim_result))}
            if ref_pipe is None:
                quality["psnr_bicubic_baseline"] = {**quality_b.to_dict(), "against": against,
                                                    "note": "PIL bicubic upscaling of the same inputs"}
        finally:
            if own:
                ref_pipe.close()
        return quality, notes, cfg


def _looks_like_bundle(p: Any) -> bool:
    q = Path(p)
    return (q.is_dir() and (q / MANIFEST).is_file()) or (q.is_file() and q.suffix == ".tar")


def _describe(x: Any) -> Any:
    if x is None or isinstance(x, (str, int, float)):
        return x
    if isinstance(x, os.PathLike):
        return str(x)
    if isinstance(x, Pipeline):
        return f"Pipeline({x.bundle.name}, {x.precision})"
    if isinstance(x, np.ndarray):
        return f"array{x.shape} {x.dtype}"
    if isinstance(x, (list, tuple)):
        return f"{len(x)} items"
    return type(x).__name__


def _gray_uint8(images: Any) -> np.ndarray:
    """Real images for the FID-proxy: uint8 (N, H, W) or (N, H, W, 1) -> (N, H, W, 1)."""
    if isinstance(images, (str, os.PathLike)):
        raise InputError(f"reference {images} is neither a bundle directory (with {MANIFEST}) nor a .tar; "
                         "for real images pass a uint8 (N, H, W) array")
    a = np.asarray(images) if isinstance(images, (list, tuple)) else images
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        raise InputError("reference images for the FID-proxy must be a uint8 (N, H, W) or (N, H, W, 1) array "
                         f"(grey, like the generator's output); got {_describe(images)}")
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] != 1 or a.shape[0] < 2:
        raise InputError(f"reference images must be (N, H, W) or (N, H, W, 1) grey with N >= 2, got {a.shape}")
    return a
