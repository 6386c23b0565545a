"""Train the MRAA model (region predictor, background motion, generator) on a twin's dataset.

``python -m twinflow.animate.train --twin ID --dataset results/ID/animate/dataset
--preset tiny [--set field=value ...] [--steps N] [--max-minutes M] [--save-every N]
[--threads T] --out results/ID/animate/model.pt``

Each step reconstructs a batch of driving frames from source frames of the same videos and
minimises the reconstruction loss plus the equivariance losses
(:mod:`twinflow.animate.losses`). Adam (betas 0.5, 0.999) at the preset's ``lr``, divided by 10
at ``lr_milestones``. Resumable: a state saved every ``--save-every`` steps next to the output
(``model.pt.resume.pt``) is picked up when the job is rerun after a kill.
"""

from __future__ import annotations

import argparse
import logging

import torch

from twinflow.animate.data import PairSampler, dataset_size, load_clips
from twinflow.animate.losses import ReconstructionLoss, equivariance_losses
from twinflow.animate.model import MRAA, preset_meta
from twinflow.animate.presets import AnimateConfig, get_preset
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.presets import parse_overrides
from twinflow.train import LoopConfig, run_training, seed_everything

log = logging.getLogger("twinflow.animate.train")


def add_preset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", help="tiny, vox256, ted384 (or paper = vox256)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a preset field")


def preset_from_args(args: argparse.Namespace) -> AnimateConfig:
    try:
        return get_preset(args.preset, parse_overrides(args.set))
    except ValueError as err:
        raise InputError(str(err)) from err


def milestones(fractions, steps: int) -> list[int]:
    return sorted({max(1, int(round(f * steps))) for f in fractions})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.train", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True, help="dataset folder (twinflow.animate.dataset)")
    add_preset_arguments(p)
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    add_runtime_arguments(p)
    p.add_argument("--vgg", default=None, help="VGG-19 state dict (default: the registry's)")
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    return p


def train(args: argparse.Namespace) -> None:
    device = setup(args)
    cfg = preset_from_args(args)
    if dataset_size(args.dataset) != cfg.size:
        raise InputError(
            f"dataset frames are {dataset_size(args.dataset)} px but preset {cfg.name} wants "
            f"{cfg.size} px; rebuild the dataset",
            path=args.dataset,
        )
    steps = args.steps or cfg.steps
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    model = MRAA(cfg).to(device)
    vgg = None
    if cfg.recon_loss == "vgg19":
        from twinflow.animate.vgg import load_vgg19

        vgg = load_vgg19(args.vgg, args.registry).to(device)
    recon = ReconstructionLoss(cfg, vgg).to(device)
    clips = load_clips(args.dataset, "train")
    sampler = PairSampler(
        clips, cfg.batch_size, hflip=cfg.hflip, time_flip=cfg.time_flip, jitter=cfg.jitter
    )
    log.info(
        "preset %s, %d regions, %d px, %d training videos (%d frames), %d steps, batch %d",
        cfg.name,
        cfg.num_regions,
        cfg.size,
        len(clips),
        sum(len(c) for c in clips),
        steps,
        cfg.batch_size,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones(cfg.lr_milestones, steps), gamma=0.1
    )

    def step(i: int) -> dict[str, float]:
        source, driving = sampler.sample(device)
        out = model(source, driving)
        losses = recon(out["prediction"], driving)
        losses.update(
            equivariance_losses(model.region_predictor, driving, out["driving_regions"], cfg)
        )
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["l1_px"] = float((out["prediction"] - driving).abs().mean().detach())
        return values

    result = run_training(
        model.modules_dict(),
        {"main": optimizer},
        step,
        LoopConfig(
            steps=steps,
            save_every=args.save_every,
            log_every=args.log_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc=f"animate {args.twin}",
        ),
        args.out,
        preset_meta(cfg, twin=args.twin, dataset=str(args.dataset)),
        schedulers={"main": scheduler},
    )
    log.info(
        "trained %d steps (resumed from %d) in %.1f s%s",
        result.steps_done,
        result.resumed_from,
        result.seconds,
        ", stopped by the time budget" if result.stopped_early else "",
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, train))
