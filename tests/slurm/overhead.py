"""Measure SLURM's per-job overhead on the demo twin's preprocessing, with and without grouping.

    tests/slurm/cluster.sh start
    SLURM_CONF=/tmp/twinflow-slurm/slurm.conf .venv/bin/python tests/slurm/overhead.py \\
        [--jobs 4] [--repeat 1]

Runs the ``preprocess`` target of the demo sheet (one twin, five renders: 12 jobs) three ways in
fresh project folders: locally (``--cores 2``), through SLURM with the profile derived for the
test cluster (tests/slurm/test_slurm_run.py) but without groups, and with its groups. Prints a
Markdown table: wall time, SLURM jobs, and the extra wall time per SLURM job and per workflow job
relative to the local run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import yaml  # noqa: E402
from test_slurm_run import _SUBMITTED, derive_profile, job_records  # noqa: E402

from tests.helpers import REPO, SNAKEMAKE, make_project  # noqa: E402


def project(root: Path, media: Path) -> Path:
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


def run(root: Path, mode: str, env: dict, jobs: int) -> tuple[float, int, int]:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(root)]
    if mode == "local":
        cmd += ["--cores", "2"]
    else:
        profile = derive_profile(root / "profile")
        config = yaml.safe_load((profile / "config.yaml").read_text())
        config["jobs"] = jobs
        if mode == "slurm-ungrouped":
            config.pop("groups"), config.pop("group-components")
        (profile / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--profile", str(profile)]
    cmd.append("preprocess")
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seconds = time.monotonic() - start
    (root / "snakemake.log").write_text(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed, see {root / 'snakemake.log'}")
    n_jobs = len({(r.rule, r.wildcards) for r in job_records(proc.stdout)} - {("preprocess", "")})
    n_slurm = sum(1 for line in proc.stdout.splitlines() if _SUBMITTED.search(line))
    return seconds, n_jobs, n_slurm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=1, help="runs per mode (median reported)")
    p.add_argument("--seconds", type=float, default=6.0, help="length of the demo media")
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs at a time (profile `jobs`)")
    p.add_argument("--keep", action="store_true", help="keep the project folders")
    args = p.parse_args()
    if not os.environ.get("SLURM_CONF"):
        sys.exit("set SLURM_CONF (tests/slurm/cluster.sh start prints it)")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "workflow"),
    }
    base = Path(tempfile.mkdtemp(prefix="twinflow-overhead-"))
    from twinflow.demo.__main__ import build

    media = base / "media"
    build(media, seconds=args.seconds)
    results = {}
    for mode in ("local", "slurm-ungrouped", "slurm-grouped"):
        times = []
        for i in range(args.repeat):
            seconds, n_jobs, n_slurm = run(
                project(base / f"{mode}-{i}", media), mode, env, args.jobs
            )
            times.append(seconds)
            print(f"{mode} #{i + 1}: {seconds:.1f} s, {n_jobs} jobs, {n_slurm} SLURM jobs")
        results[mode] = (statistics.median(times), n_jobs, n_slurm)
    local = results["local"][0]
    print(
        "\n| run | wall time | workflow jobs | SLURM jobs | extra s / SLURM job | extra s / job |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, (seconds, n_jobs, n_slurm) in results.items():
        extra = seconds - local
        per_slurm = f"{extra / n_slurm:.1f}" if n_slurm else "-"
        per_job = f"{extra / n_jobs:.1f}" if mode != "local" else "-"
        print(f"| {mode} | {seconds:.1f} s | {n_jobs} | {n_slurm} | {per_slurm} | {per_job} |")
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
