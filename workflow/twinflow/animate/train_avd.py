"""Train the AVD (animation via disentanglement) network of a trained MRAA model.

``python -m twinflow.animate.train_avd --twin ID --model model.pt --dataset DIR
[--set avd_field=value ...] [--steps N] [--max-minutes M] --out avd.pt``

The main model stays frozen. The region parameters of every training frame are computed once;
each step takes pairs of frames of one video: identity = the first's regions, pose = the second's
regions randomly rescaled (``avd_random_scale``), target = the second's regions; loss
``avd_lambda_shift * |shift error| + avd_lambda_affine * |affine error|`` (L1). Adam at
``avd_lr`` (betas 0.5, 0.999), /10 at ``avd_lr_milestones``. Resumable like the main training.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from twinflow.animate.avd import AVDNetwork, random_scale
from twinflow.animate.data import load_clips
from twinflow.animate.model import load_model, preset_meta, to_tensor
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.animate.train import milestones
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.presets import parse_overrides, resolve_preset
from twinflow.train import LoopConfig, run_training, seed_everything

log = logging.getLogger("twinflow.animate.train_avd")


@torch.no_grad()
def clip_regions(model, frames: np.ndarray, device, batch: int = 64) -> dict[str, torch.Tensor]:
    """Region shift ``(T, K, 2)`` and affine ``(T, K, 2, 2)`` of every frame of a clip."""
    shifts, affines = [], []
    for start in range(0, len(frames), batch):
        regions = model.region_predictor(
            to_tensor(np.asarray(frames[start : start + batch]), device)
        )
        shifts.append(regions["shift"])
        affines.append(regions["affine"])
    return {"shift": torch.cat(shifts), "affine": torch.cat(affines)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.train_avd", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override avd_* fields")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's avd_steps")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    add_runtime_arguments(p)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    model = load_model(args.model, device)
    model.requires_grad_(False)
    try:
        cfg = resolve_preset({"model": model.cfg}, "model", parse_overrides(args.set))
    except ValueError as err:
        raise InputError(str(err)) from err
    steps = args.steps or cfg.avd_steps
    clips = load_clips(args.dataset, "train")
    if not clips:
        raise InputError("the animate dataset has no training frames", path=args.dataset)
    regions = [clip_regions(model, c.frames, device) for c in clips]
    log.info("regions of %d training frames computed", sum(len(r["shift"]) for r in regions))

    seed_everything(args.seed)
    avd = AVDNetwork(cfg).to(device)
    optimizer = torch.optim.Adam(avd.parameters(), lr=cfg.avd_lr, betas=(0.5, 0.999))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones(cfg.avd_lr_milestones, steps), gamma=0.1
    )

    def sample() -> tuple[dict, dict]:
        ident, pose = {"shift": [], "affine": []}, {"shift": [], "affine": []}
        for _ in range(cfg.avd_batch_size):
            r = regions[np.random.randint(len(regions))]
            i, j = np.random.randint(len(r["shift"]), size=2)
            for key in ("shift", "affine"):
                ident[key].append(r[key][i])
                pose[key].append(r[key][j])
        return {k: torch.stack(v) for k, v in ident.items()}, {
            k: torch.stack(v) for k, v in pose.items()
        }

    def step(i: int) -> dict[str, float]:
        ident, target = sample()
        rec = avd(ident, random_scale(target, cfg.avd_random_scale))
        shift = cfg.avd_lambda_shift * (rec["shift"] - target["shift"]).abs().mean()
        affine = cfg.avd_lambda_affine * (rec["affine"] - target["affine"]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        (shift + affine).backward()
        optimizer.step()
        scheduler.step()
        return {"rec_shift": float(shift.detach()), "rec_affine": float(affine.detach())}

    result = run_training(
        {"avd": avd},
        {"avd": optimizer},
        step,
        LoopConfig(
            steps=steps,
            save_every=args.save_every,
            log_every=args.log_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc=f"animate avd {args.twin}",
        ),
        args.out,
        preset_meta(cfg, twin=args.twin, model=str(args.model)),
        schedulers={"avd": scheduler},
    )
    log.info("AVD trained %d steps in %.1f s", result.steps_done, result.seconds)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
