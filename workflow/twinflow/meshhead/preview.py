"""Stage ``meshhead_preview``: a video of the predicted mesh sequence, with the driving audio.

``python -m twinflow.meshhead.preview --render ID --mesh mesh.npz --audio audio.wav
[--size 256] --out mesh_preview.mp4``

Front view (orthographic, the template's head frame: x to the image right, y down) of the
pose-free mesh: tessellation edges in grey, mouth points in red, the template's mouth outline
in blue for reference. Works for every topology (FLAME draws its triangle edges).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from twinflow.cli import stage_main
from twinflow.media.audio import read_wav
from twinflow.media.mux import mux_audio
from twinflow.media.video import VideoWriter
from twinflow.meshhead.common import load_npz

log = logging.getLogger("twinflow.meshhead.preview")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.preview", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--mesh", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--out", required=True)
    return p


def draw_frames(
    vertices: np.ndarray, template: np.ndarray, edges: np.ndarray, mouth: np.ndarray, size: int
):
    """Yield ``(size, size, 3)`` uint8 drawings of ``vertices (T, V, 3)``."""
    lo, hi = template[:, :2].min(0), template[:, :2].max(0)
    centre = (lo + hi) / 2
    scale = 0.8 * size / float((hi - lo).max())

    def to_px(points):
        return np.round((points[:, :2] - centre) * scale + size / 2).astype(np.int32)

    ref = to_px(template)
    for verts in vertices:
        img = np.full((size, size, 3), 255, np.uint8)
        px = to_px(verts)
        if len(edges):
            cv2.polylines(img, list(px[edges]), False, (170, 170, 170), 1, cv2.LINE_AA)
        else:
            for x, y in px:
                cv2.circle(img, (int(x), int(y)), 1, (120, 120, 120), -1)
        for x, y in ref[mouth]:
            cv2.circle(img, (int(x), int(y)), 1, (60, 90, 220), -1)
        for x, y in px[mouth]:
            cv2.circle(img, (int(x), int(y)), 2, (220, 40, 40), -1)
        yield img


def run(args: argparse.Namespace) -> None:
    mesh = load_npz(args.mesh, "mesh sequence")
    samples, sr = read_wav(args.audio)
    silent = Path(args.out).with_name(f".{Path(args.out).stem}.silent.mp4")
    try:
        with VideoWriter(silent, float(mesh["fps"]), crf=args.crf) as writer:
            writer.write_all(
                draw_frames(
                    mesh["vertices"],
                    mesh["template"],
                    mesh["edges"],
                    mesh["mouth_index"],
                    args.size,
                )
            )
        mux_audio(silent, samples, sr, args.out)  # atomic
    finally:
        silent.unlink(missing_ok=True)
    log.info("%d frames of %s", len(mesh["vertices"]), mesh["topology"])


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
