"""The assembled dataset in memory: frames, labels, cameras, signals and audio features.

Reads what :mod:`twinflow.nerf.dataset` and :mod:`twinflow.nerf.audio_features` wrote and draws
training rays: random pixels (a share of them on the head), mouth patches, and the background
each stage composites over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.errors import InputError
from twinflow.nerf.dataset import FACE, HEAD, TORSO


@dataclass
class RayBatch:
    """Rays of one step. ``frames``: the frame of each ray; ``uv``: pixel positions (continuous,
    column/row); ``rgb``: target colours; ``labels``: their labels; ``bg``: the background that
    the stage composites over (plate, or the frame without its head for the head stage)."""

    frames: torch.Tensor
    uv: torch.Tensor
    rgb: torch.Tensor
    labels: torch.Tensor
    bg: torch.Tensor
    patch: int = 0  # >0: the rays form (len/patch^2) patches of patch x patch, row-major


def valid_cameras(c2w: np.ndarray, path: str | Path) -> np.ndarray:
    """``c2w (T, 4, 4)`` unchanged if every frame's rotation is orthonormal with determinant 1;
    otherwise an error naming the file and the first bad frames (a dataset written before every
    frame had a pose, or a corrupt one): render, paste and evaluate walk all frames."""
    rot = np.asarray(c2w, np.float64)[:, :3, :3]
    err = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max((1, 2))
    bad = np.flatnonzero((err > 1e-3) | (np.abs(np.linalg.det(rot) - 1) > 1e-3))
    if len(bad):
        raise InputError(
            f"{len(bad)} of {len(rot)} frames have no valid camera (frames {bad[:8].tolist()}"
            f"{' ...' if len(bad) > 8 else ''}); rebuild it with the nerf_dataset rule",
            path=path,
        )
    return c2w


class NerfData:
    """Everything a stage needs, as tensors on ``device``."""

    def __init__(
        self,
        dataset: str | Path,
        frames: str | Path | None,
        features: str | Path | None,
        device="cpu",
    ):
        from twinflow.nerf.audio_features import load_features
        from twinflow.perception.store import load_info, load_npz, read_masks

        arrays = load_npz(dataset)
        self.info = load_info(arrays)
        self.device = torch.device(device)
        t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt, device=self.device)  # noqa: E731
        self.c2w = t(valid_cameras(arrays["c2w"], dataset))
        self.intrinsics = t(arrays["intrinsics"])
        self.box = t(arrays["box"])
        self.res = int(arrays["res"])
        self.crop = arrays["crop"].astype(int)
        self.blink = t(arrays["blink"])
        self.mouth_box = t(arrays["mouth_box"])
        self.mouth_lmk = arrays["mouth_lmk"]
        self.train_idx = t(arrays["train"], torch.long)
        self.val_idx = t(arrays["val"], torch.long)
        self.bg = t(arrays["bg"]) / 255.0
        self.bg_frame = arrays["bg_frame"]
        self.head_region = t(arrays["head_region"], torch.bool)
        self.n_frames = len(self.c2w)
        self.fps = float(self.info.get("fps", 25.0))
        self.images = self.labels = None
        if frames is not None:
            rgba = read_masks(frames)
            if len(rgba) != self.n_frames:
                raise InputError(
                    f"{len(rgba)} frames, dataset.npz has {self.n_frames}", path=frames
                )
            self.images = torch.as_tensor(rgba[..., :3], device=self.device)  # uint8
            self.labels = torch.as_tensor(rgba[..., 3], device=self.device)
        self.features = self.feature_info = self.mean_window = None
        if features is not None:
            feats, self.feature_info = load_features(features)
            self.features = fit_length(torch.as_tensor(feats, device=self.device), self.n_frames)
            # the mean feature window of the training frames: "no audio information"
            self.mean_window = self.features[self.train_idx].mean(0)
        self._region_pix = torch.nonzero(self.head_region.flatten())[:, 0]

    # -- per-pixel lookups ---------------------------------------------------------------
    def pixels(self, frames: torch.Tensor, pix: torch.Tensor):
        """Colours ``(N, 3)`` in [0, 1] and labels of flat pixel indices ``pix`` of ``frames``."""
        flat = self.images.view(self.n_frames, -1, 3)
        rgb = flat[frames, pix].float() / 255.0
        labels = self.labels.view(self.n_frames, -1)[frames, pix]
        return rgb, labels

    def head_bg(self, rgb: torch.Tensor, labels: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
        """What the head composites over: the frame itself outside the head, the plate inside."""
        plate = self.bg.view(-1, 3)[pix]
        return torch.where((labels >= HEAD)[:, None], plate, rgb)

    # -- ray batches ---------------------------------------------------------------------
    def random_rays(
        self,
        n_rays: int,
        n_frames: int,
        head_fraction: float,
        gen: torch.Generator | None = None,
        stage: str = "head",
        mouth_fraction: float = 0.0,
    ) -> RayBatch:
        """``n_rays`` rays from ``n_frames`` random training frames: ``mouth_fraction`` of them
        inside the frame's mouth box, ``head_fraction`` on head pixels (labels head or face;
        torso for the torso stage), the others anywhere in the head region (head stage) or the
        image (torso stage)."""
        dev = self.device
        frames = self.train_idx[_randint(len(self.train_idx), (n_frames,), gen, dev)]
        per = n_rays // n_frames
        frames = frames.repeat_interleave(per)
        n = len(frames)
        n_head = int(round(head_fraction * n))
        lab = self.labels.view(self.n_frames, -1)
        pix = torch.empty(n, dtype=torch.long, device=dev)
        if stage == "torso":
            pix[:] = _randint(self.res * self.res, (n,), gen, dev)
            # a share of the rays on the torso itself
            want = (TORSO,)
        else:
            pix[:] = self._region_pix[_randint(len(self._region_pix), (n,), gen, dev)]
            want = (HEAD, FACE)
        if n_head:
            # rejection: draw candidates, keep the first that carries a wanted label
            if stage == "torso":
                cand = _randint(self.res * self.res, (n_head, 8), gen, dev)
            else:
                cand = self._region_pix[_randint(len(self._region_pix), (n_head, 8), gen, dev)]
            cl = lab[frames[:n_head, None], cand]
            ok = torch.zeros_like(cl, dtype=torch.bool)
            for w in want:
                ok |= cl == w
            first = torch.where(
                ok.any(1), ok.float().argmax(1), torch.zeros(n_head, dtype=torch.long, device=dev)
            )
            pix[:n_head] = cand.gather(1, first[:, None])[:, 0]
        n_mouth = min(n, int(round(mouth_fraction * n)))
        if n_mouth:
            box = self.mouth_box[frames[-n_mouth:]]
            r = torch.rand(n_mouth, 2, generator=gen).to(dev)
            xy = (box[:, :2] + r * (box[:, 2:] - box[:, :2])).long().clamp(0, self.res - 1)
            pix[-n_mouth:] = xy[:, 1] * self.res + xy[:, 0]
        rgb, labels = self.pixels(frames, pix)
        bg = self.head_bg(rgb, labels, pix) if stage == "head" else self.bg.view(-1, 3)[pix]
        u = (pix % self.res).float() + 0.5
        v = torch.div(pix, self.res, rounding_mode="floor").float() + 0.5
        return RayBatch(frames, torch.stack([u, v], -1), rgb, labels, bg)

    def mouth_patches(
        self, n_frames: int, patch: int, gen: torch.Generator | None = None
    ) -> RayBatch:
        """A ``patch x patch`` grid of rays over the (jittered) mouth box of random training
        frames; targets are bilinearly interpolated, so boxes of any size work."""
        dev = self.device
        frames = self.train_idx[_randint(len(self.train_idx), (n_frames,), gen, dev)]
        box = self.mouth_box[frames]  # (B, 4)
        size = (box[:, 2:] - box[:, :2]).amax(1)
        jitter = (torch.rand(n_frames, 2, generator=gen).to(dev) - 0.5) * 0.2 * size[:, None]
        centre = (box[:, :2] + box[:, 2:]) / 2 + jitter
        lin = (torch.arange(patch, device=dev).float() + 0.5) / patch - 0.5
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        uv = centre[:, None, None, :] + torch.stack([gx, gy], -1)[None] * size[:, None, None, None]
        uv = uv.clamp(0.5, self.res - 0.5).reshape(n_frames, -1, 2)
        img = self.images[frames].permute(0, 3, 1, 2).float() / 255.0
        lab = (self.labels[frames] >= HEAD).float()[:, None]
        grid = (uv / self.res * 2 - 1)[:, :, None, :]
        rgb = F.grid_sample(img, grid, align_corners=False)[..., 0].permute(0, 2, 1).reshape(-1, 3)
        head = F.grid_sample(lab, grid, align_corners=False)[..., 0].permute(0, 2, 1).reshape(-1)
        plate = F.grid_sample(
            self.bg.permute(2, 0, 1)[None].expand(n_frames, -1, -1, -1), grid, align_corners=False
        )
        plate = plate[..., 0].permute(0, 2, 1).reshape(-1, 3)
        bg = head[:, None] * plate + (1 - head[:, None]) * rgb
        near = uv.long().clamp(0, self.res - 1)  # nearest pixel's label
        labels = self.labels[frames[:, None], near[..., 1], near[..., 0]].reshape(-1)
        return RayBatch(
            frames.repeat_interleave(patch * patch), uv.reshape(-1, 2), rgb, labels, bg, patch
        )

    def image_uv(self) -> torch.Tensor:
        """Pixel centres ``(res*res, 2)`` of the whole image, row-major."""
        v, u = torch.meshgrid(
            torch.arange(self.res, device=self.device),
            torch.arange(self.res, device=self.device),
            indexing="ij",
        )
        return torch.stack([u.flatten(), v.flatten()], -1).float() + 0.5


def _randint(
    high: int, shape: tuple[int, ...], gen: torch.Generator | None, device
) -> torch.Tensor:
    """Random integers drawn on the CPU generator (reproducible on any device), then moved."""
    return torch.randint(high, shape, generator=gen).to(device)


def fit_length(feats: torch.Tensor, n: int) -> torch.Tensor:
    """Features of exactly ``n`` frames: cut, or padded by repeating the last frame."""
    if len(feats) >= n:
        return feats[:n]
    return torch.cat([feats, feats[-1:].expand(n - len(feats), *feats.shape[1:])], 0)


def feature_kind(path: str | Path) -> str:
    from twinflow.nerf.audio_features import load_features

    return load_features(path)[1]["kind"]
