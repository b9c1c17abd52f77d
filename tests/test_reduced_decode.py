"""Camera photos decoded at the detector's size (JPEG DCT scaling) find the same faces as in full."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facefind
from facefind.faces import load_backend
from facefind.faces.pipeline import analyze
from facefind.images import Photo, decode_image, decode_photo, load_image
from facefind.settings import Settings

from .conftest import BIDEN, MULTI, OBAMA

SETTINGS = Settings()
SIDE = SETTINGS.detect_max_side
DECODE = SETTINGS.decode_min_side
CAMERA_SIDE = 5400  # decoded at 1/2: 2700 px, just over twice the detector's 1280


def camera_jpeg(source: Path, side: int = CAMERA_SIDE, **save: object) -> bytes:
    """A real photo scaled up to a camera's size (longer side `side`), as a JPEG."""
    image = load_image(source)
    h, w = image.shape[:2]
    z = side / max(h, w)
    big = cv2.resize(image, (round(w * z), round(h * z)), interpolation=cv2.INTER_CUBIC)
    rgb = Image.fromarray(big[:, :, ::-1])
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", **{"quality": 92, **save})
    return buf.getvalue()


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    return load_backend(SETTINGS)


def same_faces(backend, data: bytes, settings: Settings = SETTINGS) -> tuple[list, list, Photo]:  # type: ignore[no-untyped-def]
    photo = decode_photo(data, settings, DECODE)
    reduced = analyze(backend, photo, settings)
    full = analyze(backend, decode_image(data, settings), settings)
    return reduced, full, photo


def assert_same(reduced: list, full: list, long_side: int) -> None:  # type: ignore[type-arg]
    # Both detections run on a ~1280 px copy: a few of its pixels, in full-photo pixels.
    tolerance = 3 * long_side / SIDE
    assert len(reduced) == len(full) > 0
    for r, f in zip(reduced, full, strict=True):
        assert np.abs(np.subtract(r.box, f.box)).max() <= tolerance, (r.box, f.box)
        assert float(r.embedding @ f.embedding) >= 0.99


@pytest.mark.parametrize("source", [OBAMA, BIDEN, MULTI / "obama_and_biden.jpg", MULTI / "kit_with_rose.jpg"])
def test_reduced_decode_finds_the_same_faces_as_a_full_decode(backend, source: Path) -> None:  # type: ignore[no-untyped-def]
    data = camera_jpeg(source)
    reduced, full, photo = same_faces(backend, data)
    assert photo.reduced and photo.image.shape[:2] != photo.shape
    assert max(photo.image.shape[:2]) == CAMERA_SIDE // 2 >= DECODE  # the smallest scale keeping 2x1280
    assert photo.shape == decode_image(data, SETTINGS).shape[:2]
    assert_same(reduced, full, CAMERA_SIDE)


def test_small_faces_are_cut_from_the_full_decode_of_that_photo(backend) -> None:  # type: ignore[no-untyped-def]
    """A face under chip_from_reduced_px in the reduced image gets its chip from a full decode
    (made once, for that photo only); the embedding matches the full decode's."""
    data = camera_jpeg(MULTI / "two_people.jpg")
    small = Settings(chip_from_reduced_px=10_000)  # every face counts as small
    reduced, full, photo = same_faces(backend, data, small)
    assert not photo.needs_full_decode  # the full decode happened
    assert_same(reduced, full, CAMERA_SIDE)
    large = decode_photo(data, SETTINGS, DECODE)
    faces = analyze(backend, large, Settings(chip_from_reduced_px=0))  # no face counts as small
    assert large.needs_full_decode and len(faces) == len(full)


def test_a_web_size_photo_is_decoded_in_full() -> None:
    photo = decode_photo(OBAMA.read_bytes(), SETTINGS, DECODE)
    assert not photo.reduced and photo.image.shape[:2] == photo.shape


def test_exif_orientation_is_applied_to_the_reduced_decode(backend) -> None:  # type: ignore[no-untyped-def]
    upright = Image.open(io.BytesIO(camera_jpeg(OBAMA)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; "rotate 90 CW to display"
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", exif=exif, quality=92)
    photo = decode_photo(buf.getvalue(), SETTINGS, DECODE)
    assert photo.reduced and photo.shape == (upright.height, upright.width)
    assert (photo.image.shape[0] > photo.image.shape[1]) == (upright.height > upright.width)  # as shown
    assert photo.scale == pytest.approx((2.0, 2.0), rel=0.01)
    reduced, full, _ = same_faces(backend, buf.getvalue())
    assert_same(reduced, full, CAMERA_SIDE)


def test_cmyk_and_progressive_jpegs(backend) -> None:  # type: ignore[no-untyped-def]
    cmyk = io.BytesIO()
    Image.open(io.BytesIO(camera_jpeg(BIDEN))).convert("CMYK").save(cmyk, "JPEG", quality=92)
    progressive = camera_jpeg(BIDEN, progressive=True)
    for data in (cmyk.getvalue(), progressive):
        reduced, full, photo = same_faces(backend, data)
        assert photo.reduced
        small_full = cv2.resize(
            decode_image(data, SETTINGS), photo.image.shape[1::-1], interpolation=cv2.INTER_AREA
        )
        assert np.abs(small_full.astype(int) - photo.image).mean() < 3  # same colours, no inversion
        assert_same(reduced, full, CAMERA_SIDE)


def test_a_16_bit_png_is_decoded_in_full() -> None:
    grey = cv2.cvtColor(cv2.resize(load_image(OBAMA), (3000, 2000)), cv2.COLOR_BGR2GRAY)
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint16) * 257).save(buf, "PNG")
    photo = decode_photo(buf.getvalue(), SETTINGS, DECODE)
    assert not photo.reduced
    assert np.array_equal(photo.image, decode_image(buf.getvalue(), SETTINGS))


def test_a_jpeg_with_data_after_it_is_still_decoded_small(backend) -> None:  # type: ignore[no-untyped-def]
    """Motion photos carry a video after the JPEG: OpenCV is not trusted with them, Pillow scales."""
    data = camera_jpeg(OBAMA) + b"\0" * 10_000
    reduced, full, photo = same_faces(backend, data)
    assert photo.reduced
    assert_same(reduced, full, CAMERA_SIDE)


def test_a_truncated_camera_photo_falls_back_and_is_reported(tmp_path: Path) -> None:
    """Its reduced decode fails, the full decode is tried and its reason is what the user sees."""
    data = camera_jpeg(OBAMA)
    notes: list[str] = []
    with pytest.raises(facefind.errors.ImageError, match="damaged or truncated"):
        decode_photo(data[: len(data) // 2], SETTINGS, DECODE, name="half.jpg", notes=notes)
    album = tmp_path / "album"
    album.mkdir()
    (album / "half.jpg").write_bytes(data[: len(data) // 2])
    (album / "whole.jpg").write_bytes(data)
    with facefind.open(tmp_path / "c.db") as ff:
        ff.create_collection("default", owner="test", basis="own", retention="30d")
        report = ff.index(album, workers=1)
        assert report.indexed == 1 and report.faces_found == 1
        assert [(Path(e.path).name, "damaged or truncated" in e.error) for e in report.error_files] == [
            ("half.jpg", True)
        ]
        (face_id,) = ff.catalog.faces_after(ff.backend.model_id, 0, 10)[0]
        box = ff.catalog.face_rows([face_id])[face_id].box
    full = analyze(load_backend(SETTINGS), decode_image(data, SETTINGS), SETTINGS)
    assert np.abs(np.subtract(box, full[0].box)).max() <= 3 * CAMERA_SIDE / SIDE  # full-photo pixels
