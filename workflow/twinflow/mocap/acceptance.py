"""Mocap acceptance measurement (a benchmark, not a test) on the real clips in ``../shared/data``.

``python -m twinflow.mocap.acceptance [--workdir DIR] [--backend anny] [--preset tiny]``
(``make bench-mocap``)

Builds a throw-away project in ``--workdir`` (default: a new temporary folder) with the
full-body and half-body clips as twins (each padded, not cropped, to the square working size so
the whole person stays in view), runs the workflow on the CPU (``TWINFLOW_DEVICE=cpu``) up to
each twin's ``mocap/metrics.json`` (normalise, perception, fit, metrics), and reports per clip:

* the median reprojection error of the fitted points against the detections, in pixels and in
  percent of the person's height (criterion: at most 3 %);
* the jitter (mean acceleration) of the fitted points against that of the raw detections
  (criterion: lower);
* the fitting time per frame (wall clock, one CPU thread, from the fit's log).

The body fit needs no face (the full-body clip's is too small for the face tracker): its
perception gate asks only for the body (:mod:`twinflow.perception.needs`). Results go
to ``<workdir>/acceptance.json`` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CLIPS = {
    "fullbody": ("fullbody_s13.mp4", "0,0,720,1080"),
    "halfbody": ("halfbody_s18.mp4", "0,0,1280,720"),
}


def write_project(workdir: Path, data: Path, backend: str, preset: str) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"] = {
        "registry": str(REPO / "models" / "registry.yaml"),
        "root": str(REPO / "models"),
    }
    config["mocap"]["backend"] = backend
    config["mocap"]["preset"] = preset
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = ["twin_id\tvideo\tphoto\taudio\tcrop"]
    rows += [f"{twin}\t{data / name}\t\t\t{crop}" for twin, (name, crop) in CLIPS.items()]
    (workdir / "config" / "twins.tsv").write_text("\n".join(rows) + "\n")
    cols = "render_id\ttwin_id\tpipeline\tdriving_audio\tdriving_video\toptions"
    (workdir / "config" / "renders.tsv").write_text(cols + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.mocap.acceptance", description=__doc__)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--backend", default="anny")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--cores", type=int, default=2)
    args = p.parse_args(argv)
    for name, _ in CLIPS.values():
        if not (args.data / name).exists():
            print(f"missing {args.data / name}", file=sys.stderr)
            return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mocap-acceptance-"))
    write_project(workdir, args.data, args.backend, args.preset)
    targets = [f"results/{twin}/mocap/metrics.json" for twin in CLIPS]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", str(args.cores), "--rerun-incomplete", *targets]
    env = {**os.environ, "TWINFLOW_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    report = {"workdir": str(workdir), "backend": args.backend, "preset": args.preset, "clips": {}}
    ok = True
    for twin, (name, _) in CLIPS.items():
        m = json.loads((workdir / f"results/{twin}/mocap/metrics.json").read_text())
        v, raw = m["values"], m["baselines"]["raw_detections"]
        passed_err = v["reproj_pct_height"] <= 3.0
        passed_jit = v["jitter_px"] < raw["jitter_px"]
        ok &= passed_err and passed_jit
        report["clips"][name] = {
            "frames": m["measured"]["frames"],
            "person_height_px": m["measured"]["person_height_px"],
            "reproj_px_median": v["reproj_px_median"],
            "reproj_pct_height": v["reproj_pct_height"],
            "jitter_px": v["jitter_px"],
            "raw_jitter_px": raw["jitter_px"],
            "smoothed_detections": m["baselines"]["smoothed_detections"],
            "per_group": m["measured"]["per_group"],
            "fit_seconds": m["measured"]["fit_seconds"],
            "fit_seconds_per_frame": m["measured"]["fit_seconds_per_frame"],
            "fit_cpu_seconds_per_frame": m["measured"].get("fit_cpu_seconds_per_frame"),
            "criteria": {"reproj <= 3% height": passed_err, "jitter < raw": passed_jit},
        }
    report["passed"] = bool(ok)
    (workdir / "acceptance.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'clip':20s} {'frames':>6s} {'median px':>9s} {'% height':>8s} {'jitter':>7s} {'raw':>7s} {'s/frame':>8s}"
    )
    for name, r in report["clips"].items():
        print(
            f"{name:20s} {r['frames']:6d} {r['reproj_px_median']:9.2f} {r['reproj_pct_height']:8.2f}"
            f" {r['jitter_px']:7.2f} {r['raw_jitter_px']:7.2f} {r['fit_seconds_per_frame']:8.3f}"
            f" {r['fit_cpu_seconds_per_frame'] or float('nan'):8.3f}"
        )
    print(f"{'PASSED' if ok else 'FAILED'}; report: {workdir / 'acceptance.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
