"""Reconstruction evaluation of a trained MRAA model on its dataset's test frames.

``python -m twinflow.animate.evaluate --twin ID --model model.pt --dataset DIR
[--max-frames N] --out results/ID/animate/metrics.json``

As in the paper: for every test clip the first frame is the source and each later frame (up to
``--max-frames``, default the preset's ``eval_frames``) is the driving frame the model must
reconstruct (standard mode, with background motion). Metrics at the model's resolution:

* ``l1``: mean absolute pixel difference, in [0, 1] units (lower is better);
* ``akd``: average keypoint distance, pixels, between the 468 face-mesh landmarks found on the
  generated and on the real frame (:mod:`twinflow.animate.landmarks`), over the frames where the
  real, the generated and the source frame all show a face (``measured.akd_frames``; counts per
  kind in ``measured.faces_found``). Left out of ``values`` and the baseline, with a note in
  ``measured.akd``, when there is no such frame (small, blurry faces at 64 px);
* ``mkr``: missing keypoint rate, over the frames where the real frame shows a face, the
  fraction where the generated frame shows none (the face mesh's landmarks come all together,
  so a face's keypoints are missing together).

These are the reference's pose-evaluation metrics (L1, AKD, MKR) with twinflow's landmark
detector (mediapipe's face mesh) in place of the reference's face-alignment and OpenPose
detectors. Its fourth metric, AED (average euclidean distance of identity embeddings), needs a
re-identification network whose weights cannot be had here: not measured.

``measured.l1_regions_only`` repeats the L1 with the background motion fixed to the identity (as
when animating a photo), showing how much of the motion the regions themselves carry.

The ``copy_source`` baseline "generates" every frame as the unchanged source frame.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from twinflow.animate.data import load_clips
from twinflow.animate.landmarks import average_keypoint_distance, face_landmarks
from twinflow.animate.model import PIPELINE, load_model, to_tensor, to_uint8
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.metrics import l1, write_metrics

log = logging.getLogger("twinflow.animate.evaluate")


@torch.no_grad()
def reconstruct(
    model, source: np.ndarray, driving: np.ndarray, device, batch: int = 16, background=True
):
    """uint8 reconstructions ``(T, H, W, 3)`` of ``driving`` from ``source``; without
    ``background`` the background motion is the identity (as when animating another person),
    so the regions alone must carry the motion."""
    src = to_tensor(source, device)
    src_regions = model.region_predictor(src)
    out = []
    for start in range(0, len(driving), batch):
        drv = to_tensor(np.asarray(driving[start : start + batch]), device)
        if background:
            pred = model(src.expand(len(drv), -1, -1, -1), drv)["prediction"]
        else:
            pred = model.animate(src, src_regions, model.region_predictor(drv))
        out.append(to_uint8(pred))
    return np.concatenate(out)


def missing_rate(found: list) -> float:
    """The fraction of ``None`` (no face found) in ``found``."""
    return float(np.mean([f is None for f in found]))


def evaluate(model, clips, max_frames: int, device, landmarks: bool = True) -> dict:
    """``{"values", "baselines", "measured"}`` over the test ``clips``."""
    real_all, pred_all, copy_all = [], [], []
    per_clip = {}
    for clip in clips:
        frames = np.asarray(clip.frames[: max_frames + 1])
        source, driving = frames[0], frames[1:]
        pred = reconstruct(model, source, driving, device)
        regions_only = reconstruct(model, source, driving, device, background=False)
        copy = np.broadcast_to(source, driving.shape)
        per_clip[clip.name] = {
            "frames": len(driving),
            "l1": l1(pred, driving),
            "l1_regions_only": l1(regions_only, driving),
            "l1_copy_source": l1(copy, driving),
        }
        real_all.append(driving)
        pred_all.append(pred)
        copy_all.append(copy)
    real, pred, copy = (np.concatenate(x) for x in (real_all, pred_all, copy_all))
    values = {"l1": l1(pred, real)}
    base = {"l1": l1(copy, real)}
    weights = [c["frames"] for c in per_clip.values()]
    measured = {
        "frames": len(real),
        # L1 with the background motion fixed to the identity, as in animation: how much of the
        # motion the regions carry (near the copy-source L1 would mean: hardly any).
        "l1_regions_only": float(
            np.average([c["l1_regions_only"] for c in per_clip.values()], weights=weights)
        ),
        "clips": per_clip,
    }
    if landmarks:
        lm_real = face_landmarks(real)
        lm_pred = face_landmarks(pred)
        lm_copy = []
        for clip in clips:
            first = face_landmarks([np.asarray(clip.frames[0])])[0]
            lm_copy += [first] * per_clip[clip.name]["frames"]
        # Model and baseline on the same frames: those where every one of them shows a face.
        all_found = [
            r is not None and p is not None and c is not None
            for r, p, c in zip(lm_real, lm_pred, lm_copy, strict=True)
        ]
        keep = [i for i, ok in enumerate(all_found) if ok]
        measured["faces_found"] = {
            "real": sum(x is not None for x in lm_real),
            "model": sum(x is not None for x in lm_pred),
            "copy_source": sum(x is not None for x in lm_copy),
        }
        measured["akd_frames"] = len(keep)
        with_face = [i for i, r in enumerate(lm_real) if r is not None]
        measured["mkr_frames"] = len(with_face)
        if with_face:
            values["mkr"] = missing_rate([lm_pred[i] for i in with_face])
            base["mkr"] = missing_rate([lm_copy[i] for i in with_face])
        if keep:
            values["akd"], _ = average_keypoint_distance(
                [lm_pred[i] for i in keep], [lm_real[i] for i in keep]
            )
            base["akd"], _ = average_keypoint_distance(
                [lm_copy[i] for i in keep], [lm_real[i] for i in keep]
            )
        else:
            measured["akd"] = (
                "not measured: no frame where real, generated and source all show a face"
            )
    return {"values": values, "baselines": {"copy_source": base}, "measured": measured}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.evaluate", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--max-frames", type=int, default=None)
    add_runtime_arguments(p)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    model = load_model(args.model, device)
    clips = load_clips(args.dataset, "test")
    if not clips:
        raise InputError("the animate dataset has no test frames", path=args.dataset)
    max_frames = args.max_frames or model.cfg.eval_frames
    result = evaluate(model, clips, max_frames, device)
    m = result["measured"]
    m.update(
        {
            "split": "test frames of the dataset (see its index.json); source = first frame",
            "how": "reconstruction at the model's resolution; l1 in [0,1] units; akd in pixels "
            "between mediapipe face-mesh landmarks of generated and real frames; mkr: fraction "
            "of the frames with a real face where the generated frame has none",
            "aed": "not measured: needs a re-identification network (no weights here)",
            "preset": model.cfg.name,
            "size": model.cfg.size,
        }
    )
    better = {k: "lower" for k in result["values"]}
    write_metrics(
        args.out,
        pipeline=PIPELINE,
        twin=args.twin,
        values=result["values"],
        baselines=result["baselines"],
        better=better,
        measured=m,
    )
    log.info(
        "values %s, copy-source baseline %s", result["values"], result["baselines"]["copy_source"]
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
