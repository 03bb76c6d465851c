"""skugen pre/post step for Triton's Python backend (written by `skugen export-triton`).

Only the Triton glue lives here. The arithmetic is skugen's own code: export-triton copied the
modules verbatim into skugen_prepost/ beside this file (their sha256 are in the repository's
skugen_triton.json), so skugen need not be installed in the Triton container; numpy is enough.
One file serves both roles; config.pbtxt's `skugen_role` parameter says which:
  pre,  generator: label (class name or index, bytes) + seed (int64) -> z (float32), onehot (float32)
  pre,  enhancer:  uint8 HWC photo -> NCHW float32 (x / 255 - mean) / std
  post:            NCHW float model output in value_range -> uint8 HWC (NaN -> 0, clamp, round half to even)
  diffusion:       prompts (bytes) + seed [+ steps, guidance] -> uint8 images: the whole sampling loop, calling
                   the text-encoder and denoiser models of the repository through BLS (skugen.sampler's loop)
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
    return tuple(importlib.import_module(f"{name}.{m}")
                 for m in ("gen_inputs", "kernels.reference", "tokenizer", "sampler", "errors"))


gen_inputs, reference, tokenizer, sampler, errors = _load_prepost()


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


class Diffusion:
    """The sampling loop of a diffusion bundle, as `skugen.load(bundle).generate(prompts, seed=, steps=,
    guidance=)` runs it: tokenizer, noise from the seed, skugen.sampler.sample over the two graphs, post.

    infer(model_name, {input: array}, [output names]) -> {name: array} runs one repository model (BLS inside
    Triton; anything with that signature elsewhere). One request is one generate() call: a list of prompts and
    one seed, so a request's images are the runtime's images for the same prompts and seed."""

    def __init__(self, params, infer, here):
        with open(os.path.join(here, params["vocab"]), encoding="utf-8") as f:
            self.tok = tokenizer.Tokenizer.from_dict(json.load(f), params["vocab"])
        self.infer, self.name = infer, params["bundle"]
        self.text_model, self.text_out = params["text_model"], params["text_output"]
        self.denoiser_model, self.denoiser_out = params["denoiser_model"], params["denoiser_output"]
        self.steps, self.max_steps = int(params["steps"]), int(params["max_steps"])
        self.guidance = float(params["guidance"])
        self.distilled = float(params["distilled_guidance"]) if params.get("distilled_guidance") else None
        self.max_batch = int(params["max_batch"])
        self.shape = tuple(int(v) for v in params["shape"].split(","))
        self.value_range = [float(v) for v in params["value_range"].split(",")]

    def _encode(self, tokens):
        return self.infer(self.text_model, {"tokens": tokens}, [self.text_out])[self.text_out]

    def _denoise(self, feed):
        return self.infer(self.denoiser_model, feed, [self.denoiser_out])[self.denoiser_out]

    @staticmethod
    def _one(inputs, key, default=None):
        v = inputs.get(key)
        if v is None:
            return default
        v = np.asarray(v).reshape(-1)
        if v.size != 1:
            raise errors.InputError(f"{key} must hold one value per request, got {v.size}")
        return v[0]

    def run(self, inputs):
        prompts = [p.decode("utf-8") if isinstance(p, bytes) else str(p)
                   for p in np.asarray(inputs["prompt"], dtype=object).reshape(-1)]
        tokens, unknown = self.tok.encode_batch(prompts)
        steps = sampler.check_steps(self._one(inputs, "steps"), self.steps, self.max_steps)
        g = sampler.check_guidance(self._one(inputs, "guidance"), self.guidance, self.distilled, self.name)
        seed = gen_inputs.check_seed(self._one(inputs, "seed"))
        if seed is None:
            raise errors.InputError("send a seed (int64 [1]): it fixes the images and is what skugen generate "
                                    "--seed takes, so a request can be reproduced")
        noise = sampler.make_noise(seed, len(tokens), self.shape)
        x = sampler.sample(self._encode, self._denoise, tokens, self.tok.null(), noise, steps, g, self.max_batch)
        return {"image": post(x, self.value_range),
                "unknown_words": np.array([json.dumps(u).encode() for u in unknown], dtype=object)}


# ----------------------------------------------------------------------------- Triton glue

def parameters(model_config):
    """config.pbtxt `parameters` (string values) from Triton's model_config JSON."""
    cfg = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


class Step:
    """The pure-numpy step a config describes: run(dict of input arrays) -> dict of output arrays.
    infer / here: the diffusion role's model runner (see Diffusion) and the version dir holding vocab.json."""

    def __init__(self, params, infer=None, here=None):
        self.role, self.kind = params["skugen_role"], params["kind"]
        if self.role == "diffusion":
            self.loop = Diffusion(params, infer, here or os.path.dirname(os.path.abspath(__file__)))
        elif self.role == "pre" and self.kind == "generator":
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
        if self.role == "diffusion":
            return self.loop.run(inputs)
        if self.role == "post":
            return {"image": post(inputs["raw"], self.value_range)}
        if self.kind == "generator":
            z, oh = pre_generator(inputs["label"], inputs["seed"], self.class_names, self.n_classes, self.z_dim)
            return {"z": z, "onehot": oh}
        return {self.output: pre_enhancer(inputs["photo"], self.mean, self.std)}


def bls_infer(model_name, feed, outputs):
    """Run another model of the repository from inside execute() (Triton's Business Logic Scripting)."""
    req = pb_utils.InferenceRequest(model_name=model_name, requested_output_names=list(outputs),
                                    inputs=[pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in feed.items()])
    resp = req.exec()
    if resp.has_error():
        raise RuntimeError(f"model {model_name!r} failed: {resp.error().message()}")
    return {n: pb_utils.get_output_tensor_by_name(resp, n).as_numpy() for n in outputs}


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.step = Step(parameters(cfg), infer=bls_infer)
        self.input_names = [t["name"] for t in cfg["input"]]

    def execute(self, requests):
        responses = []
        for request in requests:  # one request = one client call, already (b, ...) batched
            try:
                ins = {n: t.as_numpy() for n in self.input_names
                       if (t := pb_utils.get_input_tensor_by_name(request, n)) is not None}  # None: optional, unsent
                outs = self.step.run(ins)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(n, a) for n, a in outs.items()]))
            except (ValueError, RuntimeError, errors.SkugenError) as e:
                # a client mistake (skugen's InputError is a ValueError), or a model the loop called failed
                # (BLS): answer this request with the error and keep serving the others
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses

    def finalize(self):
        pass
