"""Acceptance measurement of the anchor pipeline: the tiny preset on a real clip, on the CPU.

``python -m twinflow.anchor.acceptance [--video ../shared/data/halfbody_s18.mp4]
[--work build/anchor_acceptance] [--body-minutes 20] [--head-minutes 20] [--threads 1]
[--condition auto|mesh|standin]``

Runs the pipeline's own stages on one video, as the workflow does: normalise (25 fps, 512 px),
split into clips, perception (face and body tracks, parsing), conditioning renders (``mesh``: the mocap fit
through the shared renderer; ``standin``: perception skeletons, the development stand-in;
``auto``: mesh when the mocap pipeline provides fitted meshes, else standin, recorded in the
result), clip datasets, body and head training (side by side, each capped at the given
minutes), and the
evaluation of the held-out block (the last 15 % of the video, driven by its own motion). Writes
``acceptance.json`` into ``--work``: the metrics, the baselines, the checks (PSNR and pose
agreement above the copy-the-reference baseline), timings and the commands. Stages whose output
exists are skipped, so a rerun resumes (training resumes from its last saved state).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from twinflow.anchor.plan import DEFAULT_FACE_LABELS
from twinflow.atomic import read_json, write_json
from twinflow.cli import stage_main
from twinflow.errors import TwinflowError

log = logging.getLogger("twinflow.anchor.acceptance")

DEFAULT_VIDEO = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "halfbody_s18.mp4"


def mesh_available() -> bool:
    try:
        from twinflow.mocap.mesh import fit_vertices  # noqa: F401
    except ImportError:
        return False
    return True


class Runner:
    def __init__(self, work: Path, threads: int):
        self.work = work
        self.threads = threads
        self.commands: list[str] = []
        self.seconds: dict[str, float] = {}
        package = str(Path(__file__).resolve().parents[2])
        self.env = {
            **os.environ,
            "PYTHONPATH": package + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }

    def __call__(self, name: str, module: str, *args, out: Path) -> None:
        self.parallel([(name, module, args, out)])

    def parallel(self, stages: list[tuple[str, str, tuple, Path]]) -> None:
        """Run stages at the same time (each skipped when its output exists)."""
        procs = []
        for name, module, args, out in stages:
            cmd = [sys.executable, "-m", module, *map(str, args)]
            self.commands.append(shlex.join(cmd))
            if out.exists():
                log.info("%s: %s exists, skipped", name, out)
                continue
            logfile = self.work / "logs" / f"{name}.log"
            logfile.parent.mkdir(parents=True, exist_ok=True)
            log.info("%s ...", name)
            fh = logfile.open("w")
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env)
            procs.append((name, proc, fh, logfile, time.perf_counter()))
        for name, proc, fh, logfile, t0 in procs:
            proc.wait()
            fh.close()
            self.seconds[name] = round(time.perf_counter() - t0, 1)
            if proc.returncode != 0:
                raise TwinflowError(f"stage {name} failed; see {logfile}")
            log.info("%s done in %.0f s", name, self.seconds[name])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.acceptance", description=__doc__)
    p.add_argument("--video", default=str(DEFAULT_VIDEO))
    p.add_argument("--work", default="build/anchor_acceptance")
    p.add_argument("--body-minutes", type=float, default=20.0)
    p.add_argument("--head-minutes", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per stage")
    p.add_argument("--condition", choices=("auto", "mesh", "standin"), default="auto")
    p.add_argument("--eval-frames", type=int, default=0, help="0: the whole held-out block")
    p.add_argument("--set", action="append", default=[], help="preset field=value")
    return p


def run(args: argparse.Namespace) -> None:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    video = Path(args.video).resolve()
    if not video.exists():
        raise TwinflowError("acceptance video not found", path=video)
    condition = args.condition
    if condition == "auto":
        condition = "mesh" if mesh_available() else "standin"
    if condition == "standin":
        log.warning("conditioning with the DEVELOPMENT STAND-IN (perception skeletons)")
    sets = [a for s in args.set for a in ("--set", s)]
    face_labels = ",".join(map(str, DEFAULT_FACE_LABELS))
    run_stage = Runner(work, args.threads)
    t_all = time.perf_counter()
    twin = "acceptance"
    run_stage("probe", "twinflow.prep.probe", "--twin", twin, "--video", video,
              "--min-frames", 10, "--out", work / "probe.json", out=work / "probe.json")  # fmt: skip
    run_stage("normalise", "twinflow.prep.normalise", "--twin", twin, "--video", video,
              "--probe", work / "probe.json", "--fps", 25, "--size", 512,
              "--out", work / "video.mp4", "--meta", work / "meta.json", out=work / "video.mp4")  # fmt: skip
    run_stage("split_clips", "twinflow.prep.clips", "--twin", twin, "--video", work / "video.mp4",
              "--seconds", 10, "--min-seconds", 2, "--out", work / "clips", out=work / "clips")  # fmt: skip
    run_stage("perception", "twinflow.perception.track", "--twin", twin,
              "--video", work / "video.mp4", "--face", work / "face.npz",
              "--body", work / "body.npz", "--signals", work / "signals.npz",
              "--matte", work / "matte.mkv", out=work / "body.npz")  # fmt: skip
    run_stage("parsing", "twinflow.perception.parsing", "--twin", twin,
              "--video", work / "video.mp4", "--face", work / "face.npz",
              "--body", work / "body.npz", "--matte", work / "matte.mkv",
              "--out", work / "parsing.mkv", out=work / "parsing.mkv")  # fmt: skip
    if condition == "mesh":
        run_stage("mocap_fit", "twinflow.mocap.fit", "--twin", twin, "--meta", work / "meta.json",
                  "--body", work / "body.npz", "--face", work / "face.npz",
                  "--threads", args.threads, "--out", work / "person0.npz",
                  out=work / "person0.npz")  # fmt: skip
    clips = [c["clip"] for c in read_json(work / "clips" / "clips.json")["clips"]]
    bounds = {
        c["clip"]: (c["start_frame"], c["stop_frame"])
        for c in read_json(work / "clips" / "clips.json")["clips"]
    }
    data = []
    for clip in clips:
        a, b = bounds[clip]
        source = (
            ["--source", "mesh", "--fit", work / "person0.npz"]
            if condition == "mesh"
            else ["--source", "standin", "--face", work / "face.npz", "--body", work / "body.npz"]
        )
        cond = work / "condition" / f"{clip}.mp4"
        run_stage(f"condition_{clip}", "twinflow.anchor.condition", "--twin", twin, *source,
                  "--start", a, "--stop", b, "--size", 512, "--out", cond, out=cond)  # fmt: skip
        out = work / "data" / f"{clip}.npz"
        run_stage(f"dataset_{clip}", "twinflow.anchor.dataset", "--twin", twin,
                  "--clips", work / "clips", "--clip", clip, "--condition", cond,
                  "--condition-source", condition, "--face", work / "face.npz",
                  "--parsing", work / "parsing.mkv", "--face-labels", face_labels,
                  "--preset", "tiny", *sets, "--holdout", 0.15, "--out", out, out=out)  # fmt: skip
        data.append(out)
    # body and head training are independent: run them side by side (as the workflow can)
    run_stage.parallel(
        [
            (
                f"train_{kind}",
                f"twinflow.anchor.train_{kind}",
                (
                    "--twin",
                    twin,
                    "--data",
                    *data,
                    "--preset",
                    "tiny",
                    *sets,
                    "--steps",
                    1_000_000,
                    "--max-minutes",
                    minutes,
                    "--save-every",
                    100,
                    "--threads",
                    args.threads,
                    "--device",
                    "cpu",
                    "--out",
                    work / f"{kind}.pt",
                ),
                work / f"{kind}.pt",
            )  # fmt: skip
            for kind, minutes in (("body", args.body_minutes), ("head", args.head_minutes))
        ]
    )
    metrics = work / "metrics.json"
    run_stage("evaluate", "twinflow.anchor.evaluate", "--twin", twin, "--data", *data,
              "--body-model", work / "body.pt", "--head-model", work / "head.pt",
              "--body-npz", work / "body.npz", "--max-frames", args.eval_frames,
              "--threads", args.threads, "--device", "cpu", "--preview", work / "eval.mp4",
              "--out", metrics, out=metrics)  # fmt: skip
    result = read_json(metrics)
    import torch

    steps = {
        k: int(torch.load(work / f"{k}.pt", weights_only=False)["steps"]) for k in ("body", "head")
    }
    v, ref = result["values"], result["baselines"]["reference"]
    checks = {
        "psnr_above_reference": v["psnr"] > ref["psnr"],
        "pck_above_reference": v["pck"] > ref["pck"],
    }
    summary = {
        "video": str(video),
        "condition": condition,
        "preset": "tiny",
        "device": "cpu",
        "threads": args.threads,
        "training_minutes_cap": {"body": args.body_minutes, "head": args.head_minutes},
        "training_steps": steps,
        "values": v,
        "baselines": result["baselines"],
        "checks": checks,
        "passed": all(checks.values()),
        "measured": result["measured"],
        "stage_seconds": run_stage.seconds,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "commands": run_stage.commands,
    }
    write_json(work / "acceptance.json", summary)
    log.info("acceptance %s: %s", "PASSED" if summary["passed"] else "FAILED", checks)
    log.info(
        "values %s; reference %s; nearest_pose %s", v, ref, result["baselines"]["nearest_pose"]
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
