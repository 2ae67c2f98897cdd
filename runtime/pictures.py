"""Input images: opened with Pillow, checked, rotated by EXIF, converted to 8-bit RGB.

CMYK, 16-bit, palette and alpha images all arrive as RGB; a truncated, corrupt or unsupported
file, one whose pixel count could be a decompression bomb, or one so narrow that cropping it to
a video's shape would cost gigabytes (an 857-byte PNG asked for 4 GB), is refused with the
reason, from its header, before it is decoded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from i2vkit.errors import RequestError

MAX_PIXELS = 40_000_000  # 40 MP: larger than any camera image people send; bombs are far larger
MAX_ASPECT = 16  # a first frame is cropped to the video's aspect: 16:1 keeps a useful part


def load_image(source: Path | bytes, name: str = "image") -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise RequestError(f"cannot read {name}: {error.strerror}") from error
    kind = None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            kind = probe.format
            if max(width, height) > MAX_ASPECT * min(width, height):
                raise RequestError(
                    f"{name} is {width}x{height}: one side is over {MAX_ASPECT} times the other; "
                    "crop it closer to the video's shape first"
                )
            if width * height > MAX_PIXELS:
                raise RequestError(
                    f"{name} is {width}x{height} ({width * height / 1e6:.0f} MP); "
                    f"the limit is {MAX_PIXELS / 1e6:.0f} MP: downscale it first"
                )
        image: Image.Image = Image.open(io.BytesIO(data))
        image.load()  # decodes now, so a truncated file fails here, not mid-job
    except UnidentifiedImageError as error:
        raise RequestError(
            f"{name} is not an image Pillow can read (PNG, JPEG, WebP, ...)"
        ) from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, RequestError):
            raise
        raise RequestError(
            f"{name} ({kind or 'unknown format'}) is corrupt or truncated: {error}"
        ) from error
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def gradient_picture(height: int, width: int) -> Any:
    """A deterministic picture (colour gradients), so warm-ups and `i2vkit bench` need no file."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    return Image.fromarray(rgb.astype("uint8"))
