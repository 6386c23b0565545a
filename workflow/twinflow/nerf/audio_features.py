"""Stage ``audio_features``: speech -> per-video-frame audio feature windows ``[N, 16, C]``.

``python -m twinflow.nerf.audio_features --wav audio.wav --kind logmel --fps 25 --out feats.npz``

Layout (as DeepSpeech features in AD-NeRF / ER-NeRF): video frame ``i`` at time ``i / fps`` gets
16 consecutive feature vectors of 20 ms (50 per second), the 8 before its time and the 8 from it
on (a 320 ms window centred on the frame; zero-padded past the ends of the audio, where the
features are those of silence). ``N = round(duration x fps)``.

Kinds (``--kind``, stored with every checkpoint trained on them; a model refuses features of
another kind):

``logmel`` (default, built in)  librosa log-mel spectrogram, ``C = n_mels`` (32), 25 ms Hann
                                windows every 20 ms, 80-7600 Hz; standardised per mel band over
                                the file (so loudness and microphone differences matter less).
``hubert``                      hidden states of a user-supplied HuBERT checkpoint (registry
                                entry ``hubert-large-ls960``, ``C = 1024``), 50 per second.
``wav2vec2``                    likewise for ``wav2vec2-base-960h`` (``C = 768``).

The checkpoint kinds need the ``transformers`` package (not installed by default) and the model
folder in ``models/`` (``python -m twinflow.models list``); both are checked with a clear error.

``hubert_ernerf``                ER-NeRF's HuBERT features (``aud_hu.npy``) as its
                                ``data_utils/hubert.py`` computes them: the same checkpoint, run
                                clip by clip over long audio, ``[N, 2, 1024]``: the two 20 ms
                                vectors of each 25 fps frame (no window).

Imported kinds (``--npy FILE``, for models converted from ER-NeRF, whose features twinflow
cannot compute): ``deepspeech`` (``aud_ds.npy``, ``[N, 16, 29]``), ``esperanto``
(``aud_eo.npy``, ``[N, 16, 44]``), ``ernerf_aud`` (``aud.npy``, ``[N, 16, 32]``); and
``hubert_ernerf`` files (``aud_hu.npy``).

Output ``.npz``: ``features (N, 16, C) float32``, ``info`` (JSON text: kind, fps, windows,
window_ms, dim, sample_rate, seconds, source, model checksum for checkpoint kinds).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from twinflow.atomic import atomic_path
from twinflow.errors import InputError, ModelFileError, TwinflowError

log = logging.getLogger("twinflow.nerf.audio_features")

KINDS = {
    "logmel": None,
    "hubert": "hubert-large-ls960",
    "wav2vec2": "wav2vec2-base-960h",
    "hubert_ernerf": "hubert-large-ls960",
}
# ER-NeRF's precomputed files (imported with --npy): kind -> (windows per frame, width)
IMPORTED = {"deepspeech": (16, 29), "esperanto": (16, 44), "hubert_ernerf": (2, 1024),
            "ernerf_aud": (16, 32)}  # fmt: skip
HUBERT_KERNEL, HUBERT_STRIDE = 400, 320  # HuBERT's convolutional front end, in samples
WINDOWS = 16  # feature vectors per video frame
STEP_S = 0.02  # 20 ms per feature vector (50 per second)
N_MELS = 32


def n_video_frames(n_samples: int, sample_rate: int, fps: float) -> int:
    return max(1, int(round(n_samples / sample_rate * fps)))


def logmel(samples: np.ndarray, sample_rate: int, n_mels: int = N_MELS) -> np.ndarray:
    """Log-mel frames every 20 ms, ``(M, n_mels)``; frame ``k`` is centred at ``k x 20 ms``."""
    import librosa

    hop = int(round(STEP_S * sample_rate))
    win = int(round(0.025 * sample_rate))
    mel = librosa.feature.melspectrogram(
        y=samples.astype(np.float32),
        sr=sample_rate,
        n_fft=max(512, int(2 ** np.ceil(np.log2(win)))),
        hop_length=hop,
        win_length=win,
        window="hann",
        center=True,
        n_mels=n_mels,
        fmin=80.0,
        fmax=min(7600.0, sample_rate / 2),
        power=2.0,
    )
    logm = np.log(mel + 1e-6).T  # (M, n_mels)
    mean, std = logm.mean(0, keepdims=True), logm.std(0, keepdims=True)
    return ((logm - mean) / np.maximum(std, 1e-3)).astype(np.float32)


def frame_windows(steps: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """``(M, C)`` features at 50 per second -> ``(n_frames, 16, C)`` windows centred on frames."""
    per_frame = 1.0 / (fps * STEP_S)  # feature steps per video frame (2 at 25 fps)
    centre = np.round(np.arange(n_frames) * per_frame).astype(int)
    idx = centre[:, None] + np.arange(WINDOWS)[None, :] - WINDOWS // 2
    padded = np.concatenate([np.zeros((1, steps.shape[1]), np.float32), steps], 0)
    valid = (idx >= 0) & (idx < len(steps))
    return padded[np.where(valid, idx + 1, 0)]


def checkpoint_features(
    samples: np.ndarray, sample_rate: int, kind: str, registry: str
) -> tuple[np.ndarray, str]:
    """Hidden states ``(M, C)`` at 50 per second of the registered ``kind`` checkpoint."""
    from twinflow.models import checksum, resolve

    name = KINDS[kind]
    try:
        import transformers  # noqa: F401
    except ImportError as err:
        raise TwinflowError(
            f"audio features '{kind}' need the 'transformers' package (pip install transformers) "
            f"and the model '{name}' in models/; or use the built-in 'logmel' features"
        ) from err
    path = resolve(name, registry)  # ModelFileError when missing or not matching its checksum
    import torch
    from transformers import AutoModel, AutoProcessor

    if sample_rate != 16000:
        raise InputError(f"'{kind}' features need 16 kHz audio, got {sample_rate} Hz")
    processor = AutoProcessor.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    with torch.no_grad():
        inputs = processor(samples, sampling_rate=16000, return_tensors="pt")
        if kind == "hubert_ernerf":  # ER-NeRF's clip-by-clip run over long audio
            run = lambda x: model(x).last_hidden_state  # noqa: E731
            hidden = ernerf_hubert_hidden(inputs.input_values, run).numpy()
        else:
            hidden = model(inputs.input_values).last_hidden_state[0].numpy()  # (~50/s, C)
    return hidden.astype(np.float32), checksum(path)


def ernerf_hubert_hidden(input_values, model_fn, clip_frames: int = 1000):
    """ER-NeRF's ``get_hubert_from_16k_speech`` (data_utils/hubert.py): the normalised input
    ``(1, n)`` through ``model_fn`` (-> ``(1, T, C)`` hidden states) in clips of
    ``clip_frames`` output frames (``HUBERT_STRIDE x clip_frames`` samples, each clip extended by
    ``kernel - stride`` so that none overlap), the tail only when at least a kernel long; then
    cut or zero-padded to ``(n - (kernel - stride)) // stride`` frames. -> ``(T, C)``."""
    import torch

    k, s = HUBERT_KERNEL, HUBERT_STRIDE
    clip = s * clip_frames
    n = input_values.shape[1]
    expected = (n - (k - s)) // s
    parts = []
    for i in range(n // clip):
        start = clip * i
        parts.append(model_fn(input_values[:, start : start + clip - s + k])[0])
    tail = input_values[:, clip * (n // clip) :]
    if tail.shape[1] >= k:
        parts.append(model_fn(tail)[0])
    hidden = torch.cat(parts, 0)
    if abs(len(hidden) - expected) > 1:
        raise TwinflowError(f"HuBERT gave {len(hidden)} frames, expected {expected}")
    if len(hidden) < expected:
        hidden = torch.nn.functional.pad(hidden, (0, 0, 0, expected - len(hidden)))
    return hidden[:expected]


def ernerf_pairs(hidden: np.ndarray) -> np.ndarray:
    """``(T, C)`` at 50 per second -> ER-NeRF's ``(T // 2, 2, C)``: two vectors per 25 fps frame
    (``make_even_first_dim`` and a reshape)."""
    t = len(hidden) - len(hidden) % 2
    return hidden[:t].reshape(-1, 2, hidden.shape[-1])


def compute(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    kind: str = "logmel",
    registry: str = "models/registry.yaml",
) -> tuple[np.ndarray, dict]:
    """Feature windows ``(N, 16, C)`` and their ``info`` for mono ``samples``."""
    if kind not in KINDS:
        raise TwinflowError(f"unknown audio feature kind '{kind}' (choose from {', '.join(KINDS)})")
    if len(samples) == 0:
        raise InputError("audio has no samples")
    n = n_video_frames(len(samples), sample_rate, fps)
    if kind == "logmel":
        steps, model_sum = logmel(samples, sample_rate), None
    else:
        steps, model_sum = checkpoint_features(samples, sample_rate, kind, registry)
    if kind == "hubert_ernerf":  # ER-NeRF's layout: the frame's own two vectors, 25 fps only
        if abs(fps - 25.0) > 1e-6:
            raise TwinflowError(f"'hubert_ernerf' features are for 25 fps video, not {fps}")
        feats = ernerf_pairs(steps)
        n = len(feats)
    else:
        feats = frame_windows(steps, n, fps)
    info = {
        "kind": kind,
        "fps": fps,
        "windows": int(feats.shape[1]),
        "window_ms": STEP_S * 1000,
        "dim": int(feats.shape[-1]),
        "sample_rate": sample_rate,
        "seconds": len(samples) / sample_rate,
        "n_frames": n,
        "model_sha256": model_sum,
    }
    return feats, info


def import_npy(path: str | Path, kind: str, fps: float) -> tuple[np.ndarray, dict]:
    """Features ``(N, W, C)`` and ``info`` of an ER-NeRF feature file (``aud_ds.npy``: DeepSpeech
    ``[N, 16, 29]``, ``aud_eo.npy``: wav2vec2 esperanto ``[N, 16, 44]``, ``aud_hu.npy``: HuBERT
    ``[N, 2, 1024]``), one window per video frame, as its ``data_utils`` scripts write them."""
    path = Path(path)
    if kind not in IMPORTED:
        raise TwinflowError(
            f"'{kind}' features are not imported from files (choose from {', '.join(IMPORTED)})"
        )
    if not path.is_file():
        raise InputError("audio feature file not found", path=path)
    feats = np.load(path, allow_pickle=False)
    windows, dim = IMPORTED[kind]
    if feats.ndim != 3 or feats.shape[1:] != (windows, dim):
        raise InputError(
            f"has shape {feats.shape}; '{kind}' features are [N, {windows}, {dim}]", path=path
        )
    info = {
        "kind": kind, "fps": fps, "windows": windows, "window_ms": STEP_S * 1000, "dim": dim,
        "n_frames": len(feats), "seconds": len(feats) / fps, "source": str(path),
        "model_sha256": None,
    }  # fmt: skip
    return feats.astype(np.float32), info


def save_features(path: str | Path, feats: np.ndarray, info: dict) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, features=feats.astype(np.float32), info=np.array(json.dumps(info)))


def load_features(path: str | Path) -> tuple[np.ndarray, dict]:
    """``(features (N, 16, C), info)`` of a file written by this stage."""
    path = Path(path)
    if not path.exists():
        raise InputError("audio features not found", path=path)
    with np.load(path, allow_pickle=False) as data:
        feats, info = data["features"], json.loads(str(data["info"]))
    windows = int(info.get("windows", WINDOWS))
    if feats.ndim != 3 or feats.shape[1] != windows:
        raise InputError(
            f"audio features have shape {feats.shape}, expected (N, {windows}, C)", path=path
        )
    return feats, info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.audio_features", description=__doc__)
    p.add_argument("--twin", default=None, help="twin id (for messages)")
    p.add_argument("--render", default=None, help="render id (for messages)")
    p.add_argument("--wav", required=True)
    p.add_argument("--kind", default="logmel", choices=sorted([*KINDS, *IMPORTED]))
    p.add_argument(
        "--npy", default=None, help="import this ER-NeRF feature file instead (imported kinds)"
    )
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.media.audio import read_wav

    if args.npy or (args.kind in IMPORTED and args.kind not in KINDS):
        if not args.npy:
            raise TwinflowError(f"'{args.kind}' features cannot be computed here: give --npy")
        feats, info = import_npy(args.npy, args.kind, args.fps)
        save_features(args.out, feats, info)
        log.info("%s features %s imported from %s", args.kind, feats.shape, args.npy)
        return
    if not Path(args.wav).exists():
        raise InputError("file not found", path=args.wav)
    samples, sr = read_wav(args.wav)
    try:
        feats, info = compute(samples, sr, args.fps, args.kind, args.registry)
    except ModelFileError:
        raise
    info["source"] = str(args.wav)
    save_features(args.out, feats, info)
    log.info("%s features %s for %.2f s of audio", args.kind, feats.shape, info["seconds"])


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
