"""FaceFormer parity: checkpoints saved by the reference code (github:EvelynFan/FaceFormer at
dfaea81, random weights at reduced width with a small random wav2vec2 inside; see
``tests/fixtures/meshhead/faceformer/README.md``) convert with ``python -m twinflow.convert
faceformer``, and twinflow's model predicts the reference's meshes from raw audio within 1e-4 in
the VOCASET (1:1 alignment, 30 fps, period 30, d=64) and BIWI (2:1, 25 fps, period 25, d=128)
setups; its teacher-forced and autoregressive training passes match the reference's ``forward``.
Also: the converted model in the training stage (used as is, fine-tuned), FaceFormer's data
split, the lip vertex error, and clear errors for files that do not fit."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from twinflow.cli import stage_main
from twinflow.convert import ConversionError
from twinflow.convert import faceformer as faceformer_kind
from twinflow.convert.__main__ import main as convert_main
from twinflow.errors import InputError
from twinflow.meshhead import evaluate as evaluate_stage
from twinflow.meshhead import train_audio2mesh
from twinflow.meshhead.audio2mesh import alignment_mask, rollout
from twinflow.meshhead.baselines import lip_vertex_error_mm
from twinflow.meshhead.common import load_npz, save_npz
from twinflow.meshhead.infer import Audio2MeshRunner
from twinflow.meshhead.presets import audio2mesh_preset
from twinflow.meshhead.topology import faceformer_part
from twinflow.meshhead.wav2vec2 import normalise_wave
from twinflow.train import load_checkpoint

torch.set_num_threads(1)
FIX = Path(__file__).parent / "fixtures" / "meshhead" / "faceformer"
SETUPS = ("vocaset", "biwi")
TOL = 1e-4
STYLE = "FaceTalk_170725_00137_TA"  # the third of FaceFormer's VOCASET training subjects


def convert(name: str, out: Path, *extra: str, source: Path | None = None) -> int:
    """``python -m twinflow.convert faceformer`` on a fixture."""
    return convert_main(["faceformer", *fixture_args(name, out, source), *extra])


def fixture_args(name: str, out: Path, source: Path | None = None) -> list[str]:
    return [str(source or FIX / f"{name}.pth"), "--preset", name, "--out", str(out),
            "--template", str(FIX / f"template_{name}.npy"),
            "--wav2vec2-config", str(FIX / "wav2vec2_config.json")]  # fmt: skip


def convert_raising(argv: list[str]) -> None:
    """The kind's ``convert`` itself (the CLI turns its errors into an exit status)."""
    p = argparse.ArgumentParser()
    p.add_argument("source")
    p.add_argument("--out", required=True)
    faceformer_kind.build_parser(p)
    faceformer_kind.convert(p.parse_args(argv))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faceformer")
    out = {name: folder / f"{name}.pt" for name in SETUPS}
    for name, path in out.items():
        assert convert(name, path) == 0
    return out


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    return np.load(FIX / "audio.npy")


@pytest.mark.parametrize("name", SETUPS)
def test_converted_checkpoint_predicts_the_reference_meshes_from_raw_audio(converted, wave, name):
    runner = Audio2MeshRunner(converted[name])
    expected = np.load(FIX / f"expected_{name}.npz")
    template = np.load(FIX / f"template_{name}.npy")
    speaker = runner.extra["speakers"][int(expected["subject"])]
    vertices = template + runner.predict(wave, 16000, speaker=speaker)
    # 2 s of audio: 59 frames at 30 fps (VOCASET, 1:1), 49 at 25 fps (BIWI, 2:1), as FaceFormer
    assert vertices.shape == expected["predict"].shape == ({"vocaset": 59, "biwi": 49}[name], 40, 3)
    assert np.abs(expected["predict"] - template).max() > 1.0  # the reference's output moves
    assert np.abs(vertices - expected["predict"]).max() <= TOL
    other = runner.extra["speakers"][0]
    assert np.abs(template + runner.predict(wave, 16000, speaker=other) - vertices).max() > 0.1


@pytest.mark.parametrize("name", SETUPS)
def test_training_passes_match_the_reference_forward(converted, wave, name):
    """FaceFormer's ``forward`` with a target shorter than the audio (wav2vec2 features cut to
    it, BIWI, or interpolated to it, VOCASET): teacher forcing (token 0 = its ``vertice_map``
    bias + style) and the autoregressive rollout of its training."""
    runner = Audio2MeshRunner(converted[name])
    expected = np.load(FIX / f"expected_{name}.npz")
    template = np.load(FIX / f"template_{name}.npy")
    target = expected["target"]
    n = len(target)
    style = runner.style(runner.extra["speakers"][int(expected["subject"])])
    offset = torch.zeros(1, dtype=torch.long)
    model = runner.model
    with torch.no_grad():
        memory = model.encode(torch.from_numpy(normalise_wave(wave))[None], n_frames=n)
        assert memory.shape[1] == model.cfg.audio_per_frame * n
        z = torch.from_numpy((target - template).reshape(1, n, -1))
        teacher = model(memory, z, style, offset)[0].numpy().reshape(n, -1, 3) + template
        auto = rollout(model, memory, n, style, offset)[0].numpy().reshape(n, -1, 3) + template
    assert np.abs(teacher - expected["teacher"]).max() <= TOL
    assert np.abs(auto - expected["autoregressive"]).max() <= TOL
    assert ((teacher - target) ** 2).mean() == pytest.approx(float(expected["teacher_loss"]), 1e-5)
    assert ((auto - target) ** 2).mean() == pytest.approx(
        float(expected["autoregressive_loss"]), 1e-5
    )


def test_checkpoints_of_transformers_4_6_and_files_that_do_not_fit(converted, tmp_path):
    # the published checkpoints hold the positional conv's weight norm as weight_g / weight_v
    state = torch.load(FIX / "vocaset.pth", weights_only=True)
    names = {"0": "weight_g", "1": "weight_v"}
    old = {re.sub(r"parametrizations\.weight\.original(\d)", lambda m: names[m[1]], k): v
           for k, v in state.items()}  # fmt: skip
    assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in old)
    torch.save(old, tmp_path / "old.pth")
    assert convert("vocaset", tmp_path / "old.pt", source=tmp_path / "old.pth") == 0
    a = load_checkpoint(tmp_path / "old.pt")["modules"]["model"]
    b = load_checkpoint(converted["vocaset"])["modules"]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a registry name (models/registry.yaml: faceformer-vocaset), checksum-verified
    from twinflow.models import record

    (tmp_path / "faceformer").mkdir()
    (tmp_path / "faceformer" / "vocaset.pth").write_bytes((FIX / "vocaset.pth").read_bytes())
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n  faceformer-vocaset:\n    file: faceformer/vocaset.pth\n    sha256: null\n"
        "    licence: MIT\n    source: test\n    used_by: [twinflow.convert.faceformer]\n"
    )
    named = fixture_args("vocaset", tmp_path / "named.pt", Path("faceformer-vocaset"))
    with pytest.raises(Exception, match="no recorded checksum"):
        convert_raising([*named, "--registry", str(registry)])
    record("faceformer-vocaset", registry)
    convert_raising([*named, "--registry", str(registry)])
    a = load_checkpoint(tmp_path / "named.pt")["modules"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    x = tmp_path / "x.pt"
    cut = tmp_path / "cut.pth"
    cut.write_bytes((FIX / "vocaset.pth").read_bytes()[:5000])
    with pytest.raises(ConversionError, match="cut.pth.*is the file complete"):
        convert_raising(fixture_args("vocaset", x, cut))
    torch.save({"generator": {}}, tmp_path / "other.pth")
    with pytest.raises(ConversionError, match="not a FaceFormer state dict"):
        convert_raising(fixture_args("vocaset", x, tmp_path / "other.pth"))
    # wav2vec2-base-960h's architecture (the default) does not fit the fixture's small wav2vec2
    args = fixture_args("biwi", x)
    with pytest.raises(ConversionError, match="hidden_size: weights 48, config 768.*--wav2vec2"):
        convert_raising(args[:-2])
    np.save(tmp_path / "t.npy", np.zeros((23, 3)))
    args[args.index("--template") + 1] = str(tmp_path / "t.npy")
    with pytest.raises(ConversionError, match="t.npy.*has 23 vertices, the checkpoint predicts 40"):
        convert_raising(args)
    with pytest.raises(ConversionError, match="not that of period 25"):  # a VOCASET file as BIWI
        convert_raising(fixture_args("biwi", x, FIX / "vocaset.pth"))
    with pytest.raises(ConversionError, match="--subjects names 2 subjects, the checkpoint has 8"):
        convert_raising([*fixture_args("vocaset", x), "--subjects", "A B"])
    state["vertice_map_r.weight"] = state["vertice_map_r.weight"][:90]  # 30 of 40 vertices
    del state["audio_feature_map.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        ConversionError, match=r"missing: audio.feature_map.bias; shape: out.weight"
    ):
        convert_raising(fixture_args("vocaset", x, tmp_path / "bad.pth"))


def test_long_audio_is_decoded_in_windows_with_a_chunked_wav2vec2(converted, wave):
    runner = Audio2MeshRunner(converted["vocaset"])
    full = runner.predict(wave, 16000)
    windowed = runner.predict(wave, 16000, window=20, history=8)
    assert windowed.shape == full.shape and np.isfinite(windowed).all()
    with torch.no_grad():  # chunks of at least the audio's length: one pass
        x = torch.from_numpy(normalise_wave(wave))[None]
        one = runner.model.encode(x)
        assert torch.equal(runner.model.encode(x, chunk_frames=59), one)
        chunked = runner.model.encode(x, chunk_frames=20)
    assert chunked.shape == one.shape and not torch.equal(chunked, one)


def make_dataset(path: Path, template: np.ndarray, fps: float, seconds=(2.0, 2.0, 1.5)) -> None:
    """A FLAME-layout dataset of the fixture mesh (40 vertices): three sequences of two speakers."""
    rng = np.random.default_rng(3)
    sr, disp, audio, f0, a0 = 16000, [], [], [0], [0]
    for k, s in enumerate(seconds):
        n = int(s * fps)
        t = np.arange(int(s * sr)) / sr
        audio.append((0.3 * np.sin(2 * np.pi * (150 + 50 * k) * t) * np.sin(3 * t)).astype("f4"))
        disp.append(0.01 * rng.standard_normal((n, len(template), 3)).astype("f4"))
        f0.append(f0[-1] + n)
        a0.append(a0[-1] + len(audio[-1]))
    split = np.zeros(f0[-1], np.uint8)
    split[f0[2] :] = 1
    save_npz(
        path,
        topology=np.array("flame"),
        disp=np.concatenate(disp),
        template=template.astype("f4"),
        audio=np.concatenate(audio),
        sample_rate=np.array(sr),
        fps=np.array(fps),
        seq_start=np.array(f0),
        seq_audio_start=np.array(a0),
        seq_speaker=np.array([0, 1, 0]),
        speakers=np.array([STYLE, "someone"]),
        split=split,
        mouth_index=np.arange(5),
        edges=np.zeros((0, 2), np.int64),
        info={"split": "test: the last sequence"},
    )


def test_the_training_stage_uses_or_finetunes_a_converted_model(converted, wave, tmp_path):
    data = tmp_path / "dataset.npz"
    make_dataset(data, np.load(FIX / "template_vocaset.npy"), 30.0)
    base = ["--twin", "t", "--dataset", str(data), "--threads", "1"]
    base += ["--pretrained", str(converted["vocaset"]), "--style", STYLE]
    used = tmp_path / "used.pt"
    assert (
        stage_main(train_audio2mesh.build_parser, train_audio2mesh.run, [*base, "--out", str(used)])
        == 0
    )
    runner = Audio2MeshRunner(used)
    assert runner.extra["default_speaker"] == STYLE and runner.meta["twin"] == "t"
    ref = Audio2MeshRunner(converted["vocaset"]).predict(wave, 16000, speaker=STYLE)
    assert np.array_equal(runner.predict(wave, 16000), ref)

    tuned = tmp_path / "tuned.pt"
    args = [*base, "--finetune", "--steps", "2", "--save-every", "5", "--out", str(tuned)]
    assert stage_main(train_audio2mesh.build_parser, train_audio2mesh.run, args) == 0
    after = load_checkpoint(tuned)
    before = load_checkpoint(converted["vocaset"])["modules"]["model"]
    state = after["modules"]["model"]
    assert after["meta"]["config"]["train_mode"] == "autoregressive"
    cnn = [k for k in state if ".feature_extractor." in k]
    assert cnn and all(torch.equal(state[k], before[k]) for k in cnn)  # frozen, as FaceFormer
    assert not torch.equal(state["out.weight"], before["out.weight"])
    assert not torch.equal(
        state["audio.wav2vec2.encoder.layers.0.attention.q_proj.weight"],
        before["audio.wav2vec2.encoder.layers.0.attention.q_proj.weight"],
    )  # wav2vec2's transformer is fine-tuned
    assert Audio2MeshRunner(tuned).predict(wave, 16000).shape == (59, 40, 3)

    metrics = tmp_path / "metrics.json"
    args = ["--twin", "t", "--dataset", str(data), "--audio2mesh", str(used)]
    assert (
        stage_main(evaluate_stage.build_parser, evaluate_stage.run, [*args, "--out", str(metrics)])
        == 0
    )
    scores = json.loads(metrics.read_text())
    for row in (scores["values"], scores["baselines"]["static"], scores["baselines"]["ridge"]):
        assert row["mesh_lip_vertex_error_mm"] > row["mesh_mouth_lmd_mm"] > 0  # max > mean
    assert scores["baselines"]["tracked"]["mesh_lip_vertex_error_mm"] == 0

    wrong = tmp_path / "wrong.npz"
    make_dataset(wrong, np.zeros((30, 3)), 30.0)
    args = ["--twin", "t", "--dataset", str(wrong), "--pretrained", str(converted["vocaset"])]
    with pytest.raises(InputError, match="predicts 40 vertices.*'t' dataset has 30"):
        train_audio2mesh.run(
            train_audio2mesh.build_parser().parse_args([*args, "--out", str(tmp_path / "w.pt")])
        )


def test_lip_vertex_error_alignment_and_faceformer_split():
    pred = np.zeros((2, 4, 3))
    target = np.zeros((2, 4, 3))
    target[0, 1, 0] = 0.003  # frame 0: largest lip error 3 mm; frame 1: 1 mm
    target[0, 2, 0] = 0.001
    target[1, 3, 1] = 0.001
    target[1, 0, 2] = 0.005  # not a lip vertex
    assert lip_vertex_error_mm(pred, target, np.array([1, 2, 3])) == pytest.approx(2.0)
    assert alignment_mask(3, 3, per_frame=1).equal(torch.eye(3, dtype=torch.bool))
    two = alignment_mask(2, 4, per_frame=2)
    assert two.tolist() == [[True, True, False, False], [False, False, True, True]]
    assert faceformer_part("vocaset", "FaceTalk_170728_03272_TA", "x_sentence05") == "train"
    assert faceformer_part("vocaset", "FaceTalk_170809_00138_TA", "x_sentence05") is None
    assert faceformer_part("vocaset", "FaceTalk_170809_00138_TA", "x_sentence25") == "test"
    assert faceformer_part("vocaset", "FaceTalk_170811_03275_TA", "x_sentence25") is None  # val
    assert (
        faceformer_part("biwi", "F2", "F2_e33") is None
        and faceformer_part("biwi", "M1", "M1_e40") == "test"
    )
    cfg = audio2mesh_preset("vocaset")
    assert (cfg.audio_per_frame, cfg.d_model, cfg.period, cfg.decoder) == (1, 64, 30, "faceformer")
    assert audio2mesh_preset("paper") == audio2mesh_preset("biwi")
    with pytest.raises(ValueError, match="audio_per_frame 1 needs"):
        audio2mesh_preset("tiny", {"audio_per_frame": 1})


def test_faceformer_split_of_a_vocaset_folder(tmp_path):
    """``--vocaset-split vocaset``: FaceFormer's subjects and sentence ranges, its one-hot order."""
    from tests.test_meshhead_flame import make_flame, make_vocaset
    from twinflow.meshhead import dataset as dataset_stage
    from twinflow.models import record

    registry = tmp_path / "models" / "registry.yaml"
    registry.parent.mkdir()
    registry.write_text(
        "models:\n  flame-2020:\n    file: flame/generic_model.pkl\n    sha256: null\n"
        "    licence: test\n    source: test\n    used_by: [twinflow.meshhead]\n"
    )
    template = make_flame(registry.parent / "flame" / "generic_model.pkl")
    record("flame-2020", registry)
    train, test = "FaceTalk_170725_00137_TA", "FaceTalk_170731_00024_TA"
    make_vocaset(tmp_path / "v", template, subjects=(train, test))
    for s in (1, 2, 3):  # sentences 01-03: training subject's are train, test subject's unused
        for kind, ext in (("wav", "wav"), ("vertices_npy", "npy")):
            src = tmp_path / "v" / kind / f"{test}_sentence{s:02d}.{ext}"
            src.rename(src.with_name(f"{test}_sentence{20 + s:02d}.{ext}"))
    out = tmp_path / "d.npz"
    args = ["--twin", "v", "--topology", "flame", "--vocaset", str(tmp_path / "v")]
    args += ["--vocaset-split", "vocaset", "--style", train, "--registry", str(registry)]
    args += ["--fps", "30", "--out", str(out)]
    assert stage_main(dataset_stage.build_parser, dataset_stage.run, args) == 0
    ds = load_npz(out)
    assert list(ds["speakers"])[2] == train and len(ds["speakers"]) == 8
    assert len(ds["seq_start"]) == 1 + 6 and (ds["seq_speaker"] == 2).all()
    assert ds["split"].sum() == 3 * 36 and (ds["split"][: 3 * 36] == 0).all()
    make_vocaset(tmp_path / "w", template, subjects=(test,))
    args[args.index(str(tmp_path / "v"))] = str(tmp_path / "w")
    with pytest.raises(InputError, match="no sentence of FaceFormer's vocaset training subjects"):
        dataset_stage.run(dataset_stage.build_parser().parse_args(args))


def test_paper_size_models_have_faceformers_parameter_counts():
    """The vocaset and biwi presets at full size (wav2vec2-base-960h's architecture inside):
    the parameters FaceFormer's modules have, and a second of audio decodes."""
    from twinflow.meshhead.audio2mesh_bench import SETUPS, build

    for preset, (n_vertices, n_subjects, _) in SETUPS.items():
        model, _ = build(preset, torch.device("cpu"))
        d, v3 = model.cfg.d_model, 3 * n_vertices
        decoder = 2 * (4 * d * d + 4 * d) + (d * 2 * d + 2 * d) + (2 * d * d + d) + 3 * 2 * d
        faceformer = (768 * d + d) + (v3 * d + d) + (d * v3 + v3) + n_subjects * d + decoder
        wav2vec2 = sum(p.numel() for p in model.audio.wav2vec2.parameters())
        assert wav2vec2 == 94_371_712  # facebook/wav2vec2-base-960h's Wav2Vec2Model
        assert sum(p.numel() for p in model.parameters()) == wav2vec2 + faceformer
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        assert frozen == sum(p.numel() for p in model.audio.wav2vec2.feature_extractor.parameters())
    with torch.no_grad():  # the last one built: biwi, 2:1 at 25 fps
        memory = model.encode(torch.randn(1, 16000))
        assert memory.shape == (1, 48, 128)
        out = rollout(model.eval(), memory, 24, None, torch.zeros(1, dtype=torch.long))
    assert out.shape == (1, 24, 70110) and torch.isfinite(out).all()


def test_training_from_scratch_starts_from_the_registry_wav2vec2(tmp_path):
    """``--preset vocaset`` without --pretrained: FaceFormer's ``from_pretrained`` is the
    registry's wav2vec2-base-960h folder (here a small random one saved by transformers)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from twinflow.models import record

    config = json.loads((FIX / "wav2vec2_config.json").read_text())
    w2v = Wav2Vec2Model(Wav2Vec2Config.from_dict(config))
    w2v.save_pretrained(tmp_path / "models" / "wav2vec2-base-960h")
    registry = tmp_path / "models" / "registry.yaml"
    registry.write_text(
        "models:\n  wav2vec2-base-960h:\n    file: wav2vec2-base-960h\n    sha256: null\n"
        "    licence: Apache-2.0\n    source: test\n    used_by: [twinflow.meshhead]\n"
    )
    record("wav2vec2-base-960h", registry)
    data = tmp_path / "dataset.npz"
    make_dataset(data, np.load(FIX / "template_vocaset.npy"), 30.0, seconds=(1.0, 1.0, 1.0))
    out = tmp_path / "a2m.pt"
    args = ["--twin", "t", "--dataset", str(data), "--preset", "vocaset", "--steps", "1"]
    args += ["--registry", str(registry), "--threads", "1", "--out", str(out)]
    assert stage_main(train_audio2mesh.build_parser, train_audio2mesh.run, args) == 0
    ckpt = load_checkpoint(out)
    state = ckpt["modules"]["model"]
    start = w2v.state_dict()
    cnn = [k for k in start if k.startswith("feature_extractor.")]
    assert all(torch.equal(state[f"audio.wav2vec2.{k}"], start[k]) for k in cnn)
    assert ckpt["meta"]["wav2vec2_config"]["hidden_size"] == 48
    assert ckpt["meta"]["config"]["train_mode"] == "autoregressive"
    assert ckpt["extra"]["basis"]["scale"].tolist() == [1.0]  # offsets in metres
    assert Audio2MeshRunner(out).predict(np.load(FIX / "audio.npy"), 16000).shape == (59, 40, 3)
