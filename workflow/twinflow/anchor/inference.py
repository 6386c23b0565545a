"""Body frames and head enhancement of one clip, shared by the render stages and the evaluation.

:func:`render_body` turns conditioning renders into body frames; :func:`enhance_heads` aligns the
face of each body frame (with the clip's face landmarks), masks it, regenerates it with the head
model conditioned on the head crop of the mesh render, and returns the crops, the transforms (in
body-frame pixels) and feathered blend masks; :func:`blend_heads` pastes them back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twinflow.anchor import head_align
from twinflow.anchor.data import resize
from twinflow.anchor.generate import generate
from twinflow.anchor.models import build_codec, load_denoiser
from twinflow.anchor.presets import AnchorConfig
from twinflow.models import REGISTRY

log = logging.getLogger("twinflow.anchor.inference")


@dataclass
class Trained:
    """A loaded body or head model with what inference needs."""

    model: torch.nn.Module
    cfg: AnchorConfig
    codec: torch.nn.Module
    scheduler_config: dict
    reference: np.ndarray
    face_frames: int | None = None
    """training frames that showed the face (head models; None: not recorded)"""

    @classmethod
    def load(
        cls, path: str | Path, kind: str, registry: str | Path = REGISTRY, device="cpu"
    ) -> Trained:
        model, cfg, ckpt = load_denoiser(path, kind, registry, device)
        codec = build_codec(cfg, registry, kind).to(device)
        return cls(
            model=model,
            cfg=cfg,
            codec=codec,
            scheduler_config=ckpt["meta"]["scheduler_config"],
            reference=np.asarray(ckpt["extra"]["reference"]),
            face_frames=ckpt["extra"].get("face_frames"),
        )


def render_body(
    body: Trained,
    conditions: np.ndarray,
    *,
    seed: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    device="cpu",
) -> np.ndarray:
    """Body frames ``(T, B, B, 3)`` for conditioning renders of any size ``(T, H, W, 3)``."""
    controls = resize(conditions, body.cfg.body_size)
    return generate(
        body.model,
        body.codec,
        body.cfg,
        body.scheduler_config,
        controls,
        body.reference,
        guidance=guidance,
        steps=steps,
        seed=seed,
        device=device,
    )


@dataclass
class Heads:
    """Inpainted head crops of a clip and how to paste them: ``crops (T, h, h, 3) uint8``,
    ``matrices (T, 2, 3)`` body-frame pixels -> crop, ``alpha (T, h, h) float32``;
    ``regenerated (T,) bool``: where the head model ran (None when not recorded)."""

    crops: np.ndarray
    matrices: np.ndarray
    alpha: np.ndarray
    regenerated: np.ndarray | None = None


def head_inputs(
    cfg: AnchorConfig,
    body_frames: np.ndarray,
    conditions: np.ndarray,
    landmarks: np.ndarray,
    parsing: np.ndarray | None = None,
    face_labels: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops of the body frames, of the full-size conditioning renders, the face masks
    (crop coordinates) and the body-frame transforms. ``landmarks`` (and ``parsing`` label maps,
    whose ``face_labels`` make the mask; else the landmarks' face silhouette) are in the pixels of
    the full-size conditioning renders (the driving video's)."""
    import cv2

    h = cfg.head_size
    height, width = conditions.shape[1:3]
    mats_full = head_align.align_matrices(landmarks, h, cfg.head_scale)
    mats = head_align.scale_matrix(mats_full, body_frames.shape[2] / width)
    crops = np.stack(
        [head_align.crop(f, m, h, cv2.INTER_LINEAR) for f, m in zip(body_frames, mats, strict=True)]
    )
    ctrl = np.stack([head_align.crop(c, m, h) for c, m in zip(conditions, mats_full, strict=True)])
    masks = []
    for t, m in enumerate(mats_full):
        if parsing is not None and face_labels:
            full = head_align.parsing_face_mask(parsing[t], face_labels)
        else:
            full = head_align.landmark_face_mask(landmarks[t], width, height)
        masks.append(head_align.crop_mask(full, m, h, cfg.mask_dilate))
    return crops, ctrl, np.stack(masks), mats


def enhance_heads(
    head: Trained,
    crops: np.ndarray,
    head_conditions: np.ndarray,
    masks: np.ndarray,
    matrices: np.ndarray,
    *,
    seed: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    device="cpu",
    has_face: np.ndarray | None = None,
) -> Heads:
    """Regenerate the masked face of each crop; feathered masks for blending.

    ``has_face`` ``(T,)`` bool (default: every frame): the frames whose face perception found;
    the others keep their crop with a zero blend mask (the body model's head stays), as do all
    frames when the head model was trained on no face (:func:`head_pass_frames`)."""
    cfg = head.cfg
    run = head_pass_frames(head, len(crops) if has_face is None else has_face)
    out = np.array(crops, copy=True)
    alpha = np.zeros(crops.shape[:3], np.float32)
    if run.any():
        out[run] = generate(
            head.model,
            head.codec,
            cfg,
            head.scheduler_config,
            head_conditions[run],
            head.reference,
            images=crops[run],
            masks=masks[run],
            guidance=cfg.head_guidance if guidance is None else guidance,
            steps=steps,
            seed=seed,
            device=device,
        )
        alpha[run] = np.stack([head_align.feathered(m, cfg.feather) for m in masks[run]])
    return Heads(crops=out, matrices=np.asarray(matrices, np.float32), alpha=alpha, regenerated=run)


def head_pass_frames(head: Trained, has_face: np.ndarray | int) -> np.ndarray:
    """``(T,)`` bool: where the head pass runs -- frames with a face (``has_face``, or an int
    ``T`` for all), none when the head model never saw a face in training."""
    run = np.ones(has_face, bool) if isinstance(has_face, int) else np.asarray(has_face, bool)
    return run & (head.face_frames != 0)


def blend_heads(body_frames: np.ndarray, heads: Heads) -> np.ndarray:
    """Paste the heads back into the body frames (inverse transform, feathered mask)."""
    return np.stack(
        [
            head_align.blend_back(f, c, m, a)
            for f, c, m, a in zip(
                body_frames, heads.crops, heads.matrices, heads.alpha, strict=True
            )
        ]
    )
