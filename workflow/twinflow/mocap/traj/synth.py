"""Stage ``mocap_traj_data``: a small synthetic motion set in AMASS layout (no dataset needed).

``python -m twinflow.mocap.traj.synth --out DIR [--sequences 48] [--seconds 8] [--fps 30]
[--seed 0]``

Procedural people walking and turning: a root path of straight and curved segments at speeds
from standing to a brisk walk (0-1.6 m/s), heading along the path, and a local body pose driven
by a gait phase whose rate and amplitude follow the speed (hip and knee flexion, ankle roll, arm
swing against the legs, a counter-rotating spine, pelvis bob and sway, a lean into turns), plus
standing periods with a slight sway. Files: ``seq_000.npz ...`` with ``poses (T, 156)`` (SMPL-H
joint order; hands at rest), ``trans (T, 3)`` (z up), ``mocap_framerate``, ``betas (16,)``,
``gender`` -- the AMASS layout. It exists so that tests and the demo can train and run the real
trajectory code end to end; nothing is claimed about the model's quality on real motion.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from twinflow.atomic import atomic_path, write_json
from twinflow.cli import stage_main
from twinflow.mocap.traj.data import BODY_TO_WORLD, rot_z

log = logging.getLogger("twinflow.mocap.traj.synth")


def _segments(rng: np.random.Generator, seconds: float):
    """(duration, speed, turn rate) segments covering ``seconds``."""
    out, total = [], 0.0
    while total < seconds:
        dur = float(rng.uniform(1.5, 3.5))
        speed = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.5, 1.6))
        turn = float(rng.choice([0.0, rng.uniform(-0.9, 0.9)], p=[0.4, 0.6]))
        out.append((dur, speed, turn))
        total += dur
    return out


def sequence(rng: np.random.Generator, seconds: float, fps: float) -> dict[str, np.ndarray]:
    """One synthetic sequence in AMASS layout."""
    n = int(round(seconds * fps))
    dt = 1.0 / fps
    segs = _segments(rng, seconds)
    t_edges = np.cumsum([0.0] + [s[0] for s in segs])
    t = np.arange(n) * dt
    k = np.clip(np.searchsorted(t_edges, t, side="right") - 1, 0, len(segs) - 1)
    speed = np.array([segs[i][1] for i in k])
    turn = np.array([segs[i][2] for i in k])
    # smooth transitions (about 0.5 s)
    kern = np.hanning(max(3, int(0.5 * fps)))
    kern /= kern.sum()
    speed = np.convolve(np.pad(speed, len(kern), mode="edge"), kern, "same")[len(kern) : -len(kern)]
    turn = np.convolve(np.pad(turn, len(kern), mode="edge"), kern, "same")[len(kern) : -len(kern)]
    turn = turn * np.clip(speed / 0.5, 0, 1)  # people turn while walking here
    yaw = float(rng.uniform(-np.pi, np.pi)) + np.cumsum(turn) * dt
    vel = speed[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], 1)
    xy = np.cumsum(vel, axis=0) * dt + rng.uniform(-2, 2, 2)
    amp = np.clip(speed / 1.4, 0, 1.2)
    freq = 0.8 + 0.45 * speed  # strides per second
    phase = 2 * np.pi * np.cumsum(freq) * dt + rng.uniform(0, 2 * np.pi)
    s, c = np.sin(phase), np.cos(phase)
    sway = 0.03 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))

    body = np.zeros((n, 21, 3))  # joints 1..21 (index j-1)

    def put(j, axis, value):
        body[:, j - 1, axis] += value

    put(1, 0, -0.45 * amp * s - 0.05)  # left hip: flexion is -x
    put(2, 0, 0.45 * amp * s - 0.05)
    put(4, 0, 0.15 + 0.7 * amp * np.clip(np.sin(phase + np.pi / 2), 0, None))  # knees: +x
    put(5, 0, 0.15 + 0.7 * amp * np.clip(np.sin(phase - np.pi / 2), 0, None))
    put(7, 0, 0.15 * amp * c)
    put(8, 0, -0.15 * amp * c)
    for j, w in ((3, 0.4), (6, 0.3), (9, 0.3)):
        put(j, 1, -0.12 * amp * s * w)  # spine counter-rotation
        put(j, 0, 0.04 * amp + 0.02)  # slight forward lean when walking
    put(12, 0, -0.05 * amp)
    put(16, 2, -1.2)  # arms down from the T-pose
    put(17, 2, 1.2)
    put(16, 0, 0.35 * amp * s)  # arm swing against the legs
    put(17, 0, -0.35 * amp * s)
    put(18, 1, -0.25 - 0.2 * amp)  # elbows slightly bent
    put(19, 1, 0.25 + 0.2 * amp)
    # root: heading, bob, sway, lean into turns
    lean = -0.25 * turn * speed
    local = Rotation.from_euler(
        "yzx",
        np.stack([0.08 * amp * s, lean + 0.03 * amp * c + sway, 0.03 * amp * np.abs(c)], 1),
    )
    R = rot_z(yaw) @ BODY_TO_WORLD @ local.as_matrix()
    root = Rotation.from_matrix(R).as_rotvec()
    z = 0.92 + 0.02 * amp * np.cos(2 * phase) - 0.01 * amp
    poses = np.zeros((n, 156))
    poses[:, :3] = root
    poses[:, 3:66] = body.reshape(n, -1)
    trans = np.concatenate([xy, z[:, None]], axis=1)
    return {
        "poses": poses.astype(np.float32),
        "trans": trans.astype(np.float32),
        "mocap_framerate": np.float32(fps),
        "betas": np.zeros(16, np.float32),
        "gender": np.array("neutral"),
    }


def write_dataset(
    out: str | Path, sequences: int, seconds: float, fps: float = 30.0, seed: int = 0
) -> Path:
    """Write ``sequences`` files into the folder ``out`` (plus ``dataset.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(sequences):
        with atomic_path(out / f"seq_{i:03d}.npz", suffix=".npz") as tmp:
            np.savez(tmp, **sequence(rng, seconds, fps))
    write_json(
        out / "dataset.json",
        {
            "kind": "synthetic",
            "generator": "twinflow.mocap.traj.synth",
            "sequences": sequences,
            "seconds": seconds,
            "fps": fps,
            "seed": seed,
            "note": "procedural walking/turning motion; no claim about real motion",
        },
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.traj.synth", description=__doc__)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sequences", type=int, default=48)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> None:
    out = write_dataset(args.out, args.sequences, args.seconds, args.fps, args.seed)
    log.info("%d synthetic sequences of %.1f s in %s", args.sequences, args.seconds, out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
