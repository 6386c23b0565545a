"""Animation modes: which region parameters drive the generator for each driving frame.

* ``standard``: the driving frame's regions as they are (the paper's default for same-identity
  reconstruction; poses and shapes both come from the driving video).
* ``relative``: the source's regions moved by the driving video's motion since its first frame:
  ``shift = mu_s + scale * (mu_d - mu_d0)``, ``affine = A_d inv(A_d0) A_s``, where ``scale`` is
  the square root of the ratio of the areas of the convex hulls of source and first-driving region
  centres (1 when fewer than 3 regions or they are collinear, where the reference fails). As in
  the reference, ``covar`` (which shapes the flow predictor's region Gaussians) stays the
  driving frame's. Works when the first driving frame is in about the source's pose.
* ``avd``: the AVD network's regions (shape from the source, pose from the driving frame).

The reference's ``get_animation_region_params`` (``animate.py``), the function its demo uses.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from twinflow.animate.geometry import inv2x2
from twinflow.animate.presets import MODES

__all__ = ["MODES", "animation_regions", "movement_scale"]


def hull_area(points: np.ndarray) -> float:
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):
        return 0.0


def movement_scale(source_shift: torch.Tensor, driving_shift: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1)``: sqrt(area(source hull) / area(driving hull)) per sample, 1 if degenerate."""
    scales = []
    for s, d in zip(
        source_shift.detach().cpu().numpy(), driving_shift.detach().cpu().numpy(), strict=True
    ):
        a_s, a_d = hull_area(s), hull_area(d)
        scales.append(np.sqrt(a_s / a_d) if a_s > 1e-8 and a_d > 1e-8 else 1.0)
    return torch.tensor(scales, dtype=source_shift.dtype, device=source_shift.device)[:, None, None]


def animation_regions(
    mode: str,
    source: dict[str, torch.Tensor],
    driving: dict[str, torch.Tensor],
    driving_initial: dict[str, torch.Tensor] | None = None,
    avd=None,
    adapt_scale: bool = True,
) -> dict[str, torch.Tensor]:
    """The regions that drive the generator (see the module docstring). ``source`` and
    ``driving_initial`` may have batch 1 and are broadcast to the driving batch."""
    if mode == "standard":
        return {k: driving[k] for k in ("shift", "affine", "covar")}
    b = driving["shift"].shape[0]
    source = {k: v.expand(b, *v.shape[1:]) for k, v in source.items() if k != "heatmap"}
    if mode == "relative":
        if driving_initial is None:
            raise ValueError("relative mode needs the first driving frame's regions")
        initial = {
            k: v.expand(b, *v.shape[1:]) for k, v in driving_initial.items() if k != "heatmap"
        }
        scale = movement_scale(source["shift"], initial["shift"]) if adapt_scale else 1.0
        shift = source["shift"] + scale * (driving["shift"] - initial["shift"])
        affine = driving["affine"] @ inv2x2(initial["affine"]) @ source["affine"]
        return {"shift": shift, "affine": affine, "covar": driving["covar"]}
    if mode == "avd":
        if avd is None:
            raise ValueError("avd mode needs a trained AVD network")
        return avd(source, driving)
    raise ValueError(f"unknown animation mode {mode!r} (choose from {', '.join(MODES)})")
