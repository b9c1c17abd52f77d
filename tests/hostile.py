"""A zoo of hostile files for the fuzz test: mutated real photos, special files, odd names.

Everything is generated from a seed, so a failure names a zoo that can be rebuilt exactly.
"""

from __future__ import annotations

import io
import os
import random
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

Mutation = Callable[[random.Random, bytes], bytes]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 60)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + rng.randbytes(rng.randint(1, 512)) + data[start + 512 :]


def insert(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + rng.randbytes(rng.randint(1, 4096)) + data[at:]


def delete(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 4096) :]


def repeat_chunk(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    chunk = data[at : at + rng.randint(16, 2048)]
    return data[:at] + chunk * rng.randint(2, 50) + data[at:]


def wipe_header(rng: random.Random, data: bytes) -> bytes:
    return bytes(rng.randint(1, 64)) + data[64:]


def garbage_with_magic(rng: random.Random, data: bytes) -> bytes:
    return data[:4] + rng.randbytes(rng.randint(0, 20_000))


def jpeg_dimensions(rng: random.Random, data: bytes) -> bytes:
    """Rewrite the frame header's height and width (SOF0/SOF2): zero, huge or mismatched."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            h, w = rng.choice([(0, 0), (65535, 65535), (1, 65535), (60000, 40000), (16, 16), (7, 9999)])
            return data[: at + 5] + struct.pack(">HH", h, w) + data[at + 9 :]
    return flip_bits(rng, data)


def png_dimensions(rng: random.Random, data: bytes) -> bytes:
    """Rewrite IHDR's width and height, with a correct CRC half the time."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return truncate(rng, data)
    w, h = rng.choice([(0, 1), (100_000, 100_000), (2**31 - 1, 1), (30_000, 30_000), (1, 1)])
    ihdr = b"IHDR" + struct.pack(">II", w, h) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(ihdr)) if rng.random() < 0.5 else data[29:33]
    return data[:8] + data[8:12] + ihdr + crc + data[33:]


MUTATIONS: list[Mutation] = [
    truncate,
    flip_bits,
    overwrite,
    insert,
    delete,
    repeat_chunk,
    wipe_header,
    garbage_with_magic,
    jpeg_dimensions,
    png_dimensions,
]


def variants(photo: Path) -> dict[str, bytes]:
    """The same real photo in every format and mode facefind reads: each one is a valid photo."""
    with Image.open(photo) as img:
        rgb = img.convert("RGB")
    rgb.thumbnail((480, 480))
    out: dict[str, bytes] = {}

    def save(name: str, image: Image.Image, fmt: str, **kw: object) -> None:
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("small.jpg", rgb, "JPEG", quality=90)
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    save("grey.jpg", rgb.convert("L"), "JPEG")
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("rgb.png", rgb, "PNG")
    save("alpha.png", rgb.convert("RGBA"), "PNG")
    save("palette.png", rgb.convert("P"), "PNG")
    save("sixteen.png", rgb.convert("I;16"), "PNG")
    save("photo.webp", rgb, "WEBP")
    save("photo.bmp", rgb, "BMP")
    save("photo.tiff", rgb, "TIFF", compression="tiff_lzw")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: must be turned upright, and still found
    save("rotated.jpg", rgb.rotate(90, expand=True), "JPEG", exif=exif)
    return out


def odd_exif(photo: bytes, rng: random.Random) -> bytes:
    """A photo whose EXIF orientation is out of range or the wrong type."""
    with Image.open(io.BytesIO(photo)) as img:
        exif = Image.Exif()
        exif[0x0112] = rng.choice([0, 9, 65535, -1, "up", 3.5])
        buf = io.BytesIO()
        try:
            img.convert("RGB").save(buf, "JPEG", exif=exif)
        except (TypeError, ValueError, struct.error):
            return photo
        return buf.getvalue()


def png_text_bomb() -> bytes:
    """A tiny PNG with a compressed text chunk that inflates to 200 MB."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    png = buf.getvalue()
    body = b"Comment\0\0" + zlib.compress(bytes(200 * 2**20), 9)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    return png[:33] + chunk + png[33:]


ODD_NAMES = [
    b"\xff\xfe bytes.jpg",
    b"new\nline.jpg",
    b"\x1b[2J\x1b[31mclear.jpg",
    b"\xe2\x80\xaegpj.exe.jpg",  # right-to-left override
    b"-db=x.jpg",
    b"--help.jpg",
    b"[bold]markup[red.jpg",
    b"tab\tand space .jpg",
    b"%s%n%x.jpg",
    b"long" * 60 + b".jpg",
    b"caf\xc3\xa9.jpg",  # NFC
    b"cafe\xcc\x81.jpg",  # NFD: looks the same, is another file
    b"back\\xff.jpg",
    b"UPPER.JPG",
]


@dataclass
class Zoo:
    root: Path
    valid: set[bytes] = field(default_factory=set)  # paths (bytes) of photos that must be indexed
    hostile: set[bytes] = field(default_factory=set)
    special: set[bytes] = field(default_factory=set)  # not regular files: must be skipped, not read


def build(root: Path, photos: list[Path], hostile: int, seed: int) -> Zoo:
    rng = random.Random(seed)
    zoo = Zoo(root)
    root.mkdir(parents=True)
    base = os.fsencode(root)

    def put(folder: str, name: bytes, data: bytes, valid: bool) -> bytes:
        where = os.path.join(base, os.fsencode(folder))
        os.makedirs(where, exist_ok=True)
        path = os.path.join(where, name)
        with open(path, "wb") as f:
            f.write(data)
        (zoo.valid if valid else zoo.hostile).add(path)
        return path

    sources: list[bytes] = []
    for n, photo in enumerate(photos):
        for name, data in variants(photo).items():
            put("valid", f"{n:02}-{name}".encode(), data, valid=True)
            sources.append(data)
        sources.append(photo.read_bytes())
    for n, name in enumerate(ODD_NAMES):  # valid photos behind odd names
        put(f"names{n % 3}", name, sources[n % len(sources)], valid=True)

    for n in range(hostile - 11):  # + 4 other files + 7 special ones
        data = sources[rng.randrange(len(sources))]
        if n % 50 == 0:
            data = odd_exif(data, rng)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data = rng.choice(MUTATIONS)(rng, data) or b""
        ext = rng.choice([".jpg", ".png", ".webp", ".tiff", ".bmp", ".jpeg"])
        name = rng.choice([f"m{n:04}{ext}".encode(), f"m{n:04}".encode() + rng.choice(ODD_NAMES)])
        put(f"mutated{n % 7}", name, data, valid=False)
    put("other", b"empty.jpg", b"", valid=False)
    put("other", b"one.png", b"\x89", valid=False)
    put("other", b"text.jpg", b"this is not a photo\n" * 100, valid=False)
    put("other", b"bomb.png", png_text_bomb(), valid=False)

    special = os.path.join(base, b"special")
    os.makedirs(special)

    def make(name: bytes, create: Callable[[bytes], object]) -> None:
        path = os.path.join(special, name)
        create(path)
        zoo.special.add(path)

    make(b"fifo.jpg", os.mkfifo)
    make(b"zero.jpg", lambda p: os.symlink("/dev/zero", p))
    make(b"null.png", lambda p: os.symlink("/dev/null", p))
    make(b"dangling.jpg", lambda p: os.symlink(os.path.join(special, b"nowhere"), p))
    make(b"loop.jpg", lambda p: os.symlink(p, p))
    make(b"folder.jpg", os.mkdir)
    sock = socket.socket(socket.AF_UNIX)
    make(b"socket.jpg", sock.bind)
    sock.close()
    link = os.path.join(special, b"link-to-valid.jpg")  # a link to a regular file is followed
    os.symlink(sorted(zoo.valid)[0], link)
    zoo.valid.add(link)
    return zoo
