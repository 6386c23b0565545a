"""The animate stages end to end on the demo media: dataset, a few training steps, AVD, renders in
standard and avd mode (frame count and fps of the driving video), evaluation, kill-and-resume of
the training CLI, and the rules' plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, copy_media, make_project, planned_jobs
from twinflow.animate import evaluate as evaluate_stage
from twinflow.animate import train as train_stage
from twinflow.animate import train_avd as train_avd_stage
from twinflow.animate.data import load_clips, write_dataset
from twinflow.animate.render import render
from twinflow.cli import stage_main
from twinflow.media.video import probe_video, read_frames, write_video
from twinflow.train.loop import resume_path

# Small and quick: the behaviour under test does not depend on the model's size. One thread:
# on a shared CPU two threads per process can be ten times slower.
SMALL = ["--set", "batch_size=2", "--threads", "1"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The in-process stages set torch's thread count; restore it for other tests."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def driving(tmp_path_factory, demo_media) -> Path:
    """40 frames of the demo's driving motion at 30 fps (not the 25 fps of the models' data)."""
    frames = read_frames(demo_media / "drive_motion.mp4")[:40]
    out = tmp_path_factory.mktemp("driving") / "drive30.mp4"
    write_video(out, frames, 30.0)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_media) -> Path:
    out = tmp_path_factory.mktemp("animate") / "dataset"
    write_dataset(
        out,
        demo_media / "talk.mp4",
        [],
        size=64,
        fps=25,
        split="time",
        test_fraction=0.2,
        twin="demo",
    )
    return out


@pytest.fixture(scope="module")
def trained(dataset) -> tuple[Path, Path]:
    """A tiny model trained for a handful of steps, and its AVD network."""
    folder = dataset.parent
    model, avd = folder / "model.pt", folder / "avd.pt"
    args = ["--twin", "demo", "--dataset", str(dataset), *SMALL]
    assert (
        stage_main(
            train_stage.build_parser,
            train_stage.train,
            [*args, "--steps", "6", "--out", str(model)],
        )
        == 0
    )
    assert (
        stage_main(
            train_avd_stage.build_parser,
            train_avd_stage.run,
            [*args, "--model", str(model), "--steps", "10", "--out", str(avd)],
        )
        == 0
    )
    return model, avd


def test_dataset_splits_each_video_by_time(dataset):
    index = json.loads((dataset / "index.json").read_text())
    (video,) = index["videos"]
    assert video["frames"] == 150 and video["train"] == [0, 120] and video["test"] == [120, 150]
    (train,) = load_clips(dataset, "train")
    (test,) = load_clips(dataset, "test")
    assert train.frames.shape == (120, 64, 64, 3) and len(test) == 30


@pytest.mark.parametrize("mode", ["standard", "avd"])
def test_render_has_the_driving_videos_frames_and_fps(trained, demo_media, driving, tmp_path, mode):
    model, avd = trained
    out = tmp_path / f"{mode}.mp4"
    render(model, demo_media / "photo.png", driving, out, mode=mode, avd_path=avd, size=96)
    got, want = probe_video(out), probe_video(driving)
    assert (got.n_frames, got.fps) == (want.n_frames, want.fps) == (40, 30.0)
    assert (got.width, got.height) == (96, 96)


def test_render_muxes_driving_audio(trained, demo_media, driving, tmp_path):
    model, _ = trained
    out = tmp_path / "with_audio.mp4"
    render(
        model,
        demo_media / "talk.mp4",  # a video source: its first frame is animated
        driving,
        out,
        mode="relative",
        audio=demo_media / "drive_speech.wav",
        size=64,
    )
    info = probe_video(out)
    assert info.has_audio and info.n_frames == 40


def test_evaluation_writes_metrics_with_copy_source_baseline(trained, dataset, tmp_path):
    model, _ = trained
    out = tmp_path / "metrics.json"
    argv = ["--twin", "demo", "--model", str(model), "--dataset", str(dataset), "--max-frames", "8"]
    assert (
        stage_main(evaluate_stage.build_parser, evaluate_stage.run, [*argv, "--out", str(out)]) == 0
    )
    metrics = json.loads(out.read_text())
    values, baseline = metrics["values"], metrics["baselines"]["copy_source"]
    assert metrics["pipeline"] == "animate" and set(values) == set(baseline)
    # AKD needs faces that a detector finds in 64 px frames of a 6-step model: maybe none.
    measured = metrics["measured"]
    assert {"l1"} <= set(values) <= {"l1", "akd", "mkr"}
    assert "akd" in values or "not measured" in measured["akd"]
    assert ("mkr" in values) == (measured["mkr_frames"] > 0)
    assert baseline.get("mkr", 0) == 0  # the source frame always shows its face
    assert metrics["measured"]["frames"] == 8
    assert 0 < metrics["values"]["l1"] < 1


def test_training_cli_resumes_after_sigkill(dataset, tmp_path):
    out = tmp_path / "model.pt"
    state = resume_path(out)
    cmd = [sys.executable, "-m", "twinflow.animate.train", "--twin", "demo"]
    cmd += ["--dataset", str(dataset), *SMALL, "--steps", "20", "--save-every", "3"]
    cmd += ["--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    log1 = tmp_path / "first.log"
    with log1.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 120
        while not state.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert state.exists(), log1.read_text()[-2000:]
    assert not out.exists(), "a killed run leaves no final checkpoint"
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    line = next(x for x in second.stderr.splitlines() if "resuming" in x)
    step = int(line.split("from step ")[1].split()[0])
    assert 0 < step < 20 and step % 3 == 0
    assert out.exists() and not state.exists()


def test_rules_plan_animate_jobs_per_mode(tmp_path, demo_media):
    m = tmp_path / "media"
    for name in ("talk.mp4", "photo.png", "drive_motion.mp4", "drive_speech.wav"):
        copy_media(demo_media / name, m / name)
    renders = [
        {
            "render_id": f"r_{mode}",
            "twin_id": "demo",
            "pipeline": "animate",
            "driving_video": "media/drive_motion.mp4",
            "options": f"mode={mode}",
        }
        for mode in ("relative", "avd")
    ]
    renders[0]["driving_audio"] = "media/drive_speech.wav"
    make_project(
        tmp_path,
        [{"twin_id": "demo", "video": "media/talk.mp4", "photo": "media/photo.png"}],
        renders,
    )
    jobs = planned_jobs(tmp_path)
    rules = {rule for rule, _ in jobs}
    assert {"animate_dataset", "animate_train", "animate_train_avd", "animate_evaluate"} <= rules
    assert ("animate_render", "render=r_relative") in jobs
    assert ("animate_render", "render=r_avd") in jobs
    # A relative render alone needs no AVD network.
    relative_only = planned_jobs(tmp_path, "results/renders/r_relative.mp4")
    assert "animate_train_avd" not in {rule for rule, _ in relative_only}
    assert ("extract_driving_audio", "render=r_relative") in relative_only
    # A render without mode= uses the default, avd (the reference demo's): AVD training planned.
    renders.append({**renders[1], "render_id": "r_default", "options": ""})
    pretrained = tmp_path / "converted.pt"
    pretrained.write_bytes(b"a converted model")
    make_project(
        tmp_path,
        [{"twin_id": "demo", "video": "media/talk.mp4", "photo": "media/photo.png"}],
        renders,
        {"animate": {"pretrained": str(pretrained)}},
    )
    default = planned_jobs(tmp_path, "results/renders/r_default.mp4")
    assert {"animate_train", "animate_train_avd"} <= {rule for rule, _ in default}


def test_plan_resolves_the_config_and_rejects_bad_options():
    from twinflow.animate import plan
    from twinflow.animate.presets import PRESETS
    from twinflow.sheets import Render, Twin

    paper = plan.settings({"preset": "paper", "animate": {"steps": {"tiny": 5}}})
    assert paper.preset.name == "vox256" and paper.steps == PRESETS["vox256"].steps
    s = plan.settings(
        {
            "preset": "tiny",
            "animate": {
                "steps": {"tiny": 5},
                "overrides": {"num_regions": 6, "pyramid_scales": [1, 0.5]},
            },
        }
    )
    assert s.steps == 5 and s.preset.num_regions == 6 and s.max_minutes is None
    assert s.set_args == "--set num_regions=6 --set 'pyramid_scales=[1, 0.5]'"
    with pytest.raises(ValueError, match="unknown preset field"):
        plan.settings({"animate": {"overrides": {"regions": 3}}})
    twin = Twin("t", "v.mp4")
    render = Render("r", "t", "animate", driving_video="d.mp4", options={"mode": "fast"})
    with pytest.raises(ValueError, match="mode 'fast'"):
        plan.render_mode(render, s)
    photo = Render("r", "t", "animate", driving_video="d.mp4", options={"source": "photo"})
    with pytest.raises(ValueError, match="no photo"):
        plan.render_source(photo, twin)
    plain = Render("r", "t", "animate", driving_video="d.mp4")
    assert plan.render_inputs(plain, twin, s) == {  # avd: the default mode, as the reference's
        "model": "results/t/animate/model.pt",
        "source": "results/t/media/video.mp4",
        "driving": "results/drive/r/video.mp4",
        "avd": "results/t/animate/avd.pt",
    }


def test_plan_passes_a_pretrained_model_to_the_training_stages(tmp_path):
    from twinflow.animate import plan

    model, avd = tmp_path / "model.pt", tmp_path / "avd.pt"
    model.write_bytes(b"x")
    avd.write_bytes(b"x")
    s = plan.settings({"animate": {"pretrained": str(model), "pretrained_avd": str(avd)}})
    assert s.pretrained_arg() == f"--pretrained {model}" and s.pretrained_inputs() == [str(model)]
    assert s.pretrained_arg(avd=True) == f"--pretrained {avd}" and s.train_runtime == 15
    tuned = plan.settings({"animate": {"pretrained": str(model), "finetune": True}})
    assert tuned.pretrained_arg().endswith("--finetune") and tuned.pretrained_arg(avd=True) == ""
    with pytest.raises(ValueError, match="pretrained_avd '.*none.pt' not found"):
        plan.settings({"animate": {"pretrained_avd": str(tmp_path / "none.pt")}})
    paper = plan.settings({"preset": "paper"})
    assert (paper.steps, paper.steps_arg) == (None, "")  # the reference's epoch schedule


def test_a_converted_reference_checkpoint_is_used_or_fine_tuned(
    dataset, demo_media, tmp_path, capsys
):
    """The parity fixture (a 64 px MRAA saved by the reference) converted, then used by the
    training stages instead of training (or trained further), and rendered in avd mode."""
    from twinflow.animate.model import load_model
    from twinflow.convert.__main__ import main as convert
    from twinflow.train import load_checkpoint

    fixtures = REPO / "tests" / "fixtures" / "animate"
    converted, converted_avd = tmp_path / "converted.pt", tmp_path / "converted_avd.pt"
    argv = ["mraa", str(fixtures / "mraa_vox_small.pth"), "--out", str(converted)]
    argv += ["--config", str(fixtures / "mraa_vox_small.yaml"), "--avd", str(converted_avd)]
    assert convert(argv) == 0
    base = ["--twin", "demo", "--dataset", str(dataset), "--threads", "1"]
    used, tuned = tmp_path / "model.pt", tmp_path / "tuned.pt"
    train = [*base, "--pretrained", str(converted)]
    assert (
        stage_main(train_stage.build_parser, train_stage.train, [*train, "--out", str(used)]) == 0
    )
    tune = [*train, "--finetune", "--steps", "2", "--set", "batch_size=2", "--out", str(tuned)]
    assert stage_main(train_stage.build_parser, train_stage.train, tune) == 0
    same, moved = load_checkpoint(used), load_checkpoint(tuned)
    assert same["meta"]["pretrained"] == moved["meta"]["pretrained"] == str(converted)
    ref = load_model(converted).state_dict()
    w = "generator.final.weight"
    assert torch.equal(load_model(used).state_dict()[w], ref[w])
    assert not torch.equal(load_model(tuned).state_dict()[w], ref[w])
    assert moved["steps"] == 2 and moved["meta"]["preset"]["batch_size"] == 2
    avd = tmp_path / "avd.pt"
    train_avd = [*base, "--model", str(used), "--pretrained", str(converted_avd)]
    assert (
        stage_main(
            train_avd_stage.build_parser, train_avd_stage.run, [*train_avd, "--out", str(avd)]
        )
        == 0
    )
    out = tmp_path / "avd.mp4"
    drive = demo_media / "drive_motion.mp4"
    render(used, demo_media / "photo.png", drive, out, mode="avd", avd_path=avd, size=64)
    assert probe_video(out).n_frames == probe_video(drive).n_frames
    # A model of another frame size does not fit the dataset: a clear error, no output.
    big = tmp_path / "big.pt"
    assert (
        convert(
            [
                "mraa",
                str(fixtures / "mraa_vox_small.pth"),
                "--out",
                str(big),
                "--size",
                "128",
                "--config",
                str(fixtures / "mraa_vox_small.yaml"),
            ]
        )
        == 0
    )
    bad = [*base, "--pretrained", str(big), "--out", str(tmp_path / "bad.pt")]
    assert stage_main(train_stage.build_parser, train_stage.train, bad) == 1
    assert not (tmp_path / "bad.pt").exists()
    # The reference's own file, not converted: refused with the command that converts it.
    raw = [
        *base,
        "--pretrained",
        str(fixtures / "mraa_vox_small.pth"),
        "--out",
        str(tmp_path / "r.pt"),
    ]
    assert stage_main(train_stage.build_parser, train_stage.train, raw) == 1
    assert "twinflow.convert mraa" in capsys.readouterr().err
