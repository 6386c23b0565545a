"""Print what a run produced, and whether each model beats its naive baselines.

``python -m twinflow.summary [--config config/config.yaml] [--results results] [--logs logs]``

Per twin: its stage folders (items, size) and, for every ``metrics.json`` (the twin's pipelines,
and the mocap fits of driving videos), each metric next to each baseline with a verdict
(:mod:`twinflow.verdict`: better, worse, or no clear difference where an interval holds 0).
Per render: the video, or FAILED with the logs of the jobs that failed. Last, the models that
lose to a baseline. Exit status 1 when a render is missing or failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from twinflow.sheets import load_sheets
from twinflow.verdict import BETTER, UNCLEAR, WORSE, describe, losses, verdicts

# lines of a log that show its job failed (twinflow's one-line errors, Python tracebacks)
FAILURE = re.compile(r"^(twinflow error: |Traceback \(most recent call last\))", re.M)


@dataclass
class Summary:
    """The printed lines, the renders that were not produced and the models' losses."""

    lines: list[str] = field(default_factory=list)
    failed_renders: list[str] = field(default_factory=list)
    losing: list[str] = field(default_factory=list)


def _size(path: Path) -> str:
    n = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
    n = n or (path.stat().st_size if path.is_file() else 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def describe_video(path: Path) -> str | None:
    """``"300 frames, 512x512, 25 fps, audio"``, or ``None`` when the file cannot be read."""
    from twinflow.media.video import probe_video

    try:
        info = probe_video(path)
    except Exception:  # a summary never fails on one bad file
        return None
    audio = ", audio" if info.has_audio else ""
    return f"{info.n_frames} frames, {info.width}x{info.height}, {info.fps:g} fps{audio}"


def failed_logs(logs: Path, *names: str) -> list[Path]:
    """Logs of failed jobs of a twin or render: ``logs/{rule}/{name}[_{clip|person}].log`` that
    hold an error, newest first (``names``: twin and render ids, and ``{id}_{pipeline}`` for the
    perception gates)."""
    if not logs.is_dir():
        return []
    pattern = re.compile(
        "(" + "|".join(re.escape(n) for n in names) + r")(_clip_\d+|_person\d+)?\.log"
    )
    found = [
        p
        for p in logs.glob("*/*.log")
        if pattern.fullmatch(p.name) and FAILURE.search(p.read_text(errors="replace"))
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def render_failure(logs: Path, render) -> tuple[list[Path], str | None]:
    """Why a render (:class:`twinflow.sheets.Render`) is missing: the failed jobs' logs of it,
    of its twin and of its pipeline's perception gates, newest first, and the first twinflow
    error among them (None when no log holds one)."""
    gates = (f"{render.twin_id}_{render.pipeline}", f"{render.render_id}_{render.pipeline}")
    bad = failed_logs(logs, render.render_id, render.twin_id, *gates)
    return bad, next((e for e in map(first_error, bad) if e), None)


def first_error(log: Path) -> str | None:
    """The one-line twinflow error of a failed job's log (``twinflow error: ...``), if any."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("twinflow error: "):
            return line.removeprefix("twinflow error: ").strip()
    return None


def metrics_lines(path: Path, where: str, out: Summary) -> None:
    """The verdict lines of one ``metrics.json``; its losses go to ``out.losing``."""
    try:
        data = json.loads(path.read_text())
        found = verdicts(data)
    except (OSError, ValueError, KeyError) as err:
        out.lines.append(f"        {path}: unreadable ({err})")
        return
    naive = [v for v in found if not v.upper_bound]
    counts = {k: sum(v.verdict == k for v in naive) for k in (BETTER, WORSE, UNCLEAR)}
    out.lines.append(
        f"    {data['pipeline']} against its baselines ({path}): "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f" of {len(naive)} comparisons"
    )
    out.lines += [f"        {describe(v)}" for v in found]
    lost = losses(found)
    if lost:
        by_baseline: dict[str, list[str]] = {}
        for v in lost:
            by_baseline.setdefault(v.baseline, []).append(v.metric)
        what = "; ".join(f"{', '.join(m)} against {b}" for b, m in by_baseline.items())
        out.losing.append(f"{where} {data['pipeline']}: worse on {what}")


def summarise(config_path: Path, results: Path, logs: Path = Path("logs")) -> Summary:
    config = yaml.safe_load(config_path.read_text())
    sheets = load_sheets(config["twins"], config["renders"])
    out = Summary()
    for twin in sheets.twins:
        folder = results / twin
        out.lines.append(f"twin {twin}: {folder}/")
        if not folder.exists():
            out.lines.append("    (nothing produced yet)")
            continue
        stages = sorted(p for p in folder.iterdir() if p.is_dir())
        for stage in stages:
            files = [p for p in stage.iterdir() if not p.name.startswith(".")]
            out.lines.append(f"    {stage.name + '/':14s} {len(files)} items, {_size(stage)}")
        for stage in stages:
            if (stage / "metrics.json").exists():
                metrics_lines(stage / "metrics.json", f"twin {twin}", out)
    out.lines.append("renders:")
    for render in sheets.renders.values():
        video = results / "renders" / f"{render.render_id}.mp4"
        state = describe_video(video) if video.exists() else None
        head = f"    {render.render_id:18s} {render.pipeline:9s} {video}"
        if state is not None:
            out.lines.append(f"{head}: {state}")
        else:
            out.failed_renders.append(render.render_id)
            why = "unreadable" if video.exists() else "not produced"
            bad, error = render_failure(logs, render)
            where = ", ".join(str(p) for p in bad) or f"no failed job's log in {logs}/"
            why += f": {error}" if error else ""
            out.lines.append(f"{head}: FAILED ({why}); logs: {where}")
        drive_metrics = results / "drive" / render.render_id / render.pipeline / "metrics.json"
        if drive_metrics.exists():
            metrics_lines(drive_metrics, f"render {render.render_id}", out)
    if out.losing:
        out.lines.append("models that lose to a naive baseline (README: each pipeline's section):")
        out.lines += [f"    {line}" for line in out.losing]
    if out.failed_renders:
        out.lines.append(f"FAILED renders: {', '.join(out.failed_renders)}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.summary", description=__doc__)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--logs", default="logs")
    args = p.parse_args(argv)
    summary = summarise(Path(args.config), Path(args.results), Path(args.logs))
    print("\n".join(summary.lines))
    return 1 if summary.failed_renders else 0


if __name__ == "__main__":
    sys.exit(main())
