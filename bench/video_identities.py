"""Can a redacted video's faces still be tied to their people? (`redact_bench.py --video --clip lfw`)

A clip whose every face is of a known person: the first photo of each of `people` lfw_dev people
(3 or more photos each, by name) in a mosaic of ROWS rows, panned and zoomed across (1x to 1.6x) as
the WIDER FACE clip is; each photo's labelled face is the one facefind finds nearest its centre
(evaluate.labelled_face), carried into every frame. The gallery: every other photo of those
people, their labelled faces embedded with facefind's default recognizer.

Identified: a labelled face of 20 px or more in a frame is searched against the gallery as
facefind's search would (its default threshold, FPIR 0.01 at the gallery's size, from the shipped
calibration), and counts when the best match is the right person above the threshold; it is also
compared with each of the person's own gallery photos at the looser threshold of FMR 1e-3 (a
verification that loose calls them one person). In the input that is how well facefind knows these
people; in the output, what redaction leaves of it. A face is looked at where facefind finds it
in the input (the chip cut at those landmarks, in the output too) and, where the indexing
detector fires on the output there, at the output's own landmarks as well: the higher similarity
counts. The same verification against the next person's photos (by name) gives its chance level.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from facefind.calibration import DEFAULT_MAX_FPIR, default_calibration
from facefind.faces.backend import Detection
from facefind.faces.opencv import OpenCVBackend
from facefind.recognizers import NEW_CATALOGS, builtin_settings
from facefind.settings import Settings

ROWS = 4
TILE = 150  # lfw_dev's photos are 150 x 150
VERIFY_FMR = 1e-3


def people(data: Path, count: int, min_photos: int = 3) -> list[tuple[str, list[Path]]]:
    chosen = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= min_photos:
            chosen.append((folder.name, photos))
        if len(chosen) == count:
            break
    return chosen


def _backend() -> OpenCVBackend:
    return OpenCVBackend(builtin_settings(NEW_CATALOGS))


def _labelled(backend: OpenCVBackend, image: np.ndarray) -> Detection | None:
    """The face nearest the photo's centre (as evaluate.labelled_face picks it)."""
    h, w = image.shape[:2]
    return min(
        backend.detect(image),
        key=lambda d: (d.box[0] + d.box[2] / 2 - w / 2) ** 2 + (d.box[1] + d.box[3] / 2 - h / 2) ** 2,
        default=None,
    )


def pan_zoom(
    image: np.ndarray, boxes: np.ndarray, x0: float, y0: float, s: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The frame showing `image` from (x0, y0) scaled by `s`, and `boxes` (x, y, w, h) moved with it."""
    frame = cv2.warpAffine(image, np.array([[s, 0, -x0 * s], [0, s, -y0 * s]]), size)
    moved = boxes.copy()
    moved[:, :2] = (boxes[:, :2] - np.array([x0, y0], np.float32)) * s
    moved[:, 2:] = boxes[:, 2:] * s
    return frame, moved


def make_clip(
    path: Path, chosen: list[tuple[str, list[Path]]], seconds: float, size: tuple[int, int], fps: int
) -> tuple[list[np.ndarray], list[list[str]]]:
    """Write the clip (H.264); each frame's labelled boxes (x, y, w, h) and whose faces they are."""
    backend = _backend()
    cols = -(-len(chosen) // ROWS)
    canvas = np.zeros((ROWS * TILE, cols * TILE, 3), np.uint8)
    boxes, names = [], []
    for i, (name, photos) in enumerate(chosen):
        image = cv2.resize(cv2.imread(str(photos[0])), (TILE, TILE), interpolation=cv2.INTER_AREA)
        face = _labelled(backend, image)
        if face is None:
            continue
        r, c = divmod(i, cols)
        canvas[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = image
        x, y, w, h = face.box
        boxes.append((x + c * TILE, y + r * TILE, w, h))
        names.append(name)
    base = np.array(boxes, np.float32)
    width, height = size
    ch, cw = canvas.shape[:2]
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = {"crf": "18", "preset": "veryfast"}
    truth = []
    frames = round(seconds * fps)
    for t in range(frames):
        u = t / (frames - 1)
        zoom = 1.0 + 0.6 * u
        vh = ch / zoom
        vw = vh * width / height
        x0, y0 = (cw - vw) * u, (ch - vh) * 0.5
        frame, moved = pan_zoom(canvas, base, x0, y0, width / vw, size)
        truth.append(moved)
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
            container.mux(packet)
    container.mux(video.encode(None))
    container.close()
    return truth, [names] * frames


def gallery(chosen: list[tuple[str, list[Path]]]) -> tuple[np.ndarray, list[str]]:
    """Every photo but the first of each person: their labelled faces' embeddings, and names."""
    backend = _backend()
    vectors, names = [], []
    for name, photos in chosen:
        for photo in photos[1:]:
            image = cv2.imread(str(photo))
            face = _labelled(backend, image)
            if face is not None:
                vectors.append(backend.embed([backend.align(image, face)])[0])
                names.append(name)
    return np.array(vectors, np.float32), names


def identified(
    clip: Path,
    output: Path,
    truth: list[np.ndarray],
    who: list[list[str]],
    faces: tuple[np.ndarray, list[str]],
    counted,  # type: ignore[no-untyped-def]
    iou,  # type: ignore[no-untyped-def]
    every: int = 2,
) -> dict:
    """Counts of labelled face-frames (every `every`-th frame) identified in the input and in the output."""
    backend, cutter = _backend(), OpenCVBackend(Settings())  # cutter: a chip at given landmarks, as they are
    vectors, names = faces
    calibration = default_calibration(backend.model_id)
    search_at = calibration.threshold_for_fpir(DEFAULT_MAX_FPIR, len(names))
    verify_at = calibration.threshold(VERIFY_FMR)
    own = {n: np.array([k for k, m in enumerate(names) if m == n]) for n in set(names)}
    order = sorted(own)
    following = {n: order[(i + 1) % len(order)] for i, n in enumerate(order)}

    def best(box: np.ndarray, found: list) -> object | None:
        top = max(((iou(box, d.box), d) for d in found), key=lambda x: x[0], default=(0.0, None))
        return top[1] if top[0] >= 0.3 else None

    out = {
        "input": {"searched": 0, "identified": 0, "verified": 0, "verified_as_next_person": 0},
        "output": {"searched": 0, "identified": 0, "verified": 0, "verified_as_next_person": 0},
    }
    highest: list[float] = []
    not_found = 0
    with av.open(str(clip)) as ci, av.open(str(output)) as co:
        for t, (fi, fo) in enumerate(zip(ci.decode(video=0), co.decode(video=0), strict=True)):
            if t % every:
                continue
            a, b = fi.to_ndarray(format="bgr24"), fo.to_ndarray(format="bgr24")
            boxes = truth[t]
            keep = {tuple(x) for x in counted(boxes)}
            found_in, found_out = backend.detect(a), backend.detect(b)
            for box, name in zip(boxes, who[t], strict=True):
                if tuple(box) not in keep or name not in own:
                    continue
                d = best(box, found_in)
                if d is None:
                    not_found += 1
                    continue
                there = backend._mirror_averaged(a, d)  # the landmarks facefind uses there
                chips = [backend.align(a, d), cutter.align(b, there)]
                e = best(box, found_out)
                if e is not None:
                    chips.append(backend.align(b, e))
                v = backend.embed(chips)
                sims = v @ vectors.T  # rows: input, output at the input's landmarks[, at the output's]
                for side, rows in (("input", sims[:1]), ("output", sims[1:])):
                    top = rows.max(axis=0)  # each gallery face's highest similarity over the chips
                    k = int(np.argmax(top))
                    res = out[side]
                    res["searched"] += 1
                    res["identified"] += int(top[k] >= search_at and names[k] == name)
                    res["verified"] += int(top[own[name]].max() >= verify_at)
                    # the chance level: the same comparison with the next person's photos
                    res["verified_as_next_person"] += int(top[own[following[name]]].max() >= verify_at)
                    if side == "output":
                        highest.append(float(top[own[name]].max()))
    return {
        **out,
        "not_found_in_input": not_found,
        "people": len(own),
        "gallery_faces": len(names),
        "search_threshold": round(float(search_at), 4),
        "verify_threshold_fmr_1e-3": round(float(verify_at), 4),
        "output_highest_similarity_to_own_photos": [round(x, 3) for x in sorted(highest)[-5:]],
        "output_median_similarity_to_own_photos": round(float(np.median(highest)), 3) if highest else None,
    }
