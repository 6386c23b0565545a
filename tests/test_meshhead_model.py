"""Meshhead model parts: PPE, biased causal mask, alignment mask, cached and windowed decoding,
the motion basis and the config plan (fast, no media; the warp: test_meshhead_fv2v.py,
test_meshhead_driving.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from twinflow.errors import ModelFileError, TwinflowError
from twinflow.meshhead import plan
from twinflow.meshhead.audio import logmel, n_motion_frames, require_transformers, wav2vec2_features
from twinflow.meshhead.audio2mesh import (
    Audio2Mesh,
    MotionBasis,
    alibi_slopes,
    alignment_mask,
    biased_causal_mask,
    generate,
    periodic_encoding,
)
from twinflow.meshhead.presets import audio2mesh_preset
from twinflow.meshhead.topology import Crop, align_to_template, umeyama

torch.set_num_threads(1)


def test_ppe_repeats_every_period_and_differs_within_it():
    period, d = 25, 16
    pe = periodic_encoding(torch.arange(3 * period), d, period)
    assert pe.shape == (3 * period, d)
    assert torch.allclose(pe[:period], pe[period : 2 * period])
    assert torch.allclose(pe[:period], pe[2 * period :])
    within = torch.cdist(pe[:period], pe[:period])
    assert (within + torch.eye(period) * 10).min() > 1e-3  # distinct phases inside one period
    # offsets: a window starting at a global frame has that frame's phase
    assert torch.allclose(
        periodic_encoding(torch.arange(10) + 37, d, period), pe[37 % period :][:10]
    )


def test_biased_causal_mask_blocks_the_future_and_decays_by_period():
    n, heads, period = 60, 4, 25
    mask = biased_causal_mask(n, heads, period)
    assert mask.shape == (heads, n, n)
    i, j = torch.triu_indices(n, n, offset=1)
    assert torch.isinf(mask[:, i, j]).all() and (mask[:, i, j] < 0).all()
    slopes = torch.tensor(alibi_slopes(heads))
    assert torch.allclose(slopes, torch.tensor([2 ** (-2.0 * (h + 1)) for h in range(heads)]))
    for h in range(heads):
        for a, b in [(0, 0), (30, 30), (30, 6), (59, 0), (24, 0), (25, 0)]:
            expected = -slopes[h] * math.floor((a - b) / period)
            assert mask[h, a, b].item() == pytest.approx(expected)
    # constant within a period, lower for older periods, same for every row (translation-free)
    row = mask[0, 59, :60]
    assert (row[35:] == 0).all() and (row[10:35] == row[34]).all() and row[9] < row[10]
    assert torch.equal(mask[:, 40, 20:41], mask[:, 59, 39:60])
    assert len(alibi_slopes(6)) == 6


def test_alignment_mask_gives_each_motion_frame_its_audio_frames():
    allowed = alignment_mask(10, 20)
    assert allowed.sum(1).tolist() == [2] * 10
    for t in range(10):
        assert allowed[t].nonzero().flatten().tolist() == [2 * t, 2 * t + 1]
    wide = alignment_mask(10, 20, width=2)
    assert wide[5].nonzero().flatten().tolist() == list(range(8, 14))
    assert wide[0].sum() == 4  # clipped at the start


def small_model(**overrides) -> Audio2Mesh:
    cfg = audio2mesh_preset(
        "tiny", {"d_model": 32, "audio_channels": 32, "dropout": 0.0, **overrides}
    )
    torch.manual_seed(0)
    model = Audio2Mesh(cfg, n_out=6, n_speakers=2, feat_dim=20).eval()
    with torch.no_grad():  # the output layer starts at zero: give it weights to test decoding
        model.out.weight.normal_(0, 0.3)
    return model


def test_cached_decoding_equals_the_teacher_forced_pass():
    model = small_model()
    feats = torch.randn(1, 2 * 40, 20)
    style = torch.tensor([[0.0, 1.0]])
    with torch.no_grad():
        memory = model.encode(feats)
        out = generate(model, memory, 40, style, window=40, history=0)
        again = model(memory, out[None], style, torch.tensor([0]))[0]
    assert torch.allclose(out, again, atol=1e-5)


def test_windows_with_full_history_equal_one_pass_and_shapes_of_any_length():
    model = small_model()
    feats = torch.randn(1, 2 * 50, 20)
    with torch.no_grad():
        memory = model.encode(feats)
        one = generate(model, memory, 50, None, window=50, history=0)
        windowed = generate(model, memory, 50, None, window=7, history=50)
        short = generate(model, memory, 50, None, window=16, history=8)
    assert torch.allclose(one, windowed, atol=1e-5)
    assert short.shape == (50, 6) and torch.isfinite(short).all()


def test_motion_basis_round_trip_and_zero_is_the_template():
    rng = np.random.default_rng(0)
    disp = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 30 * 3))
    disp = disp.reshape(50, 30, 3).astype(np.float32)
    basis = MotionBasis.fit(disp, 3)
    assert np.allclose(basis.decode(basis.encode(disp)), disp, atol=1e-4)
    assert np.allclose(basis.decode(np.zeros((1, 3))), 0)
    z = torch.from_numpy(basis.encode(disp))
    idx = np.array([1, 5, 7])
    assert np.allclose(basis.decode_torch(z, idx).numpy(), disp[:, idx], atol=1e-4)
    full = MotionBasis.fit(disp, 0)
    assert full.n_out == 90 and np.allclose(full.decode(full.encode(disp)), disp, atol=1e-5)


def test_similarity_alignment_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    template = rng.normal(size=(478, 3))
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    landmarks = (3.0 * template @ rot.T + [5.0, -2.0, 1.0])[None]
    s, r, t = umeyama(landmarks[:, :10], template[:10])
    assert s[0] == pytest.approx(1 / 3) and np.allclose(r[0], rot.T, atol=1e-6)
    aligned, _ = align_to_template(landmarks, template, np.arange(10))
    assert aligned.shape == (1, 468, 3) and np.allclose(aligned[0], template[:468], atol=1e-5)


def test_logmel_has_two_frames_per_motion_frame():
    sr, fps = 16000, 25.0
    wave = np.random.default_rng(0).normal(size=int(2.5 * sr)).astype(np.float32) * 0.1
    feats = logmel(wave, sr, fps, 40)
    assert n_motion_frames(len(wave), sr, fps) == 62
    assert feats.shape == (124, 40) and np.isfinite(feats).all()


def test_crop_maps_pixels_to_unit_coordinates():
    crop = Crop(10.0, 20.0, 100.0)
    assert np.allclose(
        crop.to_unit(np.array([[10.0, 20.0], [110.0, 120.0], [60.0, 70.0]])),
        [[-1, -1], [1, 1], [0, 0]],
    )
    assert np.allclose(crop.to_pixels(np.array([[0.0, 0.0]]), 64), [[32, 32]])


def test_wav2vec2_encoder_needs_the_registered_model(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n  wav2vec2-base-960h:\n    file: wav2vec2-base-960h\n    sha256: null\n"
        "    licence: Apache-2.0\n    source: test\n    used_by: [twinflow.meshhead]\n"
    )
    with pytest.raises(ModelFileError, match="not supplied"):
        wav2vec2_features(np.zeros(16000, np.float32), 16000, 25.0, registry)
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(TwinflowError, match="transformers"):
            require_transformers()


def render(options=None, driving_video=None):
    return SimpleNamespace(
        render_id="r1",
        twin_id="t1",
        pipeline="meshhead",
        options=options or {},
        driving_video=driving_video,
    )


def test_plan_resolves_presets_options_and_inputs():
    s = plan.settings({"preset": "tiny", "meshhead": {"overrides": {"warp": {"size": 96}}}})
    assert s.preset == "tiny" and s.warp.size == 96 and s.has_warp
    assert "--set size=96" in s.set_args("warp")
    assert plan.settings({"preset": "paper"}).audio2mesh.pca_components == 0
    inputs = plan.render_inputs(render({"pose": "video", "source": "photo"}, "d.mp4"), None, s)
    assert inputs["drive_pose"] == "results/drive/r1/perception/head_pose.npz"
    assert inputs["photo_face"] == "results/t1/perception/photo_face.npz"
    args = plan.render_args(render({"pose": "neutral"}), SimpleNamespace(), s)
    assert "--pose neutral" in args and "--source frame" in args
    for bad in ({"pose": "dance"}, {"colour": "red"}):
        with pytest.raises(ValueError, match="r1"):
            plan.render_options(render(bad), s)
    with pytest.raises(ValueError, match="driving_video"):
        plan.render_options(render({"pose": "video"}), s)
    with pytest.raises(ValueError, match="flame.data"):
        plan.settings({"meshhead": {"topology": "flame"}})
    with pytest.raises(ValueError, match="unknown preset field"):
        plan.settings({"meshhead": {"overrides": {"audio2mesh": {"nope": 1}}}})
