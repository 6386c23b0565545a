"""Audio features for audio-to-mesh: two feature frames per motion frame (50 Hz at 25 fps).

``logmel`` (default, no weights): log mel spectrogram (25 ms Hann window, hop of half a motion
frame, ``n_mels`` HTK-mel bins 40 Hz - 7.6 kHz), standardised per bin with the training
audio's statistics. ``wav2vec2``: the hidden states of a user-supplied wav2vec2 checkpoint
(``models/registry.yaml`` entry ``wav2vec2-base-960h``; needs the ``transformers`` package),
resampled to the same rate. Long audio is encoded in 20 s chunks with 1 s margins.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.errors import TwinflowError

WAV2VEC2 = "wav2vec2-base-960h"


def n_motion_frames(n_samples: int, sample_rate: int, fps: float) -> int:
    """Motion frames a clip of ``n_samples`` covers (the last partial frame is dropped)."""
    return max(1, int(math.floor(n_samples / sample_rate * fps + 1e-6)))


def _mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, fmin: float, fmax: float
) -> torch.Tensor:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:, None] - edges[1:-1, None])
    fb = np.maximum(0.0, np.minimum(lower, upper))
    fb *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area (Slaney)
    return torch.from_numpy(fb.astype(np.float32))


def logmel(samples: np.ndarray, sample_rate: int, fps: float, n_mels: int = 80) -> np.ndarray:
    """``(2 T, n_mels)`` float32 log-mel frames for ``T = n_motion_frames`` motion frames;
    feature frame ``2 t + i`` is centred at time ``(t + (2 i + 1) / 4) / fps``."""
    n_frames = n_motion_frames(len(samples), sample_rate, fps)
    hop = sample_rate / (2 * fps)
    win = int(round(0.025 * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    wave = torch.from_numpy(np.asarray(samples, np.float32))
    # frames at exact (fractional) hop positions: stft at an integer hop, then interpolate
    int_hop = max(1, int(math.floor(hop)))
    spec = (
        torch.stft(
            wave,
            n_fft=n_fft,
            hop_length=int_hop,
            win_length=win,
            window=torch.hann_window(win),
            center=True,
            return_complex=True,
        ).abs()
        ** 2
    )
    mel = _mel_filterbank(n_fft, n_mels, sample_rate, 40.0, min(7600.0, sample_rate / 2)) @ spec
    feats = torch.log(mel + 1e-6).T  # (frames, n_mels), frame j centred at j * int_hop
    centres = (np.arange(2 * n_frames) + 0.5) * hop
    pos = torch.from_numpy(centres / int_hop).float().clamp(0, feats.shape[0] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=feats.shape[0] - 1)
    w = (pos - lo.float())[:, None]
    return ((1 - w) * feats[lo] + w * feats[hi]).numpy().astype(np.float32)


def require_transformers():
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise TwinflowError(
            "audio_encoder 'wav2vec2' needs the 'transformers' package, which is not installed "
            "in this environment (pip install transformers), and a wav2vec2 checkpoint folder "
            f"at models/ (registry name {WAV2VEC2}); or use the built-in audio_encoder 'logmel'"
        ) from None
    return transformers


def wav2vec2_features(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    registry: str | Path,
    chunk_s: float = 20.0,
    margin_s: float = 1.0,
) -> np.ndarray:
    """``(2 T, 768)`` wav2vec2 hidden states at two frames per motion frame (frozen encoder)."""
    from twinflow.models import resolve

    path = resolve(WAV2VEC2, registry)
    transformers = require_transformers()
    if sample_rate != 16000:
        raise TwinflowError(f"wav2vec2 needs 16 kHz audio, got {sample_rate} Hz")
    model = transformers.Wav2Vec2Model.from_pretrained(str(path)).eval()
    n_frames = n_motion_frames(len(samples), sample_rate, fps)
    wave = np.asarray(samples, np.float32)
    wave = (wave - wave.mean()) / (wave.std() + 1e-7)
    step, margin = int(chunk_s * sample_rate), int(margin_s * sample_rate)
    rate = 50.0  # wav2vec2 frames per second (20 ms stride)
    parts = []
    with torch.no_grad():
        for start in range(0, len(wave), step):
            lo, hi = max(0, start - margin), min(len(wave), start + step + margin)
            hidden = model(torch.from_numpy(wave[lo:hi])[None]).last_hidden_state[0]
            a = int(round((start - lo) / sample_rate * rate))
            b = a + int(round(min(step, len(wave) - start) / sample_rate * rate))
            parts.append(hidden[a:b])
    feats = torch.cat(parts)
    out = F.interpolate(feats.T[None], size=2 * n_frames, mode="linear", align_corners=False)
    return out[0].T.numpy().astype(np.float32)


def audio_features(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    encoder: str,
    n_mels: int = 80,
    registry: str | Path = "models/registry.yaml",
) -> np.ndarray:
    """Features of ``encoder`` (``"logmel"`` or ``"wav2vec2"``), ``(2 T, F)``."""
    if encoder == "logmel":
        return logmel(samples, sample_rate, fps, n_mels)
    if encoder == "wav2vec2":
        return wav2vec2_features(samples, sample_rate, fps, registry)
    raise TwinflowError(f"unknown audio encoder '{encoder}'")
