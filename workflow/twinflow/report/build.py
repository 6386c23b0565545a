"""Write the report: pictures and charts into ``{out}/img/``, pages from the Jinja2 templates.

``{out}/index.html``: every twin and render with its status, the run's timing (``timing.png``)
and provenance; ``{out}/twin_{id}.html``: one twin's metrics, pictures (``img/{id}/``), training
curves (``curves/{id}_*.png``), timing and inputs. Links
to videos are relative (``../renders/r1.mp4``), so the folder opens from the file system as long
as it stays inside the results folder.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from twinflow.report.collect import PIPELINES, Paths, RunData, TwinData, collect
from twinflow.report.contact import ContactConfig, contact_sheet
from twinflow.report.plots import timing_chart, training_curve

log = logging.getLogger("twinflow.report")


@dataclass
class ReportConfig:
    """What the report is made of and where it goes.

    Attributes:
        paths: the run's config, results, logs and benchmarks folders.
        out: the report folder (``results/report``).
        contact: how contact sheets look.
    """

    paths: Paths = field(default_factory=Paths)
    out: Path = Path("results/report")
    contact: ContactConfig = field(default_factory=ContactConfig)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("twinflow.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def twin_pictures(twin: TwinData, out: Path, cfg: ContactConfig) -> list[dict]:
    """Contact sheets of the twin's videos: ``{"title", "kind", "video", "image", "error"}``
    (paths relative to ``out``)."""
    pictures = []
    for v in twin.videos:
        stem = "_".join(v.path.parts[-3:]).removesuffix(".mp4")  # unique: drive/r1/x/preview
        image = out / "img" / twin.twin_id / f"{v.kind}_{_safe(stem)}.jpg"
        entry = {"title": v.title, "kind": v.kind, "video": os.path.relpath(v.path, out)}
        try:
            contact_sheet(v.path, image, cfg)
            entry["image"] = os.path.relpath(image, out)
        except Exception as err:  # one unreadable video is shown as such, not a failed report
            entry["error"] = str(err)
        pictures.append(entry)
    return pictures


def twin_curves(twin: TwinData, out: Path) -> list[dict]:
    """Loss charts of the twin's training jobs: ``{"model", "image", "steps", "early", ...}``."""
    charts = []
    for c in twin.curves:
        name = _safe("_".join(c.model.parts[-2:]))
        image = out / "curves" / f"{twin.twin_id}_{name}.png"
        training_curve(c, image)
        charts.append(
            {
                "model": str(c.model),
                "image": os.path.relpath(image, out),
                "steps": c.steps,
                "stopped_early": c.stopped_early,
                "max_minutes": c.max_minutes,
                "seconds": c.seconds,
            }
        )
    return charts


def build(cfg: ReportConfig) -> RunData:
    """Collect the run and write the whole report; returns what was collected."""
    t0 = time.perf_counter()
    data = collect(cfg.paths)
    out = cfg.out
    (out / "img").mkdir(parents=True, exist_ok=True)
    env = _env()
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    (out / "curves").mkdir(exist_ok=True)
    # always drawn (a declared output of the rule), an empty chart when nothing was benchmarked
    run_timing = rel(timing_chart(data.jobs, out / "timing.png", "all jobs: "))
    pages = []
    for twin in data.twins:
        timing = None
        if twin.jobs:
            image = out / "img" / twin.twin_id / "timing.png"
            timing = rel(timing_chart(twin.jobs, image, f"{twin.twin_id}: "))
        page = out / f"twin_{twin.twin_id}.html"
        page.write_text(
            env.get_template("twin.html.j2").render(
                twin=twin,
                pictures=twin_pictures(twin, out, cfg.contact),
                curves=twin_curves(twin, out),
                timing=timing,
                total_seconds=sum(j.seconds for j in twin.jobs),
                provenance=data.provenance,
                rel=rel,
            )
        )
        pages.append(page)
    (out / "index.html").write_text(
        env.get_template("index.html.j2").render(
            data=data,
            pipelines=PIPELINES,
            timing=run_timing,
            total_seconds=sum(j.seconds for j in data.jobs),
            provenance=data.provenance,
            rel=rel,
        )
    )
    log.info("report of %d twins in %s (%.1f s)", len(pages), out, time.perf_counter() - t0)
    return data
