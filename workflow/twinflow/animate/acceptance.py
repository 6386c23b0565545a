"""Acceptance measurement of the animate pipeline on real clips (a benchmark, not a test).

``python -m twinflow.animate.acceptance [--data ../shared/data] [--workdir DIR] [--minutes 15]
[--threads 2] [--out report.json]`` (``make bench-animate``)

Builds a throw-away project in ``--workdir`` and runs the real workflow there, in two phases:

1. the clips are normalised to 512 px / 25 fps by the workflow's own rules: twin ``talk_d6``
   (``talk_d6.mp4``, photo ``photo_s12.jpg``) and twin ``talk_d12`` (``talk_d12.mp4``);
2. ``talk_d6``'s animate model (preset ``tiny``, CPU) is trained for at most ``--minutes``
   minutes on its video plus ``talk_d12``'s normalised video (``animate: extra_videos``), split by
   time (the last 20 % of each video is held out), evaluated on the held-out frames (metrics.json:
   L1 and AKD against the copy-the-source-frame baseline), and render ``accept_relative`` animates
   ``photo_s12.jpg`` with ``talk_d12.mp4`` (relative mode, the driving audio muxed in).

The report (printed and written to ``--out``) holds both metrics, the training steps and time,
and the frame count and fps of the rendered and the driving video.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
TWINS = ["twin_id", "video", "photo", "audio", "crop"]
RENDERS = ["render_id", "twin_id", "pipeline", "driving_audio", "driving_video", "options"]


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def snakemake(workdir: Path, cores: int, *targets: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", str(cores), *targets, "--resources", "gpu=1"]  # --resources is greedy
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def make_project(workdir: Path, data: Path, minutes: float, extra: Path | None) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"] = {
        "registry": str(REPO / "models" / "registry.yaml"),
        "root": str(REPO / "models"),
    }
    config["preset"] = "tiny"
    config["animate"].update(
        {
            "preset": "tiny",
            "steps": {"tiny": 1_000_000},  # the time budget ends training
            "max_minutes": {"tiny": minutes},
            "save_every": 200,
            "extra_videos": str(extra) if extra else None,
            "split": "time",
            "test_fraction": 0.2,
        }
    )
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_tsv(
        workdir / "config" / "twins.tsv",
        TWINS,
        [
            {"twin_id": "talk_d6", "video": data / "talk_d6.mp4", "photo": data / "photo_s12.jpg"},
            {"twin_id": "talk_d12", "video": data / "talk_d12.mp4"},
        ],
    )
    write_tsv(
        workdir / "config" / "renders.tsv",
        RENDERS,
        [
            {
                "render_id": "accept_relative",
                "twin_id": "talk_d6",
                "pipeline": "animate",
                "driving_video": data / "talk_d12.mp4",
                "driving_audio": data / "talk_d12.mp4",
                "options": "mode=relative",
            }
        ],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.animate.acceptance", description=__doc__)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/twinflow-animate-acceptance"))
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    p.add_argument("--threads", type=int, default=2, help="snakemake --cores")
    p.add_argument("--out", type=Path, default=None, help="report JSON (default: in workdir)")
    args = p.parse_args(argv)
    data, work = args.data.resolve(), args.workdir.resolve()
    for name in ("talk_d6.mp4", "talk_d12.mp4", "photo_s12.jpg"):
        if not (data / name).exists():
            print(f"missing {data / name}", file=sys.stderr)
            return 1
    start = time.time()
    # Phase 1: normalise both clips through the workflow (no extra videos yet).
    make_project(work, data, args.minutes, extra=None)
    snakemake(
        work, args.threads, "results/talk_d12/media/video.mp4", "results/talk_d6/media/video.mp4"
    )
    extra = work / "extra_videos"
    extra.mkdir(exist_ok=True)
    link = extra / "talk_d12.mp4"
    if not link.exists():
        link.symlink_to(work / "results/talk_d12/media/video.mp4")
    # Phase 2: dataset, training, evaluation and the render.
    make_project(work, data, args.minutes, extra=extra)
    targets = ["results/talk_d6/animate/metrics.json", "results/renders/accept_relative.mp4"]
    snakemake(work, args.threads, *targets)

    sys.path.insert(0, str(REPO / "workflow"))
    import torch

    from twinflow.media.video import probe_video

    metrics = json.loads((work / targets[0]).read_text())
    ckpt = torch.load(
        work / "results/talk_d6/animate/model.pt", map_location="cpu", weights_only=False
    )
    bench = (work / "benchmarks/animate_train/talk_d6.tsv").read_text().splitlines()
    train_seconds = float(bench[1].split("\t")[0])
    video = probe_video(work / targets[1])
    driving = probe_video(work / "results/drive/accept_relative/video.mp4")
    report = {
        "command": "python -m twinflow.animate.acceptance " + " ".join(argv or sys.argv[1:]),
        "preset": "tiny",
        "training": {
            "steps": ckpt["steps"],
            "seconds": train_seconds,
            "budget_minutes": args.minutes,
        },
        "metrics": metrics["values"],
        "copy_source_baseline": metrics["baselines"]["copy_source"],
        "test_frames": metrics["measured"]["frames"],
        "akd_frames": metrics["measured"].get("akd_frames"),
        "l1_below_baseline": metrics["values"]["l1"] < metrics["baselines"]["copy_source"]["l1"],
        "render": {"frames": video.n_frames, "fps": video.fps, "has_audio": video.has_audio},
        "driving": {"frames": driving.n_frames, "fps": driving.fps},
        "render_matches_driving": video.n_frames == driving.n_frames and video.fps == driving.fps,
        "wall_seconds": round(time.time() - start, 1),
    }
    out = args.out or work / "acceptance.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["l1_below_baseline"] and report["render_matches_driving"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
