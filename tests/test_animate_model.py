"""The animate (MRAA) networks and geometry: region PCA, warps, equivariance, AVD, presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twinflow.animate.avd import AVDNetwork, random_scale
from twinflow.animate.flow_predictor import sparse_motions
from twinflow.animate.geometry import RandomTransform, coordinate_grid, heatmap_to_regions
from twinflow.animate.losses import ReconstructionLoss, equivariance_losses
from twinflow.animate.model import MRAA
from twinflow.animate.modes import animation_regions
from twinflow.animate.presets import PRESETS, get_preset
from twinflow.train.vgg import VGG19Features

TINY = get_preset("tiny")


def gaussian_heatmap(mean, cov, size: int = 96) -> torch.Tensor:
    """A normalised Gaussian density on the [-1, 1] pixel grid, shape (1, 1, size, size)."""
    grid = coordinate_grid(size, size, dtype=torch.float64)
    diff = grid - torch.tensor(mean, dtype=torch.float64)
    inv = torch.linalg.inv(torch.tensor(cov, dtype=torch.float64))
    dens = torch.exp(-0.5 * torch.einsum("hwi,ij,hwj->hw", diff, inv, diff))
    return (dens / dens.sum())[None, None]


def test_gaussian_heatmap_gives_known_shift_and_affine():
    mean, cov = (0.1, -0.2), [[0.02, 0.008], [0.008, 0.01]]
    regions = heatmap_to_regions(gaussian_heatmap(mean, cov))
    assert torch.allclose(
        regions["shift"][0, 0], torch.tensor(mean, dtype=torch.float64), atol=1e-4
    )
    assert torch.allclose(regions["covar"][0, 0], torch.tensor(cov, dtype=torch.float64), atol=1e-4)
    # affine = U sqrt(S): columns are the principal axes scaled by the standard deviations.
    values, vectors = np.linalg.eigh(np.array(cov))
    affine = regions["affine"][0, 0].numpy()
    for col, k in ((0, 1), (1, 0)):  # eigh sorts ascending; the affine's first column is major
        assert np.linalg.norm(affine[:, col]) == pytest.approx(math.sqrt(values[k]), rel=1e-3)
        assert abs(affine[:, col] @ vectors[:, k]) == pytest.approx(math.sqrt(values[k]), rel=1e-3)
    assert np.allclose(affine @ affine.T, cov, atol=1e-4)


def test_axis_aligned_gaussian_gives_diagonal_affine_with_torch_svd_signs():
    regions = heatmap_to_regions(gaussian_heatmap((0.0, 0.0), [[0.04, 0.0], [0.0, 0.01]]))
    affine = regions["affine"][0, 0]
    assert torch.allclose(
        affine.abs(), torch.tensor([[0.2, 0.0], [0.0, 0.1]], dtype=torch.float64), atol=1e-3
    )
    u, s, _ = torch.svd(regions["covar"][0, 0])
    assert torch.allclose(affine, u * s.sqrt(), atol=1e-9)


def regions_of(shift, affine):
    affine = torch.as_tensor(affine, dtype=torch.float32)
    return {
        "shift": torch.as_tensor(shift, dtype=torch.float32),
        "affine": affine,
        "covar": affine @ affine.transpose(-1, -2),
    }


def test_equal_regions_and_no_background_motion_give_the_identity_flow():
    r = regions_of(torch.rand(2, 3, 2) - 0.5, 0.1 * torch.eye(2).repeat(2, 3, 1, 1))
    motions = sparse_motions(r, r, None, 8, 8)
    assert motions.shape == (2, 4, 8, 8, 2)
    assert torch.allclose(motions, coordinate_grid(8, 8).expand_as(motions), atol=1e-5)


def test_region_motion_maps_driving_region_onto_source_region():
    src = regions_of([[[0.2, 0.1]]], [[[[0.1, 0.0], [0.0, 0.2]]]])
    drv = regions_of([[[-0.3, 0.0]]], [[[[0.0, -0.1], [0.2, 0.0]]]])  # rotated by 90 degrees
    motions = sparse_motions(src, drv, None, 41, 41, revert_axis_swap=False)
    # The driving region's centre (pixel x=(−0.3+1)*20=14, y=20) reads the source centre.
    assert torch.allclose(motions[0, 1, 20, 14], torch.tensor([0.2, 0.1]), atol=1e-5)


def test_model_output_shapes_and_flow_weights():
    model = MRAA(TINY).eval()
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(source, driving)
        weights = model.generator.flow(source, out["source_regions"], out["driving_regions"], None)[
            "weights"
        ]
    k = TINY.num_regions
    assert out["prediction"].shape == (2, 3, 64, 64)
    assert out["flow"].shape == (2, 32, 32, 2) and out["occlusion"].shape == (2, 1, 32, 32)
    assert out["driving_regions"]["heatmap"].shape == (2, k, 32, 32)
    assert out["driving_regions"]["affine"].shape == (2, k, 2, 2)
    assert weights.shape == (2, k + 1, 32, 32)
    assert torch.allclose(weights.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert float(out["prediction"].min()) >= 0 and float(out["prediction"].max()) <= 1


def test_losses_backpropagate_to_every_network():
    model = MRAA(TINY)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    out = model(source, driving)
    losses = ReconstructionLoss(TINY)(out["prediction"], driving)
    losses.update(
        equivariance_losses(model.region_predictor, driving, out["driving_regions"], TINY)
    )
    assert set(losses) == {"l1", "grad", "eq_shift", "eq_affine"}
    sum(losses.values()).backward()
    for name, module in model.modules_dict().items():
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def blob_frame(center, cov, size=64) -> torch.Tensor:
    dens = gaussian_heatmap(center, cov, size).float()
    return (dens / dens.max()).expand(1, 3, size, size).contiguous()


class BlobRegions(torch.nn.Module):
    """A perfect one-region predictor: the frame's brightness is the region heatmap."""

    def forward(self, frame):
        heat = frame[:, :1] / frame[:, :1].sum(dim=(2, 3), keepdim=True)
        return heatmap_to_regions(heat)


def similarity_transform(angle: float, scale: float, shift) -> RandomTransform:
    t = RandomTransform(1, 0.0, 0.0, 5)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    t.theta = torch.tensor([[[c, -s, shift[0]], [s, c, shift[1]]]])
    return t


def test_transformed_frame_moves_regions_equivariantly():
    frame = blob_frame((0.1, -0.1), [[0.03, 0.01], [0.01, 0.015]])
    predictor = BlobRegions()
    transform = similarity_transform(0.3, 1.1, (0.05, -0.04))
    regions = predictor(frame)
    warped = predictor(transform.transform_frame(frame))
    # A point p of the transformed frame shows the original at T(p): the centre maps back.
    assert torch.allclose(transform.warp_coordinates(warped["shift"]), regions["shift"], atol=2e-3)
    cfg = get_preset("tiny", {"equivariance_shift": 1.0, "equivariance_affine": 1.0})
    exact = equivariance_losses(predictor, frame, regions, cfg, transform)
    assert exact["eq_shift"] < 2e-3 and exact["eq_affine"] < 2e-2
    # An untrained network is far from equivariant.
    net = MRAA(TINY).region_predictor.eval()
    with torch.no_grad():
        loose = equivariance_losses(
            net, frame, net(frame), cfg, similarity_transform(0.3, 1.1, (0.05, -0.04))
        )
    assert loose["eq_affine"] > 5 * exact["eq_affine"]


def test_tps_jacobian_matches_finite_differences():
    t = RandomTransform(2, 0.05, 0.05, 5, generator=torch.Generator().manual_seed(1))
    p = (torch.rand(2, 7, 2, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8).double()
    t.theta, t.weights, t.control = t.theta.double(), t.weights.double(), t.control.double()
    eps = 1e-6
    numeric = []
    for j in range(2):
        d = torch.zeros(2), torch.zeros(2)
        d[0][j] = eps
        step = d[0].double()
        numeric.append((t.warp_coordinates(p + step) - t.warp_coordinates(p - step)) / (2 * eps))
    numeric = torch.stack(numeric, dim=-1)  # B N out in
    assert torch.allclose(t.jacobian(p), numeric, atol=1e-5)


def test_avd_network_shapes_and_random_scale():
    avd = AVDNetwork(TINY).eval()
    k = TINY.num_regions
    ident = regions_of(torch.rand(3, k, 2), torch.eye(2).repeat(3, k, 1, 1) * 0.1)
    pose = regions_of(torch.rand(3, k, 2), torch.eye(2).repeat(3, k, 1, 1) * 0.2)
    with torch.no_grad():
        out = avd(ident, pose)
    assert out["shift"].shape == (3, k, 2) and out["affine"].shape == (3, k, 2, 2)
    assert torch.allclose(out["covar"], out["affine"] @ out["affine"].transpose(-1, -2))
    same = random_scale(pose, 0.0)
    assert torch.allclose(same["shift"], pose["shift"]) and torch.allclose(
        same["affine"], pose["affine"]
    )
    scaled = random_scale(pose, 0.25)
    ratio = scaled["shift"] / pose["shift"]
    assert float(ratio.min()) >= 0.75 - 1e-6 and float(ratio.max()) <= 1.25 + 1e-6


def test_relative_mode_keeps_the_source_on_the_first_driving_frame():
    k = 5
    source = regions_of(torch.rand(1, k, 2) - 0.5, torch.eye(2).repeat(1, k, 1, 1) * 0.1)
    first = regions_of(torch.rand(1, k, 2) - 0.5, torch.rand(1, k, 2, 2) + torch.eye(2))
    moved = regions_of(first["shift"] + 0.1, first["affine"] * 1.2)
    same = animation_regions("relative", source, first, first)
    assert torch.allclose(same["shift"], source["shift"], atol=1e-5)
    assert torch.allclose(same["affine"], source["affine"], atol=1e-5)
    later = animation_regions("relative", source, moved, first, adapt_scale=False)
    assert torch.allclose(later["shift"], source["shift"] + 0.1, atol=1e-5)
    assert torch.allclose(later["affine"], 1.2 * source["affine"], atol=1e-5)
    assert later["covar"] is moved["covar"]  # as the reference: the driving frame's covariances
    assert animation_regions("standard", source, moved, first)["shift"] is moved["shift"]


def test_vgg19_loads_torchvision_state_dict_keys():
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    state, cin = {}, 3
    for idx, w in zip(convs, widths, strict=True):
        state[f"features.{idx}.weight"] = torch.full((w, cin, 3, 3), 0.01)
        state[f"features.{idx}.bias"] = torch.zeros(w)
        cin = w
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    net = VGG19Features()
    net.load_torchvision(state)
    assert float(net.features[28].weight.mean()) == pytest.approx(0.01)
    feats = net(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    with pytest.raises(ValueError, match="lacks"):
        VGG19Features().load_torchvision({})


def test_presets_follow_the_published_configs():
    vox, ted = PRESETS["vox256"], PRESETS["ted384"]
    assert (vox.size, vox.num_regions, vox.batch_size, vox.region_pad) == (256, 10, 14, 3)
    assert (ted.size, ted.num_regions, ted.batch_size, ted.region_pad) == (384, 10, 6, 0)
    assert PRESETS["ted-youtube384"].num_regions == 20 and PRESETS["mgif256"].bg_type == "zero"
    assert (PRESETS["mgif256"].hue, PRESETS["mgif256"].resize_ratio) == (0.5, (0.9, 1.1))
    for p in (PRESETS[n] for n in PRESETS if n != "tiny"):
        assert p.steps is None and (p.epochs, p.epoch_milestones) == (100, (60, 90))
        assert p.avd_steps is None and p.avd_epochs == 30
        assert p.lr == 2e-4 and p.gen_block_expansion == 64 and p.gen_max_features == 512
        assert p.flow_max_features == 1024 and p.region_max_features == 1024
        assert p.region_scale_factor == p.flow_scale_factor == 0.25
        assert p.pyramid_scales == (1.0, 0.5, 0.25, 0.125)
        assert p.equivariance_shift == p.equivariance_affine == 10
        assert (p.avd_batch_size, p.avd_lr, p.avd_random_scale) == (256, 1e-3, 0.25)
    tiny = PRESETS["tiny"]
    assert tiny.size == 64 and 5 <= tiny.num_regions <= 10
    assert get_preset("paper").name == "vox256"
    assert get_preset("tiny", {"num_regions": "6"}).num_regions == 6
    with pytest.raises(ValueError, match="unknown preset field"):
        get_preset("tiny", {"regions": 6})
    with pytest.raises(ValueError, match="bg_type"):
        get_preset("tiny", {"bg_type": "fisheye"})
    assert get_preset("tiny", {"bg_type": "none"}).bg_type == "zero"  # older configs' name
    with pytest.raises(ValueError, match="not 1/n"):
        get_preset("tiny", {"region_scale_factor": 0.3})


@pytest.mark.parametrize("align_corners", [True, False])
def test_identity_motion_reads_pixels_in_place_only_with_aligned_corners(align_corners):
    """tiny's convention (True): equal regions and no background motion reproduce the source;
    the reference's (False) zooms it by the half-pixel offset (3 % at tiny's 32 px flow)."""
    cfg = get_preset("tiny", {"align_corners": align_corners})
    model = MRAA(cfg).eval()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        regions = model.region_predictor(image)
        deformed = model.generator(image, regions, regions, None)["deformed"]
    error = float((deformed - image).abs()[..., 8:-8, 8:-8].max())
    assert (error < 1e-4) == align_corners, error
    assert PRESETS["tiny"].align_corners and not PRESETS["vox256"].align_corners


def test_checkpoints_from_before_the_convention_field_keep_aligned_corners():
    from twinflow.animate.model import config_from_meta
    from twinflow.presets import preset_dict

    old = preset_dict(TINY)
    del old["align_corners"]
    old["jitter"] = 0.1  # a field of older versions
    assert config_from_meta({"preset": old}).align_corners is True
    paper = preset_dict(PRESETS["vox256"])
    assert config_from_meta({"preset": paper}).align_corners is False
