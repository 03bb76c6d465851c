"""Stand-ins for what a Triton server gives a repository's Python models, shared by tests/sdk/test_triton.py and
tests/sdk/test_triton_diffusion.py (on sys.path through pytest's `pythonpath`).

No Triton server runs here. With these, a test can run a model.py's `TritonPythonModel.initialize/execute` on
numpy tensors, answer its BLS requests, parse every config.pbtxt as Triton's ModelConfig proto, and lay out engine
directories as `skugen build` leaves them. They cannot catch what only a real server does: tensor transport,
BYTES encoding on the wire, scheduling of concurrent requests, a Triton release that rejects a config field
(the proto parsing catches unknown fields), or a plan TensorRT would refuse (the plan bytes are placeholders).
"""
from __future__ import annotations

import types
from pathlib import Path


class Tensor:
    """pb_utils.Tensor: a name and a numpy array."""

    def __init__(self, name, array):
        self._name, self._a = name, array

    def name(self):
        return self._name

    def as_numpy(self):
        return self._a


class InferenceResponse:
    """pb_utils.InferenceResponse, as model.py builds it."""

    def __init__(self, output_tensors, error=None):
        self.output_tensors, self.error = output_tensors, error


class TritonError:
    def __init__(self, msg):
        self.msg = msg


class BlsResponse:
    """What a BLS InferenceRequest.exec() returns: outputs or an error."""

    def __init__(self, outputs=None, error=None):
        self.outputs, self._error = outputs or {}, error

    def has_error(self):
        return self._error is not None

    def error(self):
        return types.SimpleNamespace(message=lambda: self._error)


def pb_utils(bls=None) -> types.SimpleNamespace:
    """The slice of triton_python_backend_utils that model.py uses. `bls(model, output_names, {name: array})`
    answers BLS requests: a dict of outputs, or a str (that model's error)."""

    class InferenceRequest:
        def __init__(self, model_name, requested_output_names, inputs):
            self.model, self.outputs, self.inputs = model_name, requested_output_names, inputs

        def exec(self):
            got = bls(self.model, self.outputs, {t.name(): t.as_numpy() for t in self.inputs})
            return BlsResponse(error=got) if isinstance(got, str) else BlsResponse(got)

    return types.SimpleNamespace(Tensor=Tensor, InferenceResponse=InferenceResponse, TritonError=TritonError,
                                 InferenceRequest=InferenceRequest,
                                 get_input_tensor_by_name=lambda req, n: req.get(n),
                                 get_output_tensor_by_name=lambda resp, n: Tensor(n, resp.outputs[n]))


def configs(repo: Path) -> dict:
    """{model name: tritonclient ModelConfig} of every config.pbtxt (parsing raises on what Triton would not parse)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    out = {}
    for f in sorted(repo.glob("*/config.pbtxt")):
        cfg = text_format.Parse(f.read_text(), model_config_pb2.ModelConfig())
        assert cfg.name == f.parent.name, "Triton requires name == directory name"
        out[cfg.name] = cfg
    return out


def load_model_py(path: Path):
    """A repository's model.py as a module (its triton_python_backend_utils import is guarded: None here)."""
    from file_modules import load_file

    return load_file(path)


def triton_model(repo: Path, name: str, pb: types.SimpleNamespace):
    """REPO/NAME/1/model.py's TritonPythonModel with `pb` as pb_utils, initialised with its own config as Triton
    hands it over (JSON with proto field names)."""
    from google.protobuf import json_format

    mod = load_model_py(repo / name / "1" / "model.py")
    mod.pb_utils = pb
    m = mod.TritonPythonModel()
    m.initialize({"model_config": json_format.MessageToJson(configs(repo)[name], preserving_proto_field_name=True)})
    return m


def fake_engine(bundle: Path, precision: str, cc: str = "8.7", *, graph: str | None = None,
                 onnx_sha: str | None = None, built_at: str = "2026-12-01T00:00:00+00:00", max_batch: int = 16,
                 trt: str = "10.3.0") -> Path:
    """An engine directory as `skugen build` leaves it for GRAPH (None: the bundle's one graph or its denoiser).
    The plan bytes are a placeholder, never loaded; `onnx_sha` defaults to the graph the engine is built from."""
    import json

    from skugen.backends.tensorrt import plan as tp
    from skugen.bundle import load_bundle

    b = load_bundle(bundle)
    g = b.graph(graph) if graph else b
    key = f"nvidia-gpu-sm{cc.replace('.', '')}-trt{trt}-{precision}"
    d = g.engines_dir() / key
    d.mkdir(parents=True)
    (d / "engine.plan").write_bytes(f"plan {graph or 'model'} {key}".encode())
    profile = {}
    for t in g.spec.io.to_dict()["inputs"]:
        dims = [x if isinstance(x, int) else 16 for x in t["shape"][1:]]
        profile[t["name"]] = {"dtype": t["dtype"], "min": [1] + dims, "opt": [min(8, max_batch)] + dims,
                              "max": [max_batch] + dims}
    (d / "engine.json").write_text(json.dumps({
        "schema_version": 1, "kind": "skugen-tensorrt-engine", "key": key, "device_name": "NVIDIA GPU",
        "compute_capability": cc, "tensorrt_version": trt, "precision": precision, "plan_file": "engine.plan",
        "onnx_sha256": onnx_sha or tp.engine_source_sha256(g.spec, precision), "built_at": built_at,
        "profile": profile}))
    return d
