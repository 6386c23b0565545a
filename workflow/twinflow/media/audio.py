"""Audio decoding (any container PyAV reads, including a video's audio track) and wav output."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf

from twinflow.atomic import atomic_path
from twinflow.errors import InputError
from twinflow.media.video import _open


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate``; shape ``(N,)``.

    Raises :class:`InputError` when the file has no audio stream or nothing decodes.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise InputError("has no audio stream", path=path)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as err:
            raise InputError(f"audio decoding failed ({err}); damaged file?", path=path) from err
    if not chunks:
        raise InputError("audio stream decodes to zero samples", path=path)
    return np.concatenate(chunks).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono float samples as 16-bit PCM wav, atomically."""
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, sample_rate, subtype="PCM_16", format="WAV")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a wav written by :func:`write_wav`: ``(samples (N,) float32, sample_rate)``."""
    samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), sr
