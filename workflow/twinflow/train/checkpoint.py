"""Checkpoint files: one torch.save dict with a format tag, module weights and metadata.

Metadata records what a model was trained on (preset, feature type, sizes); loading can demand
values (``expect={"audio_features": "logmel"}``) and fails with a clear message on a mismatch
instead of a shape error later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from twinflow.atomic import atomic_path
from twinflow.errors import TwinflowError

FORMAT = "twinflow-checkpoint-v1"


class CheckpointError(TwinflowError):
    """A checkpoint is missing, not a twinflow checkpoint, or was trained for something else."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) atomically: a kill never leaves a partial file."""
    with atomic_path(path, suffix=".tmp") as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(
    path: str | Path,
    expect: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint; every ``expect`` key must equal the stored ``meta`` value."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found", path=path)
    data = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("not a twinflow checkpoint", path=path)
    meta = data.get("meta", {})
    for key, wanted in (expect or {}).items():
        if meta.get(key) != wanted:
            raise CheckpointError(
                f"checkpoint was trained with {key}={meta.get(key)!r} but this run uses "
                f"{key}={wanted!r}; retrain, or configure the same {key}",
                path=path,
            )
    return data
