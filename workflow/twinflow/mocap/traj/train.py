"""Stage ``mocap_traj_train``: train the trajectory diffusion model on an AMASS-layout dataset.

``python -m twinflow.mocap.traj.train --dataset DIR_OR_NPZ --out model.pt [--preset tiny|paper]
[--set field=value ...] [--device auto] [--threads N]``

Random windows of ``window`` frames (resampled to ``fps``) are drawn from the sequences; the loss
is the DDPM objective (:class:`twinflow.mocap.traj.model.Diffusion`). Training runs through
:func:`twinflow.train.run_training`: seeded, with a progress bar, resumable from
``model.pt.resume.pt`` when killed, and the final checkpoint written atomically. The checkpoint's
``extra`` holds the feature normalisation; its ``meta`` the preset and whether the data were the
synthetic set (then nothing is claimed about real motion).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from twinflow.atomic import read_json
from twinflow.cli import stage_main
from twinflow.mocap.common import pick_device, set_threads
from twinflow.mocap.presets import TRAJ_PRESETS, TrajConfig
from twinflow.mocap.traj.data import N_COND, N_TARGET, MotionSet, dataset_files
from twinflow.mocap.traj.model import Diffusion, TrajDenoiser
from twinflow.presets import parse_overrides, resolve_preset
from twinflow.train import LoopConfig, TrainResult, run_training, seed_everything

log = logging.getLogger("twinflow.mocap.traj.train")
FORMAT = "twinflow-mocap-traj-v1"


def build_model(cfg: TrajConfig) -> TrajDenoiser:
    return TrajDenoiser(N_TARGET, N_COND, cfg.d_model, cfg.layers, cfg.heads, cfg.dropout)


def normalisation(data: MotionSet, cfg: TrajConfig, rng: np.random.Generator) -> dict[str, list]:
    cond = np.concatenate(data.cond)
    targets = np.concatenate([data.window(rng, cfg.window)[1] for _ in range(256)])
    return {
        "cond_mean": cond.mean(0).tolist(),
        "cond_std": np.maximum(cond.std(0), cfg.cond_std_floor).tolist(),
        "x_mean": targets.mean(0).tolist(),
        "x_std": np.maximum(targets.std(0), 1e-3).tolist(),
    }


def perturb(cond: np.ndarray, noise: float, rng) -> np.ndarray:
    """``cond (B, N, 51)`` with each window's joints moved by ``N(0, noise)`` and each frame's by
    ``N(0, noise / 4)`` (the root stays at the origin): other bodies' proportions and fitting
    noise, seen in training."""
    if noise <= 0:
        return cond
    b, n, c = cond.shape
    out = cond + rng.normal(0, noise, (b, 1, c)) + rng.normal(0, noise / 4, (b, n, c))
    out[..., :3] = 0.0
    return out


def train(
    dataset: str | Path,
    out: str | Path,
    cfg: TrajConfig,
    device: torch.device | str = "cpu",
    preset: str = "tiny",
) -> TrainResult:
    device = torch.device(device)
    files = dataset_files(dataset)
    data = MotionSet(files, cfg.fps)
    stats = normalisation(data, cfg, np.random.default_rng(cfg.seed))
    cm, cs = (torch.tensor(stats[k], device=device) for k in ("cond_mean", "cond_std"))
    xm, xs = (torch.tensor(stats[k], device=device) for k in ("x_mean", "x_std"))
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    diffusion = Diffusion(cfg.diffusion_steps, cfg.predict, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    info_file = Path(dataset) / "dataset.json"
    kind = read_json(info_file).get("kind", "user") if info_file.exists() else "user"
    log.info(
        "%d sequences, %d frames at %g fps (%s data); model %d parameters",
        len(data.cond),
        data.frames,
        cfg.fps,
        kind,
        sum(p.numel() for p in model.parameters()),
    )

    def step(i: int) -> dict[str, float]:
        # numpy's global generator: seeded and saved with resumable states by run_training
        batch = [data.window(np.random, cfg.window) for _ in range(cfg.batch)]
        cond = torch.as_tensor(
            perturb(np.stack([b[0] for b in batch]), cfg.cond_noise, np.random),
            dtype=torch.float32,
            device=device,
        )
        x0 = torch.as_tensor(np.stack([b[1] for b in batch]), dtype=torch.float32, device=device)
        loss = diffusion.loss(model, (x0 - xm) / xs, (cond - cm) / cs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": float(loss.detach())}

    meta = {
        "format": FORMAT,
        "preset": preset,
        "config": asdict(cfg),
        "n_cond": N_COND,
        "n_target": N_TARGET,
        "dataset": str(dataset),
        "dataset_kind": kind,
        "sequences": len(data.cond),
        "frames": data.frames,
        "quality_note": (
            "trained on the procedural synthetic set: exercises the pipeline; no claim about "
            "real motion"
            if kind == "synthetic"
            else "trained on user-supplied motion data"
        ),
    }
    loop = LoopConfig(
        steps=cfg.steps,
        save_every=cfg.save_every,
        log_every=max(1, min(50, cfg.steps // 10)),
        seed=cfg.seed,
        desc="traj train",
    )
    return run_training(
        {"denoiser": model}, {"adamw": opt}, step, loop, out, meta, extra_state=stats
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.traj.train", description=__doc__)
    p.add_argument("--dataset", required=True, help="AMASS-layout .npz file or folder")
    p.add_argument("--out", required=True, help="out: model.pt")
    p.add_argument("--preset", default="tiny", choices=sorted(TRAJ_PRESETS))
    p.add_argument("--set", action="append", default=[], help="preset override field=value")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    cfg = resolve_preset(TRAJ_PRESETS, args.preset, parse_overrides(args.set))
    result = train(args.dataset, args.out, cfg, pick_device(args.device), args.preset)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    log.info(
        "%s: %d steps in %.1f s, loss %.4f -> %.4f",
        args.out,
        result.steps_done,
        result.seconds,
        first,
        last,
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
