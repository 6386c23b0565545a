"""Stage ``meshhead_train_warp``: train the one-shot head warp on self-reenactment pairs.

``python -m twinflow.meshhead.train_warp --twin ID --frames frames.npz --preset tiny
[--set field=value ...] [--steps N] [--max-minutes M] [--save-every N] [--threads 2]
[--registry models/registry.yaml] --out warp.pt``

Each step pairs a source and a driving frame of the training split (the source is the default
source frame in a quarter of the pairs, any training frame otherwise) and reconstructs the
driving frame from the source and both frames' keypoints (:mod:`twinflow.meshhead.warp`).
Resumes from ``<out>.resume.pt`` after a kill. ``perceptual=vgg19`` needs the registry's
``vgg19`` weights (``twinflow.models.resolve``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from twinflow.cli import stage_main
from twinflow.meshhead.common import add_common, load_npz, setup_torch
from twinflow.meshhead.presets import PRESETS, WarpConfig, warp_preset
from twinflow.meshhead.warp import VGG19, ImageLoss, WarpGenerator, mouth_boxes
from twinflow.presets import parse_overrides, preset_dict
from twinflow.train import LoopConfig, load_checkpoint, run_training, seed_everything

log = logging.getLogger("twinflow.meshhead.train_warp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.train_warp", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--preset", choices=PRESETS, default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def perceptual_net(cfg: WarpConfig, registry: str | Path) -> VGG19 | None:
    if cfg.perceptual != "vgg19":
        return None
    from twinflow.models import resolve

    path = resolve("vgg19", registry)
    return VGG19(torch.load(path, map_location="cpu", weights_only=True))


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255.0


class WarpRunner:
    """A trained warp checkpoint: ``runner(src (B,3,S,S), kp_s, kp_d) -> (B,3,S,S)``."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        ckpt = load_checkpoint(path, expect={"stage": "meshhead.warp"})
        self.meta = ckpt["meta"]
        self.cfg = WarpConfig(**self.meta["config"])
        self.device = torch.device(device)
        self.model = WarpGenerator(self.meta["n_kp"], self.cfg)
        self.model.load_state_dict(ckpt["modules"]["model"])
        self.model.to(self.device).eval()
        self.steps = int(ckpt["steps"])

    @torch.no_grad()
    def __call__(self, src: torch.Tensor, kp_s: torch.Tensor, kp_d: torch.Tensor) -> torch.Tensor:
        return self.model(src, kp_s, kp_d)["pred"]

    @torch.no_grad()
    def render(self, source: np.ndarray, kp_s: np.ndarray, kp_d: np.ndarray, batch: int = 16):
        """Yield uint8 frames ``(S, S, 3)`` of ``source (S, S, 3)`` driven by ``kp_d (T, K, 2)``."""
        src = to_tensor(source[None], self.device)
        ks = torch.from_numpy(np.asarray(kp_s, np.float32))[None].to(self.device)
        for i in range(0, len(kp_d), batch):
            kd = torch.from_numpy(np.asarray(kp_d[i : i + batch], np.float32)).to(self.device)
            n = len(kd)
            out = self(src.expand(n, -1, -1, -1), ks.expand(n, -1, -1), kd)
            yield from (out.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    cfg = warp_preset(args.preset, parse_overrides(args.set))
    steps = args.steps or cfg.steps
    data = load_npz(args.frames, "warp frames")
    if data["frames"].shape[1] != cfg.size:
        log.warning(
            "frames are %d px, the preset says %d: training at %d",
            data["frames"].shape[1],
            cfg.size,
            data["frames"].shape[1],
        )
        cfg = warp_preset(
            args.preset, {**parse_overrides(args.set), "size": int(data["frames"].shape[1])}
        )
    frames = torch.from_numpy(data["frames"])  # uint8, moved per batch
    kp = torch.from_numpy(data["kp"]).float()
    train = np.flatnonzero(data["split"] == 0)
    source_index = int(data["source_index"])
    mouth = data["mouth_kp"].tolist()
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    model = WarpGenerator(kp.shape[1], cfg).to(device)
    loss_fn = ImageLoss(cfg, perceptual_net(cfg, args.registry)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * steps), int(0.9 * steps)], 0.3)
    log.info(
        "%d training frames at %d px, %d keypoints; %s model: %d parameters; loss %s",
        len(train),
        cfg.size,
        kp.shape[1],
        args.preset,
        sum(p.numel() for p in model.parameters()),
        "ms-L1 + SSIM + mouth L1" + (" + VGG-19" if cfg.perceptual == "vgg19" else ""),
    )

    def step(i: int) -> dict[str, float]:
        model.train()
        # numpy's global generator: run_training saves and restores its state on resume
        drv = np.random.choice(train, cfg.batch)
        src = np.random.choice(train, cfg.batch)
        src[np.random.rand(cfg.batch) < 0.25] = source_index
        s_img = to_tensor(frames[src].numpy(), device)
        d_img = to_tensor(frames[drv].numpy(), device)
        ks, kd = kp[src].to(device), kp[drv].to(device)
        out = model(s_img, ks, kd)
        losses = loss_fn(out["pred"], d_img, mouth_boxes(kd, mouth))
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        sched.step()
        return {k: v.item() for k, v in losses.items() if k != "total"}

    meta = {
        "stage": "meshhead.warp",
        "preset": args.preset,
        "config": preset_dict(cfg),
        "n_kp": int(kp.shape[1]),
        "keypoints": data["info"]["keypoints"],
        "size": cfg.size,
        "twin": args.twin,
    }
    result = run_training(
        {"model": model},
        {"opt": opt},
        step,
        LoopConfig(
            steps=steps,
            save_every=args.save_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc="warp",
        ),
        args.out,
        meta,
        schedulers={"sched": sched},
        extra_state={"crop": data["crop"], "source_index": source_index},
    )
    log.info(
        "trained %d steps (resumed from %d) in %.0f s%s",
        result.steps_done,
        result.resumed_from,
        result.seconds,
        " (stopped early: time budget)" if result.stopped_early else "",
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
