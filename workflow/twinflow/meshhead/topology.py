"""Face topologies, pose-free motion targets, FLAME and VOCASET loading, and re-posing.

Topology is a parameter of the pipeline (``config.yaml: meshhead: topology``):

``mediapipe468`` (default)
    The 468 face-mesh points of the perception stage (``face.npz``; the iris points 468-477 are
    dropped). Each frame's landmarks are aligned to the twin's rigid template (``template.npz``)
    by a similarity transform (Umeyama) fitted on the template's rigid points only, so lips and
    jaw do not pull the alignment; the training target is the displacement of the aligned points
    from the template, in metres, in the template's head frame (pose-free).
``flame``
    FLAME's 5023 vertices: the user supplies the FLAME model (``models/flame/generic_model.pkl``,
    registry name ``flame-2020``) and VOCASET-format data (FaceFormer's processed layout:
    ``wav/<subject>_<sentence>.wav``, ``vertices_npy/<subject>_<sentence>.npy`` of shape
    ``(frames, 5023*3)`` in metres at ``fps`` (60 for VOCASET), ``templates.pkl``:
    ``{subject: (5023, 3)}``). Targets are vertices minus the subject's template.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinflow.errors import InputError
from twinflow.perception.landmarks import IBUG68, LIPS_INNER, LIPS_OUTER

MEDIAPIPE = "mediapipe468"
FLAME = "flame"
TOPOLOGIES = (MEDIAPIPE, FLAME)
N_MESH = 468
FLAME_VERTICES = 5023

MOUTH = sorted(set(LIPS_OUTER) | set(LIPS_INNER))
# Face-mesh points that drive the head warp: lips (outer and inner), chin and jaw line, nose,
# eye corners and lids, brows, face sides and forehead.
WARP_POINTS = [
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips
    152, 148, 377, 176, 400, 172, 397, 136, 365,  # chin, jaw
    1, 4, 168, 98, 327,  # nose
    33, 133, 159, 145, 362, 263, 386, 374,  # eyes
    70, 105, 107, 336, 334, 300,  # brows
    234, 454, 93, 323, 10, 109, 338,  # face sides, forehead
]  # fmt: skip
WARP_MOUTH = list(range(20))  # positions of the lip points in WARP_POINTS


def warp_points(kind: str) -> list[int]:
    if kind == "subset":
        return list(WARP_POINTS)
    if kind == "ibug68":
        return list(IBUG68)
    raise ValueError(f"warp keypoints '{kind}' is not 'subset' or 'ibug68'")


def warp_mouth_positions(kind: str) -> list[int]:
    """Positions of lip points within :func:`warp_points`."""
    points = warp_points(kind)
    return [i for i, p in enumerate(points) if p in MOUTH]


# --- similarity alignment ---------------------------------------------------------------------


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity ``dst ~ s R src + t`` per frame: ``src (N, K, 3)``, ``dst (K, 3)``.

    Returns ``s (N,)``, ``R (N, 3, 3)``, ``t (N, 3)`` (least squares, Umeyama 1991).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = src.mean(axis=1, keepdims=True)
    mu_d = dst.mean(axis=0)
    xs = src - mu_s
    xd = dst - mu_d
    cov = np.einsum("kd,nke->nde", xd, xs) / src.shape[1]
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((len(src), 3))
    d[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ (d[:, :, None] * vt)
    var = (xs**2).sum(axis=(1, 2)) / src.shape[1]
    scale = (sig * d).sum(axis=1) / np.maximum(var, 1e-12)
    trans = mu_d - scale[:, None] * np.einsum("nde,ne->nd", rot, mu_s[:, 0])
    return scale, rot, trans


def align_to_template(
    landmarks: np.ndarray, template: np.ndarray, rigid_index: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pose-free mesh points: ``landmarks (T, >=468, 3)`` (pixels, mediapipe depth) mapped into
    the template's head frame by the similarity fitted on ``rigid_index`` points.

    Returns ``aligned (T, 468, 3)`` metres and the transforms ``{"scale", "R", "t"}``.
    """
    rigid = np.asarray(rigid_index, int)
    scale, rot, trans = umeyama(landmarks[:, rigid], template[rigid])
    pts = landmarks[:, :N_MESH].astype(np.float64)
    aligned = scale[:, None, None] * np.einsum("nde,nke->nkd", rot, pts) + trans[:, None]
    return aligned.astype(np.float32), {"scale": scale, "R": rot, "t": trans}


# --- re-posing and crops ----------------------------------------------------------------------


def project(points: np.ndarray, rot: np.ndarray, trans: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pinhole projection of head-frame ``points (T, V, 3)`` posed by ``rot (T, 3, 3)``,
    ``trans (T, 3)`` (``x_cam = R X + t``, OpenCV axes) with intrinsics ``k`` -> ``(T, V, 2)`` px."""
    cam = np.einsum("tde,tve->tvd", rot, points) + trans[:, None]
    z = np.maximum(cam[..., 2:3], 1e-6)
    uv = cam[..., :2] / z
    return (uv * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])).astype(np.float32)


@dataclass(frozen=True)
class Crop:
    """A square crop ``(x0, y0, side)`` of a frame in pixels (may extend past the frame)."""

    x0: float
    y0: float
    side: float

    def to_unit(self, px: np.ndarray) -> np.ndarray:
        """Pixels of the frame -> ``[-1, 1]`` coordinates of the crop (``grid_sample`` with
        ``align_corners=False``)."""
        out = (np.asarray(px, np.float64) - [self.x0, self.y0]) / self.side * 2 - 1
        return out.astype(np.float32)

    def to_pixels(self, unit: np.ndarray, size: int) -> np.ndarray:
        """``[-1, 1]`` crop coordinates -> pixels of the crop resized to ``size``."""
        return ((np.asarray(unit, np.float64) + 1) / 2 * size).astype(np.float32)

    def as_list(self) -> list[float]:
        return [float(self.x0), float(self.y0), float(self.side)]


def head_crop(points_2d: np.ndarray, scale: float, shift: float) -> Crop:
    """One square crop for all frames: centred on the median face-mesh box centre, moved up by
    ``shift x side``, side ``scale x`` the median larger box extent. ``points_2d (T, V, 2)``."""
    lo, hi = points_2d.min(axis=1), points_2d.max(axis=1)
    centre = np.median((lo + hi) / 2, axis=0)
    side = scale * float(np.median((hi - lo).max(axis=1)))
    cx, cy = centre[0], centre[1] - shift * side
    return Crop(float(cx - side / 2), float(cy - side / 2), side)


def crop_frame(rgb: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Cut ``crop`` out of ``rgb`` (edge pixels repeated outside the frame), resized to ``size``."""
    import cv2

    m = np.array(
        [
            [size / crop.side, 0, -crop.x0 * size / crop.side],
            [0, size / crop.side, -crop.y0 * size / crop.side],
        ]
    )
    interp = cv2.INTER_AREA if crop.side > size else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


# --- FLAME and VOCASET --------------------------------------------------------------------------


class _Stub:
    """Stands in for chumpy objects inside FLAME pickles (chumpy is not installed)."""

    def __init__(self, *args, **kwargs):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __array__(self, dtype=None, copy=None):
        state = self.state
        if isinstance(state, dict):
            for key in ("x", "a", "_x"):
                if key in state:
                    return np.asarray(state[key], dtype=dtype)
        raise TypeError("cannot read a chumpy object of this FLAME file without chumpy")


class _FlameUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("chumpy"):
            return _Stub
        return super().find_class(module, name)


def load_flame(path: str | Path) -> dict[str, np.ndarray]:
    """FLAME's ``generic_model.pkl`` as numpy arrays (``v_template (5023, 3)``, ``f (9976, 3)``,
    ``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``).

    Reads the original file (a latin-1 pickle whose arrays may be chumpy objects) without chumpy.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = _FlameUnpickler(fh, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise InputError(f"cannot read the FLAME model ({err})", path=path) from err
    if not isinstance(raw, dict) or "v_template" not in raw or "f" not in raw:
        raise InputError("not a FLAME model (a dict with v_template and f expected)", path=path)
    out = {}
    for key, value in raw.items():
        if hasattr(value, "toarray"):  # scipy sparse J_regressor
            value = value.toarray()
        try:
            out[key] = np.asarray(value)
        except TypeError:
            continue
    v = out["v_template"]
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"FLAME v_template has shape {v.shape}, expected (V, 3)", path=path)
    if out["f"].max() >= len(v):
        raise InputError("FLAME faces index vertices that do not exist", path=path)
    return out


# FaceFormer's data splits (github:EvelynFan/FaceFormer: main.py's subject lists and the
# README's commands, data_loader.py's sentence ranges, both ends included). One-hot styles are
# the training subjects in this order; a sentence is the file name's last two digits.
FACEFORMER_SPLITS = {
    "vocaset": {
        "train": ["FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA",
                  "FaceTalk_170725_00137_TA", "FaceTalk_170915_00223_TA",
                  "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
                  "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA"],
        "val": ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"],
        "test": ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"],
        "sentences": {"train": (1, 40), "val": (21, 40), "test": (21, 40)},
    },
    "biwi": {
        "train": ["F2", "F3", "F4", "M3", "M4", "M5"],
        "val": ["F2", "F3", "F4", "M3", "M4", "M5"],
        "test": ["F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6"],
        "sentences": {"train": (1, 32), "val": (33, 36), "test": (37, 40)},
    },
}  # fmt: skip


def faceformer_part(split: str, subject: str, name: str) -> str | None:
    """``"train"``, ``"test"`` or None (validation or unused) for the sequence ``name`` (file
    stem) of ``subject`` under FaceFormer's ``split`` (``"vocaset"`` or ``"biwi"``)."""
    table = FACEFORMER_SPLITS[split]
    try:
        sentence = int(name[-2:])
    except ValueError:
        return None
    for part in ("train", "test"):
        lo, hi = table["sentences"][part]
        if subject in table[part] and lo <= sentence <= hi:
            return part
    return None


def load_vocaset(
    folder: str | Path, fps_in: float, fps_out: float, n_vertices: int, sample_rate: int
) -> list[dict]:
    """VOCASET sequences in FaceFormer's processed layout (see the module docstring), resampled
    to ``fps_out``: ``[{"subject", "sentence", "disp" (T, V, 3), "template" (V, 3), "audio"}]``."""
    from twinflow.media.audio import load_audio

    folder = Path(folder)
    tpl_path = folder / "templates.pkl"
    if not tpl_path.exists():
        raise InputError("VOCASET folder has no templates.pkl", path=folder)
    with tpl_path.open("rb") as fh:
        templates = pickle.load(fh, encoding="latin1")
    seqs = []
    for npy in sorted((folder / "vertices_npy").glob("*.npy")):
        subject, _, sentence = npy.stem.rpartition("_")
        if subject not in templates:
            subject = npy.stem.split("_sentence")[0]
        wav = folder / "wav" / f"{npy.stem}.wav"
        if subject not in templates or not wav.exists():
            continue
        verts = np.load(npy).reshape(-1, n_vertices, 3).astype(np.float32)
        template = np.asarray(templates[subject], np.float32).reshape(n_vertices, 3)
        t_in = np.arange(len(verts)) / fps_in
        n_out = max(1, int(np.floor(t_in[-1] * fps_out)) + 1)
        t_out = np.arange(n_out) / fps_out
        idx = np.clip(np.searchsorted(t_in, t_out) - 1, 0, len(verts) - 2) if len(verts) > 1 else 0
        if len(verts) > 1:
            w = ((t_out - t_in[idx]) * fps_in).clip(0, 1)[:, None, None]
            verts = (1 - w) * verts[idx] + w * verts[idx + 1]
        seqs.append(
            {
                "subject": subject,
                "sentence": npy.stem,
                "disp": (verts - template).astype(np.float32),
                "template": template,
                "audio": load_audio(wav, sample_rate),
            }
        )
    if not seqs:
        raise InputError(
            "no usable VOCASET sequences (vertices_npy/*.npy with wav/*.wav and a template)",
            path=folder,
        )
    bad = {s["disp"].shape[1] for s in seqs} - {n_vertices}
    if bad:
        raise InputError(f"VOCASET meshes have {bad} vertices, the model {n_vertices}", path=folder)
    return seqs


def mouth_index(
    topology: str, disp: np.ndarray | None = None, fraction: float = 0.05
) -> np.ndarray:
    """Mouth points: the lips of the face mesh; for FLAME (no lip list ships) the ``fraction``
    of vertices that move most in the training displacements ``disp (T, V, 3)``."""
    if topology == MEDIAPIPE:
        return np.array(MOUTH)
    if disp is None:
        raise ValueError("FLAME mouth vertices are chosen from training motion: pass disp")
    motion = np.linalg.norm(disp - disp.mean(axis=0), axis=-1).mean(axis=0)
    k = max(1, int(round(fraction * disp.shape[1])))
    return np.sort(np.argsort(motion)[-k:])
