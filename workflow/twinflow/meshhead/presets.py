"""Meshhead settings: ``tiny`` (CPU: tests, demo, minutes) and ``paper`` (the published sizes).

Two models, two preset tables, both resolved with :func:`twinflow.presets.resolve_preset`
(``config.yaml: meshhead: overrides: {audio2mesh: {...}, warp: {...}}`` changes single fields).

``paper`` follows FaceFormer (Fan et al., CVPR 2022: one decoder layer, 4 heads, feature size 64
(VOCASET) / 128 (BIWI), feed-forward 2x, period 30 / 25, lr 1e-4, full vertex offsets, no
teacher forcing at inference) and face-vid2vid (Wang et al., CVPR 2021: 256 px, wide
encoder/decoder, six bottleneck residual blocks, perceptual loss). Deliberate differences:

* The audio-to-mesh ``paper`` preset is ``biwi`` below: FaceFormer itself. The differences
  that follow are those of ``tiny`` (the CPU default), each a named option of
  :class:`Audio2MeshConfig`:
* ``audio_encoder="logmel"``: a log-mel convolution stack (no pretrained weights ship);
  ``"wav2vec2"`` uses frozen features of a user-supplied wav2vec2 (``models/registry.yaml``);
  ``"wav2vec2_finetune"`` is FaceFormer's encoder.
* ``decoder="twinflow"``: pre-norm layers with GELU, a final LayerNorm and a learned start
  token; ``"faceformer"``: the reference's post-norm ReLU layer, dropout on the encoded tokens,
  the style embedding alone as the start token.
* ``train_mode="scheduled"``: teacher forcing with a second, scheduled-sampling pass (the
  model's own predictions replace part of the inputs; one parallel pass per step instead of one
  per frame), plus velocity and mouth losses, AdamW with a cosine schedule, a moving average of
  the weights and model selection on held-out blocks; ``"autoregressive"``: FaceFormer's.
* ``normalise``: outputs divided by their RMS (PCA coefficients of the twin's motion with
  ``pca_components`` > 0); off: vertex offsets in metres, as FaceFormer.
* Decoding runs in windows of ``window`` frames that carry ``history`` previous outputs as a
  teacher-forced prefix, so any length of audio works (FaceFormer stops at 600 frames).
* The head warp is 2-D (face-vid2vid warps a 3-D feature volume with 3-D keypoints it learns);
  its keypoints are face-mesh points re-posed with a head-pose track, not learned ones.
* The default image loss needs no pretrained network: multi-scale L1 (full, 1/2, 1/4 size)
  plus ``ssim_weight x (1 - SSIM)`` (11 px Gaussian window) plus a mouth-weighted L1, in both
  presets; ``perceptual="vgg19"`` (an override) adds face-vid2vid's VGG-19 loss with
  user-supplied weights (``models/registry.yaml: vgg19``).
* Training counts ``steps``; ``steps`` of ``paper`` is a GPU budget, not a number from a paper.

Audio-to-mesh presets ``vocaset`` and ``biwi`` ARE FaceFormer (github:EvelynFan/FaceFormer): a
wav2vec2 audio encoder inside the model (fine-tuned, its CNN frozen, CNN features resampled to
the motion rate before its transformer), one ``nn.TransformerDecoderLayer`` (post-norm, ReLU, 4
heads, feed-forward 2x), periodic positional encoding and biased causal mask of period 30
(VOCASET: d=64, 1:1 audio/motion alignment, 30 fps) or 25 (BIWI: d=128, 2:1, 25 fps), one-hot
style, vertex offsets in metres; trained fully autoregressively with MSE and Adam at 1e-4, batch
1, no model selection, ``steps`` = the reference's 100 epochs over its training sentences
(VOCASET 8 subjects x 40, BIWI 6 x 32). ``paper`` (audio-to-mesh) is ``biwi`` at twinflow's 25
fps video rate. ``vocaset.pth`` / ``biwi.pth`` convert with ``python -m twinflow.convert
faceformer``. Their ``window`` is FaceFormer's ``max_seq_len`` (600 frames): audio up to that
length is decoded in one pass exactly as the reference; longer audio (where the reference fails)
in windows of 600 new frames carrying ``history`` = 100, with wav2vec2's transformer run on
matching chunks with 1 s margins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twinflow.presets import resolve_preset


@dataclass(frozen=True)
class Audio2MeshConfig:
    """FaceFormer-style audio-to-mesh model and its training schedule.

    Audio: ``audio_encoder`` ``"logmel"`` (``n_mels`` bins, a stack of dilated 1-D convolutions
    of width ``audio_channels``), ``"wav2vec2"`` (frozen features of the registry's wav2vec2) or
    ``"wav2vec2_finetune"`` (FaceFormer: the wav2vec2 inside the model, raw audio in; its
    architecture is the config stored in the checkpoint). ``audio_per_frame``: audio frames per
    motion frame, 2 (BIWI; twinflow) or 1 (VOCASET; ``wav2vec2_finetune`` only).
    Decoder: ``decoder`` ``"twinflow"`` or ``"faceformer"`` (see the module docstring),
    ``d_model``, ``n_heads``, ``n_layers``, ``ff_mult``, ``dropout``; ``period`` of the periodic
    positional encoding and of the biased causal mask; ``align_width`` extra audio frames each
    side that a motion frame may attend to (0: only its own, as FaceFormer).
    Output: ``pca_components`` > 0 decodes PCA coefficients of the twin's motion, 0 the full
    displacement; ``normalise``: divided by its RMS (else metres). ``style``: one-hot speaker
    embedding.
    Training: ``train_mode`` ``"scheduled"`` or ``"autoregressive"`` (FaceFormer: every frame
    fed the previous predictions, gradients through the whole rollout), ``optimizer``
    ``"adamw"`` or ``"adam"``, ``lr_schedule`` ``"cosine"`` (warm-up, to 0.1 lr) or
    ``"constant"``, ``grad_clip`` (gradient norm clipping; 0: none, as FaceFormer), ``steps``,
    ``batch``, ``seq_len`` (frames per training window; a whole sentence when shorter), ``lr``,
    ``sched_sampling`` (final fraction of inputs replaced by the model's own predictions),
    ``input_noise``, ``velocity_weight``, ``mouth_weight`` (extra loss on mouth vertices),
    ``audio_augment`` (random gain and noise on log-mel features).
    Model selection: ``val_fraction`` of the training frames (three blocks spread over them) is
    held out and decoded every ``eval_every`` steps with the weights' moving average (decay
    ``ema_decay``; 0: the raw weights); the best step's weights are kept, and an output scale
    (predictions shrink towards the template) is fitted on the same frames.
    Decoding: ``window`` new frames per window, ``history`` frames carried over.

    ``tiny`` trains 1000 steps (about a minute on one CPU core). At its former 300 steps the
    validation error was still falling at the last step and the demo twin's model lost to the
    ridge baseline (mesh mouth LMD 2.05 vs 1.44 mm); with 1000 steps the best validation step
    was 380 and it beat it (1.30 vs 1.44 mm); 3000 steps gave 1.31 mm (best step 1050).
    """

    audio_encoder: str = "logmel"
    audio_per_frame: int = 2
    n_mels: int = 80
    audio_channels: int = 64
    decoder: str = "twinflow"
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 1
    ff_mult: int = 2
    dropout: float = 0.3
    period: int = 25
    align_width: int = 0
    pca_components: int = 8
    normalise: bool = True
    style: bool = True
    train_mode: str = "scheduled"
    optimizer: str = "adamw"
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    steps: int = 1000
    batch: int = 8
    seq_len: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.05
    sched_sampling: float = 0.8
    input_noise: float = 0.5
    velocity_weight: float = 0.5
    mouth_weight: float = 1.0
    audio_augment: float = 0.5
    val_fraction: float = 0.15
    eval_every: int = 10
    ema_decay: float = 0.0
    window: int = 64
    history: int = 32


@dataclass(frozen=True)
class WarpConfig:
    """face-vid2vid-style one-shot warp generator.

    ``size``: frame side in pixels; ``crop_scale`` / ``crop_shift``: the twin's fixed head crop
    (side = scale x face-mesh extent, centre moved up by shift x side). ``keypoints``: ``"subset"``
    (the face-mesh points of :data:`twinflow.meshhead.topology.WARP_POINTS`) or ``"ibug68"``.
    ``kp_sigma``: keypoint Gaussian width (image fraction). Dense motion at ``motion_scale`` of the
    frame with a U-Net of ``motion_channels`` (``motion_depth`` levels); generator ``channels``
    doubling per downsampling (2 levels) up to ``max_channels``, ``n_res`` bottleneck blocks.
    Loss: multi-scale L1 + ``ssim_weight`` (1 - SSIM) + ``mouth_weight`` L1 inside the mouth box;
    ``perceptual`` ``"none"`` or ``"vgg19"`` (weight ``perceptual_weight``).
    """

    size: int = 64
    crop_scale: float = 1.5
    crop_shift: float = 0.08
    keypoints: str = "subset"
    kp_sigma: float = 0.04
    motion_scale: float = 0.5
    motion_channels: int = 32
    motion_depth: int = 3
    channels: int = 16
    max_channels: int = 128
    n_res: int = 2
    steps: int = 400
    batch: int = 8
    lr: float = 5e-4
    ssim_weight: float = 0.5
    mouth_weight: float = 2.0
    perceptual: str = "none"
    perceptual_weight: float = 1.0


def _faceformer(**fields) -> Audio2MeshConfig:
    """FaceFormer's model and training (github:EvelynFan/FaceFormer main.py / faceformer.py)."""
    return Audio2MeshConfig(
        **{
            "audio_encoder": "wav2vec2_finetune",
            "decoder": "faceformer",
            "n_heads": 4,
            "n_layers": 1,
            "ff_mult": 2,
            "dropout": 0.1,
            "pca_components": 0,
            "normalise": False,
            "train_mode": "autoregressive",
            "optimizer": "adam",
            "lr_schedule": "constant",
            "grad_clip": 0.0,
            "batch": 1,
            "seq_len": 600,
            "lr": 1e-4,
            "weight_decay": 0.0,
            "sched_sampling": 0.0,
            "input_noise": 0.0,
            "velocity_weight": 0.0,
            "mouth_weight": 0.0,
            "audio_augment": 0.0,
            "val_fraction": 0.0,
            "ema_decay": 0.0,
            "window": 600,
            "history": 100,
            **fields,
        }
    )


AUDIO2MESH_PRESETS = {
    "tiny": Audio2MeshConfig(),
    "vocaset": _faceformer(audio_per_frame=1, d_model=64, period=30, steps=100 * 8 * 40),
    "biwi": _faceformer(audio_per_frame=2, d_model=128, period=25, steps=100 * 6 * 32),
}
AUDIO2MESH_PRESETS["paper"] = AUDIO2MESH_PRESETS["biwi"]

WARP_PRESETS = {
    "tiny": WarpConfig(),
    "paper": WarpConfig(
        size=256,
        crop_scale=1.7,
        kp_sigma=0.03,
        motion_scale=0.25,
        motion_channels=64,
        motion_depth=5,
        channels=64,
        max_channels=512,
        n_res=6,
        steps=200_000,
        batch=16,
        lr=2e-4,
        perceptual_weight=10.0,
    ),
}

PRESETS = ("tiny", "paper")  # of the whole pipeline (both models)
AUDIO2MESH_NAMES = tuple(AUDIO2MESH_PRESETS)  # the audio-to-mesh model's own presets
ENCODERS = ("logmel", "wav2vec2", "wav2vec2_finetune")
DECODERS = ("twinflow", "faceformer")
TRAIN_MODES = ("scheduled", "autoregressive")
OPTIMIZERS = ("adamw", "adam")
LR_SCHEDULES = ("cosine", "constant")
PERCEPTUAL = ("none", "vgg19")
POSES = ("twin", "neutral", "video")  # head-pose tracks of renders (twinflow.meshhead.poses)
SOURCES = ("frame", "photo")  # source images of renders


def audio2mesh_preset(name: str, overrides: dict[str, Any] | None = None) -> Audio2MeshConfig:
    cfg = resolve_preset(AUDIO2MESH_PRESETS, name, overrides)
    for field, allowed in (
        ("audio_encoder", ENCODERS),
        ("decoder", DECODERS),
        ("train_mode", TRAIN_MODES),
        ("optimizer", OPTIMIZERS),
        ("lr_schedule", LR_SCHEDULES),
    ):
        if getattr(cfg, field) not in allowed:
            raise ValueError(f"{field} '{getattr(cfg, field)}' is not one of {allowed}")
    if cfg.audio_per_frame not in (1, 2):
        raise ValueError("audio_per_frame must be 1 (VOCASET) or 2 (BIWI)")
    if cfg.audio_per_frame == 1 and cfg.audio_encoder != "wav2vec2_finetune":
        raise ValueError("audio_per_frame 1 needs audio_encoder 'wav2vec2_finetune'")
    if cfg.d_model % cfg.n_heads or cfg.d_model % 2:
        raise ValueError("d_model must be even and a multiple of n_heads")
    if cfg.history >= cfg.seq_len or cfg.window < 1:
        raise ValueError(
            "need 1 <= window and history < seq_len (decoding stays in trained lengths)"
        )
    return cfg


def warp_preset(name: str, overrides: dict[str, Any] | None = None) -> WarpConfig:
    cfg = resolve_preset(WARP_PRESETS, name, overrides)
    if cfg.perceptual not in PERCEPTUAL:
        raise ValueError(f"perceptual '{cfg.perceptual}' is not one of {PERCEPTUAL}")
    if cfg.size % 8:
        raise ValueError("warp size must be a multiple of 8")
    return cfg
