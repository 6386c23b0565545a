"""Animate a twin's photo with a driving video (the render of an ``animate`` row of renders.tsv).

``python -m twinflow.animate.render --render ID --model model.pt [--avd avd.pt]
--source photo.png|video.mp4 --driving video.mp4 [--audio audio.wav] [--mode avd]
[--size 512] --out results/renders/ID.mp4``

The output has the driving video's frame rate and frame count; ``--size`` is its side (default:
the driving video's). With ``--audio`` that track is muxed in (cut or padded to the video).
Modes: ``standard``, ``relative``, ``avd`` (the default, as the reference's demo; needs
``--avd``); see :mod:`twinflow.animate.modes`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from twinflow.animate.inference import animate_frames, load_source
from twinflow.animate.model import load_avd, load_model
from twinflow.animate.modes import MODES
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.audio import read_wav
from twinflow.media.mux import mux_audio
from twinflow.media.video import VideoWriter, iter_frames, probe_video

log = logging.getLogger("twinflow.animate.render")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.render", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--avd", default=None)
    p.add_argument("--source", required=True, help="photo, or a video whose first frame is used")
    p.add_argument("--driving", required=True)
    p.add_argument("--audio", default=None)
    p.add_argument("--mode", default="avd", choices=MODES)
    p.add_argument("--size", type=int, default=None, help="output side (default: driving's)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    add_runtime_arguments(p)
    p.add_argument("--out", required=True)
    return p


def render(
    model_path,
    source,
    driving,
    out,
    *,
    mode="avd",
    avd_path=None,
    audio=None,
    size=None,
    crf=18,
    x264_preset="veryfast",
    device="cpu",
) -> dict:
    """Write the animated video; returns ``{"frames", "fps", "driving_frames"}``."""
    model = load_model(model_path, device)
    avd = None
    if mode == "avd":
        if not avd_path:
            raise InputError("mode 'avd' needs the trained AVD network (--avd)")
        avd = load_avd(avd_path, model.cfg, device)
    info = probe_video(driving, min_frames=1)
    out_size = size or min(info.width, info.height)
    out_size -= out_size % 2
    frames = animate_frames(
        model,
        load_source(source, model.cfg.size),
        iter_frames(driving),
        mode,
        avd,
        out_size=out_size,
        device=device,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmp:
        video = Path(tmp) / "silent.mp4" if audio else out
        with VideoWriter(video, info.fps, crf=crf, preset=x264_preset) as writer:
            writer.write_all(frames)
            written = writer.frames_written
        if audio:
            samples, rate = read_wav(audio)
            mux_audio(video, samples, rate, out)
    if written != info.n_frames:
        raise InputError(f"wrote {written} frames for {info.n_frames} driving frames", path=out)
    log.info("%d frames at %.3f fps, %dx%d, mode %s", written, info.fps, out_size, out_size, mode)
    return {"frames": written, "fps": info.fps, "driving_frames": info.n_frames}


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    render(
        args.model,
        args.source,
        args.driving,
        args.out,
        mode=args.mode,
        avd_path=args.avd,
        audio=args.audio,
        size=args.size,
        crf=args.crf,
        x264_preset=args.x264_preset,
        device=device,
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
