"""Gather what a run left behind into plain data for the report's templates (no drawing here).

Sources: the sheets (twins, renders, requested pipelines), every ``metrics.json`` (verdicts by
:mod:`twinflow.verdict`), the videos (renders, evaluation, perception and mocap previews), the
training curves the shared loop writes beside each checkpoint (``<model>.curve.json``,
:mod:`twinflow.train.loop`), Snakemake's ``benchmarks/{rule}/{wildcards}.tsv``, the failed jobs'
logs (:func:`twinflow.summary.render_failure`), the models registry and the input files.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import twinflow
from twinflow.models import checksum, load_registry
from twinflow.sheets import load_sheets
from twinflow.summary import render_failure
from twinflow.verdict import verdicts

PIPELINES = ("nerf", "meshhead", "anchor", "animate", "mocap")
REPORT_RULE = "report"  # its own benchmark never feeds back into the report
# a requested render that is missing with no failed job's log (not run yet, or still running)
NOT_PRODUCED = "not produced"


@dataclass
class Paths:
    """Where a run keeps its files (all relative to the working directory of the run).

    Attributes:
        config: the config file the run used (``config/config.yaml``).
        results: the results folder; the report is written to ``results/report``.
        logs: ``logs/{rule}/{wildcards}.log``.
        benchmarks: ``benchmarks/{rule}/{wildcards}.tsv``.
    """

    config: Path = Path("config/config.yaml")
    results: Path = Path("results")
    logs: Path = Path("logs")
    benchmarks: Path = Path("benchmarks")


@dataclass
class Video:
    """One video shown as a contact sheet; ``kind``: render, evaluation, perception, mocap."""

    path: Path
    kind: str
    title: str


@dataclass
class Curve:
    """One training job's losses: ``history`` rows ``{"step": int, loss name: float}``."""

    model: Path
    desc: str
    history: list[dict[str, float]]
    steps: int
    stopped_early: bool
    max_minutes: float | None
    seconds: float | None


@dataclass
class Job:
    """One benchmarked job: rule, wildcards (the file stem), seconds and peak memory (MB)."""

    rule: str
    name: str
    seconds: float
    max_rss_mb: float | None


@dataclass
class PipelineMetrics:
    """One ``metrics.json``: its verdict rows and how it was measured."""

    pipeline: str
    path: Path
    rows: list[dict[str, Any]]
    measured: dict[str, Any]
    upper_bounds: dict[str, Any]
    error: str | None = None


@dataclass
class RenderStatus:
    """A requested render: ``status`` done, failed (with the failed jobs' logs and error) or
    not produced (missing, and no job of it failed)."""

    render_id: str
    twin_id: str
    pipeline: str
    video: Path
    status: str
    logs: list[Path] = field(default_factory=list)
    error: str | None = None


@dataclass
class TwinData:
    """Everything one twin's page shows."""

    twin_id: str
    pipelines: dict[str, str]  # pipeline -> done | failed | not produced | not requested
    metrics: list[PipelineMetrics]
    renders: list[RenderStatus]
    videos: list[Video]
    curves: list[Curve]
    jobs: list[Job]
    inputs: list[dict[str, str]]


@dataclass
class RunData:
    """The whole run: twins, renders, all benchmarked jobs and the provenance."""

    twins: list[TwinData]
    renders: list[RenderStatus]
    jobs: list[Job]
    provenance: dict[str, Any]


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def read_metrics(path: Path) -> PipelineMetrics:
    """The verdict rows of one ``metrics.json`` (``metric, baseline, direction, model,
    reference, verdict, difference, ci, upper_bound`` as display strings)."""
    try:
        data = json.loads(path.read_text())
        found = verdicts(data)
    except (OSError, ValueError, KeyError) as err:
        return PipelineMetrics(path.parent.name, path, [], {}, {}, error=str(err))
    rows = []
    for v in found:
        ci = ""
        if v.ci is not None:
            level = f"{100 * v.level:.0f}% " if v.level else ""
            ci = f"{level}[{v.ci[0]:+.3g}, {v.ci[1]:+.3g}]"
        rows.append(
            {
                "metric": v.metric,
                "direction": v.direction,
                "baseline": v.baseline,
                "model": _fmt(v.model),
                "reference": _fmt(v.reference),
                "difference": "n/a" if not math.isfinite(v.difference) else f"{v.difference:+.3g}",
                "ci": ci,
                "verdict": v.verdict,
                "upper_bound": v.upper_bound,
            }
        )
    return PipelineMetrics(
        pipeline=data.get("pipeline", path.parent.name),
        path=path,
        rows=rows,
        measured={
            k: v if isinstance(v, str | int | float) else json.dumps(v)
            for k, v in (data.get("measured") or {}).items()
        },
        upper_bounds=data.get("upper_bounds") or {},
    )


def read_curve(path: Path) -> Curve | None:
    """A ``<model>.curve.json`` written by :func:`twinflow.train.loop.run_training`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Curve(
        model=path.with_name(path.name.removesuffix(".curve.json")),
        desc=data.get("desc", ""),
        history=data.get("history", []),
        steps=int(data.get("steps", 0)),
        stopped_early=bool(data.get("stopped_early", False)),
        max_minutes=data.get("max_minutes"),
        seconds=data.get("seconds"),
    )


def read_benchmarks(folder: Path) -> list[Job]:
    """Every ``{folder}/{rule}/{name}.tsv`` (Snakemake's format: ``s``, ``max_rss`` in MB, ...;
    a job benchmarked several times (``repeat``) counts its mean), the report's own left out."""
    jobs = []
    for tsv in sorted(folder.glob("*/*.tsv")) if folder.is_dir() else []:
        if tsv.parent.name == REPORT_RULE:
            continue
        try:
            rows = list(csv.DictReader(tsv.open(), delimiter="\t"))
            seconds = sum(float(r["s"]) for r in rows) / len(rows)
            rss = [float(r["max_rss"]) for r in rows if r.get("max_rss") not in (None, "", "NA")]
        except (OSError, KeyError, ValueError, ZeroDivisionError):
            continue
        jobs.append(Job(tsv.parent.name, tsv.stem, seconds, max(rss) if rss else None))
    return jobs


def belongs(name: str, ids: set[str]) -> bool:
    """Whether a job file stem (``ann``, ``r1_clip_000``, ``ann_mocap``, ``ann-person0``) is
    about one of ``ids`` (a twin and its renders)."""
    return any(name == i or name.startswith((f"{i}_", f"{i}-")) for i in ids)


def curve_owner(model: Path, results: Path, sheets) -> str | None:
    """The twin a trained model belongs to: ``results/{twin}/...`` or ``results/drive/{render}/``
    (its render's twin); ``None`` for run-wide models (e.g. ``results/mocap/traj/model.pt``),
    which every twin's page shows."""
    parts = model.relative_to(results).parts
    if parts[0] in sheets.twins:
        return parts[0]
    if parts[0] == "drive" and len(parts) > 1 and parts[1] in sheets.renders:
        return sheets.renders[parts[1]].twin_id
    return None


def git_commit(where: Path) -> str:
    """The commit of the repository holding ``where`` (``+ local changes`` when dirty)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" + local changes" if dirty else "")


def _file_entry(role: str, path: str | Path) -> dict[str, str]:
    p = Path(path)
    if not p.exists():
        return {"role": role, "path": str(p), "sha256": "missing", "size": ""}
    size = sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size
    return {"role": role, "path": str(p), "sha256": checksum(p), "size": f"{size / 1e6:.2f} MB"}


def models_used(config: dict[str, Any], pipelines: set[str]) -> list[dict[str, str]]:
    """Registry entries the run's pipelines may use (``used_by: twinflow.<pipeline>...``) or that
    are supplied: file, recorded sha256 and whether present (a stage verifies the checksum
    before it reads the file, :func:`twinflow.models.resolve`; optional models not supplied
    were not used)."""
    reg = Path((config.get("models") or {}).get("registry", "models/registry.yaml"))
    try:
        entries = load_registry(reg)
    except Exception as err:  # a report never fails on the registry
        return [{"name": "registry unreadable", "file": str(reg), "sha256": str(err), "state": ""}]
    out = []
    for e in entries.values():
        users = {u.split(".")[1] for u in e.used_by if u.count(".") >= 1}  # twinflow.nerf.x: nerf
        present = (reg.parent / e.file).exists()
        if not (users & pipelines or present):
            continue
        out.append(
            {
                "name": e.name,
                "file": str(reg.parent / e.file),
                "sha256": e.sha256 or "not recorded",
                "state": "present" if present else "not supplied",
                "used_by": ", ".join(e.used_by),
            }
        )
    return out


def twin_videos(results: Path, twin: str, renders: list[RenderStatus]) -> list[Video]:
    """The videos of one twin's page, in page order: renders, evaluation videos of each
    pipeline folder, the perception preview, the mocap mesh overlay, and the previews of the
    renders' driving inputs (``results/drive/{render}/*/*preview.mp4``)."""
    out = [Video(r.video, "render", f"render {r.render_id} ({r.pipeline})") for r in renders]
    out = [v for v in out if v.path.exists()]
    for pipeline in PIPELINES:
        if pipeline == "mocap":
            continue
        for mp4 in sorted((results / twin / pipeline).glob("*.mp4")):
            out.append(Video(mp4, "evaluation", f"{pipeline} held-out evaluation ({mp4.name})"))
    preview = results / twin / "perception" / "preview.mp4"
    if preview.exists():
        out.append(Video(preview, "perception", "perception preview (landmarks, matte)"))
    mocap = results / twin / "mocap" / "preview.mp4"
    if mocap.exists():
        out.append(Video(mocap, "mocap", "mocap mesh overlay"))
    for r in renders:  # a render's driving video: its perception, mesh and mocap previews
        drive = results / "drive" / r.render_id
        for mp4 in sorted(drive.glob("*/*preview.mp4")):
            kind = "perception" if mp4.parent.name == "perception" else "mocap"
            what = {"perception": "perception preview", "meshhead": "driving face mesh"}.get(
                mp4.parent.name, f"{mp4.parent.name} mesh overlay"
            )
            out.append(Video(mp4, kind, f"render {r.render_id}: {what} of its driving input"))
    return out


def collect(paths: Paths) -> RunData:
    """Read the run under ``paths`` into a :class:`RunData`."""
    config = yaml.safe_load(paths.config.read_text())
    sheets = load_sheets(config["twins"], config["renders"])
    results, logs = paths.results, paths.logs
    all_jobs = read_benchmarks(paths.benchmarks)
    all_curves = [
        c
        for f in sorted(results.rglob("*.curve.json"))
        if f.relative_to(results).parts[0] != "report" and (c := read_curve(f))
    ]
    renders = []
    for r in sheets.renders.values():
        video = results / "renders" / f"{r.render_id}.mp4"
        status = RenderStatus(r.render_id, r.twin_id, r.pipeline, video, "done")
        if not video.exists() or video.stat().st_size == 0:
            status.logs, status.error = render_failure(logs, r)
            status.status = "failed" if status.logs else NOT_PRODUCED
        renders.append(status)
    twins = []
    for twin_id, twin in sheets.twins.items():
        mine = [r for r in renders if r.twin_id == twin_id]
        pipelines = {}
        for p in PIPELINES:
            states = [r.status for r in mine if r.pipeline == p]
            worst = next((k for k in ("failed", NOT_PRODUCED) if k in states), "done")
            pipelines[p] = worst if states else "not requested"
        metrics = [
            read_metrics(results / twin_id / p / "metrics.json")
            for p in PIPELINES
            if (results / twin_id / p / "metrics.json").exists()
        ]
        for r in mine:  # mocap fits of driving videos are measured too
            drive = results / "drive" / r.render_id / r.pipeline / "metrics.json"
            if drive.exists():
                metrics.append(read_metrics(drive))
        curves = [c for c in all_curves if curve_owner(c.model, results, sheets) in (twin_id, None)]
        ids = {twin_id, *(r.render_id for r in mine)}
        inputs = [_file_entry(k, v) for k in ("video", "photo", "audio") if (v := getattr(twin, k))]
        for r in mine:
            row = sheets.renders[r.render_id]
            for key in ("driving_audio", "driving_video"):
                if getattr(row, key):
                    inputs.append(_file_entry(f"{r.render_id} {key}", getattr(row, key)))
        twins.append(
            TwinData(
                twin_id=twin_id,
                pipelines=pipelines,
                metrics=metrics,
                renders=mine,
                videos=twin_videos(results, twin_id, mine),
                curves=curves,
                jobs=[j for j in all_jobs if belongs(j.name, ids)],
                inputs=inputs,
            )
        )
    provenance = {
        "version": twinflow.__version__,
        "commit": git_commit(Path(twinflow.__file__).parent),
        "config_path": str(paths.config),
        "config": yaml.safe_dump(config, sort_keys=False),
        "preset": config.get("preset", ""),
        "models": models_used(config, {r.pipeline for r in renders}),
    }
    return RunData(twins=twins, renders=renders, jobs=all_jobs, provenance=provenance)
