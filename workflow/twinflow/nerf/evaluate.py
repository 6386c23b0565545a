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
``lmd_ernerf`` ER-NeRF's ``LMDMeter`` convention: the 20 mouth points 48-67 of the iBUG 68-point
               layout (outer 48-59, inner 60-67), each set centred on its mean, the mean distance
               in pixels. ER-NeRF's points come from face-alignment (``--backend fan``), which
               twinflow does not have: these are the perception stage's iBUG-68 subset of
               mediapipe's face mesh (:data:`twinflow.perception.landmarks.IBUG68`, an
               approximate correspondence), on the same upscaled crops as ``lmd`` (with
               ``paper``'s whole 512-pixel frame, ER-NeRF's image).
``lpips``      LPIPS (AlexNet, v0.1) of the whole rendered image against the real one, [0, 1]
               inputs (ER-NeRF's ``LPIPSMeter``, ``normalize=True``; :mod:`twinflow.nerf.lpips`).
               Only when its weights are supplied (``models/registry.yaml``: ``alexnet`` and
               ``lpips-alex``); without them it is not reported and ``measured.lpips`` says why.

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
KEYS = ("psnr", "psnr_full", "ssim", "lmd", "lmd_uncentred", "lmd_ernerf")  # metrics.json
BETTER = {"psnr": "higher", "psnr_full": "higher", "ssim": "higher", "lmd": "lower",
          "lmd_uncentred": "lower", "lmd_ernerf": "lower", "lpips": "lower"}  # fmt: skip


def mouth_points() -> dict[str, list[int]]:
    """Face-mesh indices of the mouth sets: ``lips`` (twinflow's 40 lip contour points) and
    ``ibug_mouth`` (iBUG-68 points 48-67, ER-NeRF's ``LMDMeter`` mouth, taken from mediapipe's
    mesh through :data:`twinflow.perception.landmarks.IBUG68`, not from face-alignment)."""
    from twinflow.perception.landmarks import IBUG68, LIPS_INNER, LIPS_OUTER

    return {"lips": LIPS_OUTER + LIPS_INNER, "ibug_mouth": IBUG68[48:68]}


class LipLandmarks:
    """Mouth landmarks (frame pixels) of crops, with the perception face mesh:
    ``{"lips": (40, 2), "ibug_mouth": (20, 2)}`` (:func:`mouth_points`)."""

    def __init__(self, side: int):
        from twinflow.perception.face import FaceConfig, FaceRunner

        self.side = side
        self.runner = FaceRunner(FaceConfig(max_faces=1), static=True)
        self.points = mouth_points()

    def __call__(self, crop_rgb: np.ndarray) -> dict[str, np.ndarray] | None:
        img = cv2.resize(crop_rgb, (self.side, self.side), interpolation=cv2.INTER_CUBIC)
        faces = self.runner(img).faces
        if not len(faces):
            return None
        return {name: faces[0][idx, :2] for name, idx in self.points.items()}

    def close(self) -> None:
        self.runner.close()


def mouth_distances(pred: dict | None, real: dict | None) -> tuple[float, float, float]:
    """``(lmd, lmd_uncentred, lmd_ernerf)`` of one frame's mouth landmarks (NaN: no face)."""
    from twinflow.metrics import landmark_distance

    if pred is None or real is None:
        return (np.nan, np.nan, np.nan)
    return (
        landmark_distance(pred["lips"], real["lips"], centred=True),
        landmark_distance(pred["lips"], real["lips"]),
        landmark_distance(pred["ibug_mouth"], real["ibug_mouth"], centred=True),
    )


def frame_lpips(model, rendered: np.ndarray, real: np.ndarray) -> float:
    """ER-NeRF's ``LPIPSMeter`` on one frame: LPIPS(alex) of ``(H, W, 3) uint8`` images in
    [0, 1] (``normalize=True``), the real frame first as ER-NeRF passes it."""
    dev = next(model.parameters()).device
    t = lambda x: torch.as_tensor(x, device=dev).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    with torch.no_grad():
        return float(model(t(real), t(rendered), normalize=True))


def evaluate(
    head, torso, data, feats: torch.Tensor, chunk: int, preview: str | None = None, lpips=None
) -> dict:
    """Metrics of the model and of the mean-audio baseline on ``data.val_idx``; ``lpips``: an
    :class:`twinflow.nerf.lpips.AlexLPIPS` (the ``lpips`` metric), or None."""
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
            psnr_head, psnr_full, ssims, lp = [], [], [], []
            # nan: no face on the render or the frame
            lmds = np.full((len(val), 3), np.nan)
            for k in range(len(val)):
                mask = labels[k] >= HEAD
                psnr_head.append(metrics.psnr(rendered[k], gt[k], mask) if mask.any() else np.nan)
                psnr_full.append(metrics.psnr(rendered[k], gt[k]))
                ssims.append(metrics.ssim(rendered[k], gt[k]))
                lmds[k] = mouth_distances(lips(rendered[k]), gt_lmk[k])
                if lpips is not None:
                    lp.append(frame_lpips(lpips, rendered[k], gt[k]))
            centred = lmds[:, 0]
            found = int(np.isfinite(centred).sum())
            per_frame = {
                "psnr": np.array(psnr_head, float),
                "psnr_full": np.array(psnr_full, float),
                "ssim": np.array(ssims, float),
                "lmd": centred,
                "lmd_uncentred": lmds[:, 1],
                "lmd_ernerf": lmds[:, 2],
            }
            if lpips is not None:
                per_frame["lpips"] = np.array(lp, float)
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
    from twinflow.nerf.lpips import supplied

    lpips, why = supplied(args.registry)
    if lpips is None:
        log.info("lpips not reported: %s", why)
    else:
        lpips = lpips.to(device)
    keys = KEYS + (("lpips",) if lpips is not None else ())
    t0 = time.perf_counter()
    res = evaluate(
        head, torso, data, data.features, args.chunk or head.cfg.chunk, args.preview, lpips
    )
    seconds = time.perf_counter() - t0
    val = data.val_idx.cpu().numpy()
    values = {k: res["model"][k] for k in keys}
    base = {k: res["no_audio"][k] for k in keys}
    write_metrics(
        args.out,
        pipeline="nerf",
        twin=args.twin,
        values=values,
        baselines={"no_audio": base},
        better={k: BETTER[k] for k in keys},
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
                "ER-NeRF's LMDMeter); lmd_uncentred: the same without centring; lmd_ernerf: "
                "ER-NeRF's mouth points (iBUG-68 48-67, here mediapipe's mesh subset, not "
                "face-alignment's), centred; lpips: LPIPS(alex) of the whole image, [0, 1] "
                "inputs (ER-NeRF's LPIPSMeter)"
            ),
            "lpips": "reported" if lpips is not None else f"not reported: {why}",
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
        differences=differences(val, res, keys),
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
    p.add_argument("--registry", default="models/registry.yaml", help="LPIPS weights (optional)")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
