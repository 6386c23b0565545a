"""Contact sheets: a few frames of a video, evenly spread over it, side by side in one image.

Frames are decoded once with the project's video I/O (:func:`twinflow.media.video.iter_frames`)
and shrunk as they come, so a long video costs its decoding time and little memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from twinflow.media.video import iter_frames


@dataclass
class ContactConfig:
    """How a contact sheet looks.

    Attributes:
        frames: frames shown, evenly spread from the first to the last.
        height: height of each frame in the sheet, pixels (width keeps the aspect ratio; an
            evaluation video of ground truth, model and baseline side by side stays one row).
        max_width: a wider frame is shrunk to this width instead.
        gap: pixels of white between frames.
    """

    frames: int = 6
    height: int = 160
    max_width: int = 720
    gap: int = 4


def _thumb(frame: np.ndarray, cfg: ContactConfig) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = min(cfg.height / h, cfg.max_width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def sample_frames(video: str | Path, cfg: ContactConfig) -> list[np.ndarray]:
    """``cfg.frames`` shrunk frames ``(h, w, 3)`` uint8, evenly spread over ``video``.

    Keeps every ``stride``-th shrunk frame, doubling the stride (and dropping every other kept
    frame) whenever more than ``8 * cfg.frames`` are kept, then picks evenly among them."""
    kept: list[np.ndarray] = []
    stride = 1
    for i, frame in enumerate(iter_frames(video)):
        if i % stride:
            continue
        kept.append(_thumb(frame, cfg))
        if len(kept) > 8 * cfg.frames:
            kept = kept[::2]
            stride *= 2
    if not kept:
        return []
    idx = np.unique(np.linspace(0, len(kept) - 1, min(cfg.frames, len(kept))).round().astype(int))
    return [kept[i] for i in idx]


def contact_sheet(video: str | Path, out: str | Path, cfg: ContactConfig | None = None) -> Path:
    """Write the contact sheet of ``video`` to ``out`` (JPEG or PNG by suffix). Frames wider
    than tall (side-by-side evaluation videos) are stacked in rows instead of one long row."""
    cfg = cfg or ContactConfig()
    frames = sample_frames(video, cfg)
    if not frames:
        raise ValueError(f"{video}: no frame could be decoded")
    h, w = frames[0].shape[:2]
    per_row = max(1, min(len(frames), (4 * cfg.max_width) // (w + cfg.gap) // 2))
    rows = -(-len(frames) // per_row)
    sheet = np.full(
        (rows * (h + cfg.gap) - cfg.gap, per_row * (w + cfg.gap) - cfg.gap, 3), 255, np.uint8
    )
    for k, f in enumerate(frames):
        r, c = divmod(k, per_row)
        y, x = r * (h + cfg.gap), c * (w + cfg.gap)
        sheet[y : y + f.shape[0], x : x + f.shape[1]] = f[
            : sheet.shape[0] - y, : sheet.shape[1] - x
        ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out, quality=85)
    return out
