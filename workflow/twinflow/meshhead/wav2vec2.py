"""FaceFormer's audio encoder: a wav2vec2 inside the model, fine-tuned with it.

``audio_encoder="wav2vec2_finetune"`` (presets ``vocaset``, ``biwi``, ``paper``). Raw audio,
normalised per clip as wav2vec2's feature extractor does (:func:`normalise_wave`), goes through
transformers' ``Wav2Vec2Model`` built from a stored config (the checkpoint's ``wav2vec2_config``;
wav2vec2-base-960h's architecture for FaceFormer's checkpoints):

1. the CNN feature encoder (frozen: never trained, as FaceFormer) gives 512-d frames at
   ``sample_rate / 320`` = 50 Hz;
2. those frames are brought to ``audio_per_frame x fps`` frames per second BEFORE the
   transformer, as FaceFormer's ``wav2vec.py`` does: at exactly that rate (BIWI: 2 x 25 fps) an
   odd last frame is dropped and, given a frame count, the excess cut; otherwise (VOCASET: 1 x 30
   fps) linear interpolation with ``align_corners=True`` to ``n_frames x audio_per_frame``
   frames, or ``int(S / 50 x rate)`` when no frame count is given;
3. feature projection, SpecAugment-style time masking while training (the config's
   ``mask_time_prob``), the transformer encoder (with its LayerDrop while training);
4. a linear map to ``d_model`` (FaceFormer's ``audio_feature_map``).

Audio longer than ``chunk_frames`` motion frames (a reference preset: its 600-frame
``max_seq_len``, beyond which FaceFormer fails) runs steps 3-4 on chunks of that many frames
with 1 s margins each side (the CNN and the resampling still see the whole clip); shorter audio
runs in one pass, exactly as the reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.audio import require_transformers

CNN_RATE = 50.0  # wav2vec2 CNN frames per second at 16 kHz (stride 320)


def normalise_wave(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (``var + 1e-7``), float32: wav2vec2's feature extractor
    (``do_normalize``), which FaceFormer applies to each whole clip before the model."""
    x = np.asarray(samples, np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def build_wav2vec2(config: dict[str, Any]) -> nn.Module:
    """transformers' ``Wav2Vec2Model`` with the architecture of ``config`` (a
    ``Wav2Vec2Config.to_dict()``), random weights."""
    transformers = require_transformers()
    return transformers.Wav2Vec2Model(transformers.Wav2Vec2Config.from_dict(dict(config)))


class Wav2Vec2Encoder(nn.Module):
    """Normalised raw audio ``(B, N)`` -> memory ``(B, audio_per_frame x T, d_model)``."""

    def __init__(self, config: dict[str, Any], d_model: int, audio_per_frame: int, fps: float):
        super().__init__()
        self.wav2vec2 = build_wav2vec2(config)
        self.wav2vec2.freeze_feature_encoder()
        self.feature_map = nn.Linear(self.wav2vec2.config.hidden_size, d_model)
        self.per_frame = int(audio_per_frame)
        self.fps = float(fps)

    @property
    def rate(self) -> float:
        """Audio frames per second the decoder's alignment expects."""
        return self.per_frame * self.fps

    def cnn_to_rate(self, feats: torch.Tensor, n_frames: int | None) -> torch.Tensor:
        """CNN frames ``(B, S, C)`` at 50 Hz -> ``(B, per_frame x T, C)`` (module docstring, 2.)."""
        if abs(self.rate - CNN_RATE) < 1e-9:
            if feats.shape[1] % 2:
                feats = feats[:, :-1]
            if n_frames and feats.shape[1] > n_frames * self.per_frame:
                feats = feats[:, : n_frames * self.per_frame]
            return feats
        if n_frames:
            length = n_frames * self.per_frame
        else:
            length = int(feats.shape[1] / CNN_RATE * self.rate)
            length -= length % self.per_frame
        out = F.interpolate(feats.transpose(1, 2), size=length, align_corners=True, mode="linear")
        return out.transpose(1, 2)

    def transformer(self, feats: torch.Tensor) -> torch.Tensor:
        model = self.wav2vec2
        hidden = model.feature_projection(feats)[0]
        hidden = model._mask_hidden_states(hidden)  # training only (SpecAugment time masks)
        return self.feature_map(model.encoder(hidden).last_hidden_state)

    def forward(
        self, wave: torch.Tensor, n_frames: int | None = None, chunk_frames: int | None = None
    ) -> torch.Tensor:
        """``wave (B, N)``, normalised; ``n_frames``: the motion frames wanted (training: the
        target's length; the result may still be shorter, see the module docstring);
        ``chunk_frames``: encode longer audio in chunks of that many motion frames."""
        feats = self.wav2vec2.feature_extractor(wave).transpose(1, 2)
        feats = self.cnn_to_rate(feats, n_frames)
        length = feats.shape[1]
        step = None if not chunk_frames else chunk_frames * self.per_frame
        if step is None or length <= step:
            return self.transformer(feats)
        margin = self.per_frame * int(math.ceil(self.fps))
        parts = []
        for start in range(0, length, step):
            lo, hi = max(0, start - margin), min(length, start + step + margin)
            out = self.transformer(feats[:, lo:hi])
            parts.append(out[:, start - lo : start - lo + min(step, length - start)])
        return torch.cat(parts, dim=1)
