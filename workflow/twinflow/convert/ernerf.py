"""ER-NeRF (Fictionarry/ER-NeRF) workspace + data folder -> a twinflow nerf model folder.

``python -m twinflow.convert ernerf WORKSPACE_OR_PTH --data DATA_DIR --out DIR [--head PTH]``

``SOURCE`` is ER-NeRF's torso workspace (``checkpoints/ngp.pth``, else the newest
``ngp_ep*.pth``), one of its ``.pth`` files, or a ``models/registry.yaml`` name (ER-NeRF's
released Obama models: ``ernerf-obama-torso``, ``ernerf-obama-head``). A torso checkpoint holds the head too (ER-NeRF
loads the head into the torso model and freezes it); ``--head`` takes the head from another
file (a head workspace or ``.pth``), e.g. to import a head-only model with ``SOURCE`` = the head.

``DATA_DIR`` is the folder ER-NeRF trained on (its ``data_utils/process.py`` output):
``transforms_train.json``, ``transforms_val.json``, ``au.csv``, ``bc.jpg``, the audio features
(``aud_ds.npy``, ``aud_eo.npy`` or ``aud_hu.npy``, whichever matches the model's audio network),
and, optional, ``gt_imgs/``, ``parsing/`` and ``ori_imgs/*.lms`` (frames and labels for
evaluation or fine-tuning).

``DIR`` receives what the nerf rules read (``config.yaml: nerf: pretrained: {TWIN: DIR}``):

==========================  ==================================================================
``lips.pt``                 the head, :class:`twinflow.nerf.network.HeadField` in the ``paper``
                            preset (ER-NeRF's model) with the table sizes of the checkpoint
``torso.pt``                the torso, :class:`twinflow.nerf.network.ErnerfTorso` (when present)
``dataset.npz``             cameras, intrinsics, box, blink, background (``nerf.dataset``'s
                            layout), in ER-NeRF's frame: its ``nerf_matrix_to_ngp`` (axes
                            permuted, camera positions x ``--scale``, + ``--offset``), the box
                            ``[-b, -b/2, -b, b, b/2, b]`` of its ``bound`` (from ``aabb_train``)
``audio_features.npz``      the twin's own audio features, one window per frame (``aud_id``)
``frames.mkv``              ``gt_imgs`` with labels from ``parsing`` (when both are present)
``import.json``             sources, sizes, feature kind, what was imported
==========================  ==================================================================

Frame ``k`` of the dataset is the ``k``-th frame of ``transforms_train.json`` then
``transforms_val.json``; the per-frame codes keep ER-NeRF's rows (row ``k`` = ``k``-th training
frame), and frames not trained on use row 0, as ER-NeRF does at test time. The blink is
``clip(AU45_r, 0, 2) / 2`` of ``au.csv`` (ER-NeRF's ``eye_area``).

Audio feature kinds (from the width of ``audio_net.encoder_conv.0``): 29 ``deepspeech``
(``aud_ds.npy``, ``[N, 16, 29]``), 44 ``esperanto`` (``aud_eo.npy``, ``[N, 16, 44]``), 1024
``hubert_ernerf`` (``aud_hu.npy``, ``[N, 2, 1024]``). Driving audio for a render of an imported
twin comes as a file of the same layout (``features=PATH`` in the render's options).

Not supported (a clear error): ``--emb`` models (an audio embedding), ``--bound`` above 1 (more
than one density-grid cascade), images that are not square, ``--att 1`` cannot be told from a
checkpoint (``--att`` says which window the model was trained with; 2, ER-NeRF's default).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinflow.convert import ConversionError, check_state_dict, load_reference, rename_keys

log = logging.getLogger("twinflow.convert.ernerf")

AUDIO_KINDS = {29: ("deepspeech", "aud_ds.npy"), 44: ("esperanto", "aud_eo.npy"),
               1024: ("hubert_ernerf", "aud_hu.npy"), 32: ("ernerf_aud", "aud.npy")}  # fmt: skip
MLP_LAYERS = [(rf"\.net\.{k}\.", f".{2 * k}.") for k in range(3)]  # ER-NeRF MLP -> nn.Sequential
HEAD_RULES = [
    (r"^audio_net\.encoder_conv\.", "audio_net.conv."),
    (r"^audio_net\.encoder_fc1\.", "audio_net.fc."),
    (r"^audio_att_net\.attentionConvNet\.", "audio_smoother.conv."),
    (r"^audio_att_net\.attentionNet\.0\.", "audio_smoother.fc."),
    (r"^encoder_xy\.", "encoder.planes.0."),
    (r"^encoder_yz\.", "encoder.planes.1."),
    (r"^encoder_xz\.", "encoder.planes.2."),
    (r"^aud_ch_att_net\.", "aud_att."),
    (r"^eye_att_net\.", "eye_att."),
    (r"^individual_codes$", "codes"),
    *MLP_LAYERS,
]
TORSO_RULES = [
    (r"^torso_deform_net\.", "deform."),
    (r"^torso_encoder\.", "grid."),
    (r"^torso_net\.", "net."),
    (r"^individual_codes_torso$", "codes"),
    *MLP_LAYERS,
]
TORSO_PREFIXES = ("torso_", "anchor_points", "individual_codes_torso", "density_grid_torso")
IGNORED = ("aabb_train", "aabb_infer", "step_counter", "density_grid", "density_bitfield")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="ER-NeRF's data folder of the person")
    parser.add_argument("--head", default=None, help="head checkpoint (default: SOURCE's head)")
    parser.add_argument("--twin", default=None, help="twin id (recorded in the files)")
    parser.add_argument("--scale", type=float, default=4.0, help="ER-NeRF's --scale (default 4)")
    parser.add_argument(
        "--offset", type=float, nargs=3, default=[0.0, 0.0, 0.0], help="ER-NeRF's --offset"
    )
    parser.add_argument("--att", type=int, default=2, help="ER-NeRF's --att (2; 0: no smoothing)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the data")
    parser.add_argument("--no-frames", action="store_true", help="skip gt_imgs -> frames.mkv")
    parser.add_argument(
        "--registry", default="models/registry.yaml", help="for SOURCE given as a model name"
    )


# --- reading ER-NeRF's files ------------------------------------------------------------------


def find_checkpoint(source: str | Path, registry: str | Path | None = None) -> Path:
    """The ``.pth`` of a workspace folder (``checkpoints/ngp.pth``, else the newest epoch), or
    of a ``models/registry.yaml`` entry (e.g. ``ernerf-obama-torso``, checksum verified)."""
    source = Path(source)
    if source.is_file():
        return source
    if registry is not None and not source.exists() and len(source.parts) == 1:
        from twinflow.models import load_registry, resolve

        if str(source) in load_registry(registry):
            return find_checkpoint(resolve(str(source), registry))
    for folder in (source / "checkpoints", source):
        if (folder / "ngp.pth").is_file():
            return folder / "ngp.pth"
        epochs = sorted(folder.glob("ngp_ep*.pth"))
        if epochs:
            return epochs[-1]
    raise ConversionError(
        "no ER-NeRF checkpoint (checkpoints/ngp.pth or ngp_ep*.pth) in this folder", path=source
    )


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, the trainer's other entries)`` of an ER-NeRF ``.pth``."""
    data = load_reference(path)
    if isinstance(data, dict) and "model" in data:
        return dict(data["model"]), {k: v for k, v in data.items() if k != "model"}
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return dict(data), {}  # a bare state dict (ER-NeRF loads those too)
    raise ConversionError("is not an ER-NeRF checkpoint (no 'model' entry)", path=path)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ConversionError("ER-NeRF data file not found", path=path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"is not valid JSON ({err})", path=path) from None


def ngp_c2w(transform: np.ndarray, scale: float, offset) -> np.ndarray:
    """ER-NeRF's camera (``nerf_matrix_to_ngp``) as an OpenGL camera-to-world ``(4, 4)``:
    world axes (y, z, x) of the tracker's, positions x ``scale`` + ``offset``. (ER-NeRF's own
    matrix is this one with its camera y and z axes negated: an OpenCV camera.)"""
    m = np.asarray(transform, np.float32)
    out = np.eye(4, dtype=np.float32)
    out[:3, :3] = m[[1, 2, 0], :3]
    out[:3, 3] = m[[1, 2, 0], 3] * np.float32(scale) + np.asarray(offset, np.float32)
    return out


def read_au45(path: Path, img_ids: list[int]) -> np.ndarray:
    """ER-NeRF's eye area ``clip(AU45_r, 0, 2) / 2`` of rows ``img_ids`` of OpenFace's ``au.csv``."""
    if not path.is_file():
        raise ConversionError("ER-NeRF data file not found (OpenFace action units)", path=path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    key = next((k for k in (rows[0] if rows else {}) if k.strip() == "AU45_r"), None)
    if key is None:
        raise ConversionError("has no AU45_r column", path=path)
    values = np.array([float(r[key]) for r in rows], np.float32)
    if max(img_ids) >= len(values):
        raise ConversionError(f"has {len(values)} rows, frames go to {max(img_ids)}", path=path)
    return (np.clip(values[img_ids], 0, 2) / 2).astype(np.float32)


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB ``uint8`` as ER-NeRF reads it (OpenCV, resized with INTER_AREA to ``size`` (w, h))."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError("cannot be read as an image", path=path)
    if size is not None and (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)


def read_features(path: Path, aud_ids: list[int], dim: int) -> np.ndarray:
    """Per-frame windows ``(T, W, C)`` of an ER-NeRF feature file (``aud_id`` rows, the last row
    for ids past the end, as ER-NeRF does)."""
    if not path.is_file():
        raise ConversionError(f"audio features for this model ({dim} wide) not found", path=path)
    feats = np.load(path)
    if feats.ndim != 3 or feats.shape[2] != dim:
        raise ConversionError(
            f"has shape {feats.shape}, the model expects [N, W, {dim}]", path=path
        )
    return feats[np.minimum(aud_ids, len(feats) - 1)].astype(np.float32)


# --- weights --------------------------------------------------------------------------------


def grid_log2(offsets: torch.Tensor, source: Path, name: str) -> int:
    """``log2_hashmap_size`` of a grid encoder: its largest level (a power of two)."""
    size = int(torch.diff(offsets.long()).max())
    if size & (size - 1):
        raise ConversionError(
            f"{name}.offsets: largest level {size} is not a power of 2", path=source
        )
    return size.bit_length() - 1


def head_config(state: dict, source: Path, res: int, att: int, overrides: dict | None = None):
    """The ``paper`` preset fitted to an ER-NeRF checkpoint (table sizes, codes, bound)."""
    from twinflow.nerf.presets import get_preset

    if "embedding.weight" in state:
        raise ConversionError(
            "ER-NeRF --emb models (audio class embedding) are not supported", path=source
        )
    fields = {
        "res": res,
        "log2_table": grid_log2(state["encoder_xy.offsets"], source, "encoder_xy"),
        "ind_dim": int(state["individual_codes"].shape[1]) if "individual_codes" in state else 0,
        "att_window": 8 if att == 2 else 1,
        "crop_scale": 0.0,
    }
    if att == 1:
        raise ConversionError("--att 1 (a left-only window) is not supported", path=source)
    bound = float(state["aabb_train"][3]) if "aabb_train" in state else 1.0
    if bound > 1:
        raise ConversionError(
            f"bound {bound} > 1 (density-grid cascades) is not supported", path=source
        )
    fields["finest_res"] = int(512 * bound)
    if "torso_encoder.offsets" in state:
        fields["torso_log2_table"] = grid_log2(
            state["torso_encoder.offsets"], source, "torso_encoder"
        )
        fields["torso_ind_dim"] = int(state["individual_codes_torso"].shape[1])
    fields.update(overrides or {})
    return get_preset("paper", fields), bound


def occupancy_from_bitfield(bits: torch.Tensor, grid: int = 128) -> torch.Tensor:
    """ER-NeRF's ``density_bitfield`` (Morton-ordered cells, 8 per byte) -> ``(G, G, G)`` bool
    indexed ``[z, y, x]`` (twinflow's occupancy grid)."""
    flags = torch.from_numpy(
        np.unpackbits(bits.numpy().astype(np.uint8)[:, None], axis=1, bitorder="little").reshape(-1)
    ).bool()
    return flags[morton_index(grid)]


def morton_index(grid: int) -> torch.Tensor:
    """``(G, G, G)`` Morton code of every cell ``[z, y, x]`` (x in the lowest bit)."""
    i = torch.arange(grid, dtype=torch.long)
    z, y, x = torch.meshgrid(i, i, i, indexing="ij")
    code = torch.zeros_like(x)
    for bit in range(int(np.ceil(np.log2(grid)))):
        code |= ((x >> bit) & 1) << (3 * bit) | ((y >> bit) & 1) << (3 * bit + 1)
        code |= ((z >> bit) & 1) << (3 * bit + 2)
    return code


def check_offsets(module: torch.nn.Module, state: dict, source: Path) -> None:
    """The grid encoders' level offsets must be the ones twinflow computes for the preset
    (same levels, resolutions and table size): shapes alone do not show that."""
    for name, ours in module.state_dict().items():
        if name.endswith("offsets") and not torch.equal(ours.long(), state[name].long()):
            raise ConversionError(
                f"{name}: grid levels {state[name].tolist()} differ from the paper preset's "
                f"{ours.tolist()} (another grid configuration)", path=source,
            )  # fmt: skip


def convert_head(state: dict, cfg, n_codes: int, audio_in: int, source: Path) -> dict:
    """Twinflow ``HeadField`` weights of an ER-NeRF state dict (checked)."""
    from twinflow.nerf.network import HeadField

    head_state = {k: v for k, v in state.items() if not k.startswith(TORSO_PREFIXES)}
    drop = [*IGNORED, r"camera_d[RT]", "unc_net.*" if not cfg.unc_loss else "$^"]
    renamed = rename_keys(head_state, HEAD_RULES, drop=drop)
    grid = cfg.occ_res
    if "density_bitfield" not in state:
        raise ConversionError("has no density_bitfield (the occupancy grid)", path=source)
    if state["density_bitfield"].numel() * 8 != grid**3:
        raise ConversionError(
            f"density_bitfield has {state['density_bitfield'].numel() * 8} cells, "
            f"expected {grid}^3 (one cascade)", path=source,
        )  # fmt: skip
    mask = occupancy_from_bitfield(state["density_bitfield"], grid)
    renamed["occupancy.mask"] = mask
    if "density_grid" in state and state["density_grid"].abs().sum() > 0:
        renamed["occupancy.density"] = state["density_grid"][0][morton_index(grid)].float()
    else:  # ER-NeRF's best checkpoint drops the float grid: occupied cells as dense
        renamed["occupancy.density"] = torch.where(mask, 1e4, 0.0)
    renamed["occupancy.updates"] = torch.ones((), dtype=torch.long)
    head = HeadField(cfg, audio_in, n_codes)
    check_state_dict(head, renamed, source=source, what="ER-NeRF head (paper preset)")
    check_offsets(head, renamed, source)
    head.load_state_dict(renamed)
    return head.state_dict()


def convert_torso(state: dict, extra: dict, cfg, n_codes: int, source: Path) -> dict:
    """Twinflow ``ErnerfTorso`` weights of an ER-NeRF torso state dict (checked)."""
    from twinflow.nerf.network import ErnerfTorso

    torso_state = {k: v for k, v in state.items() if k.startswith(TORSO_PREFIXES)}
    renamed = rename_keys(torso_state, TORSO_RULES, drop=["density_grid_torso"])
    g = ErnerfTorso.GRID
    renamed["density"] = state["density_grid_torso"].reshape(g, g).float()
    renamed["mean_density"] = torch.tensor(float(extra.get("mean_density_torso", 0.0)))
    torso = ErnerfTorso(cfg, n_codes)
    check_state_dict(torso, renamed, source=source, what="ER-NeRF torso (paper preset)")
    check_offsets(torso, renamed, source)
    torso.load_state_dict(renamed)
    return torso.state_dict()


# --- the data folder ------------------------------------------------------------------------


def read_data(folder: Path, scale: float, offset, fps: float) -> dict[str, Any]:
    """Cameras, intrinsics, blink, background, frame ids of ER-NeRF's data folder."""
    docs = [read_json(folder / f"transforms_{s}.json") for s in ("train", "val")]
    frames = docs[0]["frames"] + docs[1]["frames"]
    if not frames:
        raise ConversionError("has no frames", path=folder / "transforms_train.json")
    d0 = docs[0]
    h = int(d0["h"]) if "h" in d0 else int(d0["cy"]) * 2
    w = int(d0["w"]) if "w" in d0 else int(d0["cx"]) * 2
    if h != w:
        raise ConversionError(f"images are {w}x{h}; twinflow renders square images", path=folder)
    if "focal_len" in d0:
        fx = fy = float(d0["focal_len"])
    elif "fl_x" in d0 or "fl_y" in d0:
        fx, fy = float(d0.get("fl_x", d0.get("fl_y"))), float(d0.get("fl_y", d0.get("fl_x")))
    else:
        raise ConversionError("has no focal length", path=folder / "transforms_train.json")
    intrinsics = np.array(
        [fx, fy, float(d0.get("cx", w / 2)), float(d0.get("cy", h / 2))], np.float32
    )
    c2w = np.stack([ngp_c2w(f["transform_matrix"], scale, offset) for f in frames])
    img_ids = [int(f["img_id"]) for f in frames]
    return {
        "frames": frames,
        "n_train": len(docs[0]["frames"]),
        "res": w,
        "c2w": c2w,
        "intrinsics": intrinsics,
        "img_ids": img_ids,
        "aud_ids": [int(f.get("aud_id", f["img_id"])) for f in frames],
        "blink": read_au45(folder / "au.csv", img_ids),
        "bg": read_image(folder / "bc.jpg", (w, h)),
        "fps": fps,
    }


def lip_boxes(folder: Path, img_ids: list[int], res: int) -> np.ndarray:
    """Square lip boxes ``(T, 4)`` (x0, y0, x1, y1) from the 68-point landmarks (``ori_imgs/*.lms``,
    points 48-59 as ER-NeRF's lips fine-tuning); the image centre's box when a file is missing."""
    boxes = np.tile(
        np.array([res * 0.4, res * 0.6, res * 0.6, res * 0.8], np.float32), (len(img_ids), 1)
    )
    for k, i in enumerate(img_ids):
        path = folder / "ori_imgs" / f"{i}.lms"
        if path.is_file():
            lips = np.loadtxt(path)[48:60]
            lo, hi = lips.min(0), lips.max(0)
            c, half = (lo + hi) / 2, (hi - lo).max() / 2
            boxes[k] = [c[0] - half, c[1] - half, c[0] + half, c[1] + half]
    return boxes


def _colour(seg: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return (seg[..., 0] == bgr[0]) & (seg[..., 1] == bgr[1]) & (seg[..., 2] == bgr[2])


def write_frames(folder: Path, data: dict, out: Path) -> bool:
    """``gt_imgs`` + ``parsing`` -> ``frames.mkv`` (RGB + twinflow labels); False if missing."""
    from twinflow.nerf.dataset import BACKGROUND, FACE, HEAD, TORSO
    from twinflow.perception.store import MaskWriter

    ids = data["img_ids"]
    gt = [folder / "gt_imgs" / f"{i}.jpg" for i in ids]
    parsing = [folder / "parsing" / f"{i}.png" for i in ids]
    if not all(p.is_file() for p in gt + parsing):
        return False
    res = data["res"]
    with MaskWriter(out, data["fps"], kind="rgba") as writer:
        for k, (g, p) in enumerate(zip(gt, parsing, strict=True)):
            rgb = read_image(g, (res, res))
            seg = read_image(p, (res, res))[..., ::-1]  # back to OpenCV's BGR, as ER-NeRF tests
            labels = np.full((res, res), BACKGROUND, np.uint8)
            labels[_colour(seg, (0, 255, 0)) | _colour(seg, (0, 0, 255))] = TORSO  # neck, torso
            labels[_colour(seg, (255, 0, 0))] = HEAD
            lms = folder / "ori_imgs" / f"{ids[k]}.lms"
            if lms.is_file():  # the face: inside the 68 landmarks' hull, on the head
                import cv2

                hull = cv2.convexHull(np.loadtxt(lms)[:, :2].astype(np.float32)).astype(np.int32)
                face = np.zeros((res, res), np.uint8)
                cv2.fillConvexPoly(face, hull, 1)
                labels[(face > 0) & (labels == HEAD)] = FACE
            writer.write(np.concatenate([rgb, labels[..., None]], -1))
    return True


# --- the conversion -------------------------------------------------------------------------


def convert(args: argparse.Namespace) -> None:
    from twinflow.nerf.audio_features import save_features
    from twinflow.nerf.model import preset_meta
    from twinflow.perception.store import save_npz
    from twinflow.train import save_checkpoint

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise ConversionError("ER-NeRF data folder not found", path=data_dir)
    source = find_checkpoint(args.source, args.registry)
    state, extra = read_checkpoint(source)
    head_source = find_checkpoint(args.head, args.registry) if args.head else source
    head_state = read_checkpoint(head_source)[0] if args.head else state
    if "audio_net.encoder_conv.0.weight" not in head_state:
        raise ConversionError("has no ER-NeRF head (audio_net.*)", path=head_source)
    audio_in = int(head_state["audio_net.encoder_conv.0.weight"].shape[1])
    if audio_in not in AUDIO_KINDS:
        raise ConversionError(
            f"audio network input {audio_in} is not a known ER-NeRF feature", path=head_source
        )
    kind, feature_file = AUDIO_KINDS[audio_in]

    data = read_data(data_dir, args.scale, args.offset, args.fps)
    has_torso = "torso_net.net.0.weight" in state
    cfg, bound = head_config(
        {**head_state, **{k: v for k, v in state.items() if k.startswith(TORSO_PREFIXES)}},
        head_source, data["res"], args.att,
    )  # fmt: skip
    n_codes = int(head_state["individual_codes"].shape[0]) if cfg.ind_dim else 1
    head = convert_head(head_state, cfg, n_codes, audio_in, head_source)
    torso = None
    if has_torso:
        torso = convert_torso(
            state, extra, cfg, int(state["individual_codes_torso"].shape[0]), source
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = int(extra.get("global_step", 0))
    meta = {
        "pipeline": "nerf",
        "twin": args.twin,
        "preset_name": "paper",
        "preset": preset_meta(cfg),
        "audio_features": kind,
        "audio_dim": audio_in,
        "n_codes": n_codes,
        "res": data["res"],
        "converted_from": {"kind": "ernerf", "path": str(source), "head": str(head_source)},
    }
    payload = {"modules": {"head": head}, "steps": steps, "meta": {**meta, "stage": "lips"}}
    save_checkpoint(out / "lips.pt", payload)
    if torso is not None:
        tmeta = {**meta, "stage": "torso", "n_codes": int(state["individual_codes_torso"].shape[0])}
        save_checkpoint(
            out / "torso.pt", {"modules": {"torso": torso}, "steps": steps, "meta": tmeta}
        )

    feats = read_features(data_dir / feature_file, data["aud_ids"], audio_in)
    info = {
        "kind": kind, "fps": data["fps"], "windows": int(feats.shape[1]), "window_ms": 20.0,
        "dim": audio_in, "n_frames": len(feats), "source": str(data_dir / feature_file),
        "model_sha256": None,
    }  # fmt: skip
    save_features(out / "audio_features.npz", feats, info)

    n, res, n_train = len(data["c2w"]), data["res"], data["n_train"]
    frames_written = False if args.no_frames else write_frames(data_dir, data, out / "frames.mkv")
    box = np.array([bound, bound / 2, bound], np.float32)
    save_npz(
        out / "dataset.npz",
        info={
            "twin": args.twin, "fps": data["fps"], "n_frames": n, "frame": "ernerf",
            "source": str(data_dir), "scale": args.scale, "offset": list(args.offset),
            "labels": {"background": 0, "torso": 1, "head": 2, "face": 3},
            "img_ids": data["img_ids"],
        },
        c2w=data["c2w"], intrinsics=data["intrinsics"], box=box,
        center=np.zeros(3, np.float32), scale=np.float32(1.0),
        crop=np.array([0, 0, res, res], np.int32), res=np.int32(res), blink=data["blink"],
        mouth_box=lip_boxes(data_dir, data["img_ids"], res),
        mouth_lmk=np.zeros((n, 40, 2), np.float32),
        train=np.arange(n_train, dtype=np.int32), val=np.arange(n_train, n, dtype=np.int32),
        bg=data["bg"], bg_frame=data["bg"], head_region=np.ones((res, res), bool),
    )  # fmt: skip
    summary = {
        "kind": "ernerf",
        "source": str(source),
        "head_source": str(head_source),
        "data": str(data_dir),
        "audio_features": kind,
        "audio_dim": audio_in,
        "feature_file": feature_file,
        "frames": n,
        "train_frames": n_train,
        "res": res,
        "bound": bound,
        "torso": torso is not None,
        "frames_mkv": frames_written,
        "steps": steps,
        "log2_table": cfg.log2_table,
        "torso_log2_table": cfg.torso_log2_table if torso is not None else None,
    }
    (out / "import.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("ER-NeRF model %s -> %s: %s", source, out, summary)
