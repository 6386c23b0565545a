"""The animate training as the reference's: its epoch schedule and its augmentations (flip
order, colour jitter with hue, mgif's resize and crop), and the reference configs as presets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from twinflow.animate.presets import PRESETS, get_preset
from twinflow.animate.schedule import make_schedule
from twinflow.errors import InputError
from twinflow.train.augment import PairAugmentation, adjust, hsv_to_rgb, resize_crop, rgb_to_hsv


def test_epoch_schedule_is_the_references():
    vox = PRESETS["vox256"]
    kw = {"epochs": vox.epochs, "num_repeats": vox.num_repeats, "milestones": vox.epoch_milestones}
    # 3 videos x 75 repeats = 225 pairs an epoch, 16 batches of 14 (the last, incomplete, dropped)
    plan = make_schedule(steps=None, batch_size=14, num_videos=3, **kw)
    assert (plan.steps, plan.steps_per_epoch, plan.drops) == (1600, 16, [960, 1440])
    # explicit steps: the drops at the same fractions (60 % and 90 %)
    plan = make_schedule(steps=300, batch_size=14, num_videos=3, **kw)
    assert (plan.steps, plan.drops, plan.steps_per_epoch) == (300, [180, 270], None)
    with pytest.raises(InputError, match="no full batch"):
        make_schedule(
            steps=None, batch_size=14, num_videos=1, epochs=1, num_repeats=5, milestones=()
        )


def test_flips_swap_or_mirror_never_both():
    cfg = get_preset("tiny", {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0})
    aug = PairAugmentation(cfg)
    a = np.zeros((4, 4, 3), np.uint8)
    a[:, 0] = 255  # bright left column
    b = np.full((4, 4, 3), 128, np.uint8)
    np.random.seed(0)
    swapped = mirrored = 0
    n = 2000
    for _ in range(n):
        s, d = aug(a, b)
        swap = bool(torch.allclose(s, torch.full_like(s, 128 / 255)))
        first = d if swap else s
        mirror = bool(first[0, 0, -1] == 1.0)
        swapped += swap
        mirrored += mirror
    # the reference's RandomFlip: a time flip returns at once, so mirroring is 0.5 x 0.5
    assert abs(swapped / n - 0.5) < 0.05 and abs(mirrored / n - 0.25) < 0.04


def test_colour_jitter_operations():
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    green = adjust(red, "hue", 1 / 3)
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert torch.allclose(adjust(red, "saturation", 0.0)[0, :, 0, 0], torch.full((3,), 0.299))
    assert torch.allclose(adjust(rgb, "brightness", 2.0), (2 * rgb).clamp(0, 1))
    for kind in ("brightness", "contrast", "saturation"):
        assert torch.allclose(adjust(rgb, kind, 1.0), rgb, atol=1e-6)
    assert torch.allclose(adjust(rgb, "hue", 0.0), rgb, atol=1e-5)
    # one set of factors for both frames of a pair: equal frames stay equal
    aug = PairAugmentation(get_preset("tiny", {"hue": 0.5}))
    frame = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    np.random.seed(1)
    s, d = aug(frame, frame)
    assert torch.allclose(s, d) and not torch.allclose(
        s, torch.from_numpy(frame).permute(2, 0, 1) / 255
    )


def test_resize_and_crop_keep_the_frame_size():
    frames = [
        np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in (0, 1)
    ]
    np.random.seed(0)
    for _ in range(20):
        out = resize_crop(frames, (0.9, 1.1), 32)
        assert [f.shape for f in out] == [(32, 32, 3)] * 2
    mgif = PRESETS["mgif256"]
    assert mgif.resize_ratio == (0.9, 1.1) and mgif.hue == 0.5 and mgif.brightness == 0


def test_gpu_bench_runs_a_training_step_and_an_animation(capsys):
    from twinflow.animate import gpu_bench

    args = gpu_bench.build_parser().parse_args(
        ["--presets", "tiny", "--batch", "1", "--steps", "1", "--frames", "2", "--device", "cpu"]
    )
    gpu_bench.run(args)
    result = json.loads(capsys.readouterr().out.strip())
    assert result["preset"] == "tiny" and result["train_s_per_step"] > 0
    assert result["animate_frames"] == 2 and result["params_avd"] > 0
