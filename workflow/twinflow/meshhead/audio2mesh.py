"""FaceFormer audio-to-mesh model (Fan et al., CVPR 2022; github:EvelynFan/FaceFormer).

* **Audio encoder**: log-mel frames through dilated 1-D convolutions (no normalisation over time,
  so a chunk with enough margin encodes exactly like the whole clip), a projection of
  precomputed wav2vec2 features, or FaceFormer's fine-tuned wav2vec2 on raw audio
  (:mod:`twinflow.meshhead.wav2vec2`). ``audio_per_frame`` (2, or 1 as VOCASET) audio frames
  per motion frame.
* **Periodic positional encoding** (PPE): sinusoidal encoding of ``position mod period``, so
  that the encoding repeats every ``period`` frames and sequences of any length stay in the
  range seen in training. Positions are global frame indices, so a window of a long clip gets
  the same phases as it would in one pass.
* **Biased causal self-attention**: frame ``i`` sees frames ``j <= i`` with an ALiBi-style
  bias ``-slope_h * floor((i - j) / period)`` per head ``h`` (slopes as in ALiBi), so that
  attention prefers recent periods.
* **Alignment mask** in cross-attention: motion frame ``t`` attends only to audio frames
  ``p t - w ... p t + p - 1 + w`` (``p = audio_per_frame``, ``w = align_width``; 0 as in
  FaceFormer).
* **Decoder layers**: ``decoder="faceformer"`` is ``nn.TransformerDecoderLayer`` (post-norm:
  ``x = norm(x + sublayer(x))``, ReLU, dropout inside the feed-forward and on the encoded
  tokens, no final norm); ``"twinflow"`` is pre-norm with GELU and a final LayerNorm.
* **Style**: a one-hot speaker vector through a linear map, added to every input token.
* **Autoregressive decoding**: token 0 is the style embedding (plus a learned start vector with
  ``decoder="twinflow"``); token ``j > 0`` embeds the motion of frame ``j - 1``. FaceFormer's
  teacher-forced pass instead embeds a zero motion as token 0 (its ``vertice_map`` bias plus the
  style), and so does :meth:`Audio2Mesh.forward` with ``decoder="faceformer"``. Outputs are
  normalised PCA coefficients of the twin's motion, or the full displacement (normalised, or in
  metres as FaceFormer). A key/value cache makes each new frame cost one token
  (:func:`rollout`; FaceFormer re-runs the sequence per frame, with the same result).
* **Windowed decoding** (:func:`generate`): ``window`` new frames per window, each window
  starting with the ``history`` previous outputs as a teacher-forced prefix and global PPE
  phases, so that windows join without a seam and audio of any length can be decoded.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.presets import Audio2MeshConfig
from twinflow.meshhead.wav2vec2 import Wav2Vec2Encoder


def periodic_encoding(positions: torch.Tensor, d_model: int, period: int) -> torch.Tensor:
    """PPE of integer ``positions (...)`` -> ``(..., d_model)``; periodic with ``period``."""
    pos = torch.remainder(positions, period).float()[..., None]
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    pe = torch.zeros(*positions.shape, d_model)
    pe[..., 0::2] = torch.sin(pos * div)
    pe[..., 1::2] = torch.cos(pos * div)
    return pe


def alibi_slopes(n_heads: int) -> list[float]:
    """Head slopes of ALiBi (Press et al. 2022): a geometric sequence starting at 2^(-8/n)."""

    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_two(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def biased_causal_mask(n: int, n_heads: int, period: int) -> torch.Tensor:
    """``(n_heads, n, n)`` additive attention bias: ``-inf`` above the diagonal (the future),
    ``-slope_h * floor((i - j) / period)`` on and below it."""
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    steps = torch.div(i - j, period, rounding_mode="floor").float()
    slopes = torch.tensor(alibi_slopes(n_heads))[:, None, None]
    bias = -slopes * steps
    return bias.masked_fill((j > i)[None], float("-inf"))


def alignment_mask(n_motion: int, n_audio: int, width: int = 0, per_frame: int = 2) -> torch.Tensor:
    """``(n_motion, n_audio)`` bool, True where motion frame ``t`` may attend to audio frame
    ``a``: ``p t - width <= a <= p t + p - 1 + width`` (``p = per_frame``)."""
    t = torch.arange(n_motion)[:, None]
    a = torch.arange(n_audio)[None, :]
    p = per_frame
    return (a >= p * t - width) & (a <= p * t + p - 1 + width)


def _additive(allowed: torch.Tensor) -> torch.Tensor:
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))


class LogMelEncoder(nn.Module):
    """Log-mel frames ``(B, S, n_mels)`` -> ``(B, S, d_model)``; receptive field +-17 frames."""

    def __init__(self, n_in: int, channels: int, d_model: int, dropout: float):
        super().__init__()
        self.inp = nn.Conv1d(n_in, channels, 5, padding=2)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, 3, dilation=d, padding=d) for d in (1, 2, 4, 8)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in self.convs)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(channels, d_model)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.inp(feats.transpose(1, 2))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(x.transpose(1, 2)).transpose(1, 2)
            x = x + self.drop(conv(F.gelu(h)))
        return self.out(F.gelu(x.transpose(1, 2)))


class FeatureProjector(nn.Module):
    """Precomputed (wav2vec2) features -> ``d_model`` (FaceFormer's audio feature map)."""

    def __init__(self, n_in: int, d_model: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, d_model))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


class Activation(nn.Module):
    """The feed-forward's activation and the dropout after it (no parameters, so that the
    feed-forward's linear layers keep their keys ``ff.0`` / ``ff.2``)."""

    def __init__(self, name: str, dropout: float):
        super().__init__()
        self.fn = F.relu if name == "relu" else F.gelu
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fn(x))


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.h = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.o = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.h, d // self.h).transpose(1, 2)

    def forward(self, x, source, mask, cache: dict | None = None, append: bool = True):
        """``cache``: self-attention appends this call's keys and values to the cached ones;
        cross-attention (``append=False``) computes them once and reuses them."""
        q = self._split(self.q(x))
        if cache is not None and not append and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = (self._split(t) for t in self.kv(source).chunk(2, dim=-1))
            if cache is not None:
                if append and "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        b, _, t, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(b, t, -1))


class DecoderLayer(nn.Module):
    """Transformer decoder layer: biased causal self-attention, aligned cross-attention,
    feed-forward. ``post_norm``: ``nn.TransformerDecoderLayer``'s order (FaceFormer) with ReLU
    and dropout inside the feed-forward; else pre-norm with GELU."""

    def __init__(
        self, d_model: int, n_heads: int, ff: int, dropout: float, post_norm: bool = False
    ):
        super().__init__()
        self.post_norm = post_norm
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = Attention(d_model, n_heads, dropout)
        self.cross_attn = Attention(d_model, n_heads, dropout)
        act = Activation("relu", dropout) if post_norm else Activation("gelu", 0.0)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), act, nn.Linear(ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, self_mask, cross_mask, cache: dict | None = None):
        sc = None if cache is None else cache.setdefault("self", {})
        cc = None if cache is None else cache.setdefault("cross", {})
        if self.post_norm:
            x = self.ln1(x + self.drop(self.self_attn(x, x, self_mask, sc, append=True)))
            x = self.ln2(x + self.drop(self.cross_attn(x, memory, cross_mask, cc, append=False)))
            return self.ln3(x + self.drop(self.ff(x)))
        h = self.ln1(x)
        x = x + self.drop(self.self_attn(h, h, self_mask, sc, append=True))
        x = x + self.drop(self.cross_attn(self.ln2(x), memory, cross_mask, cc, append=False))
        return x + self.drop(self.ff(self.ln3(x)))


class Audio2Mesh(nn.Module):
    """Audio -> per-frame motion vectors (normalised PCA coefficients or offsets).

    ``feat_dim``: size of precomputed audio features (``logmel``, ``wav2vec2``); with
    ``wav2vec2_finetune`` the model takes raw audio and ``wav2vec2_config`` (a
    ``Wav2Vec2Config.to_dict()``) and ``fps`` (motion frames per second) are needed instead.
    """

    def __init__(
        self,
        cfg: Audio2MeshConfig,
        n_out: int,
        n_speakers: int,
        feat_dim: int = 0,
        *,
        wav2vec2_config: dict | None = None,
        fps: float = 25.0,
    ):
        super().__init__()
        self.cfg = cfg
        self.n_out = n_out
        self.n_speakers = n_speakers
        d = cfg.d_model
        faceformer = cfg.decoder == "faceformer"
        if cfg.audio_encoder == "logmel":
            self.audio = LogMelEncoder(feat_dim, cfg.audio_channels, d, cfg.dropout)
        elif cfg.audio_encoder == "wav2vec2_finetune":
            if wav2vec2_config is None:
                raise ValueError("audio_encoder 'wav2vec2_finetune' needs the wav2vec2 config")
            self.audio = Wav2Vec2Encoder(wav2vec2_config, d, cfg.audio_per_frame, fps)
        else:
            self.audio = FeatureProjector(feat_dim, d, cfg.dropout)
        self.motion_in = nn.Linear(n_out, d)
        self.style = nn.Linear(max(1, n_speakers), d, bias=False)
        self.start = None if faceformer else nn.Parameter(torch.zeros(d))
        self.token_drop = nn.Dropout(cfg.dropout if faceformer else 0.0)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.n_heads, cfg.ff_mult * d, cfg.dropout, post_norm=faceformer)
            for _ in range(cfg.n_layers)
        )
        self.norm = nn.Identity() if faceformer else nn.LayerNorm(d)
        self.out = nn.Linear(d, n_out)
        nn.init.zeros_(self.out.weight)  # as FaceFormer: start from the mean motion
        nn.init.zeros_(self.out.bias)

    def describe(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "n_out": self.n_out,
            "n_speakers": self.n_speakers,
            "parameters": sum(p.numel() for p in self.parameters()),
        }

    @property
    def raw_audio(self) -> bool:
        """The model takes raw (normalised) audio, not precomputed features."""
        return self.cfg.audio_encoder == "wav2vec2_finetune"

    def encode(
        self, audio: torch.Tensor, n_frames: int | None = None, chunk_frames: int | None = None
    ) -> torch.Tensor:
        """Audio features ``(B, pT, F)`` -> memory ``(B, pT, d_model)``; with a raw-audio
        encoder, audio ``(B, N)`` -> memory of ``n_frames`` (or as many as the audio gives)."""
        if self.raw_audio:
            return self.audio(audio, n_frames, chunk_frames)
        return self.audio(audio)

    def _style(self, style: torch.Tensor | None, batch: int) -> torch.Tensor:
        if style is None or not self.cfg.style:
            return torch.zeros(batch, self.cfg.d_model, device=self.motion_in.weight.device)
        return self.style(style)

    def tokens(
        self, prev: torch.Tensor, style: torch.Tensor | None, offset: torch.Tensor, first: bool
    ):
        """Input tokens for motion ``prev (B, n, n_out)``; with ``first`` a start token leads
        (and the last motion is not needed). ``offset (B,)``: global index of the first token."""
        b = prev.shape[0]
        s = self._style(style, b)[:, None]
        x = self.motion_in(prev) + s
        if first:
            lead = s[:, 0] if self.start is None else self.start + s[:, 0]
            x = torch.cat([lead[:, None], x], dim=1)
        pos = offset[:, None] + torch.arange(x.shape[1], device=x.device)[None]
        pe = periodic_encoding(pos.cpu(), self.cfg.d_model, self.cfg.period).to(x.device)
        return self.token_drop(x + pe)

    def masks(self, n: int, n_audio: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        self_mask = biased_causal_mask(n, self.cfg.n_heads, self.cfg.period)[None]
        allowed = alignment_mask(n, n_audio, self.cfg.align_width, self.cfg.audio_per_frame)
        return self_mask.to(device), _additive(allowed)[None, None].to(device)

    def run(self, x, memory, self_mask, cross_mask, caches=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, self_mask, cross_mask, None if caches is None else caches[i])
        return self.out(self.norm(x))

    def forward(
        self,
        memory: torch.Tensor,
        target_prev: torch.Tensor,
        style: torch.Tensor | None,
        offset: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher-forced pass: ``target_prev (B, T, n_out)`` holds the motion of frames
        ``0..T-1`` (the last is not used); ``memory (B, pT, d)``; returns ``(B, T, n_out)``.
        With ``decoder="faceformer"`` token 0 embeds a zero motion, as FaceFormer's."""
        t = target_prev.shape[1]
        if self.start is None:
            prev = torch.cat([torch.zeros_like(target_prev[:, :1]), target_prev[:, :-1]], dim=1)
            x = self.tokens(prev, style, offset, first=False)
        else:
            x = self.tokens(target_prev[:, :-1], style, offset, first=True)
        self_mask, cross_mask = self.masks(t, memory.shape[1], memory.device)
        return self.run(x, memory, self_mask, cross_mask)


def rollout(
    model: Audio2Mesh,
    memory: torch.Tensor,
    n_new: int,
    style: torch.Tensor | None,
    offset: torch.Tensor,
    prefix: torch.Tensor | None = None,
) -> torch.Tensor:
    """Autoregressive decoding of ``n_new`` frames, differentiable (FaceFormer's training and
    prediction loop): the tokens are the start token, the teacher-forced ``prefix (B, h, n_out)``
    and then each new prediction in turn; ``memory (B, p (h + n_new), d)`` covers the prefix's
    and the new frames' audio, ``offset (B,)`` is the global index of the prefix's first frame
    (PPE phases). Keys and values are cached, so a step costs one token; FaceFormer re-runs the
    whole sequence each step, which gives the same outputs (the decoder is causal). Returns
    ``(B, n_new, n_out)``."""
    b = memory.shape[0]
    if prefix is None:
        prefix = memory.new_zeros(b, 0, model.n_out)
    h = prefix.shape[1]
    n = h + n_new
    self_mask, cross_mask = model.masks(n, memory.shape[1], memory.device)
    caches = [{} for _ in model.layers]
    # prefill: the start token and the prefix in one causal pass
    x = model.tokens(prefix, style, offset, first=True)
    y = model.run(x, memory, self_mask[:, :, : h + 1, : h + 1], cross_mask[:, :, : h + 1], caches)
    outs = [y[:, -1]]
    for j in range(1, n_new):
        pos = h + j
        x = model.tokens(outs[-1][:, None], style, offset + pos, first=False)
        y = model.run(
            x,
            memory,
            self_mask[:, :, pos : pos + 1, : pos + 1],
            cross_mask[:, :, pos : pos + 1],
            caches,
        )
        outs.append(y[:, -1])
    return torch.stack(outs, dim=1)


@torch.no_grad()
def generate(
    model: Audio2Mesh,
    memory: torch.Tensor,
    n_frames: int,
    style: torch.Tensor | None,
    window: int,
    history: int,
    progress=None,
) -> torch.Tensor:
    """Autoregressive, windowed decoding of ``n_frames`` motion vectors from ``memory (1, pN, d)``.

    Window ``k`` predicts frames ``[s, s + window)``; its token sequence is the start token, the
    ``min(history, s)`` frames before ``s`` (the previous windows' outputs, teacher-forced) and
    then each new prediction in turn, with PPE phases of the global frame index. Up to
    ``window`` frames this is one :func:`rollout`. Returns ``(n_frames, n_out)``.
    """
    model.eval()
    device = memory.device
    p = model.cfg.audio_per_frame
    out = torch.zeros(n_frames, model.n_out, device=device)
    start = 0
    while start < n_frames:
        h = min(history, start)
        g0 = start - h
        new = min(window, n_frames - start)
        mem = memory[:, p * g0 : p * (g0 + h + new)]
        offset = torch.tensor([g0], device=device)
        out[start : start + new] = rollout(model, mem, new, style, offset, out[g0:start][None])[0]
        start += new
        if progress is not None:
            progress(start)
    return out


class MotionBasis:
    """Normalisation of the displacement ``(T, V, 3)`` into model outputs and back.

    With ``k > 0`` components: PCA of the training displacement (about zero, the template),
    coefficients divided by one common scale (their mean RMS). With ``k == 0``: the displacement over its global RMS.
    Without ``normalise`` the scale is 1 (FaceFormer: offsets in metres).
    """

    def __init__(self, mean: np.ndarray, basis: np.ndarray | None, scale: np.ndarray):
        self.mean = mean.astype(np.float32)  # (V*3,)
        self.basis = None if basis is None else basis.astype(np.float32)  # (k, V*3)
        self.scale = scale.astype(np.float32)  # (k,) or (1,)

    @classmethod
    def identity(cls, n_vertices: int) -> MotionBasis:
        """Outputs are the displacement itself (``(V*3,)``, metres): a converted FaceFormer."""
        return cls(np.zeros(3 * n_vertices), None, np.ones(1))

    @classmethod
    def fit(cls, disp: np.ndarray, k: int, normalise: bool = True) -> MotionBasis:
        """Centred on the template (zero displacement), so that a zero output is the static
        template: PCA of the uncentred displacement, or one global std with ``k == 0``."""
        flat = disp.reshape(len(disp), -1).astype(np.float64)
        mean = np.zeros(flat.shape[1])
        if k <= 0:
            scale = np.sqrt((flat**2).mean()) + 1e-9 if normalise else 1.0
            return cls(mean, None, np.array([scale]))
        _, sig, vt = np.linalg.svd(flat, full_matrices=False)
        k = min(k, len(sig))
        # one scale for all components (their mean RMS): the loss on the normalised
        # coefficients stays proportional to the vertex error, so that training spends its
        # capacity on the large (mostly jaw and lip) motions rather than on small, noisy ones
        rms = sig[:k] / math.sqrt(len(flat))
        scale = float(np.sqrt((rms**2).mean())) + 1e-9 if normalise else 1.0
        return cls(mean, vt[:k], np.full(k, scale))

    @property
    def n_out(self) -> int:
        return self.mean.size if self.basis is None else len(self.basis)

    def encode(self, disp: np.ndarray) -> np.ndarray:
        flat = disp.reshape(len(disp), -1) - self.mean
        if self.basis is None:
            return (flat / self.scale).astype(np.float32)
        return (flat @ self.basis.T / self.scale).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        flat = z * self.scale if self.basis is None else (z * self.scale) @ self.basis
        return (flat + self.mean).reshape(len(z), -1, 3)

    def decode_torch(self, z: torch.Tensor, index: np.ndarray | None = None) -> torch.Tensor:
        """Differentiable decode of ``z (..., n_out)`` -> ``(..., V', 3)``, only vertices ``index``."""
        mean = torch.from_numpy(self.mean.reshape(-1, 3)).to(z.device)
        if index is not None:
            mean = mean[index]
        if self.basis is None:
            full = z.reshape(*z.shape[:-1], -1, 3) * float(self.scale[0])
            return (full[..., index, :] if index is not None else full) + mean
        basis = torch.from_numpy(self.basis.reshape(len(self.basis), -1, 3)).to(z.device)
        if index is not None:
            basis = basis[:, index]
        scaled = z * torch.from_numpy(self.scale).to(z.device)
        return torch.einsum("...k,kvd->...vd", scaled, basis) + mean

    def state(self) -> dict:
        return {"mean": self.mean, "basis": self.basis, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict) -> MotionBasis:
        return cls(state["mean"], state["basis"], state["scale"])
