"""Build the demo twin's media into a folder (default ``demo/media``).

``python -m twinflow.demo [--out demo/media] [--seconds 12]``

Writes ``talk.mp4`` (training video with its speech track), ``photo.png`` (the still),
``drive_speech.wav`` (new speech for speech-driven renders) and ``drive_motion.mp4`` (a new head
motion with its own speech, for motion-driven renders).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import skimage.data

from twinflow.media.audio import write_wav
from twinflow.media.image import save_image
from twinflow.media.mux import mux_audio
from twinflow.media.video import write_video

from .face_video import animate
from .speech import synthesize

SAMPLE_RATE = 16000
FPS = 25


def per_frame(signal: np.ndarray, n_frames: int) -> np.ndarray:
    """Average a per-sample signal over each video frame's span; ``(n_frames,)``."""
    edges = np.linspace(0, len(signal), n_frames + 1).astype(int)
    return np.array(
        [signal[a:b].mean() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )


def talking_clip(photo: np.ndarray, out: Path, seconds: float, seed: int, sway: float) -> None:
    samples, mouth = synthesize(seconds, SAMPLE_RATE, seed=seed)
    n_frames = int(seconds * FPS)
    mouth_frames = np.clip(per_frame(mouth, n_frames) * 1.6, 0, 1)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        silent = Path(tmp) / "silent.mp4"
        write_video(silent, animate(photo, mouth_frames, FPS, seed=seed, sway=sway), FPS)
        mux_audio(silent, samples, SAMPLE_RATE, out)


def build(out: Path, seconds: float) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    save_image(out / "photo.png", photo)
    talking_clip(photo, out / "talk.mp4", seconds, seed=1, sway=1.0)
    talking_clip(photo, out / "drive_motion.mp4", min(seconds, 6.0), seed=2, sway=1.6)
    speech, _ = synthesize(min(seconds, 6.0), SAMPLE_RATE, seed=3)
    write_wav(out / "drive_speech.wav", speech, SAMPLE_RATE)
    return [out / n for n in ("talk.mp4", "photo.png", "drive_speech.wav", "drive_motion.mp4")]


def main() -> None:
    p = argparse.ArgumentParser(prog="twinflow.demo", description=__doc__)
    p.add_argument("--out", default="demo/media")
    p.add_argument("--seconds", type=float, default=12.0)
    args = p.parse_args()
    for path in build(Path(args.out), args.seconds):
        print(path)


if __name__ == "__main__":
    main()
