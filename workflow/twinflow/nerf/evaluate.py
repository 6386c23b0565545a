"""Stage ``evaluate``: held-out frames of the twin's own video, driven by its own audio.

``python -m twinflow.nerf.evaluate --twin ID --dataset dataset.npz --frames frames.mkv
--features audio_features.npz --head lips.pt --torso torso.pt --out metrics.json
[--preview val.mp4]``

The validation frames (perception's split: contiguous blocks held out in time, never trained on;
see :func:`twinflow.perception.cameras.split_frames`) are rendered with their own head pose,
blink and audio, at the dataset's resolution, and compared with the real frames:

``psnr``       PSNR on the head region (the parsing's head and face labels of the real frame)
``psnr_full``  PSNR of the whole rendered image (crop)
``ssim``       SSIM of the whole rendered image (:func:`twinflow.metrics.ssim`)
``lmd``        lip landmark distance (mouth shape): the mean distance, in pixels of the
               normalised video, between the 40 lip landmarks (outer and inner contour) that the
               perception stage's face mesh (:class:`twinflow.perception.face.FaceRunner`, photo
               mode) finds on the rendered frame and on the real frame, both scaled from the
               crop back to frame size in the same way, after moving each set of 40 to its mean
               (as ER-NeRF's ``LMDMeter``): the head pose, and so the mouth's position, is the
               real frame's for the model and the baseline alike, and the detector's jitter in
               position on a rendered face would otherwise outweigh the shape. Frames where
               either has no face are left out and counted.
``lmd_uncentred``  the same distance without centring (mouth shape and position).

The baseline ``no_audio`` is the same model with every frame's audio features replaced by the
mean feature window of the training frames (so the audio code is constant: the model's answer
to "any audio"), measured identically. ``measured.lmd_blocks`` gives both LMDs per val block,
``differences`` the mean per-frame difference (model - baseline) of every metric with its 95%
bootstrap interval (:func:`differences`). ``--preview`` writes real | rendered | baseline
side by side.
"""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np
import torch

log = logging.getLogger("twinflow.nerf.evaluate")
CHUNK_FRAMES = 5  # val frames resampled together by the differences' bootstrap (200 ms)
KEYS = ("psnr", "psnr_full", "ssim", "lmd", "lmd_uncentred")  # the values of metrics.json


class LipLandmarks:
    """Lip landmarks ``(40, 2)`` (frame pixels) of crops, with the perception face mesh."""

    def __init__(self, side: int):
        from twinflow.perception.face import FaceConfig, FaceRunner

        self.side = side
        self.runner = FaceRunner(FaceConfig(max_faces=1), static=True)

    def __call__(self, crop_rgb: np.ndarray) -> np.ndarray | None:
        from twinflow.perception.landmarks import LIPS_INNER, LIPS_OUTER

        img = cv2.resize(crop_rgb, (self.side, self.side), interpolation=cv2.INTER_CUBIC)
        faces = self.runner(img).faces
        if not len(faces):
            return None
        return faces[0][LIPS_OUTER + LIPS_INNER, :2]

    def close(self) -> None:
        self.runner.close()


def evaluate(
    head, torso, data, feats: torch.Tensor, chunk: int, preview: str | None = None
) -> dict:
    """Metrics of the model and of the mean-audio baseline on ``data.val_idx``."""
    from twinflow import metrics
    from twinflow.nerf.dataset import HEAD
    from twinflow.nerf.render import to_rgba

    val = data.val_idx.cpu().numpy()
    baseline_feats = data.mean_window[None].expand_as(feats).contiguous()
    gt = data.images[data.val_idx].cpu().numpy()
    labels = data.labels[data.val_idx].cpu().numpy()
    side = int(data.crop[2])
    lips = LipLandmarks(side)
    results, frames_out = {}, {}
    try:
        gt_lmk = [lips(img) for img in gt]
        for name, f in (("model", feats), ("no_audio", baseline_feats)):
            rendered = np.zeros_like(gt)

            def keep(k: int, out: dict, rendered=rendered) -> None:
                rendered[k] = to_rgba(out)[..., :3]

            # audio codes of the val frames come from their own windows of ``f``
            render_val(head, torso, data, f, val, chunk, keep)
            psnr_head, psnr_full, ssims = [], [], []
            centred = np.full(len(val), np.nan)  # nan: no face on the render or the frame
            uncentred = np.full(len(val), np.nan)
            for k in range(len(val)):
                mask = labels[k] >= HEAD
                psnr_head.append(metrics.psnr(rendered[k], gt[k], mask) if mask.any() else np.nan)
                psnr_full.append(metrics.psnr(rendered[k], gt[k]))
                ssims.append(metrics.ssim(rendered[k], gt[k]))
                lm = lips(rendered[k])
                if lm is not None and gt_lmk[k] is not None:
                    centred[k] = metrics.landmark_distance(lm, gt_lmk[k], centred=True)
                    uncentred[k] = metrics.landmark_distance(lm, gt_lmk[k])
            found = int(np.isfinite(centred).sum())
            per_frame = {
                "psnr": np.array(psnr_head, float),
                "psnr_full": np.array(psnr_full, float),
                "ssim": np.array(ssims, float),
                "lmd": centred,
                "lmd_uncentred": uncentred,
            }
            results[name] = {
                **{
                    k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                    for k, v in per_frame.items()
                },
                "lmd_frames": found,
                "lmd_missing": len(val) - found,
                "per_frame": per_frame,
            }
            frames_out[name] = rendered
    finally:
        lips.close()
    if preview:
        from twinflow.media.video import write_video

        strip = np.concatenate([gt, frames_out["model"], frames_out["no_audio"]], 2)
        h, w = strip.shape[1:3]
        strip = strip[:, : h - h % 2, : w - w % 2]
        write_video(preview, strip, data.fps, crf=18)
    return results


def lmd_blocks(val: np.ndarray, res: dict) -> list[dict]:
    """``lmd`` of the model and the baseline per contiguous block of val frames ``(V,)``: the
    audio may help on speech and lose where the person pulls faces, which one number hides."""
    from twinflow.nerf.speech_probe import block_positions

    out = []
    for part in block_positions(val):
        row = {"frames": [int(val[part[0]]), int(val[part[-1]])]}
        for name in ("model", "no_audio"):
            d = res[name]["per_frame"]["lmd"][part]
            row[name] = float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
        out.append(row)
    return out


def differences(
    val: np.ndarray, res: dict, keys=KEYS, chunk_frames: int = CHUNK_FRAMES
) -> dict[str, dict]:
    """Model minus baseline of each metric in ``keys`` over the val frames ``(V,)``
    (``metrics.json: differences``): the mean of the per-frame differences and its 95% bootstrap
    interval (:func:`twinflow.metrics.paired_difference_ci`), resampling runs of
    ``chunk_frames`` consecutive frames of each val block, since neighbouring frames' errors
    are correlated. An interval that holds 0 means the val frames cannot tell the model from
    the baseline."""
    from twinflow.metrics import paired_difference_ci
    from twinflow.nerf.speech_probe import block_positions

    chunks = np.zeros(len(val), int)
    first = 0
    for part in block_positions(val):
        chunks[part] = first + np.arange(len(part)) // chunk_frames
        first = chunks[part].max() + 1
    out = {}
    for key in keys:
        diff = res["model"]["per_frame"][key] - res["no_audio"]["per_frame"][key]
        out[key] = {
            "no_audio": {**paired_difference_ci(diff, chunks), "chunk_frames": chunk_frames}
        }
    return out


def render_val(head, torso, data, feats, val, chunk, callback) -> None:
    """Render the val frames: pose, blink and audio of the same frame."""
    from twinflow.nerf.model import render_frame

    with torch.no_grad():
        idx = torch.as_tensor(val, device=feats.device)
        codes = head.audio_codes(feats, idx, smooth=True)
        for k, f in enumerate(val):
            out = render_frame(
                head, torso, data.c2w[f], data.intrinsics, data.res, data.box, codes[k],
                float(data.blink[f]), data.bg, data.head_region, chunk,
            )  # fmt: skip
            callback(k, out)


def run(args: argparse.Namespace) -> None:
    from twinflow.device import pick_device
    from twinflow.metrics import write_metrics
    from twinflow.nerf.data import NerfData
    from twinflow.nerf.render import load_models

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = NerfData(args.dataset, args.frames, args.features, device=device)
    head, torso, steps = load_models(
        args.head, args.torso, data.feature_info["kind"], int(data.features.shape[-1]), device
    )
    t0 = time.perf_counter()
    res = evaluate(head, torso, data, data.features, args.chunk or head.cfg.chunk, args.preview)
    seconds = time.perf_counter() - t0
    val = data.val_idx.cpu().numpy()
    values = {k: res["model"][k] for k in KEYS}
    base = {k: res["no_audio"][k] for k in KEYS}
    write_metrics(
        args.out,
        pipeline="nerf",
        twin=args.twin,
        values=values,
        baselines={"no_audio": base},
        better={
            "psnr": "higher",
            "psnr_full": "higher",
            "ssim": "higher",
            "lmd": "lower",
            "lmd_uncentred": "lower",
        },
        measured={
            "split": data.info.get("split_rule")
            or "val: perception's held-out blocks of frames, never trained on",
            "frames": len(data.val_idx),
            "resolution": data.res,
            "crop_xy_side": data.crop[:3].tolist(),
            "audio_features": data.feature_info["kind"],
            "how": (
                "val frames rendered with their own pose, blink and audio; psnr on the head "
                "labels of the real frame, psnr_full and ssim on the whole image at the "
                "dataset resolution; lmd: mean distance (pixels of the normalised video) of the "
                "40 lip landmarks of the perception face mesh on rendered and real crops, both "
                "upscaled to the crop size, each set moved to its mean first (mouth shape, as "
                "ER-NeRF's LMDMeter); lmd_uncentred: the same without centring"
            ),
            "baseline": (
                "no_audio: the same model with every frame's audio features replaced by the "
                "mean feature window of the training frames"
            ),
            "lmd_frames": {
                "model": res["model"]["lmd_frames"],
                "no_audio": res["no_audio"]["lmd_frames"],
            },
            "lmd_missing": {
                "model": res["model"]["lmd_missing"],
                "no_audio": res["no_audio"]["lmd_missing"],
            },
            "lmd_blocks": lmd_blocks(val, res),
            "checkpoint_steps": steps,
            "seconds": seconds,
        },
        differences=differences(val, res),
    )
    log.info("model %s", {k: round(v, 3) for k, v in values.items()})
    log.info("no_audio %s", {k: round(v, 3) for k, v in base.items()})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.evaluate", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--features", required=True, help="the twin's own audio features")
    p.add_argument("--head", required=True, help="lips.pt")
    p.add_argument("--torso", default=None)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--preview", default=None, help="optional side-by-side video")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
