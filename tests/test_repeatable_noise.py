"""The repeatable noise that replaces a voice's random nodes: the ONNX subgraph agrees with the
NumPy reference, its draws are independent standard normals (or uniforms), and it is the same in
every run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from scipy import stats

from newsanchor.speech.repeatable_noise import make_noise_repeatable, normal_noise, squares32


def _random_model() -> onnx.ModelProto:
    """x (1, 192, T) → a: RandomNormalLike(x), b: RandomNormalLike(x, mean 2, scale 3),
    c: RandomUniformLike(x, low −1, high 3), d: x + RandomNormalLike(x) (no dtype)."""
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["a"], dtype=TensorProto.FLOAT),
        helper.make_node("RandomNormalLike", ["x"], ["b"], dtype=TensorProto.FLOAT, mean=2.0, scale=3.0),
        helper.make_node("RandomUniformLike", ["x"], ["c"], dtype=TensorProto.FLOAT, low=-1.0, high=3.0),
        helper.make_node("RandomNormalLike", ["x"], ["noise"]),
        helper.make_node("Add", ["x", "noise"], ["d"]),
    ]
    shape = [1, 192, None]
    graph = helper.make_graph(nodes, "random", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in "abcd"])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def _run(model: onnx.ModelProto, frames: int) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.zeros((1, 192, frames), np.float32)})


@pytest.fixture(scope="module")
def patched() -> onnx.ModelProto:
    model = _random_model()
    assert make_noise_repeatable(model) == 4
    onnx.checker.check_model(model, full_check=True)
    assert not any(node.op_type.startswith("Random") for node in model.graph.node)
    return model


def test_the_generator_matches_its_published_construction():
    """squares32 on a few counters, computed here step by step with Python integers."""
    key, mask = 0x6A09E667F3BCC909, (1 << 64) - 1

    def by_hand(counter: int) -> int:
        x = y = (counter * key) & mask
        z = (y + key) & mask
        for added in (y, z, y):
            x = (x * x + added) & mask
            x = ((x >> 32) | (x << 32)) & mask
        return ((x * x + z) & mask) >> 32

    counters = np.array([0, 1, 2, 12345, 2**40 + 7], np.uint64)
    assert squares32(counters).tolist() == [by_hand(int(c)) for c in counters]


def test_the_graph_draws_what_the_reference_draws_and_the_same_every_run(patched):
    a, b, c, d = _run(patched, 300)
    # the same draws (log and cos of ONNX Runtime and NumPy differ in the last bit or two)
    assert np.allclose(a.ravel(), normal_noise(a.size, stream=0), rtol=1e-5, atol=1e-5)
    assert np.allclose(b.ravel(), 2 + 3 * normal_noise(b.size, stream=1), rtol=1e-5, atol=3e-5)
    assert np.allclose(d.ravel(), normal_noise(d.size, stream=3), rtol=1e-5, atol=1e-5)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c, d), _run(patched, 300)))
    shorter = _run(patched, 10)[0]
    assert np.array_equal(shorter.ravel(), a.ravel()[:shorter.size])  # a function of the index only
    assert -1 <= c.min() and c.max() < 3


def test_the_draws_are_independent_standard_normals_and_uniforms(patched):
    a, _, c, d = _run(patched, 2000)  # 384,000 draws per node
    for normal in (a.ravel(), d.ravel()):
        assert abs(normal.mean()) < 0.01 and abs(normal.std() - 1) < 0.01
        assert stats.kstest(normal, "norm").pvalue > 1e-3
        for lag in (1, 2, 192):  # neighbours in time and across channels
            assert abs(np.corrcoef(normal[:-lag], normal[lag:])[0, 1]) < 0.01
    assert abs(np.corrcoef(a.ravel(), d.ravel())[0, 1]) < 0.01  # two nodes, two streams
    assert stats.kstest((c.ravel() + 1) / 4, "uniform").pvalue > 1e-3


def test_a_graph_without_random_nodes_is_left_alone():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert make_noise_repeatable(model) == 0 and model.SerializeToString() == before
