"""Repeatable noise for an ONNX voice: its random nodes replaced by a counter-based generator.

A VITS voice (piper's) draws Gaussian noise twice per sentence: for the stochastic duration
predictor and for the prior it decodes. ONNX Runtime advances those draws with every call of a
session, so how a sentence sounded depended on what had been said before it: the same sentence
came out 2.69–2.86 s long, a different waveform each call (benchmarks/RESULTS.md, *The same
script*). Here each ``RandomNormalLike`` / ``RandomUniformLike`` node becomes a small subgraph
that computes its noise from each element's flat index with Widynski's "squares" generator (four
rounds of 64-bit square, add and rotate), then Box–Muller for a normal. The noise is therefore a
pure function of the tensor's shape: the same sentence gives the same audio in any session and in
any order. Element i draws the same value in every sentence, which the voice cannot hear: across
one tensor the draws are independent standard normals (or uniforms), as in training.

Only standard operators up to ONNX opset 15 (piper's) are used: uint64 Mul and Add wrap around,
and a rotation by 32 bits is the sum of the two shifts, whose bits do not overlap (opset 15 has no
bitwise or).
"""

from __future__ import annotations

import numpy as np

SQUARES_KEY = 0x6A09E667F3BCC909  # an odd key with well-mixed bits (sqrt(2)'s fraction)
RANDOM_OPS = ("RandomNormalLike", "RandomUniformLike")
_STREAM_STRIDE = 1 << 40  # counters per random node: up to 2^39 elements each, no overlap


def squares32(counters: np.ndarray, key: int = SQUARES_KEY) -> np.ndarray:
    """The generator in NumPy (reference for tests): uint64 counters (any shape) → uint64 values
    in [0, 2^32), the same as the graph computes."""
    with np.errstate(over="ignore"):
        key64 = np.uint64(key)
        y = counters.astype(np.uint64) * key64
        z = y + key64
        x = y
        for added in (y, z, y):
            x = x * x + added
            x = (x >> np.uint64(32)) | (x << np.uint64(32))
        return (x * x + z) >> np.uint64(32)


def normal_noise(count: int, stream: int = 0) -> np.ndarray:
    """What the patched graph's ``stream``-th random node gives for ``count`` elements, as a
    float32 vector (NumPy reference of :func:`make_noise_repeatable`)."""
    first = np.arange(count, dtype=np.uint64) * np.uint64(2) + np.uint64(stream * _STREAM_STRIDE)
    u1, u2 = (((squares32(c) >> np.uint64(8)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-24)
              for c in (first, first + np.uint64(1)))
    return np.sqrt(np.float32(-2) * np.log(u1)) * np.cos(np.float32(2 * np.pi) * u2)


def make_noise_repeatable(model) -> int:
    """Replace, in place, every ``RandomNormalLike`` / ``RandomUniformLike`` node of an
    ``onnx.ModelProto`` by the repeatable generator; returns how many were replaced.

    The k-th random node (in graph order) uses counters from ``k · 2^40``: its elements i get
    counters 2i and 2i + 1 (two uniforms; a normal takes both through Box–Muller, a uniform the
    first). ``mean``/``scale`` and ``low``/``high`` attributes are honoured, and ``dtype``.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    replaced = 0
    nodes = []
    for node in graph.node:
        if node.op_type not in RANDOM_OPS:
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        prefix = f"repeatable_noise_{replaced}/"
        names = iter(range(10**6))

        def fresh(label: str) -> str:
            return f"{prefix}{label}_{next(names)}"

        def constant(value) -> str:
            name = fresh("const")
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)))
            return name

        def op(op_type: str, *inputs: str, **kwargs) -> str:
            name = fresh(op_type.lower())
            nodes.append(helper.make_node(op_type, list(inputs), [name], **kwargs))
            return name

        def squares(counter: str) -> str:
            key = constant(np.uint64(SQUARES_KEY))
            y = op("Mul", counter, key)
            z = op("Add", y, key)
            x = y
            shift = constant(np.uint64(32))
            for added in (y, z, y):
                x = op("Add", op("Mul", x, x), added)
                x = op("Add", op("BitShift", x, shift, direction="RIGHT"), op("BitShift", x, shift, direction="LEFT"))
            return op("BitShift", op("Add", op("Mul", x, x), z), shift, direction="RIGHT")

        def unit_interval(counter: str) -> str:  # (0, 1): 24 bits, centred in their bins
            bits = op("Cast", op("BitShift", squares(counter), constant(np.uint64(8)), direction="RIGHT"), to=TensorProto.FLOAT)
            return op("Mul", op("Add", bits, constant(np.float32(0.5))), constant(np.float32(2.0**-24)))

        source = node.input[0]
        index = op("Cast", op("Range", constant(np.int64(0)), op("Size", source), constant(np.int64(1))),
                   to=TensorProto.UINT64)
        first = op("Add", op("Mul", index, constant(np.uint64(2))), constant(np.uint64(replaced * _STREAM_STRIDE)))
        u1 = unit_interval(first)
        if node.op_type == "RandomNormalLike":
            u2 = unit_interval(op("Add", first, constant(np.uint64(1))))
            radius = op("Sqrt", op("Mul", op("Log", u1), constant(np.float32(-2))))
            flat = op("Mul", radius, op("Cos", op("Mul", u2, constant(np.float32(2 * np.pi)))))
            flat = op("Add", op("Mul", flat, constant(np.float32(attributes.get("scale", 1.0)))),
                      constant(np.float32(attributes.get("mean", 0.0))))
        else:
            low, high = attributes.get("low", 0.0), attributes.get("high", 1.0)
            flat = op("Add", op("Mul", u1, constant(np.float32(high - low))), constant(np.float32(low)))
        shaped = op("Reshape", flat, op("Shape", source))
        if "dtype" in attributes:
            nodes.append(helper.make_node("Cast", [shaped], [node.output[0]], to=attributes["dtype"]))
        else:  # like the input's type, as the random op would be
            nodes.append(helper.make_node("CastLike", [shaped, source], [node.output[0]]))
        replaced += 1
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
    return replaced
