"""FP16 ONNX with chosen nodes kept in FP32 (the graph pass), and how a CPU executes such a graph.

The gate that chooses the FP32 nodes is skugen.export.fp16_gate.

    b = to_fp16(fp32_onnx, keep_fp32=("to_img",))          # bytes: FP16 graph, FP32 I/O, casts at the boundaries
    sim = fp16_storage_sim(b)                                # how a CPU executes it with FP16 storage (the gate's method)

The converter is our own pass over the ONNX protobuf, driven by the ONNX operator schemas:
- `onnxconverter_common.float16.convert_float_to_float16` (installed) gives graphs ONNX Runtime refuses to load
  for both shipped students ("Type (tensor(float)) of output arg (/Resize_output_0) ... does not match expected
  type (tensor(float16))"), with or without Resize in its block list;
- NVIDIA ModelOpt's AutoCast is the model for this design (nodes kept FP32 by measurement, casts at the
  boundaries, FP32 I/O) but nvidia-modelopt is a large CUDA-oriented install that is not part of this environment;
- a torch `.half()` export cannot keep single ONNX nodes in FP32 and changes the I/O types.
onnx-graphsurgeon would only replace the protobuf edits, not the hard part, which is knowing which inputs of a
node follow its compute type; that comes from the schemas (`onnx.defs`): an input whose formal type is the same
type variable as a float output becomes FP16 with the node (Conv's X/W/B, Resize's X), every other input keeps its
type (Resize's `scales` is `tensor(float)` in every opset, its `roi` has its own variable T2). Nodes that create a
float from nothing (Cast, ConstantOfShape, Random*) or hold subgraphs stay as they are; value_info is rebuilt by
shape inference (stale value_info is what broke onnxconverter_common's graph).

Inputs and outputs stay FP32, so the bundle's I/O contract (skugen.manifest IOSpec) is unchanged; TensorRT's
strongly-typed builds run each layer in the type this graph gives it.
"""
from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from skugen.errors import InputError

from .onnx_export import as_proto

FLOAT, FLOAT16 = 1, 10          # onnx.TensorProto.FLOAT / FLOAT16
FP16_MAX = 65504.0
# Ops whose FP16 result equals the FP16-rounded FP32 result for FP16 inputs (data movement, max/ReLU): keeping one
# of them in FP32 cannot buy quality, so they are never gate candidates (they still follow their neighbours).
EXACT_OPS = frozenset({"Relu", "Reshape", "Transpose", "Concat", "DepthToSpace", "SpaceToDepth", "Flatten",
                       "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather", "Split", "Expand", "Tile", "MaxPool",
                       "Max", "Min", "Pad", "Neg", "Abs", "Clip", "Where"})

# ----------------------------------------------------------------------------- schema: which inputs follow the node


def _schema(node, opset: int):
    import onnx

    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def _formal(params, i: int):
    """The formal parameter of actual position i (a variadic last parameter covers the rest)."""
    import onnx

    if i < len(params):
        return params[i]
    last = params[-1] if params else None
    if last is not None and last.option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return last
    return None


def _fp16_slots(node, opset: int, dtype: dict[str, int]) -> tuple[list[int], list[int]] | None:
    """(input positions, output positions) that switch to FP16 when `node` runs in FP16; None when it cannot.

    A node can when a type variable that admits tensor(float16) binds one of its float inputs; every input and
    output bound to such a variable switches (a float output bound to another variable or a fixed type does not:
    Cast's output, Resize's scales). Nodes without float inputs (ConstantOfShape, Random*) never switch.
    """
    if any(a.type in (5, 10) for a in node.attribute):  # GRAPH / GRAPHS: If, Loop, Scan keep their type
        return None
    s = _schema(node, opset)
    if s is None:
        return None
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in s.type_constraints}
    ins = [(i, _formal(s.inputs, i)) for i, n in enumerate(node.input) if n and dtype.get(n) == FLOAT]
    outs = [(i, _formal(s.outputs, i)) for i, n in enumerate(node.output) if n and dtype.get(n) == FLOAT]
    tvars = {p.type_str for _, p in ins if p is not None}
    tvars = {t for t in tvars if "tensor(float16)" in allowed.get(t, ())}
    if not tvars:
        return None
    return ([i for i, p in ins if p is not None and p.type_str in tvars],
            [i for i, p in outs if p is not None and p.type_str in tvars])


def _typed(mp) -> tuple[object, dict[str, int]]:
    """The model with full shape/type inference, and tensor name -> elem_type."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(mp, strict_mode=True)
    g = inferred.graph
    dtype = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    dtype.update({t.name: t.data_type for t in g.initializer})
    return inferred, dtype


def _constants_to_initializers(mp) -> None:
    """Constant nodes holding a tensor -> initializers, so they convert like weights (in place)."""
    keep = []
    for n in mp.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.attribute) == 1 \
                and n.attribute[0].name == "value":
            t = copy.deepcopy(n.attribute[0].t)
            t.name = n.output[0]
            mp.graph.initializer.append(t)
        else:
            keep.append(n)
    del mp.graph.node[:]
    mp.graph.node.extend(keep)


def fp16_plan(fp32_onnx) -> dict:
    """Which nodes can run in FP16 (name -> op type), which cannot (name -> reason), and the gate's candidates."""
    mp = copy.deepcopy(as_proto(fp32_onnx))
    _constants_to_initializers(mp)
    _, dtype = _typed(mp)
    opset = _opset(mp)
    can, cannot = {}, {}
    for n in mp.graph.node:
        if not any(dtype.get(o) == FLOAT for o in n.output):
            continue
        if _fp16_slots(n, opset, dtype) is None:
            cannot[n.name] = f"{n.op_type} has no float input and output of one FP16-capable type (schema)"
        else:
            can[n.name] = n.op_type
    return {"fp16_capable": can, "not_convertible": cannot,
            "candidates": [k for k, op in can.items() if op not in EXACT_OPS]}


def _opset(mp) -> int:
    return next((o.version for o in mp.opset_import if o.domain in ("", "ai.onnx")), 17)

# ----------------------------------------------------------------------------- the pass


def to_fp16(fp32_onnx, keep_fp32=()) -> bytes:
    """FP32 ONNX -> FP16 ONNX bytes with the nodes named in `keep_fp32` (and those that cannot) left in FP32.

    Weights of FP16 nodes are stored as FP16 (an FP32 copy stays for FP32 consumers of a shared initializer);
    a Cast is inserted wherever a tensor crosses between FP16 and FP32 (one per tensor and direction); graph
    inputs and outputs keep their FP32 types and names. Raises InputError for names that are not nodes, and
    when an FP16 weight would overflow (keep that node in FP32).
    """
    import onnx
    from onnx import helper, numpy_helper

    src = copy.deepcopy(as_proto(fp32_onnx))
    _constants_to_initializers(src)
    names = {n.name for n in src.graph.node}
    bad = sorted(set(keep_fp32) - names)
    if bad:
        raise InputError(f"keep_fp32 names {bad} are not nodes of the model; its nodes are {sorted(names)[:40]}.")
    _, dtype = _typed(src)
    opset = _opset(src)
    keep = set(keep_fp32)
    plan: dict[str, tuple[list[int], list[int]]] = {}
    for n in src.graph.node:
        if n.name in keep:
            continue
        slots = _fp16_slots(n, opset, dtype)
        if slots is not None:
            plan[n.name] = slots

    g = src.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    now = dict(dtype)                                    # tensor -> type it has in the new graph
    for n in g.node:
        for i in plan.get(n.name, ((), ()))[1]:
            now[n.output[i]] = FLOAT16
    # initializers: FP16 where every float consumer is FP16, else an FP16 twin beside the FP32 original
    want16: dict[str, bool] = defaultdict(bool)
    want32: dict[str, bool] = defaultdict(bool)
    for n in g.node:
        slots = set(plan.get(n.name, ((), ()))[0])
        for i, x in enumerate(n.input):
            if x in inits and inits[x].data_type == FLOAT:
                (want16 if i in slots else want32)[x] = True
    init16: dict[str, str] = {}
    for name, t in list(inits.items()):
        if not want16.get(name):
            continue
        a = numpy_helper.to_array(t)
        if np.isfinite(a).all() and np.abs(a).max(initial=0.0) > FP16_MAX:
            users = [n.name for n in g.node if name in n.input and n.name in plan]
            raise InputError(f"initializer {name!r} exceeds the FP16 range (max |x| {np.abs(a).max():.3g} > "
                             f"{FP16_MAX:g}); keep its nodes {users} in FP32 (keep_fp32=...).")
        t16 = numpy_helper.from_array(a.astype(np.float16), name if not want32.get(name) else f"{name}::fp16")
        if want32.get(name):
            g.initializer.append(t16)
        else:
            t.CopyFrom(t16)
        init16[name] = t16.name
        now[name] = FLOAT16 if not want32.get(name) else FLOAT

    casts: dict[tuple[str, int], str] = {}
    new_nodes = []

    def cast(x: str, to: int) -> str:
        key = (x, to)
        if key not in casts:
            casts[key] = f"{x}::to_{'fp16' if to == FLOAT16 else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [x], [casts[key]], to=to, name=f"cast::{casts[key]}"))
        return casts[key]

    renamed = {}                                          # FP16 graph output -> its internal FP16 name
    for n in g.node:
        slots = set(plan.get(n.name, ((), ()))[0])
        for i, x in enumerate(n.input):
            if not x or dtype.get(x) != FLOAT:
                continue
            want = FLOAT16 if i in slots else FLOAT
            if x in init16 and want == FLOAT16:
                n.input[i] = init16[x]
            elif now.get(x, FLOAT) != want:
                n.input[i] = cast(renamed.get(x, x), want)
            else:
                n.input[i] = renamed.get(x, x)
        for i, o in enumerate(n.output):
            if o in graph_outputs and now.get(o) == FLOAT16:
                renamed[o] = f"{o}::fp16"
                n.output[i] = renamed[o]
        new_nodes.append(n)
        for o, inner in renamed.items():
            if inner in n.output:
                new_nodes.append(helper.make_node("Cast", [inner], [o], to=FLOAT, name=f"cast::{o}"))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    out, _ = _typed(src)
    onnx.checker.check_model(out, full_check=True)
    return out.SerializeToString()


def fp16_summary(model) -> dict:
    """What runs in which type: nodes computing in FP16 / FP32 (casts excluded), casts, FP16 weight bytes."""
    mp = as_proto(model)
    _, dtype = _typed(mp)
    f16, f32 = [], []
    for n in mp.graph.node:
        if n.op_type == "Cast":
            continue
        outs = [dtype.get(o) for o in n.output]
        if FLOAT16 in outs:
            f16.append(n.name)
        elif FLOAT in outs:
            f32.append(n.name)
    return {"fp16_nodes": f16, "fp32_nodes": f32, "casts": sum(n.op_type == "Cast" for n in mp.graph.node),
            "fp16_weight_bytes": int(sum(2 * int(np.prod(t.dims)) for t in mp.graph.initializer
                                         if t.data_type == FLOAT16))}

# ----------------------------------------------------------------------------- executing an FP16 graph on this CPU


def fp16_storage_sim(fp16_onnx) -> bytes:
    """The FP16 graph rewritten so a CPU runs it with FP16 storage: each FP16 node computes in FP32 on its FP16
    inputs (weights included, upcast exactly) and its outputs are rounded to FP16 (a real FP16 tensor, Cast).

    Same nodes, same FP16 weight values, same FP32-kept nodes and boundary casts as the shipped graph; only the
    arithmetic inside each FP16 node is FP32. See SIMULATION for what that does and does not capture.
    """
    import onnx
    from onnx import helper

    mp = copy.deepcopy(as_proto(fp16_onnx))
    _, dtype = _typed(mp)
    g = mp.graph
    up: dict[str, str] = {}
    new_nodes = []
    for n in g.node:
        if n.op_type == "Cast":
            new_nodes.append(n)
            continue
        for i, x in enumerate(n.input):
            if x and dtype.get(x) == FLOAT16:
                if x not in up:
                    up[x] = f"{x}::sim_fp32"
                    new_nodes.append(helper.make_node("Cast", [x], [up[x]], to=FLOAT, name=f"sim::{up[x]}"))
                n.input[i] = up[x]
        rounds = []
        for i, o in enumerate(n.output):
            if o and dtype.get(o) == FLOAT16:
                n.output[i] = f"{o}::sim_acc32"
                rounds.append(helper.make_node("Cast", [n.output[i]], [o], to=FLOAT16, name=f"sim::round::{o}"))
        new_nodes.append(n)
        new_nodes.extend(rounds)
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    out, _ = _typed(mp)
    onnx.checker.check_model(out, full_check=True)
    return out.SerializeToString()

