"""How far can audio explain the mouth on a twin's held-out frames? A linear (ridge) probe.

The nerf evaluation compares the model's lip landmark distance (LMD) with that of the same model
fed the mean audio window. Whether any audio-driven model *can* win that comparison depends on
the clip: on frames where the person grimaces instead of speaking, the mouth is not a function
of the audio, and the constant mean mouth is the best guess. This probe measures it directly,
without a NeRF: a ridge regression from the frame's audio feature window ``(16, C)`` to the
perception stage's mouth opening, fitted on the training frames and scored on the val frames as

``ratio = MSE(ridge) / MSE(training mean)``  (below 1: audio helps; at or above 1: it cannot),

for each ridge strength in ``lambdas`` (scikit-learn's ``Ridge`` on standardised windows) (the best one is chosen on the val frames themselves, so
the result is an optimistic ceiling), overall and per contiguous val block.

``python -m twinflow.nerf.speech_probe --results results/<twin>`` reads
``perception/signals.npz`` (``mouth_open``), ``nerf/audio_features.npz`` and the split of
``nerf/dataset.npz`` and prints the result as JSON. The nerf acceptance report
(:mod:`twinflow.nerf.acceptance`) includes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LAMBDAS = (1e1, 1e2, 1e3, 1e4, 1e5)


def block_positions(ids: np.ndarray) -> list[np.ndarray]:
    """Positions in frame ids ``(V,)`` (any order) of each run of consecutive ids; the runs in
    frame order, each in frame order."""
    ids = np.asarray(ids)
    order = np.argsort(ids, kind="stable")
    return np.split(order, np.where(np.diff(ids[order]) > 1)[0] + 1) if len(ids) else []


def contiguous_blocks(ids: np.ndarray) -> list[np.ndarray]:
    """Frame ids ``(V,)`` -> runs of consecutive ids, sorted."""
    ids = np.asarray(ids)
    return [ids[part] for part in block_positions(ids)]


def ridge_probe(
    features: np.ndarray,
    target: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    lambdas: tuple[float, ...] = LAMBDAS,
) -> dict:
    """Ridge regressions ``features (N, ...)`` -> ``target (N,)`` fitted on frames ``train`` and
    scored on ``val`` (MSE ratio to predicting the training mean; see the module docstring).

    Returns ``{"best": {"lambda", "ratio", "blocks"}, "by_lambda": {lambda: ratio},
    "train_frames", "val_frames"}``; ``blocks`` lists the ratio of each contiguous val block."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = len(target)
    x = np.asarray(features, dtype=np.float64)[:n].reshape(n, -1)
    y = np.asarray(target, dtype=np.float64)
    train, val = np.asarray(train), np.asarray(val)
    y_mean = y[train].mean()
    blocks = contiguous_blocks(val)

    def ratio(pred: np.ndarray, ids: np.ndarray) -> float:
        mean_mse = ((y[ids] - y_mean) ** 2).mean()
        return float(((pred[ids] - y[ids]) ** 2).mean() / max(mean_mse, 1e-12))

    results = {}
    for lam in lambdas:
        model = make_pipeline(StandardScaler(), Ridge(alpha=lam)).fit(x[train], y[train])
        pred = model.predict(x)
        results[lam] = (ratio(pred, val), [ratio(pred, blk) for blk in blocks])
    best = min(results, key=lambda lam: results[lam][0])
    return {
        "best": {
            "lambda": best,
            "ratio": round(results[best][0], 4),
            "blocks": [round(r, 3) for r in results[best][1]],
        },
        "by_lambda": {str(lam): round(r[0], 4) for lam, r in results.items()},
        "train_frames": len(train),
        "val_frames": len(val),
    }


def probe_results(results: str | Path) -> dict:
    """:func:`ridge_probe` on a twin's ``results/<twin>`` folder: perception's ``mouth_open``,
    the nerf audio features, and the train / val frames the nerf dataset was built with."""
    from twinflow.perception.store import load_npz

    root = Path(results)
    mouth = load_npz(root / "perception" / "signals.npz")["mouth_open"]
    feats = load_npz(root / "nerf" / "audio_features.npz")["features"]
    split = load_npz(root / "nerf" / "dataset.npz")
    n = min(len(mouth), len(feats))
    train, val = split["train"], split["val"]
    report = ridge_probe(feats[:n], mouth[:n], train[train < n], val[val < n])
    report["what"] = (
        "ridge regression audio feature window -> perception mouth_open, fitted on the train "
        "frames; ratio = val MSE / MSE of the training mean (< 1: audio explains the mouth); "
        "best lambda chosen on val (an optimistic ceiling)"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.nerf.speech_probe", description=__doc__)
    p.add_argument("--results", required=True, help="results/<twin> of a run with nerf features")
    args = p.parse_args(argv)
    print(json.dumps(probe_results(args.results), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
