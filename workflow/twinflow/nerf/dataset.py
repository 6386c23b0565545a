"""Stage ``dataset``: the twin's frames, masks, cameras and signals at the preset's resolution.

``python -m twinflow.nerf.dataset --twin ID --video video.mp4 --perception DIR --res 128
--crop-scale 1.6 --out-frames frames.mkv --out dataset.npz``

Inputs are the normalised video and the perception stage's files in ``results/{twin}/perception/``
(``face.npz``, ``signals.npz``, ``matte.mkv``, ``template.npz``, ``head_pose.npz``,
``transforms_train.json``, ``transforms_val.json``; and, when given, ``parsing.mkv`` and the
background plate). Every frame's camera comes from ``head_pose.npz``, whatever its split: the
transforms files list only their own split's frames, and the frames in the guard gaps around the
val blocks (in neither file) are still rendered and pasted back. The transforms files give the
split only (``train``, ``val``).

Outputs:

``frames.mkv``  FFV1 RGBA (lossless, :mod:`twinflow.perception.store`), one ``res x res`` frame per
                video frame: RGB of the crop and, in the alpha channel, a label map:
                0 background, 1 torso (the person outside the head, with the neck),
                2 head (hair, ears, ... inside the head box), 3 face (inside the face oval).
``dataset.npz`` arrays (``T`` frames):

==============  ================  ===================================================
key             shape, dtype      meaning
==============  ================  ===================================================
c2w             (T, 4, 4) f4      OpenGL camera-to-world in the normalised head space,
                                  every frame (train, val and the gaps between them)
intrinsics      (4,) f4           fx, fy, cx, cy of the ``res x res`` image
box             (3,) f4           half extents of the head box (normalised units;
                                  the largest is 1); the NeRF lives in it
center, scale   (3,) f4, () f4    metric head frame (OpenGL axes) -> normalised:
                                  ``(X - center) / scale``
crop            (4,) i4           x, y, side (frame pixels) of the square crop, and the
                                  frame side
res             () i4             image side
blink           (T,) f4           perception eye closure 0..1
mouth_box       (T, 4) f4         x0, y0, x1, y1 of the lips at ``res`` (padded)
mouth_lmk       (T, 40, 2) f4     outer and inner lip landmarks, frame pixels
train, val      (n,) i4           frame indices of the two splits (perception's split);
                                  frames in neither are the guard gaps around val blocks
bg              (res, res, 3) u1  background plate of the crop
bg_frame        (H, W, 3) u1      background plate of the whole frame
head_region     (res, res) bool   pixels a head ray may cover (dilated union of the
                                  training head masks; rendering skips the others)
info            JSON text         sources, label values, how masks and plate were made
==============  ================  ===================================================

Masks: when ``parsing.mkv`` is given its labels are used (face parts -> face, hair -> head, neck and
torso -> torso; :func:`parsing_map`); otherwise the head is the person matte
above the jaw line (the face oval's lower contour; the oval's ear-level points beside it), the
face is the inside of the face oval, and the rest of the person is torso. Head pixels whose rays
miss the head box become torso. Background plate: the given one, else the per-pixel mean of
the frames where the matte shows background, inpainted (OpenCV Telea) where never seen.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from twinflow.errors import InputError

log = logging.getLogger("twinflow.nerf.dataset")

BACKGROUND, TORSO, HEAD, FACE = 0, 1, 2, 3
_FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV head frame -> OpenGL world (perception.cameras)


def crop_box(head_boxes: np.ndarray, frame: int, crop_scale: float) -> tuple[int, int, int]:
    """Square crop ``(x, y, side)`` of ``crop_scale`` x the largest head box, centred on the
    median head centre (a little lower, to keep the neck), inside the ``frame x frame`` image."""
    if crop_scale <= 0:
        return 0, 0, frame
    side_box = float(np.max(head_boxes[:, 2] - head_boxes[:, 0]))
    side = int(min(frame, round(crop_scale * side_box)))
    side -= side % 2
    cx = float(np.median((head_boxes[:, 0] + head_boxes[:, 2]) / 2))
    cy = float(np.median((head_boxes[:, 1] + head_boxes[:, 3]) / 2)) + 0.1 * side
    x = int(np.clip(round(cx - side / 2), 0, frame - side))
    y = int(np.clip(round(cy - side / 2), 0, frame - side))
    return x, y, side


def head_space(vertices_cv: np.ndarray, pad: float = 0.03, top: float = 0.12, back: float = 0.13):
    """Head box from the face template (metres, OpenCV head frame): ``center (3,), half (3,)`` in
    the OpenGL world. The face mesh is padded by ``pad``, with ``top`` more above (hair) and
    ``back`` more behind (the back of the skull)."""
    v = vertices_cv @ _FLIP.T
    lo, hi = v.min(0) - pad, v.max(0) + pad
    hi[1] += top
    lo[2] -= back
    return (lo + hi) / 2, (hi - lo) / 2


def _oval_cut(oval: np.ndarray, width: int) -> np.ndarray:
    """Per column the jaw line ``y`` below which the person is torso: the lower contour of the face
    oval inside its x-range, and the y of the oval's leftmost/rightmost point outside it."""
    xs = np.arange(width)
    pts = oval[np.argsort(oval[:, 0])]
    left, right = pts[0], pts[-1]
    cut = np.full(width, -np.inf)
    # lower contour: the oval points below the line joining its extreme points
    mid_y = np.interp(oval[:, 0], [left[0], right[0] + 1e-6], [left[1], right[1]])
    lower = oval[oval[:, 1] >= mid_y]
    lower = np.concatenate([lower, [left, right]])
    lower = lower[np.argsort(lower[:, 0])]
    inside = (xs >= left[0]) & (xs <= right[0])
    cut[inside] = np.interp(xs[inside], lower[:, 0], lower[:, 1])
    cut[xs < left[0]] = left[1]
    cut[xs > right[0]] = right[1]
    return cut


def label_frame(matte: np.ndarray, landmarks: np.ndarray, box_mask: np.ndarray) -> np.ndarray:
    """Label map ``(H, W) uint8`` of one frame from the matte and the 478 face landmarks
    (pixels), restricted to ``box_mask`` (pixels whose rays hit the head box)."""
    from twinflow.perception.landmarks import FACE_OVAL

    h, w = matte.shape
    person = matte >= 128
    oval = landmarks[FACE_OVAL, :2]
    cut = _oval_cut(oval, w)
    rows = np.arange(h)[:, None]
    head = person & (rows <= cut[None, :]) & box_mask
    face = np.zeros((h, w), np.uint8)
    cv2.fillPoly(face, [np.round(oval).astype(np.int32)], 1)
    labels = np.where(person, TORSO, BACKGROUND).astype(np.uint8)
    labels[head] = HEAD
    labels[(face > 0) & box_mask] = FACE
    return labels


def parsing_map() -> np.ndarray:
    """Lookup table perception label -> ours (:mod:`twinflow.perception.parsing`): face parts
    (skin, brows, eyes, lips, mouth) -> face, hair -> head, neck and torso -> torso."""
    from twinflow.perception import parsing as p

    table = np.zeros(256, np.uint8)
    for label in (p.SKIN, p.BROWS, p.EYES, p.LIPS, p.MOUTH):
        table[label] = FACE
    table[p.HAIR] = HEAD
    table[p.NECK] = TORSO
    table[p.TORSO] = TORSO
    return table


def from_parsing(parsing: np.ndarray, box_mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Our labels from a perception label map; head labels outside the head box become torso."""
    out = table[parsing]
    out[(out >= HEAD) & ~box_mask] = TORSO
    return out


def background_plate(frames: list[np.ndarray], mattes: list[np.ndarray]) -> np.ndarray:
    """Mean of the background pixels over time (the matte below 10%), inpainted (OpenCV Telea)
    where the person always covers the background."""
    total = np.zeros(frames[0].shape, np.float64)
    weight = np.zeros(frames[0].shape[:2], np.float64)
    for rgb, matte in zip(frames, mattes, strict=True):
        bg = matte < 26
        total[bg] += rgb[bg]
        weight += bg
    hole = weight == 0
    plate = (total / np.maximum(weight, 1)[..., None]).round().clip(0, 255).astype(np.uint8)
    if hole.all():
        plate[:] = np.median(np.stack(frames).reshape(-1, 3), 0).astype(np.uint8)
    elif hole.any():
        plate = cv2.inpaint(plate, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return plate


def box_masks(c2w: np.ndarray, intrinsics: np.ndarray, res: int, box: np.ndarray) -> np.ndarray:
    """``(T, res, res) bool``: pixels whose ray hits the head box, per camera."""
    import torch

    from twinflow.nerf.rays import pixel_rays, ray_box

    v, u = np.mgrid[0:res, 0:res]
    uv = torch.from_numpy(np.stack([u.ravel() + 0.5, v.ravel() + 0.5], -1).astype(np.float32))
    out = np.zeros((len(c2w), res, res), bool)
    k = torch.from_numpy(intrinsics.astype(np.float32))
    b = torch.from_numpy(box.astype(np.float32))
    for i, m in enumerate(c2w):
        o, d = pixel_rays(torch.from_numpy(m.astype(np.float32)), k, uv)
        _, _, hit = ray_box(o, d, b)
        out[i] = hit.numpy().reshape(res, res)
    return out


def mouth_boxes(landmarks: np.ndarray, crop: tuple[int, int, int], res: int, pad: float = 0.35):
    """Padded lip boxes ``(T, 4)`` at ``res`` and the lip landmarks ``(T, 40, 2)`` in pixels."""
    from twinflow.perception.landmarks import LIPS_INNER, LIPS_OUTER

    lips = landmarks[:, LIPS_OUTER + LIPS_INNER, :2]
    x, y, side = crop
    s = res / side
    lo, hi = lips.min(1), lips.max(1)
    size = (hi - lo).max(1, keepdims=True) * (1 + 2 * pad)
    centre = (lo + hi) / 2
    box = np.concatenate([centre - size / 2, centre + size / 2], 1)
    box = (box - np.array([x, y, x, y])) * s
    return box.astype(np.float32), lips.astype(np.float32)


def build(args: argparse.Namespace) -> None:
    from twinflow.atomic import read_json
    from twinflow.media.video import iter_frames
    from twinflow.perception.cameras import camera_to_world
    from twinflow.perception.store import MaskWriter, iter_masks, load_npz, save_npz

    perc = Path(args.perception)
    face = load_npz(perc / "face.npz")
    signals = load_npz(perc / "signals.npz")
    template = load_npz(perc / "template.npz")
    docs = [read_json(perc / f"transforms_{s}.json") for s in ("train", "val")]
    n = int(docs[0]["n_frames_total"])
    frame_w, frame_h = int(docs[0]["w"]), int(docs[0]["h"])
    if frame_w != frame_h:
        raise InputError(
            f"expected square normalised frames, got {frame_w}x{frame_h}", path=args.video
        )
    landmarks = face["landmarks"]
    if len(landmarks) != n:
        raise InputError(
            f"face.npz has {len(landmarks)} frames, transforms {n}", path=perc / "face.npz"
        )

    pose = load_npz(perc / "head_pose.npz")
    if len(pose["R"]) != n:
        raise InputError(
            f"head_pose.npz has {len(pose['R'])} frames, transforms {n}; rerun perception",
            path=perc / "head_pose.npz",
        )
    c2w_metric = camera_to_world(pose["R"].astype(np.float64), pose["t"].astype(np.float64))
    split = {
        doc["split"]: np.array([f["frame_index"] for f in doc["frames"]], np.int32) for doc in docs
    }

    center, half = head_space(
        template["vertices"].astype(np.float64), args.box_pad, args.box_top, args.box_back
    )
    scale = float(half.max())
    c2w = c2w_metric.copy()
    c2w[:, :3, 3] = (c2w[:, :3, 3] - center) / scale
    box = half / scale

    crop = crop_box(face["head_box"], frame_w, args.crop_scale)
    x0, y0, side = crop
    res = args.res
    s = res / side
    d0 = docs[0]
    intrinsics = np.array(
        [d0["fl_x"] * s, d0["fl_y"] * s, (d0["cx"] - x0) * s, (d0["cy"] - y0) * s], np.float32
    )
    log.info(
        "crop %s -> %d px, head box half extents %s m, scale %.3f m",
        crop,
        res,
        np.round(half, 3),
        scale,
    )

    inside = box_masks(c2w, intrinsics, res, box)
    frames_full, mattes_full = [], []
    parsing_iter = iter_masks(args.parsing) if args.parsing else None
    table = parsing_map() if args.parsing else None
    labels_all = np.zeros((n, res, res), np.uint8)
    rgb_all = np.zeros((n, res, res, 3), np.uint8)
    count = 0
    for i, (rgb, matte) in enumerate(
        zip(iter_frames(args.video), iter_masks(perc / "matte.mkv"), strict=False)
    ):
        if i >= n:
            break
        crop_rgb = cv2.resize(
            rgb[y0 : y0 + side, x0 : x0 + side], (res, res), interpolation=cv2.INTER_AREA
        )
        crop_matte = cv2.resize(
            matte[y0 : y0 + side, x0 : x0 + side], (res, res), interpolation=cv2.INTER_AREA
        )
        if parsing_iter is not None:
            parsing = next(parsing_iter)[y0 : y0 + side, x0 : x0 + side]
            parsing = cv2.resize(parsing, (res, res), interpolation=cv2.INTER_NEAREST)
            labels = from_parsing(parsing, inside[i], table)
        else:
            lmk = (landmarks[i, :, :2] - np.array([x0, y0])) * s
            labels = label_frame(crop_matte, lmk, inside[i])
        rgb_all[i], labels_all[i] = crop_rgb, labels
        mattes_full.append(matte)
        frames_full.append(rgb)
        count += 1
    if count != n:
        raise InputError(
            f"video has {count} frames, perception {n}; rerun perception", path=args.video
        )

    if args.background:
        from twinflow.media.image import load_image

        plate_frame = load_image(args.background)
        if plate_frame.shape[:2] != (frame_h, frame_w):
            plate_frame = cv2.resize(plate_frame, (frame_w, frame_h), interpolation=cv2.INTER_AREA)
        plate_how = f"given: {args.background}"
    else:
        step = max(1, n // 150)  # at most ~150 frames for the median
        plate_frame = background_plate(frames_full[::step], mattes_full[::step])
        plate_how = "mean of background pixels over time, Telea-inpainted where never seen"
    del frames_full, mattes_full
    bg = cv2.resize(
        plate_frame[y0 : y0 + side, x0 : x0 + side], (res, res), interpolation=cv2.INTER_AREA
    )

    head_masks = labels_all[split["train"]] >= HEAD
    union = head_masks.any(0).astype(np.uint8)
    grow = max(2, int(round(0.04 * res)))
    union = cv2.dilate(union, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0

    mouth_box, mouth_lmk = mouth_boxes(landmarks, crop, res)
    info = {
        "twin": args.twin,
        "video": str(args.video),
        "perception": str(perc),
        "labels": {"background": BACKGROUND, "torso": TORSO, "head": HEAD, "face": FACE},
        "masks": "parsing.mkv" if args.parsing else "matte + face oval (jaw line cut)",
        "background": plate_how,
        "fps": float(docs[0].get("fps", 25.0)),
        "n_frames": n,
        "box_metres": {"center": center.tolist(), "half": half.tolist()},
        "split_rule": docs[0].get("split_rule"),
    }
    with MaskWriter(args.out_frames, info["fps"], kind="rgba") as writer:
        for rgb, lab in zip(rgb_all, labels_all, strict=True):
            writer.write(np.concatenate([rgb, lab[..., None]], -1))
    save_npz(
        args.out,
        info=info,
        c2w=c2w.astype(np.float32),
        intrinsics=intrinsics,
        box=box.astype(np.float32),
        center=center.astype(np.float32),
        scale=np.float32(scale),
        crop=np.array([x0, y0, side, frame_w], np.int32),
        res=np.int32(res),
        blink=signals["blink"].astype(np.float32),
        mouth_box=mouth_box,
        mouth_lmk=mouth_lmk,
        train=split["train"],
        val=split["val"],
        bg=bg,
        bg_frame=plate_frame,
        head_region=union,
    )
    fractions = np.bincount(labels_all.ravel(), minlength=4) / labels_all.size
    log.info(
        "%d frames (%d train, %d val); labels bg/torso/head/face %s",
        n, len(split["train"]), len(split["val"]), np.round(fractions, 3),
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.dataset", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True, help="normalised video (results/{twin}/media)")
    p.add_argument("--perception", required=True, help="the twin's perception folder")
    p.add_argument("--parsing", default=None, help="perception parsing.mkv (else: from the matte)")
    p.add_argument("--background", default=None, help="perception background.png (else: made here)")
    p.add_argument("--res", type=int, default=128)
    p.add_argument("--crop-scale", type=float, default=1.6)
    p.add_argument("--box-pad", type=float, default=0.03)
    p.add_argument("--box-top", type=float, default=0.12)
    p.add_argument("--box-back", type=float, default=0.13)
    p.add_argument("--out-frames", required=True)
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
