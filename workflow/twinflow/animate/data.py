"""The animate dataset: videos resized to the preset size, split into train and test frames.

Folder layout (written by :mod:`twinflow.animate.dataset`)::

    dataset/index.json      size, fps, split rule, and per video: name, source, frames,
                            train [start, stop) and test [start, stop) frame ranges
    dataset/<name>.u8       raw uint8 frames (frames x size x size x 3), read by memory map

Split rules:

* ``time`` (default): every video's last ``test_fraction`` of frames (one contiguous block at
  its end) is test, the rest train. Train and test frames then show the same people and setting
  but never the same moments.
* ``video``: the twin's own video is entirely test and the extra videos (``animate:
  extra_videos``) are entirely train: how well a model trained on other footage animates this
  person.

Training pairs (source, driving) are two random frames of one training video, the video picked
uniformly (every video weighs the same however long it is, like the paper's per-identity
sampling).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twinflow.atomic import write_json
from twinflow.errors import InputError
from twinflow.media.image import crop_box, fit_to_size
from twinflow.media.video import constant_rate, iter_frames, iter_frames_timed, probe_video


def safe_name(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "video"
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}-{i}"
    taken.add(name)
    return name


def resized_frames(
    path: str | Path, size: int, fps: float, normalised: bool
) -> Iterable[np.ndarray]:
    """Frames of ``path`` at ``size x size``: a normalised twin video is square already; another
    video is resampled to ``fps`` and centre-cropped to a square first."""
    if normalised:
        for rgb in iter_frames(path):
            yield fit_to_size(rgb, (0, 0, rgb.shape[1], rgb.shape[0]), size)
        return
    info = probe_video(path, min_frames=2)
    box = crop_box(info.width, info.height, None)
    if info.rotation in (90, 270, -90, -270):
        box = crop_box(info.height, info.width, None)
    count = max(1, round(info.duration * fps))
    for rgb in constant_rate(iter_frames_timed(path), fps, count):
        yield fit_to_size(rgb, box, size)


def split_ranges(
    n: int, role: str, split: str, test_fraction: float
) -> tuple[list[int], list[int]]:
    """``(train [start, stop), test [start, stop))`` frame ranges of a video with ``n`` frames;
    ``role`` is ``"twin"`` or ``"extra"``."""
    if split == "video":
        return ([0, 0], [0, n]) if role == "twin" else ([0, n], [n, n])
    n_test = min(n - 2, max(2, round(n * test_fraction)))
    if n_test < 2:
        raise InputError(f"{n} frames are too few to split into train and test")
    return [0, n - n_test], [n - n_test, n]


def write_dataset(
    out: str | Path,
    twin_video: str | Path,
    extra_videos: list[Path],
    *,
    size: int,
    fps: float,
    split: str,
    test_fraction: float,
    twin: str,
) -> dict:
    """Build the dataset folder ``out`` (atomically: a temporary folder renamed at the end)."""
    if split not in ("time", "video"):
        raise InputError(f"animate split must be 'time' or 'video', not {split!r}")
    if split == "video" and not extra_videos:
        raise InputError("split 'video' needs animate: extra_videos (the training videos)")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    taken: set[str] = set()
    entries = []
    sources = [(twin_video, "twin", twin)] + [(p, "extra", p.stem) for p in extra_videos]
    for path, role, label in sources:
        name = safe_name(label, taken)
        n = 0
        with open(tmp / f"{name}.u8", "wb") as fh:
            for rgb in resized_frames(path, size, fps, normalised=role == "twin"):
                fh.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
                n += 1
        train, test = split_ranges(n, role, split, test_fraction)
        entries.append(
            {
                "name": name,
                "role": role,
                "source": str(path),
                "frames": n,
                "train": train,
                "test": test,
            }
        )
    index = {
        "twin": twin,
        "size": size,
        "fps": fps,
        "split": split,
        "test_fraction": test_fraction,
        "videos": entries,
    }
    write_json(tmp / "index.json", index)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return index


@dataclass
class Clip:
    """Frames ``[start, stop)`` of one dataset video (a read-only memory map)."""

    name: str
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def load_clips(folder: str | Path, part: str) -> list[Clip]:
    """The ``"train"`` or ``"test"`` clips of a dataset folder (empty ranges skipped)."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    size = index["size"]
    clips = []
    for v in index["videos"]:
        start, stop = v[part]
        if stop - start < 2:
            continue
        data = np.memmap(
            folder / f"{v['name']}.u8", np.uint8, "r", shape=(v["frames"], size, size, 3)
        )
        clips.append(Clip(v["name"], data[start:stop]))
    return clips


def dataset_size(folder: str | Path) -> int:
    return int(json.loads((Path(folder) / "index.json").read_text())["size"])


class PairSampler:
    """Random (source, driving) training pairs as the reference's training data: a video picked
    uniformly (its ``id_sampling``: every video weighs the same however long it is), two of its
    frames drawn with replacement, the earlier one the source, then ``augment``
    (:class:`twinflow.train.augment.PairAugmentation`; None: none). Draws from numpy's and
    torch's global generators, which the training loop saves and restores on resume."""

    def __init__(self, clips: list[Clip], batch: int, augment=None):
        if not clips:
            raise InputError("the animate dataset has no training frames")
        self.clips, self.batch, self.augment = clips, batch, augment

    def sample(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        src, drv = [], []
        for _ in range(self.batch):
            clip = self.clips[np.random.randint(len(self.clips))]
            i, j = np.sort(np.random.randint(len(clip), size=2))
            a, b = np.asarray(clip.frames[i]), np.asarray(clip.frames[j])
            if self.augment is not None:
                a, b = self.augment(a, b)
            else:
                a, b = (
                    torch.from_numpy(f.copy()).permute(2, 0, 1).float().div_(255.0) for f in (a, b)
                )
            src.append(a)
            drv.append(b)
        return torch.stack(src).to(device), torch.stack(drv).to(device)
