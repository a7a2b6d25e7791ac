"""Writes tiny.onnx: a small real CNN (conv 3->8 3x3 stride 2, ReLU, global average pool,
flatten, dense 8->10, softmax) on [1,3,32,32], fixed random weights. Used by the fast bad-input
tests. Regenerate: .venv/bin/python crates/tlearn-extract/tests/data/make_tiny.py"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "conv.w")
b = numpy_helper.from_array(np.zeros(8, np.float32), "conv.b")
fw = numpy_helper.from_array(rng.normal(size=(10, 8)).astype(np.float32), "fc.w")
fb = numpy_helper.from_array(np.zeros(10, np.float32), "fc.b")
nodes = [
    helper.make_node("Conv", ["data", "conv.w", "conv.b"], ["conv1"], name="conv1", strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
    helper.make_node("GlobalAveragePool", ["relu1"], ["pool"], name="pool"),
    helper.make_node("Flatten", ["pool"], ["flat"], name="flat"),
    helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["fc"], name="fc", transB=1),
    helper.make_node("Softmax", ["fc"], ["prob"], name="prob"),
]
g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 32, 32])],
                      [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], initializer=[w, b, fw, fb])
m = helper.make_model(g, producer_name="tlearn tests", opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.checker.check_model(m)
Path(__file__).with_name("tiny.onnx").write_bytes(m.SerializeToString(deterministic=True))
