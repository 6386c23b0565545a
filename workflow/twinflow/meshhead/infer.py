"""Stage ``meshhead_infer``: the mesh sequence of a driving audio, any length.

``python -m twinflow.meshhead.infer --render ID --model audio2mesh.pt --audio audio.wav
[--speaker NAME] [--window N] [--history N] --out mesh.npz``

``mesh.npz``: ``disp (T, V, 3)`` float32 displacement from the template (metres, head frame),
``vertices (T, V, 3)`` = template + disp, ``template (V, 3)``, ``edges (E, 2)``,
``mouth_index``, ``fps``, ``topology``, ``info`` (model, windows, speaker, seconds).
Decoding is autoregressive in windows that carry their history (see
:func:`twinflow.meshhead.audio2mesh.generate`). ``--model`` may be a checkpoint converted from
FaceFormer (``python -m twinflow.convert faceformer``); such a model takes the raw audio and, as
FaceFormer, decodes as many frames as its wav2vec2 yields (e.g. 59 at 30 fps or 49 at 25 fps
for 2 s of audio, one or two fewer than ``duration x fps``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.audio import read_wav
from twinflow.meshhead.audio import audio_features, n_motion_frames
from twinflow.meshhead.audio2mesh import Audio2Mesh, MotionBasis, generate
from twinflow.meshhead.common import add_common, save_npz, setup_torch
from twinflow.meshhead.presets import Audio2MeshConfig
from twinflow.meshhead.wav2vec2 import normalise_wave
from twinflow.train import load_checkpoint

log = logging.getLogger("twinflow.meshhead.infer")


class Audio2MeshRunner:
    """A trained audio-to-mesh checkpoint, ready to decode audio into displacements."""

    def __init__(
        self, path: str | Path, device: torch.device | str = "cpu", registry="models/registry.yaml"
    ):
        ckpt = load_checkpoint(path, expect={"stage": "meshhead.audio2mesh"})
        self.meta = ckpt["meta"]
        self.extra = ckpt["extra"]
        self.cfg = Audio2MeshConfig(**self.meta["config"])
        self.device = torch.device(device)
        self.registry = registry
        self.model = Audio2Mesh(
            self.cfg,
            self.meta["n_out"],
            len(self.extra["speakers"]),
            self.meta["feat_dim"],
            wav2vec2_config=self.meta.get("wav2vec2_config"),
            fps=self.fps,
        )
        self.model.load_state_dict(ckpt["modules"]["model"])
        self.model.to(self.device).eval()
        self.basis = MotionBasis.from_state(self.extra["basis"])
        self.steps = int(ckpt["steps"])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    def features(self, samples: np.ndarray, sample_rate: int) -> torch.Tensor:
        """The model's input: audio features ``(1, pT, F)``, or the normalised raw audio
        ``(1, N)`` of a raw-audio (FaceFormer) model."""
        if sample_rate != self.meta["sample_rate"]:
            raise InputError(
                f"audio has {sample_rate} Hz, the model was trained at {self.meta['sample_rate']} Hz"
            )
        if self.model.raw_audio:
            return torch.from_numpy(normalise_wave(samples))[None].to(self.device)
        f = audio_features(
            samples, sample_rate, self.fps, self.cfg.audio_encoder, self.cfg.n_mels, self.registry
        )
        f = (f - self.extra["feat_mean"]) / self.extra["feat_std"]
        return torch.from_numpy(f.astype(np.float32))[None].to(self.device)

    def style(self, speaker: str | None) -> torch.Tensor:
        names = list(self.extra["speakers"])
        speaker = speaker or self.extra.get("default_speaker")
        if speaker is None:
            index = 0
        elif speaker in names:
            index = names.index(speaker)
        else:
            raise InputError(f"speaker '{speaker}' is not one the model knows ({', '.join(names)})")
        s = torch.zeros(1, len(names), device=self.device)
        s[0, index] = 1
        return s

    @torch.no_grad()
    def predict(
        self,
        samples: np.ndarray,
        sample_rate: int,
        *,
        speaker: str | None = None,
        window: int | None = None,
        history: int | None = None,
    ) -> np.ndarray:
        """Displacement ``(T, V, 3)`` for ``T = n_motion_frames`` frames of the audio (a
        raw-audio model: the frames its encoder yields, as FaceFormer's ``predict``)."""
        window = window or self.cfg.window
        feats = self.features(samples, sample_rate)
        if self.model.raw_audio:
            memory = self.model.encode(feats, chunk_frames=window)
            n = memory.shape[1] // self.cfg.audio_per_frame
        else:
            n = n_motion_frames(len(samples), sample_rate, self.fps)
            memory = self.model.encode(feats)
        z = generate(
            self.model,
            memory,
            n,
            self.style(speaker),
            window,
            self.cfg.history if history is None else history,
        )
        scale = float(self.extra.get("output_scale", 1.0))
        return (scale * self.basis.decode(z.cpu().numpy())).astype(np.float32)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.infer", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--speaker", default=None, help="style: a speaker of the training data")
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--history", type=int, default=None)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    runner = Audio2MeshRunner(args.model, device, args.registry)
    samples, sr = read_wav(args.audio)
    t0 = time.perf_counter()
    disp = runner.predict(
        samples, sr, speaker=args.speaker, window=args.window, history=args.history
    )
    seconds = time.perf_counter() - t0
    template = runner.extra["template"].astype(np.float32)
    log.info("%d frames (%.1f s of audio) decoded in %.1f s", len(disp), len(samples) / sr, seconds)
    save_npz(
        args.out,
        disp=disp,
        vertices=(template + disp).astype(np.float32),
        template=template,
        edges=np.asarray(runner.extra["edges"], np.int64),
        mouth_index=np.asarray(runner.extra["mouth_index"], np.int64),
        fps=np.array(runner.fps),
        topology=np.array(runner.meta["topology"]),
        info={
            "model": args.model,
            "model_steps": runner.steps,
            "audio": args.audio,
            "frames": len(disp),
            "window": args.window or runner.cfg.window,
            "history": runner.cfg.history if args.history is None else args.history,
            "speaker": args.speaker
            or runner.extra.get("default_speaker")
            or runner.extra["speakers"][0],
            "decode_seconds": seconds,
        },
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
