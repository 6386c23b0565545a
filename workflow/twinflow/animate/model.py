"""The MRAA model (region predictor, background motion, generator) and its checkpoint files.

``model.pt`` (written by :mod:`twinflow.animate.train`, or converted from a reference checkpoint by
``python -m twinflow.convert mraa``) holds the three modules' weights and, in
``meta``, the full preset (``meta["preset"]``), so every later stage rebuilds the same network
from the file alone. ``avd.pt`` holds the AVD network and the same ``meta["preset"]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from twinflow.animate.avd import AVDNetwork
from twinflow.animate.bg_motion import BackgroundMotion
from twinflow.animate.generator import Generator
from twinflow.animate.presets import AnimateConfig, check_config
from twinflow.animate.region_predictor import RegionPredictor
from twinflow.presets import preset_dict
from twinflow.train import load_checkpoint
from twinflow.train.checkpoint import CheckpointError

PIPELINE = "animate"


class MRAA(nn.Module):
    """The three networks of the main model; :meth:`forward` reconstructs ``driving`` from
    ``source`` (both ``(B, 3, H, W)`` in [0, 1])."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        self.cfg = cfg
        self.region_predictor = RegionPredictor(cfg)
        self.bg_motion = BackgroundMotion(cfg)
        self.generator = Generator(cfg)

    def modules_dict(self) -> dict[str, nn.Module]:
        return {
            "region_predictor": self.region_predictor,
            "bg_motion": self.bg_motion,
            "generator": self.generator,
        }

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        source_regions = self.region_predictor(source)
        driving_regions = self.region_predictor(driving)
        bg = self.bg_motion(source, driving)
        out = self.generator(source, source_regions, driving_regions, bg)
        return {**out, "source_regions": source_regions, "driving_regions": driving_regions}

    def animate(self, source: torch.Tensor, source_regions, regions) -> torch.Tensor:
        """Render ``source`` (batch 1 or B) with ``regions`` (batch B); background motion is the
        identity, as in the paper's animation (only reconstruction estimates it)."""
        b = regions["shift"].shape[0]
        src = source.expand(b, *source.shape[1:])
        src_regions = {k: v.expand(b, *v.shape[1:]) for k, v in source_regions.items()}
        return self.generator(src, src_regions, regions, None)["prediction"]


def preset_meta(cfg: AnimateConfig, **extra) -> dict:
    return {"pipeline": PIPELINE, "preset_name": cfg.name, "preset": preset_dict(cfg), **extra}


def config_from_meta(meta: dict) -> AnimateConfig:
    """The preset stored in a checkpoint's ``meta``. Fields this version does not have (those of
    older checkpoints: ``jitter``, ``lr_milestones``, ...) only shaped their training and are
    dropped; fields it added take their defaults, except ``align_corners``: True, the convention
    every checkpoint without the field was trained with."""
    known = {f.name for f in dataclasses.fields(AnimateConfig)}
    data = {k: v for k, v in dict(meta["preset"]).items() if k in known}
    data.setdefault("align_corners", True)  # the convention before the field existed
    for f in dataclasses.fields(AnimateConfig):
        if isinstance(data.get(f.name), list):
            data[f.name] = tuple(data[f.name])
    return check_config(AnimateConfig(**data))


def load_model(path: str | Path, device: torch.device | str = "cpu") -> MRAA:
    """The trained MRAA in eval mode."""
    ckpt = load_checkpoint(path, expect={"pipeline": PIPELINE}, map_location=device)
    model = MRAA(config_from_meta(ckpt["meta"]))
    for name, module in model.modules_dict().items():
        module.load_state_dict(ckpt["modules"][name])
    return model.to(device).eval()


def load_avd(
    path: str | Path, cfg: AnimateConfig, device: torch.device | str = "cpu"
) -> AVDNetwork:
    """The trained AVD network (built from its own checkpoint's preset); it must be for a model
    with ``cfg``'s number of regions."""
    ckpt = load_checkpoint(path, expect={"pipeline": PIPELINE}, map_location=device)
    own = config_from_meta(ckpt["meta"])
    if own.num_regions != cfg.num_regions:
        raise CheckpointError(
            f"AVD network is for {own.num_regions} regions but the model has {cfg.num_regions}; "
            "rerun train_avd (or convert the AVD network of the same checkpoint)",
            path=path,
        )
    avd = AVDNetwork(own)
    avd.load_state_dict(ckpt["modules"]["avd"])
    return avd.to(device).eval()


def to_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` or ``(H, W, 3)`` -> float ``(B, 3, H, W)`` in [0, 1]."""
    if frames.ndim == 3:
        frames = frames[None]
    t = torch.from_numpy(np.array(frames, dtype=np.uint8)).to(
        device
    )  # a copy: memmaps are read-only
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``(B, 3, H, W)`` in [0, 1] -> uint8 ``(B, H, W, 3)``."""
    out = images.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1)
    return out.cpu().numpy()
