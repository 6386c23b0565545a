"""Benchmark (not a test): dry-run planning time of twinflow against a minimal Snakefile.

For N twins, each with one render per pipeline, time ``snakemake -n`` of the real workflow and of
a minimal Snakefile that plans the same number of independent jobs, side by side in one run.

Two measurements per workflow: ``plan`` is ``snakemake -n --quiet rules`` (the DAG is built and
the job counts are printed, the planning the acceptance is about); ``+print`` is plain
``snakemake -n``, which also prints every planned job (74,000 blocks for 1,000 twins), so it adds
console output whose size depends on how much each job has to say.

``python -m tests.bench.plan [--twins 10 100 1000] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import REPO, SNAKEMAKE, make_project

MINIMAL = """\
N = int(config["njobs"])

rule all:
    input: expand("out/{i}.txt", i=range(N))

rule make:
    output: "out/{i}.txt"
    shell: "touch {output}"
"""


# The same number of jobs as rules shaped like twinflow's, with no Python logic: per twin a chain
# of ``stages`` rules, each with two inputs from the rules before it, two outputs, a log, a
# benchmark, params, threads, resources and a conda env, and twinflow's garbage-collector
# setting. twinflow / shaped is the cost of twinflow's own logic (sheets, input functions,
# checkpoints); shaped / minimal is Snakemake's cost of declaring real rules instead of bare ones.
SHAPED = """\
import gc
gc.set_threshold(50_000, 20, 20)
N = int(config["twins"])
K = int(config["stages"])

rule all:
    input: expand("out/{t}/s%d.a" % (K - 1), t=range(N))

for i in range(K):
    prev = ["out/{t}/s%d.a" % (i - 1), "out/{t}/s%d.b" % max(i - 2, 0)] if i else []

    rule:
        name: f"stage{i}"
        input: prev
        output: a=f"out/{{t}}/s{i}.a", b=f"out/{{t}}/s{i}.b"
        log: f"logs/stage{i}/{{t}}.log"
        benchmark: f"benchmarks/stage{i}/{{t}}.tsv"
        conda: "env.yaml"
        threads: 1
        resources: mem_mb=1000, runtime=10
        params: size=512, name=f"stage{i}"
        shell: "touch {output} > {log}"
"""


def build_project(root: Path, n: int) -> Path:
    media = root / "media"
    media.mkdir(parents=True)
    twins, renders = [], []
    for i in range(n):
        t = f"t{i:05d}"
        for ext in ("mp4", "png", "wav"):
            (media / f"{t}.{ext}").write_bytes(b"x")
        twins.append({"twin_id": t, "video": f"media/{t}.mp4", "photo": f"media/{t}.png"})
        drive = {"driving_audio": f"media/{t}.wav", "driving_video": f"media/{t}.mp4"}
        renders += [
            {"render_id": f"{t}_nerf", "twin_id": t, "pipeline": "nerf", **drive},
            {"render_id": f"{t}_mesh", "twin_id": t, "pipeline": "meshhead", **drive},
            {"render_id": f"{t}_anchor", "twin_id": t, "pipeline": "anchor", **drive},
            {"render_id": f"{t}_anim", "twin_id": t, "pipeline": "animate", **drive},
            {"render_id": f"{t}_mocap", "twin_id": t, "pipeline": "mocap", **drive},
        ]
    return make_project(root, twins, renders)


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def job_count(stdout: str) -> int:
    match = re.search(r"^total\s+(\d+)$", stdout, re.MULTILINE)
    if not match:
        raise RuntimeError("no job stats in snakemake output")
    return int(match.group(1))


def bench(n: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = build_project(Path(tmp) / "twinflow", n)
        minimal = Path(tmp) / "minimal"
        minimal.mkdir()
        (minimal / "Snakefile").write_text(MINIMAL)
        shaped = Path(tmp) / "shaped"
        shaped.mkdir()
        (shaped / "Snakefile").write_text(SHAPED)
        (shaped / "env.yaml").write_text("dependencies: [python]\n")
        real_cmd = [
            *SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(root),
            "-n",
            "--cores",
            "1",
        ]
        times: dict[str, list[float]] = {
            k + p: [] for k in ("twinflow", "shaped", "minimal") for p in ("", "_print")
        }
        jobs = None
        for _ in range(repeats):
            for quiet, suffix in ((["--quiet", "rules"], ""), ([], "_print")):
                t, out = timed([*real_cmd, *quiet], root)
                times["twinflow" + suffix].append(t)
                jobs = job_count(out)
                min_cmd = [*SNAKEMAKE, "-n", "--cores", "1", "--config", f"njobs={jobs - 1}"]
                t, out = timed([*min_cmd, *quiet], minimal)
                times["minimal" + suffix].append(t)
                assert job_count(out) == jobs
                stages = (jobs - 1) // n
                shaped_cmd = [*SNAKEMAKE, "-n", "--cores", "1", "--config", f"twins={n}"]
                t, out = timed([*shaped_cmd, f"stages={stages}", *quiet], shaped)
                times["shaped" + suffix].append(t)
                assert abs(job_count(out) - jobs) <= n  # (jobs - 1) // n stages per twin
        return {"twins": n, "jobs": jobs, **{k: min(v) for k, v in times.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--twins", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    print("seconds of `snakemake -n --quiet rules` (plan) and of `snakemake -n` (+print);")
    print("ratio: twinflow / minimal (the acceptance); shaped: twinflow-shaped rules, no logic")
    head = f"{'twinflow':>9} {'shaped':>8} {'minimal':>8} {'ratio':>6}"
    print(f"{'twins':>6} {'jobs':>7} | plan: {head} | +print: {head}")
    for n in args.twins:
        r = bench(n, args.repeats)
        cols = []
        for p in ("", "_print"):
            t, s, m = r["twinflow" + p], r["shaped" + p], r["minimal" + p]
            cols.append(f"{t:9.2f} {s:8.2f} {m:8.2f} {t / m:6.2f}")
        print(f"{n:6d} {r['jobs']:7d} |       {cols[0]} |         {cols[1]}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
