"""MRAA (snap-research/articulated-animation) checkpoints -> twinflow animate checkpoints.

``python -m twinflow.convert mraa CPK --config vox256 --out model.pt [--avd avd.pt]
[--size N]``

``CPK`` is a checkpoint saved by the reference (``vox256.pth``, ``ted384.pth``, ... or a
``*-cpk.pth`` of one's own training): a dict with ``generator``, ``region_predictor``,
``bg_predictor`` and, after AVD training, ``avd_network`` state dicts. ``--config`` is the
reference config the checkpoint was trained with: a published one by name (``vox256``,
``ted384``, ``ted-youtube384``, ``taichi256``, ``mgif256``: the twinflow presets of the same
names) or the path of its YAML file (:mod:`twinflow.animate.reference_config`).

``--out`` gets the main model (read by :func:`twinflow.animate.model.load_model`); ``--avd``
the AVD network (:func:`twinflow.animate.model.load_avd`), an error when the checkpoint has
none. Keys are renamed by a handful of rules (the networks are the same, module for module);
the anti-aliasing kernels the reference stores as buffers are checked against the config's
scale factors and dropped (twinflow rebuilds them). A checkpoint without background-motion
weights (the published files hold them; a demo-only file may not) keeps twinflow's identity
initialisation: reconstruction then assumes a static camera, animation is unaffected (it never
uses background motion).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from twinflow.animate.blocks import gaussian_kernel
from twinflow.animate.model import MRAA, preset_meta
from twinflow.animate.presets import PRESETS, AnimateConfig
from twinflow.convert import ConversionError, check_state_dict, load_reference, rename_keys
from twinflow.train import save_checkpoint

log = logging.getLogger("twinflow.convert.mraa")

# Reference module names -> twinflow's, applied in order to every key.
RULES = [
    (r"^module\.", ""),  # a DataParallel wrapper's prefix, if a checkpoint has one
    (r"^pixelwise_flow_predictor\.", "flow."),
    (r"^flow\.mask\.", "flow.weights."),
    (r"^predictor\.", "hourglass."),
    (r"\.(down|up)_blocks\.", ".blocks."),
    (r"^(down|up)_blocks\.", r"\1."),
    (r"^regions\.", "heads."),
    (r"^bottleneck\.r(\d+)\.", r"bottleneck.\1."),
]
# Reference entry -> (twinflow module, its anti-aliasing buffer, the scale field it encodes).
MODULES = {
    "region_predictor": ("region_predictor", "down.weight", "region_scale_factor"),
    "bg_predictor": ("bg_motion", None, None),
    "generator": ("generator", "pixelwise_flow_predictor.down.weight", "flow_scale_factor"),
}


def build_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        required=True,
        help=f"the reference config: {', '.join(n for n in PRESETS if n != 'tiny')}, "
        "or the path of its YAML file",
    )
    p.add_argument("--avd", default=None, help="also write the AVD network here")
    p.add_argument("--size", type=int, default=None, help="frame side (YAML configs only)")
    p.add_argument("--registry", default="models/registry.yaml", help="for a registered CPK name")


def resolve_config(config: str, size: int | None = None) -> tuple[AnimateConfig, list[str]]:
    """A published config by name, else a reference YAML file."""
    if config in PRESETS and config != "tiny":
        if size and size != PRESETS[config].size:
            raise ConversionError(f"--size {size} contradicts config {config}")
        return PRESETS[config], []
    from twinflow.animate.reference_config import load_reference_config

    if not config.endswith((".yaml", ".yml")) and not Path(config).exists():
        names = ", ".join(n for n in PRESETS if n != "tiny")
        raise ConversionError(f"unknown config '{config}': one of {names}, or a YAML file")
    return load_reference_config(config, size=size)


def check_kernel(state: dict, key: str, scale: float, source: Path, what: str) -> None:
    """The reference's stored anti-aliasing kernel must be the one ``scale`` gives."""
    if key not in state:
        if scale != 1.0:
            raise ConversionError(f"{what} has no '{key}' (anti-aliasing kernel)", path=source)
        return
    stored = state[key]
    want = gaussian_kernel(scale)
    if stored.shape[-2:] != want.shape or not torch.allclose(stored[0, 0].float(), want, atol=1e-6):
        raise ConversionError(
            f"{what}'s anti-aliasing kernel ({tuple(stored.shape[-2:])} taps) is not the one of "
            f"scale_factor {scale} ({tuple(want.shape)} taps): was it trained with this config?",
            path=source,
        )


def convert_main(cpk: dict, cfg: AnimateConfig, source: Path) -> tuple[MRAA, list[str]]:
    """The twinflow model holding the reference's ``generator``, ``region_predictor`` and
    ``bg_predictor`` weights; also the notes on what was filled in."""
    model = MRAA(cfg)
    notes = []
    for entry, (name, kernel, scale_field) in MODULES.items():
        module = model.modules_dict()[name]
        what = f"MRAA {cfg.name} {entry}"
        state = cpk.get(entry)
        if state is None:
            if entry == "bg_predictor" and cfg.bg_type != "zero":
                notes.append("no bg_predictor weights: background motion starts at the identity")
                continue
            if entry != "bg_predictor":
                raise ConversionError(
                    f"has no '{entry}' entry (it has {sorted(cpk)}): not an MRAA checkpoint",
                    path=source,
                )
            state = {}
        state = dict(state)
        if kernel is not None:
            check_kernel(state, kernel, getattr(cfg, scale_field), source, what)
            state.pop(kernel, None)
        state = rename_keys(state, RULES)
        for key, value in module.state_dict().items():  # older torch saved no batch counters
            if key.endswith("num_batches_tracked") and key not in state:
                state[key] = torch.zeros_like(value)
        check_state_dict(module, state, source=source, what=what)
        module.load_state_dict(state)
    return model.eval(), notes


def source_path(source: str, registry: str) -> Path:
    """``source`` itself, or the verified file of the registry entry of that name."""
    path = Path(source)
    if path.exists() or "/" in source or not Path(registry).is_file():
        return path
    from twinflow.models import load_registry, resolve

    if source in load_registry(registry):
        return resolve(source, registry)
    return path


def convert(args: argparse.Namespace) -> None:
    source = source_path(args.source, args.registry)
    cfg, notes = resolve_config(args.config, args.size)
    cpk = load_reference(source)
    if not isinstance(cpk, dict):
        raise ConversionError(
            f"holds a {type(cpk).__name__}, not a dict of state dicts", path=source
        )
    if args.avd and "avd_network" not in cpk:
        raise ConversionError(
            "has no 'avd_network' (the reference trains it with --mode train_avd); convert "
            "without --avd and train one with twinflow.animate.train_avd",
            path=source,
        )
    model, filled = convert_main(cpk, cfg, source)
    notes += filled
    meta = preset_meta(cfg, converted_from=str(source), converter="mraa", notes=notes)
    modules = {n: m.state_dict() for n, m in model.modules_dict().items()}
    save_checkpoint(args.out, {"modules": modules, "meta": meta})
    log.info(
        "%s (%s, %d regions, %d px) -> %s", source, cfg.name, cfg.num_regions, cfg.size, args.out
    )
    for note in notes:
        log.warning("%s", note)
    if args.avd:
        from twinflow.animate.avd import AVDNetwork

        avd = AVDNetwork(cfg)
        state = rename_keys(cpk["avd_network"], RULES)
        check_state_dict(avd, state, source=source, what=f"MRAA {cfg.name} AVD network")
        avd.load_state_dict(state)
        save_checkpoint(args.avd, {"modules": {"avd": avd.state_dict()}, "meta": meta})
        log.info("AVD network -> %s", args.avd)
