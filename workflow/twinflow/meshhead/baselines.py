"""Baselines of the audio-to-mesh model: the static template and a linear (ridge) regressor.

Ridge: log-mel features of a +-``context`` motion-frame window (both audio frames of each, so
``(2 context + 1) x 2 x n_mels`` inputs, standardised) -> the full displacement, closed-form
ridge regression. The penalty is chosen from ``alphas`` on the last 20 % of the training frames
(a time split, like the test split), then refitted on all training frames.
"""

from __future__ import annotations

import numpy as np

from twinflow.meshhead.audio import logmel


def stacked(feats: np.ndarray, context: int) -> np.ndarray:
    """``(2T, F)`` audio features -> ``(T, (2 context + 1) * 2F)`` windows (edge-padded)."""
    per_frame = feats.reshape(-1, 2 * feats.shape[1])
    pad = np.pad(per_frame, ((context, context), (0, 0)), mode="edge")
    n = len(per_frame)
    return np.concatenate([pad[i : i + n] for i in range(2 * context + 1)], axis=1)


class RidgeAudio2Mesh:
    """Linear map from stacked log-mel windows to the displacement ``(V*3)``."""

    def __init__(self, context: int = 4, n_mels: int = 40, alphas=(1, 10, 100, 1e3, 1e4)):
        self.context, self.n_mels, self.alphas = context, n_mels, alphas

    def features(self, samples: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
        return stacked(logmel(samples, sample_rate, fps, self.n_mels), self.context)

    def fit(self, x: np.ndarray, disp: np.ndarray) -> RidgeAudio2Mesh:
        y = disp.reshape(len(disp), -1).astype(np.float64)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mu) / self.sd
        cut = int(0.8 * len(xs))
        best = None
        for alpha in self.alphas:
            w, b = _ridge(xs[:cut], y[:cut], alpha)
            err = np.mean((xs[cut:] @ w + b - y[cut:]) ** 2)
            if best is None or err < best[0]:
                best = (err, alpha)
        self.alpha = best[1]
        self.w, self.b = _ridge(xs, y, self.alpha)
        self.shape = disp.shape[1:]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (
            (((x - self.mu) / self.sd) @ self.w + self.b)
            .reshape(len(x), *self.shape)
            .astype(np.float32)
        )


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    a = xc.T @ xc + alpha * np.eye(x.shape[1])
    w = np.linalg.solve(a, xc.T @ (y - ym))
    return w, ym - xm @ w


def mouth_lmd_mm(pred: np.ndarray, target: np.ndarray, mouth: np.ndarray) -> float:
    """Mean 3-D distance of the mouth vertices, millimetres (inputs in metres)."""
    return float(np.linalg.norm(pred[:, mouth] - target[:, mouth], axis=-1).mean() * 1000)


def lip_vertex_error_mm(pred: np.ndarray, target: np.ndarray, lips: np.ndarray) -> float:
    """FaceFormer's lip vertex error (after MeshTalk): per frame the largest 3-D distance over
    the lip vertices, averaged over the frames; millimetres (inputs ``(T, V, 3)`` in metres).
    Later evaluation code (e.g. CodeTalker's) averages the squared distance instead."""
    dist = np.linalg.norm(pred[:, lips] - target[:, lips], axis=-1)
    return float(dist.max(axis=1).mean() * 1000)
