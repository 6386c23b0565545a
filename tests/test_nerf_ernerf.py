"""ER-NeRF parity: a checkpoint and data folder saved by the reference's code (fixtures in
tests/fixtures/nerf/ernerf, see its README) convert with ``python -m twinflow.convert ernerf`` and
give the reference's outputs within 1e-4; the CUDA parts (grid encoder, ray marcher) are checked
against values worked out by hand from the reference's CUDA source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO
from twinflow.convert import ConversionError
from twinflow.nerf.encoding import GridEncoder2D, frequency_encoding_ernerf

torch.set_num_threads(1)
FIXTURES = REPO / "tests" / "fixtures" / "nerf" / "ernerf"
TOL = 1e-4
GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def maxdiff(a, b) -> float:
    return float((torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max())


# --- grid encoder: index maths by hand from gridencoder.cu / grid.py -------------------------


def test_grid_encoder_levels_and_offsets_are_the_references():
    """ER-NeRF's head plane (12 levels x 1, base 64, finest 512, 2^14): level l is
    ceil(64 * 8^(l/11)) cells wide, holds min(2^14, (R+1)^2) vertices rounded up to 8."""
    head = GridEncoder2D(12, 1, 64, 512, 14, "hash")
    assert head.widths == [64, 78, 94, 113, 137, 165, 199, 241, 291, 351, 424, 512]
    # 65^2 = 4225 -> 4232, 79^2 = 6241 -> 6248, 95^2 = 9025 -> 9032, 114^2 = 12996 -> 13000,
    # then 2^14 = 16384 for the 8 hashed levels: 163,584 entries per plane
    assert head.sizes == [4232, 6248, 9032, 13000] + [16384] * 8
    assert int(head.offsets[-1]) == 163_584 and head.embeddings.shape == (163_584, 1)
    assert head.scales[0] == 63.0 and head.scales[-1] == 511.0  # 2^(l log2 s) 64 - 1
    torso = GridEncoder2D(16, 2, 16, 2048, 16, "tiled")
    # 17^2 = 289 -> 296, 24^2 = 576, 32^2 = 1024, 44^2 = 1936, ... levels 9-15 capped at 2^16
    assert torso.sizes[:4] == [296, 576, 1024, 1936] and torso.sizes[9:] == [65536] * 7
    assert int(torso.offsets[-1]) == 555_520 and torso.widths[-1] == 2048


@pytest.mark.parametrize(
    ("gridtype", "log2", "expected"),
    [
        # level 0 (scale 3, dense, stride 5): u = (0.5, 0.25) -> pos (2.0, 1.25): vertices
        # (2,1) w .75 -> 2 + 1*5 = 7 and (2,2) w .25 -> 12: 0.75*7 + 0.25*12 = 8.25.
        # level 1 (scale 7, 81 > 64 entries, stride 9): pos (4.0, 2.25): (4,2) w .75, (4,3) w .25;
        # hash: 4 xor (2*2654435761 mod 2^32) mod 64 = 38, 4 xor (3*...) mod 64 = 23 -> rows
        # 32+38, 32+23: 0.75*70 + 0.25*55 = 66.25
        ("hash", 6, [8.25, 66.25]),
        # tiled: (4 + 2*9) mod 64 = 22, (4 + 3*9) = 31 -> 0.75*54 + 0.25*63 = 56.25
        ("tiled", 6, [8.25, 56.25]),
        # 8-entry tables: level 0 tiled mod 8 (7, 12 -> 4): 0.75*7 + 0.25*4 = 6.25; level 1's
        # stride 9 > 8, so the kernel indexes by x alone: 4 mod 8 -> row 8+4 for both
        ("tiled", 3, [6.25, 12.0]),
    ],
)
def test_grid_encoder_index_maths_by_hand(gridtype, log2, expected):
    enc = GridEncoder2D(2, 1, 4, 8, log2, gridtype)  # per-level scale 2: widths 4 and 8
    with torch.no_grad():
        enc.embeddings.copy_(torch.arange(len(enc.embeddings)).float()[:, None])  # value = row
    out = enc(torch.tensor([[0.0, -0.5], [1.2, 0.0], [0.0, -1.01]]))
    assert out[0].tolist() == expected
    assert out[1:].abs().max() == 0  # outside [0, 1]: 0 at every level (the kernel's rule)


def test_frequency_encoding_is_freqencoders_layout():
    x = torch.tensor([[0.5, -1.0]])
    out = frequency_encoding_ernerf(x, 2)[0]
    want = [0.5, -1.0, math.sin(0.5), math.sin(-1), math.cos(0.5), math.cos(-1),
            math.sin(1.0), math.sin(-2), math.cos(1.0), math.cos(-2)]  # fmt: skip
    assert torch.allclose(out, torch.tensor(want), atol=1e-6)


# --- the ray marcher: values by hand from raymarching.cu ---------------------------------------


def test_marcher_step_is_2_sqrt3_over_the_grid_and_samples_occupied_cells_only():
    from twinflow.nerf.marcher import lattice, step_sizes

    dt_min, dt_max = step_sizes(128, 16)
    assert dt_min == dt_max == pytest.approx(2 * math.sqrt(3) / 128, rel=1e-6)
    occ = torch.zeros(128, 128, 128, dtype=torch.bool)
    occ[64, 64, 70:80] = True  # cells x = 70..79 at y = z = 64 (x in [0.09375, 0.25))
    o, d = torch.tensor([[-2.0, 0.001, 0.001]]), torch.tensor([[1.0, 0.0, 0.0]])
    t, dt, samples = lattice(o, d, torch.tensor([1.0]), torch.tensor([3.0]), occ, 1.0,
                             max_steps=16, dt_gamma=1 / 256)  # fmt: skip
    x = -2 + t[0, samples[0]]
    # every step is dt from near = 1 (x = -1); samples are the steps inside x in [0.09375, 0.25)
    k = torch.arange(t.shape[1])
    assert torch.allclose(t[0], 1 + k * dt_max, atol=1e-5)
    inside = (-1 + k * dt_max >= 0.09375) & (-1 + k * dt_max < 0.25)
    assert torch.equal(samples[0], inside) and len(x) == 6


def _constant_field(sigma: float):
    def field(pts, rays):
        n = len(pts)
        return {"sigma": torch.full((n,), sigma), "rgb": torch.full((n, 3), 0.5),
                "amb_aud": torch.ones(n), "amb_eye": torch.zeros(n)}  # fmt: skip

    return field


def test_marcher_rounds_give_17_samples_and_stop_rays_as_the_kernel():
    """4 rays, 1 crosses an all-occupied box. Round 1 gives every ray 1 step; then only the
    hitting ray is alive: n_step = min(4 // 1, 8) = 4 per round until 16 steps: 1+4+4+4+4 = 17
    samples, composited with T = 1 - sum(w). A dense field ends the ray at its 2nd sample
    (T < 1e-4 is tested after a sample is added); training drops that 2nd sample."""
    from twinflow.nerf.marcher import render_rays, step_sizes, train_rays

    occ = torch.ones(128, 128, 128, dtype=torch.bool)
    o = torch.tensor([[0.0, 0.0, 3.0]] + [[5.0, 5.0, 3.0]] * 3)
    d = torch.tensor([[0.0, 0.0, -1.0]] * 4)
    half = torch.tensor([1.0, 0.5, 1.0])
    kw = {"max_steps": 16, "dt_gamma": 1 / 256, "min_near": 0.05, "t_thresh": 1e-4}
    dt = step_sizes(128, 16)[0]
    out = render_rays(_constant_field(2.0), o, d, half, occ, **kw)
    alpha = 1 - math.exp(-2.0 * dt)
    acc = 1 - (1 - alpha) ** 17
    assert float(out["samples"]) * 4 == 17
    assert out["acc"][0].item() == pytest.approx(acc, rel=1e-5) and out["acc"][1:].abs().max() == 0
    assert out["rgb"][0].tolist() == pytest.approx([0.5 * acc] * 3, rel=1e-5)
    assert out["amb_aud"][0].item() == 17  # summed unweighted, as the kernel does
    ends = 2 + dt * torch.arange(1, 18)  # near = 2, the depth of a sample is its step's end
    weights = alpha * (1 - alpha) ** torch.arange(17.0)
    assert out["depth"][0].item() == pytest.approx(float((weights * ends).sum()), rel=1e-5)
    dense = render_rays(_constant_field(1e6), o, d, half, occ, **kw)
    assert float(dense["samples"]) * 4 == 5  # round 2's 4 samples are evaluated ...
    assert dense["amb_aud"][0].item() == 2  # ... and only its first composited
    assert dense["acc"][0].item() == pytest.approx(1.0)
    train = train_rays(_constant_field(1e6), o, d, half, occ, perturb=False, **kw)
    assert float(train["samples"]) * 4 == 16  # 16 marched, only the first composited
    assert train["amb_aud"][0].item() == 1.0 and train["acc"][0].item() == pytest.approx(1.0)


# --- conversion of the reference's checkpoint and data -----------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    from twinflow.convert.__main__ import main

    out = tmp_path_factory.mktemp("ernerf") / "model"
    rc = main(["ernerf", str(FIXTURES), "--data", str(FIXTURES / "data"), "--out", str(out),
               "--twin", "fixture"])  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def ref() -> dict:
    return torch.load(FIXTURES / "reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def models(converted):
    from twinflow.nerf.model import load_head, load_torso
    from twinflow.train import load_checkpoint

    head = load_head(load_checkpoint(converted / "lips.pt"), "cpu")
    torso = load_torso(load_checkpoint(converted / "torso.pt"), "cpu")
    return head, torso


def test_conversion_writes_the_model_folder(converted):
    summary = json.loads((converted / "import.json").read_text())
    assert summary["audio_features"] == "deepspeech" and summary["torso"] is True
    assert (summary["frames"], summary["train_frames"], summary["res"]) == (12, 10, 32)
    assert (summary["log2_table"], summary["torso_log2_table"]) == (13, 12)  # the fixture's
    for name in ("lips.pt", "torso.pt", "dataset.npz", "audio_features.npz", "frames.mkv"):
        assert (converted / name).is_file()


def test_frames_and_labels_come_from_gt_imgs_and_parsing(converted):
    import cv2

    from twinflow.nerf.dataset import FACE, HEAD, TORSO
    from twinflow.perception.store import read_masks

    rgba = read_masks(converted / "frames.mkv")
    assert rgba.shape == (12, 32, 32, 4)
    gt = cv2.cvtColor(cv2.imread(str(FIXTURES / "data" / "gt_imgs" / "4.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(rgba[4, ..., :3], gt)
    labels = rgba[4, ..., 3]
    assert labels[28, 5] == TORSO and labels[20, 15] == TORSO and labels[0, 0] == 0  # torso, neck
    assert labels[4, 16] in (HEAD, FACE) and (labels == FACE).any()  # face: inside the 68 points


def test_imported_data_is_what_ernerf_loads(converted, ref):
    """Cameras (nerf_matrix_to_ngp), intrinsics, AU45 eye area, bc.jpg and the features."""
    from twinflow.nerf.audio_features import load_features
    from twinflow.perception.store import load_npz

    ds = load_npz(converted / "dataset.npz")
    c2w = torch.from_numpy(ds["c2w"])
    assert maxdiff(c2w[:10] @ GL_TO_CV, ref["poses"]) < 1e-6  # OpenGL here, OpenCV in ER-NeRF
    assert maxdiff(c2w[0] @ GL_TO_CV, ref["ngp_pose_0"]) < 1e-6
    assert maxdiff(ds["intrinsics"], ref["intrinsics"]) == 0
    assert maxdiff(ds["blink"][:10], ref["eye_area"][:, 0]) < 1e-7
    assert maxdiff(ds["bg"] / 255.0, ref["bg_img"]) < 1e-7
    assert ds["box"].tolist() == [1.0, 0.5, 1.0] and ds["train"].tolist() == list(range(10))
    feats, info = load_features(converted / "audio_features.npz")
    assert info["kind"] == "deepspeech" and feats.shape == (12, 16, 29)
    assert maxdiff(torch.from_numpy(feats[:10]).transpose(1, 2), ref["auds"]) == 0


def test_audio_net_and_attention_match(models, converted, ref):
    from twinflow.nerf.audio_features import load_features

    head, _ = models
    feats = torch.from_numpy(
        load_features(converted / "audio_features.npz")[0][:10]
    )  # the train split
    with torch.no_grad():
        for i in (0, 5, 9):  # 0 and 9: windows padded with zero features at the ends
            code = head.audio_codes(feats, torch.tensor([i]), smooth=True)
            assert maxdiff(code, ref[f"enc_a_{i}"]) < TOL, i


def test_head_field_matches(models, ref):
    """Tri-plane features (against the fixture's stand-in, a separate transcription of the
    kernel), density, colour, region and eye attention, uncertainty at 400 points."""
    head, _ = models
    x, d, n = ref["x"], ref["d"], len(ref["x"])
    with torch.no_grad():
        f = head.encoder(x)
        assert maxdiff(f, ref["enc_x"]) < TOL
        aud = ref["enc_a_5"].expand(n, -1)
        sigma, geo, att, eye_att = head.density(x, aud, ref["eye"].expand(n, 1), f=f)
        rgb = head.color(d, geo, head.frame_codes(None, n))
        unc = head.uncertainty(f)
    assert float(ref["sigma"].max()) > 1000 and float(ref["sigma"].min()) < 1  # a varied field
    assert maxdiff(sigma / ref["sigma"], torch.ones(n)) < TOL  # relative: sigma = exp(h)
    assert maxdiff(rgb, ref["color"]) < TOL
    assert maxdiff(att, ref["amb_aud"][:, 0]) < TOL
    assert maxdiff(eye_att, ref["amb_eye"][:, 0]) < TOL
    assert maxdiff(unc, ref["uncertainty"][:, 0, 0]) < TOL


def test_torso_matches(models, converted, ref):
    from twinflow.nerf.model import torso_rays
    from twinflow.perception.store import load_npz

    _, torso = models
    ds = load_npz(converted / "dataset.npz")
    c2w = torch.from_numpy(ds["c2w"][3])
    uv = _image_uv(32)
    with torch.no_grad():
        assert maxdiff(torso.pixel_coords(uv, 32), ref["bg_coords"]) == 0
        pose = torso.pose_code(c2w[None], None, 32)
        code = torso.frame_codes(None, len(uv))
        rgb, alpha, _ = torso_rays(torso, uv, c2w[None].expand(len(uv), 4, 4), None, 32, code)
        _, _, dx = torso.field(ref["deform_x"], pose.expand(50, -1), code[:50])
    masked = (ref["torso_alpha"][:, 0] == 0).float().mean()
    assert 0.05 < masked < 0.95  # the alpha grid leaves part of the image out
    bg = torch.from_numpy(ds["bg"]).reshape(-1, 3) / 255.0
    assert maxdiff(alpha, ref["torso_alpha"][:, 0]) < TOL
    assert maxdiff(rgb * alpha[:, None] + bg * (1 - alpha[:, None]), ref["torso_bg"]) < TOL
    assert maxdiff(dx, ref["deform"]) < TOL


def test_a_whole_frame_renders_as_the_reference(models, converted, ref):
    """Frame 3's camera, frame 5's audio: rays, head marched and composited over the torso over
    bc.jpg, ER-NeRF's normalised depth (the marcher's CUDA parts: the fixture's stand-ins)."""
    from twinflow.nerf.audio_features import load_features
    from twinflow.nerf.model import render_frame
    from twinflow.nerf.rays import pixel_rays
    from twinflow.perception.store import load_npz

    head, torso = models
    ds = load_npz(converted / "dataset.npz")
    c2w, k = torch.from_numpy(ds["c2w"][3]), torch.from_numpy(ds["intrinsics"])
    o, d = pixel_rays(c2w, k, _image_uv(32))
    assert maxdiff(o, ref["rays_o"]) < 1e-6 and maxdiff(d, ref["rays_d"]) < 1e-6
    feats = torch.from_numpy(load_features(converted / "audio_features.npz")[0][:10])
    with torch.no_grad():
        aud = head.audio_codes(feats, torch.tensor([5]), smooth=True)[0]
        out = render_frame(head, torso, c2w, k, 32, torch.from_numpy(ds["box"]), aud,
                           float(ds["blink"][3]), torch.from_numpy(ds["bg"]) / 255.0, None, 4096)  # fmt: skip
    image = out["rgb"].reshape(-1, 3)
    hit = out["acc"].reshape(-1) > 0
    assert 0.2 < hit.float().mean() < 0.9 and out["acc"].max() > 0.99
    assert maxdiff(image, ref["image"]) < TOL
    assert maxdiff(out["depth"].reshape(-1), ref["depth"]) < TOL


def _image_uv(res: int) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    return torch.stack([u.flatten(), v.flatten()], -1).float() + 0.5


# --- errors ------------------------------------------------------------------------------------


def _convert(tmp_path, source, data=FIXTURES / "data", *extra):
    import argparse

    from twinflow.convert.ernerf import build_parser, convert

    p = argparse.ArgumentParser()
    p.add_argument("source")
    p.add_argument("--out")
    build_parser(p)
    convert(p.parse_args([str(source), "--data", str(data), "--out", str(tmp_path / "o"), *extra]))


def test_bad_sources_are_clear_errors(tmp_path):
    ckpt = FIXTURES / "checkpoints" / "ngp.pth"
    cut = tmp_path / "cut.pth"
    cut.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(ConversionError, match="cut.pth.*complete"):
        _convert(tmp_path, cut)
    with pytest.raises(ConversionError, match="no ER-NeRF checkpoint"):
        _convert(tmp_path, tmp_path)
    data = torch.load(ckpt, weights_only=False)
    data["model"]["encoder_xy.offsets"][1] += 8  # same table, other level sizes
    odd = tmp_path / "odd.pth"
    torch.save(data, odd)
    with pytest.raises(ConversionError, match="encoder.planes.0.offsets.*grid levels"):
        _convert(tmp_path, odd)
    with pytest.raises(ConversionError, match="transforms_train.json"):
        _convert(tmp_path, ckpt, tmp_path)


def test_a_head_only_checkpoint_converts_without_torso(tmp_path):
    data = torch.load(FIXTURES / "checkpoints" / "ngp.pth", weights_only=False)
    data["model"] = {
        k: v for k, v in data["model"].items()
        if not k.startswith(("torso_", "anchor_points", "individual_codes_torso", "density_grid_torso"))
    }  # fmt: skip
    head = tmp_path / "head.pth"
    torch.save(data, head)
    _convert(tmp_path, head)
    assert (tmp_path / "o" / "lips.pt").is_file() and not (tmp_path / "o" / "torso.pt").exists()
    summary = json.loads((tmp_path / "o" / "import.json").read_text())
    assert summary["torso"] is False


def test_density_bitfield_is_read_in_morton_order():
    """Cell (x, y, z) is bit morton(x, y, z) (x lowest) of the bitfield, 8 cells per byte."""
    from twinflow.convert.ernerf import occupancy_from_bitfield

    bits = np.zeros(128**3 // 8, np.uint8)
    # (x, y, z) = (1, 0, 0) -> code 1; (0, 1, 0) -> 2; (0, 0, 1) -> 4; (3, 0, 0) -> 0b1001 = 9
    for code in (1, 2, 4, 9):
        bits[code // 8] |= 1 << (code % 8)
    occ = occupancy_from_bitfield(torch.from_numpy(bits))
    assert occ.sum() == 4
    assert occ[0, 0, 1] and occ[0, 1, 0] and occ[1, 0, 0] and occ[0, 0, 3]  # [z, y, x]


# --- the workflow: a render from an imported model ------------------------------------------------


def test_a_render_runs_from_the_imported_model_without_training(converted, tmp_path):
    """``nerf: pretrained:`` -> the DAG of a render holds no dataset, perception or training job;
    the render runs (driving features given as an ER-NeRF file: DeepSpeech cannot be computed)."""
    from tests.helpers import make_project, planned_jobs, snakemake
    from twinflow.media.audio import write_wav
    from twinflow.media.video import VideoWriter, probe_video

    media = tmp_path / "media"
    media.mkdir()
    with VideoWriter(media / "twin.mp4", 25) as writer:
        for i in range(25):
            writer.write(np.full((64, 64, 3), 10 * i, np.uint8))
    t = np.arange(8000) / 16000
    write_wav(media / "drive.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    npy = FIXTURES / "data" / "aud_ds.npy"
    render = {"render_id": "r_imp", "twin_id": "imp", "pipeline": "nerf",
              "driving_audio": str(media / "drive.wav"),
              "options": f"features={npy};paste=full;smooth_path=3;smooth_lips=1;bg=white"}  # fmt: skip
    root = make_project(
        tmp_path, [{"twin_id": "imp", "video": str(media / "twin.mp4")}], [render],
        {"nerf": {"pretrained": {"imp": str(converted)}}},
    )  # fmt: skip
    target = "results/renders/r_imp.mp4"
    rules = {rule for rule, _ in planned_jobs(root, target, "results/imp/nerf/metrics.json")}
    assert {"nerf_render", "nerf_driving_audio_features", "nerf_paste", "nerf_mux"} <= rules
    assert "nerf_evaluate" in rules  # the import has frames.mkv: its val frames are measured
    assert not {r for r in rules if r.startswith(("nerf_train", "nerf_dataset", "perception"))}
    assert "nerf_audio_features" not in rules  # the twin's features come with the import
    snakemake(root, target, timeout=600)
    out = probe_video(root / target)
    assert out.n_frames == 12 and out.has_audio  # one frame per row of the features file
    meta = json.loads((root / "results/drive/r_imp/nerf/render.json").read_text())
    assert meta["audio_features"] == "deepspeech" and meta["head_steps"] == 1234
    assert meta["options"]["smooth_path"] == 3 and meta["options"]["bg"] == "white"


def test_the_imported_model_fine_tunes_and_trains_a_torso_as_ernerf(converted, tmp_path):
    """twinflow's training CLI continues an imported model on its imported data
    (``--preset init``: the checkpoint's model): the lips stage from ``lips.pt`` with ER-NeRF's
    marcher, then ER-NeRF's torso stage (its alpha grid re-measured)."""
    from twinflow.nerf.model import load_head, load_torso, render_frame
    from twinflow.nerf.train import main
    from twinflow.train import load_checkpoint

    common = [
        "--twin",
        "fixture",
        "--dataset",
        str(converted / "dataset.npz"),
        "--frames",
        str(converted / "frames.mkv"),
        "--features",
        str(converted / "audio_features.npz"),
        "--preset",
        "init",
        "--set",
        "rays=512",
        "--set",
        "patch=8",
        "--set",
        "occ_warmup=99",
        "--steps",
        "2",
        "--threads",
        "1",
    ]  # fmt: skip  (a 128^3 grid update: 30 s on a CPU)
    lips, torso = tmp_path / "lips.pt", tmp_path / "torso.pt"
    assert (
        main(["--stage", "lips", "--init", str(converted / "lips.pt"), "--out", str(lips), *common])
        == 0
    )
    assert main(["--stage", "torso", "--init", str(lips), "--out", str(torso), *common]) == 0
    ckpt = load_checkpoint(lips)
    head = load_head(ckpt, "cpu")
    assert head.cfg.sampler == "ernerf" and head.codes.shape == (12, 4)
    before = load_head(load_checkpoint(converted / "lips.pt"), "cpu").state_dict()
    # ER-NeRF's average is updated every 1000 steps: after 2 the saved (averaged) weights are
    # still the imported ones; the last weights moved
    moved = [k for k, v in ckpt["last"]["head"].items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in moved)
    assert all(torch.equal(v, before[k]) for k, v in head.state_dict().items())
    t = load_torso(load_checkpoint(torso), "cpu")
    assert float(t.mean_density) > 0 and t.occupied_fraction() > 0  # re-measured while training
    with torch.no_grad():
        out = render_frame(head, t, head.occupancy.density.new_tensor(np.eye(4) * 0 + _camera()),
                           torch.tensor([40.0, 40.0, 16.0, 16.0]), 32,
                           torch.tensor([1.0, 0.5, 1.0]), torch.zeros(32), 0.3,
                           torch.full((32, 32, 3), 0.5), None, 4096)  # fmt: skip
    assert torch.isfinite(out["rgb"]).all()


def _camera() -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]  # looking along -y (ER-NeRF's depth axis)
    c2w[:3, 3] = [0, 2.4, 0]
    return c2w


def test_density_grid_update_and_unseen_cells_follow_ernerf():
    """update_extra_state: new = density at the cells, dilated to the 6 neighbours, EMA-max with
    0.95 where not unseen (-1); occupied above min(mean, 10). mark_untrained_grid: cells behind
    every camera are -1."""
    from twinflow.nerf.network import OccupancyGrid

    grid = OccupancyGrid(8)
    grid.density.zero_()
    hot = torch.zeros(8, 8, 8)
    hot[4, 4, 4] = 50.0  # [z, y, x]

    def density(x):  # 50 in cell (4, 4, 4) of the 8^3 grid over [-1, 1]^3, else 0
        c = ((x + 1) / 2 * 8).long().clamp(0, 7)
        return hot[c[:, 2], c[:, 1], c[:, 0]]

    grid.update_ernerf(density, generator=torch.Generator().manual_seed(0))
    want = torch.zeros(8, 8, 8, dtype=torch.bool)
    for dz, dy, dx in [
        (0, 0, 0),
        (1, 0, 0),
        (-1, 0, 0),
        (0, 1, 0),
        (0, -1, 0),
        (0, 0, 1),
        (0, 0, -1),
    ]:
        want[4 + dz, 4 + dy, 4 + dx] = True
    assert torch.equal(grid.mask, want)  # mean 7 * 50 / 512 = 0.68 < 10: the threshold
    grid.update_ernerf(lambda x: torch.zeros(len(x)))
    assert grid.density[4, 4, 4] == pytest.approx(50 * 0.95)
    cam = torch.eye(4)
    cam[2, 3] = 3.0  # OpenGL camera at z = 3 looking down -z: sees z < 3 only in its frustum
    k = torch.tensor([100.0, 100.0, 8.0, 8.0])  # a narrow view: the corners are unseen
    unseen = grid.mark_unseen(cam[None], k)
    assert unseen > 0 and grid.density[4, 4, 4] >= 0 and grid.density[0, 0, 0] == -1


def test_hubert_features_in_ernerfs_layout():
    """data_utils/hubert.py: clips of 1000 output frames (here 10), each 80 samples longer so
    they do not overlap, a tail only when a kernel long; then two vectors per 25 fps frame."""
    from twinflow.nerf.audio_features import ernerf_hubert_hidden, ernerf_pairs

    def fake_hubert(x):  # one frame per 320 samples (kernel 400), valued by its global frame
        start = int(x[0, 0])
        frames = (x.shape[1] - 400) // 320 + 1
        return (start / 320 + torch.arange(frames, dtype=torch.float32))[None, :, None]

    n = 320 * 10 * 3 + 1000
    signal = torch.arange(n, dtype=torch.float32)[None]  # sample k holds k: clips know their start
    hidden = ernerf_hubert_hidden(signal, fake_hubert, clip_frames=10)
    assert hidden[:, 0].tolist() == list(range((n - 80) // 320))  # 32 frames, none twice
    pairs = ernerf_pairs(np.arange(10.0)[:9, None])
    assert pairs.shape == (4, 2, 1) and pairs[3, :, 0].tolist() == [6.0, 7.0]


def test_ernerfs_inference_smoothing_options():
    """--smooth_path (window mean of positions, chordal mean of rotations), --smooth_eye (the
    frame and its 2 neighbours), --smooth_lips (code_k = 0.35 code_(k-1) + 0.65 code_k)."""
    from scipy.spatial.transform import Rotation

    from twinflow.nerf.render import smooth_eye, smooth_lips, smooth_path

    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[:, 0, 3] = [0.0, 3.0, 9.0]
    c2w[:, :3, :3] = Rotation.from_euler("z", [[0], [10], [20]], degrees=True).as_matrix()
    out = smooth_path(c2w, 3)
    assert out[:, 0, 3].tolist() == [1.5, 4.0, 6.0]
    assert Rotation.from_matrix(out[1, :3, :3]).as_euler("xyz", degrees=True)[2] == pytest.approx(
        10
    )
    assert smooth_eye(np.array([0.0, 3.0, 0.0, 3.0])).tolist() == [1.5, 1.0, 2.0, 1.5]
    codes = torch.tensor([[1.0], [0.0], [0.0]])
    assert smooth_lips(codes)[:, 0].tolist() == pytest.approx([1.0, 0.35, 0.1225])
