"""Stage ``render``: frames of the twin's head speaking a driving audio.

``python -m twinflow.nerf.render --render ID --dataset dataset.npz --head lips.pt --torso torso.pt
--features driving_features.npz --out render.mkv --out-json render.json``

One frame per driving feature frame (25 fps). Head pose and blink come from the twin's own video,
played forwards and backwards (0, 1, ..., T-1, T-2, ..., 1, 0, 1, ...) so that the motion never
jumps; the audio codes come from the driving features, smoothed over the attention window.

``render.mkv``: FFV1 RGBA at the dataset's resolution; RGB is the full composite (head over torso
over the background plate), alpha the head's opacity (for the head-only paste-back).
``render.json``: ``frame_index`` (the twin's frame whose pose and blink each output frame uses),
``fps``, ``crop`` (x, y, side, frame side), ``res``, the checkpoints' steps and feature kind.

ER-NeRF's inference options (render options in renders.tsv, see :mod:`twinflow.nerf.plan`):
``--smooth-path N`` (cameras averaged over N frames), ``--smooth-lips`` (audio codes smoothed
frame to frame), ``--smooth-eye`` (blink averaged over 3 frames), ``--fix-eye X`` (a constant
blink), ``--bg white|black`` (instead of the background plate).

A time range of the driving audio (render options ``start=`` / ``end=``, seconds): ``--start S
--end E`` renders the feature frames ``round(S x fps)`` up to ``round(E x fps)`` (the end
clamped to the audio); the audio codes still read the whole sequence, so the first and last
frames' smoothing windows see the real neighbouring audio. ``render.json: audio_start_s`` is the
start the mux cuts the audio at.

Depth (render option ``depth=1``): ``--depth-out depth.mkv`` writes the head's depth per frame
(FFV1 grey, 8 bit): with the ``ernerf`` sampler ER-NeRF's own (``(depth - near) / (far - near)``
per ray, written as its ``_depth.mp4`` frames: ``uint8(depth x 255)``), with the ``stratified``
sampler the expected depth along each ray with opacity above 0.01, min-max normalised over the
frame's head pixels (near white, far black is not implied: 0 = nearest), 0 elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time

import numpy as np
import torch

from twinflow.errors import TwinflowError

log = logging.getLogger("twinflow.nerf.render")


def pingpong(n_out: int, n_frames: int, start: int = 0) -> np.ndarray:
    """Frame indices ``(n_out,)`` that walk 0..T-1 and back, starting at ``start``."""
    if n_frames == 1:
        return np.zeros(n_out, int)
    period = 2 * (n_frames - 1)
    k = (np.arange(n_out) + start) % period
    return np.where(k < n_frames, k, period - k)


def smooth_path(c2w: np.ndarray, window: int) -> np.ndarray:
    """ER-NeRF's ``--smooth_path``: each camera ``(T, 4, 4)`` becomes the mean of its
    ``window`` neighbours (positions averaged, rotations by their chordal mean)."""
    from scipy.spatial.transform import Rotation

    out = c2w.copy()
    k = window // 2
    for i in range(len(c2w)):
        lo, hi = max(0, i - k), min(len(c2w), i + k + 1)
        out[i, :3, 3] = c2w[lo:hi, :3, 3].mean(0)
        out[i, :3, :3] = Rotation.from_matrix(c2w[lo:hi, :3, :3]).mean().as_matrix()
    return out


def smooth_eye(blink: np.ndarray) -> np.ndarray:
    """ER-NeRF's ``--smooth_eye``: the mean of each frame's and its two neighbours' eye value."""
    padded = np.concatenate([blink[:1], blink, blink[-1:]])
    out = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    out[0], out[-1] = blink[:2].mean(), blink[-2:].mean()
    return out.astype(blink.dtype)


def smooth_lips(codes: torch.Tensor, keep: float = 0.35) -> torch.Tensor:
    """ER-NeRF's ``--smooth_lips``: each frame's audio code becomes ``keep x previous (smoothed)
    + (1 - keep) x its own``, frame after frame."""
    out = codes.clone()
    for k in range(1, len(out)):
        out[k] = keep * out[k - 1] + (1 - keep) * codes[k]
    return out


def load_models(head_path: str, torso_path: str | None, kind: str, dim: int, device):
    """Head (lips) and torso checkpoints, refusing features of another kind or size."""
    from twinflow.nerf.model import load_head, load_torso
    from twinflow.train import load_checkpoint

    expect = {"audio_features": kind, "audio_dim": dim}
    head_ckpt = load_checkpoint(head_path, expect=expect, map_location=device)
    head = load_head(head_ckpt, device)
    torso, torso_steps = None, None
    if torso_path:
        torso_ckpt = load_checkpoint(torso_path, expect=expect, map_location=device)
        torso, torso_steps = load_torso(torso_ckpt, device), int(torso_ckpt["steps"])
    return head, torso, {"head_steps": int(head_ckpt["steps"]), "torso_steps": torso_steps}


@torch.no_grad()
def render_sequence(
    head, torso, data, feats: torch.Tensor, frame_index: np.ndarray, chunk: int, callback,
    lips: bool = False, first: int = 0,
) -> None:  # fmt: skip
    """Render ``len(frame_index)`` frames, driven by the feature frames from ``first`` on;
    ``callback(k, out)`` receives each frame's outputs. ``lips``: ER-NeRF's ``--smooth_lips``
    on the audio codes."""
    from twinflow.nerf.model import render_frame

    codes = []
    end = first + len(frame_index)
    for s in range(first, end, 64):
        idx = torch.arange(s, min(s + 64, end), device=feats.device)
        codes.append(head.audio_codes(feats, idx, smooth=True))
    codes = torch.cat(codes)
    if lips:
        codes = smooth_lips(codes)
    for k, f in enumerate(frame_index):
        out = render_frame(
            head, torso, data.c2w[f], data.intrinsics, data.res, data.box, codes[k],
            float(data.blink[f]), data.bg, data.head_region, chunk,
        )  # fmt: skip
        callback(k, out)


def apply_options(data, args) -> None:
    """The render's ER-NeRF inference options on the loaded dataset (cameras, blink, plate)."""
    if args.smooth_path > 1:
        c2w = smooth_path(data.c2w.cpu().numpy().astype(np.float64), args.smooth_path)
        data.c2w = torch.as_tensor(c2w, dtype=torch.float32, device=data.c2w.device)
    if args.smooth_eye:
        blink = smooth_eye(data.blink.cpu().numpy())
        data.blink = torch.as_tensor(blink, device=data.blink.device)
    if args.fix_eye is not None and args.fix_eye >= 0:
        data.blink = torch.full_like(data.blink, args.fix_eye)
    if args.bg:
        colour = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}.get(args.bg)
        if colour is None:
            raise TwinflowError(f"background '{args.bg}' is not white or black")
        data.bg = torch.tensor(colour, device=data.bg.device).expand_as(data.bg).clone()


def frame_range(n: int, fps: float, start: float | None, end: float | None) -> tuple[int, int]:
    """Feature frames ``[first, last)`` of a time range in seconds (``end`` clamped to ``n``);
    ValueError when the range is empty."""
    first = round((start or 0.0) * fps)
    last = n if end is None else min(n, round(end * fps))
    if first < 0 or first >= last:
        raise ValueError(
            f"time range start={start} end={end} s is empty for {n} frames ({n / fps:.2f} s)"
        )
    return first, last


def depth_image(out: dict[str, torch.Tensor], sampler: str) -> np.ndarray:
    """The head's depth of one rendered frame as ``(res, res) uint8`` (module docstring)."""
    depth = out["depth"]
    if sampler != "ernerf":
        acc = out["acc"]
        hit = acc > 0.01
        d = torch.where(hit, depth / acc.clamp(min=1e-6), torch.zeros_like(depth))
        if hit.any():
            lo, hi = d[hit].min(), d[hit].max()
            d = torch.where(hit, (d - lo) / (hi - lo).clamp(min=1e-6), torch.zeros_like(d))
        depth = d
    return (depth.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)  # ER-NeRF truncates


def to_rgba(out: dict[str, torch.Tensor]) -> np.ndarray:
    rgb = (out["rgb"].cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
    a = (out["acc"].cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return np.concatenate([rgb, a[..., None]], -1)


def run(args: argparse.Namespace) -> None:
    from twinflow.atomic import write_json
    from twinflow.device import pick_device
    from twinflow.nerf.audio_features import load_features
    from twinflow.nerf.data import NerfData
    from twinflow.perception.store import MaskWriter

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = NerfData(args.dataset, None, None, device=device)
    feats_np, info = load_features(args.features)
    head, torso, steps = load_models(
        args.head, args.torso, info["kind"], int(feats_np.shape[-1]), device
    )
    if abs(float(info["fps"]) - data.fps) > 1e-6:
        raise TwinflowError(
            f"driving features are at {info['fps']} fps, the twin's video at {data.fps}"
        )
    feats = torch.as_tensor(feats_np, device=device)
    apply_options(data, args)
    try:
        first, last = frame_range(len(feats), data.fps, args.start, args.end)
    except ValueError as err:
        raise TwinflowError(f"render '{args.render}': {err}") from err
    n_out = last - first
    frame_index = pingpong(n_out, data.n_frames)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(MaskWriter(args.out, data.fps, kind="rgba"))
        depth_writer = None
        if args.depth_out:
            depth_writer = stack.enter_context(MaskWriter(args.depth_out, data.fps, kind="gray"))

        def write(k: int, out: dict) -> None:
            writer.write(to_rgba(out))
            if depth_writer is not None:
                depth_writer.write(depth_image(out, head.cfg.sampler))
            if (k + 1) % 25 == 0:
                log.info(
                    "%d / %d frames (%.2f s per frame)",
                    k + 1,
                    n_out,
                    (time.perf_counter() - t0) / (k + 1),
                )

        render_sequence(
            head, torso, data, feats, frame_index, args.chunk or head.cfg.chunk, write,
            lips=args.smooth_lips, first=first,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    write_json(
        args.out_json,
        {
            "render": args.render,
            "frames": n_out,
            "audio_frames": [first, last],
            "audio_start_s": first / data.fps,
            "frame_index": frame_index.tolist(),
            "fps": data.fps,
            "crop": data.crop.tolist(),
            "res": data.res,
            "audio_features": info["kind"],
            "options": {
                k: getattr(args, k)
                for k in (
                    "smooth_path",
                    "smooth_lips",
                    "smooth_eye",
                    "fix_eye",
                    "bg",
                    "start",
                    "end",
                )
            },
            "depth": bool(args.depth_out),
            "seconds": seconds,
            **steps,
        },
    )
    log.info(
        "%d frames at %d px in %.1f s (%.2f frames/s)",
        n_out,
        data.res,
        seconds,
        n_out / max(seconds, 1e-9),
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.render", description=__doc__)
    p.add_argument("--render", required=True, help="render id (for messages)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--head", required=True, help="lips.pt (or head.pt)")
    p.add_argument("--torso", default=None, help="torso.pt (without: the plate behind the head)")
    p.add_argument("--features", required=True, help="driving audio features")
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--smooth-path", type=int, default=0, help="ER-NeRF --smooth_path window")
    p.add_argument("--smooth-lips", action="store_true", help="ER-NeRF --smooth_lips")
    p.add_argument("--smooth-eye", action="store_true", help="ER-NeRF --smooth_eye")
    p.add_argument("--fix-eye", type=float, default=None, help="ER-NeRF --fix_eye (0..1)")
    p.add_argument("--bg", default=None, help="white or black instead of the plate")
    p.add_argument("--start", type=float, default=None, help="time range: first second")
    p.add_argument("--end", type=float, default=None, help="time range: last second")
    p.add_argument("--depth-out", default=None, help="depth.mkv (the head's depth, grey)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="render.mkv (RGBA)")
    p.add_argument("--out-json", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
