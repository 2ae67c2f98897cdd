"""The hostile pass's first frames (benchmarks/hostile.py): pictures that are not pictures,
truncated, too thin, too many pixels, bombs (a header's size, a zTXt chunk), and odd but valid
ones (CMYK, 16-bit, alpha, palette, EXIF-rotated, animated, BMP, TIFF, WebP) that must be
accepted; then names, content types and a size one byte over the cap.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from functools import partial
from typing import Any

from hostile_core import CAP, PNG, Case, Target, job
from PIL import Image


def pictures() -> dict[str, tuple[str, bytes]]:
    """Hostile first frames: name -> (expected answer, bytes)."""

    def save(image: Image.Image, kind: str, **kw: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, kind, **kw)
        return out.getvalue()

    rng = random.Random(5)  # noqa: S311
    noise = save(Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3)), "PNG")
    small = Image.new("RGB", (96, 64), (200, 80, 40))
    rotated = small.getexif()
    rotated[0x0112] = 6  # EXIF orientation: rotate 90 degrees
    frames = [small.convert("P")] * 3
    ok, no = "202,429", "4xx"
    return {
        "not an image (text)": (no, b"hello, this is not a picture"),
        "an empty file": (no, b""),
        "random bytes": (no, rng.randbytes(5000)),
        "an SVG": (no, b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
        "a PNG signature only": (no, b"\x89PNG\r\n\x1a\n"),
        "a truncated PNG": (no, noise[: len(noise) // 2]),
        "a 1x20000 PNG": (no, save(Image.new("L", (1, 20000)), "PNG")),
        "a 20000x1 PNG": (no, save(Image.new("L", (20000, 1)), "PNG")),
        "a 6000x6000 JPEG": (ok, save(Image.new("RGB", (6000, 6000), (90, 140, 200)), "JPEG")),
        "a decompression bomb header (100000x100000)": (no, _png_header(100_000, 100_000)),
        "a PNG header of 41 MP (6400x6400)": (no, _png_header(6400, 6400)),
        "a zTXt bomb (50 MB of text in 50 KB)": (no, _ztxt_bomb(save(small, "PNG"))),
        "CMYK JPEG": (ok, save(Image.new("CMYK", (96, 64), (0, 100, 200, 10)), "JPEG")),
        "16-bit greyscale PNG": (ok, save(Image.new("I;16", (96, 64), 40000), "PNG")),
        "RGBA PNG": (ok, save(Image.new("RGBA", (96, 64), (1, 2, 3, 0)), "PNG")),
        "LA PNG": (ok, save(Image.new("LA", (96, 64)), "PNG")),
        "palette PNG, transparent": (ok, save(Image.new("P", (96, 64)), "PNG", transparency=0)),
        "1-bit PNG": (ok, save(Image.new("1", (96, 64)), "PNG")),
        "EXIF-rotated JPEG": (ok, save(small, "JPEG", exif=rotated.tobytes())),
        "animated GIF": (ok, save(frames[0], "GIF", save_all=True, append_images=frames)),
        "BMP": (ok, save(small, "BMP")),
        "TIFF": (ok, save(small, "TIFF")),
        "WebP": (ok, save(small, "WEBP")),
        "a 1x1 PNG": (ok, save(Image.new("RGB", (1, 1)), "PNG")),
        "a 16:1 PNG (1024x64)": (ok, save(Image.new("RGB", (1024, 64)), "PNG")),
        "a PNG with 1 MB of junk after IEND": (ok, save(small, "PNG") + b"\0" * 2**20),
    }


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height, with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b""))  # fmt: skip


def _ztxt_bomb(picture: bytes) -> bytes:
    text = _chunk(b"zTXt", b"bomb\0\0" + zlib.compress(b"0" * 50_000_000, 9))
    return picture[:33] + text + picture[33:]  # after the signature and IHDR


def image_cases(t: Target) -> list[Case]:
    cases: list[Case] = [(f"image: {name}", expect, partial(job, t, image=data))
             for name, (expect, data) in pictures().items()]  # fmt: skip
    over = PNG + b"\0" * (CAP + 1 - len(PNG))
    parts = [("a PNG named ../../etc/passwd", "202,429", ("../../etc/passwd", PNG, "image/png")),
             ("a PNG sent as text/html", "202,429", ("x.html", PNG, "text/html")),
             ("a PNG with a 5000-char name", "", ("n" * 5000 + ".png", PNG, "image/png")),
             ("an image of the cap + 1 byte", "413", ("big.png", over, "image/png"))]  # fmt: skip
    for name, expect, part in parts:
        cases.append((f"image: {name}", expect, partial(job, t, files={"image": part})))
    return cases
