"""Shared pieces of the meshhead stages: the dataset file, threads and device, keypoints."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinflow.errors import InputError
from twinflow.meshhead.topology import MEDIAPIPE, Crop, project, warp_mouth_positions, warp_points

log = logging.getLogger("twinflow.meshhead")


def pick(requested: str = "auto") -> torch.device:
    """The stage's device: :func:`twinflow.device.pick_device` (CUDA when a GPU is given)."""
    try:
        from twinflow.device import pick_device
    except ImportError:  # an environment without twinflow.device: GPU when usable
        return torch.device("cuda" if requested != "cpu" and torch.cuda.is_available() else "cpu")
    return pick_device(requested)


def setup_torch(threads: int, device: str = "auto") -> torch.device:
    torch.set_num_threads(max(1, threads))
    dev = pick(device)
    log.info("device %s, %d threads", dev, torch.get_num_threads())
    return dev


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")


def save_npz(path: str | Path, info: dict | None = None, **arrays: Any) -> None:
    from twinflow.atomic import atomic_path

    if info is not None:
        arrays["info"] = np.array(json.dumps(info, default=_default))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_npz(path: str | Path, what: str = "file") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", path=path)
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    if "info" in out:
        out["info"] = json.loads(str(out["info"]))
    return out


def _default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def split_ranges(dataset: dict, split: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` frame ranges of ``split`` (0 train, 1 test) per sequence."""
    out = []
    starts = dataset["seq_start"]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        sel = np.flatnonzero(dataset["split"][a:b] == split)
        if len(sel):
            out.append((int(a + sel[0]), int(a + sel[-1] + 1)))
    return out


def audio_slice(dataset: dict, start: int, end: int) -> np.ndarray:
    """Audio samples of frames ``[start, end)`` (within one sequence)."""
    fps, sr = float(dataset["fps"]), int(dataset["sample_rate"])
    seq = int(np.searchsorted(dataset["seq_start"], start, side="right") - 1)
    f0 = int(dataset["seq_start"][seq])
    a0 = int(dataset["seq_audio_start"][seq])
    a1 = int(dataset["seq_audio_start"][seq + 1])
    lo = a0 + int(round((start - f0) / fps * sr))
    hi = min(a1, a0 + int(round((end - f0) / fps * sr)))
    out = dataset["audio"][lo:hi]
    need = int(round((end - start) / fps * sr))
    return np.pad(out, (0, max(0, need - len(out))))


def keypoints(
    mesh: np.ndarray,
    rot: np.ndarray,
    trans: np.ndarray,
    k: np.ndarray,
    crop: Crop,
    kind: str = "subset",
) -> np.ndarray:
    """Warp keypoints ``(T, K, 2)`` in the crop's [-1, 1] units from head-frame face-mesh points
    ``mesh (T, 468, 3)`` posed with ``rot, trans`` and projected with ``k``."""
    idx = warp_points(kind)
    px = project(
        mesh[:, idx].astype(np.float64), rot.astype(np.float64), trans.astype(np.float64), k
    )
    return crop.to_unit(px)


def mouth_kp(kind: str) -> list[int]:
    return warp_mouth_positions(kind)


def needs_face_mesh(dataset: dict, path, what: str) -> None:
    if str(dataset["topology"]) != MEDIAPIPE:
        raise InputError(
            f"{what} needs face-mesh keypoints (topology {MEDIAPIPE}); with topology "
            f"{dataset['topology']} the pipeline makes the mesh sequence and its preview only",
            path=path,
        )
