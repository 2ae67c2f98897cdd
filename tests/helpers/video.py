"""Reading back the videos i2vkit writes (tests only: i2vkit itself never decodes its output)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def read_mp4(path: Path) -> Any:
    """Decode every frame of an mp4 into a uint8 array (F, H, W, 3)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)


def frame_rate(path: Path) -> float:
    """The rate a player shows the mp4's frames at, from their presentation times (not the
    container's claim); an uneven spacing is an error."""
    import av

    with av.open(str(path)) as container:
        times = [f.pts * f.time_base for f in container.decode(video=0)]  # exact fractions
    gaps = {b - a for a, b in itertools.pairwise(times)}
    if len(gaps) != 1:
        raise ValueError(f"{path}: frames are not evenly spaced: {[str(t) for t in times]}")
    return float(1 / gaps.pop())
