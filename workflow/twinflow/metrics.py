"""Image and landmark metrics, and the one ``metrics.json`` shape every pipeline writes.

``metrics.json``::

    {
      "pipeline": "nerf", "twin": "alice",
      "values":    {"psnr": 27.1, "ssim": 0.91, "lmd": 2.3},
      "baselines": {"no_audio": {"psnr": 26.0, "ssim": 0.90, "lmd": 3.1}},
      "better":    {"psnr": "higher", "ssim": "higher", "lmd": "lower"},
      "measured":  {"split": "...", "frames": 60, "how": "..."},
      "differences": {"lmd": {"no_audio": {"mean": -0.4, "ci": [-0.9, 0.1], "level": 0.95}}},
      "upper_bounds": {"tracked": {"metrics": ["psnr"], "what": "the real tracked mesh"}}
    }

Every baseline has exactly the keys of ``values``, so a reader can compare like with like.
``differences`` (optional) holds, for some metric and baseline, the mean paired difference
model - baseline with a confidence interval (:func:`paired_difference_ci`): where it exists, the
comparison rests on it (an interval holding 0: no clear difference). ``upper_bounds`` (optional)
names rows of ``baselines`` that, on the listed metrics, are not naive baselines but what a
perfect model would reach (an oracle input, or the measurement's own target), with what they
are; a model is expected to be below them there.
:mod:`twinflow.verdict` reads the shape back and decides better / worse / no clear difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from twinflow.atomic import write_json


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 (or [0,1] float) images ``(H, W, 3)``; ``mask`` ``(H, W)`` bool limits
    it to a region."""
    pred, target = _as_float(pred), _as_float(target)
    if mask is None:
        return float(peak_signal_noise_ratio(target, pred, data_range=1.0))
    mse = float(((pred - target) ** 2)[mask].mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two ``(H, W, 3)`` images (scikit-image, Gaussian window as in Wang et al.)."""
    return float(
        structural_similarity(
            _as_float(target),
            _as_float(pred),
            channel_axis=-1,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def l1(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference in [0, 1] units."""
    return float(np.abs(_as_float(pred) - _as_float(target)).mean())


def landmark_distance(pred: np.ndarray, target: np.ndarray, *, centred: bool = False) -> float:
    """Mean Euclidean distance of corresponding landmarks ``(..., K, 2)`` (LMD, AKD).

    ``centred``: each set of ``K`` landmarks is moved to its own mean first, so only the shape
    differs, not the position (the mouth LMD of AD-NeRF / ER-NeRF's evaluation code)."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if centred:
        pred = pred - pred.mean(-2, keepdims=True)
        target = target - target.mean(-2, keepdims=True)
    return float(np.linalg.norm(pred - target, axis=-1).mean())


def paired_difference_ci(
    diff: np.ndarray, chunks: np.ndarray, *, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Mean of paired per-sample differences ``diff (N,)`` (NaN: missing, left out) and its
    bootstrap confidence interval, resampling whole ``chunks (N,)`` (labels of runs of
    neighbouring, correlated samples, e.g. a few consecutive video frames) instead of samples:
    frame-level resampling would pretend 40 ms neighbours are independent and give too narrow
    an interval. The chunk means go to :func:`scipy.stats.bootstrap` (BCa; percentile when
    there are only 2 chunks). Returns ``mean``, ``ci`` ``[low, high]``, ``level`` and the
    number of ``chunks``."""
    from scipy.stats import bootstrap

    diff, chunks = np.asarray(diff, float), np.asarray(chunks)
    ok = np.isfinite(diff)
    means = np.array([diff[ok & (chunks == c)].mean() for c in np.unique(chunks[ok])])
    if len(means) < 2 or np.ptp(means) == 0:
        low = high = float(means[0]) if len(means) else float("nan")
    else:
        res = bootstrap(
            (means,), np.mean, confidence_level=level, n_resamples=4999,
            method="BCa" if len(means) >= 3 else "percentile", rng=np.random.default_rng(seed),
        )  # fmt: skip
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    mean = float(diff[ok].mean()) if ok.any() else float("nan")
    return {"mean": mean, "ci": [low, high], "level": level, "chunks": int(len(means))}


def _as_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def write_metrics(
    path: str | Path,
    *,
    pipeline: str,
    twin: str,
    values: dict[str, float],
    baselines: dict[str, dict[str, float]],
    better: dict[str, str],
    measured: dict[str, Any],
    differences: dict[str, dict[str, dict[str, Any]]] | None = None,
    upper_bounds: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Validate the shape and write ``metrics.json`` atomically; returns the written dict.

    ``differences``: ``{metric: {baseline: paired_difference_ci(...)}}`` (model - baseline);
    ``upper_bounds``: ``{baseline: {"metrics": [...], "what": "..."}}`` for rows that are
    oracles, not baselines, on those metrics."""
    keys = set(values)
    for name, base in baselines.items():
        if set(base) != keys:
            raise ValueError(
                f"baseline '{name}' has keys {sorted(base)}, values have {sorted(keys)}"
            )
    if set(better) != keys or not set(better.values()) <= {"higher", "lower"}:
        raise ValueError("'better' must say 'higher' or 'lower' for every value")
    for metric, per_baseline in (differences or {}).items():
        for name, diff in per_baseline.items():
            if metric not in keys or name not in baselines:
                raise ValueError(f"difference {metric} - {name}: no such value or baseline")
            if len(diff.get("ci", ())) != 2 or "mean" not in diff:
                raise ValueError(f"difference {metric} - {name} needs 'mean' and a 2-value 'ci'")
    for name, bound in (upper_bounds or {}).items():
        if (
            name not in baselines
            or not set(bound.get("metrics", ())) <= keys
            or "what" not in bound
        ):
            raise ValueError(
                f"upper bound {name}: must be a row of baselines with 'what' and 'metrics' "
                f"among {sorted(keys)}"
            )
    data = {
        "pipeline": pipeline,
        "twin": twin,
        "values": values,
        "baselines": baselines,
        "better": better,
        "measured": measured,
    }
    if differences:
        data["differences"] = differences
    if upper_bounds:
        data["upper_bounds"] = upper_bounds
    write_json(path, data)
    return data
