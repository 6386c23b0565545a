"""What ``workflow/rules/mocap.smk`` needs at parse time: the ``mocap:`` config resolved and
checked, and the paths of a render's files. Plain functions (no torch import).

Where things live (``{base}`` is ``results/{twin}`` for a twin's own video and
``results/drive/{render}`` for a render's driving video):

* inputs (perception): ``{base}/perception/body.npz``, ``face.npz`` and, when some rule makes it,
  ``head_pose.npz`` (its focal length); ``{base}/media/meta.json`` or ``{base}/meta.json``;
* ``{base}/mocap/person0.npz`` (the fit), ``person0_world.npz`` (world trajectory),
  ``preview.mp4``, ``metrics.json``;
* ``results/mocap/traj/model.pt`` (the trajectory model, trained once) and
  ``results/mocap/traj/synthetic/`` (its data when ``traj_dataset`` is null);
* ``results/renders/{render}.mp4`` for every ``mocap`` row of renders.tsv: the preview.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from twinflow.mocap.presets import BACKENDS, FIT_PRESETS, TRAJ_PRESETS

PERSON = "person0"
TRAJ_MODEL = "results/mocap/traj/model.pt"
TRAJ_SYNTHETIC = "results/mocap/traj/synthetic"


@dataclass(frozen=True)
class MocapSettings:
    """The ``mocap:`` section of config.yaml, resolved for one run."""

    preset: str
    overrides: dict[str, Any]
    traj_overrides: dict[str, Any]
    backend: str
    smplx_model: str | None
    gender: str
    traj_dataset: str | None
    threads: int
    preview_opacity: float
    focal_from_head_pose: bool

    @staticmethod
    def _set(overrides: dict[str, Any]) -> str:
        parts = []
        for key, value in overrides.items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"--set {shlex.quote(f'{key}={text}')}")
        return " ".join(parts)

    @property
    def set_args(self) -> str:
        """``--set field=value`` arguments of the fitting preset overrides."""
        return self._set(self.overrides)

    @property
    def traj_set_args(self) -> str:
        return self._set(self.traj_overrides)

    @property
    def smplx_arg(self) -> str:
        return f"--smplx-model {shlex.quote(self.smplx_model)}" if self.smplx_model else ""

    @property
    def traj_data(self) -> str:
        """The trajectory model's training data: the configured dataset or the synthetic set."""
        return self.traj_dataset or TRAJ_SYNTHETIC

    def traj_synth_args(self) -> str:
        cfg = TRAJ_PRESETS[self.preset]
        seqs = self.traj_overrides.get("synth_sequences", cfg.synth_sequences)
        secs = self.traj_overrides.get("synth_seconds", cfg.synth_seconds)
        return f"--sequences {int(seqs)} --seconds {float(secs)}"


def settings(config: dict) -> MocapSettings:
    """Resolve and check ``config['mocap']`` (ValueError with a readable message if invalid)."""
    m = dict(config.get("mocap") or {})
    preset = m.get("preset") or config.get("preset", "tiny")
    if preset not in FIT_PRESETS:
        raise ValueError(f"mocap: unknown preset '{preset}' (choose from {', '.join(FIT_PRESETS)})")
    backend = m.get("backend", "anny")
    if backend not in BACKENDS:
        raise ValueError(f"mocap: unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    overrides = dict(m.get("overrides") or {})
    traj_overrides = dict(m.get("traj_overrides") or {})
    from twinflow.presets import resolve_preset

    resolve_preset(
        FIT_PRESETS,
        preset,
        {k: str(v) if not isinstance(v, str) else v for k, v in overrides.items()},
    )
    resolve_preset(
        TRAJ_PRESETS,
        preset,
        {k: str(v) if not isinstance(v, str) else v for k, v in traj_overrides.items()},
    )
    return MocapSettings(
        preset=preset,
        overrides=overrides,
        traj_overrides=traj_overrides,
        backend=backend,
        smplx_model=m.get("smplx_model") or None,
        gender=m.get("gender", "neutral"),
        traj_dataset=m.get("traj_dataset") or None,
        threads=int(m.get("threads", 1)),
        preview_opacity=float(m.get("preview_opacity", 0.7)),
        focal_from_head_pose=bool(m.get("focal_from_head_pose", False)),
    )


def base(render) -> str:
    """The folder a mocap render's fit lives under: the driving video's, else the twin's."""
    return (
        f"results/drive/{render.render_id}" if render.driving_video else f"results/{render.twin_id}"
    )


def upstream(base_dir: str) -> list[str]:
    """Perception files a fit under ``base_dir`` reads."""
    return [f"{base_dir}/perception/body.npz", f"{base_dir}/perception/face.npz"]


def outputs(base_dir: str) -> list[str]:
    m = f"{base_dir}/mocap"
    return [
        f"{m}/{PERSON}.npz",
        f"{m}/{PERSON}_world.npz",
        f"{m}/preview.mp4",
        f"{m}/metrics.json",
    ]


def render_pattern(renders: dict) -> str:
    """A wildcard regex matching exactly the mocap renders' ids (never matches when none)."""
    ids = sorted(r.render_id for r in renders.values() if r.pipeline == "mocap")
    return "|".join(ids) if ids else "(?!x)x"


def head_pose_input(path: str, settings: MocapSettings, rules) -> list[str]:
    """The perception head pose (its focal length) as an input when ``focal_from_head_pose``
    is set and the file exists or one of ``rules`` makes it; else none (the focal then follows
    the frame size)."""
    from pathlib import Path

    if settings.focal_from_head_pose and (
        Path(path).exists() or any(r.is_producer(path) for r in rules)
    ):
        return [path]
    return []


def head_pose_arg(files) -> str:
    return f"--head-pose {files}" if len(files) else ""
