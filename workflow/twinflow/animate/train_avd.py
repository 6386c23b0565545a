"""Train the AVD (animation via disentanglement) network of a trained MRAA model.

``python -m twinflow.animate.train_avd --twin ID --model model.pt --dataset DIR
[--set avd_field=value ...] [--steps N] [--pretrained avd.pt [--finetune]] [--max-minutes M]
--out avd.pt``

The main model stays frozen. As the reference's ``train_avd.py``: each step takes pairs of
frames of one video (sampled and flipped as the main training's pairs), identity = the first's
regions, pose = the second's regions randomly rescaled (``avd_random_scale``), target = the
second's regions; loss ``avd_lambda_shift * |shift error| + avd_lambda_affine * |affine error|``
(L1). Adam at ``avd_lr`` (betas 0.5, 0.999), /10 at the milestones; the reference's epoch
schedule (``avd_epochs`` x ``avd_num_repeats``) unless ``--steps`` or ``avd_steps`` is given.
Unlike the reference the regions of every training frame, and of its mirror image when
``hflip`` is on, are computed once up front (the frozen region predictor gives the same
numbers); the colour jitter, which would change them slightly, is left out. Resumable like the
main training.

``--pretrained`` (a converted reference AVD network: ``python -m twinflow.convert mraa ...
--avd``) is checked against the model's regions and used as it is, or with ``--finetune``
trained further.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from twinflow.animate.avd import AVDNetwork, random_scale
from twinflow.animate.data import load_clips
from twinflow.animate.model import load_avd, load_model, preset_meta, to_tensor
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.animate.schedule import make_schedule
from twinflow.animate.train import with_overrides
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.train import LoopConfig, run_training, save_checkpoint, seed_everything

log = logging.getLogger("twinflow.animate.train_avd")


@torch.no_grad()
def clip_regions(
    model, frames: np.ndarray, device, batch: int = 64, mirror: bool = False
) -> dict[str, torch.Tensor]:
    """Region shift ``(T, K, 2)`` and affine ``(T, K, 2, 2)`` of every frame of a clip (of its
    mirror image with ``mirror``)."""
    shifts, affines = [], []
    for start in range(0, len(frames), batch):
        chunk = np.asarray(frames[start : start + batch])
        if mirror:
            chunk = chunk[:, :, ::-1]
        regions = model.region_predictor(to_tensor(chunk, device))
        shifts.append(regions["shift"])
        affines.append(regions["affine"])
    return {"shift": torch.cat(shifts), "affine": torch.cat(affines)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.train_avd", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override avd_* fields")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's schedule")
    p.add_argument("--pretrained", default=None, help="a twinflow avd.pt to start from")
    p.add_argument("--finetune", action="store_true", help="train from --pretrained")
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
    cfg = with_overrides(model.cfg, args.set)
    meta = preset_meta(cfg, twin=args.twin, model=str(args.model))
    if args.pretrained:
        avd = load_avd(args.pretrained, cfg, device)
        meta["pretrained"] = str(args.pretrained)
        if not args.finetune:
            save_checkpoint(args.out, {"modules": {"avd": avd.state_dict()}, "meta": meta})
            log.info("using the pretrained AVD network %s untrained", args.pretrained)
            return
    clips = load_clips(args.dataset, "train")
    if not clips:
        raise InputError("the animate dataset has no training frames", path=args.dataset)
    # Per clip: its frames' regions, and (hflip) those of the mirrored frames.
    regions = [[clip_regions(model, c.frames, device)] for c in clips]
    if cfg.hflip:
        for r, c in zip(regions, clips, strict=True):
            r.append(clip_regions(model, c.frames, device, mirror=True))
    log.info("regions of %d training frames computed", sum(len(r[0]["shift"]) for r in regions))
    plan = make_schedule(
        steps=args.steps or cfg.avd_steps,
        epochs=cfg.avd_epochs,
        num_repeats=cfg.avd_num_repeats,
        milestones=cfg.avd_epoch_milestones,
        batch_size=cfg.avd_batch_size,
        num_videos=len(clips),
    )
    log.info("AVD: batch %d, %s", cfg.avd_batch_size, plan.describe())

    seed_everything(args.seed)
    if not args.pretrained:
        avd = AVDNetwork(cfg).to(device)
    optimizer = torch.optim.Adam(avd.parameters(), lr=cfg.avd_lr, betas=(0.5, 0.999))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, plan.drops, gamma=0.1)

    def sample() -> tuple[dict, dict]:
        """Pairs as the main training's (time flip is a swap of two random frames: the same
        distribution; mirrored with probability 0.25 as the reference's flips)."""
        ident, pose = {"shift": [], "affine": []}, {"shift": [], "affine": []}
        for _ in range(cfg.avd_batch_size):
            clip = regions[np.random.randint(len(regions))]
            i, j = np.sort(np.random.randint(len(clip[0]["shift"]), size=2))
            if cfg.time_flip and np.random.rand() < 0.5:
                i, j = j, i
            elif cfg.hflip and np.random.rand() < 0.5:
                clip = clip[1:]
            r = clip[0]
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
            steps=plan.steps,
            save_every=args.save_every,
            log_every=args.log_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc=f"animate avd {args.twin}",
        ),
        args.out,
        meta,
        schedulers={"avd": scheduler},
    )
    log.info("AVD trained %d steps in %.1f s", result.steps_done, result.seconds)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
