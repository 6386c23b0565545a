"""face-vid2vid checkpoints (zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis)
-> a twinflow meshhead warp (``python -m twinflow.convert fv2v CKPT --config vox-256-spade
--out warp.pt``).

``CKPT`` (a file, or the name of a ``models/registry.yaml`` entry such as ``fv2v-vox256-spade``,
checksum-verified) is a checkpoint saved by the reference's ``Logger.save_cpk`` (``*-checkpoint.pth.tar``:
a dict with ``generator``, ``kp_detector``, ``he_estimator`` and, from training, ``discriminator``
and optimiser states). ``--config`` names the reference configuration (``vox-256``:
``config/vox-256.yaml`` with the ``original`` generator; ``vox-256-spade``: the same YAML with
the ``spade`` generator, as the released Vox-256-New model and ``demo.py``'s default;
``vox-256-beta``) or is a path to a YAML in the reference's format. ``--gen`` overrides the
variant; by default it is read from the checkpoint (a ``decoder.*`` generator is ``spade``).
A ``module.`` prefix (a ``DataParallel`` save) is removed. Every network must fit the
configuration exactly: missing, unexpected and mis-shaped keys are listed with the file's name.
``--size`` runs the model at another frame size; where that leaves a scale of the VGG-19
perceptual pyramid under 16 px (VGG-19 pools 4 times), fine-tuning drops that scale (logged).

The output is a twinflow checkpoint (stage ``meshhead.warp``) that ``meshhead: warp_pretrained:``
uses: its networks (and the discriminator, when present, for fine-tuning), its configuration and
where it came from. It has no twin-specific parts yet: ``meshhead_train_warp`` adds them (the
head crop and the mesh-to-expression mapping), after fine-tuning or without (``steps: {warp: 0}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from twinflow.convert import ConversionError, check_state_dict, load_reference, rename_keys

log = logging.getLogger("twinflow.convert.fv2v")

NETWORKS = ("kp_detector", "he_estimator", "generator")
VGG_MIN_SIDE = 16  # VGG-19 pools 4 times before relu5_1: the smallest image side it takes
RULES = [(r"^module\.", "")]


def build_parser(p: argparse.ArgumentParser) -> None:
    from twinflow.meshhead.fv2v.config import NAMED

    p.add_argument(
        "--config",
        default="vox-256-spade",
        help=f"reference config: {', '.join(NAMED)} or a reference-format YAML file",
    )
    p.add_argument("--gen", choices=("auto", "original", "spade"), default="auto")
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument(
        "--size", type=int, default=0,
        help="frame size the warp runs at (default: the config's, 256 for vox-256)",
    )  # fmt: skip


def source_path(source, registry) -> Path:
    """``source`` itself, or the verified file of the registry entry of that name."""
    path = Path(source)
    if path.exists() or "/" in str(source):
        return path
    from twinflow.models import load_registry, resolve

    if Path(registry).is_file() and str(source) in load_registry(registry):
        return resolve(str(source), registry)
    return path


def detect_generator(state: dict) -> str:
    return "spade" if any(k.startswith("decoder.") for k in state) else "original"


def convert(args: argparse.Namespace) -> None:
    from twinflow.meshhead.fv2v.config import load_config
    from twinflow.meshhead.fv2v.model import build_discriminator, build_networks
    from twinflow.meshhead.presets import check_warp
    from twinflow.presets import preset_dict
    from twinflow.train import save_checkpoint

    args.source = source_path(args.source, getattr(args, "registry", "models/registry.yaml"))
    data = load_reference(args.source)
    if not isinstance(data, dict):
        raise ConversionError("is not a face-vid2vid checkpoint (not a dict)", path=args.source)
    missing = [n for n in NETWORKS if n not in data]
    if missing:
        raise ConversionError(
            f"is not a face-vid2vid checkpoint: no {', '.join(missing)} "
            f"(it has {sorted(k for k in data if isinstance(k, str))})",
            path=args.source,
        )
    states = {n: rename_keys(data[n], RULES) for n in (*NETWORKS, "discriminator") if n in data}
    found = detect_generator(states["generator"])
    generator = found if args.gen == "auto" else args.gen
    if generator != found:
        raise ConversionError(
            f"holds a '{found}' generator but --gen {generator} was asked for", path=args.source
        )
    try:
        cfg = load_config(args.config, generator)
        if getattr(args, "size", 0):
            cfg = dataclasses.replace(cfg, size=int(args.size))
            kept = tuple(s for s in cfg.scales if cfg.size * s >= VGG_MIN_SIDE)
            if cfg.perceptual == "vgg19" and kept != tuple(cfg.scales):
                log.warning(
                    "at %d px the perceptual pyramid keeps the scales %s (VGG-19 needs %d px)",
                    cfg.size, kept, VGG_MIN_SIDE,
                )  # fmt: skip
                cfg = dataclasses.replace(cfg, scales=kept)
            cfg = check_warp(cfg)
    except ValueError as err:
        raise ConversionError(str(err), path=args.source) from None
    nets = build_networks(cfg)
    modules = {}
    for name, net in nets.items():
        check_state_dict(net, states[name], source=args.source, what=f"{args.config} {name}")
        modules[name] = {k: v.detach().clone().float() if v.is_floating_point() else v.clone()
                         for k, v in states[name].items()}  # fmt: skip
    if "discriminator" in states:
        disc = build_discriminator(cfg)
        check_state_dict(disc, states["discriminator"], source=args.source,
                         what=f"{args.config} discriminator")  # fmt: skip
        modules["discriminator"] = dict(states["discriminator"])
    epoch = data.get("epoch")
    save_checkpoint(
        args.out,
        {
            "modules": modules,
            "meta": {
                "stage": "meshhead.warp",
                "config": preset_dict(cfg),
                "converted_from": {
                    "kind": "fv2v",
                    "source": str(args.source),
                    "config": str(args.config),
                    "epoch": epoch,
                },  # fmt: skip
                "twin": None,
            },
            "steps": 0,
            "history": [],
            "extra": {},
        },
    )
    params = {n: sum(v.numel() for k, v in s.items() if "running" not in k and "num_batches" not in k)
              for n, s in modules.items()}  # fmt: skip
    log.info(
        "converted %s (%s generator, config %s, epoch %s): %s -> %s",
        args.source, generator, args.config, epoch, params, args.out,
    )  # fmt: skip
