"""Stage ``meshhead_dataset``: pose-free mesh motion + speech of a twin (or VOCASET for FLAME).

``python -m twinflow.meshhead.dataset --twin ID --face face.npz --template template.npz
--head-pose head_pose.npz --audio audio.wav --fps 25 --test-fraction 0.2 --out dataset.npz``

``python -m twinflow.meshhead.dataset --twin ID --topology flame --flame-model flame-2020
--vocaset DIR --vocaset-fps 60 --fps 25 [--vocaset-split time|vocaset] [--style NAME]
--out dataset.npz`` (the FLAME path; ``--registry``). ``--vocaset-split vocaset`` is FaceFormer's
split (:data:`twinflow.meshhead.topology.FACEFORMER_SPLITS`): its 8 training subjects'
sentences 1-40 train, its 2 test subjects' sentences 21-40 test (spoken in the style of
``--style``, a training subject, default the first), the rest left out; the speakers (one-hot
styles) are the training subjects in FaceFormer's order, so a converted ``vocaset.pth`` fits.
``time`` (default): every subject's last ``test_fraction`` of sentences is test.

``dataset.npz`` (``T`` frames over all sequences, ``V`` vertices):

===============  ==================  ========================================================
key              shape, dtype        meaning
===============  ==================  ========================================================
topology         () str              ``mediapipe468`` or ``flame``
disp             (T, V, 3) float32   displacement from the template, metres, head frame
template         (V, 3) float32      the rest mesh (the twin's template; FLAME: per subject
                                     in ``templates``, the first here)
audio            (N,) float32        speech of all sequences, concatenated
sample_rate, fps () int, float
seq_start        (S+1,) int64        first frame of each sequence (and T)
seq_audio_start  (S+1,) int64        first audio sample of each sequence (and N)
seq_speaker      (S,) int64          speaker (style) index of each sequence
speakers         (P,) str            speaker names (the twin id; VOCASET subjects)
split            (T,) uint8          0 train, 1 test (the last ``test_fraction`` of the twin's
                                     frames; FLAME: of each subject's sentences, or
                                     FaceFormer's subject split)
mouth_index      (M,) int64          mouth vertices (lips; FLAME: the most-moving 5 %)
edges            (E, 2) int64        mesh edges for previews
R, t, K          (T,3,3) (T,3) (3,3) head pose of every frame (mediapipe468 only)
image_size       (2,) int            W, H of the video (mediapipe468 only)
landmarks2d      (T, 468, 2) float32 tracked landmarks, pixels (mediapipe468 only)
detected         (T,) bool           a face was detected (else interpolated)
info             JSON                sources, alignment, residuals
===============  ==================  ========================================================
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.audio import read_wav
from twinflow.meshhead.common import load_npz, save_npz
from twinflow.meshhead.topology import (
    FACEFORMER_SPLITS,
    FLAME,
    MEDIAPIPE,
    N_MESH,
    TOPOLOGIES,
    align_to_template,
    faceformer_part,
    load_flame,
    load_vocaset,
    mouth_index,
)

log = logging.getLogger("twinflow.meshhead.dataset")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.dataset", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--topology", choices=TOPOLOGIES, default=MEDIAPIPE)
    p.add_argument("--face", help="face.npz of the twin's video (mediapipe468)")
    p.add_argument("--template", help="template.npz (mediapipe468)")
    p.add_argument("--head-pose", help="head_pose.npz (mediapipe468)")
    p.add_argument("--audio", help="the twin's speech, wav (mediapipe468)")
    p.add_argument("--flame-model", default="flame-2020", help="registry name of the FLAME model")
    p.add_argument("--vocaset", help="VOCASET folder in FaceFormer's layout (flame)")
    p.add_argument("--vocaset-fps", type=float, default=60.0)
    p.add_argument("--vocaset-split", choices=("time", "vocaset"), default="time")
    p.add_argument("--style", help="training subject whose style test subjects get (split vocaset)")
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--out", required=True)
    return p


def mesh_edges() -> np.ndarray:
    """Edges of mediapipe's face-mesh tessellation (for previews)."""
    try:
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    except ImportError:  # previews then draw points only
        return np.zeros((0, 2), np.int64)
    return np.array(sorted(FACEMESH_TESSELATION), np.int64)


def faces_to_edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    return np.unique(np.sort(e, axis=1), axis=0)


def twin_dataset(args: argparse.Namespace) -> dict:
    for name in ("face", "template", "head_pose", "audio"):
        if not getattr(args, name):
            raise InputError(f"--{name.replace('_', '-')} is needed for topology {MEDIAPIPE}")
    face = load_npz(args.face, "face track")
    tpl = load_npz(args.template, "face template")
    pose = load_npz(args.head_pose, "head pose")
    samples, sr = read_wav(args.audio)
    if sr != args.sample_rate:
        raise InputError(f"audio has {sr} Hz, expected {args.sample_rate}", path=args.audio)
    landmarks = face["landmarks"]
    n = len(landmarks)
    if len(pose["R"]) != n:
        raise InputError(
            f"head pose has {len(pose['R'])} frames, the face track {n}", path=args.head_pose
        )
    aligned, sim = align_to_template(landmarks, tpl["vertices"], tpl["rigid_index"])
    template = tpl["vertices"][:N_MESH].astype(np.float32)
    disp = aligned - template
    # the audio may be a little shorter or longer than the video: frames beyond it are dropped
    n_audio_frames = int(np.floor(len(samples) / sr * args.fps + 1e-6))
    if n_audio_frames < n:
        log.warning("audio covers %d of %d frames: the rest is dropped", n_audio_frames, n)
        n = n_audio_frames
    if n < 20:
        raise InputError(f"only {n} frames with audio: too short for meshhead", path=args.audio)
    samples = samples[: int(round(n / args.fps * sr))]
    n_test = int(round(args.test_fraction * n))
    split = np.zeros(n, np.uint8)
    split[n - n_test :] = 1
    rigid = tpl["rigid_index"].astype(int)
    residual = np.sqrt((disp[:n, rigid] ** 2).sum(-1).mean(-1)) * 1000
    return {
        "topology": np.array(MEDIAPIPE),
        "disp": disp[:n].astype(np.float32),
        "template": template,
        "audio": samples.astype(np.float32),
        "sample_rate": np.array(sr),
        "fps": np.array(args.fps),
        "seq_start": np.array([0, n], np.int64),
        "seq_audio_start": np.array([0, len(samples)], np.int64),
        "seq_speaker": np.array([0], np.int64),
        "speakers": np.array([args.twin]),
        "split": split,
        "mouth_index": mouth_index(MEDIAPIPE).astype(np.int64),
        "edges": mesh_edges(),
        "R": pose["R"][:n].astype(np.float32),
        "t": pose["t"][:n].astype(np.float32),
        "K": pose["K"].astype(np.float64),
        "image_size": pose["image_size"].astype(np.int64),
        "landmarks2d": landmarks[:n, :N_MESH, :2].astype(np.float32),
        "detected": face["detected"][:n].astype(bool),
        "info": {
            "twin": args.twin,
            "sources": {k: getattr(args, k) for k in ("face", "template", "head_pose", "audio")},
            "frames": n,
            "train_frames": int(n - n_test),
            "test_frames": n_test,
            "split": f"time: the last {args.test_fraction:.0%} of the frames are test",
            "alignment": "similarity (Umeyama) on the template's rigid points; 468 mesh points "
            "(iris dropped); disp = aligned - template, metres, template head frame",
            "rigid_residual_mm_median": float(np.median(residual)),
            "scale_cv": float(np.std(sim["scale"]) / np.mean(sim["scale"])),
        },
    }


def flame_dataset(args: argparse.Namespace) -> dict:
    from twinflow.models import resolve

    if not args.vocaset:
        raise InputError("topology flame needs VOCASET-format data: set meshhead.flame.data")
    model_path = resolve(args.flame_model, args.registry)
    flame = load_flame(model_path)
    n_vertices = len(flame["v_template"])
    seqs = load_vocaset(args.vocaset, args.vocaset_fps, args.fps, n_vertices, args.sample_rate)
    if args.vocaset_split == "time":
        subjects = sorted({s["subject"] for s in seqs})
        parts = {}
        for subject in subjects:
            mine = [s for s in seqs if s["subject"] == subject]
            n_test = int(round(args.test_fraction * len(mine))) if len(mine) > 1 else 0
            for i, s in enumerate(mine):
                parts[s["sentence"]] = (1 if i >= len(mine) - n_test else 0, subject)
    else:
        subjects, parts = faceformer_parts(seqs, args.vocaset_split, args.style, args.vocaset)
        seqs = [s for s in seqs if s["sentence"] in parts]
    split_parts, disp, audio, f_starts, a_starts, speakers = [], [], [], [0], [0], []
    for subject in subjects:
        for s in seqs:
            part, style = parts[s["sentence"]]
            if style != subject:
                continue
            t = len(s["disp"])
            n_samples = int(round(t / args.fps * args.sample_rate))
            wave = np.pad(s["audio"][:n_samples], (0, max(0, n_samples - len(s["audio"]))))
            disp.append(s["disp"])
            audio.append(wave)
            split_parts.append(np.full(t, part, np.uint8))
            f_starts.append(f_starts[-1] + t)
            a_starts.append(a_starts[-1] + n_samples)
            speakers.append(subjects.index(subject))
    disp_all = np.concatenate(disp)
    split = np.concatenate(split_parts)
    first = next((s for s in seqs if s["subject"] == subjects[0]), seqs[0])
    return {
        "topology": np.array(FLAME),
        "disp": disp_all.astype(np.float32),
        "template": first["template"].astype(np.float32),
        "flame_template": flame["v_template"].astype(np.float32),
        "audio": np.concatenate(audio).astype(np.float32),
        "sample_rate": np.array(args.sample_rate),
        "fps": np.array(args.fps),
        "seq_start": np.array(f_starts, np.int64),
        "seq_audio_start": np.array(a_starts, np.int64),
        "seq_speaker": np.array(speakers, np.int64),
        "speakers": np.array(subjects),
        "split": split,
        "mouth_index": mouth_index(FLAME, disp_all[split == 0]).astype(np.int64),
        "edges": faces_to_edges(flame["f"]),
        "info": {
            "twin": args.twin,
            "flame_model": str(model_path),
            "vocaset": args.vocaset,
            "sequences": len(seqs),
            "subjects": subjects,
            "vertices": n_vertices,
            "split": f"the last {args.test_fraction:.0%} of each subject's sentences are test"
            if args.vocaset_split == "time"
            else f"FaceFormer's {args.vocaset_split} subject split (validation sentences left out)",
        },
    }


def faceformer_parts(seqs: list[dict], split: str, style: str | None, folder) -> tuple:
    """FaceFormer's split of VOCASET-format sequences: the speakers (its training subjects, in
    its order) and ``{sentence: (0 train | 1 test, speaker)}`` for the sequences it uses; test
    subjects speak in ``style`` (a training subject; default the first)."""
    subjects = list(FACEFORMER_SPLITS[split]["train"])
    style = style or subjects[0]
    if style not in subjects:
        raise InputError(f"--style '{style}' is not a training subject ({', '.join(subjects)})")
    parts = {}
    for s in seqs:
        part = faceformer_part(split, s["subject"], s["sentence"])
        if part is not None:
            speaker = s["subject"] if part == "train" else style
            parts[s["sentence"]] = (0 if part == "train" else 1, speaker)
    if not any(p == 0 for p, _ in parts.values()):
        raise InputError(
            f"no sentence of FaceFormer's {split} training subjects ({', '.join(subjects)})",
            path=folder,
        )
    return subjects, parts


def run(args: argparse.Namespace) -> None:
    data = twin_dataset(args) if args.topology == MEDIAPIPE else flame_dataset(args)
    log.info(
        "%s: %d frames (%d test), %d vertices, %.1f s of audio",
        data["topology"],
        len(data["disp"]),
        int(data["split"].sum()),
        data["disp"].shape[1],
        len(data["audio"]) / int(data["sample_rate"]),
    )
    save_npz(args.out, **data)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
