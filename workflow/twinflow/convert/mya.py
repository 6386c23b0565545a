"""Make-Your-Anchor checkpoints -> twinflow anchor checkpoints.

``python -m twinflow.convert mya CHECKPOINT_DIR --part body|head --out OUT [--reference IMAGE]
[--size N] [--set field=value ...] [--registry models/registry.yaml]``

``CHECKPOINT_DIR`` is a Make-Your-Anchor model folder holding ``unet/`` and ``controlnet/``
(diffusers ``save_pretrained`` folders, ``.safetensors`` or ``.bin``): the released per-anchor
models (``inference/checkpoints/<anchor>/{body,head}``), the stage-1 pre-trained weights
(``train/checkpoints/pre-trained_weight/{body,head}``) or a fine-tuning output of
``train_body.py`` / ``train_head.py`` (``checkpoint-N``); a folder holding ``body/`` and ``head/``
is accepted too (``--part`` picks one). ``OUT`` is the twinflow checkpoint to write (``body.pt``),
or a folder that gets ``<part>.pt``.

The weights are copied unchanged: the reference's body UNet and ControlNet are SD-1.5-layout 2D
models that its ``from_pretrained_2d`` inflates without new weights, and twinflow inflates the
same diffusers models at run time (:mod:`twinflow.anchor.attention`); the head models are plain
diffusers models. The result uses the ``paper`` preset (the reference's inference settings, see
:mod:`twinflow.anchor.presets`) at ``--size`` (512 body, 256 head): the SD-1.5 /
SD-inpainting folders (VAE, text encoder for the empty prompt, scheduler) and the CLIP ViT-B/32
vision folder come from the model registry when the model runs, never from the checkpoint.

``--reference`` stores the appearance image the reference passes as ``--prompt_img_pth`` (read
as it reads it: the body's as it is, the head's resized to the head size); without it the
checkpoint has none and the workflow uses a frame of the twin's video.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from twinflow.convert import ConversionError, check_state_dict

log = logging.getLogger("twinflow.convert.mya")

PARTS = ("body", "head")
SIZES = {"body": 512, "head": 256}
UNET_IN = {"body": 4, "head": 9}  # latents; latents + mask + masked-image latents
# UNet3DConditionModel.from_pretrained_2d / ControlNetModel3D.from_pretrained_2d force these
SD_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
SD_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=PARTS, required=True, help="body or head model")
    parser.add_argument("--reference", default=None, help="appearance image (--prompt_img_pth)")
    parser.add_argument("--size", type=int, default=None, help="frame / crop side (512 / 256)")
    parser.add_argument(
        "--set", action="append", default=[], help="paper preset field=value (e.g. guidance=5)"
    )
    parser.add_argument("--registry", default="models/registry.yaml", help="model registry")


def model_folder(source: str | Path, part: str) -> Path:
    """The folder with ``unet/`` and ``controlnet/`` for ``part``."""
    source = Path(source)
    if not source.is_dir():
        raise ConversionError(
            "not a folder: a Make-Your-Anchor checkpoint is a folder with unet/ and controlnet/",
            path=source,
        )
    for folder in (source, source / part):
        if (folder / "unet").is_dir() and (folder / "controlnet").is_dir():
            return folder
    raise ConversionError(
        f"has no unet/ and controlnet/ folders (nor {part}/unet, {part}/controlnet)", path=source
    )


def read_diffusers(folder: Path, cls, what: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state_dict)`` of a diffusers ``save_pretrained`` folder, checked against the
    model its config builds (every missing, unexpected or mis-shaped key named)."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConversionError("config.json not found", path=folder)
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"config.json is not JSON ({err})", path=config_file) from None
    files = [folder / name for name in WEIGHTS if (folder / name).is_file()]
    if not files:
        raise ConversionError(f"no weights ({' or '.join(WEIGHTS)})", path=folder)
    try:
        from diffusers.models.model_loading_utils import load_state_dict
    except ImportError:  # older diffusers
        from diffusers.models.modeling_utils import load_state_dict
    try:
        state = load_state_dict(str(files[0]))
    except Exception as err:  # safetensors / torch raise many types for a bad file
        raise ConversionError(
            f"cannot be read ({type(err).__name__}: {err}); is the file complete?", path=files[0]
        ) from None
    try:
        model = cls.from_config(config)
    except Exception as err:
        raise ConversionError(
            f"config.json does not build a {what} ({err})", path=config_file
        ) from None
    check_state_dict(model, state, source=files[0], what=what)
    return dict(model.config), state


def check_layout(unet: dict, controlnet: dict, part: str, folder: Path) -> None:
    """The reference's structure: SD-1.5 block types, 4 / 9 input channels, matching widths."""
    if unet["in_channels"] != UNET_IN[part]:
        raise ConversionError(
            f"the {part} UNet has {unet['in_channels']} input channels, Make-Your-Anchor's has "
            f"{UNET_IN[part]}; is this the {'head' if part == 'body' else 'body'} model?",
            path=folder / "unet",
        )
    if part == "body" and (
        list(unet["down_block_types"]) != SD_DOWN or list(unet["up_block_types"]) != SD_UP
    ):
        raise ConversionError(
            "the body UNet does not have SD-1.5's block types, which the reference's "
            f"from_pretrained_2d imposes ({unet['down_block_types']})",
            path=folder / "unet",
        )
    for key in ("block_out_channels", "cross_attention_dim", "layers_per_block"):
        if list(_tuple(unet[key])) != list(_tuple(controlnet[key])):
            raise ConversionError(
                f"UNet and ControlNet differ in {key}: {unet[key]} vs {controlnet[key]}",
                path=folder,
            )


def _tuple(value):
    return value if isinstance(value, list | tuple) else (value,)


def scheduler_config(cfg, part: str, registry: str | Path) -> dict[str, Any]:
    """The DDPM schedule of the part's SD folder (SD-1.5's values when it is not supplied yet:
    the reference reads ``--pipe_path``'s ``scheduler/``, which is SD-1.5's in both)."""
    from diffusers import DDPMScheduler

    from twinflow.anchor.models import scheduler_config as from_folder
    from twinflow.errors import ModelFileError

    try:
        return from_folder(cfg, registry, part)
    except ModelFileError as err:
        log.info("using SD-1.5's scheduler values (%s)", err)
    sched = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return dict(sched.config)


def convert(args: argparse.Namespace) -> None:
    from diffusers import ControlNetModel, UNet2DConditionModel

    from twinflow.anchor.appearance import reference_image
    from twinflow.anchor.presets import get_preset
    from twinflow.presets import parse_overrides, preset_dict
    from twinflow.train import save_checkpoint

    part = args.part
    folder = model_folder(args.source, part)
    unet_cfg, unet_sd = read_diffusers(folder / "unet", UNet2DConditionModel, f"{part} UNet")
    cn_cfg, cn_sd = read_diffusers(folder / "controlnet", ControlNetModel, f"{part} ControlNet")
    check_layout(unet_cfg, cn_cfg, part, folder)
    size = args.size or SIZES[part]
    overrides = {f"{part}_size": size, "cross_attention_dim": unet_cfg["cross_attention_dim"]}
    try:
        overrides.update(parse_overrides(args.set))
        cfg = get_preset("paper", overrides)
    except ValueError as err:
        raise ConversionError(str(err), path=args.source) from None
    reference = None
    if args.reference:
        reference = reference_image(args.reference, size if part == "head" else None)
    meta = {
        "pipeline": "anchor",
        "kind": part,
        "preset": cfg.name,
        "preset_values": preset_dict(cfg),
        "unet_config": unet_cfg,
        "controlnet_config": cn_cfg,
        "scheduler_config": scheduler_config(cfg, part, args.registry),
        "size": size,
        "source": {"format": "mya", "folder": str(folder)},
    }
    out = Path(args.out)
    if out.suffix != ".pt":
        out.mkdir(parents=True, exist_ok=True)
        out = out / f"{part}.pt"
    payload = {
        "modules": {"unet": unet_sd, "controlnet": cn_sd, "ref": {}},
        "meta": meta,
        "steps": 0,
        "history": [],
        "extra": {"reference": reference, "reference_frame": None, "clips": []},
    }
    save_checkpoint(out, payload)
    n = sum(v.numel() for v in unet_sd.values()) + sum(v.numel() for v in cn_sd.values())
    log.info("Make-Your-Anchor %s model (%.1fM parameters) -> %s", part, n / 1e6, out)
