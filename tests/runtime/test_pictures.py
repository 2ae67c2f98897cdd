"""Input images of every awkward kind arrive as 8-bit RGB, or are refused with the reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from i2vkit.errors import RequestError
from i2vkit.runtime.pictures import MAX_PIXELS, load_image


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_cmyk_jpeg_becomes_rgb():
    out = load_image(encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"))
    assert out.mode == "RGB" and out.size == (40, 30)
    r, g, b = out.getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta+yellow full: red


def test_16_bit_greyscale_is_scaled_not_clipped():
    data = np.full((20, 20), 40000, dtype=np.uint16)
    out = load_image(encode(Image.fromarray(data).convert("I;16")))
    assert out.mode == "RGB"
    assert abs(out.getpixel((5, 5))[0] - 40000 // 256) <= 1


def test_palette_with_transparency_lands_on_white():
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    image.info["transparency"] = 0
    out = load_image(encode(image))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(encode(image, "JPEG", exif=exif))
    assert out.size == (20, 40)


def test_truncated_file_is_refused():
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(RequestError) as error:
        load_image(data[: len(data) // 2], "upload.jpg")
    assert "upload.jpg" in str(error.value) and "truncated" in str(error.value)


def test_not_an_image_is_refused():
    with pytest.raises(RequestError) as error:
        load_image(b"%PDF-1.7 not an image", "doc.pdf")
    assert "not an image" in str(error.value)


def test_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_PIXELS**0.5) + 100
    bomb = encode(Image.new("1", (side, side)), "PNG")  # small file, huge image
    assert len(bomb) < 1_000_000
    with pytest.raises(RequestError) as error:
        load_image(bomb, "bomb.png")
    assert "MP" in str(error.value) and "downscale" in str(error.value)
