"""The run report (twinflow.report): pages, pictures, curves, timing, provenance; the report rule's
rerun semantics; Snakemake's own report; the pages in a real (headless) browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch

from tests.helpers import make_project, planned_jobs, snakemake, tone_wav
from twinflow.media.video import write_video
from twinflow.metrics import write_metrics
from twinflow.report.__main__ import main
from twinflow.train.loop import LoopConfig, curve_path, run_training

TWIN_SECTIONS = {"renders", "metrics", "pictures", "training", "timing", "provenance"}
INDEX_SECTIONS = {"twins", "renders", "timing", "provenance"}
ONLY_REPORT = ("--allowed-rules", "report")  # the fake run's upstream files have no rule run


def _video(path: Path, frames: int = 12, width: int = 96) -> Path:
    """A small moving-gradient video ``(frames, 96, width, 3)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.linspace(0, 255, width)[None, :, None]
    write_video(
        path,
        (
            np.broadcast_to((x + 20 * i) % 256, (96, width, 3)).astype(np.uint8)
            for i in range(frames)
        ),
        fps=25,
    )
    return path


def _train(final: Path, steps: int, max_minutes: float | None = None) -> None:
    """A real run of the shared training loop on a tiny linear model."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x, y = torch.randn(32, 2), torch.randn(32, 1)

    def step(i):
        opt.zero_grad()
        loss = ((lin(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return {"mse": loss.item(), "l1": (lin(x) - y).abs().mean().item()}

    final.parent.mkdir(parents=True, exist_ok=True)
    cfg = LoopConfig(steps=steps, log_every=5, desc="tiny", max_minutes=max_minutes)
    run_training({"lin": lin}, {"opt": opt}, step, cfg, final, {})


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A finished-looking run (the working directory): twin ``ann`` with a nerf render (done) and
    an anchor render (failed, with its log), metrics, an evaluation video, the perception and
    mocap previews, training curves (one stopped early by its budget, one run-wide), benchmarks."""
    monkeypatch.chdir(tmp_path)
    _video(tmp_path / "media/talk.mp4", frames=30)
    tone_wav(tmp_path / "a.wav")
    make_project(
        tmp_path,
        [{"twin_id": "ann", "video": "media/talk.mp4"}],
        [
            {"render_id": "r_nerf", "twin_id": "ann", "pipeline": "nerf", "driving_audio": "a.wav"},
            {"render_id": "r_anchor", "twin_id": "ann", "pipeline": "anchor"},
        ],
    )
    res = tmp_path / "results"
    write_metrics(
        res / "ann/nerf/metrics.json", pipeline="nerf", twin="ann",
        values={"psnr": 24.1, "lmd": 9.55}, baselines={"no_audio": {"psnr": 24.0, "lmd": 9.60}},
        better={"psnr": "higher", "lmd": "lower"},
        measured={"split": "last 10% of frames", "how": "PSNR over the head box"},
        differences={"lmd": {"no_audio": {"mean": -0.05, "ci": [-0.25, 0.25], "level": 0.95}}},
    )  # fmt: skip
    write_metrics(
        res / "ann/anchor/metrics.json", pipeline="anchor", twin="ann",
        values={"psnr": 13.7}, baselines={"nearest_pose": {"psnr": 23.0}},
        better={"psnr": "higher"}, measured={"frames": 8},
    )  # fmt: skip
    _video(res / "renders/r_nerf.mp4")
    _video(res / "ann/anchor/eval.mp4", width=288)  # ground truth, model, baseline
    _video(res / "ann/nerf/val.mp4", width=288)
    _video(res / "ann/perception/preview.mp4")
    _video(res / "ann/mocap/preview.mp4")
    _video(res / "drive/r_nerf/perception/preview.mp4")  # the driving input's, if it has one
    _train(res / "ann/nerf/model.pt", steps=20)
    _train(res / "ann/anchor/body.pt", steps=10_000, max_minutes=0.002)  # ~0.1 s budget
    _train(res / "mocap/traj/model.pt", steps=10)  # a run-wide model: on every twin's page
    log = tmp_path / "logs/anchor_body/r_anchor_clip_001.log"
    log.parent.mkdir(parents=True)
    log.write_text("twinflow error: render 'r_anchor': boom\n")
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, name, s in [("nerf_train", "ann", 42.0), ("anchor_body", "r_anchor_clip_001", 3.5),
                          ("perception_face", "ann", 7.25), ("report", "report", 99.0)]:  # fmt: skip
        tsv = tmp_path / f"benchmarks/{rule}/{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(head + f"{s}\t0:00:{s:.0f}\t512.5\t0\t0\t0\t0\t0\t0\t{s}\n")
    return tmp_path


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.sections: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.add(a["id"])
        for key in ("src", "href"):
            if a.get(key) and tag in ("img", "video", "source", "a"):
                self.links.append(a[key])


def _check_page(page: Path, sections: set[str]) -> str:
    """The page's text; asserts every section is there and every relative link resolves."""
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    assert sections <= parser.sections, f"{page.name}: missing {sections - parser.sections}"
    for link in parser.links:
        if "://" in link or link.startswith("#"):
            continue
        assert (page.parent / unquote(link)).is_file(), f"{page.name}: broken link {link}"
    return text


def test_the_training_loop_writes_its_curve_beside_the_checkpoint(tmp_path):
    _train(tmp_path / "m.pt", steps=12)
    import json

    curve = json.loads(curve_path(tmp_path / "m.pt").read_text())
    assert [r["step"] for r in curve["history"]] == [5, 10, 12]
    assert curve["steps"] == 12 and curve["stopped_early"] is False and "mse" in curve["history"][0]


def test_report_pages_have_every_section_and_no_broken_link(run):
    t0 = time.perf_counter()
    assert main([]) == 0
    seconds = time.perf_counter() - t0
    out = run / "results/report"
    index = _check_page(out / "index.html", INDEX_SECTIONS)
    page = _check_page(out / "twin_ann.html", TWIN_SECTIONS)
    # the index: the twin, each render with its status, the failed one with its log and error
    assert 'href="twin_ann.html"' in index
    assert 'href="../renders/r_nerf.mp4"' in index
    assert "render &#39;r_anchor&#39;: boom" in index
    assert 'href="../../logs/anchor_body/r_anchor_clip_001.log"' in index
    assert ">not requested<" in index and ">failed<" in index and ">done<" in index
    # the twin: every metric beside every baseline with its verdict and how it was measured
    assert "no clear difference" in page and ">better<" in page and ">worse<" in page
    assert "95% [-0.25, +0.25]" in page and "PSNR over the head box" in page
    # pictures: render, held-out evaluations, perception preview, mocap overlay, driving input
    for video in ("../renders/r_nerf.mp4", "../ann/anchor/eval.mp4",
                  "../ann/perception/preview.mp4", "../ann/mocap/preview.mp4",
                  "../drive/r_nerf/perception/preview.mp4"):  # fmt: skip
        assert f'href="{video}"' in page
    assert '<video controls preload="none" width="480" src="../renders/r_nerf.mp4">' in page
    assert len(list((out / "img/ann").glob("*.jpg"))) == 6
    # training curves, the twin's (one stopped early by its budget) and the run-wide one
    assert len(list((out / "curves").glob("ann_*.png"))) == 3
    assert "stopped early" in page
    # timing: the jobs of this twin from benchmarks/, never the report's own
    assert "nerf_train" in page and "anchor_body" in page and "99.0" not in index
    assert "52.8 s of job time" in page
    # provenance: version, commit, config, input checksums
    assert "twinflow version" in page and "git commit" in page and "preset" in page
    assert "media/talk.mp4" in page and len(__import__("re").findall(r"[0-9a-f]{64}", page)) >= 2
    assert seconds < 20, f"report took {seconds:.1f} s"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing; CI must run the browser test (.ci/run installs it)")
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    return found


def test_report_in_a_headless_browser(run):
    browser = _chromium()
    assert main([]) == 0
    out = run / "results/report"
    shots = Path(os.environ.get("TWINFLOW_REPORT_SHOTS", run / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    for page, sections in (("index.html", INDEX_SECTIONS), ("twin_ann.html", TWIN_SECTIONS)):
        _check_page(out / page, sections)
        png = shots / page.replace(".html", ".png")
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--screenshot={png}", "--window-size=1200,4200", f"file://{out / page}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert png.stat().st_size > 20_000  # a rendered page, not a blank one


def test_report_rule_reruns_only_when_a_metric_or_render_changes(run):
    target = "results/report/index.html"
    shutil.copyfile(run / "results/renders/r_nerf.mp4", run / "results/renders/r_anchor.mp4")
    t0 = time.perf_counter()
    snakemake(run, target, *ONLY_REPORT)
    job = (run / "benchmarks/report/report.tsv").read_text().splitlines()[1].split("\t")[0]
    print(f"report rule: {time.perf_counter() - t0:.1f} s with Snakemake, the job {job} s")
    assert (run / "results/report/twin_ann.html").exists()
    assert (run / "results/report/timing.png").exists()
    # side data (a benchmark, a log, a curve, the report's own benchmark) reruns nothing
    (run / "benchmarks/nerf_train/ann.tsv").touch()
    (run / "logs/anchor_body/r_anchor_clip_001.log").touch()
    (run / "results/ann/nerf/model.pt.curve.json").touch()
    assert planned_jobs(run, target, *ONLY_REPORT) == set()
    # a changed metrics.json does, and so does a changed render (each alone: the other one's
    # modification time is set back before the report's)
    before = (run / target).stat().st_mtime - 60
    metrics = run / "results/ann/nerf/metrics.json"
    metrics.write_text(metrics.read_text().replace("24.1", "24.2"))
    assert planned_jobs(run, target, *ONLY_REPORT) == {("report", "")}
    os.utime(metrics, (before, before))
    _video(run / "results/renders/r_nerf.mp4", frames=14)
    assert planned_jobs(run, target, *ONLY_REPORT) == {("report", "")}
    # Snakemake's own report of the run: its report() outputs (timing, training curves)
    t0 = time.perf_counter()
    snakemake(run, target, *ONLY_REPORT, "--report", "report.zip")
    print(f"snakemake --report: {time.perf_counter() - t0:.1f} s")
    assert (run / "report.zip").stat().st_size > 10_000


def test_a_missing_render_with_no_failed_job_is_not_produced_and_models_are_listed(run):
    from twinflow.report.collect import NOT_PRODUCED, Paths, collect

    (run / "logs/anchor_body/r_anchor_clip_001.log").unlink()
    data = collect(Paths())
    status = {r.render_id: r.status for r in data.renders}
    assert status == {"r_nerf": "done", "r_anchor": NOT_PRODUCED}
    assert data.twins[0].pipelines["anchor"] == NOT_PRODUCED
    assert data.twins[0].pipelines["mocap"] == "not requested"
    models = {m["name"]: m for m in data.provenance["models"]}
    assert "wav2vec2-base-960h" in models and "mya-pretrained-body" in models  # nerf, anchor
    assert "smplx-neutral" not in models and "faceformer-biwi" not in models  # not requested
    assert all(m["state"] == "not supplied" for m in models.values())
