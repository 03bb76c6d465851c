"""skugen pre/post step for Triton's Python backend (written by `skugen export-triton`).

Only the Triton glue lives here. The arithmetic is skugen's own code: export-triton copied the
modules verbatim into skugen_prepost/ beside this file (their sha256 are in the repository's
skugen_triton.json), so skugen need not be installed in the Triton container; numpy is enough.
One file serves both roles; config.pbtxt's `skugen_role` parameter says which:
  pre,  generator: label (class name or index, bytes) + seed (int64) -> z (float32), onehot (float32)
  pre,  enhancer:  uint8 HWC photo -> NCHW float32 (x / 255 - mean) / std
  post:            NCHW float model output in value_range -> uint8 HWC (NaN -> 0, clamp, round half to even)
"""
import hashlib
import importlib
import importlib.util
import json
import os
import sys

import numpy as np

try:  # only inside Triton; the functions below are importable and testable without it
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - exercised by the tests
    pb_utils = None


def _load_prepost():
    """skugen_prepost/ beside this file, imported under a name unique to its path (so two exported
    repositories, or an installed skugen, never shadow each other in one process)."""
    pkg_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skugen_prepost")
    name = "skugen_prepost_" + hashlib.sha256(pkg_dir.encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(pkg_dir, "__init__.py"),
                                                      submodule_search_locations=[pkg_dir])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return importlib.import_module(name + ".gen_inputs"), importlib.import_module(name + ".kernels.reference")


gen_inputs, reference = _load_prepost()


# ----------------------------------------------------------------------------- the three steps

def pre_generator(labels, seeds, class_names, n_classes, z_dim):
    """(B, 1) label bytes + (B, 1) int64 seeds -> z (B, z_dim), onehot (B, n_classes), both float32."""
    idx = gen_inputs.resolve_labels(np.asarray(labels, dtype=object).reshape(-1), None, class_names, n_classes)
    z = gen_inputs.seed_latents(seeds, z_dim)
    if z.shape[0] != idx.shape[0]:
        raise ValueError(f"got {idx.shape[0]} labels but {z.shape[0]} seeds; send one of each per image")
    return z, gen_inputs.onehot(idx, n_classes)


def pre_enhancer(images, mean=0.0, std=1.0):
    """(B, H, W, C) uint8 -> (B, C, H, W) float32 normalised (the kernels' preprocess at the photo's own size)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"photo must be uint8 (B, H, W, C), got {x.dtype} {x.shape}")
    return reference.preprocess(x, x.shape[1:3], "GRAY" if x.shape[3] == 1 else "RGB", mean, std)


def post(x, value_range):
    """(B, C, H, W) float in value_range -> (B, H, W, C) uint8 (the kernels' postprocess)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"model output must be (B, C, H, W), got {x.shape}")
    if x.dtype not in (np.float32, np.float16):
        x = x.astype(np.float32)
    return reference.postprocess(np.ascontiguousarray(x), tuple(value_range), "GRAY" if x.shape[1] == 1 else "RGB")


# ----------------------------------------------------------------------------- Triton glue

def parameters(model_config):
    """config.pbtxt `parameters` (string values) from Triton's model_config JSON."""
    cfg = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


class Step:
    """The pure-numpy step a config describes: run(dict of input arrays) -> dict of output arrays."""

    def __init__(self, params):
        self.role, self.kind = params["skugen_role"], params["kind"]
        if self.role == "pre" and self.kind == "generator":
            self.class_names = json.loads(params.get("class_names") or "[]")
            self.n_classes, self.z_dim = int(params["n_classes"]), int(params["z_dim"])
        elif self.role == "pre":
            self.output = params["output"]
            self.mean, self.std = json.loads(params["mean"]), json.loads(params["std"])
        elif self.role == "post":
            self.value_range = [float(v) for v in params["value_range"].split(",")]
        else:
            raise ValueError(f"unknown skugen_role {self.role!r}")

    def run(self, inputs):
        if self.role == "post":
            return {"image": post(inputs["raw"], self.value_range)}
        if self.kind == "generator":
            z, oh = pre_generator(inputs["label"], inputs["seed"], self.class_names, self.n_classes, self.z_dim)
            return {"z": z, "onehot": oh}
        return {self.output: pre_enhancer(inputs["photo"], self.mean, self.std)}


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.step = Step(parameters(cfg))
        self.input_names = [t["name"] for t in cfg["input"]]

    def execute(self, requests):
        responses = []
        for request in requests:  # one request = one client call, already (b, ...) batched
            try:
                ins = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names}
                outs = self.step.run(ins)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(n, a) for n, a in outs.items()]))
            except ValueError as e:  # a client mistake (skugen's InputError is one): answer it, keep serving
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses

    def finalize(self):
        pass
