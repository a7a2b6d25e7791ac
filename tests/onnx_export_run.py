"""Run a model written by `tlearn export` in onnxruntime (called by tests/e2e_export.rs).

usage: onnx_export_run.py MODEL.onnx INPUTS.npy
INPUTS.npy: float32 [N, 3, S, S], images preprocessed by tlearn. Checks the model with the ONNX
checker, then prints JSON: the metadata's class names, the input/output names and shapes, and the
probabilities [N, classes] onnxruntime computes (batched, one run).
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, inputs_path = sys.argv[1], sys.argv[2]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    x = np.load(inputs_path)
    (probs,) = sess.run([out.name], {inp.name: x})
    json.dump(
        {
            "classes": json.loads(meta["classes"]),
            "input": {"name": inp.name, "shape": inp.shape},
            "output": {"name": out.name, "shape": out.shape},
            "metadata_keys": sorted(meta),
            "probabilities": probs.astype(float).tolist(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
