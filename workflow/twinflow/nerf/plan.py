"""What ``workflow/rules/nerf.smk`` needs at parse time: the ``nerf:`` config resolved and checked,
and each nerf render's options. Plain functions (no torch import), so the rule file holds rules.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinflow.nerf.presets import NerfConfig, get_preset

PASTE_MODES = ("full", "head", "face", "face_neck")  # twinflow.nerf.paste
PARSING_MODES = ("face", "face_neck")  # paste schemes that read the twin's perception parsing
RESOLUTIONS = ("normalised", "original")
FEATURE_KINDS = ("logmel", "hubert", "wav2vec2", "hubert_ernerf")  # computed from a wav
IMPORTED_KINDS = ("deepspeech", "esperanto", "hubert_ernerf", "ernerf_aud")  # ER-NeRF files
STAGES = ("head", "lips", "torso")
RENDER_OPTIONS = (
    "paste", "features", "smooth_path", "smooth_lips", "smooth_eye", "fix_eye", "bg", "start",
    "end", "depth", "resolution",
)  # fmt: skip
TRUE = ("1", "true", "yes")
PRETRAINED_FILES = ("lips.pt", "dataset.npz", "audio_features.npz", "import.json")


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
    pretrained: dict[str, dict[str, Any]] | None = None
    resolution: str = "normalised"
    finetune: bool = False

    def imported(self, twin: str) -> dict[str, Any] | None:
        """The ``pretrained:`` folder of ``twin`` (``path`` and its ``import.json``), or None."""
        return (self.pretrained or {}).get(twin)

    def twin_kind(self, twin: str) -> str:
        """The audio feature kind of the twin's model (imported models bring their own)."""
        imp = self.imported(twin)
        return imp["audio_features"] if imp else self.audio_features

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
    resolution = section.get("resolution", "normalised")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"nerf: resolution '{resolution}' is not one of {', '.join(RESOLUTIONS)}")
    pretrained = {
        str(twin): pretrained_folder(str(twin), path)
        for twin, path in (section.get("pretrained") or {}).items()
    }
    finetune = bool(section.get("finetune", False))
    if finetune:
        no_frames = sorted(t for t, imp in pretrained.items() if not imp["frames"])
        if no_frames:
            raise ValueError(
                f"nerf: finetune: the pretrained folder of twin(s) {', '.join(no_frames)} has no "
                "frames.mkv to train on (convert with the data folder's gt_imgs/ and parsing/)"
            )
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
        pretrained=pretrained,
        resolution=resolution,
        finetune=finetune,
    )


def pretrained_folder(twin: str, path: str) -> dict[str, Any]:
    """Check a ``pretrained:`` folder (``python -m twinflow.convert ernerf`` output) and read its
    ``import.json``; ValueError naming the twin and the missing file."""
    folder = Path(path)
    missing = [name for name in PRETRAINED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"nerf: pretrained: twin '{twin}': {folder} lacks {', '.join(missing)} "
            "(make it with: python -m twinflow.convert ernerf WORKSPACE --data DATA --out DIR)"
        )
    info = json.loads((folder / "import.json").read_text())
    return {
        "path": str(folder),
        "audio_features": info["audio_features"],
        "torso": (folder / "torso.pt").is_file(),
        "frames": (folder / "frames.mkv").is_file(),
    }


def paste_mode(render, s: NerfSettings) -> str:
    """The render's ``paste=`` option, else the configured default; checked."""
    mode = render.options.get("paste", s.paste)
    if mode not in PASTE_MODES:
        raise ValueError(
            f"render '{render.render_id}': paste '{mode}' is not one of {', '.join(PASTE_MODES)}"
        )
    return mode


def resolution(render, s: NerfSettings) -> str:
    """The render's ``resolution=`` option (``normalised`` | ``original``), else the config's."""
    value = render.options.get("resolution", s.resolution)
    if value not in RESOLUTIONS:
        raise ValueError(
            f"render '{render.render_id}': resolution '{value}' is not one of "
            f"{', '.join(RESOLUTIONS)}"
        )
    return value


def wants_depth(render) -> bool:
    """The render's ``depth=1`` option: a ``depth.mkv`` next to ``render.mkv``."""
    return render.options.get("depth", "0").lower() in TRUE


def depth_file(render) -> str:
    return f"results/drive/{render.render_id}/nerf/depth.mkv"


def render_pattern(renders: dict, depth: bool | None = None) -> str:
    """A wildcard regex matching exactly the nerf renders' ids (never matches when none);
    ``depth``: only those with (True) or without (False) the ``depth=1`` option."""
    ids = sorted(
        r.render_id
        for r in renders.values()
        if r.pipeline == "nerf" and (depth is None or wants_depth(r) == depth)
    )
    return "|".join(ids) if ids else "(?!x)x"


def paste_inputs(renders: dict, s: NerfSettings, twins: dict | None = None):
    """An input function of ``nerf_paste``: ``parsing`` (the twin's perception parsing, for the
    ``face`` / ``face_neck`` schemes), ``media_meta`` and ``source`` (its normalised video's
    meta.json and its source video, for ``resolution=original``); absent when not needed."""

    def files(wildcards) -> dict[str, str]:
        render = renders[wildcards.render]
        twin = render.twin_id
        out = {}
        if paste_mode(render, s) in PARSING_MODES:
            out["parsing"] = f"results/{twin}/perception/parsing.mkv"
        if resolution(render, s) == "original":
            out["media_meta"] = f"results/{twin}/media/meta.json"
            out["source"] = twins[twin].video
        return out

    return files


def paste_args(render, s: NerfSettings, inputs) -> str:
    """``--mode M [--parsing P] [--resolution original --meta M --source V]`` of a paste job
    (``inputs``: the job's input files by name, :func:`paste_inputs`)."""
    args = [f"--mode {paste_mode(render, s)}"]
    if inputs.get("parsing"):
        args.append(f"--parsing {shlex.quote(str(inputs.get('parsing')))}")
    if resolution(render, s) == "original":
        meta, source = (shlex.quote(str(inputs.get(k))) for k in ("media_meta", "source"))
        args.append(f"--resolution original --meta {meta} --source {source}")
    return " ".join(args)


def check_renders(renders: dict, s: NerfSettings) -> None:
    """Fail at parse time on a bad option of any nerf render, and on a render whose twin's
    model needs audio features twinflow cannot compute (ER-NeRF's DeepSpeech, ...) without a
    ``features=`` file."""
    for render in renders.values():
        if render.pipeline == "nerf":
            mode = paste_mode(render, s)
            resolution(render, s)
            if mode in PARSING_MODES and s.imported(render.twin_id):
                raise ValueError(
                    f"render '{render.render_id}': paste '{mode}' needs the twin's perception "
                    f"parsing, which an imported model (nerf: pretrained: '{render.twin_id}') "
                    "does not have: use paste=full or paste=head"
                )
            unknown = set(render.options) - set(RENDER_OPTIONS)
            if unknown:
                raise ValueError(
                    f"render '{render.render_id}': unknown nerf option(s) {sorted(unknown)}"
                    f" (known: {', '.join(RENDER_OPTIONS)})"
                )
            render_args(render)
            kind = s.twin_kind(render.twin_id)
            given = render.options.get("features")
            if given and not Path(given).is_file():
                raise ValueError(f"render '{render.render_id}': features file not found: {given}")
            if kind not in FEATURE_KINDS and not given:
                raise ValueError(
                    f"render '{render.render_id}': the model of twin '{render.twin_id}' reads "
                    f"'{kind}' audio features, which twinflow cannot compute: give the driving "
                    "audio's features as features=PATH (an .npy in ER-NeRF's layout) in the "
                    "render's options"
                )


def render_args(render) -> str:
    """ER-NeRF's inference options of a render (``smooth_path=7;smooth_lips=1;smooth_eye=1;
    fix_eye=0.25;bg=white``) and its time range (``start=2.5;end=10``, seconds of the driving
    audio) as ``twinflow.nerf.render`` flags; ValueError for a bad value."""
    o, args = render.options, []
    try:
        if "smooth_path" in o:
            args.append(f"--smooth-path {int(o['smooth_path'])}")
        for flag in ("smooth_lips", "smooth_eye"):
            if o.get(flag, "0").lower() in TRUE:
                args.append(f"--{flag.replace('_', '-')}")
        if "fix_eye" in o:
            args.append(f"--fix-eye {float(o['fix_eye'])}")
        start = float(o["start"]) if "start" in o else None
        end = float(o["end"]) if "end" in o else None
    except ValueError as err:
        raise ValueError(f"render '{render.render_id}': {err}") from None
    if (start is not None and start < 0) or (end is not None and end <= (start or 0.0)):
        raise ValueError(
            f"render '{render.render_id}': time range start={start} end={end} is empty or "
            "negative (seconds of the driving audio, start < end)"
        )
    if start is not None:
        args.append(f"--start {start}")
    if end is not None:
        args.append(f"--end {end}")
    if "bg" in o:
        if o["bg"] not in ("white", "black"):
            raise ValueError(f"render '{render.render_id}': bg '{o['bg']}' is not white or black")
        args.append(f"--bg {o['bg']}")
    return " ".join(args)


def driving_features_args(render, s: NerfSettings) -> str:
    """``--kind K`` (the twin's model's kind) and ``--npy PATH`` for a ``features=`` file."""
    args = f"--kind {s.twin_kind(render.twin_id)}"
    given = render.options.get("features")
    return f"{args} --npy {shlex.quote(given)}" if given else args


def twin_dir(s: NerfSettings, twin: str) -> str:
    """Where the twin's nerf model files are: its ``pretrained:`` folder or results/."""
    imp = s.imported(twin)
    return imp["path"] if imp else f"results/{twin}/nerf"


def fine_tuned(s: NerfSettings, twin: str) -> bool:
    """The twin's imported model is fine-tuned on its imported data (``nerf: finetune: true``)."""
    return bool(s.finetune and s.imported(twin))


def model_path(s: NerfSettings, twin: str, name: str) -> str:
    """``name`` of the twin's model: from its folder (:func:`twin_dir`), except a fine-tuned
    import's ``lips.pt``, which the twin's ``nerf_train_lips`` job writes to results/."""
    if name == "lips.pt" and fine_tuned(s, twin):
        return f"results/{twin}/nerf/lips.pt"
    return f"{twin_dir(s, twin)}/{name}"


def lips_inputs(s: NerfSettings):
    """An input function of ``nerf_train_lips``: the twin's dataset, frames, features and the
    checkpoint it starts from (``init``): results/{twin}/nerf and its head.pt, or, for a
    fine-tuned import, its folder's files and lips.pt (ER-NeRF's ``--finetune_lips``)."""

    def files(wildcards) -> dict[str, str]:
        folder = twin_dir(s, wildcards.twin)
        return {
            "dataset": f"{folder}/dataset.npz",
            "frames": f"{folder}/frames.mkv",
            "features": f"{folder}/audio_features.npz",
            "init": f"{folder}/lips.pt" if fine_tuned(s, wildcards.twin) else f"{folder}/head.pt",
        }

    return files


def lips_preset(s: NerfSettings, twin: str) -> str:
    """``init`` (the imported checkpoint's own model) for a fine-tuned import, else the preset."""
    return "init" if fine_tuned(s, twin) else s.name


def twin_file(renders: dict, name: str, s: NerfSettings | None = None):
    """An input function: ``<name>`` of the render's twin's model folder (``results/{twin}/nerf``
    or its ``pretrained:`` folder)."""

    def path(wildcards) -> str:
        twin = renders[wildcards.render].twin_id
        return model_path(s, twin, name) if s else f"results/{twin}/nerf/{name}"

    return path


def twin_torso(renders: dict, s: NerfSettings):
    """An input function: the twin's ``torso.pt`` (none for a head-only imported model)."""

    def path(wildcards) -> list[str]:
        twin = renders[wildcards.render].twin_id
        imp = s.imported(twin)
        return [] if imp and not imp["torso"] else [f"{twin_dir(s, twin)}/torso.pt"]

    return path


def model_torso(s: NerfSettings):
    """An input function for ``{twin}`` rules: ``torso.pt``, none for a head-only import."""

    def path(wildcards) -> list[str]:
        imp = s.imported(wildcards.twin)
        return [] if imp and not imp["torso"] else [f"{twin_dir(s, wildcards.twin)}/torso.pt"]

    return path


def driving_features_file(render) -> list[str]:
    """The render's ``features=`` file as an input (none when not given)."""
    given = render.options.get("features")
    return [given] if given else []


def model_file(s: NerfSettings, name: str):
    """An input function for rules with a ``{twin}`` wildcard (see :func:`twin_file`)."""
    return lambda wildcards: model_path(s, wildcards.twin, name)


def wants_metrics(s: NerfSettings, twin: str) -> bool:
    """A twin's metrics.json is made unless its model is imported without frames to compare."""
    imp = s.imported(twin)
    return imp is None or imp["frames"]
