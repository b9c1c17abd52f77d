"""Decoding: formats, EXIF orientation, and the bad-file zoo each refused with its reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facefind.errors import ImageError
from facefind.images import load_image

from .conftest import FR, OBAMA


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


BAD_FILES = {
    "empty.jpg": (b"", "empty file"),
    "text.jpg": (b"this is not a photo\n" * 20, "not a supported image"),
    "truncated.jpg": (OBAMA.read_bytes()[:5000], "damaged or truncated"),
    "bomb.png": (png_header_only(30_000, 30_000), "decompression bomb"),
    "absurd.png": (png_header_only(50, 4000), "absurd dimensions"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_refused_with_their_reason(tmp_path: Path, name: str) -> None:
    data, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError, match=reason):
        load_image(path)


def test_missing_file_and_folder() -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image("/nonexistent/photo.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(FR)


def test_paths_bytes_and_arrays_decode_alike() -> None:
    from_path = load_image(OBAMA)
    from_str = load_image(str(OBAMA))
    from_bytes = load_image(OBAMA.read_bytes())
    assert from_path.shape == from_bytes.shape and from_path.shape[2] == 3
    assert np.array_equal(from_path, from_bytes) and np.array_equal(from_path, from_str)
    assert np.array_equal(load_image(from_path), from_path)
    grey = load_image(from_path[:, :, 0])
    assert grey.shape == from_path.shape
    with pytest.raises(ImageError, match="not an image"):
        load_image(np.zeros((4, 4, 7), np.uint8))


def test_rgba_png_is_composited_to_three_channels() -> None:
    img = load_image(FR / "Barack_Obama" / "32bit.png")
    assert img.ndim == 3 and img.shape[2] == 3


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = Image.open(OBAMA)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # pixels stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": undoes ROTATE_90 (which is CCW)
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    decoded = load_image(buf.getvalue())
    assert decoded.shape[:2] == (upright.height, upright.width)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_other_formats(tmp_path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    Image.open(OBAMA).save(buf, fmt)
    assert load_image(buf.getvalue()).shape[:2] == load_image(OBAMA).shape[:2]


def test_heic_when_pillow_heif_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif", reason="HEIC support is optional (pip install 'facefind[heic]')")
    from facefind.images import EXTENSIONS

    path = tmp_path / "photo.heic"
    Image.open(OBAMA).save(path, "HEIF", quality=90)
    assert ".heic" in EXTENSIONS
    assert load_image(path).shape[:2] == load_image(OBAMA).shape[:2]


def test_a_large_photo_names_the_pixel_limit_and_how_to_raise_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 108 MP photo was refused as a "bomb" without the limit or a way past it."""
    from facefind.errors import FacefindError
    from facefind.settings import Settings

    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(12_000, 9_000))
    limit = r"12000x9000 = 108 MP, over the limit of 89 MP.*FACEFIND_MAX_PIXELS"
    with pytest.raises(ImageError, match=limit):
        load_image(big)
    monkeypatch.setenv("FACEFIND_MAX_PIXELS", "200_000_000")
    assert Settings().max_image_pixels == 200_000_000
    with pytest.raises(ImageError, match="damaged or truncated"):  # past the limit: decoded (a stub PNG)
        load_image(big, Settings())
    monkeypatch.setenv("FACEFIND_MAX_PIXELS", "lots")
    with pytest.raises(FacefindError, match="FACEFIND_MAX_PIXELS='lots'"):
        Settings()
