"""Meshhead acceptance measurement (a benchmark, not a test): tiny presets on the CPU.

``python -m twinflow.meshhead.acceptance [--clip ../shared/data/talk_d6.mp4] [--minutes 15]
[--workdir build/meshhead_acceptance] [--threads 2]`` (``make bench-meshhead``)

On one real clip: normalise it and run the perception face path (:mod:`.fixtures`), build the
mesh dataset and head crops, train the audio-to-mesh model and the warp (each capped at
``--minutes`` of wall-clock), evaluate on the held-out last 20 % (``metrics.json``), and render
a 60-second synthetic driving speech end to end. Prints a table and writes ``report.json``.
Acceptance: audio-to-mesh mouth LMD below the static template's; warp PSNR above copy-the-source
(the ``tracked`` row: the warp driven by the tracked mesh); the ridge baseline is reported.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from twinflow.cli import setup_logging, stage_main
from twinflow.media.audio import write_wav
from twinflow.meshhead import dataset, evaluate, frames, infer, mux, render
from twinflow.meshhead import train_audio2mesh as a2m
from twinflow.meshhead import train_warp as warp
from twinflow.meshhead.fixtures import prepare_twin, speech_like
from twinflow.meshhead.presets import warp_preset

CLIP = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "talk_d6.mp4"


def _run(module, args: list) -> float:
    t0 = time.perf_counter()
    code = stage_main(module.build_parser, module.run, [str(a) for a in args])
    if code:
        raise SystemExit(f"{module.__name__} failed")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.acceptance", description=__doc__)
    p.add_argument("--clip", type=Path, default=CLIP)
    p.add_argument("--workdir", type=Path, default=Path("build/meshhead_acceptance"))
    p.add_argument("--minutes", type=float, default=15.0, help="cap per training job")
    p.add_argument("--audio2mesh-steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--warp-steps", type=int, default=4000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    setup_logging()
    twin, w = args.clip.stem, args.workdir
    m = w / "meshhead"
    times = {}
    t0 = time.perf_counter()
    files = prepare_twin(args.clip, w)
    times["prepare_and_perceive_s"] = time.perf_counter() - t0
    tiny = warp_preset("tiny")
    times["dataset_s"] = _run(
        dataset,
        ["--twin", twin, "--face", files["face"], "--template", files["template"],
         "--head-pose", files["head_pose"], "--audio", files["audio"], "--out", m / "dataset.npz"],
    )  # fmt: skip
    times["frames_s"] = _run(
        frames,
        ["--twin", twin, "--video", files["video"], "--dataset", m / "dataset.npz",
         "--size", tiny.size, "--crop-scale", tiny.crop_scale, "--crop-shift", tiny.crop_shift,
         "--out", m / "frames.npz"],
    )  # fmt: skip
    common = ["--threads", args.threads, "--max-minutes", args.minutes, "--preset", "tiny"]
    steps = ["--steps", args.audio2mesh_steps] if args.audio2mesh_steps else []
    times["train_audio2mesh_s"] = _run(
        a2m,
        [
            "--twin",
            twin,
            "--dataset",
            m / "dataset.npz",
            *common,
            *steps,
            "--out",
            m / "audio2mesh.pt",
        ],
    )
    times["train_warp_s"] = _run(
        warp,
        ["--twin", twin, "--frames", m / "frames.npz", "--dataset", m / "dataset.npz", *common,
         "--steps", args.warp_steps, "--out", m / "warp.pt"],
    )  # fmt: skip
    times["evaluate_s"] = _run(
        evaluate,
        ["--twin", twin, "--dataset", m / "dataset.npz", "--audio2mesh", m / "audio2mesh.pt",
         "--frames", m / "frames.npz", "--warp", m / "warp.pt", "--threads", args.threads,
         "--out", m / "metrics.json"],
    )  # fmt: skip
    drive = w / "drive"
    write_wav(drive / "audio.wav", speech_like(60.0, seed=11), 16000)
    times["render_60s"] = {
        "infer_s": _run(infer, ["--render", "r60", "--model", m / "audio2mesh.pt", "--audio",
                                drive / "audio.wav", "--threads", args.threads, "--out", drive / "mesh.npz"]),
        "render_s": _run(render, ["--render", "r60", "--warp", m / "warp.pt", "--mesh", drive / "mesh.npz",
                                  "--dataset", m / "dataset.npz", "--frames", m / "frames.npz",
                                  "--threads", args.threads, "--out", drive / "frames.mp4"]),
        "mux_s": _run(mux, ["--render", "r60", "--video", drive / "frames.mp4", "--audio",
                            drive / "audio.wav", "--out", drive / "render.mp4"]),
    }  # fmt: skip
    metrics = json.loads((m / "metrics.json").read_text())
    v, b = metrics["values"], metrics["baselines"]
    checks = {
        "audio2mesh_below_static_template": v["mesh_mouth_lmd_mm"]
        < b["static"]["mesh_mouth_lmd_mm"],
        "warp_psnr_above_copy_source": b["tracked"]["video_psnr"] > b["static"]["video_psnr"],
    }
    report = {"clip": str(args.clip), "threads": args.threads, "minutes_cap": args.minutes,
              "times": times, "checks": checks, "metrics": metrics}  # fmt: skip
    (w / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    rows = [("model (audio2mesh + warp)", v), *((f"baseline {k}", x) for k, x in b.items())]
    print(f"\nmeshhead acceptance on {args.clip.name} (held-out last 20 %), {w}/report.json")
    print(f"{'':28s} {'mesh mouth mm':>14s} {'video mouth px':>15s} {'PSNR':>7s} {'SSIM':>6s}")
    for name, x in rows:
        print(
            f"{name:28s} {x['mesh_mouth_lmd_mm']:14.3f} {x['video_mouth_lmd_px']:15.3f}"
            f" {x['video_psnr']:7.2f} {x['video_ssim']:6.3f}"
        )
    warp_metrics = metrics["measured"].get("warp", {})
    for name, x in (
        ("warp mesh-driven (tracked)", warp_metrics.get("values")),
        ("warp estimator-driven", warp_metrics.get("baselines", {}).get("estimator_driven")),
    ):
        if x:
            print(f"{name:28s} {'':14s} {x['video_mouth_lmd_px']:15.3f} {x['video_psnr']:7.2f}"
                  f" {x['video_ssim']:6.3f}")  # fmt: skip
    print("checks:", ", ".join(f"{k}={'PASS' if ok else 'FAIL'}" for k, ok in checks.items()))
    print("times:", json.dumps(times, default=lambda x: round(x, 1)))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
