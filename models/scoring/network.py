"""The network as every scorer runs it: one ONNX file (`models.training.nets.to_onnx`), run by ONNX Runtime.

    network = Network(onnx_bytes)
    probability, effects = network.run(features)     # float64 [n], float64 [n, G]

The same file is scored in Spark's JVM tasks (sparky/jvm/ModelScorer.java) by ONNX Runtime for Java
of the same version (1.23.2, pinned on both sides) with the same session options (`OPTIONS`: one
thread, every graph optimisation, sequential), so the JVM and Python give the same probabilities
and the same order of reasons (tests/integration/test_parity.py holds them to it). No torch here:
the API and the job's driver load this without it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort

from models.features.spec import Features

INPUTS, OUTPUTS = ("numeric", "codes"), ("probability", "effects")
CHUNK = 64  # rows per run: the graph's [rows, groups, layer] intermediates stay in cache (measured)
OPTIONS = {"intra_op_threads": 1, "inter_op_threads": 1}  # ModelScorer.java sets the same


def session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = OPTIONS["intra_op_threads"]
    options.inter_op_num_threads = OPTIONS["inter_op_threads"]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class Network:
    """An ONNX Runtime session over the exported network; thread-safe (ONNX Runtime's `run` is)."""

    def __init__(self, model: bytes) -> None:
        self.model = model
        self.sha256 = hashlib.sha256(model).hexdigest()
        self.session = session(model)
        found = (
            tuple(i.name for i in self.session.get_inputs()),
            tuple(o.name for o in self.session.get_outputs()),
        )
        if found != (INPUTS, OUTPUTS):
            raise ValueError(
                f"not a loan-default network: inputs/outputs {found}, expected {(INPUTS, OUTPUTS)}"
            )

    def run(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        """(probability float64 [n], removal effect per factor group float64 [n, G])."""
        if len(features.numeric) == 0:
            groups = self.session.get_outputs()[1].shape[1]
            return np.empty(0), np.empty((0, groups if isinstance(groups, int) else 0))
        numeric = np.ascontiguousarray(features.numeric, np.float32)
        codes = np.ascontiguousarray(features.codes, np.int64)
        chunks = range(0, len(numeric), CHUNK)
        feeds = [{"numeric": numeric[i : i + CHUNK], "codes": codes[i : i + CHUNK]} for i in chunks]
        parts = [self.session.run(list(OUTPUTS), feed) for feed in feeds]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def probability(self, features: Features) -> np.ndarray:
        return self.run(features)[0]
