"""Small shared pieces of the mocap stages: device choice, camera, file helpers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinflow.atomic import atomic_path, read_json
from twinflow.errors import InputError

log = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> torch.device:
    """``twinflow.device.pick_device`` (GPU when the job has one); the one fallback if that
    module is absent: CUDA when available, else the CPU."""
    try:
        from twinflow.device import pick_device as _pick
    except ImportError:  # pragma: no cover - the shared module exists in this repository
        if requested not in ("auto", "", None):
            return torch.device("cuda" if requested in ("gpu", "cuda") else requested)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _pick(requested)


def set_threads(threads: int | None) -> None:
    if threads and threads > 0:
        torch.set_num_threads(int(threads))


def media_meta(path: str | Path) -> tuple[int, int, float, int]:
    """``(width, height, fps, n_frames)`` from a normalised video's ``meta.json``."""
    meta = read_json(path)
    size = meta.get("size") or [meta["width"], meta["height"]]
    return int(size[0]), int(size[1]), float(meta["fps"]), int(meta.get("n_frames", 0))


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], np.float64)


def project(points: torch.Tensor, focal: float, cx: float, cy: float) -> torch.Tensor:
    """Pinhole projection of ``(..., 3)`` camera points to ``(..., 2)`` pixels (z clamped > 0)."""
    z = points[..., 2:3].clamp(min=0.05)
    return points[..., :2] / z * focal + points.new_tensor([cx, cy])


def save_npz(path: str | Path, arrays: dict[str, Any], info: dict | None = None) -> None:
    """Write ``arrays`` (+ ``info`` as JSON text) to a compressed ``.npz`` atomically."""
    data = dict(arrays)
    if info is not None:
        data["info"] = np.array(json.dumps(info, default=_json_default))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **data)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def npz_info(data: dict[str, np.ndarray]) -> dict:
    return json.loads(str(data["info"])) if "info" in data else {}


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
