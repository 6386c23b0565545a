"""The meshhead head warp at run time: a face-vid2vid checkpoint (:mod:`twinflow.meshhead.fv2v`).

:class:`WarpRunner` loads ``warp.pt`` (stage ``meshhead.warp``: trained by
``meshhead_train_warp``, or converted with ``python -m twinflow.convert fv2v``) and offers:

* :meth:`~WarpRunner.estimate`: the head-pose / expression estimator on frames (angles in
  degrees, ``t``, ``exp``);
* :meth:`~WarpRunner.source`: a source image's canonical keypoints and keypoints;
* :meth:`~WarpRunner.render`: frames of the source driven by per-frame angles, ``t`` and ``exp``
  (from :class:`twinflow.meshhead.driving.MeshDriver` or the estimator), optionally relative to
  an initial driving state (``demo.py``'s ``normalize_kp``, with ``adapt_scale``).

A checkpoint fitted to a twin also holds its mesh driver (``extra["driver"]``), its head crop and
default source frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twinflow.errors import InputError
from twinflow.meshhead.driving import MeshDriver
from twinflow.meshhead.fv2v.config import config_from_dict
from twinflow.meshhead.fv2v.model import NETWORKS, FaceVid2Vid
from twinflow.meshhead.fv2v.pose import normalize_kp, pose_degrees, transform_keypoints
from twinflow.train import load_checkpoint


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` -> float ``(N, 3, S, S)`` in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255
    )


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``(N, 3, S, S)`` in [0, 1] -> uint8 ``(N, S, S, 3)``."""
    return (images.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class SourceState:
    """A source image on the device with its canonical keypoints and keypoints (batch of one)."""

    image: torch.Tensor  # (1, 3, S, S)
    kp_canonical: dict
    kp: dict  # {"value": (1, K, 3), "jacobian": (1, K, 3, 3) or None}


@dataclass
class Motion:
    """Per-frame pose and expression: ``angles (T, 3)`` yaw, pitch, roll in degrees, ``t (T, 3)``,
    ``exp (T, 3K)``."""

    angles: np.ndarray
    t: np.ndarray
    exp: np.ndarray

    def __len__(self) -> int:
        return len(self.angles)

    def __getitem__(self, index) -> Motion:
        return Motion(self.angles[index], self.t[index], self.exp[index])

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Motion:
        if "angles" in d:
            return cls(d["angles"], d["t"], d["exp"])
        return cls(np.stack([d["yaw"], d["pitch"], d["roll"]], 1), d["t"], d["exp"])


class WarpRunner:
    """A face-vid2vid warp checkpoint ready for inference."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        self.path = Path(path)
        ckpt = load_checkpoint(path, expect={"stage": "meshhead.warp"})
        self.meta, self.extra = ckpt["meta"], ckpt.get("extra") or {}
        self.cfg = config_from_dict(self.meta["config"])
        self.device = torch.device(device)
        self.model = FaceVid2Vid(self.cfg)
        for name in NETWORKS:
            getattr(self.model, name).load_state_dict(ckpt["modules"][name])
        self.model.to(self.device).eval()
        self.steps = int(ckpt.get("steps", 0))
        state = self.extra.get("driver")
        self.driver = MeshDriver.from_state(state) if state is not None else None

    @property
    def size(self) -> int:
        return self.cfg.size

    def need_driver(self) -> MeshDriver:
        if self.driver is None:
            raise InputError(
                "has no mesh driver: it was not fitted to a twin (run meshhead_train_warp on "
                "it; with meshhead.steps.warp: 0 it is fitted without training)",
                path=self.path,
            )
        return self.driver

    @torch.no_grad()
    def estimate(self, frames: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
        """The estimator on uint8 frames ``(N, S, S, 3)``: ``yaw, pitch, roll`` (N,) degrees,
        ``t (N, 3)``, ``exp (N, 3K)``."""
        parts: dict[str, list] = {k: [] for k in ("yaw", "pitch", "roll", "t", "exp")}
        for i in range(0, len(frames), batch):
            he = self.model.he_estimator(to_tensor(frames[i : i + batch], self.device))
            for k, v in zip(("yaw", "pitch", "roll"), pose_degrees(he), strict=True):
                parts[k].append(v.cpu().numpy())
            parts["t"].append(he["t"].cpu().numpy())
            parts["exp"].append(he["exp"].cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    @torch.no_grad()
    def source(self, image: np.ndarray) -> SourceState:
        """uint8 ``(S, S, 3)`` -> its canonical keypoints and keypoints (estimator's pose)."""
        x = to_tensor(image[None], self.device)
        kp_c = self.model.kp_detector(x)
        he = self.model.he_estimator(x)
        motion = Motion.from_dict({k: v.cpu().numpy() for k, v in _degrees(he).items()})
        return SourceState(x, kp_c, self._keypoints(kp_c, motion))

    def _keypoints(self, kp_canonical: dict, motion: Motion) -> dict:
        n = len(motion)
        kp_c = {k: (v.expand(n, *v.shape[1:]) if v is not None else None)
                for k, v in kp_canonical.items()}  # fmt: skip
        a = torch.from_numpy(np.asarray(motion.angles, np.float32)).to(self.device)
        t = torch.from_numpy(np.asarray(motion.t, np.float32)).to(self.device)
        e = torch.from_numpy(np.asarray(motion.exp, np.float32)).to(self.device)
        return transform_keypoints(kp_c, a[:, 0], a[:, 1], a[:, 2], t, e)

    @torch.no_grad()
    def keypoints(self, src: SourceState, motion: Motion) -> np.ndarray:
        """``(T, K, 3)`` keypoints of ``motion`` on the source's canonical keypoints."""
        return self._keypoints(src.kp_canonical, motion)["value"].cpu().numpy()

    @torch.no_grad()
    def render(
        self,
        src: SourceState,
        motion: Motion,
        initial: Motion | None = None,
        adapt_scale: bool = False,
        batch: int = 16,
    ):
        """Yield uint8 frames ``(S, S, 3)`` of the source driven by ``motion``; with ``initial``
        (one frame) the motion is relative to it (and scaled when ``adapt_scale``)."""
        kp0 = self._keypoints(src.kp_canonical, initial) if initial is not None else None
        for i in range(0, len(motion), batch):
            kp_d = self._keypoints(src.kp_canonical, motion[i : i + batch])
            n = len(kp_d["value"])
            kp_s = _expand(src.kp, n)
            if kp0 is not None:
                kp_d = normalize_kp(
                    kp_s, kp_d, _expand(kp0, n), adapt_movement_scale=adapt_scale,
                    use_relative_movement=True, use_relative_jacobian=self.cfg.estimate_jacobian,
                )  # fmt: skip
            out = self.model.generator(
                src.image.expand(n, -1, -1, -1), kp_driving=kp_d, kp_source=kp_s
            )
            yield from to_uint8(out["prediction"])


def _degrees(he: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    yaw, pitch, roll = pose_degrees(he)
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "t": he["t"], "exp": he["exp"]}


def _expand(kp: dict, n: int) -> dict:
    return {k: (v[:1].expand(n, *v.shape[1:]) if v is not None else None) for k, v in kp.items()}
