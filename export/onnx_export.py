"""PyTorch -> ONNX: the first export stage, plus the torch-vs-ONNX parity report.

    res = onnx_from_torch(model)              # ExportResult (bytes + I/O spec + op counts)
    rep = parity_report(model, res.onnx_bytes) # raises VerificationError when torch and ORT disagree

What the exported graph guarantees (every later stage and the runtime rely on it):
- opset 17 (TensorRT 10 and ONNX Runtime >= 1.17 both take it);
- fixed I/O names: generator (z, onehot) -> image, enhancer lr -> hr, classifier image -> logits;
- a dynamic batch axis ("batch"), and dynamic h/w for the enhancer (any photo size);
- no BatchNormalization node: BN is folded into the preceding Conv/Linear in torch,
  before export, so INT8 quantizes the folded weights (quantizing unfolded weights
  and folding later would change the scales TensorRT sees);
- simplified with onnxslim, and passing onnx.checker (full_check) + shape inference;
- weighted nodes are named after their torch module ("blocks.0.conv1", "attn.q", "to_img"),
  so quantization reports and IgnoredScope lists read like the model code.
"""
from __future__ import annotations

import copy
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from skugen.errors import InputError, ModelError, VerificationError
from skugen.manifest import DEFAULT_VALUE_RANGE

from . import models

# Per-kind I/O contract. Ranges are what the runtime feeds / gets back.
IO_NAMES = {
    "generator": (("z", "onehot"), ("image",)),
    "enhancer": (("lr",), ("hr",)),
    "classifier": (("image",), ("logits",)),
}
# Ops that carry weights and that INT8 quantization acts on (Conv/Gemm/MatMul).
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 17                 # TensorRT 10 + ORT >= 1.17 both support it; Q/DQ per-channel needs >= 13
    dynamic_batch: bool = True      # one ONNX serves batch 1 (interactive) and batch 64 (catalogue jobs)
    dynamic_hw: bool | None = None  # None: dynamic for the enhancer (any photo size), static for fixed-size models
    fold_bn: bool = True            # BN folded in torch: INT8 then sees the weights that actually run
    simplify: bool = True           # onnxslim: constant folding + dead Shape/Gather chains of the tracer
    check: bool = True              # onnx.checker full_check + strict shape inference
    rename_nodes: bool = True       # weighted nodes named after torch modules (readable reports/IgnoredScope)
    trace_batch: int = 2            # > 1 so the tracer cannot specialise anything on batch 1
    trace_size: int = 32            # enhancer LR side used for tracing (h/w stay dynamic)


@dataclass(frozen=True)
class ExportResult:
    onnx_bytes: bytes
    kind: str                       # "generator" | "enhancer" | "classifier"
    inputs: tuple[dict, ...]        # [{name, dtype, shape}] with "batch"/"h"/"w" strings for dynamic axes
    outputs: tuple[dict, ...]
    opset: int
    op_counts: dict = field(hash=False)
    params: int = 0
    macs: int = 0                   # per sample, at the trace size (enhancer: trace_size^2 LR pixels)
    folded_bn: int = 0              # how many BatchNorm layers were folded away
    config: ExportConfig = ExportConfig()

    def proto(self):
        import onnx

        return onnx.load_from_string(self.onnx_bytes)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"kind": self.kind, "inputs": list(self.inputs), "outputs": list(self.outputs), "opset": self.opset,
                "op_counts": dict(self.op_counts), "params": self.params, "macs": self.macs,
                "folded_bn": self.folded_bn, "bytes": len(self.onnx_bytes), "config": asdict(self.config)}


def model_kind(model: nn.Module) -> str:
    if isinstance(getattr(model, "cfg", None), models.CustomConfig):
        return model.cfg.kind
    if isinstance(model, models.Generator):
        return "generator"
    if isinstance(model, models.Enhancer):
        return "enhancer"
    if isinstance(model, models.Classifier):
        return "classifier"
    raise ModelError(f"cannot export {type(model).__name__}: expected a skugen Generator, Enhancer or Classifier "
                     "(load one with skugen.export.ckpt.load_model).")

# ----------------------------------------------------------------------------- BatchNorm folding


def _fold_linear_bn(lin: nn.Linear, bn: nn.BatchNorm2d, spatial: int) -> None:
    """Fold a BN2d that follows `Linear -> view(B, C, h, w)` into the Linear (in place).

    Linear output o maps to channel o // spatial, so each BN channel scales a run of `spatial` rows.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)          # (C,)
    shift = bn.bias - bn.running_mean * scale                        # (C,)
    scale_o = scale.repeat_interleave(spatial)                       # (C*h*w,)
    shift_o = shift.repeat_interleave(spatial)
    bias = lin.bias if lin.bias is not None else torch.zeros_like(scale_o)
    lin.weight.data = lin.weight.data * scale_o[:, None]
    lin.bias = nn.Parameter(bias.data * scale_o + shift_o)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` (eval) with every BatchNorm folded into its producer; returns (copy, n_folded)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if isinstance(getattr(model, "cfg", None), models.CustomConfig):
        return _fold_custom(model)
    m = copy.deepcopy(model).eval()
    n = 0
    if isinstance(m, models.Generator):
        _fold_linear_bn(m.fc, m.fc_bn, 16)  # fc -> view(B, base, 4, 4) -> fc_bn
        m.fc_bn = nn.Identity()
        n += 1
        for blk in m.blocks:
            for c, b in (("conv1", "bn1"), ("conv2", "bn2")):
                blk[c] = fuse_conv_bn_eval(blk[c], blk[b])
                blk[b] = nn.Identity()
                n += 1
        if m.attn is not None:  # same folding idea: a constant scale moves into the producer's weights
            m.attn.fold_scale()
    elif isinstance(m, models.Classifier):
        layers = list(m.body)
        for i in range(len(layers) - 1):
            if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                layers[i], layers[i + 1] = fuse_conv_bn_eval(layers[i], layers[i + 1]), nn.Identity()
                n += 1
        m.body = nn.Sequential(*layers)
    elif isinstance(m, models.Enhancer):  # no BN; the residual scale is the same kind of constant
        for blk in m.body:
            blk.fold_res_scale()
    left = [k for k, v in m.named_modules() if isinstance(v, nn.modules.batchnorm._BatchNorm)]
    assert not left, f"BatchNorm layers left unfolded: {left}"
    return m, n


def _is_exported_program(model: nn.Module) -> bool:
    return isinstance(getattr(model, "cfg", None), models.CustomConfig) and model.cfg.format == "exported_program"


def _dynamo_export(model: nn.Module, x: tuple, kind: str, cfg: ExportConfig):
    """A torch.export program through torch.onnx's dynamo exporter.

    The TorchScript exporter traces a torch.export GraphModule with its symbolic sizes
    already turned into Python ints, baking the trace batch into every Reshape; the dynamo
    exporter keeps them symbolic (the parity report checks a different batch and size).
    """
    import logging

    ins, outs = IO_NAMES[kind]
    B = torch.export.Dim("batch", min=1, max=4096) if cfg.dynamic_batch else None
    hw = cfg.dynamic_hw if cfg.dynamic_hw is not None else kind == "enhancer"
    dims = []
    for _ in ins:
        d = {0: B} if B is not None else {}
        if hw and kind == "enhancer":
            d.update({2: torch.export.Dim("h", min=8, max=8192), 3: torch.export.Dim("w", min=8, max=8192)})
        dims.append(d)
    for name in ("torch.onnx", "onnxscript"):  # their progress chatter is not ours to show
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(model, x, input_names=list(ins), output_names=list(outs), opset_version=cfg.opset,
                                     dynamic_shapes=(tuple(dims),), dynamo=True, verbose=False)
        except Exception as e:
            raise ModelError(f"the dynamo ONNX exporter failed on this torch.export program ({type(e).__name__}: "
                             f"{str(e)[:300]}).") from e
    return prog.model_proto


def _copy_for_export(model: nn.Module) -> nn.Module:
    if isinstance(getattr(model, "cfg", None), models.CustomConfig) and model.cfg.format != "factory":
        return _fold_custom(model)[0]
    return copy.deepcopy(model).eval()


def _fold_custom(m: nn.Module) -> tuple[nn.Module, int]:
    """A user's module: torch.fx's Conv+BN fusion when the module is symbolically traceable.

    Frozen graphs and untraceable code are left as they are: the TorchScript ONNX exporter
    still folds eval-mode Conv+BN pairs, and export checks that no BatchNormalization node is left.
    """
    from torch.fx.experimental.optimization import fuse

    if m.cfg.format == "torchscript":
        return scripted(m), 0
    if m.cfg.format != "factory":  # a torch.export GraphModule: exported as is (not mutated, so not copied)
        return m.eval(), 0
    m = copy.deepcopy(m).eval()
    n_bn = sum(isinstance(v, nn.modules.batchnorm._BatchNorm) for v in m.modules())
    if n_bn == 0:
        return m, 0
    try:
        m.net = fuse(m.net)
    except Exception:  # not fx-traceable (data-dependent control flow): the exporter's peephole folds instead
        return m, 0
    return m, n_bn - sum(isinstance(v, nn.modules.batchnorm._BatchNorm) for v in m.net.modules())

# ----------------------------------------------------------------------------- TorchScript wrapper (user models)


class _ScriptEnhancer(nn.Module):
    def __init__(self, net: nn.Module, in_range: tuple[float, float], out_range: tuple[float, float]):
        super().__init__()
        self.net = net
        self.in_lo, self.in_span = float(in_range[0]), float(in_range[1] - in_range[0])
        self.out_lo, self.out_span = float(out_range[0]), float(out_range[1] - out_range[0])

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return (self.net(lr * self.in_span + self.in_lo) - self.out_lo) / self.out_span


class _ScriptGenerator(nn.Module):
    def __init__(self, net: nn.Module, index: bool, out_range: tuple[float, float]):
        super().__init__()
        self.net = net
        self.index = index
        self.out_lo, self.out_span = float(out_range[0]), float(out_range[1] - out_range[0])

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        if self.index:
            y = self.net(z, onehot.argmax(1))
        else:
            y = self.net(z, onehot)
        return (y - self.out_lo) * (2.0 / self.out_span) - 1.0


def scripted(model: nn.Module) -> torch.jit.ScriptModule:
    """The TorchScript-format wrapper as ONE ScriptModule, for the ONNX exporter.

    The TorchScript ONNX exporter cannot trace a Python module that calls a loaded
    ScriptModule ("not part of the active trace"), but it exports a ScriptModule whole, so
    the contract conversions are scripted around the user's module instead.
    """
    c = model.cfg
    if c.kind == "enhancer":
        w = _ScriptEnhancer(model.net, c.input_range, c.output_range)
    else:
        w = _ScriptGenerator(model.net, c.conditioning == "index", c.output_range)
    return torch.jit.script(w.eval())

# ----------------------------------------------------------------------------- export


def _dynamic_axes(kind: str, cfg: ExportConfig) -> dict:
    ins, outs = IO_NAMES[kind]
    hw = cfg.dynamic_hw if cfg.dynamic_hw is not None else kind == "enhancer"
    axes: dict[str, dict[int, str]] = {}
    for n in ins + outs:
        a = {0: "batch"} if cfg.dynamic_batch else {}
        if hw and kind == "enhancer":
            # hr is exactly 2h x 2w; named separately because ONNX dim_params cannot express "2*h"
            a.update({2: "h", 3: "w"} if n in ins else {2: "h_out", 3: "w_out"})
        if a:
            axes[n] = a
    return axes


def _rename_weighted_nodes(mp) -> None:
    """Name Conv/Gemm/MatMul nodes after their torch module, e.g. '/conv1_2/Conv' -> 'blocks.2.conv1'.

    The tracer names nodes by call scope, which loses ModuleList/ModuleDict indices
    (every stage's conv is '/conv1*'); the weight initializer keeps the full
    parameter path, so it is the reliable source. Weightless MatMuls (attention) keep
    their scope name with dots: 'attn.MatMul'.
    """
    inits = {i.name for i in mp.graph.initializer}
    used: set[str] = set()
    for node in mp.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        new = None
        for inp in node.input[1:]:
            if inp in inits and inp.endswith(".weight"):
                new = inp[: -len(".weight")]
                break
        if new is None:
            new = node.name.strip("/").replace("/", ".") or f"{node.op_type}_{len(used)}"
            # Linear without bias exports as MatMul on a transposed copy: '/embed/MatMul' -> 'embed'
            if new.endswith(f".{node.op_type}") and any(i in inits for i in node.input):
                new = new[: -len(node.op_type) - 1]
        while new in used:
            new += "_"
        used.add(new)
        node.name = new


def _io_spec(vis) -> tuple[dict, ...]:
    import onnx

    out = []
    for v in vis:
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        out.append({"name": v.name, "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name,
                    "shape": shape})
    return tuple(out)


def graph_to_onnx(module: nn.Module, args: tuple, ins, outs, dynamic_axes: dict, cfg: ExportConfig):
    """One eval-mode module -> a checked, simplified ModelProto with the given I/O names (every family's graphs)."""
    import onnx

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deliberate (dynamo=False): it gives stable scope names and
        # plain opset-17 graphs; its deprecation and tracer warnings are expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=list(ins), output_names=list(outs),
                          opset_version=cfg.opset, dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)
    return _finish(onnx.load_from_string(buf.getvalue()), cfg)


def _finish(mp, cfg: ExportConfig):
    import onnx

    if cfg.simplify:
        import onnxslim

        mp = onnxslim.slim(mp)
    if cfg.rename_nodes:
        _rename_weighted_nodes(mp)
    mp = onnx.shape_inference.infer_shapes(mp, check_type=True, strict_mode=True)
    if cfg.check:
        onnx.checker.check_model(mp, full_check=True)
    return mp


def onnx_from_torch(model: nn.Module, cfg: ExportConfig | None = None) -> ExportResult:
    """Export a skugen model to a checked, simplified, BN-free ONNX graph (see the module docstring)."""
    cfg = cfg or ExportConfig()
    if cfg.opset < 17:
        raise InputError(f"opset {cfg.opset} is too old; skugen exports opset >= 17 (TensorRT 10, ORT >= 1.17).")
    kind = model_kind(model)
    folded, n_bn = fold_batchnorm(model) if cfg.fold_bn else (_copy_for_export(model), 0)
    x = models.example_inputs(model.cfg, batch=cfg.trace_batch, size=cfg.trace_size, seed=0)
    ins, outs = IO_NAMES[kind]
    mp = _finish(_dynamo_export(folded, x, kind, cfg), cfg) if _is_exported_program(model) else \
        graph_to_onnx(folded, x, ins, outs, _dynamic_axes(kind, cfg), cfg)
    ops = Counter(n.op_type for n in mp.graph.node)
    if cfg.fold_bn and ops.get("BatchNormalization", 0):
        raise ModelError(f"{ops['BatchNormalization']} BatchNormalization node(s) survived folding: each BN must "
                         "follow a Conv/Linear in eval mode, or INT8 would quantize unfolded weights.")
    opset = next(o.version for o in mp.opset_import if o.domain in ("", "ai.onnx"))
    return ExportResult(
        onnx_bytes=mp.SerializeToString(), kind=kind, inputs=_io_spec(mp.graph.input),
        outputs=_io_spec(mp.graph.output), opset=int(opset), op_counts=dict(sorted(ops.items())),
        params=models.count_params(model), macs=models.count_macs(model, x), folded_bn=n_bn, config=cfg)

# ----------------------------------------------------------------------------- parity


def parity_inputs(model: nn.Module, n: int = 8, seed: int = 0, size: tuple[int, int] = (24, 40)) -> dict[str, np.ndarray]:
    """Fixed-seed inputs for a parity check, as float32 numpy feeds.

    generator: N(0,1) latents + one-hot labels cycling through the classes;
    enhancer: uniform [0,1] photos of a non-square size (so a graph that baked in
    the trace size fails here); classifier: uniform [-1,1] images.
    """
    kind = model_kind(model)
    rng = np.random.default_rng(seed)
    c = model.cfg
    if kind == "generator":
        z = rng.standard_normal((n, c.z_dim)).astype(np.float32)             # (N, z_dim)
        onehot = np.eye(c.n_classes, dtype=np.float32)[np.arange(n) % c.n_classes]  # (N, n_classes)
        return {"z": z, "onehot": onehot}
    if kind == "enhancer":
        return {"lr": rng.random((n, c.in_ch, *size), dtype=np.float32)}       # (N, 3, h, w)
    return {"image": (rng.random((n, c.in_ch, c.image_size, c.image_size), dtype=np.float32) * 2 - 1)}


def lr_to_feed(lr: np.ndarray) -> np.ndarray:
    """Enhancer input as the graph takes it: (N, h, w, 3) uint8 -> (N, 3, h, w) float32 in [0, 1]."""
    return np.ascontiguousarray(lr.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


VALUE_RANGE = DEFAULT_VALUE_RANGE  # the one table (skugen.manifest); bundles carry theirs in postprocess.value_range


def compare_outputs(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float,
                    value_range: tuple[float, float] | None = None) -> dict:
    """Polygraphy-style statistics of `got` against `ref`: the runtime's own comparison (skugen.verify).

    An element passes when |got - ref| <= atol + rtol * |ref|. Shared with `skugen verify`
    so the export-time check and the device-side check are the same code.
    """
    from skugen.verify import output_stats

    return output_stats(got, ref, atol, rtol, value_range)


def parity_report(model: nn.Module, onnx_bytes: bytes, n: int = 8, seed: int = 0, atol: float = 1e-4,
                  rtol: float = 1e-3, raise_on_fail: bool = True) -> dict:
    """Run the same fixed-seed inputs through torch (reference) and ONNX Runtime; compare per output.

    Returns {"pass", "outputs": {name: stats}, ...}. Raises VerificationError (with the
    stats) when any element is outside atol + rtol*|ref| and `raise_on_fail`.
    """
    from skugen.backends.onnxruntime import OnnxRuntimeRunner

    kind = model_kind(model)
    feeds = parity_inputs(model, n=n, seed=seed)
    model = model.eval()
    with torch.no_grad():
        ref = model(*[torch.from_numpy(feeds[k]) for k in IO_NAMES[kind][0]])
    refs = {IO_NAMES[kind][1][0]: ref.numpy()}
    with OnnxRuntimeRunner(onnx_bytes) as r:
        got = r.infer(feeds)
    stats = {k: compare_outputs(got[k], refs[k], atol, rtol, VALUE_RANGE.get(kind)) for k in refs}
    rep = {"pass": all(s["pass"] for s in stats.values()), "reference": "pytorch (fp32, eval)",
           "runtime": "onnxruntime CPU", "n": n, "seed": seed, "atol": atol, "rtol": rtol,
           "rule": "|onnx - torch| <= atol + rtol * |torch| for every element (Polygraphy semantics)",
           "input_shapes": {k: list(v.shape) for k, v in feeds.items()}, "outputs": stats}
    if raise_on_fail and not rep["pass"]:
        worst = "; ".join(f"{k}: max_abs {s.get('max_abs', float('nan')):.3g}, mean_abs {s.get('mean_abs', float('nan')):.3g}, "
                          f"{s.get('n_fail', '?')}/{s.get('n', '?')} elements outside, PSNR {s.get('psnr_db')} dB"
                          for k, s in stats.items() if not s["pass"])
        raise VerificationError(f"ONNX export disagrees with PyTorch beyond atol={atol}, rtol={rtol} ({worst}). "
                                "Check for ops the exporter changes (e.g. in-place updates, data-dependent shapes); "
                                "re-export, or loosen the tolerance only if the difference is understood.")
    return rep

# ----------------------------------------------------------------------------- models as bytes / protos


def as_proto(m):
    import onnx

    if isinstance(m, onnx.ModelProto):
        return m
    if isinstance(m, (bytes, bytearray)):
        return onnx.load_from_string(bytes(m))
    return onnx.load(str(m))


def as_bytes(m) -> bytes:
    import onnx

    if isinstance(m, (bytes, bytearray)):
        return bytes(m)
    if isinstance(m, onnx.ModelProto):
        return m.SerializeToString()
    return Path(m).read_bytes()


def session(model: bytes):
    """An activated ONNX Runtime runner for ONNX bytes (the toolchain's checks of graphs it just made)."""
    from skugen.backends.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model).activate()


def run_onnx(model: bytes, feeds: dict, batch: int = 64) -> np.ndarray:
    """First output of `model` over (N, ...) feeds, in chunks (bounded memory for attention maps)."""
    r = session(model)
    try:
        n = next(iter(feeds.values())).shape[0]
        outs = [r.infer({k: v[i:i + batch] for k, v in feeds.items()})[r.output_names()[0]]
                for i in range(0, n, batch)]
    finally:
        r.deactivate()
    return np.concatenate(outs)


def ort_outputs(onnx_bytes: bytes, feeds: dict) -> dict[str, np.ndarray]:
    """Every output of `onnx_bytes` on `feeds`, on ONNX Runtime CPU (one call, no chunking)."""
    from skugen.backends import onnx_runner

    with onnx_runner(onnx_bytes) as r:
        return r.infer(feeds)
