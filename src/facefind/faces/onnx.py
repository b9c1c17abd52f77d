"""An operator's own ONNX recognizer behind YuNet detection and SFace's 5-point alignment.

Faces are found by YuNet and cut to SFace's aligned 112x112 chip exactly as for the built-in
model (so stored boxes, landmarks and quality are shared by every recognizer); only the last
step, chip -> embedding, runs the registered model.

The model runs on OpenCV's DNN module (`cv2.dnn.readNetFromONNX`), not onnxruntime: OpenCV is
already what runs YuNet and SFace, so a registered model adds no dependency, no second thread
pool fighting the ingest worker processes for the cores, and behaves the same in every worker.
The price is OpenCV's narrower operator coverage: a model using an operator OpenCV lacks is
refused at `models add` with OpenCV's own message (convert or simplify the model, e.g. with
onnxsim, then register it again).

Preprocessing: chip (BGR uint8, 112x112) -> resized to `input_size` if different -> RGB or BGR
-> (x - mean) / std -> NCHW float32. ArcFace/InsightFace-style models take RGB with mean 127.5,
std 127.5 (the defaults). SFace's own file takes RGB 0..255 (mean 0, std 1): that is what
`cv2.FaceRecognizerSF.feature` feeds it (it swaps B and R), measured here to give the same
embedding (cosine 1.0000) while BGR input gives 0.84.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelUnavailable, RecognizerError
from ..models import sha256_file
from ..settings import Settings
from .opencv import OpenCVBackend

COLORS = ("rgb", "bgr")
CHIP = 112  # SFace's aligned chip side


@dataclass(frozen=True)
class RecognizerSpec:
    """A registered recognizer as the catalog stores it (everything needed to load it again)."""

    model_id: str
    path: str  # absolute path of the operator's file; never copied
    sha256: str
    input_size: int
    dim: int
    color: str = "rgb"
    mean: float = 127.5
    std: float = 127.5


def read_net(path: Path) -> cv2.dnn.Net:
    """The network in `path`, or a RecognizerError saying why it cannot be used."""
    if not path.is_file():
        raise RecognizerError(f"{path}: no such file. Give the path of the recognizer's .onnx file.")
    with path.open("rb") as f:
        head = f.read(16)
    if head[:3] in (b"\xff\xd8\xff", b"\x89PN", b"GIF") or head[:4] == b"PK\x03\x04":
        raise RecognizerError(
            f"{path} is not an ONNX model (it looks like an image or a zip archive). "
            f"Give the recognizer's .onnx file itself (unpack it first if it came in an archive)."
        )
    try:
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as err:
        raise RecognizerError(
            f"{path} could not be read as an ONNX model ({_cv_message(err)}). It is not an ONNX file, "
            f"is damaged, or uses operators OpenCV's DNN module lacks: check the download against its "
            f"published sha256, or simplify/convert the model (e.g. onnxsim) and register it again."
        ) from None


def probe(net: cv2.dnn.Net, path: Path, input_size: int) -> int:
    """Run one dummy 1x3xNxN forward pass; return the embedding dimension or refuse the model."""
    outputs = net.getUnconnectedOutLayersNames()
    if len(outputs) != 1:
        raise RecognizerError(
            f"{path} has {len(outputs)} outputs ({', '.join(outputs)}); a recognizer must have exactly "
            f"one, the embedding. Export the model with only its embedding output."
        )
    net.setInput(np.zeros((1, 3, input_size, input_size), np.float32))
    try:
        out = np.asarray(net.forward())
    except cv2.error as err:
        raise RecognizerError(
            f"{path} does not accept a 1x3x{input_size}x{input_size} input ({_cv_message(err)}). "
            f"Check the input size the model was exported with and give it as --input "
            f"(ArcFace-style models take 112)."
        ) from None
    dims = [d for d in out.shape[1:] if d != 1]
    if out.shape[:1] != (1,) or len(dims) != 1:
        raise RecognizerError(
            f"{path} outputs an array of shape {'x'.join(map(str, out.shape))} for one face; a recognizer "
            f"must output one embedding vector (1xD). Is this a detection or landmark model?"
        )
    if dims[0] < 2 or not np.all(np.isfinite(out)):
        raise RecognizerError(
            f"{path} outputs {out.ravel()[:4]} for one face, not a usable embedding vector."
        )
    return int(dims[0])


def _cv_message(err: cv2.error) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1].lstrip("> ").strip() if lines else type(err).__name__


class OnnxBackend(OpenCVBackend):
    """YuNet + SFace alignment (inherited) with a registered recognizer for the embeddings."""

    def __init__(self, spec: RecognizerSpec, settings: Settings | None = None) -> None:
        super().__init__(settings, sface_embeddings=False)
        path = Path(spec.path)
        if not path.is_file():
            raise ModelUnavailable(
                f"the file of recognizer {spec.model_id} is gone ({spec.path}). Put it back, or switch "
                f"to another model with `facefind models use sface-2021dec`."
            )
        found = sha256_file(path)
        if found != spec.sha256:
            raise ModelUnavailable(
                f"the file of recognizer {spec.model_id} ({spec.path}) changed since it was registered: "
                f"its sha256 is {found}, registered {spec.sha256}. Restore the original file, or "
                f"switch to another model with `facefind models use sface-2021dec`."
            )
        self.spec = spec
        self.model_id = spec.model_id
        self.dim = spec.dim
        self._net = read_net(path)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        spec = self.spec
        size = (spec.input_size, spec.input_size)
        rows = []
        for chip in chips:  # one at a time: many exports fix the batch size at 1
            blob = cv2.dnn.blobFromImage(
                chip, 1.0 / spec.std, size, (spec.mean, spec.mean, spec.mean), swapRB=spec.color == "rgb"
            )
            self._net.setInput(blob)
            rows.append(np.asarray(self._net.forward(), np.float32).reshape(1, -1))
        feats = np.vstack(rows)
        return (feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
