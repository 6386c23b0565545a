"""The FLAME topology with generated files: a FLAME-format ``generic_model.pkl`` (5023 vertices,
9976 faces, chumpy-pickled shapedirs as in the original release) and a VOCASET-format folder
(FaceFormer's layout). Checks loading, vertex counts, the registry checksum and a few training
and decoding steps; the FLAME files themselves are licence-restricted and never ship."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from twinflow.cli import stage_main
from twinflow.errors import ModelFileError
from twinflow.media.audio import write_wav
from twinflow.meshhead import dataset as dataset_stage
from twinflow.meshhead import infer as infer_stage
from twinflow.meshhead import train_audio2mesh
from twinflow.meshhead.common import load_npz
from twinflow.meshhead.fixtures import speech_like
from twinflow.meshhead.topology import FLAME_VERTICES, load_flame
from twinflow.models import record, resolve

N_FACES = 9976


def _chumpy_array(values: np.ndarray):
    """An object that pickles as ``chumpy.ch.Ch`` with its array in ``x`` (as FLAME's files)."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), ch
    obj = Ch()
    obj.x = values
    return obj, saved


def make_flame(path, n_shape: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = (rng.normal(size=(FLAME_VERTICES, 3)) * 0.05).astype(np.float64)
    weights = rng.random((FLAME_VERTICES, 5))
    shapedirs, saved = _chumpy_array(rng.normal(size=(FLAME_VERTICES, 3, n_shape)) * 1e-3)
    model = {
        "v_template": v,
        "f": rng.integers(0, FLAME_VERTICES, size=(N_FACES, 3)).astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": rng.normal(size=(FLAME_VERTICES, 3, 36)) * 1e-3,
        "J_regressor": scipy.sparse.csc_matrix(rng.random((5, FLAME_VERTICES)) / FLAME_VERTICES),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as fh:
            pickle.dump(model, fh, protocol=2)
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    return v


def make_vocaset(folder, template: np.ndarray, subjects=("FaceTalk_A", "FaceTalk_B")) -> None:
    rng = np.random.default_rng(1)
    (folder / "wav").mkdir(parents=True)
    (folder / "vertices_npy").mkdir()
    templates = {}
    for k, subject in enumerate(subjects):
        templates[subject] = template + rng.normal(size=template.shape) * 1e-3
        for s in range(3):
            name = f"{subject}_sentence{s + 1:02d}"
            samples = speech_like(1.2, 16000, seed=10 * k + s)
            write_wav(folder / "wav" / f"{name}.wav", samples, 16000)
            frames = int(1.2 * 60)
            jaw = np.interp(
                np.arange(frames) / 60, np.arange(len(samples)) / 16000, np.abs(samples)
            )
            motion = jaw[:, None, None] * rng.normal(size=(1, FLAME_VERTICES, 3)) * 0.01
            np.save(
                folder / "vertices_npy" / f"{name}.npy",
                (templates[subject] + motion).reshape(frames, -1),
            )
    with (folder / "templates.pkl").open("wb") as fh:
        pickle.dump(templates, fh)


@pytest.fixture()
def flame_files(tmp_path):
    registry = tmp_path / "models" / "registry.yaml"
    registry.parent.mkdir()
    registry.write_text(
        "models:\n  flame-2020:\n    file: flame/generic_model.pkl\n    sha256: null\n"
        "    licence: FLAME model licence\n    source: generated for the test\n"
        "    used_by: [twinflow.meshhead]\n"
    )
    template = make_flame(registry.parent / "flame" / "generic_model.pkl")
    make_vocaset(tmp_path / "vocaset", template)
    return registry, tmp_path / "vocaset"


def test_flame_model_loads_without_chumpy(flame_files):
    registry, _ = flame_files
    assert "chumpy" not in sys.modules
    flame = load_flame(registry.parent / "flame" / "generic_model.pkl")
    assert flame["v_template"].shape == (FLAME_VERTICES, 3)
    assert flame["f"].shape == (N_FACES, 3)
    assert flame["shapedirs"].shape == (FLAME_VERTICES, 3, 20)  # read from the chumpy stand-in
    assert flame["J_regressor"].shape == (5, FLAME_VERTICES)


def test_flame_path_builds_trains_and_decodes_5023_vertices(flame_files, tmp_path):
    registry, vocaset = flame_files
    with pytest.raises(ModelFileError, match="no recorded checksum"):
        resolve("flame-2020", registry)
    record("flame-2020", registry)
    data = tmp_path / "dataset.npz"
    args = ["--twin", "flametwin", "--topology", "flame", "--vocaset", str(vocaset)]
    args += ["--vocaset-fps", "60", "--registry", str(registry), "--out", str(data)]
    assert stage_main(dataset_stage.build_parser, dataset_stage.run, args) == 0
    ds = load_npz(data)
    assert str(ds["topology"]) == "flame" and ds["disp"].shape[1:] == (FLAME_VERTICES, 3)
    assert list(ds["speakers"]) == ["FaceTalk_A", "FaceTalk_B"]
    assert len(ds["seq_start"]) == 7 and ds["disp"].shape[0] == 6 * 30  # 1.2 s at 25 fps each
    assert ds["split"].sum() == 2 * 30  # the last sentence of each subject
    assert len(ds["mouth_index"]) == round(0.05 * FLAME_VERTICES) and len(ds["edges"]) > N_FACES
    model = tmp_path / "audio2mesh.pt"
    args = ["--twin", "flametwin", "--dataset", str(data), "--steps", "3", "--threads", "1"]
    args += ["--set", "d_model=16", "--set", "audio_channels=16", "--set", "eval_every=3"]
    args += ["--out", str(model)]
    assert stage_main(train_audio2mesh.build_parser, train_audio2mesh.run, args) == 0
    mesh = tmp_path / "mesh.npz"
    wav = tmp_path / "drive.wav"
    write_wav(wav, speech_like(2.0, seed=7), 16000)
    args = ["--render", "r", "--model", str(model), "--audio", str(wav), "--speaker", "FaceTalk_B"]
    args += ["--threads", "1", "--out", str(mesh)]
    assert stage_main(infer_stage.build_parser, infer_stage.run, args) == 0
    out = load_npz(mesh)
    assert out["vertices"].shape == (50, FLAME_VERTICES, 3) and str(out["topology"]) == "flame"
