"""Writing and reading mp4 files with PyAV (FFmpeg's libraries, shipped in its wheels).

PyAV rather than imageio-ffmpeg (a subprocess around an ffmpeg binary) or OpenCV (no H.264 in
its wheels): one library, in-process, with libx264. Writes are atomic: a partial video is never
visible under the final name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2vkit import files


def write_mp4(frames: Any, path: Path, fps: int, audio: Any = None) -> Path:
    """Encode `frames` (uint8 array, (F, H, W, 3)) as H.264 mp4 at `path`, atomically; with
    `audio` (runtime/pipelines/base.py Audio: (channels, samples) floats), an AAC track too."""
    import av

    with (
        files.replacing(Path(path), suffix=".mp4") as tmp,
        av.open(str(tmp), "w", "mp4") as container,
    ):
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = int(frames.shape[1]), int(frames.shape[2])
        stream.pix_fmt = "yuv420p"  # what browsers and phones play
        stream.options = {"crf": "18", "preset": "fast", "movflags": "+faststart"}
        sound = _audio_stream(container, audio) if audio is not None else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _write_audio(container, sound, audio)
    return Path(path)


def _audio_stream(container: Any, audio: Any) -> Any:
    channels = int(audio.samples.shape[0])
    stream = container.add_stream("aac", rate=audio.rate)
    stream.layout = "stereo" if channels == 2 else "mono"
    return stream


def _write_audio(container: Any, stream: Any, audio: Any) -> None:
    """The whole track as one planar float frame; the encoder cuts it into AAC frames."""
    import av
    import numpy as np

    samples = np.ascontiguousarray(np.clip(audio.samples, -1, 1).astype(np.float32))
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=stream.layout.name)
    frame.sample_rate, frame.pts = audio.rate, 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
