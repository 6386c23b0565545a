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
* The head warp is face-vid2vid as re-implemented by zhanglonghao1992 (commit 9511d25; the only
  release with weights): ``paper`` is its ``vox-256`` configuration with the ``spade`` generator
  (the released "Vox-256-New" model), ``tiny`` the same code at small widths and 64 px, with
  the ``original`` generator (the SPADE decoder at 64 px costs 2.5x the whole tiny step) and a
  feature volume of depth 2 (the dense motion's 7x7x7 mask convolution dominates the cost). The
  reference fixes some widths in code (head-pose estimator 256..2048, SPADE decoder 256/64/128);
  here they are fields (``he_widths``, ``spade_out_channels``, ``spade_hidden``) whose ``paper``
  values are the reference's. Its losses need VGG-19 and Hopenet weights, which cannot ship:
  ``perceptual="vgg19"`` / ``headpose="hopenet"`` use the user's (``models/registry.yaml``);
  the fallbacks are named options: ``perceptual="l1"`` (an L1 pyramid on the same scales and
  weights) and ``headpose="tracked"`` (the twin's tracked head pose as the target).
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
    """face-vid2vid (:mod:`twinflow.meshhead.fv2v`): networks, training, the twin's head crop.

    Frames: ``size`` px; ``crop_scale`` / ``crop_shift``: the twin's fixed head crop (side =
    scale x face-mesh extent, centre moved up by shift x side); ``keypoints``: the face-mesh
    points kept in ``frames.npz`` (``"subset"`` or ``"ibug68"``: mouth boxes, best frame).

    Networks (the reference's YAML ``model_params`` names, prefixed per network):
    ``generator`` ``"spade"`` or ``"original"``; ``num_kp`` keypoints; ``feature_channel`` x
    ``reshape_depth`` = ``max_features``: the 3-D feature volume; ``estimate_jacobian``.
    Keypoint detector ``kp_*`` (``kp_scale_factor``: input downscaling, ``kp_reshape_depth``:
    depth of its volume, ``kp_temperature`` of the soft-argmax). Head-pose / expression estimator
    ``he_block_expansion`` and ``he_widths`` (the reference's fixed 256, 512, 1024, 2048).
    Generator ``block_expansion``, ``max_features``, ``num_down_blocks``, ``num_resblocks``,
    ``estimate_occlusion_map``; SPADE decoder ``spade_out_channels``, ``spade_hidden``; dense
    motion ``dm_*`` (``dm_compress``: channels of the compressed volume). Discriminator
    ``disc_*`` (``disc_scales`` of the image pyramid it sees, spectral norm ``disc_sn``).

    Training (the reference's ``train_params``): ``steps``, ``batch``, ``lr`` (all four Adam
    optimisers, betas 0.5, 0.999), decayed x0.1 at ``lr_milestone`` x steps; ``gan_mode``
    ``"hinge"`` or ``"ls"``; pyramid ``scales``; weights ``w_*`` (``w_perceptual`` per VGG layer,
    ``w_feature_matching`` per discriminator block); equivariance transform ``sigma_affine``,
    ``sigma_tps``, ``points_tps``. ``perceptual``: ``"vgg19"`` (user-supplied weights) or the
    fallback ``"l1"``; ``headpose``: ``"hopenet"`` (user-supplied), ``"tracked"`` (fallback:
    the tracked head pose) or ``"none"``. ``mouth_weight``: twinflow's extra L1 inside the
    driving mouth box (0 = the reference's losses only). Augmentation of each training pair (the
    reference's ``augmentation_params``, :mod:`twinflow.train.augment`): ``time_flip`` (swap
    source and driving), ``hflip`` (mirror both; the driving frame's tracked pose and mouth box
    are mirrored with it), colour jitter strengths ``brightness``, ``contrast``, ``saturation``,
    ``hue`` (0 = off).
    """

    size: int = 64
    crop_scale: float = 1.5
    crop_shift: float = 0.08
    keypoints: str = "subset"
    generator: str = "original"
    num_kp: int = 15
    feature_channel: int = 8
    estimate_jacobian: bool = False
    kp_block_expansion: int = 8
    kp_max_features: int = 64
    kp_num_blocks: int = 3
    kp_scale_factor: float = 0.5
    kp_reshape_depth: int = 2
    kp_temperature: float = 0.1
    he_block_expansion: int = 16
    he_widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    block_expansion: int = 16
    max_features: int = 16
    num_down_blocks: int = 2
    reshape_depth: int = 2
    num_resblocks: int = 1
    estimate_occlusion_map: bool = True
    spade_out_channels: int = 16
    spade_hidden: int = 16
    dm_block_expansion: int = 8
    dm_max_features: int = 64
    dm_num_blocks: int = 3
    dm_compress: int = 1
    disc_scales: tuple[float, ...] = (1,)
    disc_block_expansion: int = 16
    disc_max_features: int = 64
    disc_num_blocks: int = 4
    disc_sn: bool = True
    steps: int = 400
    batch: int = 4
    lr: float = 2e-4
    lr_milestone: float = 0.6
    gan_mode: str = "hinge"
    scales: tuple[float, ...] = (1, 0.5, 0.25, 0.125)
    w_generator_gan: float = 1.0
    w_discriminator_gan: float = 1.0
    w_feature_matching: tuple[float, ...] = (10, 10, 10, 10)
    w_perceptual: tuple[float, ...] = (10, 10, 10, 10, 10)
    w_equivariance_value: float = 10.0
    w_equivariance_jacobian: float = 0.0
    w_keypoint: float = 10.0
    w_headpose: float = 20.0
    w_expression: float = 5.0
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    perceptual: str = "l1"
    headpose: str = "tracked"
    mouth_weight: float = 0.0
    time_flip: bool = False
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


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

# vox-256.yaml (model_params, train_params) with demo.py's default generator, spade
VOX256 = dict(
    size=256, crop_scale=1.7, generator="spade", num_kp=15, feature_channel=32,
    estimate_jacobian=False, kp_block_expansion=32, kp_max_features=1024, kp_num_blocks=5,
    kp_scale_factor=0.25, kp_reshape_depth=16, kp_temperature=0.1, he_block_expansion=64,
    he_widths=(256, 512, 1024, 2048), block_expansion=64, max_features=512, num_down_blocks=2,
    reshape_depth=16, num_resblocks=6, estimate_occlusion_map=True, spade_out_channels=64,
    spade_hidden=128, dm_block_expansion=32, dm_max_features=1024, dm_num_blocks=5,
    dm_compress=4, disc_scales=(1,), disc_block_expansion=32, disc_max_features=512,
    disc_num_blocks=4, disc_sn=True, steps=200_000, batch=32, lr=2e-4, lr_milestone=0.6,
    perceptual="vgg19", headpose="hopenet", time_flip=True, hflip=True, brightness=0.1,
    contrast=0.1, saturation=0.1, hue=0.1,
)  # fmt: skip
WARP_PRESETS = {"tiny": WarpConfig(), "paper": WarpConfig(**VOX256)}

PRESETS = ("tiny", "paper")  # of the whole pipeline (both models)
AUDIO2MESH_NAMES = tuple(AUDIO2MESH_PRESETS)  # the audio-to-mesh model's own presets
ENCODERS = ("logmel", "wav2vec2", "wav2vec2_finetune")
DECODERS = ("twinflow", "faceformer")
TRAIN_MODES = ("scheduled", "autoregressive")
OPTIMIZERS = ("adamw", "adam")
LR_SCHEDULES = ("cosine", "constant")
PERCEPTUAL = ("vgg19", "l1")  # the warp's perceptual loss: VGG-19 or the named fallback
HEADPOSE = ("hopenet", "tracked", "none")  # the warp's head-pose loss target
GENERATORS = ("spade", "original")
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
    return check_warp(resolve_preset(WARP_PRESETS, name, overrides))


def check_warp(cfg: WarpConfig) -> WarpConfig:
    """ValueError when ``cfg``'s choices or sizes do not fit together."""
    if cfg.perceptual not in PERCEPTUAL:
        raise ValueError(f"perceptual '{cfg.perceptual}' is not one of {PERCEPTUAL}")
    if cfg.headpose not in HEADPOSE:
        raise ValueError(f"headpose '{cfg.headpose}' is not one of {HEADPOSE}")
    if cfg.generator not in GENERATORS:
        raise ValueError(f"generator '{cfg.generator}' is not one of {GENERATORS}")
    if cfg.gan_mode not in ("hinge", "ls"):
        raise ValueError(f"gan_mode '{cfg.gan_mode}' is not hinge or ls")
    if cfg.feature_channel * cfg.reshape_depth != cfg.max_features:
        raise ValueError("feature_channel x reshape_depth must equal max_features")
    if cfg.generator == "spade" and cfg.num_down_blocks != 2:
        raise ValueError("the spade generator needs num_down_blocks=2")
    if cfg.size % 2 ** max(cfg.num_down_blocks + cfg.dm_num_blocks, 1):
        raise ValueError(
            f"warp size {cfg.size} must be a multiple of 2^(num_down_blocks + dm_num_blocks)"
        )
    if cfg.perceptual == "vgg19" and any(cfg.w_perceptual) and cfg.size * min(cfg.scales) < 16:
        raise ValueError(
            f"perceptual vgg19 needs every pyramid scale at 16 px or more (VGG-19 pools 4 times "
            f"before relu5_1): {cfg.size} px x {min(cfg.scales)} is smaller; drop that scale"
        )
    if len(cfg.w_perceptual) != 5:
        raise ValueError("w_perceptual needs one weight per VGG-19 layer (5)")
    return cfg
