"""Prepared media and perception files for the tests and the acceptance script.

The workflow gets these files from the preprocessing and perception rules; tests and
``twinflow.meshhead.acceptance`` make them directly with the same library functions
(:mod:`twinflow.prep`, :mod:`twinflow.perception`), so they can run on one clip without a
Snakemake project. Outputs follow the workflow's paths under ``root``:
``media/video.mp4``, ``media/audio.wav``, ``perception/{face,template,head_pose}.npz``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("twinflow.meshhead.fixtures")


def prepare_media(
    video: str | Path,
    root: str | Path,
    *,
    fps: float = 25.0,
    size: int = 512,
    sample_rate: int = 16000,
) -> dict[str, Path]:
    """Normalise ``video`` (constant fps, centred square, ``size`` px) and extract its audio."""
    from twinflow.atomic import write_json
    from twinflow.media.audio import load_audio, write_wav
    from twinflow.media.image import crop_box, fit_to_size
    from twinflow.media.video import VideoWriter, constant_rate, iter_frames_timed, probe_video

    root = Path(root)
    out = {"video": root / "media" / "video.mp4", "audio": root / "media" / "audio.wav"}
    if not out["video"].exists():
        info = probe_video(video)
        box = crop_box(info.width, info.height, None)
        count = max(1, round(info.duration * fps))
        with VideoWriter(out["video"], fps) as writer:
            for rgb in constant_rate(iter_frames_timed(video), fps, count):
                writer.write(fit_to_size(rgb, box, size))
        write_json(root / "media" / "meta.json", {"source": str(video), "fps": fps})
    if not out["audio"].exists():
        write_wav(out["audio"], load_audio(video, sample_rate), sample_rate)
    return out


def perceive(video: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """``face.npz``, ``template.npz`` and ``head_pose.npz`` of a normalised video (face path
    of the perception stage only: no body, matte or parsing)."""
    from twinflow.media.video import iter_frames
    from twinflow.perception.face import FaceConfig, FaceRunner, build_face_track
    from twinflow.perception.head_pose import HeadPoseConfig, solve_head_pose
    from twinflow.perception.store import save_npz, stream_info
    from twinflow.perception.template import build_template

    out_dir = Path(out_dir)
    paths = {k: out_dir / f"{k}.npz" for k in ("face", "template", "head_pose")}
    if all(p.exists() for p in paths.values()):
        return paths
    fps, _ = stream_info(video)
    cfg = FaceConfig()
    runner = FaceRunner(cfg)
    observed, size = [], (0, 0)
    try:
        for rgb in iter_frames(video):
            size = (rgb.shape[1], rgb.shape[0])
            observed.append(runner(rgb))
    finally:
        runner.close()
    face = build_face_track(observed, *size, cfg)
    face["info"]["fps"] = fps
    template = build_template(face["landmarks"], face["detected"])
    pose = solve_head_pose(face["landmarks"], face["detected"], template, *size, HeadPoseConfig())
    save_npz(paths["face"], **face)
    save_npz(paths["template"], **template)
    save_npz(paths["head_pose"], **pose)
    log.info("perceived %d frames of %s (face in %d)", len(observed), video, face["detected"].sum())
    return paths


def prepare_twin(video: str | Path, root: str | Path, **kwargs) -> dict[str, Path]:
    """Media and perception files of one clip under ``root`` (skips what exists)."""
    media = prepare_media(video, root, **kwargs)
    return {**media, **perceive(media["video"], Path(root) / "perception")}


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Formant-synthesised speech-like audio (the demo's), for driving-audio tests."""
    from twinflow.demo.speech import synthesize

    return synthesize(seconds, sample_rate, seed)[0]
