"""Body-model backends behind one interface (:class:`~twinflow.mocap.body_models.base.BodyModel`).

``anny`` (default, embedded: the model ships with the ``anny`` package) and ``smplx`` (an SMPL-X
``.npz`` model file the user supplies: ``models/smplx/SMPLX_NEUTRAL.npz`` through the model
registry, or an explicit path). :func:`load_body_model` builds either by name.
"""

from __future__ import annotations

from pathlib import Path

from twinflow.mocap.body_models.base import BodyModel
from twinflow.mocap.presets import BACKENDS


def load_body_model(
    backend: str = "anny",
    *,
    smplx_model: str | Path | None = None,
    registry: str | Path | None = None,
    gender: str = "neutral",
    facial_actions: tuple[str, ...] | None = None,
) -> BodyModel:
    """The backend ``backend``. For ``smplx``, ``smplx_model`` is a model file path; without
    one the registry entry ``smplx-neutral`` is resolved (checksum-verified)."""
    if backend == "anny":
        from twinflow.mocap.body_models.anny_backend import FACIAL_ACTIONS, AnnyBody

        return AnnyBody(FACIAL_ACTIONS if facial_actions is None else facial_actions)
    if backend == "smplx":
        from twinflow.mocap.body_models.smplx_backend import SmplxBody

        if smplx_model is None:
            from twinflow.models import REGISTRY, resolve

            smplx_model = resolve("smplx-neutral", registry or REGISTRY)
        return SmplxBody(smplx_model, gender=gender)
    raise ValueError(f"unknown body model backend '{backend}' (choose from {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "BodyModel", "load_body_model"]
