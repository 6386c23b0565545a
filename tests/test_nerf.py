"""nerf pipeline units: rays and volume rendering, tri-plane encoders, audio feature windows,
feature-type checks, losses, paste-back, config plan, and a killed-and-resumed training CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO
from twinflow.nerf import audio_features as af
from twinflow.nerf.encoding import DenseGrid2D, GridEncoder2D, TriPlaneEncoder, level_resolutions
from twinflow.nerf.rays import composite, pixel_rays, ray_box, stratified_samples

torch.set_num_threads(1)


# --- rays and volume rendering ---------------------------------------------------------------


def test_pixel_rays_look_down_minus_z_and_hit_the_box():
    c2w = torch.eye(4)
    c2w[2, 3] = 5.0
    k = torch.tensor([100.0, 100.0, 32.0, 32.0])
    o, d = pixel_rays(c2w, k, torch.tensor([[32.0, 32.0], [132.0, 32.0], [32.0, 132.0]]))
    assert torch.allclose(o, torch.tensor([0.0, 0.0, 5.0]).expand(3, 3))
    assert torch.allclose(d[0], torch.tensor([0.0, 0.0, -1.0]))
    assert d[1, 0] > 0 and d[2, 1] < 0  # right of centre looks right, below looks down
    assert torch.allclose(d.norm(dim=-1), torch.ones(3))
    near, far, hit = ray_box(o, d, torch.tensor([1.0, 1.0, 1.0]))
    assert hit[0] and math.isclose(near[0].item(), 4.0, rel_tol=1e-6)
    assert math.isclose(far[0].item(), 6.0, rel_tol=1e-6)
    assert not hit[1]  # 45 degrees off axis: passes beside the unit box


@pytest.mark.parametrize("perturb", [False, True])
def test_volume_rendering_of_a_constant_medium_is_exact(perturb):
    """A slab of constant density sigma and colour c, length L: opacity 1 - exp(-sigma L),
    colour c times it, depth the analytic mean of the exponential distribution."""
    torch.manual_seed(0)
    n_rays, sigma, colour = 64, 0.7, torch.tensor([0.2, 0.5, 0.9])
    near = torch.full((n_rays,), 4.0)
    far = torch.full((n_rays,), 6.0)
    t = stratified_samples(near, far, 256, perturb)
    out = composite(torch.full_like(t, sigma), colour.expand(*t.shape, 3), t, near, far)
    length = 2.0
    acc = 1 - math.exp(-sigma * length)
    assert torch.allclose(out["acc"], torch.full((n_rays,), acc), atol=1e-5)
    assert torch.allclose(out["rgb"], (colour * acc).expand(n_rays, 3), atol=1e-5)
    # E[t] over the ray, with the transmitted part contributing nothing
    depth = 4.0 * acc + (1 - math.exp(-sigma * length)) / sigma - length * math.exp(-sigma * length)
    assert torch.allclose(out["depth"], torch.full((n_rays,), depth), atol=2e-3)
    assert torch.allclose(out["weights"].sum(-1), out["acc"])


def test_volume_rendering_occludes_behind_an_opaque_layer():
    near, far = torch.zeros(1), torch.ones(1)
    t = stratified_samples(near, far, 100, False)
    sigma = torch.where(t < 0.5, 0.0, 1e4)
    rgb = torch.where((t < 0.7)[..., None], torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]))
    out = composite(sigma, rgb, t, near, far)
    assert torch.allclose(out["rgb"], torch.tensor([[1.0, 0, 0]]), atol=1e-4)
    assert abs(out["depth"].item() - 0.505) < 0.01


# --- tri-plane encoders -----------------------------------------------------------------------


def test_early_termination_keeps_the_samples_in_front_of_an_opaque_layer():
    """Rays along z through empty space (z < 0.2), then an opaque slab: the stride-2 density pass
    keeps every sample in front of the slab and its first samples, and drops the rest."""
    from twinflow.nerf.model import Conditions, new_head, visible
    from twinflow.nerf.presets import get_preset

    head = new_head(get_preset("tiny"), 32, 4, "cpu")
    head.density = lambda x, aud, eye: (
        torch.where(x[:, 2] > 0.2, 1e3, 0.0),
        None,
        None,
        None,
    )
    n = 32
    t = (torch.arange(n) + 0.5) / n * 2 - 1  # z of the samples, -1..1
    x = torch.stack([torch.zeros(n), torch.zeros(n), t], -1)[None].expand(3, n, 3)
    deltas = torch.full((3, n), 2 / n)
    cond = Conditions(torch.zeros(3, 32), torch.zeros(3, 1), torch.zeros(3, 4))
    keep = visible(head, x, deltas, torch.ones(3, n, dtype=torch.bool), cond, 1e-3)
    first = int((t > 0.2).nonzero()[0])  # the first sample inside the slab
    assert keep[:, :first].all()  # nothing in front of the surface is dropped
    assert keep[:, first].all()  # the surface itself is rendered
    assert not keep[:, first + 4 :].any()  # samples deep inside are skipped
    empty = visible(head, x, deltas, torch.zeros(3, n, dtype=torch.bool), cond, 1e-3)
    assert empty.all()  # nothing occupied: nothing can hide anything


@pytest.mark.parametrize("kind", ["dense", "hash", "tiled"])
def test_triplane_shapes_and_gradients(kind):
    torch.manual_seed(0)
    enc = TriPlaneEncoder(kind, levels=3, channels=2, base=8, finest=32, log2_table=8)
    x = (torch.rand(500, 3) * 2 - 1).requires_grad_(True)
    f = enc(x)
    assert f.shape == (500, 3 * 3 * 2) and enc.out_dim == 18
    f.square().sum().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable in the position too


def test_dense_grid_reads_its_vertices_and_interpolates_bilinearly():
    grid = DenseGrid2D(levels=1, channels=1, base=3, finest=3)
    with torch.no_grad():
        grid.grids[0].copy_(torch.arange(9.0).view(1, 1, 3, 3))  # value = 3 * row + col
    xy = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, -1.0], [0.5, 0.0]])
    out = grid(xy)[:, 0]
    assert torch.allclose(out, torch.tensor([0.0, 8.0, 1.0, 4.5]))


def test_hash_grid_levels_dense_then_hashed():
    assert level_resolutions(3, 16, 64) == [16, 32, 64]
    enc = GridEncoder2D(levels=3, channels=2, base=16, finest=64, log2_table=10)
    # level 0 (17^2 = 289 -> 296, a multiple of 8, <= 1024) is indexed densely, the others
    # have 1024-entry tables (ER-NeRF's layout; tests/test_nerf_ernerf.py checks the index maths)
    assert enc.offsets.tolist() == [0, 296, 296 + 1024, 296 + 2048]
    out = enc(torch.rand(100, 2) * 2 - 1)
    assert out.shape == (100, 6)


# --- audio features ---------------------------------------------------------------------------


def test_feature_windows_are_16_steps_of_20ms_centred_on_25fps_frames():
    steps = np.arange(100, dtype=np.float32)[:, None].repeat(3, 1)  # step k has value k
    win = af.frame_windows(steps, n_frames=50, fps=25.0)
    assert win.shape == (50, 16, 3)
    # frame i at i/25 s is feature step 2i (50 per second): window 2i-8 .. 2i+7
    assert np.array_equal(win[10, :, 0], np.arange(12, 28))
    # before the start: zeros (silence after standardisation)
    assert np.array_equal(win[0, :8, 0], np.zeros(8)) and win[0, 8, 0] == 0 and win[0, 9, 0] == 1


def test_logmel_features_are_aligned_to_the_video_frames():
    sr = 16000
    samples = np.zeros(2 * sr, np.float32)
    burst = slice(int(1.00 * sr), int(1.04 * sr))  # 40 ms of noise at t = 1.00 s (frame 25)
    samples[burst] = np.random.default_rng(0).standard_normal(burst.stop - burst.start) * 0.5
    feats, info = af.compute(samples, sr, fps=25.0, kind="logmel")
    assert feats.shape == (50, 16, af.N_MELS) and info["kind"] == "logmel"
    energy = feats.mean(-1)  # (frames, 16)
    # frame 25's window centre (index 8, the step at 1.00 s) is loud; frame 5 is silent
    assert energy[25].argmax() in (8, 9)
    assert energy[25, 8] > energy[5].max() + 1.0
    # frame 24 sees the burst two steps later in its window
    assert energy[24].argmax() in (10, 11)


def test_checkpoint_feature_kinds_need_transformers_or_fail_clearly(tmp_path):
    from twinflow.errors import TwinflowError

    samples = np.zeros(16000, np.float32)
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(TwinflowError, match="transformers"):
            af.compute(samples, 16000, 25.0, kind="hubert")
    with pytest.raises(TwinflowError, match="unknown audio feature kind"):
        af.compute(samples, 16000, 25.0, kind="deepspeech")


def test_a_model_refuses_features_of_another_kind(tmp_path):
    from twinflow.nerf.model import new_head, preset_meta
    from twinflow.nerf.presets import get_preset
    from twinflow.nerf.render import load_models
    from twinflow.train import save_checkpoint
    from twinflow.train.checkpoint import CheckpointError

    cfg = get_preset("tiny")
    head = new_head(cfg, 32, 10, "cpu")
    meta = {"preset": preset_meta(cfg), "audio_features": "logmel", "audio_dim": 32, "n_codes": 10}
    path = tmp_path / "lips.pt"
    save_checkpoint(path, {"modules": {"head": head.state_dict()}, "meta": meta, "steps": 1})
    head2, torso, steps = load_models(str(path), None, "logmel", 32, "cpu")
    assert steps["head_steps"] == 1 and torso is None
    with pytest.raises(CheckpointError, match="audio_features='logmel'.*audio_features='hubert'"):
        load_models(str(path), None, "hubert", 1024, "cpu")


def test_audio_augmentation_replaces_windows_by_the_mean_only_while_training():
    from twinflow.nerf.model import new_head
    from twinflow.nerf.presets import get_preset

    torch.manual_seed(0)
    feats = torch.randn(20, 16, 32)
    mean = feats.mean(0)
    frames = torch.tensor([3, 9, 15])
    head = new_head(get_preset("tiny", {"audio_dropout": 1.0, "audio_noise": 0.0}), 32, 20, "cpu")
    head.train()
    gen = torch.Generator().manual_seed(1)
    dropped = head.audio_codes(feats, frames, smooth=True, augment=(mean, gen))
    constant = head.audio_codes(mean[None].expand(20, -1, -1), frames, smooth=True)
    assert torch.allclose(dropped, constant, atol=1e-6)  # every window is the mean window
    clean = head.audio_codes(feats, frames, smooth=True)
    assert not torch.allclose(clean, constant, atol=1e-4)
    head.eval()  # evaluation never augments
    assert torch.equal(head.audio_codes(feats, frames, augment=(mean, gen)), clean)
    noisy = new_head(get_preset("tiny", {"audio_dropout": 0.0, "audio_noise": 0.5}), 32, 20, "cpu")
    noisy.train()
    noisy.load_state_dict(head.state_dict())
    assert not torch.allclose(noisy.audio_codes(feats, frames, augment=(mean, gen)), clean)


# --- losses, paste-back, plan -----------------------------------------------------------------


def test_speech_probe_tells_an_audio_driven_mouth_from_one_audio_cannot_predict():
    from twinflow.nerf.speech_probe import contiguous_blocks, ridge_probe

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(400, 16, 4))
    driven = feats[:, 7:9, 0].mean(1) + 0.1 * rng.normal(size=400)  # mouth follows the audio
    grimace = rng.normal(size=400)  # mouth independent of the audio
    val = np.r_[100:120, 300:320]
    train = np.setdiff1d(np.arange(400), np.r_[96:124, 296:324])
    assert [b.tolist() for b in contiguous_blocks(val)] == [
        list(range(100, 120)),
        list(range(300, 320)),
    ]
    good = ridge_probe(feats, driven, train, val)
    bad = ridge_probe(feats, grimace, train, val)
    assert good["best"]["ratio"] < 0.2 and len(good["best"]["blocks"]) == 2
    assert bad["best"]["ratio"] > 0.9  # at best the training mean: audio cannot help
    assert set(good["by_lambda"]) == {"10.0", "100.0", "1000.0", "10000.0", "100000.0"}


def test_speech_probe_reads_a_twins_results_folder(tmp_path):
    from twinflow.nerf.speech_probe import probe_results

    rng = np.random.default_rng(1)
    feats = rng.normal(size=(200, 16, 4)).astype(np.float32)
    (tmp_path / "perception").mkdir()
    (tmp_path / "nerf").mkdir()
    np.savez(tmp_path / "perception" / "signals.npz", mouth_open=feats[:, 8, 0])
    np.savez(tmp_path / "nerf" / "audio_features.npz", features=feats)
    np.savez(tmp_path / "nerf" / "dataset.npz", train=np.r_[0:150], val=np.r_[160:200])
    report = probe_results(tmp_path)
    assert report["train_frames"] == 150 and report["val_frames"] == 40
    assert report["best"]["ratio"] < 0.1 and len(report["best"]["blocks"]) == 1


def test_structural_patch_loss_is_zero_for_identical_patches_and_has_gradients():
    from twinflow.nerf.losses import ssim, structural_patch_loss

    torch.manual_seed(0)
    gt = torch.rand(2, 3, 32, 32)
    assert structural_patch_loss(gt, gt).item() == pytest.approx(0.0, abs=1e-5)
    assert ssim(gt, gt).item() == pytest.approx(1.0, abs=1e-5)
    pred = gt.clone().mul(0.5).requires_grad_(True)
    loss = structural_patch_loss(pred, gt)
    loss.backward()
    assert loss.item() > 0.05 and pred.grad.abs().sum() > 0
    blurred = torch.nn.functional.avg_pool2d(gt, 3, 1, 1)
    assert structural_patch_loss(blurred, gt) > structural_patch_loss(gt * 0.98, gt)


def test_uncertainty_weighting_starts_as_plain_mse_and_ends_on_the_uncertain_rays():
    from twinflow.nerf.losses import uncertainty_weighted_mse

    torch.manual_seed(0)
    gt = torch.rand(6, 3)
    pred = (gt + 0.1).requires_grad_(True)  # the same error on every ray
    unc = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    face = torch.tensor([True] * 6)
    plain = torch.nn.functional.mse_loss(pred, gt)
    start = uncertainty_weighted_mse(pred, gt, unc, face, progress=0.0)
    assert start.item() == pytest.approx(plain.item(), rel=1e-6)
    uncertainty_weighted_mse(pred, gt, unc, face, progress=1.0).backward()
    g = pred.grad.abs().sum(-1)
    assert g[5] > 5 * g[0]  # the uncertain ray weighs most (softmax weights, up to 10x)
    assert torch.allclose(g[:5], g[0].expand(5))


def test_fitted_uncertainty_grows_with_a_face_rays_error_and_vanishes_off_the_face():
    from twinflow.nerf.losses import uncertainty_weighted_mse

    gt = torch.zeros(3, 3)
    pred = torch.tensor([[0.05] * 3, [0.5] * 3, [0.5] * 3])  # small / large / large error
    face = torch.tensor([True, True, False])
    raw = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        uncertainty_weighted_mse(pred, gt, torch.nn.functional.softplus(raw), face, 1.0).backward()
        opt.step()
    u = torch.nn.functional.softplus(raw).detach()
    assert u[1] > u[0] + 0.2  # larger error on the face, larger uncertainty
    assert u[2] < 0.2 * u[1]  # off the face only the small penalty acts


def test_ambient_loss_keeps_audio_off_the_hair_and_the_blink_away_from_the_audio():
    from twinflow.nerf.losses import ambient_loss

    face = torch.tensor([False, True, True])
    amb_aud = torch.tensor([0.8, 0.9, 0.0], requires_grad=True)  # hair / mouth / eyes
    amb_eye = torch.tensor([0.5, 0.7, 0.7], requires_grad=True)
    loss = ambient_loss(amb_aud, amb_eye, face, 1.0, 2.0)
    assert loss.item() == pytest.approx((0.8 + 2 * 0.9 * 0.7) / 3)
    loss.backward()
    # the audio is pushed down only off the face; on the face the cross term leaves it alone
    assert amb_aud.grad.tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    # the blink is pushed out of the face region the audio drives (the mouth), not the eyes
    assert amb_eye.grad.tolist() == pytest.approx([0.0, 2 * 0.9 / 3, 0.0])
    # without the cross term (tiny) the eye attention gets no gradient at all
    assert ambient_loss(amb_aud, amb_eye, face, 1.0, 0.0).item() == pytest.approx(0.8 / 3)


def test_uncertainty_is_rendered_while_training_and_trains_only_its_own_network():
    from twinflow.nerf.model import Conditions, new_head, render_head_rays
    from twinflow.nerf.presets import get_preset

    torch.manual_seed(0)
    cfg = get_preset("tiny", {"n_samples": 16, "min_transmittance": 0.0})
    head = new_head(cfg, 8, 2, "cpu").train()
    o = torch.zeros(64, 3)
    o[:, 2] = 3.0
    d = torch.nn.functional.normalize(torch.randn(64, 3) * 0.1 + torch.tensor([0, 0, -1.0]), dim=-1)
    cond = Conditions(torch.randn(64, cfg.audio_dim), torch.zeros(64, 1), torch.zeros(64, 4))
    box = torch.tensor([1.0, 1.0, 1.0])
    out = render_head_rays(head, o, d, cond, box, perturb=False)
    assert out["uncertainty"].shape == (64,) and (out["uncertainty"] >= 0).all()
    out["uncertainty"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.unc_net.parameters())
    for name, p in head.named_parameters():  # the field itself is not moved by it
        if not name.startswith("unc_net"):
            assert p.grad is None or p.grad.abs().sum() == 0, name
    head.eval()
    assert "uncertainty" not in render_head_rays(head, o, d, cond, box, perturb=False)
    off = new_head(get_preset("tiny", {"unc_loss": False}), 8, 2, "cpu")
    assert off.unc_net is None


def test_lmd_is_reported_per_block_of_val_frames():
    from twinflow.nerf.evaluate import lmd_blocks

    val = np.array([50, 51, 10, 11, 12])  # any order; blocks are runs of consecutive frames
    res = {
        "model": {"per_frame": {"lmd": np.array([4.0, 5.0, 1.0, 2.0, np.nan])}},  # nan: no face
        "no_audio": {"per_frame": {"lmd": np.full(5, 2.0)}},
    }
    assert lmd_blocks(val, res) == [
        {"frames": [10, 12], "model": 1.5, "no_audio": 2.0},
        {"frames": [50, 51], "model": 4.5, "no_audio": 2.0},
    ]


def test_differences_bootstrap_chunks_within_val_blocks():
    from twinflow.nerf.evaluate import differences

    val = np.concatenate([np.arange(100, 110), np.arange(300, 306)])  # blocks of 10 and 6 frames
    model = np.linspace(1.0, 3.0, 16)
    res = {
        "model": {"per_frame": {"lmd": model, "psnr": model}},
        "no_audio": {"per_frame": {"lmd": model + 0.5, "psnr": model}},
    }
    out = differences(val, res, keys=("lmd", "psnr"), chunk_frames=5)
    lmd = out["lmd"]["no_audio"]
    assert lmd["mean"] == pytest.approx(-0.5)
    assert lmd["chunks"] == 4  # 5 + 5 frames, then 5 + 1: chunks never span two blocks
    assert lmd["ci"] == pytest.approx([-0.5, -0.5]) and lmd["chunk_frames"] == 5
    assert out["psnr"]["no_audio"]["ci"] == pytest.approx([0.0, 0.0])


def test_vgg_patch_loss_without_weights_is_a_clear_error(tmp_path):
    from twinflow.errors import ModelFileError
    from twinflow.nerf.losses import make_patch_loss

    pytest.importorskip("twinflow.train.vgg")
    registry = tmp_path / "registry.yaml"
    registry.write_text((REPO / "models" / "registry.yaml").read_text())
    with pytest.raises(ModelFileError, match="vgg19"):
        make_patch_loss("vgg", str(registry))


def test_pingpong_and_paste_schemes():
    from twinflow.nerf.paste import paste_full, paste_head
    from twinflow.nerf.render import pingpong

    assert pingpong(9, 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[4:12, 4:12, 3] = 255  # the head
    plate = np.full((64, 64, 3), 50, np.uint8)
    frame = np.full((64, 64, 3), 100, np.uint8)
    full = paste_full(rgba, plate, (16, 16, 32))
    assert (full[:16] == 50).all() and (full[20:40, 20:40, 0] == 200).all()
    head = paste_head(rgba, frame, (16, 16, 32))
    assert (head[:16] == 100).all() and head[32, 32, 0] == 200  # inside the head: rendered
    assert head[18, 18, 0] == 100  # inside the crop, off the head: the original frame


def test_a_dataset_with_a_frame_without_camera_is_refused_by_name(tmp_path):
    from twinflow.errors import InputError
    from twinflow.nerf.data import valid_cameras

    c2w = np.tile(np.eye(4, dtype=np.float32), (6, 1, 1))
    assert valid_cameras(c2w, "dataset.npz") is c2w
    c2w[3] = 0  # how datasets before every frame had a pose stored the gap frames
    with pytest.raises(InputError, match=r"dataset.npz.*1 of 6 frames .*frames \[3\]"):
        valid_cameras(c2w, tmp_path / "dataset.npz")


def test_plan_resolves_settings_and_rejects_bad_options():
    from twinflow.nerf import plan
    from twinflow.sheets import Render

    config = {
        "preset": "tiny",
        "nerf": {
            "preset": None,
            "audio_features": "logmel",
            "steps": {"tiny": {"head": 7}},
            "max_minutes": {"tiny": 2},
            "paste": "head",
        },
    }
    s = plan.settings(config)
    assert s.name == "tiny" and s.steps["head"] == 7 and s.steps["lips"] == s.preset.lips_steps
    assert s.max_minutes_arg("torso") == "--max-minutes 2"
    assert (
        s.seed == 0 and plan.settings({**config, "nerf": {**config["nerf"], "seed": 5}}).seed == 5
    )
    good = Render("r1", "t", "nerf", driving_audio="a.wav", options={"paste": "full"})
    other = Render("r2", "t", "nerf", driving_audio="a.wav")
    assert plan.paste_mode(good, s) == "full" and plan.paste_mode(other, s) == "head"
    assert plan.render_pattern({"r1": good, "r2": other}) == "r1|r2"
    assert plan.render_pattern({}) == "(?!x)x"
    with pytest.raises(ValueError, match="paste 'side'"):
        plan.check_renders({"x": Render("x", "t", "nerf", options={"paste": "side"})}, s)
    with pytest.raises(ValueError, match="unknown preset field"):
        plan.settings({"preset": "tiny", "nerf": {"overrides": {"nope": 1}}})


def test_learning_rate_decays_with_steps_or_the_time_budget():
    from twinflow.nerf.train import Progress, decay_schedule

    assert Progress(100, None)(50) == 0.5 and Progress(100, None)(500) == 1.0
    timed = Progress(10**6, max_minutes=1e-6)  # the budget is spent at once
    timed(0)
    time.sleep(0.01)
    assert timed(1) == 1.0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = decay_schedule(opt, Progress(10, None), factor=0.1, start=0.5)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


# --- training: learns on synthetic data, resumes after SIGKILL --------------------------------


SMALL = [
    "--set", "rays=512", "--set", "frames_per_step=2", "--set", "n_samples=16",
    "--set", "occ_res=16", "--set", "occ_warmup=4", "--set", "occ_every=4",
    "--set", "smooth_after=4", "--set", "patch=8", "--set", "log_every=5",
]  # fmt: skip


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from twinflow.nerf.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("nerf_synthetic"), res=32, n_frames=40)


def train_cmd(synthetic, stage: str, out: Path, steps: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "twinflow.nerf.train", "--stage", stage, "--twin", "syn",
        "--dataset", str(synthetic["dataset"]), "--frames", str(synthetic["frames"]),
        "--features", str(synthetic["features"]), "--steps", str(steps), "--threads", "1",
        "--device", "cpu", *SMALL, *extra, "--out", str(out),
    ]  # fmt: skip


def test_training_cli_resumes_after_sigkill(tmp_path, synthetic):
    out = tmp_path / "head.pt"
    resume = tmp_path / "head.pt.resume.pt"
    log = tmp_path / "head.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "PYTHONUNBUFFERED": "1"}
    cmd = train_cmd(synthetic, "head", out, 400, "--save-every", "3")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.time() + 180
        while time.time() < deadline and not resume.exists() and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert resume.exists(), log.read_text()[-2000:]
    assert not out.exists(), "a killed run must not leave a final checkpoint"
    steps_saved = torch.load(resume, weights_only=False)["steps"]
    assert steps_saved >= 3
    # rerun with fewer total steps so that it finishes quickly
    proc = subprocess.run(
        train_cmd(synthetic, "head", out, steps_saved + 6, "--save-every", "3"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert f"resuming nerf head from step {steps_saved}" in text
    assert not resume.exists() and out.exists()
    from twinflow.train import load_checkpoint

    ckpt = load_checkpoint(out, expect={"audio_features": "logmel", "stage": "head"})
    assert ckpt["steps"] == steps_saved + 6


def test_training_is_reproducible_from_its_seed(tmp_path, synthetic):
    """The weights' initialisation is seeded too: the same seed gives the same model."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    weights = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / f"{name}.pt"
        cmd = train_cmd(synthetic, "head", out, 2, "--seed", seed)
        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
        weights[name] = torch.load(out, weights_only=False)["modules"]["head"]
    same = lambda x, y: all(torch.equal(weights[x][k], weights[y][k]) for k in weights[x])  # noqa: E731
    assert same("a", "b")
    assert not same("a", "c")
