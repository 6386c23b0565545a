"""Stage ``meshhead_train_warp``: train face-vid2vid on the twin's video, fit its mesh driver.

``python -m twinflow.meshhead.train_warp --twin ID --frames frames.npz --dataset dataset.npz
--preset tiny [--set field=value ...] [--pretrained warp.pt] [--steps N] [--max-minutes M]
[--save-every N] [--threads 2] [--registry models/registry.yaml] --out warp.pt``

Training is the reference's (``train.py`` with ``GeneratorFullModel`` / ``DiscriminatorFullModel``,
:mod:`twinflow.meshhead.fv2v.losses`) on self-reenactment pairs of the twin's training frames
(the source is the default source frame in a quarter of the pairs, any training frame
otherwise): four Adam optimisers (generator, keypoint detector, estimator, discriminator; lr
``lr``, betas 0.5, 0.999) stepped once per batch, the discriminator after the generator, the
learning rates divided by 10 at ``lr_milestone`` x steps. ``perceptual="vgg19"`` needs the
registry's ``vgg19`` and ``headpose="hopenet"`` its ``hopenet``; the ``tiny`` preset uses the
named fallbacks (``l1``, ``tracked``: the twin's tracked head pose in the estimator's convention,
:func:`twinflow.meshhead.driving.euler_degrees`). Each pair is augmented as the reference's
``augmentation_params`` (:mod:`twinflow.train.augment`; ``paper``: time flip, mirror, colour
jitter 0.1) with the driving frame's labels following the frames (:func:`pair_batch`). Not done
here: the reference's epoch/repeat bookkeeping (twinflow counts steps).

``--pretrained`` starts from a warp checkpoint (a converted reference checkpoint, see
``python -m twinflow.convert fv2v``): its networks, architecture and size; the run's preset
gives the training settings. ``--steps 0`` keeps the pretrained weights as they are.

After training, the estimator runs on every frame and :class:`~twinflow.meshhead.driving.MeshDriver`
is fitted on the training frames (the mesh-to-pose-and-expression map that lets a predicted mesh
drive the warp); it is stored in the checkpoint with the crop and the default source frame.
Resumes from ``<out>.resume.pt`` after a kill.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.meshhead.common import add_common, load_npz, setup_torch
from twinflow.meshhead.driving import MeshDriver, estimator_targets, euler_degrees, pose_features
from twinflow.meshhead.fv2v.config import config_from_dict
from twinflow.meshhead.fv2v.losses import GeneratorLoss, discriminator_loss
from twinflow.meshhead.fv2v.model import NETWORKS, FaceVid2Vid, build_discriminator
from twinflow.meshhead.presets import PRESETS, WarpConfig, check_warp, warp_preset
from twinflow.meshhead.topology import Crop
from twinflow.meshhead.warp import WarpRunner, to_tensor
from twinflow.presets import parse_overrides, preset_dict
from twinflow.train import (
    LoopConfig,
    load_checkpoint,
    run_training,
    save_checkpoint,
    seed_everything,
)
from twinflow.train.augment import PairAugmentation

log = logging.getLogger("twinflow.meshhead.train_warp")

# fields that describe the networks (taken from a pretrained checkpoint); the rest is training
ARCHITECTURE = (
    "size", "generator", "num_kp", "feature_channel", "estimate_jacobian", "kp_block_expansion",
    "kp_max_features", "kp_num_blocks", "kp_scale_factor", "kp_reshape_depth", "kp_temperature",
    "he_block_expansion", "he_widths", "block_expansion", "max_features", "num_down_blocks",
    "reshape_depth", "num_resblocks", "estimate_occlusion_map", "spade_out_channels",
    "spade_hidden", "dm_block_expansion", "dm_max_features", "dm_num_blocks", "dm_compress",
    "disc_scales", "disc_block_expansion", "disc_max_features", "disc_num_blocks", "disc_sn",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.train_warp", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--preset", choices=PRESETS, default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--pretrained", default=None, help="a warp checkpoint to start from")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def loss_networks(cfg: WarpConfig, registry: str | Path):
    """VGG-19 and Hopenet when the configuration asks for them (user-supplied weights)."""
    vgg = hopenet = None
    if cfg.perceptual == "vgg19" and any(cfg.w_perceptual):
        from twinflow.train.vgg import load_vgg19

        vgg = load_vgg19(registry=registry)
    if cfg.headpose == "hopenet" and cfg.w_headpose:
        from twinflow.meshhead.fv2v.hopenet import load_hopenet

        hopenet = load_hopenet(registry)
    return vgg, hopenet


def resized(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size:
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def mouth_box(kp: torch.Tensor, mouth: list[int], margin: float = 0.08) -> torch.Tensor:
    """Boxes ``(B, 4)`` around the lip keypoints ``kp[:, mouth]`` ([-1, 1] units)."""
    m = kp[:, mouth]
    return torch.cat([m.min(1).values - margin, m.max(1).values + margin], 1)


def mirror_labels(pose: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The labels of a mirrored frame: yaw and roll ``pose[..., [0, 2]]`` change sign (for
    ``R = R_x(pitch) R_y(yaw) R_z(roll)`` mirrored in x), the mouth box ``(x0, y0, x1, y1)``
    becomes ``(-x1, y0, -x0, y1)`` ([-1, 1] units)."""
    pose = pose * pose.new_tensor([-1.0, 1.0, -1.0])
    box = torch.stack([-box[..., 2], box[..., 1], -box[..., 0], box[..., 3]], -1)
    return pose, box


def pair_batch(
    frames: torch.Tensor,
    pose: torch.Tensor,
    boxes: torch.Tensor,
    src: np.ndarray,
    drv: np.ndarray,
    augment: PairAugmentation,
    device,
) -> dict[str, torch.Tensor]:
    """The training batch of pairs ``frames[src[i]] -> frames[drv[i]]`` (uint8 ``(N, S, S, 3)``),
    augmented pair by pair; the driving frame's tracked ``pose`` ``(N, 3)`` and mouth box
    ``boxes`` ``(N, 4)`` follow a swap or a mirror."""
    if not augment.active:
        return {
            "source": to_tensor(frames[src].numpy(), device),
            "driving": to_tensor(frames[drv].numpy(), device),
            "pose": pose[drv].to(device),
            "mouth_box": boxes[drv].to(device),
        }
    out: dict[str, list[torch.Tensor]] = {"source": [], "driving": [], "pose": [], "mouth_box": []}
    for s, d in zip(src, drv, strict=True):
        a, b, swapped, mirrored = augment.draw(frames[s].numpy(), frames[d].numpy())
        target = s if swapped else d
        p, box = pose[target], boxes[target]
        if mirrored:
            p, box = mirror_labels(p, box)
        for key, value in (("source", a), ("driving", b), ("pose", p), ("mouth_box", box)):
            out[key].append(value)
    return {k: torch.stack(v).to(device) for k, v in out.items()}


def start_config(args) -> tuple[WarpConfig, dict | None]:
    cfg = warp_preset(args.preset, parse_overrides(args.set))
    if not args.pretrained:
        return cfg, None
    ckpt = load_checkpoint(args.pretrained, expect={"stage": "meshhead.warp"})
    arch = config_from_dict(ckpt["meta"]["config"])
    cfg = check_warp(dataclasses.replace(cfg, **{k: getattr(arch, k) for k in ARCHITECTURE}))
    return cfg, ckpt


def fit_driver(runner: WarpRunner, frames: np.ndarray, dataset: dict, crop: Crop, train):
    """Estimator outputs on every frame and the mesh driver fitted on the training frames."""
    he = runner.estimate(frames)
    pose = pose_features(dataset["R"], dataset["t"], dataset["K"], crop)
    driver = MeshDriver.fit(dataset["disp"][train], pose[train], estimator_targets(he)[train])
    pred = driver.predict(dataset["disp"], pose)
    target = estimator_targets(he)
    err = {
        "angles_deg": float(np.abs(pred["angles"] - target[:, :3]).mean()),
        "t": float(np.abs(pred["t"] - target[:, 3:6]).mean()),
        "exp": float(np.abs(pred["exp"] - target[:, 6:]).mean()),
        "exp_scale": float(np.abs(target[:, 6:]).mean()),
    }
    test = np.ones(len(frames), bool)
    test[train] = False
    if test.any():
        err["test_exp"] = float(np.abs(pred["exp"][test] - target[test, 6:]).mean())
    return driver, he, err


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    cfg, pretrained = start_config(args)
    steps = cfg.steps if args.steps is None else args.steps
    data = load_npz(args.frames, "warp frames")
    dataset = load_npz(args.dataset, "mesh dataset")
    n = len(data["frames"])
    if len(dataset["disp"]) != n:
        raise InputError(f"has {len(dataset['disp'])} frames, frames.npz {n}", path=args.dataset)
    if data["frames"].shape[1] != cfg.size:
        log.warning("frames are %d px, the warp %d: resizing", data["frames"].shape[1], cfg.size)
    frames = torch.from_numpy(resized(data["frames"], cfg.size))  # uint8, moved per batch
    pose = torch.from_numpy(euler_degrees(dataset["R"]).astype(np.float32))
    train = np.flatnonzero(data["split"] == 0)
    source_index = int(data["source_index"])
    boxes = mouth_box(torch.from_numpy(data["kp"]).float(), data["mouth_kp"].tolist())
    augment = PairAugmentation(cfg)
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    model = FaceVid2Vid(cfg).to(device)
    disc = build_discriminator(cfg).to(device)
    if pretrained is not None:
        for name in NETWORKS:
            getattr(model, name).load_state_dict(pretrained["modules"][name])
        if "discriminator" in pretrained["modules"]:
            disc.load_state_dict(pretrained["modules"]["discriminator"])
    vgg, hopenet = loss_networks(cfg, args.registry)
    loss_fn = GeneratorLoss(cfg, vgg, hopenet).to(device)
    nets = {**{n_: getattr(model, n_) for n_ in NETWORKS}, "discriminator": disc}
    opts = {n_: torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
            for n_, m in nets.items()}  # fmt: skip
    milestone = [max(1, int(cfg.lr_milestone * max(steps, 1)))]
    scheds = {n_: torch.optim.lr_scheduler.MultiStepLR(o, milestone, 0.1) for n_, o in opts.items()}
    use_gan = bool(cfg.w_generator_gan)
    log.info(
        "%d training frames at %d px; %s %s face-vid2vid%s: %s parameters; losses: %s",
        len(train), cfg.size, args.preset, cfg.generator,
        f" from {args.pretrained}" if args.pretrained else "",
        {k: sum(p.numel() for p in m.parameters()) for k, m in nets.items()},
        f"perceptual={cfg.perceptual} headpose={cfg.headpose} gan={cfg.gan_mode}",
    )  # fmt: skip

    def step(i: int) -> dict[str, float]:
        for m in nets.values():
            m.train()
        # numpy's global generator: run_training saves and restores its state on resume
        drv = np.random.choice(train, cfg.batch)
        src = np.random.choice(train, cfg.batch)
        src[np.random.rand(cfg.batch) < 0.25] = source_index
        batch = pair_batch(frames, pose, boxes, src, drv, augment, device)
        disc.requires_grad_(False)
        losses, generated = loss_fn(batch, model, disc)
        total = sum(losses.values())
        for name in NETWORKS:
            opts[name].zero_grad(set_to_none=True)
        total.backward()
        for name in NETWORKS:
            opts[name].step()
        if use_gan:
            disc.requires_grad_(True)
            d_losses = discriminator_loss(
                cfg, disc, loss_fn.pyramid, batch["driving"], generated["prediction"]
            )
            opts["discriminator"].zero_grad(set_to_none=True)
            sum(d_losses.values()).backward()
            opts["discriminator"].step()
            losses.update(d_losses)
        for s in scheds.values():
            s.step()
        return {k: v.detach().item() for k, v in losses.items()}

    crop = Crop(*map(float, data["crop"]))
    meta = {
        "stage": "meshhead.warp",
        "preset": args.preset,
        "config": preset_dict(cfg),
        "keypoints": data["info"]["keypoints"],
        "size": cfg.size,
        "twin": args.twin,
        "pretrained": args.pretrained,
    }
    if pretrained is not None and "converted_from" in pretrained["meta"]:
        meta["converted_from"] = pretrained["meta"]["converted_from"]
    result = run_training(
        nets,
        opts,
        step,
        LoopConfig(
            steps=steps,
            save_every=args.save_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc="warp",
        ),  # fmt: skip
        args.out,
        meta,
        schedulers=scheds,
        extra_state={"crop": data["crop"], "source_index": source_index},
    )
    log.info(
        "trained %d steps (resumed from %d) in %.0f s%s",
        result.steps_done, result.resumed_from, result.seconds,
        " (stopped early: time budget)" if result.stopped_early else "",
    )  # fmt: skip
    runner = WarpRunner(args.out, device)
    driver, he, err = fit_driver(runner, frames.numpy(), dataset, crop, train)
    log.info("mesh driver (ridge alpha %g): mean |error| %s", driver.alpha, err)
    ckpt = load_checkpoint(args.out)
    ckpt.pop("format", None)
    ckpt["extra"].update(driver=driver.state(), driver_fit=err, estimates=he)
    save_checkpoint(args.out, ckpt)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
