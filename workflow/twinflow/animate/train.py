"""Train the MRAA model (region predictor, background motion, generator) on a twin's dataset.

``python -m twinflow.animate.train --twin ID --dataset results/ID/animate/dataset
--preset tiny [--set field=value ...] [--steps N] [--pretrained model.pt [--finetune]]
[--max-minutes M] [--save-every N] [--threads T] --out results/ID/animate/model.pt``

Each step reconstructs a batch of driving frames from source frames of the same videos
(:class:`twinflow.animate.data.PairSampler`, augmented as the reference:
:mod:`twinflow.train.augment`) and minimises the reconstruction loss plus the equivariance
losses (:mod:`twinflow.animate.losses`). Adam (betas 0.5, 0.999) at the preset's ``lr``, divided
by 10 at the milestones; the length is the reference's epoch schedule unless ``--steps`` (or the
preset's ``steps``) is given (:mod:`twinflow.animate.schedule`). Resumable: a state saved every
``--save-every`` steps next to the output (``model.pt.resume.pt``) is picked up when the job is
rerun after a kill.

``--pretrained`` (a converted reference checkpoint, ``python -m twinflow.convert mraa``, or
another twin's model) is used as it is: checked against the dataset's frame size and written to
``--out``, no training. With ``--finetune`` training starts from its weights, with its preset
(``--set`` still applies; ``--preset`` is ignored).
"""

from __future__ import annotations

import argparse
import logging

import torch

from twinflow.animate.data import PairSampler, dataset_size, load_clips
from twinflow.animate.losses import ReconstructionLoss, equivariance_losses
from twinflow.animate.model import MRAA, load_model, preset_meta
from twinflow.animate.presets import AnimateConfig, check_config, get_preset
from twinflow.animate.runtime import add_runtime_arguments, setup
from twinflow.animate.schedule import make_schedule
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.presets import parse_overrides, resolve_preset
from twinflow.train import LoopConfig, run_training, save_checkpoint, seed_everything
from twinflow.train.augment import PairAugmentation
from twinflow.train.checkpoint import CheckpointError

log = logging.getLogger("twinflow.animate.train")


def add_preset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", help="tiny, vox256, ted384 (or paper = vox256)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a preset field")


def preset_from_args(args: argparse.Namespace) -> AnimateConfig:
    try:
        return get_preset(args.preset, parse_overrides(args.set))
    except ValueError as err:
        raise InputError(str(err)) from err


def with_overrides(cfg: AnimateConfig, items: list[str] | None) -> AnimateConfig:
    """``cfg`` (e.g. a checkpoint's) with ``--set`` overrides applied."""
    try:
        return check_config(resolve_preset({cfg.name: cfg}, cfg.name, parse_overrides(items)))
    except ValueError as err:
        raise InputError(str(err)) from err


def check_size(cfg: AnimateConfig, dataset, what: str, path) -> None:
    if dataset_size(dataset) != cfg.size:
        raise InputError(
            f"dataset frames are {dataset_size(dataset)} px but {what} {cfg.name} works at "
            f"{cfg.size} px; set animate: preset to one of {cfg.size} px and rebuild the dataset",
            path=path,
        )


def load_pretrained(path, device="cpu") -> MRAA:
    """``load_model``, with a hint when ``path`` is a reference checkpoint not yet converted."""
    try:
        return load_model(path, device)
    except CheckpointError as err:
        if "not a twinflow checkpoint" in err.message:
            err.message += (
                "; an MRAA checkpoint of the reference converts with "
                "python -m twinflow.convert mraa CPK --config NAME --out model.pt"
            )
        raise


def use_pretrained(args: argparse.Namespace) -> None:
    """``--pretrained`` without ``--finetune``: check it and copy it to ``--out``."""
    model = load_pretrained(args.pretrained)
    check_size(model.cfg, args.dataset, "pretrained model", args.pretrained)
    meta = preset_meta(model.cfg, twin=args.twin, dataset=str(args.dataset))
    meta["pretrained"] = str(args.pretrained)
    modules = {n: m.state_dict() for n, m in model.modules_dict().items()}
    save_checkpoint(args.out, {"modules": modules, "meta": meta, "steps": 0})
    log.info("using the pretrained model %s (%s) untrained", args.pretrained, model.cfg.name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.train", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True, help="dataset folder (twinflow.animate.dataset)")
    add_preset_arguments(p)
    p.add_argument("--steps", type=int, default=None, help="default: the preset's schedule")
    p.add_argument("--pretrained", default=None, help="a twinflow animate model.pt to start from")
    p.add_argument("--finetune", action="store_true", help="train from --pretrained")
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
    if args.pretrained and not args.finetune:
        use_pretrained(args)
        return
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    if args.pretrained:
        model = load_pretrained(args.pretrained, device)
        cfg = with_overrides(model.cfg, args.set)
        if cfg != model.cfg:
            fresh = MRAA(cfg).to(device)
            fresh.load_state_dict(model.state_dict())  # a changed architecture fails here
            model = fresh
        check_size(cfg, args.dataset, "pretrained model", args.pretrained)
        log.info("fine-tuning %s (%s)", args.pretrained, cfg.name)
    else:
        cfg = preset_from_args(args)
        check_size(cfg, args.dataset, "preset", args.dataset)
        model = MRAA(cfg).to(device)
    vgg = None
    if cfg.recon_loss == "vgg19":
        from twinflow.train.vgg import load_vgg19

        vgg = load_vgg19(args.vgg, args.registry).to(device)
    recon = ReconstructionLoss(cfg, vgg).to(device)
    clips = load_clips(args.dataset, "train")
    if not clips:
        raise InputError("the animate dataset has no training frames", path=args.dataset)
    sampler = PairSampler(clips, cfg.batch_size, PairAugmentation(cfg))
    plan = make_schedule(
        steps=args.steps or cfg.steps,
        epochs=cfg.epochs,
        num_repeats=cfg.num_repeats,
        milestones=cfg.epoch_milestones,
        batch_size=cfg.batch_size,
        num_videos=len(clips),
    )
    log.info(
        "preset %s, %d regions, %d px, %d training videos (%d frames), batch %d, %s, loss %s",
        cfg.name,
        cfg.num_regions,
        cfg.size,
        len(clips),
        sum(len(c) for c in clips),
        cfg.batch_size,
        plan.describe(),
        cfg.recon_loss,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, plan.drops, gamma=0.1)

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

    meta = preset_meta(cfg, twin=args.twin, dataset=str(args.dataset))
    if args.pretrained:
        meta["pretrained"] = str(args.pretrained)
    result = run_training(
        model.modules_dict(),
        {"main": optimizer},
        step,
        LoopConfig(
            steps=plan.steps,
            save_every=args.save_every,
            log_every=args.log_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc=f"animate {args.twin}",
        ),
        args.out,
        meta,
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
