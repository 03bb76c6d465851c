"""OnnxRuntimeRunner error mapping: only a malformed feed becomes InputError; ORT's runtime failures and a
closed session surface as what they are (so a bug or a torn-down session is never reported as "your input")."""
from __future__ import annotations

import numpy as np
import pytest

from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.errors import InputError

onnx = pytest.importorskip("onnx")
ort_state = pytest.importorskip("onnxruntime.capi.onnxruntime_pybind11_state")


def _reshape_model(in_shape) -> bytes:
    """x -> Reshape(x, [-1, 2]): with a dynamic last axis, an odd width fails INSIDE the graph (ORT FAIL)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    s = helper.make_tensor("s", TensorProto.INT64, [2], [-1, 2])
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g", [x], [y], [s])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.fixture
def runner():
    with OnnxRuntimeRunner(_reshape_model([None, 4]), providers=["CPUExecutionProvider"], intra_op_threads=1) as r:
        yield r


def test_valid_feed_runs(runner):
    out = runner.infer({"x": np.arange(8, dtype=np.float32).reshape(2, 4)}, check=False)
    np.testing.assert_array_equal(out["y"], np.arange(8, dtype=np.float32).reshape(4, 2))


@pytest.mark.parametrize("feed, why", [
    ({"x": np.zeros((1, 4), np.float64)}, "data type"),       # dtype
    ({"x": np.zeros((1, 5), np.float32)}, "dimensions"),      # shape
    ({"x": np.zeros((4,), np.float32)}, "rank"),              # rank
    ({"q": np.zeros((1, 4), np.float32)}, "missing"),         # name
])
def test_malformed_feed_is_input_error(runner, feed, why):
    # check=False skips the base class's own validation, so this exercises ORT's errors and their mapping
    with pytest.raises(InputError, match=rf"onnxruntime rejected the inputs .*{why}"):
        runner.infer(feed, check=False)


def test_failure_inside_the_graph_is_not_input_error():
    with OnnxRuntimeRunner(_reshape_model([None, None]), providers=["CPUExecutionProvider"], intra_op_threads=1) as r:
        with pytest.raises(ort_state.Fail, match="Reshape") as ei:
            r.infer({"x": np.zeros((1, 3), np.float32)}, check=False)
    assert not isinstance(ei.value, InputError)


def test_deactivated_runner_is_not_input_error(runner):
    runner.deactivate()
    with pytest.raises(RuntimeError, match="not active") as ei:
        runner.infer({"x": np.zeros((1, 4), np.float32)}, check=False)
    assert not isinstance(ei.value, InputError)


def test_session_closed_under_a_call_is_not_input_error(runner):
    # the window a concurrent deactivate() leaves: the runner still reads as active, its session is gone
    runner.sess = None
    with pytest.raises(RuntimeError, match="session was closed") as ei:
        runner.infer({"x": np.zeros((1, 4), np.float32)}, check=False)
    assert not isinstance(ei.value, InputError)
