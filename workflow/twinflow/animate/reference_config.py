"""An MRAA config file (the reference's ``config/*.yaml``) as an :class:`AnimateConfig`.

For checkpoints trained with a config other than the published ones (which are presets
already): ``python -m twinflow.convert mraa CPK --config my.yaml``. What the reference builds
from a section that the file leaves out is what its constructors default to (e.g. no skips, no
occlusion map), so a missing key means the same thing here as there. Settings twinflow cannot
build raise :class:`ReferenceConfigError`; settings that only change training and that twinflow
does not have are listed in the returned notes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from twinflow.animate.presets import AnimateConfig, check_config
from twinflow.errors import TwinflowError
from twinflow.train.augment import flip_and_jitter_fields


class ReferenceConfigError(TwinflowError):
    """A reference config asks for something twinflow's MRAA cannot build."""


def _size(data: dict, path: Path, size: int | None) -> int:
    if size:
        return int(size)
    shape = (data.get("dataset_params") or {}).get("frame_shape")
    if shape:
        return int(shape[0])
    found = re.search(r"(\d+)$", path.stem)  # the reference names its configs vox256, ted384, ...
    if found:
        return int(found.group(1))
    raise ReferenceConfigError(
        "names no frame size (dataset_params: frame_shape is null and the file name does not end "
        "in one): give --size",
        path=path,
    )


def config_from_reference(
    data: dict[str, Any], path: str | Path, *, size: int | None = None
) -> tuple[AnimateConfig, list[str]]:
    """``(config, notes)`` for the parsed YAML ``data`` of ``path`` (the name of the config is
    ``mraa-<file stem>``); ``size`` overrides the frame side otherwise taken from
    ``dataset_params: frame_shape`` or the file name."""
    path = Path(path)
    notes: list[str] = []
    model = data.get("model_params")
    if not isinstance(model, dict):
        raise ReferenceConfigError("has no model_params section", path=path)
    region = model.get("region_predictor_params") or {}
    bg = model.get("bg_predictor_params") or {}
    gen = model.get("generator_params") or {}
    flow = gen.get("pixelwise_flow_predictor_params")
    avd = model.get("avd_network_params") or {}
    if not model.get("estimate_affine", False) or not region.get("pca_based", False):
        raise ReferenceConfigError(
            "uses keypoints or regression-based affines (estimate_affine / pca_based false); "
            "twinflow builds the PCA-based regions of the paper only",
            path=path,
        )
    if flow is None:
        raise ReferenceConfigError("has no pixelwise_flow_predictor_params", path=path)
    if not flow.get("use_deformed_source", True):
        raise ReferenceConfigError("sets use_deformed_source: false (not supported)", path=path)
    if region.get("fast_svd", False):
        notes.append(
            "fast_svd: true (torch_batch_svd) is replaced by torch.svd's sign convention; regions "
            "whose axes that library signs differently animate differently"
        )
    fields: dict[str, Any] = {
        "name": f"mraa-{path.stem}",
        "size": _size(data, path, size),
        "num_regions": int(model["num_regions"]),
        "num_channels": int(model.get("num_channels", 3)),
        "revert_axis_swap": bool(model.get("revert_axis_swap", True)),
        "region_block_expansion": region["block_expansion"],
        "region_max_features": region["max_features"],
        "region_num_blocks": region.get("num_blocks", 3),
        "region_scale_factor": float(region.get("scale_factor", 1)),
        "region_pad": int(region.get("pad", 3)),
        "temperature": float(region["temperature"]),
        "bg_type": bg.get("bg_type", "zero"),
        "bg_block_expansion": bg.get("block_expansion", 32),
        "bg_max_features": bg.get("max_features", 1024),
        "bg_num_blocks": bg.get("num_blocks", 5),
        "flow_block_expansion": flow["block_expansion"],
        "flow_max_features": flow["max_features"],
        "flow_num_blocks": flow["num_blocks"],
        "flow_scale_factor": float(flow.get("scale_factor", 1)),
        "use_covar_heatmap": bool(flow.get("use_covar_heatmap", False)),
        "region_var": float(flow.get("region_var", 0.01)),
        "estimate_occlusion": bool(flow.get("estimate_occlusion_map", False)),
        "gen_block_expansion": gen["block_expansion"],
        "gen_max_features": gen["max_features"],
        "gen_num_down_blocks": gen["num_down_blocks"],
        "gen_num_bottleneck_blocks": gen["num_bottleneck_blocks"],
        "gen_skips": bool(gen.get("skips", False)),
        "avd_id_bottleneck": avd.get("id_bottle_size", 64),
        "avd_pose_bottleneck": avd.get("pose_bottle_size", 64),
    }
    fields.update(_training(data, notes))
    try:
        return check_config(AnimateConfig(**fields)), notes
    except (TypeError, ValueError) as err:
        raise ReferenceConfigError(str(err), path=path) from None


def _training(data: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The training fields present in ``train_params``, ``train_avd_params`` and the dataset's
    ``augmentation_params``."""
    out: dict[str, Any] = {}
    train = data.get("train_params") or {}
    for key, field in (
        ("num_epochs", "epochs"),
        ("num_repeats", "num_repeats"),
        ("lr", "lr"),
        ("batch_size", "batch_size"),
    ):
        if key in train:
            out[field] = type(getattr(AnimateConfig, field))(train[key])
    if "epoch_milestones" in train:
        out["epoch_milestones"] = tuple(int(m) for m in train["epoch_milestones"])
    if "scales" in train:
        out["pyramid_scales"] = tuple(float(s) for s in train["scales"])
    for key, value in (train.get("transform_params") or {}).items():
        if key in ("sigma_affine", "sigma_tps", "points_tps"):
            out[key] = type(getattr(AnimateConfig, key))(value)
    weights = train.get("loss_weights") or {}
    if "perceptual" in weights:
        out["perceptual_weights"] = tuple(float(w) for w in weights["perceptual"])
    for key in ("equivariance_shift", "equivariance_affine"):
        if key in weights:
            out[key] = float(weights[key])
    avd = data.get("train_avd_params") or {}
    for key, field in (
        ("num_epochs", "avd_epochs"),
        ("num_repeats", "avd_num_repeats"),
        ("batch_size", "avd_batch_size"),
        ("lr", "avd_lr"),
        ("lambda_shift", "avd_lambda_shift"),
        ("lambda_affine", "avd_lambda_affine"),
        ("random_scale", "avd_random_scale"),
    ):
        if key in avd:
            out[field] = type(getattr(AnimateConfig, field))(avd[key])
    if "epoch_milestones" in avd:
        out["avd_epoch_milestones"] = tuple(int(m) for m in avd["epoch_milestones"])
    aug = (data.get("dataset_params") or {}).get("augmentation_params") or {}
    out.update(flip_and_jitter_fields(aug))
    resize = aug.get("resize_param")
    out["resize_ratio"] = tuple(float(r) for r in resize["ratio"]) if resize else ()
    if aug.get("rotation_param"):
        notes.append("rotation_param (random rotation augmentation) is not implemented: ignored")
    return out


def load_reference_config(
    path: str | Path, *, size: int | None = None
) -> tuple[AnimateConfig, list[str]]:
    """:func:`config_from_reference` of the YAML file ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceConfigError("config file not found", path=path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ReferenceConfigError(f"is not valid YAML ({err})", path=path) from None
    if not isinstance(data, dict):
        raise ReferenceConfigError("is not an MRAA config (no mapping at the top)", path=path)
    return config_from_reference(data, path, size=size)
