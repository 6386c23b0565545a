"""Stage ``mocap_traj_infer``: a world trajectory for a fitted track from its local body motion.

``python -m twinflow.mocap.traj.infer --twin ID --fit person0.npz --model model.pt --out
person0_world.npz [--device auto] [--seed 0]``

The fit's kinematic joints, taken relative to its root and in the root's own frame (the local
pose, :func:`twinflow.mocap.traj.data.fit_cond`), condition the diffusion model, which samples root
orientation and velocity per window of frames (deterministic DDIM from a seeded draw). Windows
overlap by one frame; each is turned about the vertical so its first frame continues the previous
window's heading; the velocities are integrated from the origin, the root starting at 0.53 x the
body's height above the ground (a standing pelvis).

``{person}_world.npz`` (world frame: z up, metres; AMASS convention):

====================  ===========  ===============================================
key                   shape        meaning
====================  ===========  ===============================================
root_orient_world     (T, 3)       axis-angle, SMPL body axes (x left, y up, z forward)
                                   to world
root_world            (T, 3)       root (pelvis) position
kin3d_world           (T, 17, 3)   kinematic joints in the world
trans, fps,           ...          backend parameters with the root replaced: smplx
mocap_framerate                    ``poses (T, 55, 3)`` / ``trans`` / ``betas`` / ``expression``;
                                   anny ``pose (T, 104, 3)`` / ``transl`` / ``phenotype``
info                  JSON         model meta, quality note, speeds
====================  ===========  ===============================================
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from twinflow.cli import stage_main
from twinflow.mocap.common import load_npz, npz_info, pick_device, save_npz, set_threads
from twinflow.mocap.presets import TrajConfig
from twinflow.mocap.traj.data import N_TARGET, fit_cond, from_6d, heading, rot_z
from twinflow.mocap.traj.model import Diffusion
from twinflow.mocap.traj.train import FORMAT, build_model
from twinflow.train import load_checkpoint

log = logging.getLogger("twinflow.mocap.traj.infer")
PELVIS_HEIGHT = 0.53  # of body height, standing


def load_model(path: str, device: torch.device):
    ckpt = load_checkpoint(path, expect={"format": FORMAT}, map_location=device)
    cfg = TrajConfig(**ckpt["meta"]["config"])
    model = build_model(cfg).to(device)
    model.load_state_dict(ckpt["modules"]["denoiser"])
    model.eval()
    return model, cfg, ckpt


def predict(
    model, cfg: TrajConfig, stats: dict, cond: np.ndarray, device, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """World root rotations ``(T, 3, 3)`` and velocities ``(T, 3)`` (m/s) for ``cond (T, 51)``."""
    n_frames, n = len(cond), cfg.window
    starts = list(range(0, max(n_frames - 1, 1), n - 1))
    windows = []
    for s in starts:
        w = cond[s : s + n]
        if len(w) < n:
            w = np.concatenate([w, np.repeat(w[-1:], n - len(w), 0)])
        windows.append(w)
    c = torch.as_tensor(np.stack(windows), dtype=torch.float32, device=device)
    cm, cs, xm, xs = (
        torch.as_tensor(stats[k], dtype=torch.float32, device=device)
        for k in ("cond_mean", "cond_std", "x_mean", "x_std")
    )
    gen = torch.Generator().manual_seed(seed)
    diffusion = Diffusion(cfg.diffusion_steps, cfg.predict, device)
    x = diffusion.sample(model, (c - cm) / cs, N_TARGET, cfg.sample_steps, gen) * xs + xm
    x = x.cpu().numpy().astype(np.float64)
    R = np.zeros((n_frames, 3, 3))
    vel = np.zeros((n_frames, 3))
    for k, s in enumerate(starts):
        Rk = from_6d(x[k, :, :6])
        vk = x[k, :, 6:]
        if k == 0:
            A = np.eye(3)
            first = 0
        else:
            A = rot_z(heading(R[s : s + 1])[0] - heading(Rk[:1])[0])
            first = 1
        for j in range(first, n):
            if s + j >= n_frames:
                break
            R[s + j] = A @ Rk[j]
            vel[s + j] = A @ vk[j]
    return R, vel


def world_arrays(fit: dict, R: np.ndarray, vel: np.ndarray) -> dict[str, np.ndarray]:
    fps = float(fit["fps"])
    height = float(fit["rest_height"]) if "rest_height" in fit else 1.7
    root = np.zeros((len(R), 3))
    root[0, 2] = PELVIS_HEIGHT * height
    root[1:] = root[0] + np.cumsum(vel[:-1], axis=0) / fps
    to_smpl = np.asarray(fit["to_smpl_frame"], np.float64)
    R_fit = Rotation.from_rotvec(fit["global_orient"]).as_matrix()
    kin = fit["kin3d"].astype(np.float64)
    local = np.einsum("tji,tkj->tki", R_fit, kin - kin[:, :1]) @ to_smpl.T
    kin_world = root[:, None] + np.einsum("tij,tkj->tki", R, local)
    rest_root = kin[0, 0] - fit["trans"][0]  # root joint offset from the translation (SMPL-X)
    out = {
        "root_orient_world": Rotation.from_matrix(R).as_rotvec().astype(np.float32),
        "root_world": root.astype(np.float32),
        "kin3d_world": kin_world.astype(np.float32),
        "kin_names": fit["kin_names"],
        "backend": fit["backend"],
        "fps": np.float32(fps),
        "mocap_framerate": np.float32(fps),
        "gender": fit.get("gender", np.array("neutral")),
    }
    backend = str(fit["backend"])
    if backend == "smplx":
        poses = fit["poses"].copy()
        poses[:, 0] = out["root_orient_world"]
        out.update(
            poses=poses,
            trans=(root - rest_root).astype(np.float32),
            betas=fit["betas"],
            expression=fit["expression"],
        )
    else:
        pose = fit["pose"].copy()
        pose[:, 0] = Rotation.from_matrix(R @ to_smpl).as_rotvec()  # anny rest frame -> world
        out.update(
            pose=pose.astype(np.float32),
            transl=(root - rest_root).astype(np.float32),
            trans=(root - rest_root).astype(np.float32),
            phenotype=fit["phenotype"],
            facial_actions=fit["facial_actions"],
        )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.traj.infer", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--fit", required=True, help="{person}.npz of twinflow.mocap.fit")
    p.add_argument("--model", required=True, help="model.pt of twinflow.mocap.traj.train")
    p.add_argument("--out", required=True, help="out: {person}_world.npz")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    device = pick_device(args.device)
    model, cfg, ckpt = load_model(args.model, device)
    fit = load_npz(args.fit)
    fps = float(fit["fps"])
    cond = fit_cond(fit["kin3d"], fit["global_orient"], fit["to_smpl_frame"], fit["rest_kin_smpl"])
    # the model works at its training frame rate: resample the conditioning and back
    n = len(cond)
    t_model = np.arange(0, n / fps, 1 / cfg.fps)
    idx = np.minimum(np.round(t_model * fps).astype(int), n - 1)
    R_m, vel_m = predict(model, cfg, ckpt["extra"], cond[idx], device, args.seed)
    back = np.minimum(np.round(np.arange(n) / fps * cfg.fps).astype(int), len(idx) - 1)
    arrays = world_arrays(fit, R_m[back], vel_m[back])
    cam_speed = np.linalg.norm(np.diff(fit["trans"], axis=0), axis=1) * fps
    world_speed = np.linalg.norm(vel_m[back][:, :2], axis=1)
    info = {
        "twin": args.twin,
        "fit": args.fit,
        "model": args.model,
        "model_meta": ckpt["meta"],
        "quality_note": ckpt["meta"].get("quality_note"),
        "fit_info": {k: npz_info(fit).get(k) for k in ("backend", "preset", "person")},
        "mean_speed_world_mps": float(world_speed.mean()),
        "mean_speed_camera_fit_mps": float(cam_speed.mean()) if len(cam_speed) else None,
        "path_length_m": float(
            np.linalg.norm(np.diff(arrays["root_world"][:, :2], axis=0), axis=1).sum()
        ),
    }
    save_npz(args.out, arrays, info)
    log.info(
        "%s: %d frames, path %.2f m, mean speed %.2f m/s (%s)",
        args.out,
        n,
        info["path_length_m"],
        info["mean_speed_world_mps"],
        info["quality_note"],
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
