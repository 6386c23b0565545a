"""What ``workflow/rules/animate.smk`` needs at parse time: the ``animate:`` config resolved and
checked, and each animate render's inputs. Plain functions (no torch import), so that the rule
file holds rules only.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinflow.animate.presets import DEFAULT_FOR_GLOBAL, MODES, AnimateConfig, get_preset

SOURCES = ("photo", "video")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def list_videos(folder: str | Path | None) -> list[Path]:
    """Video files directly inside ``folder`` (sorted), or [] when ``folder`` is None."""
    if not folder:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"animate: extra_videos folder '{folder}' not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


@dataclass(frozen=True)
class AnimateSettings:
    """The ``animate:`` section of config.yaml, resolved for one run."""

    preset: AnimateConfig
    overrides: dict[str, Any]
    steps: int | None
    avd_steps: int | None
    max_minutes: float | None
    save_every: int
    extra_videos: tuple[str, ...]
    split: str
    test_fraction: float
    eval_frames: int
    render_size: int | None
    mode: str
    pretrained: str | None = None
    pretrained_avd: str | None = None
    finetune: bool = False

    @property
    def set_args(self) -> str:
        """``--set field=value`` arguments that pass the overrides to the stage CLIs."""
        parts = []
        for key, value in self.overrides.items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"--set {shlex.quote(f'{key}={text}')}")
        return " ".join(parts)

    @property
    def max_minutes_arg(self) -> str:
        return f"--max-minutes {self.max_minutes}" if self.max_minutes else ""

    @property
    def steps_arg(self) -> str:
        """``--steps N``, or nothing for the preset's own schedule."""
        return f"--steps {self.steps}" if self.steps else ""

    @property
    def avd_steps_arg(self) -> str:
        return f"--steps {self.avd_steps}" if self.avd_steps else ""

    def pretrained_arg(self, avd: bool = False) -> str:
        """``--pretrained PATH [--finetune]`` for the training stage (``avd``: of the AVD
        network), or nothing."""
        path = self.pretrained_avd if avd else self.pretrained
        if not path:
            return ""
        return f"--pretrained {shlex.quote(path)}" + (" --finetune" if self.finetune else "")

    def pretrained_inputs(self, avd: bool = False) -> list[str]:
        """The pretrained file as a rule input (a changed file retrains), or none."""
        path = self.pretrained_avd if avd else self.pretrained
        return [path] if path else []

    @property
    def train_runtime(self) -> int:
        """Minutes a cluster scheduler should allow a training job."""
        if self.pretrained and not self.finetune:
            return 15
        if self.max_minutes:
            return int(self.max_minutes) + 15
        return 60 if self.preset.name == "tiny" else 3 * 24 * 60


def _per_preset(value: Any, name: str, default: Any) -> Any:
    """``{tiny: 300}`` -> 300 for tiny, ``default`` for others; a plain value applies to all."""
    if isinstance(value, dict):
        got = value.get(name)
        return default if got is None else got
    return default if value is None else value


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _existing(section: dict, key: str) -> str | None:
    path = section.get(key)
    if path and not Path(path).is_file():
        raise ValueError(
            f"animate: {key} '{path}' not found (convert a reference checkpoint with "
            "python -m twinflow.convert mraa CPK --config NAME --out model.pt --avd avd.pt)"
        )
    return str(path) if path else None


def settings(config: dict) -> AnimateSettings:
    """Resolve ``config["animate"]``; raises ValueError on an unknown preset, field or mode,
    or a pretrained file that does not exist."""
    section = config.get("animate") or {}
    name = section.get("preset") or DEFAULT_FOR_GLOBAL.get(config.get("preset", "tiny"), "tiny")
    overrides = dict(section.get("overrides") or {})
    preset = get_preset(name, overrides)
    mode = section.get("mode", "avd")
    if mode not in MODES:
        raise ValueError(f"animate: mode '{mode}' is not one of {', '.join(MODES)}")
    return AnimateSettings(
        preset=preset,
        overrides=overrides,
        steps=_count(_per_preset(section.get("steps"), preset.name, preset.steps)),
        avd_steps=_count(_per_preset(section.get("avd_steps"), preset.name, preset.avd_steps)),
        max_minutes=_per_preset(section.get("max_minutes"), preset.name, None),
        save_every=int(section.get("save_every", 100)),
        extra_videos=tuple(str(p) for p in list_videos(section.get("extra_videos"))),
        split=section.get("split", "time"),
        test_fraction=float(section.get("test_fraction", 0.2)),
        eval_frames=int(section.get("eval_frames") or preset.eval_frames),
        render_size=section.get("render_size"),
        mode=mode,
        pretrained=_existing(section, "pretrained"),
        pretrained_avd=_existing(section, "pretrained_avd"),
        finetune=bool(section.get("finetune", False)),
    )


def render_mode(render, s: AnimateSettings) -> str:
    """The render's ``mode=`` option, else the configured default; checked."""
    mode = render.options.get("mode", s.mode)
    if mode not in MODES:
        raise ValueError(
            f"render '{render.render_id}': mode '{mode}' is not one of {', '.join(MODES)}"
        )
    return mode


def render_source(render, twin) -> str:
    """The frame to animate: the twin's prepared photo when it has one (or ``source=video`` is
    not set), else its normalised video's first frame."""
    choice = render.options.get("source", "photo" if twin.photo else "video")
    if choice not in SOURCES:
        raise ValueError(f"render '{render.render_id}': source '{choice}' is not photo or video")
    if choice == "photo" and not twin.photo:
        raise ValueError(f"render '{render.render_id}': twin '{twin.twin_id}' has no photo")
    media = f"results/{twin.twin_id}/media"
    return f"{media}/photo.png" if choice == "photo" else f"{media}/video.mp4"


def render_inputs(render, twin, s: AnimateSettings) -> dict[str, str]:
    """Named inputs of the animate render rule."""
    animate = f"results/{twin.twin_id}/animate"
    inputs = {
        "model": f"{animate}/model.pt",
        "source": render_source(render, twin),
        "driving": f"results/drive/{render.render_id}/video.mp4",
    }
    if render_mode(render, s) == "avd":
        inputs["avd"] = f"{animate}/avd.pt"
    if render.driving_audio:
        inputs["audio"] = f"results/drive/{render.render_id}/audio.wav"
    return inputs


def render_pattern(renders: dict) -> str:
    """A wildcard regex matching exactly the animate renders' ids (never matches when none)."""
    ids = sorted(r.render_id for r in renders.values() if r.pipeline == "animate")
    return "|".join(ids) if ids else "(?!x)x"


def check_renders(renders: dict, twins: dict, s: AnimateSettings) -> None:
    """Fail at parse time on a bad mode or source option of any animate render."""
    for render in renders.values():
        if render.pipeline == "animate":
            render_inputs(render, twins[render.twin_id], s)
