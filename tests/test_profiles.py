"""The profiles without a cluster. profiles/slurm plans the demo, groups preprocessing, gives GPUs
only to model rules, and every rule it names exists (Snakemake ignores unknown names silently);
profiles/local runs GPU jobs one at a time.

The runs on a real SLURM cluster are in tests/slurm (``make test-slurm``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, SNAKEMAKE, make_project, snakemake

PROFILE = REPO / "profiles" / "slurm"
# Rules the profile names before they are written (e.g. sizes for a model stage in progress).
# Empty it as they land; a name here that never becomes a rule must be corrected in the profile.
PENDING_RULES: set[str] = set()

_JOB = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$")
_RESOURCES = re.compile(r"^\s+resources: (.*)$")


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def demo_sheets(root: Path, media: Path) -> Path:
    """The demo sheets (config/*.tsv) with their media paths pointed at ``media``."""
    lines = (REPO / "config" / "renders.tsv").read_text().splitlines()
    columns = lines[0].split("\t")
    renders = []
    for line in lines[1:]:
        row = dict(zip(columns, line.split("\t"), strict=False))
        for key in ("driving_audio", "driving_video"):
            if row.get(key):
                row[key] = str(media / Path(row[key]).name)
        renders.append(row)
    twin = {"twin_id": "demo", "video": media / "talk.mp4", "photo": media / "photo.png"}
    return make_project(root, twins=[twin], renders=renders)


@pytest.fixture(scope="module")
def demo_project(demo_media, tmp_path_factory) -> Path:
    return demo_sheets(tmp_path_factory.mktemp("slurm_profile"), demo_media)


@pytest.fixture(scope="module")
def plan(demo_project) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    """The dry run of the demo through profiles/slurm: output and (rule, resources) per job."""
    out = snakemake(demo_project, "--profile", str(PROFILE), "-n").stdout
    jobs, rule = [], None
    for line in out.splitlines():
        match = _JOB.match(line)
        if match:
            rule = match.group(1)
            continue
        match = _RESOURCES.match(line)
        if match and rule:
            pairs = (p.split("=", 1) for p in match.group(1).split(", ") if "=" in p)
            jobs.append((rule, {k: v for k, v in pairs}))
            rule = None
    return out, jobs


# Every pipeline's model and render jobs the demo plans (one render per pipeline in
# config/renders.tsv): a rule that vanishes from the plan (renamed, or its input function no
# longer reaching it) fails here instead of silently leaving the profile's settings unused.
DEMO_MODEL_RULES = {
    "nerf_train_head", "nerf_train_lips", "nerf_train_torso", "nerf_evaluate", "nerf_render",
    "meshhead_train_audio2mesh", "meshhead_train_warp", "meshhead_evaluate", "meshhead_render",
    "animate_train", "animate_evaluate", "animate_render",
    "mocap_fit", "mocap_traj_train", "mocap_render",
    "anchor_train_body", "anchor_train_head", "anchor_evaluate", "anchor_stitch",
    "report",
}  # fmt: skip


def test_profile_plans_the_demo(plan):
    out, jobs = plan
    missing = DEMO_MODEL_RULES - {rule for rule, _ in jobs}
    assert not missing, f"the demo plan lost {sorted(missing)}:\n{out}"
    assert "Group job prep_demo" in out


def test_preprocessing_is_grouped_and_cpu_only(plan):
    _, jobs = plan
    groups = set(profile()["groups"])
    prep = [(rule, res) for rule, res in jobs if rule in groups]
    assert prep
    assert not [rule for rule, res in prep if "gpu" in res]


def test_model_rules_request_a_gpu_in_the_rule(plan):
    # The convention: model rules declare gpu=1 themselves; the profile adds no GPU requests.
    _, jobs = plan
    assert "gpu" not in str(profile().get("set-resources", {}))
    gpu_rules = {rule for rule, res in jobs if res.get("gpu") == "1"}
    trainings = {rule for rule in DEMO_MODEL_RULES if "_train" in rule}
    assert trainings <= gpu_rules, f"training rules without gpu=1: {trainings - gpu_rules}"
    assert not gpu_rules & set(profile()["groups"])


def test_paper_sizes_reach_the_jobs(plan):
    _, jobs = plan
    sized = profile()["set-resources"]
    checked = 0
    for rule, res in jobs:
        if rule in sized and "mem_mb" in sized[rule]:
            base = int(str(sized[rule]["mem_mb"]).split("*")[0])
            assert res["mem_mb"] == str(base), (rule, res)
            checked += 1
    assert checked, "no rule the profile sizes is in the demo plan"


def test_profile_names_only_existing_rules(demo_project):
    out = snakemake(demo_project, "--list-rules").stdout
    # one rule per line: its name, then its docstring in parentheses when it has one
    rules = {
        m[1] for line in out.splitlines() if (m := re.fullmatch(r"\s*(\w+)(\s+\(.*\))?\s*", line))
    }
    config = profile()
    named = set(config["groups"]) | set(config["set-resources"]) | set(config["set-threads"])
    unknown = named - rules - PENDING_RULES
    assert not unknown, f"profiles/slurm names rules that do not exist: {sorted(unknown)}"
    landed = PENDING_RULES & rules
    assert not landed, f"remove {sorted(landed)} from PENDING_RULES in {Path(__file__).name}"


def test_group_components_match_groups():
    config = profile()
    assert set(config["group-components"]) == set(config["groups"].values())


GPU_SNAKEFILE = """
rule all:
    input:
        expand("{kind}{i}.json", kind=["gpu", "cpu"], i=[1, 2]),


rule job:
    output:
        "{kind}{i}.json",
    resources:
        gpu=lambda w: int(w.kind == "gpu"),
    run:
        import json, time

        start = time.time()
        time.sleep(1.5)
        with open(output[0], "w") as f:
            json.dump([start, time.time()], f)
"""


def test_local_profile_runs_one_gpu_job_at_a_time(tmp_path):
    # profiles/local declares `resources: gpu: 1`: two gpu=1 jobs never overlap, CPU jobs do
    # (3 cores: one GPU job and both CPU jobs fit at once).
    (tmp_path / "Snakefile").write_text(GPU_SNAKEFILE)
    cmd = [*SNAKEMAKE, "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["--profile", str(REPO / "profiles" / "local"), "--cores", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    spans = {
        name: json.loads((tmp_path / f"{name}.json").read_text())
        for name in ("gpu1", "gpu2", "cpu1", "cpu2")
    }

    def overlap(a, b):
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    assert not overlap("gpu1", "gpu2")
    assert overlap("cpu1", "cpu2")
