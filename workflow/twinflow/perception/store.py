"""Files of the perception stage: lossless mask videos and ``.npz`` arrays, written atomically.

Per-frame images that must stay exact (the matte, label maps, the torso RGBA sequence) are FFV1
(lossless) video in Matroska (``.mkv``): one frame is encoded or decoded at a time, so neither the
writer nor a reader that streams holds the sequence in memory, and FFV1 compresses mattes and
label maps to a few kB per 512x512 frame. ``gray`` files hold ``(H, W) uint8`` frames,
``rgba`` files ``(H, W, 4) uint8``; :func:`read_masks` loads a whole (short) file as an array.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from twinflow.atomic import atomic_path, json_default
from twinflow.errors import InputError
from twinflow.media.video import VideoWriter

_FORMATS = {"gray": ("gray", "gray"), "rgba": ("bgra", "rgba")}  # kind -> (pix_fmt, ndarray fmt)


class MaskWriter(VideoWriter):
    """Write ``uint8`` frames losslessly (FFV1 in Matroska); the file appears on close.

    ``kind`` is ``"gray"`` for ``(H, W)`` frames or ``"rgba"`` for ``(H, W, 4)`` frames.
    """

    def __init__(self, path: str | Path, fps: float, kind: str = "gray"):
        if kind not in _FORMATS:
            raise ValueError(f"kind must be one of {sorted(_FORMATS)}, got {kind!r}")
        pix_fmt, frame_format = _FORMATS[kind]
        super().__init__(
            path,
            fps,
            codec="ffv1",
            pix_fmt=pix_fmt,
            frame_format=frame_format,
            container_format="matroska",
            options={},
        )
        self.kind = kind


def iter_masks(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a :class:`MaskWriter` file: ``(H, W)`` or ``(H, W, 4)`` ``uint8``."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        nd_fmt = "rgba" if stream.codec_context.pix_fmt in ("bgra", "rgba") else "gray"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format=nd_fmt)


def lockstep(*streams: Iterable, path: str | Path) -> Iterator[tuple]:
    """``zip`` of per-frame streams (a video and its masks) that raises :class:`InputError`
    naming ``path`` when one ends before the others."""
    try:
        yield from zip(*streams, strict=True)
    except ValueError as err:
        if "zip()" not in str(err):
            raise
        raise InputError(
            f"the video and its perception files differ in frame count ({err}); rerun the "
            "face_track rule",
            path=path,
        ) from err


def read_masks(path: str | Path) -> np.ndarray:
    """All frames of a mask file as ``(T, H, W)`` or ``(T, H, W, 4)`` ``uint8``."""
    return np.stack(list(iter_masks(path)))


def stream_info(path: str | Path) -> tuple[float, int]:
    """``(fps, declared frame count)`` of a video's first stream without decoding it (the count
    is 0 when the container does not say)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return float(rate), int(stream.frames or 0)


def save_npz(path: str | Path, info: dict[str, Any] | None = None, **arrays: Any) -> None:
    """Write ``arrays`` to a compressed ``.npz`` atomically; ``info`` is stored as JSON text under
    the key ``info`` (read it back with :func:`load_info`)."""
    if info is not None:
        arrays["info"] = np.array(json.dumps(info, default=json_default))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (without pickles) as a dict; :class:`InputError` if missing."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load_info(arrays: dict[str, Any]) -> dict[str, Any]:
    """The ``info`` entry of :func:`load_npz`'s result (or of arrays not yet saved) as a dict."""
    info = arrays.get("info")
    if info is None:
        return {}
    return info if isinstance(info, dict) else json.loads(str(info))
