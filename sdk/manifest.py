"""The bundle manifest as one schema: frozen dataclasses, parsed once at load.

    m = Manifest.from_dict(json.loads(raw))      # BundleError (ending with the fix) if malformed
    m.value_range, m.io.max_batch, m.variant("int8", "tensorrt").file
    m.to_dict()                                  # what manifest.json holds (unknown keys kept)

The exporter (skugen.export.bundle) builds a Manifest, skugen.bundle.load_bundle
parses manifest.json into `Bundle.spec`, and every reader uses that object.
One *Variant* per precision x backend: `models[precision]` is the file ONNX Runtime
runs, and `models[precision].variants[backend]` a twin of it for one backend
(today: the signed-int8 Q/DQ graph TensorRT needs). A new variant is one new entry.

Every section keeps the keys it does not know in `extra` and writes them back, so
a manifest from a newer exporter (same schema_version) survives a round trip.
`manifest_schema()` derives the JSON Schema (sdk/manifest.schema.json) from these
dataclasses; tests/sdk/test_manifest.py keeps the committed copy in sync.

Older manifests of the same schema_version that the earlier readers tolerated are
migrated in `Manifest.from_dict` (see `_migrate`); anything else raises BundleError
telling the user to re-export. Runtime side: no numpy, no torch.
"""
from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from .errors import BundleError, InputError

log = logging.getLogger("skugen.manifest")

SCHEMA_VERSION = 2   # the newest this reader knows; the exporter writes 1 unless the bundle has `graphs` (2)
GRAPHS_SCHEMA = 2    # the first schema with several graphs per bundle (older readers refuse it: "upgrade")
KINDS = ("generator", "enhancer", "diffusion")


def schema_for(graphs: Mapping | None) -> int:
    """The schema_version an exporter writes: 1 for one-graph bundles (every skugen reads them), 2 with graphs."""
    return GRAPHS_SCHEMA if graphs else 1
DEFAULT_MAX_BATCH = 64
# The model output range per kind: what the exporter writes into postprocess.value_range,
# and what a manifest that predates the field means (the only two ranges skugen exported then).
DEFAULT_VALUE_RANGE = {"generator": (-1.0, 1.0), "enhancer": (0.0, 1.0), "diffusion": (-1.0, 1.0)}
DIFFUSION_INPUTS = ("x", "t", "context", "mask")
_FIX = "The bundle is malformed or from an incompatible exporter; re-export it with `skugen export`."


def _fail(where: str, what: str) -> BundleError:
    return BundleError(f"{where}: manifest {what}. {_FIX}")

# ----------------------------------------------------------------------------- generic (de)serialisation


def _positive(default: Any = dataclasses.MISSING, **kw) -> Any:
    """A field that must be an int >= 1 (checked at parse time)."""
    return field(default=default, metadata={"positive": True}, **kw)


class Section:
    """Base of every manifest section: from_dict/to_dict driven by the dataclass field types.

    Supported field types: str, int, float, bool, Any, X | None, tuple[X, ...], tuple[X, X],
    dict[str, X] and nested Sections. `extra` holds the keys a section does not declare.
    """

    extra: Mapping[str, Any]

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest", path: str = ""):
        """Parse one section; `where` names the manifest in errors, `path` the section in it (e.g. "io")."""
        if not isinstance(d, Mapping):
            raise _fail(where, f"section {path or cls.__name__} must be an object, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        kw: dict[str, Any] = {}
        names = set()
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            names.add(f.name)
            if f.name in d:
                kw[f.name] = _parse(hints[f.name], d[f.name], where, _join(path, f.name), f.metadata)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(where, f"lacks {_join(path, f.name)!r}")
        kw["extra"] = {k: v for k, v in d.items() if k not in names}
        obj = cls(**kw)
        obj.check(where)
        return obj

    def check(self, where: str) -> None:
        """Cross-field validation (override); raise _fail(where, ...)."""

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = _dump(v)
        out.update(self.extra)
        return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _parse(tp: Any, v: Any, where: str, key: str, meta: Mapping = types.MappingProxyType({})) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return v
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse(a, v, where, key, meta)
            except BundleError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else _fail(where, f"field {key}={v!r} must be one of "
                                                       f"{[_type_name(a) for a in args if a is not type(None)]}")
    if isinstance(tp, type) and issubclass(tp, Section):
        return tp.from_dict(v, where, key)
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise _fail(where, f"field {key}={v!r} must be a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse(args[0], x, where, f"{key}[{i}]") for i, x in enumerate(v))
        if len(v) != len(args):
            raise _fail(where, f"field {key}={v!r} must have {len(args)} items")
        return tuple(_parse(a, x, where, f"{key}[{i}]") for i, (a, x) in enumerate(zip(args, v)))
    if origin is dict:
        if not isinstance(v, Mapping):
            raise _fail(where, f"field {key} must be an object, got {type(v).__name__}")
        return {str(k): _parse(args[1], x, where, _join(key, k)) for k, x in v.items()}
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(where, f"field {key}={v!r} must be a number")
        return float(v)
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int) or (meta.get("positive") and v < 1):
            raise _fail(where, f"field {key}={v!r} must be a {'positive ' if meta.get('positive') else ''}int")
        return v
    if tp in (str, bool):
        if not isinstance(v, tp):
            raise _fail(where, f"field {key}={v!r} must be a {tp.__name__}")
        return v
    raise TypeError(f"manifest field type {tp!r} is not supported")  # a bug in this module, not in the bundle


def _dump(v: Any) -> Any:
    if isinstance(v, Section):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_dump(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _dump(x) for k, x in v.items()}
    return v

# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class TensorSpec(Section):
    """One model input/output. shape: ints (static axes), names ("batch", "h", "2h") or null (dynamic ones)."""

    name: str
    shape: tuple[int | str | None, ...]           # None or a name: a dynamic axis
    dtype: str = "float32"
    range: tuple[float, float] | None = None      # value range the tensor holds (None: unbounded, e.g. z)
    extra: Mapping[str, Any] = field(default_factory=dict)  # distribution, encoding, note


@dataclass(frozen=True)
class IOSpec(Section):
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    class_names: tuple[str, ...] = ()
    max_batch: int = _positive(DEFAULT_MAX_BATCH)  # largest batch the runtime/engines run in one call
    channels: int | None = _positive(None)
    # generator
    z_dim: int | None = _positive(None)
    n_classes: int | None = _positive(None)
    image_size: int | None = _positive(None)
    # enhancer
    scale: int | None = _positive(None)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


@dataclass(frozen=True)
class Preprocess(Section):
    # enhancer: the photo -> tensor mapping
    layout: str | None = None                       # RGB | GRAY
    tensor_layout: str | None = None                # NCHW
    dtype: str | None = None
    input_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | float | None = None   # one number or one per channel, in input_range units
    std: tuple[float, ...] | float | None = None
    # generator: how the inputs are drawn (descriptive)
    z: str | None = None
    labels: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mean_t(self) -> tuple[float, ...]:
        return (0.0,) if self.mean is None else (self.mean,) if isinstance(self.mean, float) else self.mean

    @property
    def std_t(self) -> tuple[float, ...]:
        return (1.0,) if self.std is None else (self.std,) if isinstance(self.std, float) else self.std

    def check(self, where: str) -> None:
        m, s = self.mean_t, self.std_t
        if len(m) not in (1, 3) or len(s) not in (1, 3) or min(s) <= 0:
            raise _fail(where, f"preprocess mean/std {m}/{s} must be 1 or 3 numbers, std > 0")


@dataclass(frozen=True)
class Postprocess(Section):
    value_range: tuple[float, float]                # the model output range mapped to [0, 255]
    layout: str | None = None                       # RGB | GRAY
    clamp: bool = True
    to_uint8: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check(self, where: str) -> None:
        lo, hi = self.value_range
        if not hi > lo:
            raise _fail(where, f"postprocess.value_range {list(self.value_range)} needs low < high")


@dataclass(frozen=True)
class Tile(Section):
    """Enhancer tiling in LR pixels: overlap/2 must cover the receptive radius for seamless output."""

    size: int | None = None
    overlap: int = 0
    units: str | None = None
    receptive_radius: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.size is None:
            return
        from . import tiling

        try:
            tiling.check_tile_params(self.size, self.overlap)
        except InputError as e:
            raise _fail(where, f"tile section is invalid ({e})") from None


@dataclass(frozen=True)
class CpuLatency(Section):
    """Export-time ONNX Runtime CPU timing of one variant: guides precision='auto'."""

    p50_ms: float | None = None
    request: str | None = None
    threads: int | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant(Section):
    """One ONNX file of the bundle: a precision, for ONNX Runtime (models[p]) or a backend twin (variants[b])."""

    file: str
    sha256: str
    bytes: int | None = None
    weights: str | None = None                      # a second file the model needs (OpenVINO IR: the .bin beside the .xml)
    precision: str | None = None
    activations: str | None = None                  # int8: uint8 (ORT x86 U8S8) or int8 (TensorRT)
    use_for: tuple[str, ...] | None = None          # backends this file is for (None: every backend)
    cpu_latency: CpuLatency | None = None
    opset: int | None = None
    params: int | None = None
    macs: int | None = None
    macs_input: tuple[int, ...] | None = None
    op_counts: dict[str, int] | None = None
    bn_folded: int | None = None
    quantization: dict[str, Any] | None = None
    variants: dict[str, "Variant"] = field(default_factory=dict)  # backend -> twin of this file
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.variants:
            d.pop("variants")
        return d


@dataclass(frozen=True)
class Golden(Section):
    inputs: str
    outputs: str
    source: str | None = None
    reference: str | None = None
    n: int | None = None
    # precision -> {atol, rtol} (element-wise) or {min_psnr_db, max_mean_abs, ...} (int8); see skugen.verify
    tolerances: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph(Section):
    """A further graph of a multi-graph bundle, with its own I/O, variants (sha256 each) and golden data.

    The graph that runs most (a diffusion denoiser: N times per image) is the bundle's own io/models/golden,
    so verify, bench, tune and every backend treat it like any bundle's model; `Manifest.graph(name)` gives
    a Manifest view of another graph for the same machinery (runner_for, verify)."""

    io: IOSpec
    models: dict[str, Variant]
    golden: Golden | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiffusionSpec(Section):
    """How the runtime samples a diffusion bundle (skugen.diffusion): the loop around the denoiser."""

    vocab: str                                      # the tokenizer's vocabulary JSON (hashed like every file)
    context: int = _positive()                      # tokens the text encoder takes, BOS/EOS included
    steps: int = _positive()                        # default sampling steps
    max_steps: int = _positive()                    # the most steps the runtime accepts
    guidance: float = 1.0                           # default classifier-free guidance scale (1: no guidance)
    sampler: str = "euler"
    objective: str = "rectified_flow"               # the denoiser predicts v = noise - image
    time: str = "t = 1 is pure noise, t = 0 the image; Euler: x <- x + (t_next - t) * v"
    text_graph: str = "text_encoder"                # the graph in `graphs` that turns tokens into `context`
    distilled_guidance: float | None = None         # a student with this CFG scale in its weights: no CFG at run time
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.steps > self.max_steps:
            raise _fail(where, f"diffusion.steps {self.steps} exceeds max_steps {self.max_steps}")
        if self.sampler != "euler" or self.objective != "rectified_flow":
            raise _fail(where, f"diffusion sampler {self.sampler!r} / objective {self.objective!r} unknown; this "
                               "skugen samples 'euler' on 'rectified_flow'")


@dataclass(frozen=True)
class Manifest(Section):
    schema_version: int
    name: str
    kind: str
    io: IOSpec
    models: dict[str, Variant]                      # precision -> the file ONNX Runtime runs
    golden: Golden
    postprocess: Postprocess
    files: dict[str, str] = field(default_factory=dict)  # every hashed file: relative path -> sha256
    skugen_version: str | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    tile: Tile | None = None
    reports: dict[str, str] = field(default_factory=dict)
    card: str | None = None
    source: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    graphs: dict[str, Graph] = field(default_factory=dict)  # further graphs (schema 2); {} for one-graph bundles
    diffusion: DiffusionSpec | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.graphs:
            d.pop("graphs")
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(d, Mapping) or "schema_version" not in d:
            raise BundleError(f"{where} has no schema_version: not a skugen bundle, or one written before "
                              "skugen 0.1. Re-export it with `skugen export`.")
        v = d["schema_version"]
        if isinstance(v, bool) or not isinstance(v, int):
            raise BundleError(f"{where}: schema_version {v!r} is not an integer. {_FIX}")
        if v > SCHEMA_VERSION:
            raise BundleError(f"bundle schema_version {v} is newer than this skugen supports ({SCHEMA_VERSION}). "
                              "Upgrade skugen (`pip install -U skugen`) or re-export the bundle with this version.")
        if v < 1:
            raise BundleError(f"{where}: schema_version {v} predates skugen 0.1 and cannot be migrated. "
                              "Re-export the bundle with `skugen export`.")
        for key in ("name", "kind", "io", "models", "files", "golden"):
            if key not in d:
                raise BundleError(f"{where} lacks {key!r}; the bundle is incomplete. Re-export it.")
        if d["kind"] not in KINDS:
            raise BundleError(f"{where}: bundle kind {d['kind']!r} unknown; expected one of {KINDS}. {_FIX}")
        return super().from_dict(_migrate(d, where), where, "")

    def check(self, where: str) -> None:
        if not self.models:
            raise BundleError(f"{where} lists no models. Re-export the bundle.")
        io, ins = self.io, self.io.input_names
        if not io.outputs:
            raise _fail(where, "lists no outputs")
        if self.graphs and self.schema_version < GRAPHS_SCHEMA:
            raise _fail(where, f"has graphs but schema_version {self.schema_version} < {GRAPHS_SCHEMA}")
        if self.kind == "diffusion":
            if set(ins) != set(DIFFUSION_INPUTS):
                raise _fail(where, f"diffusion denoiser inputs {ins} are not {DIFFUSION_INPUTS}")
            if self.diffusion is None:
                raise _fail(where, "of a diffusion bundle lacks the 'diffusion' section")
            if self.diffusion.text_graph not in self.graphs:
                raise _fail(where, f"lacks the text encoder graph {self.diffusion.text_graph!r} (graphs: "
                                   f"{sorted(self.graphs)})")
        elif self.kind == "generator":
            if set(ins) != {"z", "onehot"}:
                raise _fail(where, f"generator inputs {ins} are not (z, onehot)")
            if io.z_dim is None or io.n_classes is None:
                raise _fail(where, "io needs z_dim and n_classes (or static z/onehot shapes)")
            if io.class_names and len(io.class_names) != io.n_classes:
                raise _fail(where, f"has {len(io.class_names)} class names but n_classes={io.n_classes}")
        else:
            if ins != ("lr",):
                raise _fail(where, f"enhancer inputs {ins} are not (lr,)")
            t = self.tile
            if t and t.size is not None and t.receptive_radius is not None and t.overlap // 2 < t.receptive_radius:
                log.warning("bundle %s: tile overlap %d < 2 x receptive radius %d; tiled outputs will differ from "
                            "untiled ones near tile seams. Re-export with a larger tile overlap.",
                            self.name, t.overlap, t.receptive_radius)

    # -- accessors every reader uses --------------------------------------------------------
    @property
    def value_range(self) -> tuple[float, float]:
        """(low, high) of the model output, mapped to [0, 255] by postprocessing."""
        return self.postprocess.value_range

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.models)

    @property
    def scale(self) -> int:
        """Enhancer upscale factor (1 for a generator)."""
        return self.io.scale or 1

    # The model-spec view the runtime reads (Pipeline.spec is the Manifest itself).
    @property
    def inputs(self) -> tuple[str, ...]:
        return self.io.input_names

    @property
    def output(self) -> str:
        return self.io.outputs[0].name

    @property
    def max_batch(self) -> int:
        return self.io.max_batch

    @property
    def z_dim(self) -> int:
        return self.io.z_dim or 0

    @property
    def n_classes(self) -> int:
        return self.io.n_classes or 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.io.class_names

    @property
    def tile_size(self) -> int | None:
        return self.tile.size if self.tile else None

    @property
    def tile_overlap(self) -> int:
        return self.tile.overlap if self.tile else 0

    @property
    def in_mean(self) -> tuple[float, ...]:
        return self.preprocess.mean_t

    @property
    def in_std(self) -> tuple[float, ...]:
        return self.preprocess.std_t

    def variant(self, precision: str, backend: str | None = None) -> Variant:
        """The file `backend` runs for `precision`: a backend twin when the bundle has one, else models[precision]."""
        if precision not in self.models:
            raise InputError(f"bundle {self.name!r} has no {precision!r} model; it has {list(self.models)}. "
                             "Re-export with `skugen export ... --int8` to add INT8.")
        v = self.models[precision]
        return v.variants.get(backend, v) if backend else v

    def tolerance(self, precision: str, backend: str | None = None) -> dict:
        """The golden tolerance of `precision`; a backend's own flavour ("int8.openvino": its INT8 is another
        quantization of the model) has its own entry when the exporter measured one."""
        tols = self.golden.tolerances
        if backend and f"{precision}.{backend}" in tols:
            return tols[f"{precision}.{backend}"]
        if precision not in tols:
            hint = " Re-export with `skugen export ... --int8`." if precision == "int8" else " Re-export the bundle."
            raise BundleError(f"bundle {self.name!r} has no golden tolerance for {precision}; it has "
                              f"{sorted(tols)}.{hint}")
        return tols[precision]

    def graph(self, name: str) -> "Manifest":
        """A Manifest view of graph `name` (its io, models and golden; everything else shared), for the machinery
        that takes one model per bundle (backends.runner_for, verify). The bundle's own graph is `self`."""
        if name not in self.graphs:
            raise InputError(f"bundle {self.name!r} has no graph {name!r}; it has {sorted(self.graphs) or 'none'}.")
        g = self.graphs[name]
        return dataclasses.replace(self, name=f"{self.name}:{name}", io=g.io, models=g.models,
                                   golden=g.golden or self.golden, graphs={})

    def referenced_files(self) -> list[str]:
        """Every file the manifest points at that must carry a sha256 in `files`."""
        out = [self.golden.inputs, self.golden.outputs]
        sections = [self.models] + [g.models for g in self.graphs.values()]
        for g in self.graphs.values():
            if g.golden is not None:
                out += [g.golden.inputs, g.golden.outputs]
        for models in sections:
            for v in models.values():
                for f in (v, *v.variants.values()):
                    out.append(f.file)
                    if f.weights:
                        out.append(f.weights)
        if self.diffusion is not None:
            out.append(self.diffusion.vocab)
        return list(dict.fromkeys(out))


def _migrate(d: Mapping, where: str) -> dict:
    """Normalise what earlier schema-1 writers and hand-made manifests left implicit (the readers each
    filled it in with their own defaults before the manifest had one parser):
    - postprocess.value_range missing -> the kind's range; "-1,1" / "0,1" strings -> [low, high];
    - tile under io.tile -> the top-level tile section;
    - io.z_dim / io.n_classes missing -> the static last axis of the z / onehot input shapes;
    - enhancer io.scale missing -> 2."""
    d = dict(d)
    post = dict(d.get("postprocess") or {})
    vr = post.get("value_range", DEFAULT_VALUE_RANGE[d["kind"]])
    if isinstance(vr, str):
        try:
            vr = [float(x) for x in vr.replace(" ", "").split(",")]
        except ValueError:
            raise _fail(where, f"postprocess.value_range {vr!r} is not '-1,1', '0,1' or [low, high]") from None
    post["value_range"] = list(vr) if isinstance(vr, (list, tuple)) else vr
    d["postprocess"] = post
    io = d.get("io")
    if isinstance(io, Mapping):
        io = dict(io)
        if "tile" in io and "tile" not in d:
            d["tile"] = io.pop("tile")
        ins = io.get("inputs")
        if d["kind"] == "generator" and isinstance(ins, list):
            shapes = {t.get("name"): t.get("shape") for t in ins if isinstance(t, Mapping)}
            for key, tensor in (("z_dim", "z"), ("n_classes", "onehot")):
                s = shapes.get(tensor)
                if key not in io and isinstance(s, list) and s and isinstance(s[-1], int) and s[-1] > 0:
                    io[key] = s[-1]
            if "n_classes" not in io and io.get("class_names"):
                io["n_classes"] = len(io["class_names"])
        if d["kind"] == "enhancer" and "scale" not in io:
            io["scale"] = 2  # the only scale skugen exported before the field was written
        d["io"] = io
    return d

# ----------------------------------------------------------------------------- JSON Schema


def manifest_schema() -> dict:
    """JSON Schema (draft 2020-12) of manifest.json, derived from the dataclasses above."""
    defs: dict[str, dict] = {}

    def of(tp: Any, meta: Mapping = types.MappingProxyType({})) -> dict:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            return {}
        if origin in (Union, types.UnionType):
            return {"anyOf": [of(a, meta) for a in args]}
        if tp is type(None):
            return {"type": "null"}
        if isinstance(tp, type) and issubclass(tp, Section):
            section(tp)
            return {"$ref": f"#/$defs/{tp.__name__}"}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": of(args[0])}
            return {"type": "array", "prefixItems": [of(a) for a in args], "minItems": len(args),
                    "maxItems": len(args)}
        if origin is dict:
            return {"type": "object", "additionalProperties": of(args[1])}
        if tp is int:
            return {"type": "integer", **({"minimum": 1} if meta.get("positive") else {})}
        return {"type": {float: "number", str: "string", bool: "boolean"}[tp]}

    def section(cls: type) -> None:
        if cls.__name__ in defs:
            return
        defs[cls.__name__] = {}  # reserve (Variant refers to itself)
        hints = typing.get_type_hints(cls)
        props, required = {}, []
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            props[f.name] = of(hints[f.name], f.metadata)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        s: dict[str, Any] = {"type": "object", "properties": props, "required": required,
                             "additionalProperties": True}
        if cls.__doc__:
            s["description"] = " ".join(cls.__doc__.split())
        defs[cls.__name__] = s

    section(Manifest)
    root = dict(defs.pop("Manifest"))
    root["properties"] = {**root["properties"], "kind": {"enum": list(KINDS)},
                          "schema_version": {"type": "integer", "minimum": 1, "maximum": SCHEMA_VERSION}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "skugen-manifest.schema.json",
            "title": "skugen bundle manifest.json", **root, "$defs": dict(sorted(defs.items()))}
