"""Video probing, decoding and encoding with PyAV (which bundles FFmpeg and libx264).

Frames are ``uint8`` RGB arrays of shape ``(H, W, 3)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from twinflow.atomic import atomic_path
from twinflow.errors import InputError

# FFmpeg logs through its own callback (to stderr, the rule's log). PyAV's Python callback is
# left off: with threaded decoders it can deadlock when a frame generator is abandoned early.
av.logging.restore_default_callback()


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found in a file.

    ``n_frames`` is the number of frames actually decoded; ``declared_frames`` what the container
    claims (0 when it does not say).
    """

    path: str
    width: int
    height: int
    fps: float
    n_frames: int
    declared_frames: int
    duration: float
    codec: str
    rotation: int
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path)
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise InputError(f"cannot be opened as a media file ({err})", path=path) from err


def probe_video(path: str | Path, *, min_frames: int = 1) -> VideoInfo:
    """Open ``path``, decode every frame once, and check that it is a usable video.

    Raises :class:`InputError` when the file is missing, not a media file, has no video stream
    (for example an audio file), decodes fewer than ``min_frames`` frames, or stops decoding
    early (a truncated file).
    """
    with _open(path) as container:
        if not container.streams:
            raise InputError("contains no media streams: an empty or zero-length clip", path=path)
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(
                f"has no video stream (found: {', '.join(kinds)}); is it an audio file?", path=path
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        declared = int(stream.frames or 0)
        n = 0
        last_time = 0.0
        rotation = 0
        try:
            for frame in container.decode(stream):
                if n == 0:
                    rotation = int(getattr(frame, "rotation", 0) or 0)
                n += 1
                if frame.time is not None:
                    last_time = float(frame.time)
        except av.error.FFmpegError as err:
            raise InputError(
                f"decoding failed after {n} frames ({err}); the file is damaged or truncated",
                path=path,
            ) from err
        if n < min_frames:
            raise InputError(
                f"decoded {n} video frames (need at least {min_frames}): zero-length or empty video",
                path=path,
            )
        if declared and n < 0.9 * declared:
            raise InputError(
                f"decoded only {n} of the {declared} frames the container declares; "
                "the file is truncated",
                path=path,
            )
        fps = float(rate) if rate else 0.0
        if not fps or not math.isfinite(fps):
            raise InputError("video stream has no frame rate", path=path)
        duration = max(last_time + 1.0 / fps, n / fps)
        return VideoInfo(
            path=str(path),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            n_frames=n,
            declared_frames=declared,
            duration=duration,
            codec=stream.codec_context.name,
            rotation=rotation,
            has_audio=audio is not None,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
        )


def iter_frames_timed(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, rgb)`` for every decoded frame of the first video stream."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / float(stream.average_rate)
            rgb = frame.to_ndarray(format="rgb24")
            rotation = int(getattr(frame, "rotation", 0) or 0)
            if rotation:
                rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
            yield t, rgb


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every frame of ``path`` as RGB ``(H, W, 3) uint8``."""
    for _, rgb in iter_frames_timed(path):
        yield rgb


def read_frames(path: str | Path) -> np.ndarray:
    """All frames of a (short) video as ``(T, H, W, 3) uint8``."""
    frames = list(iter_frames(path))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def constant_rate(
    timed_frames: Iterable[tuple[float, np.ndarray]], fps: float, count: int
) -> Iterator[np.ndarray]:
    """Turn ``(time_s, frame)`` pairs of any (variable) rate into exactly ``count`` frames at ``fps``.

    Output frame ``k`` is the last source frame whose timestamp is at most ``k / fps`` after the
    first one (the rule of FFmpeg's ``fps`` filter); streams, holding one frame at a time.
    """
    k = 0
    start = None
    previous = None
    for t, frame in timed_frames:
        if start is None:
            start = t
        while previous is not None and k < count and start + k / fps < t - 1e-6:
            yield previous
            k += 1
        previous = frame
        if k >= count:
            return
    while previous is not None and k < count:
        yield previous
        k += 1


class VideoWriter:
    """Encode frames to a video file, by default RGB frames to H.264 (yuv420p) in MP4.

    Other codecs: e.g. ``codec="ffv1", pix_fmt="gray", frame_format="gray",
    container_format="matroska", options={}`` writes ``(H, W) uint8`` frames losslessly.
    Written atomically: the file appears at ``path`` only after :meth:`close` succeeds.
    Use as a context manager.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        crf: int = 18,
        preset: str = "veryfast",
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        frame_format: str = "rgb24",
        container_format: str | None = None,
        options: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec, self.pix_fmt, self.frame_format = codec, pix_fmt, frame_format
        if options is None:
            options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        self.options = options
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._container = av.open(str(self._tmp), mode="w", format=container_format)
        self._stream = None
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        """Append one frame (``(H, W, 3)`` RGB by default; the shape ``frame_format`` implies)."""
        if self._stream is None:
            h, w = image.shape[:2]
            if self.pix_fmt == "yuv420p" and (h % 2 or w % 2):
                raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = self.pix_fmt
            self._stream.options = self.options
            self._stream.thread_type = "AUTO"
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image, np.uint8), format=self.frame_format
        )
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for rgb in frames:
            self.write(rgb)

    def close(self, error: bool = False) -> None:
        if self._stream is not None and not error:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        if error or self.frames_written == 0:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
            if not error:
                raise ValueError(f"no frames written to {self.path}")
        else:
            self._atomic.__exit__(None, None, None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(error=exc_type is not None)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, **kwargs) -> int:
    """Encode ``frames`` to ``path``; returns the number of frames written."""
    with VideoWriter(path, fps, **kwargs) as writer:
        writer.write_all(frames)
        return writer.frames_written
