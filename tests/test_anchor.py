"""Anchor pipeline units: inflated attention, overlapping windows, shared initial noise, clips,
cross-fades, head alignment and the presets' checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twinflow.anchor.attention import (
    FrameWindow,
    InflatedAttnProcessor,
    frames_per_window,
    inflate,
    self_attention_names,
)
from twinflow.anchor.clips import overlapping_clips
from twinflow.anchor.presets import get_preset
from twinflow.anchor.sampling import initial_noise, sample_video, window_starts
from twinflow.anchor.stitch import crossfade

torch.set_num_threads(1)


def _attention(dim=16, heads=2):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    return Attention(query_dim=dim, heads=heads, dim_head=dim // heads).eval()


def test_inflated_attention_takes_keys_and_values_from_every_frame_of_the_window():
    attn = _attention()
    x = torch.randn(6, 5, 16)  # 2 groups x 3 frames, 5 tokens each
    window = FrameWindow(3)
    with torch.no_grad():
        out = InflatedAttnProcessor(window)(attn, x)
        # reference: per frame, queries of that frame against keys/values of all 3 frames
        q = attn.to_q(x).view(6, 5, 2, 8).transpose(1, 2)
        k = attn.to_k(x).view(2, 15, 2, 8).transpose(1, 2)  # (group, heads, 3*5, 8)
        v = attn.to_v(x).view(2, 15, 2, 8).transpose(1, 2)
        ref = []
        for b in range(6):
            g = b // 3
            w = torch.softmax(q[b] @ k[g].transpose(-1, -2) / 8**0.5, -1)
            ref.append((w @ v[g]).transpose(0, 1).reshape(5, 16))
        ref = attn.to_out[0](torch.stack(ref))
    assert torch.allclose(out, ref, atol=1e-5)
    # a frame's output depends on the other frames of its window, not on the other group
    x2 = x.clone()
    x2[1] += 1.0
    with torch.no_grad():
        out2 = InflatedAttnProcessor(window)(attn, x2)
    assert not torch.allclose(out2[0], out[0])
    assert torch.allclose(out2[3:], out[3:], atol=1e-6)


def test_inflated_attention_with_one_frame_equals_standard_attention():
    from diffusers.models.attention_processor import AttnProcessor2_0

    attn = _attention()
    x = torch.randn(4, 7, 16)
    with torch.no_grad():
        standard = AttnProcessor2_0()(attn, x)
        inflated = InflatedAttnProcessor(FrameWindow(1))(attn, x)
    assert torch.allclose(standard, inflated, atol=1e-6)


def test_inflate_sets_self_attention_of_unet_and_controlnet_only():
    from twinflow.anchor.models import build_denoiser

    cfg = get_preset("tiny", {"body_size": 32, "head_size": 16})
    model, _ = build_denoiser(cfg, "body")
    window = inflate(model.unet, model.controlnet)
    for net in (model.unet, model.controlnet):
        procs = net.attn_processors
        names = self_attention_names(net)
        assert names
        assert all(isinstance(procs[n], InflatedAttnProcessor) for n in names)
        assert not any(
            isinstance(p, InflatedAttnProcessor) for n, p in procs.items() if n not in names
        )
    x, t = torch.randn(3, 3, 32, 32), torch.full((3,), 500)
    ctrl, tok = torch.rand(3, 3, 32, 32), torch.randn(3, 16, cfg.cross_attention_dim)
    with torch.no_grad():
        single = model(x, t, ctrl, tok)
        with frames_per_window(window, 3):
            joint = model(x, t, ctrl, tok)
    assert window.frames is None
    assert not torch.allclose(single, joint)  # frames now see each other


@pytest.mark.parametrize("n", [1, 5, 16, 17, 28, 29, 40, 100])
def test_windows_of_16_overlapping_by_4_cover_every_frame(n):
    wins = window_starts(n, 16, 4)
    covered = np.zeros(n, int)
    for a, b in wins:
        assert b - a == min(16, n)
        covered[a:b] += 1
    assert (covered >= 1).all()
    for (_, b0), (a1, _) in zip(wins, wins[1:], strict=False):
        assert b0 - a1 >= 4  # neighbours share at least 4 frames
    assert wins[0][0] == 0 and wins[-1][1] == n


def test_window_predictions_are_averaged_per_frame_at_every_step():
    """A fake model whose noise prediction is the window's first frame index: the average each
    frame receives equals the mean over the windows that hold it."""
    from diffusers import DDIMScheduler

    n = 28
    wins = window_starts(n, 16, 4)
    seen: list[tuple[int, int]] = []

    def eps_fn(x, t, frames, with_ref):
        seen.append((frames.start, frames.stop))
        return torch.full_like(x, float(frames.start))

    captured = {}

    class Spy(DDIMScheduler):
        def step(self, model_output, timestep, sample, **kw):
            captured.setdefault("eps", model_output.clone())
            return super().step(model_output, timestep, sample, **kw)

    sched = Spy(num_train_timesteps=1000, clip_sample=False)
    sample_video(eps_fn, n, (1, 2, 2), sched, steps=3, window=16, overlap=4)
    assert len(seen) == 3 * len(wins)
    expected = np.zeros(n)
    count = np.zeros(n)
    for a, b in wins:
        expected[a:b] += a
        count[a:b] += 1
    got = captured["eps"][:, 0, 0, 0].numpy()
    assert np.allclose(got, expected / count)


def test_every_frame_starts_from_the_same_noise():
    noise = initial_noise(20, (3, 8, 8), torch.Generator().manual_seed(1))
    assert noise.shape == (20, 3, 8, 8)
    assert torch.equal(noise[0], noise[19]) and noise.std() > 0.5

    starts = []

    def eps_fn(x, t, frames, with_ref):
        if not starts:
            starts.append(x.clone())
        return torch.zeros_like(x)

    from twinflow.anchor.models import scheduler_config
    from twinflow.anchor.sampling import ddim_scheduler

    sched = ddim_scheduler(scheduler_config(get_preset("tiny")))
    sample_video(eps_fn, 20, (3, 8, 8), sched, steps=2, window=16, overlap=4)
    first = starts[0]
    assert all(torch.equal(first[0], first[i]) for i in range(len(first)))


def test_render_clips_overlap_and_crossfade_back_to_one_video():
    bounds = overlapping_clips(60, 25, 8)
    assert bounds[0] == (0, 25) and bounds[-1][1] == 60
    for (_, b0), (a1, _) in zip(bounds, bounds[1:], strict=False):
        assert b0 - a1 == 8
    # a short tail joins the last clip
    assert overlapping_clips(28, 25, 8) == [(0, 28)]
    assert overlapping_clips(30, 25, 8) == [(0, 25), (17, 30)]
    # cross-fading clips cut from one video gives the video back
    video = np.random.default_rng(0).integers(0, 255, (60, 4, 4, 3)).astype(np.uint8)
    out = crossfade([video[a:b] for a, b in bounds], bounds)
    assert np.abs(out.astype(int) - video).max() <= 1
    # and it fades: inside an overlap the result lies between the two clips
    clips = [np.full((b - a, 2, 2, 3), 200 * (i % 2), np.uint8) for i, (a, b) in enumerate(bounds)]
    mixed = crossfade(clips, bounds)[bounds[1][0] : bounds[0][1], 0, 0, 0]
    assert (np.diff(mixed.astype(int)) > 0).all()


def test_head_crop_and_blend_back_are_inverse():
    from twinflow.anchor import head_align

    rng = np.random.default_rng(0)
    # five face points of a face centred at (120, 100) with 40 px between the eyes, rotated
    pts = np.array([[-20, 0], [20, 0], [0, 18], [-15, 34], [15, 34]], float)
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lm = np.zeros((1, 478, 3))
    lm[0, list(head_align.FIVE), :2] = pts @ rot.T + [120, 100]
    m = head_align.align_matrices(lm, 64, 3.2, smooth_sigma=0)[0]
    assert np.allclose(
        m[:, :2] @ lm[0, list(head_align.FIVE), :2].T + m[:, 2:],
        head_align.template(64, 3.2).T,
        atol=1.0,
    )
    frame = rng.integers(0, 255, (200, 240, 3)).astype(np.uint8)
    crop = head_align.crop(frame, m, 64, interp=1)
    alpha = np.ones((64, 64), np.float32)
    same = head_align.blend_back(frame, crop, m, alpha * 0)
    assert np.array_equal(same, frame)  # alpha 0 leaves the frame alone
    white = np.full_like(crop, 255)
    pasted = head_align.blend_back(
        frame, white, m, head_align.feathered(np.full((64, 64), 255, np.uint8), 0.1)
    )
    assert pasted[100, 120].min() == 255 and np.array_equal(pasted[0, 0], frame[0, 0])


def test_presets_check_sizes_and_fields():
    assert get_preset("tiny").body_size == 64 and get_preset("paper").body_size == 512
    with pytest.raises(ValueError, match="multiple"):
        get_preset("tiny", {"body_size": 60})
    with pytest.raises(ValueError, match="overlap"):
        get_preset("tiny", {"overlap": 16})
    with pytest.raises(ValueError, match="unknown"):
        get_preset("tiny", {"nope": 1})
