"""A synthetic talking head in the nerf dataset format, for tests and GPU benchmarks.

``python -m twinflow.nerf.synthetic --out DIR [--res 64] [--frames 60] [--seed 0]`` writes
``DIR/dataset.npz``, ``DIR/frames.mkv`` and ``DIR/audio_features.npz`` (+ ``DIR/audio.wav``)
exactly as :mod:`twinflow.nerf.dataset` and :mod:`twinflow.nerf.audio_features` would.

The scene, in the normalised head space: a textured ellipsoid head whose front has two eyes that
close with a blink signal and a dark mouth that opens with the loudness of a synthetic speech
track (so the mouth is a function of the audio features), seen by a camera that turns a little
over time; a blue torso block below it; a gradient background plate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from twinflow.nerf.dataset import BACKGROUND, FACE, HEAD, TORSO

CENTER = np.array([0.0, 0.0, -0.1])
RADII = np.array([0.55, 0.75, 0.6])
BOX = np.array([0.7, 1.0, 0.85])
MOUTH = np.array([0.0, -0.38])  # x, y on the front of the head
EYES = [np.array([-0.2, 0.15]), np.array([0.2, 0.15])]
SAMPLE_RATE = 16000


def speech(seconds: float, seed: int) -> np.ndarray:
    """Syllable-like bursts of a harmonic tone with noise, silence between them."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = np.zeros(n)
    pos = 0.1
    while pos < seconds - 0.2:
        length = rng.uniform(0.12, 0.3)
        a, b = int(pos * SAMPLE_RATE), int(min(seconds, pos + length) * SAMPLE_RATE)
        env[a:b] = np.sin(np.linspace(0, np.pi, b - a)) * rng.uniform(0.5, 1.0)
        pos += length + rng.uniform(0.05, 0.25)
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.3 * env * (tone + 0.3 * rng.standard_normal(n))).astype(np.float32)


def mouth_open(samples: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Per-frame loudness 0..1 (RMS over the frame's 40 ms, normalised)."""
    edges = (np.arange(n_frames + 1) / fps * SAMPLE_RATE).astype(int)
    rms = np.array(
        [
            np.sqrt(np.mean(samples[a:b] ** 2)) if b > a else 0
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    return np.clip(rms / max(rms.max(), 1e-6), 0, 1)


def cameras(n: int, distance: float = 8.0) -> np.ndarray:
    """OpenGL camera-to-world matrices looking at the origin from +z, turning a little."""
    t = np.arange(n)
    yaw = np.radians(8) * np.sin(2 * np.pi * t / 47)
    pitch = np.radians(4) * np.sin(2 * np.pi * t / 31)
    out = np.zeros((n, 4, 4))
    for i in range(n):
        cy, sy, cp, sp = np.cos(yaw[i]), np.sin(yaw[i]), np.cos(pitch[i]), np.sin(pitch[i])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        r = ry @ rx
        out[i, :3, :3] = r
        out[i, :3, 3] = r @ np.array([0, 0, distance])
        out[i, 3, 3] = 1
    return out


def render(c2w: np.ndarray, k: np.ndarray, res: int, mouth: float, blink: float, bg: np.ndarray):
    """RGB ``(res, res, 3) uint8`` and labels of one frame (analytic ray casting)."""
    v, u = np.mgrid[0:res, 0:res] + 0.5
    d = np.stack([(u - k[2]) / k[0], -(v - k[3]) / k[1], -np.ones_like(u)], -1) @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    # ellipsoid intersection
    oc = (o - CENTER) / RADII
    dd = d / RADII
    a = (dd**2).sum(-1)
    b = 2 * (dd * oc).sum(-1)
    c = (oc**2).sum() - 1
    disc = b * b - 4 * a * c
    hit = disc > 0
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    p = o + d * t[..., None]
    rgb = bg.astype(np.float32).copy()
    labels = np.full((res, res), BACKGROUND, np.uint8)
    # torso: a block below the head, in the image (moves with the camera's turn)
    yaw_shift = c2w[0, 2] * res * 0.5
    torso = (v > 0.78 * res) & (np.abs(u - res / 2 + yaw_shift) < 0.32 * res)
    rgb[torso] = (40, 60, 170)
    labels[torso] = TORSO
    skin = np.stack(
        [
            200 + 25 * np.sin(9 * p[..., 1]) * np.cos(7 * p[..., 0]),
            150 + 20 * np.sin(11 * p[..., 0]),
            120 + 20 * np.cos(8 * p[..., 2] + 3 * p[..., 1]),
        ],
        -1,
    )
    front = p[..., 2] > 0.05
    hair = (p[..., 1] > 0.45) | (p[..., 2] < -0.25)
    skin[hair] = (70, 45, 30)
    mouth_h = 0.02 + 0.14 * mouth
    m = ((p[..., 0] - MOUTH[0]) / 0.2) ** 2 + ((p[..., 1] - MOUTH[1]) / mouth_h) ** 2 < 1
    skin[m & front] = (90, 20, 30)
    teeth = m & front & (p[..., 1] > MOUTH[1] + 0.5 * mouth_h)
    skin[teeth] = (235, 235, 225)
    for eye in EYES:
        e = ((p[..., 0] - eye[0]) / 0.09) ** 2 + (
            (p[..., 1] - eye[1]) / (0.06 * (1 - blink) + 0.005)
        ) ** 2 < 1
        skin[e & front] = (30, 30, 40)
    rgb[hit] = skin[hit]
    labels[hit] = np.where(front[hit] & ~hair[hit], FACE, HEAD)
    return rgb.round().clip(0, 255).astype(np.uint8), labels


def project(points: np.ndarray, c2w: np.ndarray, k: np.ndarray) -> np.ndarray:
    w2c = np.linalg.inv(c2w)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    return np.stack(
        [k[0] * pc[..., 0] / -pc[..., 2] + k[2], -k[1] * pc[..., 1] / -pc[..., 2] + k[3]], -1
    )


def make_synthetic(
    out: str | Path, res: int = 64, n_frames: int = 60, fps: float = 25.0, seed: int = 0
) -> dict[str, Path]:
    """Write a synthetic dataset to ``out``; returns the paths of its files."""
    from twinflow.media.audio import write_wav
    from twinflow.nerf.audio_features import compute, save_features
    from twinflow.perception.store import MaskWriter, save_npz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = speech(n_frames / fps + 0.02, seed)
    mouth = mouth_open(samples, n_frames, fps)
    rng = np.random.default_rng(seed + 1)
    blink = np.zeros(n_frames, np.float32)
    for s in rng.choice(n_frames, size=max(1, n_frames // 40), replace=False):
        blink[s : s + 3] = [0.6, 1.0, 0.5][: len(blink[s : s + 3])]
    c2w = cameras(n_frames)
    focal = res * 8.0 / 2.2  # the head (~1.5 units tall) fills about 70% of the image
    k = np.array([focal, focal, res / 2, res / 2 - 0.05 * res], np.float32)
    yy, xx = np.mgrid[0:res, 0:res] / res
    bg = (
        np.stack([150 + 60 * xx, 170 + 30 * yy, 190 - 50 * xx * yy], -1)
        .clip(0, 255)
        .astype(np.uint8)
    )
    frames_path = out / "frames.mkv"
    mouth_box = np.zeros((n_frames, 4), np.float32)
    lmk = np.zeros((n_frames, 40, 2), np.float32)
    region = np.zeros((res, res), bool)
    n_val = max(1, int(np.ceil(0.1 * n_frames)))
    with MaskWriter(frames_path, fps, kind="rgba") as writer:
        for i in range(n_frames):
            rgb, labels = render(c2w[i], k, res, mouth[i], blink[i], bg)
            writer.write(np.concatenate([rgb, labels[..., None]], -1))
            if i < n_frames - n_val:
                region |= labels >= HEAD
            ang = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            mh = 0.02 + 0.14 * mouth[i]
            pts3 = np.stack(
                [MOUTH[0] + 0.2 * np.cos(ang), MOUTH[1] + mh * np.sin(ang), np.full(40, 0.45)], -1
            )
            uv = project(pts3, c2w[i], k)
            lmk[i] = uv
            size = (uv.max(0) - uv.min(0)).max() * 1.7
            centre = (uv.max(0) + uv.min(0)) / 2
            mouth_box[i] = [*(centre - size / 2), *(centre + size / 2)]
    features, info = compute(samples, SAMPLE_RATE, fps)
    info["source"] = "synthetic"
    save_features(out / "audio_features.npz", features, info)
    write_wav(out / "audio.wav", samples, SAMPLE_RATE)
    import cv2

    region = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    save_npz(
        out / "dataset.npz",
        info={
            "twin": "synthetic",
            "fps": fps,
            "n_frames": n_frames,
            "labels": {"background": 0, "torso": 1, "head": 2, "face": 3},
            "mouth_open": mouth.tolist(),
        },
        c2w=c2w.astype(np.float32),
        intrinsics=k,
        box=BOX.astype(np.float32),
        center=np.zeros(3, np.float32),
        scale=np.float32(1.0),
        crop=np.array([0, 0, res, res], np.int32),
        res=np.int32(res),
        blink=blink,
        mouth_box=mouth_box,
        mouth_lmk=lmk,
        train=np.arange(n_frames - n_val, dtype=np.int32),
        val=np.arange(n_frames - n_val, n_frames, dtype=np.int32),
        bg=bg,
        bg_frame=bg,
        head_region=region,
    )
    return {
        "dataset": out / "dataset.npz",
        "frames": frames_path,
        "features": out / "audio_features.npz",
        "audio": out / "audio.wav",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.nerf.synthetic", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = make_synthetic(args.out, args.res, args.frames, seed=args.seed)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
