"""Stage ``anchor_evaluate``: the twin's held-out block re-rendered from its own motion, measured.

``python -m twinflow.anchor.evaluate --twin ID --data data/clip_*.npz --body-model body.pt
--head-model head.pt --body-npz body.npz [--max-frames 48] --out metrics.json
[--preview eval.mp4]``

The held-out block (the last ``holdout`` fraction of the twin's video, never trained on) is
generated from its own conditioning renders (the twin's fitted motion) with the full pipeline
(body frames, head inpainting, blending) and compared with the real frames at the body size:

* ``psnr``, ``ssim``: per frame, averaged.
* ``pck``: pose agreement. mediapipe Pose (static mode, on frames upscaled to 256 px) on each
  output frame against the perception pose of the real frame (``body.npz: pose``, landmarks with
  visibility >= 0.5): the fraction of landmarks within 0.1 x the person's height (the vertical
  extent of the real frame's visible landmarks); a frame where no pose is found scores 0.
* ``flicker_gap``: |mean absolute difference of consecutive output frames - the same of the real
  frames| (in [0, 1] units): 0 when the output changes as much from frame to frame as the video.

Baselines under the same names: ``nearest_pose`` (for each frame, the training frame whose
perception pose is nearest) and ``reference`` (the inference reference frame, copied).
"""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np

from twinflow.anchor import runtime
from twinflow.anchor.data import ClipSet, load_clips
from twinflow.anchor.inference import (
    Heads,
    Trained,
    blend_heads,
    enhance_heads,
    render_body,
)
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.metrics import psnr, ssim, write_metrics
from twinflow.models import REGISTRY

log = logging.getLogger("twinflow.anchor.evaluate")

POSE_SIZE = 256
PCK_ALPHA = 0.1
MIN_VIS = 0.5


def detect_poses(frames: np.ndarray, size: int = POSE_SIZE) -> np.ndarray:
    """mediapipe Pose on each frame (static mode): ``(T, 33, 3)`` x, y in the frames' pixels and
    visibility; NaN where no pose is found."""
    from twinflow.perception import solutions

    out = np.full((len(frames), 33, 3), np.nan, np.float32)
    scale = frames.shape[1] / size
    with solutions.pose(static=True) as pose:
        for t, rgb in enumerate(frames):
            big = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
            res = pose.process(big)
            if res.pose_landmarks:
                out[t] = [
                    (p.x * size * scale, p.y * size * scale, p.visibility)
                    for p in res.pose_landmarks.landmark
                ]
    return out


def pck(pred: np.ndarray, real: np.ndarray, alpha: float = PCK_ALPHA) -> float:
    """PCK of ``pred (T, 33, >=2)`` against ``real (T, 33, 3|4)`` (x, y, ..., visibility last)."""
    hits = total = 0
    for p, r in zip(pred, real, strict=True):
        vis = r[:, -1] >= MIN_VIS
        if vis.sum() < 2:
            continue
        height = np.ptp(r[vis, 1])
        if not np.isfinite(height) or height <= 0:
            continue
        total += int(vis.sum())
        if np.isfinite(p[:, :2]).all():
            d = np.linalg.norm(p[vis, :2] - r[vis, :2], axis=1)
            hits += int((d <= alpha * height).sum())
    return hits / total if total else float("nan")


def mafd(frames: np.ndarray) -> float:
    """Mean absolute difference of consecutive frames in [0, 1] units."""
    if len(frames) < 2:
        return 0.0
    return float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean() / 255.0)


def nearest_pose_frames(poses: np.ndarray, test: np.ndarray, train: np.ndarray) -> np.ndarray:
    """For each test index, the training index with the nearest pose (mean distance over the
    landmarks visible in both; NaN poses are never nearest)."""
    out = []
    for t in test:
        p = poses[t]
        best, best_d = train[0], np.inf
        for s in train:
            q = poses[s]
            vis = (p[:, -1] >= MIN_VIS) & (q[:, -1] >= MIN_VIS)
            if vis.sum() < 2:
                continue
            d = np.linalg.norm(p[vis, :2] - q[vis, :2], axis=1).mean()
            if d < best_d:
                best, best_d = s, d
        out.append(best)
    return np.array(out)


def measure(frames: np.ndarray, real: np.ndarray, real_pose: np.ndarray) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr(f, r) for f, r in zip(frames, real, strict=True)])),
        "ssim": float(np.mean([ssim(f, r) for f, r in zip(frames, real, strict=True)])),
        "pck": pck(detect_poses(frames), real_pose),
        "flicker_gap": abs(mafd(frames) - mafd(real)),
    }


def evaluate(
    data: ClipSet,
    body: Trained,
    head: Trained | None,
    body_pose: np.ndarray,
    *,
    max_frames: int | None = 48,
    seed: int = 0,
    device="cpu",
) -> tuple[dict, np.ndarray]:
    """Metrics of the held-out block and the preview frames (real | output | condition)."""
    a = data.arrays
    test = data.test
    if len(test) == 0:
        raise InputError("no held-out frames to evaluate (anchor holdout is 0)")
    if max_frames:
        test = test[:max_frames]
    train = data.train
    video_size = data.infos[0]["video_size"][0]
    size = a["frames"].shape[1]
    poses = body_pose[a["frame_index"]].copy()  # (N, 33, 4) in video pixels
    poses[..., :2] *= size / video_size
    real = a["frames"][test]
    real_pose = poses[test]

    t0 = time.perf_counter()
    out_body = render_body(body, a["condition"][test], seed=seed, device=device)
    t_body = time.perf_counter() - t0
    frames = out_body
    t_head = 0.0
    head_pass = np.zeros(len(test), bool)
    if head is not None:
        import cv2 as _cv2

        from twinflow.anchor import head_align

        mats = head_align.scale_matrix(a["head_matrix"][test], size / video_size)
        crops = np.stack(
            [
                head_align.crop(f, m, head.cfg.head_size, _cv2.INTER_LINEAR)
                for f, m in zip(out_body, mats, strict=True)
            ]
        )
        t0 = time.perf_counter()
        heads: Heads = enhance_heads(
            head,
            crops,
            a["head_condition"][test],
            a["head_mask"][test],
            mats,
            seed=seed,
            device=device,
            has_face=a["face_detected"][test],
        )
        head_pass = heads.regenerated
        t_head = time.perf_counter() - t0
        frames = blend_heads(out_body, heads)

    values = measure(frames, real, real_pose)
    ref_idx = data.reference_index()
    near = nearest_pose_frames(poses, test, train)
    baselines = {
        "nearest_pose": measure(a["frames"][near], real, real_pose),
        "reference": measure(np.repeat(a["frames"][ref_idx][None], len(test), 0), real, real_pose),
    }
    body_only = {
        "psnr": float(np.mean([psnr(f, r) for f, r in zip(out_body, real, strict=True)])),
        "ssim": float(np.mean([ssim(f, r) for f, r in zip(out_body, real, strict=True)])),
    }
    measured = {
        "split": "held-out block: the last frames of the twin's video (never trained on), "
        f"frames {int(a['frame_index'][test[0]])}-{int(a['frame_index'][test[-1]])}",
        "frames": len(test),
        "size": size,
        "driven_by": "the twin's own fitted motion (its conditioning renders)",
        "condition_source": sorted({i.get("condition_source", "?") for i in data.infos}),
        "reference_frame": int(a["frame_index"][ref_idx]),
        "how": "psnr/ssim at the body size against the real frames; pck: mediapipe Pose on the "
        f"output (static, upscaled to {POSE_SIZE} px) vs perception pose of the real frame, "
        f"threshold {PCK_ALPHA} x person height, landmarks with visibility >= {MIN_VIS}; "
        "flicker_gap: |mean abs consecutive-frame difference of output - of the real video|",
        "real_video_pck": pck(detect_poses(real), real_pose),
        "real_video_mafd": mafd(real),
        "output_mafd": mafd(frames),
        "body_only": body_only,
        "seconds": {"body": round(t_body, 1), "head": round(t_head, 1)},
        "head_pass": {
            "frames": int(head_pass.sum()),
            "skipped_without_face": int((~a["face_detected"][test]).sum()),
            "how": "the head model regenerates the face only on frames where perception found "
            "it (and only when it saw faces in training); other frames keep the body's head",
        },
        "ddim_steps": body.cfg.ddim_steps,
        "guidance": body.cfg.guidance,
    }
    preview = np.concatenate([real, frames, a["condition"][test]], axis=2)
    return {"values": values, "baselines": baselines, "measured": measured}, preview


BETTER = {"psnr": "higher", "ssim": "higher", "pck": "higher", "flicker_gap": "lower"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.evaluate", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--body-model", required=True)
    p.add_argument("--head-model", default=None)
    p.add_argument("--body-npz", required=True, help="the twin's perception body.npz")
    p.add_argument("--max-frames", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--registry", default=str(REGISTRY))
    p.add_argument("--preview", default=None, help="also write real | output | condition video")
    p.add_argument("--out", required=True)
    runtime.add_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = runtime.setup(args.device, args.threads)
    data = load_clips(args.data)
    body = Trained.load(args.body_model, "body", args.registry, device)
    head = Trained.load(args.head_model, "head", args.registry, device) if args.head_model else None
    with np.load(args.body_npz, allow_pickle=False) as b:
        body_pose = b["pose"]
    result, preview = evaluate(
        data, body, head, body_pose, max_frames=args.max_frames, seed=args.seed, device=device
    )
    write_metrics(
        args.out,
        pipeline="anchor",
        twin=args.twin,
        values=result["values"],
        baselines=result["baselines"],
        better=BETTER,
        measured=result["measured"],
    )
    if args.preview:
        from twinflow.media.video import write_video

        write_video(args.preview, preview, args.fps, crf=12)
    log.info("values %s", result["values"])
    for name, base in result["baselines"].items():
        log.info("baseline %s %s", name, base)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
