"""Decode photos from paths, bytes or arrays into BGR arrays, refusing anything unsafe."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, InvalidValue, TooLarge
from .limits import MAX_UPLOAD_PIXELS
from .settings import Settings

try:  # HEIC/HEIF support is optional: only if pillow-heif installed cleanly.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF = False

EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff"}
    | ({".heic", ".heif"} if HEIF else set())
)

ImageSource = str | Path | bytes | np.ndarray
DEFAULT_UPLOAD_PIXELS = 50_000_000


class Upload(bytes):
    """A photo's bytes as received (an HTTP upload) with the file name its sender gave: the audit
    log and error messages name the upload by it (the name is the sender's word, not checked)."""

    name: str

    def __new__(cls, data: bytes, name: str | None) -> Upload:
        made = super().__new__(cls, data)
        made.name = (name or "")[:200]
        return made


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def load_image(source: ImageSource, settings: Settings | None = None, rgb: bool = False) -> np.ndarray:
    """Return an 8-bit BGR image (what OpenCV expects), with EXIF orientation applied.

    Paths and bytes are decoded with Pillow. Arrays are HxWx3 in BGR order, as `cv2.imread`
    gives them (grey HxW and BGRA HxWx4 accepted); an RGB array (`face_recognition.load_image_file`,
    `np.asarray(PIL.Image)`, matplotlib) needs `rgb=True` (RGBA too): taken as BGR, its red and
    blue swap and similarities drop (0.85 instead of 1.0 for the same photo), silently.
    Raises ImageError with the reason for empty, truncated, non-image, oversized files.
    """
    settings = settings or Settings()
    if isinstance(source, np.ndarray):
        return _from_array(source, rgb)
    if rgb:
        raise ImageError(
            "rgb=True is for arrays: a file or bytes is decoded in its own colour order; leave rgb out"
        )
    if isinstance(source, str | Path):
        path = Path(source)
        return decode_image(read_photo(path, settings), settings, name=str(path))
    if isinstance(source, Upload):  # sent to the service: a lower pixel limit (upload_max_pixels)
        limited = replace(settings, max_image_pixels=upload_max_pixels(settings))
        name = f"the upload {source.name!r}" if source.name else "the upload"
        return decode_image(bytes(source), limited, name=name, upload=True)
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_image(bytes(source), settings)
    raise ImageError(f"cannot use a {type(source).__name__} as a photo: give a path, bytes or an array")


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_photo(
    path: Path, settings: Settings, follow_links: bool = True, within: Path | None = None
) -> bytes:
    """The bytes of a photo file: regular files only, at most max_file_bytes. A link as the last
    part of `path` is followed, unless `follow_links` is false (then it is PhotoChanged).
    `within` (a service job's index root): the file is opened from the root down, folder by
    folder, following no link, so it is one under the root whatever is swapped meanwhile; if it is
    not, or a link is met, the error (OutsideRoot) is the same whatever the link points to.

    A FIFO would block a read forever and a link to /dev/zero never ends: the file is opened
    without blocking and checked before anything is read.
    """
    try:
        if within is not None:
            fd = _open_within(path, within)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW))
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as err:
        if err.errno == errno.ELOOP and not follow_links:
            raise PhotoChanged(f"{path}: {PhotoChanged.reason}") from None
        kind = None if within is not None else _special_kind(path)  # a job's read says no more
        if kind:
            raise ImageError(f"{path}: {kind}, not a photo file; only regular files are read") from None
        raise ImageError(f"{path}: cannot read ({err.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{path}: is a folder, not a photo")
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise ImageError(f"{path}: {kind}, not a photo file; only regular files are read")
        limit = settings.max_file_bytes
        if st.st_size > limit:
            raise TooLarge(
                f"{path}: {st.st_size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB a photo file may "
                f"have; if it is a real photo, raise the limit, e.g. FACEFIND_MAX_FILE_BYTES=2147483648 "
                f"(2 GiB)"
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            # Python allocates what read(n) asks for: ask for the size, then for more only if
            # the file grew meanwhile.
            data = f.read(st.st_size + 1)
            if len(data) > st.st_size:
                data += f.read(limit + 1 - len(data))
        if len(data) > limit:  # grew while being read
            raise TooLarge(f"{path}: larger than {limit / 2**20:.0f} MiB while being read")
        return data
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.strerror})") from None
    finally:
        os.close(fd)


class OutsideRoot(ImageError):
    """A job's photo that is not a file under its index root: a link (or a linked folder on its
    way) leading elsewhere, put there since the root was scanned. Says nothing about the target."""

    reason = "not a photo file under the index root (a link, or it changed since it was found); skipped"


def _open_within(path: Path, root: Path) -> int:
    """Open `path` (links resolved as they are now) from `root` down with O_NOFOLLOW at every step:
    whatever is swapped for a link meanwhile is refused, never followed."""
    base = os.path.realpath(root)
    real = os.path.realpath(path)  # not strict: a link to nothing resolves outside as well
    if os.path.commonpath([base, real]) != base or real == base:
        raise OutsideRoot(f"{path}: {OutsideRoot.reason}")
    *folders, name = Path(real).relative_to(base).parts
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):  # a link where a file or folder was
            raise OutsideRoot(f"{path}: {OutsideRoot.reason}") from None
        raise
    finally:
        os.close(fd)


class PhotoChanged(ImageError):
    """The file at a catalogued path is no longer the photo that was indexed there."""

    reason = "the photo changed since it was indexed; re-index it"


def read_catalogued(path: Path, sha256: str | None, settings: Settings) -> bytes:
    """The bytes at `path` if they still are the catalogued photo whose content hash is `sha256`:
    a link now at `path` is not followed, and other content (a swapped file) is PhotoChanged.
    Whoever can swap the file cannot make facefind serve a piece of another image."""
    data = read_photo(path, settings, follow_links=False)
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise PhotoChanged(f"{path}: {PhotoChanged.reason}")
    return data


def _special_kind(path: Path) -> str | None:
    try:
        return _KINDS.get(stat.S_IFMT(os.stat(path).st_mode))
    except OSError:
        return None


def upload_max_pixels(settings: Settings) -> int:
    """The pixel limit of photos sent to the service: FACEFIND_MAX_UPLOAD_PIXELS (default 50 MP),
    never above the limit for indexing. A query needs faces, not a poster; 50 MP takes ~1 GB to
    decode in the worst case (an image with alpha), under the service's one-request-at-a-time lock."""
    text = os.environ.get(MAX_UPLOAD_PIXELS.option, "").strip()
    try:
        wanted = MAX_UPLOAD_PIXELS.check(int(text.replace("_", ""))) if text else DEFAULT_UPLOAD_PIXELS
    except ValueError:
        raise InvalidValue(f"{MAX_UPLOAD_PIXELS.option}={text!r}: {MAX_UPLOAD_PIXELS.wanted()}") from None
    return min(wanted, settings.max_image_pixels)


def decode_image(
    data: bytes, settings: Settings, name: str = "image", notes: list[str] | None = None, upload: bool = False
) -> np.ndarray:
    """`notes`, if given, receives what the decoders said about damage they worked around;
    `upload`: the pixel limit is the service's upload limit (the message names it)."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    said: list[str] = [] if notes is None else notes
    # One decode at a time per process: the decoders' stderr and Pillow's pixel limit are global.
    with decoder_messages(said), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decode(data, settings, name, upload)
        finally:
            said.extend(dict.fromkeys(str(w.message) for w in caught))


def _decode(data: bytes, settings: Settings, name: str, upload: bool = False) -> np.ndarray:
    # Our limit, checked on the header below, replaces Pillow's (which cannot say the size).
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as opened:  # reads the header only
            _check_dimensions(opened.size, settings, name, upload)
            if _opencv_can_decode(opened, data):
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is not None:
                    return bgr
            ImageOps.exif_transpose(opened, in_place=True)
            return _to_bgr(opened)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"{name}: {_too_many_pixels(None, settings, upload)}") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name}: not a supported image (JPEG, PNG, WebP, BMP, TIFF{', HEIC' if HEIF else ''})"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name}: damaged or truncated image ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


@dataclass(eq=False)
class Photo:
    """A decoded photo, maybe decoded smaller than it is: `image` is the photo at 1/`scale` of
    its size (JPEG DCT scaling), `shape` the full photo's (height, width) with EXIF orientation
    applied; `full()` decodes it at full size, once, for the faces too small in `image`."""

    image: np.ndarray
    shape: tuple[int, int]
    data: bytes = b""
    settings: Settings = field(default_factory=Settings)
    name: str = "image"
    notes: list[str] = field(default_factory=list)
    _full: np.ndarray | None = None

    @classmethod
    def of(cls, image: np.ndarray) -> Photo:
        """An image decoded at full size."""
        return cls(image, (image.shape[0], image.shape[1]), _full=image)

    @property
    def scale(self) -> tuple[float, float]:
        """Full-size pixels per pixel of `image`, across and down."""
        return self.shape[1] / self.image.shape[1], self.shape[0] / self.image.shape[0]

    @property
    def reduced(self) -> bool:
        return self.image is not self._full

    @property
    def needs_full_decode(self) -> bool:
        return self._full is None

    def full(self) -> np.ndarray:
        if self._full is None:
            said: list[str] = []
            self._full = decode_image(self.data, self.settings, self.name, said)
            self.notes.extend(n for n in said if n not in self.notes)
        return self._full


# libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size (DCT scaling), 4-6x faster than in full.
REDUCTIONS = (8, 4, 2)


def decode_photo(
    data: bytes, settings: Settings, min_side: int, name: str = "image", notes: list[str] | None = None
) -> Photo:
    """The photo decoded at the smallest size whose longer side is still at least `min_side`
    (the detector's input): JPEGs by DCT scaling; other formats (PNG, WebP, HEIC, TIFF) in full,
    as their decoders cannot do better. A reduced decode that fails falls back to a full decode,
    whose error, if any, is the one raised (the reason a broken photo is reported with)."""
    said: list[str] = [] if notes is None else notes
    before = len(said)
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    with decoder_messages(said), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            reduced = _decode_reduced(data, settings, name, min_side)
        except ImageError:
            raise
        except Exception:  # any failure: the full decode below says what is wrong
            reduced = None
        finally:
            said.extend(dict.fromkeys(str(w.message) for w in caught))
    if reduced is None:
        del said[before:]  # the full decode says it again if the damage is real
        return Photo.of(decode_image(data, settings, name, said))
    image, shape = reduced
    return Photo(image, shape, data, settings, name, said)


def _decode_reduced(
    data: bytes, settings: Settings, name: str, min_side: int
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(image, full shape) of a JPEG decoded smaller, or None when it is not worth it or fails."""
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            _check_dimensions(opened.size, settings, name, upload=False)
            if opened.format != "JPEG":
                return None
            w, h = opened.size
            k = next((k for k in REDUCTIONS if -(-max(w, h) // k) >= min_side), 1)
            if k == 1:
                return None
            if _opencv_can_decode(opened, data):
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _CV_REDUCED[k])
            else:  # CMYK, data after the image, truncated: Pillow scales the DCT too (or raises)
                opened.draft(opened.mode, (w // k, h // k))  # Pillow picks the scale: w // (w // k) = k
                ImageOps.exif_transpose(opened, in_place=True)
                bgr = _to_bgr(opened)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    if bgr is None:
        return None
    # The decoders applied the EXIF orientation: the full shape is the header's, maybe turned.
    small = (-(-h // k), -(-w // k))
    if bgr.shape[:2] == small:
        return bgr, (h, w)
    if bgr.shape[:2] == small[::-1]:
        return bgr, (w, h)
    return None  # not the size DCT scaling gives: decode in full rather than guess


_CV_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


_STDERR = threading.Lock()


@contextmanager
def decoder_messages(notes: list[str]) -> Iterator[None]:
    """libjpeg, libpng and libtiff print warnings ("Corrupt JPEG data: ...") straight to file
    descriptor 2, through our progress bars and JSON-clean output. Catch them while decoding and
    give them to the caller; anything else written meanwhile (a progress bar redraw) goes out."""
    with _STDERR, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode(errors="replace")
    for line in text.splitlines(keepends=True):
        if "\x1b" in line or "\r" in line:
            sys.stderr.write(line)
        elif line.strip():
            notes.append(line.strip())


def _opencv_can_decode(img: Image.Image, data: bytes) -> bool:
    """OpenCV decodes these 2-3x faster than Pillow, with the same pixels and EXIF rotation.

    Pillow keeps what OpenCV gets wrong: alpha (composited on white), palettes, 16-bit, CMYK,
    HEIC, and truncated JPEGs, which OpenCV would fill with grey instead of refusing.
    """
    if img.mode not in ("RGB", "L") or img.format not in ("JPEG", "PNG", "WEBP", "BMP"):
        return False
    return img.format != "JPEG" or b"\xff\xd9" in data[-4096:]  # ends with End Of Image


def _check_dimensions(size: tuple[int, int], settings: Settings, name: str, upload: bool) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > settings.max_image_pixels:
        raise TooLarge(f"{name}: {_too_many_pixels((w, h), settings, upload)}")
    if max(w, h) > settings.max_image_side or max(w, h) / min(w, h) > settings.max_aspect_ratio:
        raise ImageError(f"{name}: absurd dimensions {w}x{h}; not a photo")


def _too_many_pixels(size: tuple[int, int] | None, settings: Settings, upload: bool = False) -> str:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.0f} MP" if size else "too many pixels"
    if upload:
        return (
            f"{what}, over the limit of {settings.max_image_pixels / 1e6:.0f} MP for photos sent to the "
            f"service; send a smaller photo (the operator sets the limit with {MAX_UPLOAD_PIXELS.option})"
        )
    return (
        f"{what}, over the limit of {settings.max_image_pixels / 1e6:.0f} MP that guards against "
        f"decompression bombs; if it is a real photo, raise the limit, e.g. FACEFIND_MAX_PIXELS=200000000 "
        f"(needs 3 to 8 bytes of memory a pixel)"
    )


def _to_bgr(img: Image.Image) -> np.ndarray:
    """The decoded image as BGR. Peak memory is the Pillow image plus the result (7 bytes a pixel
    for RGBA): the pixels are copied out a band of rows at a time, and each Pillow image is closed
    (its memory freed) once done. Pillow's own way (a white background, a composite, conversions
    and `tobytes`) held 24 bytes a pixel: 2.1 GiB for a 355 KB one-colour 88 MP PNG."""
    alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    # Composite on white rather than dropping alpha: transparent pixels are often black.
    converted = (img if img.mode == "RGBA" else img.convert("RGBA")) if alpha else _to_rgb(img)
    converted.load()
    if converted is not img:
        img.close()
    width, height = converted.size
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _BAND):
        band = np.asarray(converted.crop((0, top, width, min(height, top + _BAND))))
        out[top : top + _BAND] = _on_white(band) if alpha else band[:, :, ::-1]
    converted.close()
    return out


_BAND = 256


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA pixels composited on white, as BGR."""
    wide = rgba.astype(np.uint16)
    alpha = wide[:, :, 3:]
    return ((wide[:, :, 2::-1] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = (255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1)).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    return img.convert("RGB")


def _from_array(arr: np.ndarray, rgb: bool = False) -> np.ndarray:
    if arr.size == 0:
        raise ImageError("empty array given as a photo")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.stack([arr] * 3, axis=-1))
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, 2::-1] if rgb else arr[:, :, :3])
    raise ImageError(
        f"array of shape {arr.shape} is not an image: expected HxW, HxWx3 (BGR; RGB with rgb=True) or HxWx4"
    )


def face_thumbnail(image: np.ndarray, box: tuple[float, float, float, float], size: int) -> bytes:
    """A JPEG of the face at `box` (x, y, w, h) with some margin, its longer side `size` pixels."""
    x, y, w, h = box
    side = max(w, h) * 1.5
    cx, cy = x + w / 2, y + h / 2
    height, width = image.shape[:2]
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        raise ImageError(f"the face box {box} lies outside the photo ({width}x{height})")
    scale = size / max(crop.shape[:2])
    crop = cv2.resize(
        crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR array
        raise ImageError("could not encode the face crop")
    return jpeg.tobytes()
