"""Mocap with the smplx backend on a generated SMPL-X-format model file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.mocap_helpers import ground_truth, observe, write_perception
from twinflow.cli import stage_main
from twinflow.errors import ModelFileError
from twinflow.mocap import skeleton
from twinflow.mocap.body_models import load_body_model, synthetic_smplx
from twinflow.mocap.body_models.smplx_backend import point_index

pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return synthetic_smplx.write(tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="module")
def body(model_file):
    torch.set_num_threads(1)
    return load_body_model("smplx", smplx_model=model_file)


def test_synthetic_model_has_the_smplx_layout(model_file):
    with np.load(model_file) as d:
        assert d["v_template"].shape == (10475, 3)
        assert d["J_regressor"].shape == (55, 10475)
        assert d["weights"].shape == (10475, 55)
        assert d["posedirs"].shape == (10475, 3, 486)
        assert d["lmk_faces_idx"].shape == (51,)
        assert np.allclose(d["weights"].sum(1), 1)
        assert d["f"].max() < 10475


def test_smplx_common_skeleton_mapping(body):
    idx = point_index()
    assert len(idx) == skeleton.N_POINTS and body.point_defined.all()
    named = dict(zip(skeleton.POINTS, idx, strict=True))
    assert named["pose/left_shoulder"] == 16 and named["pose/right_hip"] == 2
    assert named["lhand/wrist"] == 20 and named["rhand/index_mcp"] == 40
    assert named["lhand/thumb_tip"] == 66 and named["face/ibug17"] == 76
    with torch.no_grad():
        out = body(torch.zeros(2, 55, 3), torch.zeros(2, 3), torch.zeros(10))
    assert out["points"].shape == (2, skeleton.N_POINTS, 3)
    assert out["kin"].shape == (2, skeleton.N_KIN, 3)
    p = out["points"][0].numpy()
    # left is +x in SMPL-X's rest frame
    assert p[skeleton.POINTS.index("pose/left_wrist"), 0] > 0.3
    assert p[skeleton.POINTS.index("pose/right_wrist"), 0] < -0.3


def test_wrong_model_file_is_reported(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, v_template=np.zeros((3, 3)))
    with pytest.raises(ModelFileError, match="SMPL-X"):
        load_body_model("smplx", smplx_model=bad)


def test_fit_stage_writes_smplx_npz(body, model_file, tmp_path):
    """The fit stage on perception-format files, with the SMPL-X add-on's keys in the output."""
    from twinflow.mocap import fit as fit_stage

    pose, transl, shape = ground_truth(body, n_frames=5, seed=2)
    obs = observe(body, pose, transl, shape)
    folder = write_perception(tmp_path / "perception", obs, 5)
    out = tmp_path / "person0.npz"

    rc = stage_main(
        fit_stage.build_parser,
        fit_stage.run,
        [
            "--twin", "t", "--meta", str(folder / "meta.json"), "--body",
            str(folder / "body.npz"), "--face", str(folder / "face.npz"), "--backend", "smplx",
            "--smplx-model", str(model_file), "--set", "iters_global=3", "--set",
            "iters_body=5", "--set", "iters_full=4", "--threads", "1", "--out", str(out),
        ],
    )  # fmt: skip
    assert rc == 0
    with np.load(out) as d:
        assert d["betas"].shape == (10,)
        assert d["poses"].shape == (5, 55, 3)
        assert d["trans"].shape == (5, 3)
        assert d["expression"].shape == (5, 10)
        assert str(d["gender"]) == "neutral"
        assert float(d["mocap_framerate"]) == float(d["fps"]) == 25.0
        assert d["bbox"].shape == (5, 4)
        assert d["joints2d"].shape == (5, skeleton.N_POINTS, 2)
        assert np.isfinite(d["poses"]).all() and np.isfinite(d["trans"]).all()
        info = json.loads(str(d["info"]))
        assert np.nanmedian(d["reproj_px"]) < 0.5 * np.median(
            np.linalg.norm(d["init_joints2d"] - obs.xy, axis=-1)
        )
    assert info["body_model"]["backend"] == "smplx"
    assert info["smplx_model"] == str(model_file)


def test_no_person_is_an_input_error(tmp_path):
    from twinflow.errors import InputError
    from twinflow.mocap.skeleton import load_observations

    folder = write_perception(tmp_path, None, 12)
    with pytest.raises(InputError, match="no person to fit") as err:
        load_observations(
            folder / "body.npz", folder / "face.npz", width=512, height=512, fps=25, source="in.mp4"
        )
    assert "in.mp4" in str(err.value)
