# Sheet loading, validation and the path helpers every rule file uses.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version, validate

min_version("9.0")

PACKAGE_ROOT = str(Path(workflow.basedir) / "workflow")
# The Snakefile imports the package to read the sheets; jobs run `python -m twinflow.<stage>`
# in whatever environment they get (venv, conda env, cluster node), so each shell command
# puts the package on PYTHONPATH first. Without conda, `python` is the interpreter running
# Snakemake (the project's .venv, activated or not), also inside SLURM job steps.
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
# (Braces are doubled twice: once for the f-string, once for Snakemake's own formatting.)
_PREFIX = f"set -euo pipefail; export PYTHONPATH={PACKAGE_ROOT}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _PREFIX += f"export PATH={Path(sys.executable).parent}:$PATH; "
shell.prefix(_PREFIX)

from twinflow.errors import SheetError  # noqa: E402
from twinflow.sheets import load_sheets  # noqa: E402
from twinflow.perception.options import flags as _perception_flags  # noqa: E402
from twinflow.perception.needs import wants_head_pose  # noqa: E402

validate(config, "../schemas/config.schema.yaml")
try:
    SHEETS = load_sheets(config["twins"], config["renders"])
except SheetError as err:
    hint = ""
    if "demo/media" in str(err):
        hint = " (the default sheets describe the demo twin: `make demo-media` builds its media)"
    raise WorkflowError(f"invalid sample sheet: {err}{hint}") from None
TWINS = SHEETS.twins
RENDERS = SHEETS.renders
VIDEO = config["video"]


wildcard_constraints:
    twin="[A-Za-z0-9_-]+",
    render="[A-Za-z0-9_-]+",
    pipeline="nerf|meshhead|animate|anchor|mocap",


def scaled(base):
    """A resource that grows with the attempt: ``base`` on the first try, 2x, 3x on retries."""
    return lambda wildcards, attempt: base * attempt


SPEECH_TWINS = {
    r.twin_id for r in RENDERS.values() if r.pipeline in ("nerf", "meshhead")
}


def twin_needs_audio(twin_id):
    """Training audio is prepared when given, or when a speech-driven pipeline needs it."""
    return TWINS[twin_id].audio is not None or twin_id in SPEECH_TWINS


def preprocess_targets():
    targets = []
    for twin in TWINS.values():
        media = f"results/{twin.twin_id}/media"
        targets += [f"{media}/video.mp4", f"{media}/meta.json"]
        if twin_needs_audio(twin.twin_id):
            targets.append(f"{media}/audio.wav")
        if twin.photo:
            targets.append(f"{media}/photo.png")
    for render in RENDERS.values():
        drive = f"results/drive/{render.render_id}"
        if render.driving_audio:
            targets.append(f"{drive}/audio.wav")
        if render.driving_video:
            targets.append(f"{drive}/video.mp4")
        if render.pipeline == "anchor":
            targets.append(f"results/{render.twin_id}/media/clips")
    return sorted(set(targets))


def animate_targets():
    """Every animate render, and the reconstruction metrics of each twin they animate."""
    targets = []
    for render in SHEETS.renders_of("animate"):
        targets.append(f"results/renders/{render.render_id}.mp4")
        targets.append(f"results/{render.twin_id}/animate/metrics.json")
    return sorted(set(targets))


def nerf_targets():
    """Every nerf render, and the metrics of each twin they render (see workflow/rules/nerf.smk)."""
    targets = []
    for render in SHEETS.renders_of("nerf"):
        targets.append(f"results/renders/{render.render_id}.mp4")
        # option depth=1: the head's depth beside the render
        if nerf_plan.wants_depth(render):
            targets.append(nerf_plan.depth_file(render))
        # imported models (nerf: pretrained:) without frames have nothing to be measured against
        if nerf_plan.wants_metrics(NERF, render.twin_id):
            targets.append(f"results/{render.twin_id}/nerf/metrics.json")
    return sorted(set(targets))


def anchor_targets():
    """Every anchor render and the metrics of each twin it renders (workflow/rules/anchor.smk)."""
    targets = []
    for render in SHEETS.renders_of("anchor"):
        targets.append(f"results/{render.twin_id}/anchor/metrics.json")
        targets.append(f"results/renders/{render.render_id}.mp4")
    return sorted(set(targets))


def mocap_targets():
    """Every mocap render with its fit, world trajectory, preview and metrics
    (workflow/rules/mocap.smk)."""
    targets = []
    for render in SHEETS.renders_of("mocap"):
        targets += mocap_plan.outputs(mocap_plan.base(render))
        targets.append(f"results/renders/{render.render_id}.mp4")
    return sorted(set(targets))


def meshhead_targets():
    """Every meshhead render with its mesh preview, and the metrics of each twin it renders
    (workflow/rules/meshhead.smk)."""
    targets = []
    for render in SHEETS.renders_of("meshhead"):
        targets += meshhead_plan.render_targets(render)
    return sorted(set(targets))


# Perception (workflow/rules/perception.smk): config, paths and targets.

PERCEPTION = config["perception"]
PERCEPTION_TWIN = "results/{twin}/perception"
PERCEPTION_DRIVE = "results/drive/{render}/perception"


def perception_flags(section, prefix=None):
    """Command-line flags of one config section (see twinflow.perception.options)."""
    return _perception_flags(prefix or section, PERCEPTION[section])


def perception_id(wildcards):
    """The twin or render a perception job is about (for messages)."""
    return getattr(wildcards, "twin", None) or wildcards.render


def ready_input(base, pipeline, when=True):
    """``{"ready": gate}``: the perception gate of ``pipeline`` on the video under ``base`` (a
    twin's or a render's results folder), as an ``ancient`` input (it must pass; its rerun
    retrains nothing); ``{}`` when ``when`` is false."""
    return (
        {"ready": ancient(f"{base}/perception/ready/{pipeline}.json")} if when else {}
    )


def fit_ready_input(wildcards):
    """The perception gate of a mocap fit: of a driving video, named after its render's
    pipeline; of a twin's video, anchor when only anchor renders use it (its mesh conditioning
    is the fit), else mocap."""
    if getattr(wildcards, "render", None):
        render = RENDERS[wildcards.render]
        return ready_input(f"results/drive/{render.render_id}", render.pipeline)
    users = twin_pipelines(wildcards.twin)
    user = "anchor" if "anchor" in users and "mocap" not in users else "mocap"
    return ready_input(f"results/{wildcards.twin}", user)


def twin_pipelines(twin_id):
    """The pipelines of a twin's renders."""
    return sorted({r.pipeline for r in RENDERS.values() if r.twin_id == twin_id})


def twin_wants_head_pose(twin_id):
    """Whether the twin's video gets a face template and head pose (twinflow.perception.needs)."""
    return wants_head_pose(twin_pipelines(twin_id))


def report_pose_input(wildcards):
    """The head pose and template the perception report draws, where the video gets them."""
    if getattr(wildcards, "twin", None):
        base, wanted = PERCEPTION_TWIN, twin_wants_head_pose(wildcards.twin)
    else:
        base = PERCEPTION_DRIVE
        wanted = wants_head_pose([RENDERS[wildcards.render].pipeline])
    if not wanted:
        return {}
    base = base.format(**dict(wildcards.items()))
    return {"pose": f"{base}/head_pose.npz", "template": f"{base}/template.npz"}


def report_pose_args(input):
    """``--pose P --template T`` when the report has them."""
    if "pose" not in input.keys():
        return ""
    return f"--pose {input.pose} --template {input.template}"


def background_image(wildcards):
    """The replacement background image as an input, unless it is a colour."""
    spec = str(PERCEPTION["background"])
    return {} if spec.startswith("#") else {"image": spec}


def perception_targets():
    """Every perception output of every twin, and the face/pose files of driving videos."""
    targets = []
    for twin in TWINS.values():
        base = PERCEPTION_TWIN.format(twin=twin.twin_id)
        names = ["summary.json", "preview.mp4", "parsing.mkv", "background.png"]
        if twin_wants_head_pose(twin.twin_id):
            names.append("transforms_train.json")
        targets += [f"{base}/{name}" for name in names]
        if twin.photo:
            targets.append(f"{base}/photo_face.npz")
    for render in RENDERS.values():
        if render.driving_video:
            targets.append(f"results/drive/{render.render_id}/perception/summary.json")
    return sorted(set(targets))


def all_targets():
    return (
        preprocess_targets()
        + perception_targets()
        + animate_targets()
        + nerf_targets()
        + anchor_targets()
        + mocap_targets()
        + meshhead_targets()
    )


# The run report (workflow/rules/report.smk): its inputs, the rerun triggers.


def report_metrics():
    """Every requested metrics.json (the report's rerun triggers, with the renders)."""
    return [t for t in all_targets() if Path(t).name == "metrics.json"]


def report_renders():
    """Every requested render video."""
    return [f"results/renders/{render_id}.mp4" for render_id in RENDERS]
