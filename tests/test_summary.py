"""The run summary: verdicts of every metric against every baseline, failed renders by log."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers import copy_media, make_project
from twinflow.metrics import write_metrics
from twinflow.summary import main, summarise
from twinflow.verdict import BETTER, MISSING, UNCLEAR, WORSE, decide, losses, verdicts


@pytest.mark.parametrize(
    ("model", "base", "direction", "ci", "expected"),
    [
        (24.1, 24.0, "higher", None, BETTER),
        (24.1, 24.0, "lower", None, WORSE),
        (2.0, 1.4, "lower", None, WORSE),
        (1.0, 1.0, "lower", None, UNCLEAR),
        (9.55, 9.60, "lower", (-0.25, 0.25), UNCLEAR),  # the interval decides, not the means
        (12.1, 9.4, "lower", (1.29, 3.52), WORSE),
        (9.1, 9.6, "lower", (-0.9, -0.1), BETTER),
        (math.nan, 1.0, "higher", None, MISSING),
    ],
)
def test_verdict_follows_the_direction_and_the_interval(model, base, direction, ci, expected):
    assert decide(model, base, direction, ci) == expected


def write_run(root, demo_media, monkeypatch):
    """A project (the working directory) with one twin, a nerf and an anchor render, their
    metrics.json and logs; no render video yet."""
    monkeypatch.chdir(root)
    copy_media(demo_media / "talk.mp4", root / "media/talk.mp4")
    copy_media(demo_media / "drive_speech.wav", root / "a.wav")
    make_project(
        root,
        [{"twin_id": "ann", "video": "media/talk.mp4"}],
        [
            {"render_id": "r_nerf", "twin_id": "ann", "pipeline": "nerf", "driving_audio": "a.wav"},
            {"render_id": "r_anchor", "twin_id": "ann", "pipeline": "anchor"},
        ],
    )
    res = root / "results"
    write_metrics(
        res / "ann/nerf/metrics.json", pipeline="nerf", twin="ann",
        values={"psnr": 24.1, "lmd": 9.55}, baselines={"no_audio": {"psnr": 24.0, "lmd": 9.60}},
        better={"psnr": "higher", "lmd": "lower"}, measured={},
        differences={"lmd": {"no_audio": {"mean": -0.05, "ci": [-0.25, 0.25], "level": 0.95}}},
    )  # fmt: skip
    write_metrics(
        res / "ann/anchor/metrics.json", pipeline="anchor", twin="ann",
        values={"psnr": 13.7, "pck": 0.0},
        baselines={"nearest_pose": {"psnr": 23.0, "pck": 0.85}, "oracle": {"psnr": 30, "pck": 1}},
        better={"psnr": "higher", "pck": "higher"}, measured={},
        upper_bounds={"oracle": {"metrics": ["psnr"], "what": "a perfect model"}},
    )  # fmt: skip
    (res / "renders").mkdir(parents=True)
    log = root / "logs/anchor_body/r_anchor_clip_001.log"
    log.parent.mkdir(parents=True)
    gate = root / "logs/perception_ready/ann_mocap.log"  # another pipeline's gate: not shown
    gate.parent.mkdir(parents=True)
    gate.write_text("twinflow error: twin 'ann': no body found in 9 of 9 frames\n")
    log.write_text("12:00:00 INFO twinflow: ...\ntwinflow error: render 'r_anchor': boom\n")
    ok_log = root / "logs/anchor_body/r_anchor_clip_000.log"
    ok_log.write_text("12:00:00 INFO twinflow.anchor.body: done\n")
    return root


def test_summary_prints_a_verdict_per_metric_and_baseline_and_lists_losses(
    tmp_path, demo_media, monkeypatch
):
    root = write_run(tmp_path, demo_media, monkeypatch)
    copy_media(demo_media / "talk.mp4", root / "results/renders/r_nerf.mp4")
    s = summarise(Path("config/config.yaml"), Path("results"), Path("logs"))
    text = "\n".join(s.lines)
    assert "psnr (higher is better): model 24.1, no_audio 24: better (+0.1)" in text
    assert "lmd (lower is better): model 9.55, no_audio 9.6: no clear difference" in text
    assert "95% CI [-0.25, +0.25]" in text
    assert "pck (higher is better): model 0, nearest_pose 0.85: worse (-0.85)" in text
    assert "upper bound oracle 30: worse" in text  # shown, but not counted as a loss ...
    assert "pck (higher is better): model 0, oracle 1: worse" in text  # ... on its metrics only
    assert s.losing == [
        "twin ann anchor: worse on psnr, pck against nearest_pose; pck against oracle"
    ]
    assert "anchor against its baselines" in text and "0 better, 3 worse, 0 no clear" in text
    # the anchor render is missing: FAILED with the log that holds the error, not the clean one
    assert s.failed_renders == ["r_anchor"]
    line = next(x for x in s.lines if x.strip().startswith("r_anchor"))
    assert "FAILED (not produced: render 'r_anchor': boom)" in line  # the error, in the line
    assert "r_anchor_clip_001.log" in line
    assert "clip_000" not in line and "ann_mocap" not in line
    assert "r_nerf" in text and "FAILED" not in next(x for x in s.lines if "r_nerf " in x)


def test_summary_exits_non_zero_only_when_a_render_failed(tmp_path, demo_media, monkeypatch):
    root = write_run(tmp_path, demo_media, monkeypatch)
    copy_media(demo_media / "talk.mp4", root / "results/renders/r_nerf.mp4")
    assert main([]) == 1
    copy_media(demo_media / "talk.mp4", root / "results/renders/r_anchor.mp4")
    assert main([]) == 0  # losing to a baseline is reported, not a failure
    (root / "results/renders/r_anchor.mp4").write_bytes(b"not a video")
    assert main([]) == 1


def test_verdicts_read_the_shape_write_metrics_writes(tmp_path):
    data = write_metrics(
        tmp_path / "m.json", pipeline="x", twin="t", values={"a": 1.0, "b": 2.0},
        baselines={"base": {"a": 2.0, "b": 2.0}}, better={"a": "higher", "b": "lower"},
        measured={},
    )  # fmt: skip
    found = verdicts(data)
    assert [(v.metric, v.baseline, v.verdict) for v in found] == [
        ("a", "base", WORSE),
        ("b", "base", UNCLEAR),
    ]
    assert losses(found) == found[:1]
    with pytest.raises(ValueError, match="difference a - nope"):
        write_metrics(
            tmp_path / "bad.json", pipeline="x", twin="t", values={"a": 1.0},
            baselines={"base": {"a": 2.0}}, better={"a": "higher"}, measured={},
            differences={"a": {"nope": {"mean": 0.0, "ci": [0, 0]}}},
        )  # fmt: skip
    assert not (tmp_path / "bad.json").exists()
