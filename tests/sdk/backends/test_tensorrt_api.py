"""Every TensorRT name skugen uses exists in every supported TensorRT version (10.3 .. 11.x), without a GPU.

The surfaces in trt_api/*.json are dir() of the REAL bindings of each version (scripts/trt_api_surface.py loads the
wheel's module on the CPU with stand-in libnvinfer). This test AST-scans sdk/backends/tensorrt/** and kernels/**
for:
  - attribute chains on the tensorrt module, which skugen always binds to the name `trt`
    (trt.X, trt.X.Y, trt.X.Y.Z: class, member, nested enum value);
  - methods/properties used on TensorRT objects, through the variable names in OBJECT_CLASSES below
    (an explicit list: the scan cannot infer types, so a TensorRT object held under another name is missed);
  - names looked up by string (getattr) listed in BY_STRING, each either present everywhere or a guarded
    fallback (GUARDED) whose both branches the fake-TensorRT tests run.

What it catches: a name missing from one supported version (e.g. BuilderFlag.FP16 in 11.x), a typo in a name.
What it cannot: argument types and semantics (test_tensorrt_gpu.py on a GPU), names used via other variables.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from skugen.backends.tensorrt import plan as tp

ROOT = Path(__file__).resolve().parents[3]
SURFACES = sorted((Path(__file__).parent / "trt_api").glob("tensorrt-*.json"))
SCANNED = sorted((ROOT / "sdk" / "backends" / "tensorrt").glob("*.py")) + sorted((ROOT / "kernels").glob("*.py"))

# Variable / attribute names under which the backend holds TensorRT objects -> their class in the bindings.
OBJECT_CLASSES = {
    "builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser", "bcfg": "IBuilderConfig",
    "profile": "IOptimizationProfile", "engine": "ICudaEngine", "eng": "ICudaEngine", "_engine": "ICudaEngine",
    "context": "IExecutionContext", "ctx": "IExecutionContext", "_context": "IExecutionContext",
    "runtime": "Runtime", "_runtime": "Runtime", "inspector": "EngineInspector",
}
FILES_WITH_OBJECTS = ("build.py", "runner.py")  # elsewhere these names mean other things (plan.py's profile, ...)
# Attributes of those variables that are skugen's own, not TensorRT's (e.g. ctx is also a CUDA context in cuda.py).
NOT_TRT = {("IExecutionContext", "push"), ("IExecutionContext", "detach")}

# Names skugen reads with getattr(obj, "name"): (class, member).
BY_STRING = [("ICudaEngine", "device_memory_size_v2"), ("ICudaEngine", "device_memory_size"),
             # used on call results, which the scan does not follow: bcfg.get_timing_cache().serialize(),
             # network.get_layer(i).type
             ("ITimingCache", "serialize"), ("ILayer", "type")]
# Guarded ones: absent in some supported version, tried in order with a fallback (build._engine_device_memory).
GUARDED = {("ICudaEngine", "device_memory_size"): "removed in 11.x; device_memory_size_v2 (10.1+) is tried first"}


def _load(p: Path) -> dict:
    return json.loads(p.read_text())


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def used_names() -> set[tuple[str, ...]]:
    """(Class,), (Class, member) or (Class, Nested, member) for every TensorRT name the scanned code uses."""
    out: set[tuple[str, ...]] = set()
    for f in SCANNED:
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            ch = _chain(node)
            if not ch:
                continue
            if ch[0] == "trt" and len(ch) >= 2 and not ch[1].startswith("_"):
                out.add(tuple(x for x in ch[1:4] if not x.startswith("_")))
            if f.name in FILES_WITH_OBJECTS:
                # self._engine.x / engine.x: the object's name is the element before the member.
                for i in range(len(ch) - 1):
                    cls = OBJECT_CLASSES.get(ch[i])
                    if cls and (i == 0 or ch[i - 1] == "self") and not ch[i + 1].startswith("_"):
                        if (cls, ch[i + 1]) not in NOT_TRT:
                            out.add((cls, ch[i + 1]))
    # Nested severity enum: `sev = trt.ILogger.Severity; sev.ERROR` in cuda._logger.
    for m in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"):
        out.add(("ILogger", "Severity", m))
    out |= set(BY_STRING)
    return out


def test_the_committed_surfaces_cover_the_supported_range():
    versions = [_load(p)["version"] for p in SURFACES]
    majors = {tp.parse_version(v) for v in versions}
    assert (10, 3) in majors and any(m[0] == 11 for m in majors) and any(m[0] == 10 and m[1] > 3 for m in majors)
    assert all(tp.version_in_range(v) for v in versions), versions


def test_the_scan_sees_what_the_backend_uses():
    """The scan itself must find the core names (else the real test below could pass on an empty set)."""
    names = used_names()
    for must in [("Builder", "create_network"), ("IBuilderConfig", "set_memory_pool_limit"),
                 ("IExecutionContext", "execute_async_v3"), ("IExecutionContext", "set_tensor_address"),
                 ("NetworkDefinitionCreationFlag",), ("MemoryPoolType", "WORKSPACE"), ("OnnxParser",)]:
        assert must in names, must
    assert not any(n[0] == "BuilderFlag" for n in names), "strongly typed builds use no builder precision flags"
    assert not any("Calibrator" in n[0] for n in names)


def _exists(api: dict, name: tuple[str, ...], surface: Path) -> bool:
    if name[0] not in api:
        return False
    if len(name) == 1:
        return True
    if name[1] not in api[name[0]]:
        return False
    if len(name) == 3:  # a nested class: check its members from a second file is not possible; dir() of the nested
        nested = api.get(f"{name[0]}.{name[1]}")  # class is not in the surface -> only the nesting is checked
        return nested is None or name[2] in nested
    return True


@pytest.mark.parametrize("surface", SURFACES, ids=lambda p: p.stem)
def test_every_used_name_exists_or_is_guarded(surface):
    api = _load(surface)["api"]
    missing = [".".join(n) for n in sorted(used_names()) if not _exists(api, n, surface) and n not in GUARDED]
    assert not missing, f"TensorRT {_load(surface)['version']} lacks {missing}"


@pytest.mark.parametrize("surface", SURFACES, ids=lambda p: p.stem)
def test_network_creation_flags_exist_in_each_version(surface):
    data = _load(surface)
    for flag in tp.network_creation_flags(data["version"]):  # the version guard's branch for this version
        assert flag in data["api"]["NetworkDefinitionCreationFlag"], (data["version"], flag)


def test_guarded_names_have_a_fallback_present_everywhere():
    for p in SURFACES:
        api = _load(p)["api"]
        assert "device_memory_size_v2" in api["ICudaEngine"], p.name
    assert any("device_memory_size" not in _load(p)["api"]["ICudaEngine"] for p in SURFACES)  # the guard is needed
    assert all(n in BY_STRING for n in GUARDED)
