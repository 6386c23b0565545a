"""Stage ``meshhead_evaluate``: held-out metrics of the twin's meshhead models -> ``metrics.json``.

``python -m twinflow.meshhead.evaluate --twin ID --dataset dataset.npz --audio2mesh audio2mesh.pt
[--frames frames.npz --warp warp.pt] --out metrics.json``

Everything is measured on the test split: the last ``test_fraction`` of the twin's video and
speech, never seen in training (nor in model selection, which uses the end of the training
part). Each row of ``metrics.json`` is a whole pipeline (mesh source -> the same warp):

=============  =====================================  ===================================
row            mesh                                   video
=============  =====================================  ===================================
values         the audio-to-mesh model                the warp driven by that mesh
static         the template (no motion)               the source image itself (copy)
ridge          ridge regression on log-mel windows    the warp driven by the ridge mesh
tracked        the tracked mesh (0 mm by definition)  the warp driven by the tracked mesh:
                                                      the warp alone on held-out frames
=============  =====================================  ===================================

Keys: ``mesh_mouth_lmd_mm`` (mean 3-D distance of the 40 lip points, pose-free, mm),
``mesh_lip_vertex_error_mm`` (FaceFormer's metric: per frame the largest 3-D distance over the
same lip points, averaged over the frames, mm; FLAME: the model's lip vertices when it has them,
else the dataset's mouth vertices),
``video_mouth_lmd_px`` (mean 2-D distance of the lip points that mediapipe's face mesh finds in
the rendered and the real frames, pixels of the warp's frame size), ``video_psnr`` (dB) and
``video_ssim`` (rendered vs real head crops). The video is driven by the held-out frames' own
tracked head poses, from the default source frame, through the twin's mesh driver
(:mod:`twinflow.meshhead.driving`, relative to the source's own mesh and pose, as renders).
With topology ``flame`` only the mesh key exists (no warp). ``measured`` repeats each model's
part with its own baselines; ``measured.warp`` compares mesh driving (the tracked mesh) with the
reference's estimator-driven self-reenactment of the same frames (``estimator_driven``).
"""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np

from twinflow.cli import stage_main
from twinflow.meshhead.baselines import RidgeAudio2Mesh, lip_vertex_error_mm, mouth_lmd_mm
from twinflow.meshhead.common import add_common, audio_slice, load_npz, setup_torch, split_ranges
from twinflow.meshhead.infer import Audio2MeshRunner
from twinflow.meshhead.poses import frame_source
from twinflow.meshhead.render import initial_motion, mesh_motion
from twinflow.meshhead.topology import MEDIAPIPE, MOUTH
from twinflow.meshhead.warp import Motion, WarpRunner, to_uint8
from twinflow.metrics import landmark_distance, psnr, ssim, write_metrics

log = logging.getLogger("twinflow.meshhead.evaluate")
DETECT_SIZE = 256


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.evaluate", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--audio2mesh", required=True)
    p.add_argument("--frames", help="frames.npz (mediapipe468)")
    p.add_argument("--warp", help="warp.pt (mediapipe468)")
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def mesh_predictions(dataset: dict, runner: Audio2MeshRunner) -> dict[str, list[np.ndarray]]:
    """Per test range: the model's, the ridge baseline's, the static and the tracked displacement."""
    fps, sr = float(dataset["fps"]), int(dataset["sample_rate"])
    disp = dataset["disp"]
    ridge = RidgeAudio2Mesh()
    xs, ys = [], []
    for a, b in split_ranges(dataset, 0):
        xs.append(ridge.features(audio_slice(dataset, a, b), sr, fps)[: b - a])
        ys.append(disp[a : a + len(xs[-1])])
    ridge.fit(np.concatenate(xs), np.concatenate(ys))
    out = {"model": [], "ridge": [], "static": [], "tracked": []}
    speakers = [str(s) for s in dataset["speakers"]]
    for c, e in split_ranges(dataset, 1):
        wave = audio_slice(dataset, c, e)
        seq = int(np.searchsorted(dataset["seq_start"], c, side="right") - 1)
        speaker = speakers[int(dataset["seq_speaker"][seq])]
        pred = runner.predict(wave, sr, speaker=speaker)
        out["model"].append(_fit_length(_resample(pred, runner.fps, fps), e - c))
        out["ridge"].append(_fit_length(ridge.predict(ridge.features(wave, sr, fps)), e - c))
        out["static"].append(np.zeros_like(disp[c:e]))
        out["tracked"].append(disp[c:e])
    out["ridge_alpha"] = ridge.alpha
    return out


def _resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling in time of ``(T, ...)`` frames (a model at another frame rate than
    the dataset, e.g. a VOCASET FaceFormer at 30 fps)."""
    if abs(fps_in - fps_out) < 1e-6 or len(x) < 2:
        return x
    t = np.arange(int(np.floor((len(x) - 1) / fps_in * fps_out)) + 1) / fps_out * fps_in
    lo = np.clip(np.floor(t).astype(int), 0, len(x) - 2)
    w = (t - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return ((1 - w) * x[lo] + w * x[lo + 1]).astype(x.dtype)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), 0)])


def mouth_detector():
    from twinflow.perception.face import FaceConfig, FaceRunner

    return FaceRunner(FaceConfig(max_faces=1))


def detect_mouths(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lip points ``(N, 40, 2)`` in pixels of the frames' size, and ``found (N,)``."""
    size = frames.shape[1]
    runner = mouth_detector()
    pts = np.zeros((len(frames), len(MOUTH), 2), np.float32)
    found = np.zeros(len(frames), bool)
    try:
        for i, f in enumerate(frames):
            big = cv2.resize(f, (DETECT_SIZE, DETECT_SIZE), interpolation=cv2.INTER_CUBIC)
            faces = runner(big).faces
            if len(faces):
                pts[i] = faces[0][MOUTH, :2] * (size / DETECT_SIZE)
                found[i] = True
    finally:
        runner.close()
    return pts, found


def resize_to(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size:
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def src_image(src) -> np.ndarray:
    return to_uint8(src.image)[0]


def video_scores(
    rendered: np.ndarray, real: np.ndarray, real_mouth, real_found
) -> tuple[dict, int]:
    mouth, found = detect_mouths(rendered)
    both = found & real_found
    lmd = landmark_distance(mouth[both], real_mouth[both]) if both.any() else float("nan")
    return {
        "video_mouth_lmd_px": lmd,
        "video_psnr": float(np.mean([psnr(p, t) for p, t in zip(rendered, real, strict=True)])),
        "video_ssim": float(np.mean([ssim(p, t) for p, t in zip(rendered, real, strict=True)])),
    }, int(both.sum())


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    dataset = load_npz(args.dataset, "mesh dataset")
    runner = Audio2MeshRunner(args.audio2mesh, device, args.registry)
    preds = mesh_predictions(dataset, runner)
    mouth = dataset["mouth_index"].astype(int)
    rows = ("model", "static", "ridge", "tracked")
    tracked = np.concatenate(preds["tracked"])
    lips = np.asarray(runner.extra.get("mouth_index", []), int)
    if str(dataset["topology"]) == MEDIAPIPE or not len(lips):
        lips = mouth
    mesh = {
        r: {
            "mesh_mouth_lmd_mm": mouth_lmd_mm(np.concatenate(preds[r]), tracked, mouth),
            "mesh_lip_vertex_error_mm": lip_vertex_error_mm(
                np.concatenate(preds[r]), tracked, lips
            ),
        }
        for r in rows
    }
    n_test = len(tracked)
    measured = {
        "split": f"test: {dataset['info'].get('split', 'held-out part')}",
        "test_frames": n_test,
        "audio2mesh": {
            "checkpoint": args.audio2mesh,
            "steps": runner.steps,
            "selected_step": runner.meta.get("selected_step"),
            "output_scale": runner.extra.get("output_scale", 1.0),
            "decoding": f"autoregressive, windows of {runner.cfg.window} frames carrying {runner.cfg.history}",
            "ridge_alpha": preds["ridge_alpha"],
        },
        "how": "mesh: mean 3-D distance of the mouth points of the predicted vs the tracked "
        "pose-free mesh (mm); lip vertex error: per frame the largest distance over the lip "
        "points, averaged (mm, FaceFormer's metric); static = the template; ridge = ridge "
        "regression on +-4 frames of 40-bin log-mel; tracked = the tracked mesh itself",
    }
    scores = {r: dict(mesh[r]) for r in rows}
    if str(dataset["topology"]) == MEDIAPIPE and args.warp and args.frames:
        frames = load_npz(args.frames, "warp frames")
        warp = WarpRunner(args.warp, device)
        driver = warp.need_driver()
        source = frame_source(frames, dataset)
        src = warp.source(resize_to(source.image[None], warp.size)[0])
        (c, e), *_ = split_ranges(dataset, 1)
        real = resize_to(frames["frames"][c:e], warp.size)
        real_mouth, real_found = detect_mouths(real)
        initial, _ = initial_motion("source", driver, source, None, None, None, None)
        counts = {}
        for r in ("model", "ridge", "tracked"):
            motion = mesh_motion(driver, preds[r][0], source, dataset["R"][c:e], dataset["t"][c:e])
            rendered = np.stack(list(warp.render(src, motion, initial)))
            video, counts[r] = video_scores(rendered, real, real_mouth, real_found)
            scores[r].update(video)
        video, counts["static"] = video_scores(
            np.repeat(src_image(src)[None], len(real), 0), real, real_mouth, real_found
        )
        scores["static"].update(video)
        # the reference's own self-reenactment: the estimator on the real held-out frames
        estimated = Motion.from_dict(warp.estimate(real))
        rendered = np.stack(list(warp.render(src, estimated)))
        estimator_video, counts["estimator"] = video_scores(rendered, real, real_mouth, real_found)
        measured["warp"] = {
            "checkpoint": args.warp,
            "steps": warp.steps,
            "size": warp.size,
            "generator": warp.cfg.generator,
            "source_frame": source.index,
            "real_frames_with_face": int(real_found.sum()),
            "frames_compared_for_lmd": counts,
            "driver_fit": warp.extra.get("driver_fit"),
            "values": {k: v for k, v in scores["tracked"].items() if k.startswith("video")},
            "baselines": {
                "estimator_driven": estimator_video,
                "copy_source": {k: v for k, v in scores["static"].items() if k.startswith("video")},
            },
        }
        measured["how"] += (
            "; video: the held-out frames rendered from the source frame, mesh-driven (the "
            "twin's mesh driver maps each frame's mesh and tracked head pose to face-vid2vid's "
            "pose and expression, relative to the source's own), compared with the real head "
            f"crops at {warp.size} px (PSNR, SSIM; mouth LMD between the lip points mediapipe's "
            f"face mesh finds in both, upscaled to {DETECT_SIZE} px for detection, in pixels of "
            "the warp's size); static = the source image copied; tracked = the tracked mesh "
            "through the driver and warp (the warp alone); measured.warp.baselines."
            "estimator_driven = the reference's self-reenactment (the estimator run on the real "
            "held-out frames): how close mesh driving comes to it"
        )
    measured["audio2mesh"]["values"] = mesh["model"]
    measured["audio2mesh"]["baselines"] = {
        "static_template": mesh["static"],
        "ridge": mesh["ridge"],
    }
    keys = list(scores["model"])
    better = {k: "higher" if k in ("video_psnr", "video_ssim") else "lower" for k in keys}
    data = write_metrics(
        args.out,
        pipeline="meshhead",
        twin=args.twin,
        values=scores["model"],
        baselines={r: scores[r] for r in ("static", "ridge", "tracked")},
        better=better,
        measured=measured,
        upper_bounds={
            "tracked": {
                "metrics": sorted(scores["model"]),
                "what": "the tracked mesh itself drives the warp: what a perfect audio-to-mesh "
                "model would reach (its mesh distance is 0 by definition)",
            }
        },
    )
    for name, vals in [("model", data["values"]), *data["baselines"].items()]:
        log.info("%-8s %s", name, "  ".join(f"{k}={v:.4g}" for k, v in vals.items()))


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
