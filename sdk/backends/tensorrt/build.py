"""Build a TensorRT engine from a bundle's ONNX on this GPU: builder, ONNX parser, optimisation profile,
timing cache and the engine inspector. Strongly typed only: the network is created with
NetworkDefinitionCreationFlag.STRONGLY_TYPED on TensorRT 10.x (the only mode on 11), and no precision builder
flag is set, so each layer runs in the type its ONNX tensors have (plan.network_creation_flags).

    rec = engine_from_onnx(bundle, "int8")            # or: skugen build BUNDLE --precision int8

What to ask TensorRT for is decided on the CPU by `plan.make_build_plan`; where the engine goes (the bundle's
engines/<key>/, or the user-cache fallback for a read-only bundle) by `store`. tensorrt and pycuda are imported
only inside engine_from_onnx (through cuda._require).
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from skugen import __version__, config
from skugen.errors import BackendUnavailable, BundleError
from skugen.io import atomic_dir, atomic_write_bytes, atomic_write_json, sha256_bytes

from . import plan as tp
from . import store
from .cuda import _device_info, _logger, _PrimaryContext, _require, _trt_errors
from .plan import BuildConfig, BuildPlan
from .store import EngineRecord

log = logging.getLogger("skugen.tensorrt")


def _golden_shapes(b) -> dict[str, list[tuple[int, ...]]]:
    """Shapes of the golden inputs: the build profile must admit them so `skugen verify` can run."""
    try:
        inputs, _ = b.golden()
    except Exception:  # noqa: BLE001 - golden data is optional for building
        return {}
    return {k: [tuple(int(x) for x in v.shape)] for k, v in inputs.items()}


# ----------------------------------------------------------------------------- build


def engine_from_onnx(bundle, precision: str = "fp16", cfg: BuildConfig | None = None) -> EngineRecord:
    """Build (or reuse) the TensorRT engine of `bundle` for this GPU.

    fp32: model.fp32.onnx. fp16: the bundle's FP16 graph. int8: the TensorRT Q/DQ twin of model.int8.onnx.
    All strongly typed, so the engine computes in the types those graphs carry; a bundle without the graph
    (or an int8 twin without Q/DQ layers) raises BundleError saying how to re-export.

    An engine already under engines/<key>/ whose sidecar matches this machine, the
    bundle's ONNX and the requested profile is reused (record.built is False)
    unless cfg.force. Writes are atomic: a killed build leaves the old engine or none.
    """
    precision = tp.check_precision(precision)
    cfg = cfg or BuildConfig()
    trt, cuda = _require(cfg.device)
    b = store.as_bundle(bundle)
    plan = tp.make_build_plan(b.spec, precision, cfg, cover=_golden_shapes(b))
    pctx = _PrimaryContext(cuda, cfg.device)
    try:
        with pctx.scope():
            dev = _device_info(cuda, cfg.device)
            key = tp.engine_key(dev["name"], dev["compute_capability"], trt.__version__, precision)
            ident = tp.current_identity(dev, trt.__version__, plan.onnx_sha256, precision)
            existing = store.find(b, key)
            if existing is not None and not cfg.force:
                side = store.read_sidecar(existing)
                if side and not tp.engine_mismatches(side, ident) and tp.profile_matches(side, plan) \
                        and store.plan_problem(existing, side) is None:
                    log.info("TensorRT engine %s is up to date", existing)
                    return EngineRecord(key, precision, existing, side, built=False)
            out_dir = existing if existing is not None else store.writable_dir(b, key)
            plan_bytes, meta_extra, files = _build(trt, cuda, b, plan, cfg, dev)
            meta = tp.engine_metadata(
                meta_extra.pop("plan"), dev, trt_version=trt.__version__, skugen_version=__version__,
                build_seconds=meta_extra.pop("build_seconds"), plan_sha256=sha256_bytes(plan_bytes),
                plan_bytes=len(plan_bytes), layers=meta_extra.pop("layers"), io=meta_extra.pop("io"),
                bundle={"name": b.name, "kind": b.kind, "manifest_sha256": b.manifest_sha256},
                extra={**meta_extra, "build_config": cfg.to_dict()})
            with atomic_dir(out_dir) as tmp:
                atomic_write_bytes(tmp / tp.ENGINE_FILE, plan_bytes)
                for name, data in files.items():
                    atomic_write_bytes(tmp / name, data)
                atomic_write_json(tmp / tp.SIDECAR_FILE, meta)
            log.info("built TensorRT engine %s in %.1f s", out_dir, meta["build_seconds"])
            return EngineRecord(key, precision, out_dir, meta, built=True)
    finally:
        pctx.detach()


def create_network(trt, builder):
    """A strongly typed network definition: STRONGLY_TYPED on 10.x, the default on 11 (plan.network_creation_flags)."""
    bits = 0
    for name in tp.network_creation_flags(trt.__version__):
        flag = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if flag is None:
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no NetworkDefinitionCreationFlag.{name}; skugen "
                                     "needs TensorRT 10.3 or newer. Install it with: pip install 'skugen[tensorrt]'")
        bits |= 1 << int(flag)
    return builder.create_network(bits)


def _build(trt, cuda, b, plan: BuildPlan, cfg: BuildConfig, dev: dict) -> tuple[bytes, dict, dict]:
    """Parse the ONNX, configure the builder, build, inspect. Returns (plan bytes, sidecar extras, extra files)."""
    logger = _logger(trt)
    onnx_path = b.root / plan.source_file
    builder = trt.Builder(logger)
    network = create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {onnx_path.name} ({errs or 'no details'}). The graph may use an op "
                          "TensorRT does not support; check `skugen verify --backend onnxruntime`, then re-export.")
    _check_network_inputs(network, plan, onnx_path)
    if plan.quantization == tp.QUANT_QDQ and not _has_qdq(trt, network):
        raise BundleError(f"{onnx_path.name} has no QuantizeLinear/DequantizeLinear layers, so a strongly typed "
                          "build cannot make it INT8 (skugen does no calibration-based implicit INT8). Run skugen's "
                          "quantizer first: `skugen export STUDENT --int8`.")

    bcfg = builder.create_builder_config()
    bcfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    # DETAILED: the engine inspector then reports each layer's chosen precision/format for engine.json.
    bcfg.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if plan.optimization_level is not None:
        bcfg.builder_optimization_level = int(plan.optimization_level)
    profile = builder.create_optimization_profile()
    for p in plan.profile:
        profile.set_shape(p.name, p.min, p.opt, p.max)
    bcfg.add_optimization_profile(profile)

    tc_path, tc_loaded = None, False
    if cfg.timing_cache:
        tc_path = tp.timing_cache_path(config.cache_dir("tensorrt"), dev["name"], dev["compute_capability"],
                                       trt.__version__)
        tc_loaded = _set_timing_cache(bcfg, tc_path)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, bcfg)
    build_seconds = time.perf_counter() - t0
    if serialized is None:
        raise BundleError(f"TensorRT failed to build a {plan.precision} engine from {onnx_path.name}.{_trt_errors()} "
                          "Try a larger --workspace-mb, a smaller --max-batch/--max-hw, or check the ONNX with "
                          "`skugen verify --backend onnxruntime`.")
    plan_bytes = memoryview(serialized).tobytes()

    if tc_path is not None:
        with contextlib.suppress(Exception):  # a timing cache is an optimisation; never fail a build on it
            atomic_write_bytes(tc_path, memoryview(bcfg.get_timing_cache().serialize()).tobytes())
    extra: dict[str, Any] = {"timing_cache": {"path": str(tc_path) if tc_path else None, "loaded": tc_loaded}}

    layers, io, mem = _inspect(trt, plan_bytes, plan)
    extra.update({"plan": plan, "build_seconds": build_seconds, "layers": layers, "io": io,
                  "engine_device_memory_bytes": mem})
    return plan_bytes, extra, {}


def _check_network_inputs(network, plan: BuildPlan, onnx_path: Path) -> None:
    net = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    want = {p.name: p for p in plan.profile}
    if set(net) != set(want):
        raise BundleError(f"{onnx_path.name} has inputs {sorted(net)} but the manifest's io.inputs are "
                          f"{sorted(want)}. The bundle is inconsistent; re-export it.")
    for name, shape in net.items():
        if len(shape) != len(want[name].min):
            raise BundleError(f"{onnx_path.name} input {name!r} has rank {len(shape)} {shape}, the manifest says "
                              f"rank {len(want[name].min)}. Re-export the bundle.")


def _has_qdq(trt, network) -> bool:
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in kinds for i in range(network.num_layers))


def _set_timing_cache(bcfg, path: Path) -> bool:
    """Attach the persisted timing cache (or a fresh one). Returns whether a saved one was loaded."""
    blob = b""
    if path.is_file():
        with contextlib.suppress(OSError):
            blob = path.read_bytes()
    if blob:
        try:
            cache = bcfg.create_timing_cache(blob)
            if cache is not None and bcfg.set_timing_cache(cache, ignore_mismatch=False):
                return True
        except Exception:  # noqa: BLE001 - TensorRT raises on a corrupt blob
            pass
    if blob:
        log.warning("timing cache %s is unusable (other GPU/TensorRT, or corrupt); starting a fresh one", path)
    bcfg.set_timing_cache(bcfg.create_timing_cache(b""), ignore_mismatch=False)
    return False


def _inspect(trt, plan_bytes: bytes, plan: BuildPlan) -> tuple[list[dict], dict, int | None]:
    """Per-layer precision chosen by TensorRT, the engine's I/O, and its activation memory."""
    runtime = trt.Runtime(_logger(trt))
    engine = runtime.deserialize_cuda_engine(plan_bytes)
    if engine is None:
        raise BundleError(f"TensorRT built an engine it cannot load back.{_trt_errors()}")
    io = {"inputs": [], "outputs": []}
    for i in range(engine.num_io_tensors):
        n = engine.get_tensor_name(i)
        kind = "inputs" if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT else "outputs"
        io[kind].append({"name": n, "dtype": str(engine.get_tensor_dtype(n)).split(".")[-1].lower(),
                         "shape": [int(d) for d in engine.get_tensor_shape(n)]})
    mem = _engine_device_memory(engine)
    layers: list[dict] = []
    try:
        context = engine.create_execution_context()
        for p in plan.profile:  # concrete shapes, else the inspector says "N/A due to dynamic shapes"
            context.set_input_shape(p.name, p.opt)
        inspector = engine.create_engine_inspector()
        inspector.execution_context = context
        layers = tp.layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        del inspector, context
    except Exception as exc:  # noqa: BLE001 - the report is informative; never fail a good build on it
        log.warning("engine inspector failed (%s: %s); engine.json will lack per-layer precisions",
                    type(exc).__name__, exc)
    del engine, runtime
    return layers, io, mem


def _engine_device_memory(engine) -> int | None:
    for attr in ("device_memory_size_v2", "device_memory_size"):  # _v2 since TRT 10.1
        with contextlib.suppress(Exception):
            return int(getattr(engine, attr))
    return None
