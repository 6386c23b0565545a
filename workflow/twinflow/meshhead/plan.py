"""What ``workflow/rules/meshhead.smk`` needs at parse time: the ``meshhead:`` config resolved and
checked, and the inputs of each twin's and render's jobs. No torch import.

Render options (``config/renders.tsv``, column ``options``) of a meshhead row:
``pose=twin|neutral|video`` (head motion; ``video`` needs the row's ``driving_video``),
``source=frame|photo`` (``photo`` needs the twin's photo), ``source_frame=N``,
``speaker=NAME`` (style of a multi-speaker FLAME model); face-vid2vid's inference options
``relative=source|first|best|off`` (``best``: the reference's ``find_best_frame``),
``adapt_scale=true|false``, free-view offsets ``yaw=``, ``pitch=``, ``roll=`` (degrees).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from twinflow.meshhead.presets import (
    AUDIO2MESH_NAMES,
    POSES,
    PRESETS,
    SOURCES,
    Audio2MeshConfig,
    WarpConfig,
    audio2mesh_preset,
    warp_preset,
)
from twinflow.meshhead.topology import FLAME, MEDIAPIPE, TOPOLOGIES

OPTIONS = (
    "pose", "source", "source_frame", "speaker", "relative", "adapt_scale", "yaw", "pitch", "roll",
)  # fmt: skip
RELATIVE = ("source", "first", "best", "off")  # twinflow.meshhead.driving.RELATIVE


@dataclass(frozen=True)
class MeshheadSettings:
    """The ``meshhead:`` section of config.yaml, resolved for one run."""

    preset: str
    audio2mesh: Audio2MeshConfig
    warp: WarpConfig
    overrides: dict[str, dict[str, Any]]
    topology: str
    flame_data: str | None
    flame_fps: float
    flame_style: str | None
    audio2mesh_steps: int
    warp_steps: int
    max_minutes: float | None
    save_every: int
    test_fraction: float
    source: str
    source_frame: int | None
    pose: str
    render_size: int | None
    audio2mesh_preset: str = "tiny"
    pretrained: str | None = None
    finetune: bool = False
    flame_split: str = "time"
    flame_motion_fps: float | None = None
    warp_pretrained: str | None = None

    def dataset_fps(self, video_fps: float) -> float:
        """Frame rate of the mesh dataset: the video's, or ``flame.motion_fps`` (FLAME)."""
        if self.topology == FLAME and self.flame_motion_fps:
            return float(self.flame_motion_fps)
        return float(video_fps)

    @property
    def pretrained_args(self) -> str:
        """Arguments of the audio-to-mesh training stage for ``meshhead.pretrained``."""
        if not self.pretrained:
            return ""
        args = f"--pretrained {shlex.quote(self.pretrained)}"
        if self.flame_style:
            args += f" --style {shlex.quote(self.flame_style)}"
        return args + (" --finetune" if self.finetune else "")

    def set_args(self, model: str) -> str:
        """``--set field=value`` arguments passing ``overrides[model]`` to a stage CLI."""
        parts = []
        for key, value in (self.overrides.get(model) or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"--set {shlex.quote(f'{key}={text}')}")
        return " ".join(parts)

    @property
    def max_minutes_arg(self) -> str:
        return f"--max-minutes {self.max_minutes}" if self.max_minutes else ""

    @property
    def train_runtime(self) -> int:
        """Minutes a cluster scheduler should allow one training job."""
        if self.max_minutes:
            return int(self.max_minutes) + 15
        return 60 if self.preset == "tiny" else 3 * 24 * 60

    @property
    def has_warp(self) -> bool:
        return self.topology == MEDIAPIPE


def _per_preset(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, dict):
        got = value.get(name)
        return default if got is None else got
    return default if value is None else value


def settings(config: dict) -> MeshheadSettings:
    """Resolve ``config["meshhead"]``; ValueError on an unknown preset, field or choice."""
    section = config.get("meshhead") or {}
    name = section.get("preset") or config.get("preset", "tiny")
    if name not in PRESETS:
        raise ValueError(f"meshhead preset '{name}' is not one of {PRESETS}")
    overrides = section.get("overrides") or {}
    unknown = set(overrides) - {"audio2mesh", "warp"}
    if unknown:
        raise ValueError(
            f"meshhead overrides: unknown model(s) {sorted(unknown)}; use audio2mesh, warp"
        )
    a2m_name = section.get("audio2mesh_preset") or name
    if a2m_name not in AUDIO2MESH_NAMES:
        raise ValueError(
            f"meshhead audio2mesh_preset '{a2m_name}' is not one of {AUDIO2MESH_NAMES}"
        )
    a2m = audio2mesh_preset(a2m_name, overrides.get("audio2mesh"))
    warp = warp_preset(name, overrides.get("warp"))
    topology = section.get("topology") or MEDIAPIPE
    if topology not in TOPOLOGIES:
        raise ValueError(f"meshhead topology '{topology}' is not one of {TOPOLOGIES}")
    flame = section.get("flame") or {}
    if topology == FLAME and not flame.get("data"):
        raise ValueError(
            "meshhead topology flame needs meshhead.flame.data (a VOCASET-format folder)"
        )
    if (flame.get("split") or "time") not in ("time", "vocaset"):
        raise ValueError(f"meshhead flame split '{flame.get('split')}' is not time or vocaset")
    if section.get("finetune") and not section.get("pretrained"):
        raise ValueError("meshhead finetune needs meshhead.pretrained (a converted model)")
    steps = section.get("steps") or {}
    source = section.get("source") or "frame"
    pose = section.get("pose") or "twin"
    if source not in SOURCES or pose not in POSES:
        raise ValueError(f"meshhead source must be one of {SOURCES} and pose one of {POSES}")
    return MeshheadSettings(
        preset=name,
        audio2mesh=a2m,
        warp=warp,
        overrides=overrides,
        topology=topology,
        flame_data=flame.get("data"),
        flame_fps=float(flame.get("fps") or 60),
        flame_style=flame.get("style"),
        audio2mesh_steps=int(steps.get("audio2mesh") or a2m.steps),
        warp_steps=int(warp.steps if steps.get("warp") is None else steps["warp"]),
        max_minutes=_per_preset(section.get("max_minutes"), name, None),
        save_every=int(section.get("save_every") or 100),
        test_fraction=float(section.get("test_fraction", 0.2)),
        source=source,
        source_frame=section.get("source_frame"),
        pose=pose,
        render_size=section.get("render_size"),
        audio2mesh_preset=a2m_name,
        pretrained=section.get("pretrained"),
        finetune=bool(section.get("finetune")),
        flame_split=flame.get("split") or "time",
        flame_motion_fps=flame.get("motion_fps"),
        warp_pretrained=section.get("warp_pretrained"),
    )


def render_options(render, s: MeshheadSettings) -> dict[str, Any]:
    """The render's options over the config defaults; ValueError on a bad one."""
    opts = dict(render.options or {})
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ValueError(
            f"render '{render.render_id}': unknown meshhead option(s) {sorted(unknown)}; known: {OPTIONS}"
        )
    out = {
        "pose": opts.get("pose", s.pose),
        "source": opts.get("source", s.source),
        "source_frame": int(opts["source_frame"]) if opts.get("source_frame") else s.source_frame,
        "speaker": opts.get("speaker") or s.flame_style,
        "relative": opts.get("relative", "source"),
        "adapt_scale": _flag(opts.get("adapt_scale", False), render.render_id, "adapt_scale"),
    }
    for angle in ("yaw", "pitch", "roll"):
        try:
            out[angle] = float(opts.get(angle, 0.0))
        except (TypeError, ValueError):
            raise ValueError(
                f"render '{render.render_id}': {angle}='{opts[angle]}' is not a number of degrees"
            ) from None
    if out["relative"] not in RELATIVE:
        raise ValueError(
            f"render '{render.render_id}': relative '{out['relative']}' is not one of {RELATIVE}"
        )
    if out["pose"] not in POSES:
        raise ValueError(f"render '{render.render_id}': pose '{out['pose']}' is not one of {POSES}")
    if out["source"] not in SOURCES:
        raise ValueError(
            f"render '{render.render_id}': source '{out['source']}' is not one of {SOURCES}"
        )
    if out["pose"] == "video" and not render.driving_video:
        raise ValueError(f"render '{render.render_id}': pose=video needs a driving_video")
    return out


def _flag(value: Any, render_id: str, name: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"render '{render_id}': {name}='{value}' is not true or false")


def check_renders(renders: dict, twins: dict, s: MeshheadSettings) -> None:
    for render in renders.values():
        if render.pipeline != "meshhead":
            continue
        opts = render_options(render, s)
        if opts["source"] == "photo" and not twins[render.twin_id].photo:
            raise ValueError(
                f"render '{render.render_id}': source=photo but twin '{render.twin_id}' has no photo"
            )


def render_pattern(renders: dict) -> str:
    """A wildcard regex matching exactly the meshhead renders' ids (never matches when none)."""
    ids = sorted(r.render_id for r in renders.values() if r.pipeline == "meshhead")
    return "|".join(ids) if ids else "(?!x)x"


def dataset_inputs(twin: str, s: MeshheadSettings) -> dict[str, str]:
    if s.topology == FLAME:
        return {"vocaset": s.flame_data}
    p = f"results/{twin}/perception"
    return {
        "face": f"{p}/face.npz",
        "template": f"{p}/template.npz",
        "head_pose": f"{p}/head_pose.npz",
        "audio": f"results/{twin}/media/audio.wav",
    }


def dataset_args(inputs, s: MeshheadSettings) -> str:
    """Topology-specific arguments of the dataset stage (``inputs``: the job's named input)."""
    if s.topology == FLAME:
        style = f" --style {shlex.quote(s.flame_style)}" if s.flame_style else ""
        return (
            f"--topology flame --vocaset {shlex.quote(inputs.vocaset)} --vocaset-fps {s.flame_fps}"
            f" --vocaset-split {s.flame_split}{style}"
        )
    return (
        f"--face {inputs.face} --template {inputs.template} --head-pose {inputs.head_pose}"
        f" --audio {inputs.audio}"
    )


def audio2mesh_inputs(twin: str, s: MeshheadSettings) -> dict[str, str]:
    """The training stage's inputs: the dataset, and ``meshhead.pretrained`` when set."""
    out = {"dataset": f"results/{twin}/meshhead/dataset.npz"}
    if s.pretrained:
        out["pretrained"] = s.pretrained
    return out


def evaluate_inputs(twin: str, s: MeshheadSettings) -> dict[str, str]:
    m = f"results/{twin}/meshhead"
    out = {"dataset": f"{m}/dataset.npz", "audio2mesh": f"{m}/audio2mesh.pt"}
    if s.has_warp:
        out.update(frames=f"{m}/frames.npz", warp=f"{m}/warp.pt")
    return out


def render_inputs(render, twin, s: MeshheadSettings) -> dict[str, str]:
    m = f"results/{render.twin_id}/meshhead"
    d = f"results/drive/{render.render_id}/meshhead"
    out = {
        "warp": f"{m}/warp.pt",
        "mesh": f"{d}/mesh.npz",
        "dataset": f"{m}/dataset.npz",
        "frames": f"{m}/frames.npz",
    }
    opts = render_options(render, s)
    if opts["source"] == "photo":
        out["photo"] = f"results/{render.twin_id}/media/photo.png"
        out["photo_face"] = f"results/{render.twin_id}/perception/photo_face.npz"
    if opts["pose"] == "video":
        out["drive_pose"] = f"results/drive/{render.render_id}/perception/head_pose.npz"
    return out


def render_args(render, inputs, s: MeshheadSettings) -> str:
    """Options of the render stage (``inputs``: the job's named input)."""
    opts = render_options(render, s)
    args = [f"--pose {opts['pose']}", f"--source {opts['source']}"]
    if opts["source_frame"] is not None:
        args.append(f"--source-frame {int(opts['source_frame'])}")
    if opts["source"] == "photo":
        args.append(f"--photo {inputs.photo} --photo-face {inputs.photo_face}")
    if opts["pose"] == "video":
        args.append(f"--drive-pose {inputs.drive_pose}")
    if s.render_size:
        args.append(f"--size {int(s.render_size)}")
    args.append(f"--relative {opts['relative']}")
    if opts["adapt_scale"]:
        args.append("--adapt-scale")
    args += [f"--{a} {opts[a]:g}" for a in ("yaw", "pitch", "roll") if opts[a]]
    return " ".join(args)


def train_warp_inputs(twin: str, s: MeshheadSettings) -> dict[str, str]:
    """Inputs of a twin's warp training (``pretrained``: ``meshhead.warp_pretrained``)."""
    m = f"results/{twin}/meshhead"
    out = {"frames": f"{m}/frames.npz", "dataset": f"{m}/dataset.npz"}
    if s.warp_pretrained:
        out["pretrained"] = s.warp_pretrained
    return out


def mux_video(render, s: MeshheadSettings) -> str:
    """The picture of the final video: the rendered head, or the mesh preview (FLAME)."""
    d = f"results/drive/{render.render_id}/meshhead"
    return f"{d}/frames.mp4" if s.has_warp else f"{d}/mesh_preview.mp4"


def infer_args(render, s: MeshheadSettings) -> str:
    speaker = render_options(render, s)["speaker"]
    return f"--speaker {shlex.quote(speaker)}" if speaker else ""


def upstream(render, s: MeshheadSettings) -> list[str]:
    """Files of other stages (perception) that a meshhead render needs."""
    files = [
        f
        for k, f in dataset_inputs(render.twin_id, s).items()
        if k in ("face", "template", "head_pose")
    ]
    if s.has_warp:
        files += [
            f
            for k, f in render_inputs(render, None, s).items()
            if k in ("photo_face", "drive_pose")
        ]
    return files


def render_targets(render) -> list[str]:
    """The final video, the mesh preview and the twin's metrics."""
    return [
        f"results/renders/{render.render_id}.mp4",
        f"results/drive/{render.render_id}/meshhead/mesh_preview.mp4",
        f"results/{render.twin_id}/meshhead/metrics.json",
    ]
