"""Writing and reading mp4 files with PyAV (FFmpeg's libraries, shipped in its wheels).

PyAV rather than imageio-ffmpeg (a subprocess around an ffmpeg binary) or OpenCV (no H.264 in
its wheels): one library, in-process, with libx264. Writes are atomic: a partial video is never
visible under the final name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2vkit import files


def write_mp4(frames: Any, path: Path, fps: int) -> Path:
    """Encode `frames` (uint8 array, (F, H, W, 3)) as H.264 mp4 at `path`, atomically."""
    import av

    with (
        files.replacing(Path(path), suffix=".mp4") as tmp,
        av.open(str(tmp), "w", "mp4") as container,
    ):
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = int(frames.shape[1]), int(frames.shape[2])
        stream.pix_fmt = "yuv420p"  # what browsers and phones play
        stream.options = {"crf": "18", "preset": "fast", "movflags": "+faststart"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)
