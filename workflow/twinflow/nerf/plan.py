"""What ``workflow/rules/nerf.smk`` needs at parse time: the ``nerf:`` config resolved and checked,
and each nerf render's options. Plain functions (no torch import), so the rule file holds rules.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from twinflow.nerf.presets import NerfConfig, get_preset

PASTE_MODES = ("full", "head")
FEATURE_KINDS = ("logmel", "hubert", "wav2vec2")
STAGES = ("head", "lips", "torso")


@dataclass(frozen=True)
class NerfSettings:
    """The ``nerf:`` section of config.yaml, resolved for one run."""

    name: str
    preset: NerfConfig
    overrides: dict[str, Any]
    audio_features: str
    steps: dict[str, int]
    max_minutes: dict[str, float | None]
    save_every: int
    threads: int
    paste: str
    seed: int = 0

    @property
    def set_args(self) -> str:
        """``--set field=value`` arguments passing the overrides to the stage CLIs."""
        parts = []
        for key, value in self.overrides.items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"--set {shlex.quote(f'{key}={text}')}")
        return " ".join(parts)

    def max_minutes_arg(self, stage: str) -> str:
        m = self.max_minutes.get(stage)
        return f"--max-minutes {m}" if m else ""

    @property
    def mem_mb(self) -> int:
        """Memory of the jobs that hold the whole dataset (frames at ``res``) in memory."""
        return 4000 if self.preset.res <= 256 else 32000

    def runtime(self, stage: str) -> int:
        """Minutes a cluster scheduler should allow a training job."""
        m = self.max_minutes.get(stage)
        if m:
            return int(m) + 15
        return 120 if self.name == "tiny" else 3 * 24 * 60


def _per_preset(value: Any, name: str) -> Any:
    """``{tiny: X}`` -> X for tiny, None for other presets."""
    if isinstance(value, dict) and name in value:
        return value[name]
    return None


def settings(config: dict) -> NerfSettings:
    """Resolve ``config["nerf"]``; raises ValueError on an unknown preset, field or option."""
    section = config.get("nerf") or {}
    name = section.get("preset") or config.get("preset", "tiny")
    overrides = dict(section.get("overrides") or {})
    preset = get_preset(name, overrides)
    kind = section.get("audio_features", "logmel")
    if kind not in FEATURE_KINDS:
        raise ValueError(f"nerf: audio_features '{kind}' is not one of {', '.join(FEATURE_KINDS)}")
    steps_cfg = _per_preset(section.get("steps"), name) or {}
    defaults = {"head": preset.head_steps, "lips": preset.lips_steps, "torso": preset.torso_steps}
    steps = {s: int(steps_cfg.get(s) or defaults[s]) for s in STAGES}
    minutes_cfg = _per_preset(section.get("max_minutes"), name)
    if isinstance(minutes_cfg, dict):
        max_minutes = {s: minutes_cfg.get(s) for s in STAGES}
    else:
        max_minutes = {s: minutes_cfg for s in STAGES}
    paste = section.get("paste", "full")
    if paste not in PASTE_MODES:
        raise ValueError(f"nerf: paste '{paste}' is not one of {', '.join(PASTE_MODES)}")
    return NerfSettings(
        name=name,
        preset=preset,
        overrides=overrides,
        audio_features=kind,
        steps=steps,
        max_minutes=max_minutes,
        save_every=int(section.get("save_every") or preset.save_every),
        threads=int(section.get("threads") or 1),
        paste=paste,
        seed=int(section.get("seed") or 0),
    )


def paste_mode(render, s: NerfSettings) -> str:
    """The render's ``paste=`` option, else the configured default; checked."""
    mode = render.options.get("paste", s.paste)
    if mode not in PASTE_MODES:
        raise ValueError(
            f"render '{render.render_id}': paste '{mode}' is not one of {', '.join(PASTE_MODES)}"
        )
    return mode


def render_pattern(renders: dict) -> str:
    """A wildcard regex matching exactly the nerf renders' ids (never matches when none)."""
    ids = sorted(r.render_id for r in renders.values() if r.pipeline == "nerf")
    return "|".join(ids) if ids else "(?!x)x"


def check_renders(renders: dict, s: NerfSettings) -> None:
    """Fail at parse time on a bad option of any nerf render."""
    for render in renders.values():
        if render.pipeline == "nerf":
            paste_mode(render, s)
            unknown = set(render.options) - {"paste"}
            if unknown:
                raise ValueError(
                    f"render '{render.render_id}': unknown nerf option(s) {sorted(unknown)} (known: paste)"
                )


def twin_file(renders: dict, name: str):
    """An input function: ``results/{twin}/nerf/<name>`` of the render's twin."""
    return lambda wildcards: f"results/{renders[wildcards.render].twin_id}/nerf/{name}"
