"""Stage ``mocap_metrics``: how well the fitted body explains the detections, and how smooth it is.

``python -m twinflow.mocap.metrics --twin ID --fit person0.npz --body body.npz [--face face.npz]
--meta meta.json --out metrics.json``

Values (``metrics.json``, the shape of :func:`twinflow.metrics.write_metrics`):

``reproj_px_median`` / ``reproj_px_mean``
    distance in pixels between each projected fitted point and its detection, over the detected
    points of the common skeleton (confidence >= the fit's threshold), median / mean;
``reproj_pct_height``
    the median as a percentage of the person's height in pixels (the fitted body's standing
    height seen at its fitted depth, median over frames: defined for half-body shots too);
``reproj_px_torso`` / ``_arms`` / ``_legs`` / ``_head``
    the median over the points of one body part (:data:`twinflow.mocap.skeleton.PARTS`:
    shoulders and hips; elbows to finger tips; knees to toes; the pose's face points and the
    face landmarks): a body that follows the limbs but not the head shows here;
``jitter_px`` / ``jitter_pct_height``
    mean acceleration ``|x[t+1] - 2 x[t] + x[t-1]|`` in pixels per frame^2 of the same points
    (those detected in all three frames), and as a percentage of the person's height.

Baselines under the same names:

``raw_detections``       the detections themselves (reprojection 0 by definition; their jitter is
                         what the fit should beat);
``smoothed_detections``  the detections smoothed in time (Gaussian, sigma 1.5 frames, per point):
                         a naive filter's trade-off between jitter and faithfulness;
``rest_pose_placed``     the fit's starting point: the rest-pose body placed over the detected
                         torso (what the optimisation had to improve on).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from scipy.ndimage import gaussian_filter1d

from twinflow.cli import stage_main
from twinflow.metrics import write_metrics
from twinflow.mocap import skeleton
from twinflow.mocap.common import load_npz, media_meta, npz_info

log = logging.getLogger("twinflow.mocap.metrics")

BETTER = {
    "reproj_px_median": "lower",
    "reproj_px_mean": "lower",
    "reproj_pct_height": "lower",
    **{f"reproj_px_{part}": "lower" for part in skeleton.PARTS},
    "jitter_px": "lower",
    "jitter_pct_height": "lower",
}


def reprojection(pred: np.ndarray, det: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-point pixel distances where ``mask`` holds, flattened."""
    return np.linalg.norm(pred - det, axis=-1)[mask]


def part_errors(pred: np.ndarray, det: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``reproj_px_{part}``: median pixel distance over each body part's detected points
    (``pred``, ``det`` ``(T, K, 2)``, ``mask`` ``(T, K)``; NaN for a part never detected)."""
    out = {}
    for part, idx in skeleton.PARTS.items():
        err = reprojection(pred[:, idx], det[:, idx], mask[:, idx])
        out[f"reproj_px_{part}"] = float(np.median(err)) if err.size else float("nan")
    return out


def jitter(points: np.ndarray, mask: np.ndarray) -> float:
    """Mean acceleration magnitude (pixels / frame^2) of ``points (T, K, 2)`` over the points
    visible (``mask``) in three consecutive frames."""
    if len(points) < 3:
        return float("nan")
    acc = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1)
    ok = mask[2:] & mask[1:-1] & mask[:-2]
    return float(acc[ok].mean()) if ok.any() else float("nan")


def smooth_detections(xy: np.ndarray, mask: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-point Gaussian smoothing in time over the frames where the point is detected."""
    out = xy.astype(np.float64).copy()
    w = mask.astype(np.float64)[..., None]
    num = gaussian_filter1d(xy * w, sigma, axis=0, mode="nearest")
    den = gaussian_filter1d(w, sigma, axis=0, mode="nearest")
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), out)


def compute(fit: dict, obs: skeleton.Observations, thr: float) -> dict:
    """``values``, ``baselines`` and measurement notes for one fit."""
    defined = fit["points_defined"].astype(bool)
    mask = (obs.conf >= thr) & defined[None]
    det = obs.xy.astype(np.float64)
    height = float(np.median(fit["person_height_px"]))
    candidates = {
        "fit": fit["joints2d"].astype(np.float64),
        "raw_detections": det,
        "smoothed_detections": smooth_detections(det, mask),
        "rest_pose_placed": fit["init_joints2d"].astype(np.float64),
    }
    results = {}
    for name, pred in candidates.items():
        err = reprojection(pred, det, mask)
        jit = jitter(pred, mask)
        results[name] = {
            "reproj_px_median": float(np.median(err)) if err.size else float("nan"),
            "reproj_px_mean": float(err.mean()) if err.size else float("nan"),
            "reproj_pct_height": 100 * float(np.median(err)) / height if err.size else float("nan"),
            **part_errors(pred, det, mask),
            "jitter_px": jit,
            "jitter_pct_height": 100 * jit / height,
        }
    groups = {}
    for g, sl in skeleton.GROUPS.items():
        err = reprojection(candidates["fit"][:, sl], det[:, sl], mask[:, sl])
        groups[g] = {
            "points": int(err.size),
            "reproj_px_median": float(np.median(err)) if err.size else None,
        }
    return {
        "values": results.pop("fit"),
        "baselines": results,
        "person_height_px": height,
        "groups": groups,
        "detected_points": int(mask.sum()),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.metrics", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--person", default="person0")
    p.add_argument("--fit", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--face", default=None)
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    fit = load_npz(args.fit)
    info = npz_info(fit)
    width, height, fps, _ = media_meta(args.meta)
    obs = skeleton.load_observations(args.body, args.face, width=width, height=height, fps=fps)
    thr = float(info.get("config", {}).get("conf_threshold", 0.25))
    res = compute(fit, obs, thr)
    write_metrics(
        args.out,
        pipeline="mocap",
        twin=args.twin,
        values=res["values"],
        baselines=res["baselines"],
        better=BETTER,
        upper_bounds={
            name: {
                "metrics": [k for k in BETTER if k.startswith("reproj")],
                "what": "2-D points, not a body: the detections are what the reprojection is "
                "measured against (0 by definition, or a filter of them); only their jitter is "
                "a baseline for the fit",
            }
            for name in ("raw_detections", "smoothed_detections")
        },
        measured={
            "how": (
                "2-D reprojection of the fitted common-skeleton points against the perception "
                "detections (mediapipe pose 33, hands 2x21, face iBUG 17-67) with confidence >= "
                f"{thr}; jitter = mean |x[t+1] - 2x[t] + x[t-1]| of the same points; person "
                "height = the fitted body's standing height at its fitted depth"
            ),
            "person": args.person,
            "frames": int(obs.n_frames),
            "detected_points": res["detected_points"],
            "person_height_px": res["person_height_px"],
            "per_group": res["groups"],
            "backend": str(fit["backend"]),
            "fit_seconds": info.get("seconds"),
            "fit_seconds_per_frame": info.get("seconds_per_frame"),
            "fit_cpu_seconds_per_frame": info.get("cpu_seconds_per_frame"),
            "fit_threads": info.get("threads"),
            "device": info.get("device"),
        },
    )
    v = res["values"]
    log.info(
        "reprojection median %.2f px (%.2f%% of height), jitter %.3f px vs raw %.3f px",
        v["reproj_px_median"],
        v["reproj_pct_height"],
        v["jitter_px"],
        res["baselines"]["raw_detections"]["jitter_px"],
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
