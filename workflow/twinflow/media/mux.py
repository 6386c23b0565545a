"""Mux an audio track into a finished video without re-encoding the picture."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from twinflow.atomic import atomic_path


def mux_audio(
    video: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    out: str | Path,
    *,
    trim_to_video: bool = True,
) -> None:
    """Copy ``video``'s picture packets and add ``samples`` (mono float32) as AAC, atomically.

    With ``trim_to_video`` the audio is cut (or zero-padded) to the video's duration, so that a
    player does not show a frozen last frame.
    """
    with av.open(str(video)) as src:
        vin = src.streams.video[0]
        duration = float(vin.frames / vin.average_rate) if vin.frames else None
        if trim_to_video and duration:
            n = int(round(duration * sample_rate))
            samples = np.pad(samples[:n], (0, max(0, n - len(samples))))
        with atomic_path(out) as tmp, av.open(str(tmp), mode="w") as dst:
            vout = dst.add_stream_from_template(vin)
            aout = dst.add_stream("aac", rate=sample_rate, layout="mono")
            for packet in src.demux(vin):
                if packet.dts is None:
                    continue
                packet.stream = vout
                dst.mux(packet)
            _encode_audio(dst, aout, samples.astype(np.float32), sample_rate)


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    frame_size = 1024
    for start in range(0, len(samples), frame_size):
        chunk = samples[start : start + frame_size]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
