"""Make-Your-Anchor parity: checkpoints saved in the reference's format convert
(``python -m twinflow.convert mya``) and twinflow's body and head generation match the
reference's own pipelines within 1e-4 (fixtures: tests/fixtures/anchor/mya, README there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

torch.set_num_threads(1)
FIX = Path(__file__).parent / "fixtures" / "anchor" / "mya"
TOL = 1e-4
FOLDERS = {
    "stable-diffusion-v1-5": "sd",
    "stable-diffusion-inpainting": "sd-inpainting",
    "clip-vit-base-patch32": "clip",
}


def fixture_registry(root: Path) -> Path:
    """A model registry whose SD, SD-inpainting and CLIP entries are the fixture's folders."""
    from twinflow.models import record

    entries = {
        name: {
            "file": str((FIX / folder).resolve()),
            "sha256": None,
            "licence": "test",
            "source": "tiny random weights (tests/fixtures/anchor/mya)",
            "used_by": ["tests"],
        }
        for name, folder in FOLDERS.items()
    }
    registry = root / "registry.yaml"
    registry.write_text(yaml.safe_dump({"models": entries}))
    for name in entries:
        record(name, registry)
    return registry


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``(registry, inputs, outputs, {part: checkpoint})`` after converting both parts."""
    from twinflow.convert.__main__ import main

    root = tmp_path_factory.mktemp("mya")
    registry = fixture_registry(root)
    inputs, outputs = np.load(FIX / "inputs.npz"), np.load(FIX / "outputs.npz")
    out = {}
    for part, source, sets in (
        ("body", FIX / "checkpoints", ["window=4", "overlap=1"]),  # the fixture's windows
        ("head", FIX / "checkpoints" / "head", ["head_batch=3"]),  # and head batches
    ):
        image = root / f"{part}.png"
        Image.fromarray(inputs[f"{part}_appearance"]).save(image)
        args = ["mya", str(source), "--part", part, "--out", str(root / "converted")]
        args += ["--size", "64", "--registry", str(registry), "--reference", str(image)]
        for item in sets:
            args += ["--set", item]
        assert main(args) == 0
        out[part] = root / "converted" / f"{part}.pt"
    return registry, inputs, outputs, out


def load(converted, part):
    from twinflow.anchor.models import build_codec, load_denoiser

    registry, inputs, outputs, paths = converted
    model, cfg, ckpt = load_denoiser(paths[part], part, registry)
    return model, cfg, ckpt, build_codec(cfg, registry, part)


def maxdiff(a, b) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.abs(a - np.asarray(b)).max())


def test_windows_are_the_references():
    from twinflow.anchor.sampling import window_starts

    outputs = np.load(FIX / "outputs.npz")
    for n, windows in json.loads(str(outputs["body_windows"])).items():
        ours = [list(range(a, b)) for a, b in window_starts(int(n), 16, 4, "truncate")]
        assert ours == windows, n
    fixture = json.loads(str(outputs["body_windows_fixture"]))
    assert [list(range(a, b)) for a, b in window_starts(7, 4, 1, "truncate")] == fixture


def test_converted_checkpoint_is_the_paper_preset_with_mya_settings(converted):
    model, cfg, ckpt, _ = load(converted, "body")
    assert cfg.name == "paper" and cfg.ref_encoder == "clip" and cfg.uncond == "empty_prompt"
    assert (cfg.guidance, cfg.control_scale, cfg.head_guidance, cfg.head_control_scale) == (
        7.5,
        2.0,
        3.5,
        1.0,
    )
    assert ckpt["meta"]["source"]["format"] == "mya"
    assert ckpt["extra"]["reference"].shape == (48, 40, 3)  # the body image as it is


def test_body_matches_the_reference_pipeline(converted):
    from twinflow.anchor.generate import decode, denoise, to_tensor
    from twinflow.anchor.sampling import initial_noise

    _, inputs, outputs, _ = converted
    model, cfg, ckpt, codec = load(converted, "body")
    reference = ckpt["extra"]["reference"]
    assert maxdiff(model.tokens(to_tensor(reference[None])), outputs["body_tokens"]) <= TOL
    assert maxdiff(model.null, outputs["body_uncond"]) <= TOL
    noise = initial_noise(7, (4, 8, 8), torch.Generator().manual_seed(42))
    assert maxdiff(noise[3:4], outputs["body_noise"]) == 0.0
    latents = denoise(
        model,
        codec,
        cfg,
        ckpt["meta"]["scheduler_config"],
        inputs["body_poses"],
        reference,
        seed=42,
    )
    video = ((decode(codec, latents) + 1) / 2).permute(0, 2, 3, 1)
    assert maxdiff(video, outputs["body_video"]) <= TOL
    assert maxdiff(latents, outputs["body_latents"]) <= TOL  # latents up to |35|


def test_head_matches_the_reference_pipeline(converted):
    from twinflow.anchor.generate import decode, denoise, to_tensor

    _, inputs, outputs, _ = converted
    model, cfg, ckpt, codec = load(converted, "head")
    reference = ckpt["extra"]["reference"]
    assert maxdiff(model.tokens(to_tensor(reference[None])), outputs["head_tokens"]) <= TOL
    assert maxdiff(model.null, outputs["head_uncond"]) <= TOL
    masks = (inputs["head_masks_keep"] < 128).astype(np.uint8)  # MYA's white = keep
    latents = denoise(
        model,
        codec,
        cfg,
        ckpt["meta"]["scheduler_config"],
        inputs["head_controls"],
        reference,
        images=inputs["head_faces"],
        masks=masks,
        seed=999,  # the reference's latents: torch.randn after seed_everything(999)
        posterior_seed=0,  # its pipeline generator: torch.manual_seed(0) per batch
    )
    images = ((decode(codec, latents) + 1) / 2).permute(0, 2, 3, 1)
    assert maxdiff(images, outputs["head_images"]) <= TOL


def test_bad_sources_fail_clearly(tmp_path, converted):
    from twinflow.anchor.models import load_denoiser
    from twinflow.convert import ConversionError
    from twinflow.convert.__main__ import main
    from twinflow.errors import TwinflowError

    registry = converted[0]
    with pytest.raises(TwinflowError, match="convert mya"):
        load_denoiser(FIX / "checkpoints" / "body", "body", registry)
    assert main(["mya", str(tmp_path), "--part", "body", "--out", str(tmp_path / "x.pt")]) != 0
    # the head folder given as the body: 9 input channels
    from twinflow.convert.mya import check_layout

    with pytest.raises(ConversionError, match="9 input channels"):
        check_layout({"in_channels": 9}, {}, "body", tmp_path)
    # a truncated weights file is named
    broken = tmp_path / "body"
    for sub in ("unet", "controlnet"):
        (broken / sub).mkdir(parents=True)
        src = FIX / "checkpoints" / "body" / sub
        (broken / sub / "config.json").write_text((src / "config.json").read_text())
        weights = next(src.glob("diffusion_pytorch_model.*"))
        (broken / sub / weights.name).write_bytes(weights.read_bytes()[:1000])
    from diffusers import UNet2DConditionModel

    from twinflow.convert.mya import read_diffusers

    with pytest.raises(ConversionError, match="complete"):
        read_diffusers(broken / "unet", UNet2DConditionModel, "body UNet")


def test_fine_tuning_starts_from_converted_weights_and_supplied_models_are_used(
    tmp_path, converted
):
    """Stage 2 from MYA's (converted) weights: one training step with MYA's conditioning moves
    the weights a little from where they started; a supplied model gets the twin's reference."""
    from tests.test_anchor_train import synthetic_clip
    from twinflow.anchor.data import load_clips
    from twinflow.anchor.presets import get_preset
    from twinflow.anchor.train import train_model
    from twinflow.anchor.use_model import use_model
    from twinflow.errors import InputError

    registry, _, _, paths = converted
    data_file = synthetic_clip(tmp_path / "clip_000.npz", n=6, size=64, head=64)
    cfg = get_preset("paper", {"body_size": 64, "head_size": 64, "batch_size": 2})
    out = tmp_path / "body.pt"
    train_model(
        "body", load_clips([data_file]), cfg, out, steps=1, registry=registry, init=paths["body"]
    )
    start = torch.load(paths["body"], weights_only=False)["modules"]["unet"]
    tuned = torch.load(out, weights_only=False)
    moved = max(float((tuned["modules"]["unet"][k] - v).abs().max()) for k, v in start.items())
    assert 0 < moved < 1e-3  # lr 1e-5: one step away from the converted weights
    assert tuned["meta"]["init"] == str(paths["body"])

    # a supplied model without an appearance image takes the twin's reference frame
    from twinflow.convert.__main__ import main

    bare = tmp_path / "bare.pt"
    args = ["mya", str(FIX / "checkpoints"), "--part", "body", "--out", str(bare)]
    assert main([*args, "--size", "64", "--registry", str(registry)]) == 0
    used = tmp_path / "used.pt"
    use_model("demo", "body", bare, [str(data_file)], used)
    data = load_clips([data_file])
    reference = torch.load(used, weights_only=False)["extra"]["reference"]
    assert np.array_equal(reference, data.arrays["frames"][data.reference_index()])
    small = synthetic_clip(tmp_path / "small.npz", n=6, size=32, head=16)
    with pytest.raises(InputError, match="64 px"):
        use_model("demo", "body", bare, [str(small)], tmp_path / "no.pt")


def test_condition_look_is_configurable(monkeypatch):
    """The mesh renders' colour and background (the paper preset's approximate SHOW's look)."""
    from twinflow.anchor import condition
    from twinflow.anchor.presets import get_preset
    from twinflow.render.mesh import RenderError

    verts = np.array([[[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]], np.float32)
    K = np.array([[64.0, 0, 32], [0, 64.0, 32], [0, 0, 1]])
    monkeypatch.setattr(
        condition, "fit_meshes", lambda *a: (verts, np.array([[0, 1, 2]]), K, (64, 64))
    )
    paper = get_preset("paper")
    try:
        default = condition.mesh_condition_frames("fit.npz", 0, 1, 64)
        show = condition.mesh_condition_frames("fit.npz", 0, 1, 64, paper.condition_color)
        grey = condition.mesh_condition_frames("fit.npz", 0, 1, 64, None, (0.5, 0.5, 0.5))
    except RenderError as err:
        pytest.skip(f"no renderer: {err}")
    centre = (0, 40, 32)
    assert tuple(default[0, 0, 0]) == (0, 0, 0) and tuple(grey[0, 0, 0]) == (128, 128, 128)
    assert np.array_equal(grey[centre], default[centre])  # the mesh itself is unchanged
    # SHOW's blue-grey: green and blue well above red, unlike the default's lilac
    r, g, b = show[centre].astype(int)
    assert g > r + 20 and b > r + 20
