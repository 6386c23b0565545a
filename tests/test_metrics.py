"""The shared metrics: landmark distances and the one ``metrics.json`` shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from twinflow import metrics


def test_centred_landmark_distance_ignores_where_the_mouth_is_but_not_its_shape():
    rng = np.random.default_rng(0)
    mouth = rng.normal(size=(40, 2)) * 10
    moved = mouth + np.array([7.0, -3.0])
    assert metrics.landmark_distance(moved, mouth) == pytest.approx(np.hypot(7, 3))
    assert metrics.landmark_distance(moved, mouth, centred=True) == pytest.approx(0.0, abs=1e-9)
    opened = mouth.copy()
    opened[:, 1] *= 1.5  # taller mouth, same centre
    opened -= opened.mean(0) - mouth.mean(0)
    shape = metrics.landmark_distance(opened + [7.0, -3.0], mouth, centred=True)
    assert shape == pytest.approx(metrics.landmark_distance(opened, mouth), rel=1e-9)
    assert shape > 1.0
    batch = np.stack([moved, opened])  # (..., K, 2): every set is centred on its own
    both = metrics.landmark_distance(batch, np.stack([mouth, mouth]), centred=True)
    assert both == pytest.approx(shape / 2)


def test_metrics_json_needs_a_baseline_with_the_same_keys(tmp_path):
    ok = metrics.write_metrics(
        tmp_path / "m.json",
        pipeline="nerf",
        twin="t",
        values={"psnr": 25.0, "lmd": 1.0},
        baselines={"no_audio": {"psnr": 24.0, "lmd": 1.2}},
        better={"psnr": "higher", "lmd": "lower"},
        measured={"how": "test"},
    )
    assert json.loads((tmp_path / "m.json").read_text()) == ok
    with pytest.raises(ValueError):
        metrics.write_metrics(
            tmp_path / "bad.json",
            pipeline="nerf",
            twin="t",
            values={"psnr": 25.0, "lmd": 1.0},
            baselines={"no_audio": {"psnr": 24.0}},
            better={"psnr": "higher", "lmd": "lower"},
            measured={"how": "test"},
        )
    assert not (tmp_path / "bad.json").exists()


def test_paired_difference_interval_resamples_chunks_of_correlated_frames():
    rng = np.random.default_rng(0)
    # 20 chunks of 5 frames; inside a chunk the frames share their error (as 40 ms neighbours do)
    shared = np.repeat(rng.normal(0.0, 1.0, 20), 5) + rng.normal(0.0, 0.1, 100)
    chunks = np.arange(100) // 5
    by_chunk = metrics.paired_difference_ci(shared, chunks)
    by_frame = metrics.paired_difference_ci(shared, np.arange(100))
    assert by_chunk["chunks"] == 20 and by_frame["chunks"] == 100
    assert by_chunk["ci"][0] < by_chunk["mean"] < by_chunk["ci"][1]
    width = lambda r: r["ci"][1] - r["ci"][0]  # noqa: E731
    assert width(by_chunk) > 1.5 * width(by_frame)  # frames alone would overstate certainty
    assert metrics.paired_difference_ci(shared, chunks) == by_chunk  # seeded


def test_paired_difference_interval_excludes_zero_for_a_clear_shift_and_skips_missing():
    rng = np.random.default_rng(1)
    diff = -1.0 + rng.normal(0.0, 0.3, 60)
    diff[[3, 17]] = np.nan  # no face found on those frames
    res = metrics.paired_difference_ci(diff, np.arange(60) // 5)
    assert res["mean"] == pytest.approx(np.nanmean(diff))
    assert res["ci"][1] < 0 and res["chunks"] == 12
