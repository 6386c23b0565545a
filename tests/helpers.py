"""Shared test helpers: run Snakemake on a throw-away project, parse its plan, find real media."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TWIN_COLUMNS = ["twin_id", "video", "photo", "audio", "crop"]
RENDER_COLUMNS = ["render_id", "twin_id", "pipeline", "driving_audio", "driving_video", "options"]


def shared_media(name: str) -> Path:
    """Path of a real clip in ../shared/data; skips when absent, except in CI where it must exist."""
    path = SHARED_DATA / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing; CI must run the real-media tests")
        pytest.skip(f"real test media not available ({path} absent: a fresh clone has no shared/)")
    return path


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    lines = ["\t".join(columns)]
    lines += ["\t".join(str(row.get(c, "") or "") for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def make_project(
    root: Path,
    twins: list[dict],
    renders: list[dict] | None = None,
    config: dict | None = None,
) -> Path:
    """A working directory with config/config.yaml (the repo's, updated by ``config``) and sheets.

    Sheet paths are used as given; pass absolute paths or paths relative to ``root``.
    """
    (root / "config").mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    base["models"] = {
        "registry": str(REPO / "models" / "registry.yaml"),
        "root": str(REPO / "models"),
    }
    _deep_update(base, config or {})
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    write_tsv(root / "config" / "twins.tsv", TWIN_COLUMNS, twins)
    write_tsv(root / "config" / "renders.tsv", RENDER_COLUMNS, renders or [])
    return root


def _deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 1800):
    """Run the repo's Snakefile in ``workdir``; returns the CompletedProcess (text output)."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def planned_jobs(workdir: Path, *targets: str) -> set[tuple[str, str]]:
    """The jobs a dry run would execute, as ``{(rule, "k=v,...")}`` (the target rules ``all`` and ``preprocess`` excluded)."""
    out = snakemake(workdir, "-n", *targets).stdout
    jobs: set[tuple[str, str]] = set()
    current = None
    for line in out.splitlines():
        match = _JOB.match(line)
        if match:
            if current:
                jobs.add(current)
            current = (match.group(1), "")
            continue
        match = _WILDCARDS.match(line)
        if match and current:
            current = (current[0], match.group(1).replace(" ", ""))
        if not line.strip() and current:
            jobs.add(current)
            current = None
    if current:
        jobs.add(current)
    return {job for job in jobs if job[0] not in ("all", "preprocess")}


def planned_rules(workdir: Path, *targets: str) -> set[str]:
    return {rule for rule, _ in planned_jobs(workdir, *targets)}


# Plausible ranges of the metrics pipelines write, wide enough for any toy model (a 3-step anchor
# model gives noise: about 6 dB), narrow enough that NaN, infinities, wrong units or signs leave
# them: ssim is in [-1, 1], distances in pixels or millimetres are below the frame size. A name
# matches a prefix (``psnr_full``) or a suffix (``video_psnr``); anything else is a distance.
METRIC_RANGES = {
    "psnr": (3.0, 60.0),
    "ssim": (-1.0, 1.0),
    "lpips": (0.0, 1.0),
    "l1": (0.0, 0.5),
    "mkr": (0.0, 1.0),
    "pck": (0.0, 1.0),
    "flicker_gap": (0.0, 1.0),
}
DISTANCE_RANGE = (0.0, 300.0)  # lmd, akd, reprojection, jitter and vertex errors (px, mm)


def metric_range(name: str) -> tuple[float, float]:
    for key, bounds in METRIC_RANGES.items():
        if name == key or name.startswith(key + "_") or name.endswith("_" + key):
            return bounds
    return DISTANCE_RANGE


def assert_metrics_sane(metrics: dict, not_measured: set[str] = frozenset()) -> None:
    """Every value of a ``metrics.json`` (the model's and each baseline's, same keys) is a finite
    number in its plausible range, and every paired-difference interval holds its mean; NaN only
    for the metrics named in ``not_measured`` (and then also in their intervals)."""
    assert metrics["values"] and metrics["baselines"], metrics
    rows = {"model": metrics["values"], **metrics["baselines"]}
    for row, values in rows.items():
        assert set(values) == set(metrics["values"]), row
        for name, value in values.items():
            if name in not_measured and math.isnan(value):
                continue
            lo, hi = metric_range(name)
            assert math.isfinite(value) and lo <= value <= hi, (row, name, value, (lo, hi))
    for name, by_baseline in metrics.get("differences", {}).items():
        for base, diff in by_baseline.items():
            if name in not_measured and math.isnan(metrics["values"][name]):
                continue
            lo, hi = diff["ci"]
            assert math.isfinite(lo) and lo <= diff["mean"] <= hi, (name, base, diff)


def copy_media(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


# --- bad media, made on the fly -------------------------------------------------------------


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``src``'s bytes (a download cut short)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def zero_frame_video(dst: Path) -> Path:
    """An MP4 with an H.264 video stream that holds no frames (a zero-length clip)."""
    import av

    with av.open(str(dst), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 64
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return dst


def tone_wav(dst: Path, seconds: float = 1.0, sample_rate: int = 16000) -> Path:
    """A sine tone as wav (an audio file, e.g. given where a video is expected)."""
    import numpy as np

    from twinflow.media.audio import write_wav

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    write_wav(dst, 0.3 * np.sin(2 * np.pi * 220 * t), sample_rate)
    return dst
