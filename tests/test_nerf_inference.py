"""ER-NeRF's inference and the seed's paste-back: a time range of the driving audio, depth output,
the face-area and face+neck parsing schemes, output at the original video's resolution and
position; and ``nerf: finetune:`` (an imported model fine-tuned in the workflow)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import REPO, make_project, planned_jobs, snakemake
from twinflow.sheets import Render

FIXTURES = REPO / "tests" / "fixtures" / "nerf" / "ernerf"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    from twinflow.convert.__main__ import main

    out = tmp_path_factory.mktemp("ernerf") / "model"
    rc = main(["ernerf", str(FIXTURES), "--data", str(FIXTURES / "data"), "--out", str(out),
               "--twin", "fixture"])  # fmt: skip
    assert rc == 0
    return out


# --- plan: options ------------------------------------------------------------------------------


def test_render_options_time_range_depth_resolution_and_paste_schemes():
    from twinflow.nerf import plan

    s = plan.settings({"preset": "tiny", "nerf": {}})
    assert s.resolution == "normalised" and s.finetune is False
    r = Render("r", "t", "nerf", options={"start": "1.5", "end": "4", "depth": "1"})
    assert plan.render_args(r) == "--start 1.5 --end 4.0"
    assert plan.wants_depth(r) and plan.depth_file(r) == "results/drive/r/nerf/depth.mkv"
    other = Render("o", "t", "nerf", options={"paste": "face_neck", "resolution": "original"})
    renders = {"r": r, "o": other}
    plan.check_renders(renders, s)
    assert plan.render_pattern(renders, depth=True) == "r"
    assert plan.render_pattern(renders, depth=False) == "o"
    assert plan.render_pattern(renders) == "o|r"
    for bad, match in (
        ({"start": "3", "end": "2"}, "time range"),
        ({"start": "-1"}, "time range"),
        ({"end": "x"}, "could not convert"),
        ({"resolution": "4k"}, "resolution '4k'"),
        ({"paste": "neck"}, "paste 'neck'"),
    ):
        with pytest.raises(ValueError, match=match):
            plan.check_renders({"b": Render("b", "t", "nerf", options=bad)}, s)
    with pytest.raises(ValueError, match="resolution 'big'"):
        plan.settings({"preset": "tiny", "nerf": {"resolution": "big"}})

    class Twin:
        video = "/data/t.mov"

    files = plan.paste_inputs(renders, s, {"t": Twin()})
    w = type("W", (), {"render": "o"})
    got = files(w)
    assert got == {"parsing": "results/t/perception/parsing.mkv",
                   "media_meta": "results/t/media/meta.json", "source": "/data/t.mov"}  # fmt: skip
    assert plan.paste_args(other, s, got) == (
        "--mode face_neck --parsing results/t/perception/parsing.mkv --resolution original "
        "--meta results/t/media/meta.json --source /data/t.mov"
    )
    w.render = "r"
    assert files(w) == {} and plan.paste_args(r, s, {}) == "--mode full"


def test_imported_models_refuse_parsing_schemes_and_finetune_needs_frames(converted, tmp_path):
    import shutil

    from twinflow.nerf import plan

    s = plan.settings({"preset": "tiny", "nerf": {"pretrained": {"imp": str(converted)}}})
    face = Render("f", "imp", "nerf", options={"paste": "face"})
    with pytest.raises(ValueError, match="perception parsing"):
        plan.check_renders({"f": face}, s)
    bare = tmp_path / "bare"
    shutil.copytree(converted, bare)
    (bare / "frames.mkv").unlink()
    with pytest.raises(ValueError, match="no frames.mkv"):
        plan.settings({"nerf": {"pretrained": {"imp": str(bare)}, "finetune": True}})
    s = plan.settings({"nerf": {"pretrained": {"imp": str(converted)}, "finetune": True}})
    assert plan.fine_tuned(s, "imp") and not plan.fine_tuned(s, "other")
    assert plan.model_path(s, "imp", "lips.pt") == "results/imp/nerf/lips.pt"
    assert plan.model_path(s, "imp", "torso.pt") == f"{converted}/torso.pt"
    files = plan.lips_inputs(s)(type("W", (), {"twin": "imp"}))
    assert files["init"] == f"{converted}/lips.pt"
    assert files["dataset"] == f"{converted}/dataset.npz"
    assert plan.lips_preset(s, "imp") == "init" and plan.lips_preset(s, "other") == s.name


# --- render: time range and depth ------------------------------------------------------------------


def test_frame_range_and_depth_images():
    from twinflow.nerf.render import depth_image, frame_range

    assert frame_range(100, 25, None, None) == (0, 100)
    assert frame_range(100, 25, 1.0, 2.02) == (25, 50)
    assert frame_range(100, 25, 1.0, 60.0) == (25, 100)  # the end is clamped to the audio
    with pytest.raises(ValueError, match="empty"):
        frame_range(100, 25, 4.0, None)
    out = {"depth": torch.tensor([[0.5, 0.999], [0.0, 1.2]]), "acc": torch.ones(2, 2)}
    assert depth_image(out, "ernerf").tolist() == [[127, 254], [0, 255]]  # ER-NeRF truncates
    out = {
        "depth": torch.tensor([[1.0, 1.5], [3.0, 0.0]]),
        "acc": torch.tensor([[0.5, 1, 1, 0]]).view(2, 2),
    }
    # expected depth 2.0, 1.5, 3.0 on head pixels -> (d - 1.5) / 1.5; no head: 0
    assert depth_image(out, "stratified").tolist() == [[85, 0], [255, 0]]


def test_render_a_time_range_with_depth_from_the_imported_model(converted, tmp_path):
    from twinflow.nerf.data import NerfData
    from twinflow.nerf.model import render_frame
    from twinflow.nerf.render import load_models, main, pingpong
    from twinflow.perception.store import iter_masks

    out, meta, depth = tmp_path / "render.mkv", tmp_path / "render.json", tmp_path / "depth.mkv"
    args = ["--render", "r", "--dataset", str(converted / "dataset.npz"),
            "--head", str(converted / "lips.pt"), "--torso", str(converted / "torso.pt"),
            "--features", str(converted / "audio_features.npz"), "--start", "0.12", "--end", "0.3",
            "--depth-out", str(depth), "--threads", "1", "--device", "cpu", "--out", str(out),
            "--out-json", str(meta)]  # fmt: skip
    assert main(args) == 0
    info = json.loads(meta.read_text())
    assert info["audio_frames"] == [3, 8] and info["frames"] == 5  # 25 fps: 0.12 s, 0.3 s
    assert info["audio_start_s"] == pytest.approx(0.12) and info["depth"] is True
    frames, depths = list(iter_masks(out)), list(iter_masks(depth))
    assert len(frames) == len(depths) == 5 and depths[0].shape == (32, 32)
    # frame 0 of the range: pose 0, the audio code of feature frame 3 (its window reads 0..)
    data = NerfData(str(converted / "dataset.npz"), None, None, device="cpu")
    feats = torch.as_tensor(np.load(converted / "audio_features.npz")["features"])
    head, torso, _ = load_models(str(converted / "lips.pt"), str(converted / "torso.pt"),
                                 "deepspeech", int(feats.shape[-1]), "cpu")  # fmt: skip
    assert info["frame_index"] == pingpong(5, data.n_frames).tolist()
    with torch.no_grad():
        code = head.audio_codes(feats, torch.tensor([3]), smooth=True)[0]
        ref = render_frame(head, torso, data.c2w[0], data.intrinsics, data.res, data.box, code,
                           float(data.blink[0]), data.bg, data.head_region, 4096)  # fmt: skip
    rgb = (ref["rgb"].numpy() * 255).round().clip(0, 255).astype(np.uint8)
    assert np.abs(frames[0][..., :3].astype(int) - rgb).max() <= 1
    expected = (ref["depth"].clamp(0, 1).numpy() * 255).astype(np.uint8)
    assert np.array_equal(depths[0], expected) and depths[0].max() > 0


# --- paste-back: schemes and the original video's resolution --------------------------------------


def test_paste_back_inverts_the_normalisation_crop():
    """A normalised frame (fit_to_size of a non-square box) goes back to the box, in place."""
    from twinflow.media.image import fit_to_size
    from twinflow.nerf.paste import paste_source

    rng = np.random.default_rng(0)
    source = np.zeros((80, 100, 3), np.uint8)
    box = (12, 4, 60, 72)  # x, y, w, h: taller than wide, padded to a square when normalised
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (72, 60, 3), np.uint8), (0, 0), 3)
    source[4:76, 12:72] = smooth
    norm = fit_to_size(source, box, 96)
    out = paste_source(norm, np.ones((96, 96), np.float32), np.full_like(source, 7), box)
    assert (out[:, :12] == 7).all() and (out[:, 72:] == 7).all() and (out[:4] == 7).all()
    inner = np.abs(out[4:76, 12:72].astype(int) - smooth.astype(int))
    assert inner[2:-2, 2:-2].mean() < 2.0  # resampled twice, back in place


def test_face_masks_come_from_the_pose_frames_parsing():
    from twinflow.nerf.paste import crop_alpha, feathered, paste_head, paste_masked
    from twinflow.perception.parsing import HAIR, NECK, SKIN

    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 20:44] = SKIN
    labels[30:40, 24:40] = NECK
    labels[2:10, 16:48] = HAIR
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    crop = (0, 0, 64)
    face, neck = crop_alpha(rgba, crop, "face", labels), crop_alpha(rgba, crop, "face_neck", labels)
    assert face[20, 32] > 0.95 and face[35, 32] < 0.05 and face[5, 32] < 0.05
    assert neck[20, 32] > 0.95 and neck[35, 32] > 0.95 and neck[5, 32] < 0.05
    frame = np.full((64, 64, 3), 50, np.uint8)
    out = paste_masked(rgba, frame, crop, face)
    assert out[20, 32, 0] == 200 and out[35, 32, 0] == 50 and out[60, 5, 0] == 50
    # head: the same maths as before the schemes were added
    a = feathered(rgba[..., 3], 64)[..., None]
    rgb = cv2.resize(rgba[..., :3], (64, 64), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    old = (a * rgb + (1 - a) * frame.astype(np.float32)).round().clip(0, 255).astype(np.uint8)
    assert np.array_equal(paste_head(rgba, frame, crop), old)


def _write_paste_inputs(tmp_path: Path) -> dict[str, Path]:
    """A render of 3 frames (crop 16..48 of a 64 frame), the twin's normalised video and its
    parsing, and its source video (100x80, normalised from the box x 12, y 4, 72 x 72)."""
    from twinflow.atomic import write_json
    from twinflow.media.image import fit_to_size
    from twinflow.media.video import VideoWriter
    from twinflow.perception.parsing import NECK, SKIN
    from twinflow.perception.store import MaskWriter

    p = {k: tmp_path / n for k, n in (("frames", "render.mkv"), ("json", "render.json"),
         ("dataset", "dataset.npz"), ("video", "video.mp4"), ("parsing", "parsing.mkv"),
         ("meta", "meta.json"), ("source", "source.mp4"))}  # fmt: skip
    with MaskWriter(p["frames"], 25, kind="rgba") as w:
        for _ in range(3):
            w.write(np.dstack([np.full((32, 32, 3), (250, 20, 20), np.uint8),
                               np.full((32, 32), 255, np.uint8)]))  # fmt: skip
    write_json(p["json"], {"frames": 3, "frame_index": [0, 1, 2], "fps": 25.0,
                           "crop": [16, 16, 32, 64]})  # fmt: skip
    np.savez(p["dataset"], bg_frame=np.full((64, 64, 3), 90, np.uint8))
    labels = np.zeros((64, 64), np.uint8)
    labels[20:38, 20:44], labels[38:46, 24:40] = SKIN, NECK
    with MaskWriter(p["parsing"], 25) as w:
        for _ in range(3):
            w.write(labels)
    source = np.full((80, 100, 3), (20, 200, 20), np.uint8)
    box = (12, 4, 72, 72)
    with VideoWriter(p["source"], 25) as ws, VideoWriter(p["video"], 25) as wv:
        for _ in range(3):
            ws.write(source)
            wv.write(fit_to_size(source, box, 64))
    write_json(p["meta"], {"crop_xywh": list(box), "fps": 25.0, "size": [64, 64], "n_frames": 3})
    return p


@pytest.mark.parametrize("mode", ["face", "face_neck", "full"])
def test_paste_cli_schemes_at_the_original_resolution(tmp_path, mode):
    from twinflow.media.video import read_frames
    from twinflow.nerf.paste import main

    p = _write_paste_inputs(tmp_path)
    common = ["--render", "r", "--frames", str(p["frames"]), "--render-json", str(p["json"]),
              "--dataset", str(p["dataset"]), "--video", str(p["video"]), "--mode", mode,
              "--parsing", str(p["parsing"])]  # fmt: skip
    norm, orig = tmp_path / "norm.mp4", tmp_path / "orig.mp4"
    assert main([*common, "--out", str(norm)]) == 0
    assert main([*common, "--resolution", "original", "--meta", str(p["meta"]),
                 "--source", str(p["source"]), "--out", str(orig)]) == 0  # fmt: skip
    n, o = read_frames(norm), read_frames(orig)
    assert n.shape == (3, 64, 64, 3) and o.shape == (3, 80, 100, 3)
    red = lambda px: px[0] > 200 and px[1] < 80  # noqa: E731
    # normalised 64 px frame -> source: x = 12 + 72/64 u, y = 4 + 72/64 v
    at = lambda u, v: o[1, int(4 + 72 / 64 * v), int(12 + 72 / 64 * u)]  # noqa: E731
    assert red(n[1, 28, 32]) and red(at(32, 28))  # the face: rendered
    assert tuple(o[1, 40, 4]) == pytest.approx((20, 200, 20), abs=12)  # outside the box: source
    neck, hair = (32, 42), (32, 17)  # the neck label; inside the crop above the face
    if mode == "face":
        assert not red(n[1, neck[1], neck[0]]) and not red(at(*neck))
    else:
        assert red(n[1, neck[1], neck[0]]) and red(at(*neck))
    assert red(at(*hair)) == (mode == "full")


def test_mux_cuts_the_audio_at_the_time_ranges_start(tmp_path):
    import av

    from twinflow.atomic import write_json
    from twinflow.media.audio import write_wav
    from twinflow.media.video import VideoWriter
    from twinflow.nerf.mux import main

    with VideoWriter(tmp_path / "v.mp4", 25) as w:
        for _ in range(25):
            w.write(np.zeros((32, 32, 3), np.uint8))
    sr = 16000
    t = np.arange(2 * sr) / sr
    write_wav(tmp_path / "a.wav", np.where(t < 1.0, 0.0, 0.5 * np.sin(2 * np.pi * 440 * t)), sr)
    write_json(tmp_path / "render.json", {"audio_start_s": 1.0})
    for name, extra in (("plain", []), ("cut", ["--render-json", str(tmp_path / "render.json")])):
        out = tmp_path / f"{name}.mp4"
        assert main(["--render", "r", "--video", str(tmp_path / "v.mp4"), "--audio",
                     str(tmp_path / "a.wav"), *extra, "--out", str(out)]) == 0  # fmt: skip
        with av.open(str(out)) as c:
            pcm = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        loud = np.abs(pcm[4000:12000]).mean()
        assert (loud > 0.1) == (name == "cut")


# --- the workflow: snakemake -n ---------------------------------------------------------------------


def _media(tmp_path: Path) -> Path:
    from twinflow.media.audio import write_wav
    from twinflow.media.video import VideoWriter

    media = tmp_path / "media"
    media.mkdir()
    with VideoWriter(media / "twin.mp4", 25) as writer:
        for i in range(25):
            writer.write(np.full((64, 64, 3), 10 * i, np.uint8))
    t = np.arange(8000) / 16000
    write_wav(media / "drive.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    return media


def test_workflow_plans_depth_parsing_paste_and_the_original_resolution(tmp_path):
    media = _media(tmp_path)
    renders = [
        {"render_id": "r_depth", "twin_id": "t", "pipeline": "nerf",
         "driving_audio": str(media / "drive.wav"), "options": "depth=1;start=0.1;end=0.4"},
        {"render_id": "r_face", "twin_id": "t", "pipeline": "nerf",
         "driving_audio": str(media / "drive.wav"),
         "options": "paste=face_neck;resolution=original"},
    ]  # fmt: skip
    root = make_project(tmp_path, [{"twin_id": "t", "video": str(media / "twin.mp4")}], renders)
    jobs = planned_jobs(root)  # the default target: every render (and the depth file)
    rules = {(rule, wc) for rule, wc in jobs if rule.startswith("nerf_render")}
    assert rules == {("nerf_render_depth", "render=r_depth"), ("nerf_render", "render=r_face")}
    text = snakemake(root, "-n", "-p").stdout
    assert "results/drive/r_depth/nerf/depth.mkv" in text and "--start 0.1 --end 0.4" in text
    assert "--parsing results/t/perception/parsing.mkv" in text
    assert "--resolution original --meta results/t/media/meta.json" in text
    assert "--render-json results/drive/r_face/nerf/render.json" in text  # mux: the start


def test_finetune_puts_the_imported_models_lips_stage_in_the_dag(converted, tmp_path):
    """``nerf: finetune: true`` with ``pretrained:``: nerf_train_lips fine-tunes the imported
    lips.pt on the imported data (``--preset init``); the render and the metrics use it with
    the imported torso; no dataset, perception, head or torso training job."""
    media = _media(tmp_path)
    render = {"render_id": "r_ft", "twin_id": "imp", "pipeline": "nerf",
              "driving_audio": str(media / "drive.wav"),
              "options": f"features={FIXTURES / 'data' / 'aud_ds.npy'}"}  # fmt: skip
    config = {"nerf": {"pretrained": {"imp": str(converted)}, "finetune": True,
                       "steps": {"tiny": {"lips": 7}}}}  # fmt: skip
    root = make_project(tmp_path, [{"twin_id": "imp", "video": str(media / "twin.mp4")}],
                        [render], config)  # fmt: skip
    targets = ("results/renders/r_ft.mp4", "results/imp/nerf/metrics.json")
    rules = {rule for rule, _ in planned_jobs(root, *targets)}
    assert "nerf_train_lips" in rules and {"nerf_render", "nerf_evaluate"} <= rules
    assert not {r for r in rules if r.startswith(("nerf_dataset", "perception", "face_"))}
    assert not {"nerf_train_head", "nerf_train_torso", "nerf_audio_features"} & rules
    text = snakemake(root, "-n", "-p", *targets).stdout
    lips = next(line for line in text.splitlines() if "twinflow.nerf.train --stage lips" in line)
    assert f"--init {converted}/lips.pt" in lips and "--preset init" in lips
    assert f"--dataset {converted}/dataset.npz" in lips and "--steps 7" in lips
    render_cmd = next(line for line in text.splitlines() if "twinflow.nerf.render" in line)
    assert "--head results/imp/nerf/lips.pt" in render_cmd
    assert f"--torso {converted}/torso.pt" in render_cmd
