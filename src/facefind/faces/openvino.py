"""SFace on OpenVINO's CPU runtime (`Settings.engine`): the same ONNX file OpenCV's DNN runs, in
bfloat16 where the CPU computes it (AVX-512 BF16 or AMX; elsewhere float32). On the benchmark
machine (AMD EPYC, one thread) 7.5 ms a chip instead of 15, its vectors within cosine 0.998 of
OpenCV's, so catalogs, model ids and calibrations made with either engine stay valid and mix
(docs/design.md, "Engine"). YuNet stays on OpenCV: see there why."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

PRECISION = "bf16"  # where the CPU computes it; elsewhere OpenVINO stays in float32


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class Net:
    """An ONNX network compiled for the CPU, its input of `shape` (-1: any size), `threads`
    threads; one inference at a time (a server's request threads may share it)."""

    def __init__(self, path: Path, shape: list[int], threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        model.reshape({model.inputs[0].get_any_name(): shape})
        config = {
            "INFERENCE_NUM_THREADS": str(max(1, threads)),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            # Not pinned: each worker process would pin its thread to the same first core (two
            # workers then share one core while the other idles).
            "ENABLE_CPU_PINNING": "NO",
        }
        compiled = core.compile_model(model, "CPU", config)
        self._names = [min(model.outputs[i].get_names()) for i in range(len(compiled.outputs))]
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def run(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            self._request.infer({0: blob})
            return {n: self._request.get_output_tensor(i).data.copy() for i, n in enumerate(self._names)}


class SFace:
    """SFace's raw vectors of a batch blob (N x 3 x 112 x 112)."""

    def __init__(self, path: Path) -> None:
        self.net = Net(path, [-1, 3, 112, 112], cv2.getNumThreads(), PRECISION)

    def forward(self, blob: np.ndarray) -> np.ndarray:
        (vectors,) = self.net.run(blob).values()
        return vectors
