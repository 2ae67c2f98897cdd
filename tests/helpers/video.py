"""Reading back the videos i2vkit writes (tests only: i2vkit itself never decodes its output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_mp4(path: Path) -> Any:
    """Decode every frame of an mp4 into a uint8 array (F, H, W, 3)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)
