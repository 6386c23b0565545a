"""The reference's configurations as :class:`~twinflow.meshhead.presets.WarpConfig`.

Named: ``vox-256`` (``config/vox-256.yaml`` with ``run.py``'s default ``original`` generator),
``vox-256-spade`` (the same YAML with ``--gen spade``, the released "Vox-256-New" model; this is
the ``paper`` preset) and ``vox-256-beta`` (``config/vox-256-beta.yaml``: keypoint detector at
full resolution, ``original`` generator). Any other YAML in the reference's format (its
``model_params``, optionally ``train_params`` and ``dataset_params``' ``frame_shape`` and
``augmentation_params``) is read by
:func:`from_reference_yaml`; widths the reference fixes in code (head-pose estimator, SPADE
decoder) take the reference's values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from twinflow.meshhead.presets import WARP_PRESETS, WarpConfig, check_warp
from twinflow.train.augment import flip_and_jitter_fields

NAMED = {
    "vox-256": {"generator": "original"},
    "vox-256-spade": {"generator": "spade"},
    "vox-256-beta": {"generator": "original", "kp_scale_factor": 1.0},
}
REFERENCE_HE_WIDTHS = (256, 512, 1024, 2048)
REFERENCE_SPADE = {"in": 256, "out": 64, "hidden": 128}


def named_config(name: str, generator: str | None = None) -> WarpConfig:
    if name not in NAMED:
        raise ValueError(f"unknown face-vid2vid config '{name}' (known: {', '.join(NAMED)})")
    over = dict(NAMED[name])
    if generator:
        over["generator"] = generator
    return check_warp(dataclasses.replace(WARP_PRESETS["paper"], **over))


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def from_reference_yaml(data: dict[str, Any], generator: str) -> WarpConfig:
    """A WarpConfig from the reference's YAML (parsed) and the generator variant."""
    mp = data.get("model_params")
    _need(isinstance(mp, dict), "has no model_params")
    common, kp = mp["common_params"], mp["kp_detector_params"]
    he, gen = mp["he_estimator_params"], mp["generator_params"]
    dm, disc = gen["dense_motion_params"], mp.get("discriminator_params") or {}
    _need(common.get("image_channel", 3) == 3, "image_channel must be 3")
    _need(he.get("num_bins", 66) == 66, "num_bins must be 66 (the degree conversion assumes it)")
    _need(gen["reshape_channel"] == common["feature_channel"], "reshape_channel != feature_channel")
    _need(dm.get("reshape_depth", gen["reshape_depth"]) == gen["reshape_depth"],
          "dense motion and generator reshape_depth differ")  # fmt: skip
    deepest = min(kp["max_features"], kp["block_expansion"] * 2 ** kp["num_blocks"])
    _need(kp["reshape_channel"] == deepest * kp["reshape_depth"],
          f"kp reshape_channel must be {deepest} x reshape_depth")  # fmt: skip
    if generator == "spade":
        _need(gen["block_expansion"] * 2 ** gen["num_down_blocks"] == REFERENCE_SPADE["in"],
              "the reference's SPADE decoder takes 256 channels: block_expansion x 2^down = 256")  # fmt: skip
    fields: dict[str, Any] = dict(
        generator=generator,
        num_kp=common["num_kp"],
        feature_channel=common["feature_channel"],
        estimate_jacobian=bool(common.get("estimate_jacobian", False)),
        kp_block_expansion=kp["block_expansion"],
        kp_max_features=kp["max_features"],
        kp_num_blocks=kp["num_blocks"],
        kp_scale_factor=float(kp.get("scale_factor", 1)),
        kp_reshape_depth=kp["reshape_depth"],
        kp_temperature=float(kp["temperature"]),
        he_block_expansion=he["block_expansion"],
        he_widths=REFERENCE_HE_WIDTHS,
        block_expansion=gen["block_expansion"],
        max_features=gen["max_features"],
        num_down_blocks=gen["num_down_blocks"],
        reshape_depth=gen["reshape_depth"],
        num_resblocks=gen["num_resblocks"],
        estimate_occlusion_map=bool(gen.get("estimate_occlusion_map", False)),
        spade_out_channels=REFERENCE_SPADE["out"],
        spade_hidden=REFERENCE_SPADE["hidden"],
        dm_block_expansion=dm["block_expansion"],
        dm_max_features=dm["max_features"],
        dm_num_blocks=dm["num_blocks"],
        dm_compress=dm["compress"],
    )
    if disc:
        fields.update(
            disc_scales=tuple(disc.get("scales", (1,))),
            disc_block_expansion=disc.get("block_expansion", 64),
            disc_max_features=disc.get("max_features", 512),
            disc_num_blocks=disc.get("num_blocks", 4),
            disc_sn=bool(disc.get("sn", False)),
        )
    shape = (data.get("dataset_params") or {}).get("frame_shape")
    if shape:
        fields["size"] = int(shape[0])
    train = data.get("train_params") or {}
    if train:
        w = train.get("loss_weights", {})
        tp = train.get("transform_params", {})
        fields.update(
            lr=float(train.get("lr_generator", 2e-4)),
            gan_mode=train.get("gan_mode", "hinge"),
            scales=tuple(train.get("scales", (1, 0.5, 0.25, 0.125))),
            batch=int(train.get("batch_size", 32)),
        )
        fields.update(
            {
                f"w_{k}": tuple(v) if isinstance(v, list) else float(v)
                for k, v in w.items()
                if f"w_{k}" in {f.name for f in dataclasses.fields(WarpConfig)}
            }
        )
        fields.update({k: tp[k] for k in ("sigma_affine", "sigma_tps", "points_tps") if k in tp})
    aug = (data.get("dataset_params") or {}).get("augmentation_params")
    if aug is not None:
        fields.update(flip_and_jitter_fields(aug))
    base = WARP_PRESETS["paper"]
    size = fields.get("size", base.size)
    fields["size"] = size
    return check_warp(dataclasses.replace(base, **fields))


def load_config(config: str | Path, generator: str) -> WarpConfig:
    """A named config, or a reference-format YAML file; ValueError naming the problem."""
    if str(config) in NAMED:
        return named_config(str(config), generator)
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"'{config}' is neither a known config ({', '.join(NAMED)}) nor a file")
    import yaml

    try:
        return from_reference_yaml(yaml.safe_load(path.read_text()), generator)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a usable face-vid2vid config ({err})") from None


def config_from_dict(data: dict[str, Any]) -> WarpConfig:
    """The WarpConfig stored in a checkpoint's ``meta["config"]`` (lists back to tuples)."""
    return WarpConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
