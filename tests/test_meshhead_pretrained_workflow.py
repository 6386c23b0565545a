"""``meshhead: pretrained:`` in the workflow: a FaceFormer checkpoint converted with ``python -m
twinflow.convert faceformer`` (the parity fixture, 40 vertices) drives a FLAME-topology project
whose VOCASET-format data and "FLAME" model have the same 40 vertices: the plan (fine-tuning and
FaceFormer's split at 30 fps) and a real run (the model used as is: dataset, metrics with the lip
vertex error, the driving audio's meshes at 30 fps)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import make_project, snakemake
from twinflow.convert.__main__ import main as convert_main
from twinflow.media.audio import write_wav
from twinflow.meshhead.fixtures import speech_like
from twinflow.models import record

FIX = Path(__file__).parent / "fixtures" / "meshhead" / "faceformer"
TRAIN, TEST = "FaceTalk_170725_00137_TA", "FaceTalk_170809_00138_TA"  # FaceFormer's subjects


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ff_project")
    template = np.load(FIX / "template_vocaset.npy")
    rng = np.random.default_rng(0)
    models = root / "models"
    (models / "flame").mkdir(parents=True)
    faces = np.stack([np.arange(38), np.arange(1, 39), np.arange(2, 40)], 1)
    with (models / "flame" / "generic_model.pkl").open("wb") as fh:
        pickle.dump({"v_template": template.astype(np.float64), "f": faces}, fh)
    registry = models / "registry.yaml"
    registry.write_text(
        "models:\n  flame-2020:\n    file: flame/generic_model.pkl\n    sha256: null\n"
        "    licence: test\n    source: a 40-vertex stand-in\n    used_by: [twinflow.meshhead]\n"
    )
    record("flame-2020", registry)
    voca = root / "vocaset"
    (voca / "wav").mkdir(parents=True)
    (voca / "vertices_npy").mkdir()
    for k, name in enumerate([f"{TRAIN}_sentence01", f"{TRAIN}_sentence02", f"{TEST}_sentence21"]):
        write_wav(voca / "wav" / f"{name}.wav", speech_like(1.5, seed=k), 16000)
        motion = 0.005 * rng.standard_normal((90, 40, 3))
        np.save(voca / "vertices_npy" / f"{name}.npy", (template + motion).reshape(90, -1))
    with (voca / "templates.pkl").open("wb") as fh:
        pickle.dump({TRAIN: template, TEST: template + 0.001}, fh)
    converted = root / "faceformer_vocaset.pt"
    args = ["faceformer", str(FIX / "vocaset.pth"), "--preset", "vocaset", "--out", str(converted)]
    args += ["--template", str(FIX / "template_vocaset.npy")]
    assert convert_main([*args, "--wav2vec2-config", str(FIX / "wav2vec2_config.json")]) == 0
    (root / "media").mkdir()
    (root / "media" / "talk.mp4").write_bytes(b"")  # the FLAME path never reads the twin's video
    write_wav(root / "media" / "speech.wav", speech_like(2.0, seed=9), 16000)
    config = {
        "models": {"registry": str(registry), "root": str(models)},
        "meshhead": {
            "topology": "flame",
            "flame": {"data": str(voca), "split": "vocaset", "motion_fps": 30, "style": TRAIN},
            "pretrained": str(converted),
        },
    }
    twins = [{"twin_id": "demo", "video": "media/talk.mp4"}]
    renders = [
        {"render_id": "r", "twin_id": "demo", "pipeline": "meshhead"}
        | {"driving_audio": "media/speech.wav"}
    ]
    make_project(root, twins, renders, config)
    return root


def test_plan_fine_tunes_a_converted_model_on_faceformers_split(project, tmp_path):
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg["meshhead"].update(finetune=True, audio2mesh_preset="vocaset")
    other = tmp_path / "p"
    (other / "config").mkdir(parents=True)
    for name in ("twins.tsv", "renders.tsv"):
        (other / "config" / name).write_text((project / "config" / name).read_text())
    (other / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (other / "media").symlink_to(project / "media")
    out = snakemake(other, "-n", "-p", "results/renders/r.mp4").stdout
    assert "--vocaset-split vocaset --style FaceTalk_170725_00137_TA" in out
    assert "--fps 30" in out and "meshhead_train_warp" not in out
    train = next(line for line in out.splitlines() if "train_audio2mesh --twin" in line)
    assert "--preset vocaset" in train and "--finetune" in train
    assert "--pretrained " + str(project / "faceformer_vocaset.pt") in train


@pytest.mark.slow
def test_a_converted_model_renders_and_is_evaluated_without_training(project):
    snakemake(project, "results/drive/r/meshhead/mesh.npz", "results/demo/meshhead/metrics.json")
    log = (project / "logs" / "meshhead_train_audio2mesh" / "demo.log").read_text()
    assert "used as is" in log
    metrics = json.loads((project / "results/demo/meshhead/metrics.json").read_text())
    assert metrics["values"]["mesh_lip_vertex_error_mm"] > 0
    assert set(metrics["baselines"]) == {"static", "ridge", "tracked"}
    mesh = np.load(project / "results/drive/r/meshhead/mesh.npz")
    assert mesh["vertices"].shape == (59, 40, 3) and float(mesh["fps"]) == 30.0
