"""Benchmark (not a test): frames per second of the perception stage on one CPU core.

``python -m twinflow.perception.bench VIDEO [--frames 250] [--cores 1] [--keep DIR]``

VIDEO should be a normalised video (512x512, 25 fps: ``results/{twin}/media/video.mp4``). The
process pins itself to ``--cores`` cores (mediapipe's and FFmpeg's threads included), then times:

* ``decode only``: decoding the frames (the baseline every stage pays at least once);
* ``face track``, ``matte``: FaceMesh + face detection, selfie segmentation + temporal median,
  each over decoded frames in memory;
* ``face + matte``: decode, face track and matte together in one pass (target >= 30 fps);
* each stage CLI as the workflow runs it (``track``, ``head_pose``, ``parsing``, ``background``,
  ``report``) on the clip, writing its files to a temporary folder, and the whole stage.

Each line gives frames per second of wall time and of this process's CPU time (the two differ
when other work shares the machine; CPU fps is what one free core would give).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")


def pin(cores: int) -> list[int]:
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[:cores]
    os.sched_setaffinity(0, chosen)
    return chosen


class Timer:
    def __init__(self, frames: int):
        self.frames = frames
        self.rows: list[tuple[str, float, float]] = []

    def __call__(self, name: str, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.rows.append((name, wall, cpu))
        print(
            f"{name:<28s} {self.frames / wall:8.1f} fps wall {self.frames / max(cpu, 1e-9):8.1f} fps cpu"
            f"   ({wall:6.2f} s)",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="twinflow.perception.bench", description=__doc__)
    p.add_argument("video")
    p.add_argument("--frames", type=int, default=250, help="frames to use (0: all)")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--keep", default=None, help="keep the stage outputs in this folder")
    args = p.parse_args(argv)
    cores = pin(args.cores)

    # imported after pinning so that model threads start on the chosen cores
    from twinflow.media.video import iter_frames, write_video
    from twinflow.perception import background, head_pose, parsing, report, track
    from twinflow.perception.face import FaceConfig, FaceRunner
    from twinflow.perception.matte import MatteConfig, MatteRunner

    limit = args.frames or None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        clip = out / "clip.mp4"
        n = write_video(clip, islice(iter_frames(args.video), limit), 25.0, crf=18)
        first = next(iter_frames(clip))
        print(
            f"video {args.video}: {n} frames of {first.shape[1]}x{first.shape[0]}, "
            f"pinned to core(s) {cores}"
        )
        timer = Timer(n)
        timer("decode only", lambda: sum(1 for _ in iter_frames(clip)))
        frames = list(iter_frames(clip))
        face = FaceRunner(FaceConfig())
        matte = MatteRunner(MatteConfig())
        timer("face track", lambda: [face(f) for f in frames])
        timer("matte", lambda: [list(matte.push(f)) for f in frames] + [list(matte.flush())])
        face.close()
        matte.close()
        frames.clear()

        def face_and_matte() -> None:
            faces, mattes = FaceRunner(FaceConfig()), MatteRunner(MatteConfig())
            for rgb in iter_frames(clip):
                faces(rgb)
                list(mattes.push(rgb))
            list(mattes.flush())
            faces.close()
            mattes.close()

        timer("face + matte (decode incl.)", face_and_matte)

        def stage(module, **files: str) -> Callable[[], None]:
            argv = ["--twin", "bench"]
            for key, name in files.items():
                argv += [f"--{key}", str(clip) if name == "video" else str(out / name)]
            return lambda: module.run(module.build_parser().parse_args(argv))

        common = {"face": "face.npz", "body": "body.npz"}
        stages = [
            (
                "stage face_track",
                stage(track, video="video", **common, signals="signals.npz", matte="matte.mkv"),
            ),
            (
                "stage head_pose",
                stage(
                    head_pose,
                    face="face.npz",
                    template="template.npz",
                    pose="head_pose.npz",
                    train="transforms_train.json",
                    val="transforms_val.json",
                ),
            ),
            (
                "stage face_parsing",
                stage(parsing, video="video", **common, matte="matte.mkv", out="parsing.mkv"),
            ),
            (
                "stage background",
                stage(
                    background,
                    video="video",
                    matte="matte.mkv",
                    parsing="parsing.mkv",
                    plate="background.png",
                    torso="torso.mkv",
                    composite="composite.mp4",
                ),
            ),
            (
                "stage perception_report",
                stage(
                    report,
                    video="video",
                    **common,
                    signals="signals.npz",
                    pose="head_pose.npz",
                    template="template.npz",
                    matte="matte.mkv",
                    preview="preview.mp4",
                    summary="summary.json",
                ),
            ),
        ]
        for name, fn in stages:
            timer(name, fn)
        rows = timer.rows[-len(stages) :]
        wall = sum(r[1] for r in rows)
        cpu = sum(r[2] for r in rows)
        print(
            f"{'whole perception stage':<28s} {n / wall:8.1f} fps wall {n / cpu:8.1f} fps cpu"
            f"   ({wall:6.2f} s)"
        )


if __name__ == "__main__":
    main()
