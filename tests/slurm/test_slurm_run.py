"""twinflow on a real (single-node) SLURM cluster, through a profile derived from profiles/slurm.

Two twins: ``demo`` (the demo media) and ``bad`` (a corrupt video). The first run must send every
job through ``sbatch`` (a twin's preprocessing as one grouped SLURM job), give GPU rules a GPU,
retry the failing job with more memory and time, report it with its SLURM log and exit non-zero;
after the video is fixed a rerun must do only the failed job and what depends on it.

The GPU rule is test-only (``slurm_gpu_check``: runs ``python -m twinflow.device``), added by a
Snakefile that includes the real workflow: the real model rules also declare ``gpu=1`` but train
for minutes on a CPU. The GPU check is generic (every SLURM job whose jobs declare ``gpu`` must
have been given a GPU), so real model rules are covered as soon as a test target includes them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, SNAKEMAKE, make_project

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("TWINFLOW_SLURM_TESTS") != "1",
        reason="SLURM tests run with TWINFLOW_SLURM_TESTS=1 (make test-slurm)",
    ),
]

TEST_SNAKEFILE = f'''# Test project: the real workflow plus one cheap GPU rule (tests/slurm/test_slurm_run.py).
include: "{REPO / "Snakefile"}"


rule slurm_gpu_check:
    input:
        "results/{{twin}}/media/video.mp4",
    output:
        "results/{{twin}}/slurm_gpu_check.json",
    log:
        "logs/slurm_gpu_check/{{twin}}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
        gpu=1,
    shell:
        "python -m twinflow.device --json {{output}} > {{log}} 2>&1"
'''
TARGETS = ("preprocess", "results/demo/slurm_gpu_check.json", "results/bad/slurm_gpu_check.json")
TARGET_RULES = {"all", "preprocess"}

_JOB = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^\s+(wildcards|resources): (.*)$")
_SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$")


@dataclass(frozen=True)
class JobRecord:
    rule: str
    wildcards: str
    resources: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.wildcards)

    def resource(self, name: str) -> str | None:
        return dict(self.resources).get(name)


def job_records(text: str) -> list[JobRecord]:
    """Job blocks (``rule X:`` with wildcards and resources) in Snakemake output."""
    records, current = [], None

    def flush():
        if current is not None:
            records.append(JobRecord(**current))

    for line in text.splitlines():
        match = _JOB.match(line)
        if match:
            flush()
            current = {"rule": match.group(1), "wildcards": ""}
            continue
        match = _FIELD.match(line)
        if match and current is not None:
            if match.group(1) == "wildcards":
                current["wildcards"] = match.group(2).replace(" ", "")
            else:
                pairs = (p.split("=", 1) for p in match.group(2).split(", ") if "=" in p)
                current["resources"] = tuple((k.strip(), v.strip()) for k, v in pairs)
        elif not line.strip():
            flush()
            current = None
    flush()
    return records


def slurm_jobs(env: dict) -> dict[str, dict[str, str]]:
    """Every job slurmctld remembers (MinJobAge=3600 keeps finished ones), by job id."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


@dataclass
class Run:
    rc: int
    output: str
    seconds: float
    planned: set[tuple[str, str]]
    submitted: dict[str, Path]  # SLURM job id -> its log, from the driver's output
    logs: dict[str, list[JobRecord]] = field(default_factory=dict)  # job id -> jobs in its log
    slurm: dict[str, dict[str, str]] = field(default_factory=dict)  # job id -> scontrol fields

    def state(self, jobid: str) -> str:
        return self.slurm[jobid]["JobState"]

    def started(self) -> set[tuple[str, str]]:
        return {r.key for records in self.logs.values() for r in records}

    def completed(self) -> set[tuple[str, str]]:
        return {
            r.key
            for jobid, records in self.logs.items()
            if self.state(jobid) == "COMPLETED"
            for r in records
        }


class Project:
    def __init__(self, root: Path, env: dict):
        self.root = root
        self.env = {
            **os.environ,
            **env,
            # Jobs run `python -m twinflow...`: this interpreter, this package, on the node too.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO / "workflow"), os.environ.get("PYTHONPATH")) if p
            ),
            "PYTHONUNBUFFERED": "1",
        }
        self.profile = derive_profile(root / "profile")

    def snakemake(self, *args: str, name: str) -> tuple[int, str, float]:
        cmd = [*SNAKEMAKE, "-s", str(self.root / "Snakefile"), "-d", str(self.root)]
        cmd += ["--profile", str(self.profile), *args]
        start = time.monotonic()
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            timeout=480,
        )
        seconds = time.monotonic() - start
        (self.root / f"snakemake-{name}.log").write_text(proc.stdout)
        return proc.returncode, proc.stdout, seconds

    def plan(self, name: str) -> set[tuple[str, str]]:
        rc, out, _ = self.snakemake("-n", *TARGETS, name=name)
        assert rc == 0, f"dry run failed:\n{out}"
        return {r.key for r in job_records(out) if r.rule not in TARGET_RULES}

    def run(self, name: str) -> Run:
        planned = self.plan(f"{name}-plan")
        before = set(self.slurm_logs())
        rc, out, seconds = self.snakemake(*TARGETS, name=name)
        submitted = {}
        for line in out.splitlines():
            match = _SUBMITTED.search(line)
            if match:
                submitted[match.group(1)] = Path(match.group(2))
        run = Run(rc, out, seconds, planned, submitted)
        run.slurm = slurm_jobs(self.env)
        for path in sorted(set(self.slurm_logs()) - before):
            run.logs[path.stem] = job_records(path.read_text())
        print(f"\n{name}: {seconds:.1f} s, {len(submitted)} SLURM jobs for {len(planned)} jobs")
        return run

    def slurm_logs(self) -> list[Path]:
        return list((self.root / ".snakemake" / "slurm_logs").rglob("*.log"))


def derive_profile(dest: Path) -> Path:
    """profiles/slurm adapted to the test cluster: partition debug, no slurmdbd, this machine's CPUs."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    # The paper-preset sizes of model rules do not fit the test node (and no model rule runs).
    profile.pop("set-resources", None)
    profile.pop("set-threads", None)
    profile.update(
        {
            "jobs": 4,
            "cores": os.cpu_count() or 1,
            "latency-wait": 5,
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 1,
            "slurm-keep-successful-logs": True,
        }
    )
    profile["default-resources"] = {
        **profile["default-resources"],
        "slurm_partition": "debug",
        "mem_mb": 500,
        "runtime": 10,
    }
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def group_rules() -> set[str]:
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    return set(profile["groups"])


@pytest.fixture(scope="module")
def project(slurm_cluster, demo_media, tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("slurm_project")
    bad = root / "media" / "bad.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not a video\n" * 200)
    make_project(
        root,
        twins=[
            {
                "twin_id": "demo",
                "video": demo_media / "talk.mp4",
                "photo": demo_media / "photo.png",
            },
            {"twin_id": "bad", "video": bad},
        ],
    )
    (root / "Snakefile").write_text(TEST_SNAKEFILE)
    return Project(root, slurm_cluster)


@pytest.fixture(scope="module")
def first_run(project) -> Run:
    return project.run("run1")


@pytest.fixture(scope="module")
def second_run(project, first_run, demo_media) -> tuple[Run, dict[Path, float]]:
    """Fix the bad twin's video, then run again; also returns the demo outputs' mtimes before."""
    demo_outputs = [p for p in (project.root / "results" / "demo").rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime for p in demo_outputs}
    shutil.copyfile(demo_media / "talk.mp4", project.root / "media" / "bad.mp4")
    return project.run("run2"), mtimes


def test_failed_job_is_reported_with_its_slurm_log(first_run, project):
    run = first_run
    assert run.rc != 0, run.output
    failed = {j for j in run.submitted if run.state(j) == "FAILED"}
    assert failed, "the corrupt video's job should have failed in SLURM"
    for jobid in failed:
        log = run.submitted[jobid]
        assert str(log) in run.output, f"failed SLURM job {jobid}: its log is not named"
        text = log.read_text()
        assert "Error in rule probe_video" in text and "logs/probe_video/bad.log" in text
    rule_log = (project.root / "logs" / "probe_video" / "bad.log").read_text()
    assert "twinflow error: twin 'bad'" in rule_log


def test_every_job_went_through_sbatch(first_run, project):
    run = first_run
    # Every SLURM log belongs to a job the driver submitted to this cluster, and vice versa.
    assert set(run.logs) == set(run.submitted)
    for jobid, log in run.submitted.items():
        assert jobid in run.slurm, f"SLURM job {jobid} unknown to slurmctld"
        assert Path(run.slurm[jobid]["StdOut"]) == log
        assert Path(run.slurm[jobid]["WorkDir"]) == project.root
    # All planned jobs ran inside SLURM jobs (their logs), except those downstream of the failure.
    assert run.started() <= run.planned
    good = {job for job in run.planned if job[1] != "twin=bad"}
    assert good <= run.completed(), f"not run in SLURM: {good - run.completed()}"
    assert ("probe_video", "twin=bad") in run.started()


def test_preprocessing_of_a_twin_is_one_slurm_job(first_run):
    run = first_run
    prep = group_rules()
    demo_prep = {job for job in run.planned if job[0] in prep and job[1] == "twin=demo"}
    assert len(demo_prep) >= 3
    holders = [j for j, records in run.logs.items() if demo_prep & {r.key for r in records}]
    assert len(holders) == 1, f"demo preprocessing spread over SLURM jobs {holders}"
    assert demo_prep <= {r.key for r in run.logs[holders[0]]}


def test_gpu_rules_are_given_a_gpu(first_run, project):
    run = first_run
    gpu_jobs = 0
    for jobid, records in run.logs.items():
        gpus = max((int(r.resource("gpu") or 0) for r in records), default=0)
        tres = run.slurm[jobid].get("TresPerJob", "")
        if gpus:
            gpu_jobs += 1
            assert f"gres:gpu:{gpus}" in tres, f"SLURM job {jobid} was not given its GPU"
        else:
            assert "gpu" not in tres, f"CPU-only SLURM job {jobid} holds a GPU: {tres}"
    assert gpu_jobs >= 1
    info = yaml.safe_load((project.root / "results" / "demo" / "slurm_gpu_check.json").read_text())
    # SLURM handed the (fake) GPU to the job; torch here has no CUDA, so the stage used the CPU.
    assert info["CUDA_VISIBLE_DEVICES"] not in (None, "")
    assert info["slurm_job_id"] in run.submitted
    assert info["device"] == ("cuda:0" if info["cuda_available"] else "cpu")


def test_retries_ask_for_more_memory_and_time(first_run):
    run = first_run
    attempts = sorted(
        (
            int(j)
            for j, recs in run.logs.items()
            if ("probe_video", "twin=bad") in {r.key for r in recs}
        ),
    )
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert len(attempts) == profile["retries"] + 1
    mem = [int(run.slurm[str(j)]["MinMemoryNode"].rstrip("M")) for j in attempts]
    limits = [run.slurm[str(j)]["TimeLimit"] for j in attempts]
    assert mem == [mem[0] * k for k in range(1, len(mem) + 1)], mem
    assert len(set(limits)) == len(limits), limits


def test_rerun_after_fix_runs_only_the_failed_job_and_its_dependents(
    first_run, second_run, project
):
    run, mtimes = second_run
    assert run.rc == 0, run.output[-5000:]
    expected = first_run.planned - first_run.completed()
    assert expected == {
        ("probe_video", "twin=bad"),
        ("normalise_video", "twin=bad"),
        ("slurm_gpu_check", "twin=bad"),
    }
    assert run.planned == expected
    assert run.started() == expected
    assert all(run.state(j) == "COMPLETED" for j in run.submitted)
    changed = [str(p) for p, t in mtimes.items() if p.stat().st_mtime != t]
    assert not changed, f"demo outputs rewritten: {changed}"
    rc, out, _ = project.snakemake("-n", *TARGETS, name="run3-plan")
    assert rc == 0 and "Nothing to be done" in out
