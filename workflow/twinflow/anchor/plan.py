"""What ``workflow/rules/anchor.smk`` needs at parse time: the ``anchor:`` config resolved and
checked, the paths of the upstream files, and the clip lists behind the checkpoints. Plain
functions (no torch import), so that the rule file holds rules only.

Upstream files (the one place that names them):

* perception (:mod:`twinflow.perception`): ``{base}/perception/face.npz``, ``body.npz`` and
  ``parsing.mkv`` (the face mask of the head model, unless ``face_labels: []``);
* mocap: the fitted body ``{base}/mocap/person0.npz`` (``condition: mesh``);

where ``{base}`` is ``results/{twin}`` for the twin's own video and ``results/drive/{render}``
for a render's driving video.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinflow.anchor.presets import AnchorConfig, get_preset

CONDITIONS = ("mesh", "standin")
FACE = "{base}/perception/face.npz"
BODY = "{base}/perception/body.npz"
PARSING = "{base}/perception/parsing.mkv"
MOCAP_FIT = "{base}/mocap/person0.npz"
# twinflow.perception.parsing.LABELS: face skin, brows, eyes, lips, mouth interior
DEFAULT_FACE_LABELS = (1, 2, 3, 4, 5)


def _per_preset(value: Any, preset: str, default: Any = None) -> Any:
    """A config value that may be given per preset name (``{tiny: 300}``)."""
    if isinstance(value, dict):
        return value.get(preset, default)
    return default if value is None else value


@dataclass(frozen=True)
class AnchorSettings:
    """The ``anchor:`` section of config.yaml, resolved for one run."""

    preset: AnchorConfig
    overrides: dict[str, Any]
    condition: str
    steps: int | None
    head_steps: int | None
    max_minutes: float | None
    head_max_minutes: float | None
    save_every: int
    holdout: float
    eval_frames: int
    clip_overlap: int
    render_clip_seconds: float | None
    max_render_seconds: float | None
    face_labels: tuple[int, ...]
    seed: int
    threads: int
    pretrain: bool = False
    pretrain_steps: int | None = None
    pretrain_head_steps: int | None = None
    pretrained: tuple[tuple[str, str], ...] = ()
    models: tuple[tuple[str, str], ...] = ()

    def pretrained_of(self, kind: str) -> str | None:
        """The stage-1 checkpoint (path or registry name) fine-tuning of ``kind`` starts from."""
        return dict(self.pretrained).get(kind)

    def model_of(self, twin: str) -> str | None:
        """The folder with a supplied ``body.pt`` / ``head.pt`` for ``twin`` (no training)."""
        return dict(self.models).get(twin)

    def pretrain_steps_arg(self, kind: str) -> str:
        steps = self.pretrain_steps if kind == "body" else self.pretrain_head_steps
        return f"--steps {steps}" if steps else self.steps_arg(kind)

    @property
    def set_args(self) -> str:
        parts = []
        for key, value in self.overrides.items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"--set {shlex.quote(f'{key}={text}')}")
        return " ".join(parts)

    def steps_arg(self, kind: str) -> str:
        steps = self.steps if kind == "body" else self.head_steps
        return f"--steps {steps}" if steps else ""

    def minutes_arg(self, kind: str) -> str:
        minutes = self.max_minutes if kind == "body" else self.head_max_minutes
        return f"--max-minutes {minutes}" if minutes else ""

    def train_runtime(self, kind: str) -> int:
        """Minutes to ask the scheduler for a training job."""
        minutes = self.max_minutes if kind == "body" else self.head_max_minutes
        return int(minutes * 1.5 + 10) if minutes else (60 if self.preset.name == "tiny" else 2880)

    @property
    def max_render_arg(self) -> str:
        return f"--max-seconds {self.max_render_seconds}" if self.max_render_seconds else ""

    @property
    def face_labels_arg(self) -> str:
        return ",".join(map(str, self.face_labels))


def settings(config: dict) -> AnchorSettings:
    """Resolve ``config["anchor"]`` (missing keys take defaults); ValueError on bad values."""
    section = dict(config.get("anchor") or {})
    name = section.get("preset") or config.get("preset", "tiny")
    overrides = dict(section.get("overrides") or {})
    cfg = get_preset(name, overrides)
    condition = section.get("condition", "mesh")
    if condition not in CONDITIONS:
        raise ValueError(f"anchor: condition must be one of {CONDITIONS}, got {condition!r}")
    return AnchorSettings(
        preset=cfg,
        overrides=overrides,
        condition=condition,
        steps=_per_preset(section.get("steps"), name),
        head_steps=_per_preset(section.get("head_steps"), name),
        max_minutes=_per_preset(section.get("max_minutes"), name),
        head_max_minutes=_per_preset(section.get("head_max_minutes"), name),
        save_every=int(section.get("save_every", 100)),
        holdout=float(section.get("holdout", 0.15)),
        eval_frames=int(section.get("eval_frames", 48)),
        clip_overlap=int(section.get("clip_overlap", 8)),
        render_clip_seconds=section.get("render_clip_seconds"),
        max_render_seconds=_per_preset(section.get("max_render_seconds"), name),
        face_labels=tuple(
            int(v)
            for v in (
                DEFAULT_FACE_LABELS
                if section.get("face_labels") is None
                else section.get("face_labels")
            )
        ),
        seed=int(section.get("seed", 0)),
        threads=int(_per_preset(section.get("threads"), name, 2)),
        pretrain=bool(section.get("pretrain", False)),
        pretrain_steps=_per_preset(section.get("pretrain_steps"), name),
        pretrain_head_steps=_per_preset(section.get("pretrain_head_steps"), name),
        pretrained=tuple(
            (kind, str(path))
            for kind, path in (section.get("pretrained") or {}).items()
            if path is not None
        ),
        models=tuple((str(t), str(f)) for t, f in (section.get("models") or {}).items()),
    )


def twin_base(twin: str) -> str:
    return f"results/{twin}"


def motion_base(render) -> str:
    """Where a render's driving motion lives: its driving video's folder, else the twin's."""
    return (
        f"results/drive/{render.render_id}" if render.driving_video else f"results/{render.twin_id}"
    )


def motion_video(render) -> str:
    base = (
        f"results/drive/{render.render_id}"
        if render.driving_video
        else f"results/{render.twin_id}/media"
    )
    return f"{base}/video.mp4"


def condition_inputs(base: str, settings: AnchorSettings) -> dict[str, str]:
    """The files the conditioning renders of ``base``'s motion are made from."""
    if settings.condition == "mesh":
        return {"fit": MOCAP_FIT.format(base=base)}
    return {"face": FACE.format(base=base), "body": BODY.format(base=base)}


def condition_args(inputs: dict[str, str], settings: AnchorSettings) -> str:
    if settings.condition == "mesh":
        cfg = settings.preset
        color = ",".join(f"{v:g}" for v in cfg.condition_color)
        background = ",".join(f"{v:g}" for v in cfg.condition_background)
        return f"--source mesh --fit {inputs['fit']} --color {color} --background {background}"
    return f"--source standin --face {inputs['face']} --body {inputs['body']}"


def parsing_input(base: str, settings: AnchorSettings) -> dict[str, str]:
    """``{"parsing": path}`` when the face mask comes from the parsing map, else ``{}``."""
    return {"parsing": PARSING.format(base=base)} if settings.face_labels else {}


def parsing_arg(input, settings: AnchorSettings) -> str:
    """The stage arguments for a rule's (optional) ``parsing`` input (a Snakemake Namedlist)."""
    parsing = getattr(input, "parsing", None)
    if not parsing:
        return ""
    return f"--parsing {parsing} --face-labels {settings.face_labels_arg}"


def upstream_files(twin: str, renders, settings: AnchorSettings) -> list[str]:
    """Files from other pipelines that the anchor outputs of ``twin`` need."""
    files = {FACE.format(base=twin_base(twin)), BODY.format(base=twin_base(twin))}
    files |= set(condition_inputs(twin_base(twin), settings).values())
    files |= set(parsing_input(twin_base(twin), settings).values())
    for render in renders:
        base = motion_base(render)
        files.add(FACE.format(base=base))
        files |= set(parsing_input(base, settings).values())
        files |= set(condition_inputs(base, settings).values())
    return sorted(files)


def clip_entries(clips_json: str | Path) -> list[dict]:
    """``clips`` of a ``clips.json`` (split_clips' or a render's)."""
    return json.loads(Path(clips_json).read_text())["clips"]


def clip_bounds(clips_json: str | Path, clip: str) -> tuple[int, int]:
    for entry in clip_entries(clips_json):
        if entry["clip"] == clip:
            return int(entry["start_frame"]), int(entry["stop_frame"])
    raise ValueError(f"{clip} is not in {clips_json}")


def render_pattern(renders) -> str:
    """A wildcard regex matching exactly the anchor render ids."""
    ids = sorted(r.render_id for r in renders.values() if r.pipeline == "anchor")
    return "|".join(ids) if ids else "(?!x)x"


def bounds_arg(clips_json: str | Path, clip: str) -> str:
    start, stop = clip_bounds(clips_json, clip)
    return f"--start {start} --stop {stop}"


def twin_clip_names(checkpoints, twin: str) -> list[str]:
    """The twin's clips, from the ``split_clips`` checkpoint (an input function's helper)."""
    folder = checkpoints.split_clips.get(twin=twin).output.clips
    return [c["clip"] for c in clip_entries(f"{folder}/clips.json")]


def twin_data(checkpoints, twin: str) -> list[str]:
    """Every clip's training data of the twin (after the ``split_clips`` checkpoint)."""
    return [f"results/{twin}/anchor/data/{c}.npz" for c in twin_clip_names(checkpoints, twin)]


def render_clip_names(checkpoints, render: str) -> list[str]:
    """A render's clips, from its ``anchor_clips`` checkpoint."""
    clips_json = checkpoints.anchor_clips.get(render=render).output.clips
    return [c["clip"] for c in clip_entries(clips_json)]


def model_path(render, kind: str) -> str:
    """The trained (or imported) body or head model that renders ``render``."""
    return f"results/{render.twin_id}/anchor/{kind}.pt"


# --- two-stage training and supplied models ------------------------------------------------

PRETRAIN = "results/anchor_pretrain/{kind}.pt"


def is_path(name_or_path: str) -> bool:
    """A file path (``.pt`` or with a folder), not a registry name."""
    return name_or_path.endswith(".pt") or "/" in name_or_path


def registry_file(name_or_path: str, registry: str | Path) -> str:
    """A registry entry's file (``models/<file>``) or the path itself."""
    from twinflow.models import load_registry

    if is_path(name_or_path):
        return name_or_path
    entries = load_registry(registry)
    if name_or_path not in entries:
        raise ValueError(
            f"anchor: pretrained {name_or_path!r} is neither a file nor a registry entry"
        )
    return str(Path(registry).parent / entries[name_or_path].file)


def init_input(settings: AnchorSettings, kind: str, registry: str | Path) -> dict[str, str]:
    """``{"init": checkpoint}`` the per-twin fine-tuning of ``kind`` starts from: the configured
    ``pretrained`` weights, else the stage-1 job's output (``pretrain: true``), else ``{}``."""
    given = settings.pretrained_of(kind)
    if given:
        return {"init": registry_file(given, registry)}
    if settings.pretrain:
        return {"init": PRETRAIN.format(kind=kind)}
    return {}


def init_arg(input, settings: AnchorSettings, kind: str) -> str:
    """``--init`` for a training rule's optional ``init`` input (a registry name is passed as
    such, so that the stage verifies its checksum)."""
    init = getattr(input, "init", None)
    if not init:
        return ""
    given = settings.pretrained_of(kind)
    name = given if given and not is_path(given) else init
    return f"--init {shlex.quote(str(name))}"


def supplied_pattern(twins, settings: AnchorSettings, supplied: bool) -> str:
    """A wildcard regex of the twins whose models are supplied (``supplied``) or trained."""
    given = {t for t, _ in settings.models}
    ids = sorted(t for t in twins if (t in given) == supplied)
    return "|".join(ids) if ids else "(?!x)x"


def supplied_model(settings: AnchorSettings, twin: str, kind: str) -> str:
    folder = settings.model_of(twin)
    if folder is None:
        raise ValueError(f"anchor: no supplied model for twin {twin}")
    return str(Path(folder) / f"{kind}.pt")


def pretrain_data(checkpoints, twins) -> list[str]:
    """Every clip of every twin of the sheet: stage 1's training data."""
    return [path for twin in sorted(twins) for path in twin_data(checkpoints, twin)]
