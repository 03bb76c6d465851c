"""Bring your own model: a PyTorch factory, a TorchScript file or an ExportedProgram, plus an I/O spec.

    skugen import my_pkg.nets:make_upscaler --io-spec io.json --weights w.safetensors --out runs/mine
    skugen pipeline --model runs/mine --out runs/mine-deploy          # or --model REF --io-spec io.json

The I/O spec (JSON) tells skugen what the model *is* for the runtime, because skugen
does not know the user's architecture:

    {"kind": "enhancer", "in_ch": 3, "scale": 2, "input_range": [0, 255], "output_range": [0, 255]}
    {"kind": "generator", "z_dim": 64, "n_classes": 10, "conditioning": "index",
     "out_ch": 1, "image_size": 32, "output_range": [0, 1], "class_names": ["t-shirt", ...]}

A `CustomModel` wraps the user's module so it speaks skugen's contract (generator
(z, onehot) -> image in [-1, 1]; enhancer lr in [0, 1] -> hr in [0, 1]); the range and
conditioning conversions are plain tensor ops, so they export into the ONNX graph and
the runtime needs nothing new.

What each format gets:
- factory (an nn.Module from the user's code): the whole chain. Pruning runs torch-pruning's
  MetaPruner over the user's graph (widths rounded to 8; the layer that produces the output,
  found by tracing, and `ignored_layers` stay whole) to a MACs target, then output-level
  distillation (L1 to the teacher) on the kind's real data. The pruned student is saved as an
  ExportedProgram (torch.export), since its new widths no longer match the user's factory.
- torchscript / exported_program (frozen graphs): import, export to ONNX with a parity report,
  quality-gated INT8, bundle, verify, bench. Structured pruning needs the module structure, so
  `compress` says so and the pipeline skips it (the bundle holds the teacher itself).

A factory's model directory is self-contained: import copies the factory's file and the local
modules it imports into OUT/source/ (sha256 per file in the card, plus one sha256 over them all),
and every later stage builds the module from that copy.

Nothing is unpickled: factories are imported code, TorchScript and ExportedProgram have
their own loaders, weights are safetensors. Every model directory still holds
model.safetensors (the state dict, sha256 in the card) so the rest of skugen reads it
like any model; frozen formats keep their program file beside it (sha256 checked).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn as nn

from skugen.errors import InputError, ModelError
from skugen.io import atomic_file, sha256_file
from skugen.report import invocation

from . import ckpt, models, userdata
from .models import PROGRAM_FILE, CustomConfig, CustomModel, _build_from, _dotted, call_factory, load_program
from .onnx_export import VALUE_RANGE, lr_to_feed

DISTILL_STEPS = {"fast": 300, "full": 3000}  # output distillation of a pruned factory model, per preset
TS_SUFFIXES = (".ts", ".jit", ".torchscript", ".pt", ".pth")
EP_SUFFIXES = (".pt2",)

# ----------------------------------------------------------------------------- I/O spec


def load_io_spec(spec: dict | str | os.PathLike) -> dict:
    """The I/O spec as written (dict or JSON file), unvalidated: what cache keys hash."""
    if not isinstance(spec, dict):
        p = Path(spec)
        if not p.is_file():
            raise InputError(f"I/O spec {p} not found. Write a JSON file like "
                             '{"kind": "enhancer", "in_ch": 3, "scale": 2} (see docs/custom_models.md).')
        try:
            spec = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"I/O spec {p} is not valid JSON ({e}). Fix the file (a JSON object, see "
                             "docs/custom_models.md).") from e
    if not isinstance(spec, dict):
        raise InputError("the I/O spec must be a JSON object, e.g. {\"kind\": \"enhancer\", \"scale\": 2}.")
    return spec


def spec_name(spec: dict | str | os.PathLike) -> str | None:
    """The spec's optional `name` (bundles, packages, Triton models and reports are named after it)."""
    name = load_io_spec(spec).get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InputError(f"I/O spec 'name' must be a non-empty string, got {name!r}.")
    return name


def parse_io_spec(spec: dict | str | os.PathLike) -> dict:
    """Validate an I/O spec (dict or JSON file) -> the CustomConfig fields it sets. InputError says what is wrong."""
    spec = load_io_spec(spec)
    spec_name(spec)
    kind = spec.get("kind")
    if kind not in ("generator", "enhancer"):
        raise InputError(f"I/O spec 'kind' must be 'generator' or 'enhancer', got {kind!r}.")
    allowed = {"kind", "factory_kwargs", "output_range", "ignored_layers", "name", "data"}  # data: userdata.for_import
    allowed |= ({"z_dim", "n_classes", "class_names", "conditioning", "out_ch", "image_size"} if kind == "generator"
                else {"in_ch", "scale", "input_range"})
    extra = set(spec) - allowed
    if extra:
        raise InputError(f"I/O spec keys {sorted(extra)} are not valid for a {kind}; allowed: {sorted(allowed)}.")

    def pos_int(k: str, default: int | None = None) -> int:
        v = spec.get(k, default)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"I/O spec {k!r} must be a positive integer, got {v!r}.")
        return v

    def rng(k: str, default: tuple[float, float]) -> tuple[float, float]:
        v = spec.get(k, list(default))
        if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, float)) for x in v)
                or not v[1] > v[0]):
            raise InputError(f"I/O spec {k!r} must be [low, high] with high > low, got {v!r}.")
        return float(v[0]), float(v[1])

    out: dict = {"kind": kind, "ignored_layers": tuple(spec.get("ignored_layers", ())),
                 "factory_kwargs": dict(spec.get("factory_kwargs", {}))}
    if kind == "generator":
        out.update(z_dim=pos_int("z_dim"), n_classes=pos_int("n_classes"), out_ch=pos_int("out_ch", 3),
                   image_size=pos_int("image_size"), output_range=rng("output_range", (-1.0, 1.0)))
        cond = spec.get("conditioning", "onehot")
        if cond not in ("onehot", "index"):
            raise InputError(f"I/O spec 'conditioning' must be 'onehot' or 'index', got {cond!r}.")
        out["conditioning"] = cond
        names = spec.get("class_names") or [f"class-{i}" for i in range(out["n_classes"])]
        if len(names) != out["n_classes"] or not all(isinstance(n, str) and n for n in names):
            raise InputError(f"I/O spec 'class_names' must be {out['n_classes']} non-empty strings, got {names!r}.")
        out["class_names"] = tuple(names)
    else:
        out.update(in_ch=pos_int("in_ch", 3), scale=pos_int("scale", 2), input_range=rng("input_range", (0.0, 1.0)),
                   output_range=rng("output_range", (0.0, 1.0)))
        if out["in_ch"] != 3:
            raise InputError(f"enhancer in_ch must be 3 (RGB photos: the runtime's enhance path), got {out['in_ch']}.")
    return out

# ----------------------------------------------------------------------------- loading user objects


def detect_format(ref: str) -> str:
    p = Path(ref)
    if p.suffix in EP_SUFFIXES:
        return "exported_program"
    if p.suffix in TS_SUFFIXES:
        return "torchscript"
    if ":" in ref:
        return "factory"
    if not p.exists():
        raise InputError(f"{ref!r} does not exist: it is no model directory, model file or zoo name. Check the "
                         "path (a typo?), or list the zoo with `skugen zoo list`.")
    raise InputError(f"cannot tell what {ref!r} is. Give a factory 'package.module:function' or "
                     "'path/to/file.py:function', a TorchScript file (.ts/.pt from torch.jit.save) or an "
                     "ExportedProgram (.pt2 from torch.export.save).")


def _check_outputs(model: CustomModel) -> None:
    """Run the contract once and compare shapes/dtypes with the spec (a clear error beats a wrong bundle)."""
    c = model.cfg
    x = models.example_inputs(c, batch=2, size=24)
    try:
        with torch.no_grad():
            y = model.eval()(*x)
    except Exception as e:
        what = "(z (B, z_dim) float32, " + ("labels (B,) int64)" if c.conditioning == "index" else "onehot (B, K))") \
            if c.kind == "generator" else "(x (B, C, h, w) float32)"
        err = _clip(f"{type(e).__name__}: {e}", 300)
        if c.format == "exported_program":
            raise ModelError(f"the ExportedProgram failed on inputs shaped per the I/O spec {what} ({err}). It was "
                             "probably exported with fixed shapes; re-export it with dynamic_shapes, e.g. "
                             "torch.export.export(m, args, dynamic_shapes=({0: Dim('batch'), 2: Dim('h'), "
                             "3: Dim('w')},)) for an enhancer (batch only for a generator).") from e
        raise ModelError(f"the model failed on inputs shaped per the I/O spec {what} ({err}). Fix the spec or the "
                         "model's forward signature.") from e
    want = (2, c.out_ch, c.image_size, c.image_size) if c.kind == "generator" else (2, c.in_ch, 24 * c.scale, 24 * c.scale)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want or y.dtype != torch.float32:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ModelError(f"the model returned {got}; the I/O spec promises a float32 tensor shaped {want}. "
                         "Return one image tensor, and check out_ch/image_size (generator) or in_ch/scale (enhancer).")

# ----------------------------------------------------------------------------- model directories


def card_common(model: CustomModel, name: str, extra: dict) -> dict:
    c = model.cfg
    ex = models.example_inputs(c, 1, 64)
    return {"name": name, "kind": c.kind, "params": models.count_params(model), "macs": models.count_macs(model, ex),
            "macs_input": "one 64x64 LR image" if c.kind == "enhancer" else "one sample", **extra}


def save_dir(model: CustomModel, out: str | os.PathLike, card: dict, program: Path | None = None) -> Path:
    """model.safetensors (+ the program file for frozen formats) + card.json, every file sha256-recorded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = model.cfg
    if c.format != "factory":
        if program is None:
            raise ModelError("a frozen-format custom model needs its program file")
        dst = out / PROGRAM_FILE[c.format]
        if program.resolve() != dst.resolve():
            with atomic_file(dst) as af:
                shutil.copyfile(program, af.tmp)
        card = {**card, "program": {"file": dst.name, "format": c.format, "sha256": sha256_file(dst)}}
    return ckpt.save_model(model, out, card)


def _clip(text: str, n: int) -> str:
    """`text` cut at a word boundary, at most n characters (a message never stops mid-word)."""
    text = " ".join(str(text).split())
    if len(text) <= n:
        return text
    cut = text[:n].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " ..."


CONVERT_HINT = ("python -c \"import torch, safetensors.torch as st; sd = torch.load('{w}', map_location='cpu', "
                "weights_only=True); st.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{out}')\"")


def _is_pickle(p: Path) -> bool:
    head = p.read_bytes()[:4] if p.is_file() else b""
    return head[:2] == b"PK" or head[:1] == b"\x80"  # torch.save's zip container, or a legacy pickle


def load_weights(net: nn.Module, weights: str | os.PathLike) -> None:
    """The user's safetensors state dict into `net`, with an error that says what to do for each usual mistake."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    w = Path(weights)
    if not w.exists():
        raise InputError(f"--weights {w} does not exist. Check the path (it is relative to {Path.cwd()}).")
    convert = CONVERT_HINT.format(w=w, out=w.with_suffix(".safetensors"))
    if w.suffix != ".safetensors" or _is_pickle(w):
        if _is_pickle(w):
            raise InputError(f"{w} is a torch.save file (a pickle), and skugen never unpickles. Convert it once "
                             f"with: {convert}")
        raise InputError(f"--weights must be a .safetensors file, got {w}. A torch.save'd state dict converts "
                         f"with: {convert}")
    try:
        sd = load_file(str(w))
    except (SafetensorError, OSError) as e:
        raise InputError(f"{w} is not a readable safetensors file ({_clip(str(e), 120)}). Re-save the state dict "
                         f"with safetensors.torch.save_file(model.state_dict(), '{w}').") from e
    want = net.state_dict()
    for pre in ("module.", "model."):
        if sd and all(k.startswith(pre) for k in sd) and not any(k.startswith(pre) for k in want):
            raise ModelError(f"the keys in {w} all start with {pre!r} (saved from a wrapper such as DataParallel), "
                             "the factory's do not. Strip the prefix once: python -c \"import safetensors.torch as "
                             f"st; sd = st.load_file('{w}'); st.save_file({{k.removeprefix('{pre}'): v for k, v "
                             f"in sd.items()}}, '{w}')\"")
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in want.items()
              if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or extra or shapes:
        parts = []
        for what, items in (("missing", missing), ("unexpected", extra), ("shape (file vs factory)", shapes)):
            if items:
                parts.append(f"{len(items)} {what}: {', '.join(items[:4])}" + (" ..." if len(items) > 4 else ""))
        raise ModelError(f"{w} does not fit the factory's module ({'; '.join(parts)}). Check the I/O spec's "
                         "factory_kwargs (the widths the factory builds must be those the weights were "
                         "trained with), or that --weights is this model's file.")
    net.load_state_dict(sd, strict=True)


# Ops the deployment rules (docs/custom_models.md) advise against, with why.
DISCOURAGED_OPS = {nn.ConvTranspose1d: "ConvTranspose", nn.ConvTranspose2d: "ConvTranspose",
                   nn.ConvTranspose3d: "ConvTranspose"}


def deployment_warnings(net: nn.Module, fmt: str, weights) -> list[str]:
    """What `skugen import` warns about: a factory without --weights, ops that deploy badly."""
    out = []
    if fmt == "factory" and weights is None:
        out.append("no --weights given: the model keeps the weights its factory builds (random unless the factory "
                   "loads them). Pass --weights model.safetensors if it was trained.")
    bad = [(n, DISCOURAGED_OPS[type(m)]) for n, m in net.named_modules() if type(m) in DISCOURAGED_OPS]
    if bad:
        out.append(f"{', '.join(n for n, _ in bad[:4])} {'is a' if len(bad) == 1 else 'are'} ConvTranspose: ONNX "
                   "Runtime does not fuse INT8 ConvTranspose on CPU (it stays float, and the INT8 model can be "
                   "slower than FP32) and it causes checkerboard artefacts. Upsample with nearest + Conv or "
                   "PixelShuffle instead (docs/custom_models.md, deployment rules).")
    return out


def import_model(ref: str, io_spec: dict | str | os.PathLike, out: str | os.PathLike,
                 weights: str | os.PathLike | None = None, name: str | None = None, data=None) -> Path:
    """A user's model + I/O spec -> a self-contained skugen model directory that compress/export/pipeline take.

    A factory's source file and the local modules it imports are copied into OUT/source/ (sha256 in the
    card) and every later stage loads that copy. Warnings (warnings.warn, UserWarning) name what deploys
    badly; `deployment_warnings` returns the same text. `data` (--data, or the spec's "data" key): the user's
    data (userdata.DataSpec) for distillation, the gates and the report; recorded in card["data"].
    """
    fields = parse_io_spec(io_spec)
    data_spec = userdata.for_import(io_spec, data)
    name = name or spec_name(io_spec) or Path(out).name
    fmt = detect_format(ref)
    sources = None
    if fmt == "factory":
        src = ref
        mod, _, fn = ref.rpartition(":")
        if mod.endswith(".py"):  # the original location, for the record (the copy is what loads)
            src = f"{Path(mod).resolve()}:{fn}"
        sources = factory_sources(ref)
        cfg = CustomConfig(format="factory", source=src, **fields)
        net = (call_factory(cfg) if sources is None else  # an installed package, else the files hashed and copied
               _build_from(Path(sources["root"]), sources["module"], sources["function"], sources["files"],
                           cfg.factory_kwargs))
        program = None
    else:
        if weights is not None:
            raise InputError(f"--weights is for factories; a {fmt.replace('_', ' ')} file carries its own weights. "
                             "Drop --weights.")
        if fields["factory_kwargs"]:
            raise InputError("factory_kwargs in the I/O spec only apply to a factory reference; remove them.")
        program = Path(ref)
        cfg = CustomConfig(format=fmt, source=program.name, program=PROGRAM_FILE[fmt], **fields)
        net = load_program(program, fmt)
    model = CustomModel(net, cfg)
    if weights is not None:
        load_weights(net, weights)
    _check_outputs(model)
    notes = deployment_warnings(net, fmt, weights)
    for n in notes:
        warnings.warn(f"skugen import: {n}", UserWarning, stacklevel=2)
    raw = load_io_spec(io_spec)
    card = card_common(model.eval(), name, {
        "data": userdata.card_entry(data_spec),
        "import": {"ref": ref, "format": fmt, "io_spec": {k: v for k, v in asdict(cfg).items()
                                                          if k in fields},
                   "io_spec_sha256": _digest_json(raw),
                   "weights": str(weights) if weights else None,
                   "weights_sha256": sha256_file(Path(weights)) if weights else None,
                   "warnings": notes},
        "command": invocation(),
    })
    out = Path(out)
    if sources is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out / SOURCE_DIR, ignore_errors=True)  # a re-import takes the current source, no leftovers
        card["source"] = _write_sources(sources, out)
    elif fmt == "factory":
        card["source"] = None
        warnings.warn(f"skugen import: {ref} is an installed package; the model directory loads it by name "
                      "(not copied), so keep that package installed.", UserWarning, stacklevel=2)
    return save_dir(model, out, card, program)


def _digest_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()

# ----------------------------------------------------------------------------- the factory's source, copied
# A factory's code is part of the model: the model directory keeps a copy of the file and of the LOCAL
# modules it imports (those found under the project root: the file's folder, or the sys.path entry a
# 'pkg.module' was found in), sha256-recorded in the card. Later stages load that copy, so a moved or
# renamed project still exports and compresses, and the pipeline's cache keys see every edit.
# Installed packages (site-/dist-packages, the standard library) are not copied or hashed.

SOURCE_DIR = "source"


def _installed(p: Path) -> bool:
    import sysconfig

    roots = {Path(v).resolve() for k, v in sysconfig.get_paths().items() if k in ("stdlib", "purelib", "platlib")}
    return any(part in ("site-packages", "dist-packages") for part in p.parts) or any(r in p.parents for r in roots)


def _module_file(root: Path, dotted: str) -> Path | None:
    p = root.joinpath(*dotted.split("."))
    for c in (p.with_suffix(".py"), p / "__init__.py"):
        if c.is_file():
            return c
    return None


def _local_imports(f: Path, root: Path) -> set[str]:
    """Dotted names `f` imports (absolute, and relative ones resolved against f's package)."""
    import ast

    try:
        tree = ast.parse(f.read_bytes(), str(f))
    except SyntaxError as e:
        raise ModelError(f"{f} is not valid Python ({e}). Fix the syntax error, then import again.") from e
    pkg = _dotted(f.relative_to(root)).split(".")
    if f.name != "__init__.py":
        pkg = pkg[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                base = ".".join([*up, *([base] if base else [])])
            if base:
                names.add(base)
            names |= {f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*"}
    return names


def factory_location(ref: str) -> tuple[Path, str, str] | None:
    """(project root, dotted module name, function) of a factory reference; None for an installed module."""
    mod, _, fn = ref.rpartition(":")
    if mod.endswith(".py"):
        p = Path(mod).resolve()
        if not p.is_file():
            raise InputError(f"factory file {mod} not found (looked at {p}). Check the path, or give "
                             "'package.module:function' for code on your PYTHONPATH.")
        return p.parent, p.stem, fn
    import importlib.util

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError) as e:
        raise InputError(f"cannot find module {mod!r} ({type(e).__name__}: {e}). Run from the folder that "
                         "holds the package, or add it to PYTHONPATH.") from e
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        if spec is None:
            raise InputError(f"no module named {mod!r}. Run from the folder that holds the package, or add it to "
                             "PYTHONPATH (or give 'path/to/file.py:function').")
        return None
    origin = Path(spec.origin).resolve()
    if _installed(origin):
        return None
    root = origin.parent
    for _ in range(mod.count(".") + (origin.name == "__init__.py")):
        root = root.parent
    return root, mod, fn


def factory_sources(ref: str) -> dict | None:
    """The factory's file and the local modules it imports: {"root", "module", "function", "files": {rel: bytes}}."""
    loc = factory_location(ref)
    if loc is None:
        return None
    root, mod, fn = loc
    entry = _module_file(root, mod)
    if entry is None:
        raise InputError(f"factory module {mod!r} not found under {root}.")
    files: dict[str, bytes] = {}
    todo = [entry]
    for i, part in enumerate(mod.split(".")[:-1]):  # a package's __init__ files run on import too
        init = _module_file(root, ".".join(mod.split(".")[:i + 1]))
        if init is not None:
            todo.append(init)
    while todo:
        f = todo.pop()
        rel = f.relative_to(root).as_posix()
        if rel in files:
            continue
        files[rel] = f.read_bytes()
        for name in _local_imports(f, root):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # a.b.c imports a, a.b and a.b.c
                g = _module_file(root, ".".join(parts[:k]))
                if g is not None and g.resolve() != f.resolve() and not _installed(g.resolve()):
                    todo.append(g)
    return {"root": str(root), "module": mod, "function": fn, "files": files}


def _files_digest(shas: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(shas, sort_keys=True).encode()).hexdigest()


def source_digest(ref: str) -> str | None:
    """One sha256 over the factory's file and its local modules (None: an installed module, not hashed)."""
    src = factory_sources(ref)
    if src is None:
        return None
    return _files_digest({k: hashlib.sha256(v).hexdigest() for k, v in src["files"].items()})


def _write_sources(src: dict, out: Path) -> dict:
    """Copy the source files into OUT/source/ (atomically, each re-hashed after writing) -> the card entry."""
    shas = {}
    for rel, data in src["files"].items():
        dst = out / SOURCE_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(dst) as af:
            af.tmp.write_bytes(data)
        shas[rel] = sha256_file(dst)
        if shas[rel] != hashlib.sha256(data).hexdigest():
            raise ModelError(f"copying {rel} into {out / SOURCE_DIR} changed its bytes; check the disk and retry.")
    return {"dir": SOURCE_DIR, "root": src["root"], "module": src["module"], "function": src["function"],
            "files": shas, "sha256": _files_digest(shas)}

# ----------------------------------------------------------------------------- what compress needs to know


def output_layers(model: CustomModel) -> list[nn.Module]:
    """The weighted layer(s) whose output channels ARE the model's output: the last executed Conv/Linear
    (tracing one forward). Pruning them would change the output shape (or PixelShuffle's channel grouping)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model.eval()(*models.example_inputs(model.cfg, 2, 24))
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ModelError("the model has no Conv2d/Linear layer that runs in forward(); nothing to prune.")
    return [order[-1]]


def check_prunable(model: CustomModel) -> None:
    """ModelError unless structured pruning can edit this model (a factory, its ignored_layers real modules)."""
    if model.cfg.format != "factory":
        raise ModelError(f"structured pruning needs the module structure; a {model.cfg.format.replace('_', ' ')} is "
                         "a frozen graph. Import the model as a factory ('pkg.module:function') to compress it.")
    named = dict(model.named_modules())
    missing = [n for n in model.cfg.ignored_layers if f"net.{n}" not in named]
    if missing:
        raise InputError(f"ignored_layers {missing} are not modules of the model; names are relative to the "
                         "factory's module (as in named_modules()).")


def input_paths(cfg: CustomConfig, split: str) -> list | None:
    """The photos an enhancer's inputs are cut from (GroceryStore `split`); None for a generator."""
    if cfg.kind != "enhancer":
        return None
    from . import data

    return [p for p, _, _ in data.grocery_split(split)]


def input_batch(cfg: CustomConfig, b: int, seed: int, paths: list | None) -> tuple[torch.Tensor, ...]:
    """One batch of the kind's real input distribution (latents, or degraded crops of `paths`)."""
    if cfg.kind == "generator":
        return models.example_inputs(cfg, b, seed=seed)
    from . import data

    lr, _ = data.sr_pairs(paths, b, 48 * cfg.scale, seed=seed, cfg=data.DegradeConfig(scale=cfg.scale))
    return (torch.from_numpy(lr_to_feed(lr)),)


@torch.no_grad()
def quality_vs_teacher(teacher: CustomModel, student: nn.Module, n: int = 64, seed: int = 4321,
                       data: "userdata.DataSpec | None" = None) -> dict:
    """PSNR/SSIM of the student's output against the teacher's on held-out inputs: the user's gate + confirm parts
    when the model was imported with --data (userdata.from_card), else GroceryStore val photos / fixed latents.

    Generators also get their sanity baseline (userdata.generator_baseline: far from the teacher, or the teacher's
    outputs beyond the declared output_range); a problem is warned about as userdata.BaselineWarning."""
    from skugen.evaluate import pair_quality, to_255

    c = teacher.cfg
    if data is not None:
        x, inputs = userdata.eval_inputs(data, c.kind, scale=c.scale, n_classes=c.n_classes, n=n, seed=seed)
    else:
        paths = input_paths(c, "val")
        x = input_batch(c, n, seed, paths)
        inputs = "GroceryStore val degraded crops" if paths else f"N(0,1) latents seed {seed}"
    vr = VALUE_RANGE[c.kind]
    y_t = teacher.eval()(*x).numpy()
    a, b = to_255(y_t, vr), to_255(student.eval()(*x).numpy(), vr)
    q = pair_quality(b, a)  # RGB (or grey), no crop: the student against its teacher, pixel for pixel
    out = {"psnr_vs_teacher_db": q["psnr"].value, "ssim_vs_teacher": q["ssim"].value, "n": int(x[0].shape[0]),
           "inputs": inputs}
    if c.kind == "generator":
        out["baseline"] = userdata.generator_baseline(out["psnr_vs_teacher_db"], userdata.clipped_fraction(y_t, vr))
        if out["baseline"]["warning"]:
            warnings.warn(out["baseline"]["warning"], userdata.BaselineWarning, stacklevel=2)
    return out


def freeze(model: CustomModel) -> tuple[nn.Module, CustomConfig]:
    """torch.export the wrapped model (contract conversions included) with dynamic batch (and h/w)."""
    c = model.cfg
    ex = models.example_inputs(c, 2, 24)
    B = torch.export.Dim("batch", min=1, max=4096)
    if c.kind == "generator":
        dyn = ({0: B}, {0: B})
    else:
        dyn = ({0: B, 2: torch.export.Dim("h", min=8, max=8192), 3: torch.export.Dim("w", min=8, max=8192)},)
    try:
        ep = torch.export.export(copy.deepcopy(model).eval(), ex, dynamic_shapes=(dyn,))  # (dyn,): forward(*xs)
    except Exception as e:
        raise ModelError(f"torch.export of the pruned student failed ({type(e).__name__}: {str(e)[:300]}); "
                         "the model's forward must not specialise on batch/height/width.") from e
    cfg = replace(c, format="exported_program", program=PROGRAM_FILE["exported_program"], source=f"pruned {c.source}",
                  conditioning="onehot", input_range=(0.0, 1.0),
                  output_range=(-1.0, 1.0) if c.kind == "generator" else (0.0, 1.0), ignored_layers=())
    return ep, cfg
