# Sheet loading, validation and the path helpers every rule file uses.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

PACKAGE_ROOT = str(Path(workflow.basedir) / "workflow")
# The Snakefile imports the package to read the sheets; jobs run `python -m twinflow.<stage>`
# in whatever environment they get (venv, conda env, cluster node), so each shell command
# puts the package on PYTHONPATH first.
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + PACKAGE_ROOT
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)

from twinflow.errors import SheetError  # noqa: E402
from twinflow.sheets import load_sheets  # noqa: E402

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


def scaled(base):
    """A resource that grows with the attempt: ``base`` on the first try, 2x, 3x on retries."""
    return lambda wildcards, attempt: base * attempt


def twin_needs_audio(twin_id):
    """Training audio is prepared when given, or when a speech-driven pipeline needs it."""
    return TWINS[twin_id].audio is not None or any(
        r.twin_id == twin_id and r.pipeline in ("nerf", "meshhead")
        for r in RENDERS.values()
    )


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


def all_targets():
    return preprocess_targets()
