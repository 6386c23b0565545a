"""Stage ``photo_face``: the face path for the twin's single photo (static-image mode).

``python -m twinflow.perception.photo --twin ID --photo photo.png --out photo_face.npz``

``photo_face.npz`` (the photo is ``W x H``; pixel coordinates):

==============  ==================  ==================================================
key             shape, dtype        meaning
==============  ==================  ==================================================
landmarks       (478, 3) float32    x, y pixels, z = mediapipe depth x W
ibug68          (68, 3) float32     iBUG 68-point subset (``ibug68_index``)
ibug68_index    (68,) int16         :data:`twinflow.perception.landmarks.IBUG68`
confidence      () float32          face detection score (0 if the detector missed it)
face_box        (4,) float32        x0, y0, x1, y1 of the mesh
head_box        (4,) float32        square head box as in ``face.npz``
n_faces         () uint8            faces found (the largest, most central one is kept)
alpha           (H, W) uint8        person matte (selfie segmentation)
info            JSON text           size, config
==============  ==================  ==================================================

A photo without a face fails with :class:`~twinflow.errors.InputError`.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.image import load_image
from twinflow.perception import solutions
from twinflow.perception.face import FaceConfig, FaceRunner, head_boxes, match_confidence
from twinflow.perception.landmarks import IBUG68
from twinflow.perception.matte import to_alpha
from twinflow.perception.options import add_dataclass_args, dataclass_from_args
from twinflow.perception.store import save_npz
from twinflow.perception.tracks import choose_tracks

log = logging.getLogger("twinflow.perception.photo")


def photo_face(rgb: np.ndarray, cfg: FaceConfig, *, path: str = "") -> dict:
    """The arrays of ``photo_face.npz`` for one RGB image ``(H, W, 3)``."""
    h, w = rgb.shape[:2]
    runner = FaceRunner(cfg, static=True)
    try:
        found = runner(rgb)
    finally:
        runner.close()
    if not len(found.faces):
        raise InputError("no face found in the photo", path=path or None)
    boxes = found.boxes
    kept, infos = choose_tracks([boxes], [np.arange(len(boxes))], w, h)
    i = kept[0]
    segmenter = solutions.selfie_segmentation()
    try:
        alpha = to_alpha(segmenter.process(rgb).segmentation_mask)
    finally:
        segmenter.close()
    landmarks = found.faces[i]
    still = FaceConfig(**{**cfg.to_dict(), "head_box_sigma": 0.0})
    return {
        "landmarks": landmarks,
        "ibug68": landmarks[IBUG68],
        "ibug68_index": np.array(IBUG68, np.int16),
        "confidence": np.float32(match_confidence(boxes[i], found.detections)),
        "face_box": boxes[i].astype(np.float32),
        "head_box": head_boxes(boxes[i : i + 1], still)[0],
        "n_faces": np.uint8(len(found.faces)),
        "alpha": alpha,
        "info": {
            "width": w,
            "height": h,
            "faces": [t.to_dict() for t in infos],
            "config": cfg.to_dict(),
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.photo", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--photo", required=True, help="photo.png (prepared by prepare_photo)")
    p.add_argument("--out", required=True, help="out: photo_face.npz")
    add_dataclass_args(p, FaceConfig, "face")
    return p


def run(args: argparse.Namespace) -> None:
    cfg = dataclass_from_args(FaceConfig, args, "face")
    data = photo_face(load_image(args.photo), cfg, path=args.photo)
    log.info("%d face(s) in the photo; detection score %.2f", data["n_faces"], data["confidence"])
    save_npz(args.out, **data)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
