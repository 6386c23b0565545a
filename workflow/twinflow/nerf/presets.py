"""nerf settings: ``tiny`` (a CPU in minutes, tests and the demo) and ``paper`` (ER-NeRF's).

``paper`` is ER-NeRF (Li et al., ICCV 2023) as its code at 0cf72d8 builds it, so that its trained
models load unchanged (``python -m twinflow.convert ernerf``, tests/test_nerf_ernerf.py): 512x512
frames, ER-NeRF's tri-plane grid encoder (12 levels x 1 feature, base resolution 64, 2^14 entries
per plane; :class:`twinflow.nerf.encoding.GridEncoder2D`), bias-free MLPs of width 64, a 32-dim
audio code smoothed over 8 frames (zero windows past the ends), 4-dim per-frame codes, its torso
(:class:`twinflow.nerf.network.ErnerfTorso`), its coordinate frame (``coords: bound``), its ray
marcher and density-grid update (``sampler: ernerf``, :mod:`twinflow.nerf.marcher`), AdamW (betas
0, 0.99) with learning rate 1e-2 for the grids and 1e-3 for the networks, fp16 autocast on CUDA,
65,536 rays per step from one frame, 100k head steps, then lips fine-tuning to 125k with 32x32
patches, then 200k torso steps. Differences, all deliberate (training only):

* Lips loss: ER-NeRF adds 0.01 x LPIPS (AlexNet) on the mouth box; ``paper`` too
  (``perceptual: lpips``, :mod:`twinflow.nerf.lpips`) when the user supplies the weights
  (``alexnet`` and ``lpips-alex`` in ``models/registry.yaml``). Without them the lips stage
  logs it, records ``patch_loss`` in its checkpoint and uses the named fallback
  ``structural`` (``tiny``'s): a patch-level multi-scale structural loss, ``1 - SSIM`` plus an
  L1 of image gradients at 1x, 1/2x and 1/4x (:mod:`twinflow.nerf.losses`). ``perceptual: vgg``
  uses VGG-19 features instead (an LPIPS-like distance; a user-supplied ``vgg19``). The mouth
  patch is a ``patch`` x ``patch`` grid of rays over the (jittered) mouth box, resampled;
  ER-NeRF renders every pixel of its lips box.
* ``lambda_mask``: an extra (small) loss that pulls the head opacity towards the head mask of the
  face parsing; it makes the opacity usable for the head-only paste-back and speeds up short
  CPU runs. ER-NeRF has only the opacity entropy term.
* Schedules: ``paper`` has ER-NeRF's (``lips_schedule: ernerf``, ``lips_lr_decay`` 0.05: its
  ``--finetune_lips`` rate ``0.05 ** (step / iters)`` going on from the head stage's step; its
  weight average, ``torch_ema`` with decay 0.95 updated every 1000 steps, ``ema_every``,
  ``ema_warmup``, carried from the head to the lips stage). Not carried over: ER-NeRF's resumed
  optimizer moments (twinflow's lips stage starts a new AdamW) and its first fine-tuning step at
  the head stage's last rate. ``tiny`` keeps twinflow's: the lips stage starts at ``lr_decay``
  and decays by ``lips_lr_decay`` more, the average is updated every step. ER-NeRF's
  torso target is ``torso_imgs`` (the neck in-painted under the head); twinflow's is the frame
  with the head replaced by the background plate. Its ray batches drop rays past a running
  mean sample count; twinflow renders them all. Rays: a share (``head_ray_fraction``) is drawn
  on the head, ER-NeRF draws uniformly.

``tiny`` renders a square crop around the head (``crop_scale`` x the perception head box, at
``res`` = 128 pixels) with dense 2-D grids (``encoder: dense``, :mod:`twinflow.nerf.encoding`),
fewer samples and a few thousand steps, ER-NeRF's 4-dim per-frame codes, and audio-window
augmentation (``audio_dropout``, ``audio_noise``; not in ER-NeRF, 0 in ``paper``). On talk_d6, in
14.5 CPU minutes, the augmentation lifts the held-out head PSNR from 22.9 dB (with or without the
codes) to 23.55-23.94 dB in all 8 one-thread runs over six settings, and at 0.3 / 0.3 the lip
landmark distance (then measured uncentred, before ``unc_loss``) fell below the mean-audio
baseline's in 3 of 3 one-thread runs: without it the short run's audio network learns to tell
the training frames apart. With ER-NeRF's ambient weight (``lambda_amb`` 1e-4) the audio path
also leaked into the hair: a short run's rendered audio attention was as large on the hair as on
the face (0.67 vs 0.75), and on the held-out frames the audio moved the hair edge more than the
mouth (mean absolute change 3.5 vs 2.1 grey levels in a two-thread run that ended 0.85 dB under
its own mean-audio baseline). ``tiny`` uses 1e-2, where
the hair changes half as much as the mouth, and keeps a moving average of its weights
(``ema_decay`` 0.99). With ER-NeRF's uncertainty-aware loss (``unc_loss``), five 14.5-minute
runs on talk_d6 (seeds 0-3, one with 2 threads; 2976-4573 head steps) reached 23.68-24.13 dB head
PSNR, 0.04-0.26 dB from their mean-audio baselines; their lip landmark distance minus the
baseline's was -0.05, +0.12, +0.14 px (95% intervals holding 0), +0.71 and +2.75 px (intervals
above 0): on this clip, where the person pulls faces more than she speaks, the audio never
measurably helped the mouth and twice made it worse. ER-NeRF's eye-audio cross term
(``lambda_amb_eye``) is 0 in ``tiny``: at ``lambda_amb`` (1e-2) both runs with it (seeds 0, 1)
made the mouth worse than their baselines, by +2.77 and +0.96 px (intervals above 0), with head
PSNR 23.69 and 23.91 dB (24.05 and 23.68 dB without it, same seeds).
``paper`` renders the whole frame (``crop_scale: 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twinflow.presets import resolve_preset


@dataclass(frozen=True)
class NerfConfig:
    """One ER-NeRF model and its three-stage schedule.

    Data:
        res: side of the rendered (square) image in pixels.
        crop_scale: the image is a square of ``crop_scale`` x the largest perception head box
            around the head (clamped to the frame); 0 renders the whole frame.
        box_pad, box_top, box_back: the head box (where the head NeRF lives) is the face
            template's bounding box padded by ``box_pad`` metres, with ``box_top`` more above
            (hair) and ``box_back`` more behind (the back of the skull).

    Head field:
        encoder: ``dense`` (multi-resolution 2-D grids with ``F.grid_sample``) or ``hash``.
        levels, channels, base_res, finest_res, log2_table: the tri-plane grids (per plane).
        hidden, sigma_layers, geo_dim: density network; color_hidden, color_layers: colour net.
        audio_dim: audio code size; att_window: frames in the audio smoothing window;
            att_hidden: width of the region attention MLP (spatial feature -> audio channels).
        audio_noise, audio_dropout: training-time augmentation of the audio windows: Gaussian
            noise (std, in standardised feature units) and the probability that a frame's
            windows are replaced by the mean training window (what the evaluation's
            audio-ignoring baseline feeds); both keep the audio path from memorising frames.
        ind_dim: per-frame appearance code size (0: none).

    Rendering:
        n_samples: stratified samples per ray.
        occ_res, occ_every, occ_warmup: occupancy grid (cells per side), steps between its
            updates and before its first; samples in empty cells, and behind the point where a
            ray's transmittance falls below ``min_transmittance``, are not evaluated.
        min_transmittance: see above (early ray termination; 0 disables it).
        chunk: rays per forward pass when rendering whole images.

    Training (steps: head, then lips fine-tuning steps on top, then torso steps):
        head_steps, lips_steps, torso_steps: optimisation steps of each stage.
        rays: rays per step; frames_per_step: frames they are drawn from (ER-NeRF: 1).
        lr, lr_net: learning rates of grids and networks (AdamW, betas 0 and 0.99).
        lr_decay: learning rate factor reached at the end of the head (and torso) stage
            (ER-NeRF's ``0.5 ** (step / iters)``). The decay follows the larger of step and
            wall-clock progress (``max_minutes``).
        lips_schedule, lips_lr_decay: the lips stage's learning rate. ``twinflow``: it starts
            at ``lr_decay`` and decays by ``lips_lr_decay`` more. ``ernerf``: ER-NeRF's
            ``--finetune_lips`` scheduler, ``lips_lr_decay ** (step / iters)`` (0.05), whose
            ``step`` goes on from the head stage's (the ``--init`` checkpoint's steps ``s``) and
            ``iters`` is ``s`` + the lips steps: with 100k head steps the rate runs from
            0.05^0.8 = 0.091 to 0.05 x the base rates over the 25k lips steps.
        smooth_after: head steps before the audio smoothing window is used (before: the
            centre frame's code only); at the latest half way through the head stage.
        patch: side of the mouth patch of the lips stage (pixels); lambda_patch: weight of the
            patch loss; perceptual: ``structural``, ``vgg`` or ``lpips`` (ER-NeRF's; falls
            back to ``structural`` when its weights are not supplied).
        lambda_mask, lambda_entropy, lambda_amb: mask, opacity entropy and ambient (audio
            attention outside the face) regularisers.
        lambda_amb_eye: ER-NeRF's eye-audio cross term (the eye attention where the audio
            attention acts on the face; ER-NeRF weighs it by ``lambda_amb``).
        head_ray_fraction: share of a step's rays drawn on the head (parsing head and face);
        mouth_ray_fraction: share drawn inside the mouth box (more signal for the audio path).
        unc_loss: ER-NeRF's uncertainty-aware loss in the head stage (an uncertainty network
            weighs each ray's colour loss; :func:`twinflow.nerf.losses.uncertainty_weighted_mse`).

    Torso:
        torso_encoder, torso_levels, torso_channels, torso_base_res, torso_finest_res,
        torso_log2_table: the 2-D torso grid; torso_hidden: its MLP width;
        torso_ind_dim: per-frame torso code; torso_shrink: coordinate shrink (room to deform).

    Checkpoints:
        save_every: steps between resumable states; log_every: steps between log lines.
        ema_decay: every stage keeps an exponential moving average of its weights (decay per
            update; ER-NeRF's trainer: 0.95) and saves the averaged weights (0: the last ones).
        ema_every: steps between updates of the average (ER-NeRF: 1000, counted over the
            head and lips stages together, as its ``global_step``).
        ema_warmup: ER-NeRF's average (the ``torch_ema`` package): it starts at the initial
            weights and the ``n``-th update keeps ``min(ema_decay, (1 + n) / (10 + n))`` of
            it (:class:`twinflow.train.ema.ParameterEMA`); the lips stage goes on with the
            head stage's average and last (un-averaged) weights, as ER-NeRF's resumed trainer.
            ``False``: twinflow's (the first update copies the weights, ``ema_decay`` from
            the start), for the head and lips stages; the torso stage always uses ER-NeRF's:
            it starts from scratch, in a stage that may be no longer than twinflow's average
            remembers (:func:`twinflow.nerf.train.train_torso`).

    ER-NeRF's exact model (``paper``; twinflow's own choices in ``tiny``):
        mlp_bias: the MLPs have biases (twinflow) or none (ER-NeRF).
        color_margin: colours and torso alpha are ``sigmoid(h) (1 + 2m) - m`` (ER-NeRF: 0.001).
        att_pad: audio smoothing window past the ends of the sequence: ``edge`` repeats the
            first/last frame (twinflow), ``zeros`` reads zero feature windows (ER-NeRF).
        novel_code: per-frame code of frames not trained on: ``mean`` of the codes (twinflow)
            or the ``first`` code (ER-NeRF).
        coords: head-space normalisation: ``box`` divides each axis by the box's half extent
            (twinflow), ``bound`` divides all by the largest one (ER-NeRF's ``bound``: the box
            only limits where samples are taken, e.g. ER-NeRF's ``y`` in +-bound/2).
        sampler: ``stratified`` (``n_samples`` per ray in the box, occupancy skipping and a
            transmittance pre-pass) or ``ernerf`` (ER-NeRF's CUDA ray marcher re-done in
            PyTorch, :mod:`twinflow.nerf.marcher`: steps of ``2 sqrt(3) / occ_res`` (bound 1),
            samples only in occupied cells, at most ``max_steps`` per ray, rays end when the
            transmittance falls below ``min_transmittance``).
        max_steps, dt_gamma, min_near: ER-NeRF's ``--max_steps`` (16), ``--dt_gamma`` (1/256)
            and ``--min_near`` (0.05) for the ``ernerf`` sampler.
        torso_model: ``twinflow`` (:class:`twinflow.nerf.network.TorsoField`) or ``ernerf``
            (:class:`twinflow.nerf.network.ErnerfTorso`, ER-NeRF's torso network with its
            128x128 alpha grid); torso_thresh: ER-NeRF's ``--density_thresh_torso``.
        code_init_std: per-frame codes start as ``N(0, std^2)`` (ER-NeRF: 0.1; twinflow: 0).
        autocast: mixed precision of training steps on CUDA: ``none``, ``fp16`` (with a
            gradient scaler; ER-NeRF's ``-O``) or ``bf16``; ignored on other devices.
    """

    res: int
    crop_scale: float
    box_pad: float
    box_top: float
    box_back: float
    encoder: str
    levels: int
    channels: int
    base_res: int
    finest_res: int
    log2_table: int
    hidden: int
    sigma_layers: int
    geo_dim: int
    color_hidden: int
    color_layers: int
    audio_dim: int
    att_window: int
    att_hidden: int
    audio_noise: float
    audio_dropout: float
    ind_dim: int
    n_samples: int
    occ_res: int
    occ_every: int
    occ_warmup: int
    min_transmittance: float
    chunk: int
    head_steps: int
    lips_steps: int
    torso_steps: int
    rays: int
    frames_per_step: int
    lr: float
    lr_net: float
    lr_decay: float
    lips_lr_decay: float
    smooth_after: int
    patch: int
    lambda_patch: float
    perceptual: str
    lambda_mask: float
    lambda_entropy: float
    lambda_amb: float
    head_ray_fraction: float
    mouth_ray_fraction: float
    torso_encoder: str
    torso_levels: int
    torso_channels: int
    torso_base_res: int
    torso_finest_res: int
    torso_log2_table: int
    torso_hidden: int
    torso_ind_dim: int
    torso_shrink: float
    save_every: int = 200
    log_every: int = 50
    ema_decay: float = 0.0
    unc_loss: bool = False
    lambda_amb_eye: float = 0.0
    mlp_bias: bool = True
    color_margin: float = 0.0
    att_pad: str = "edge"
    novel_code: str = "mean"
    coords: str = "box"
    sampler: str = "stratified"
    max_steps: int = 16
    dt_gamma: float = 1 / 256
    min_near: float = 0.0
    torso_model: str = "twinflow"
    torso_thresh: float = 0.01
    code_init_std: float = 0.0
    autocast: str = "none"
    lips_schedule: str = "twinflow"
    ema_every: int = 1
    ema_warmup: bool = False


PRESETS: dict[str, NerfConfig] = {
    "tiny": NerfConfig(
        res=128,
        crop_scale=1.6,
        box_pad=0.03,
        box_top=0.12,
        box_back=0.13,
        encoder="dense",
        levels=3,
        channels=4,
        base_res=32,
        finest_res=128,
        log2_table=14,
        hidden=64,
        sigma_layers=3,
        geo_dim=32,
        color_hidden=32,
        color_layers=2,
        audio_dim=32,
        att_window=8,
        att_hidden=32,
        audio_noise=0.3,
        audio_dropout=0.3,
        ind_dim=4,
        n_samples=32,
        occ_res=48,
        occ_every=16,
        occ_warmup=64,
        min_transmittance=1e-3,
        chunk=8192,
        head_steps=4000,
        lips_steps=1000,
        torso_steps=1000,
        rays=2048,
        frames_per_step=2,
        lr=3e-2,
        lr_net=3e-3,
        lr_decay=0.3,
        lips_lr_decay=0.1,
        smooth_after=500,
        patch=32,
        lambda_patch=0.1,
        perceptual="structural",
        lambda_mask=0.1,
        lambda_entropy=1e-4,
        lambda_amb=1e-2,
        head_ray_fraction=0.6,
        mouth_ray_fraction=0.2,
        torso_encoder="dense",
        torso_levels=3,
        torso_channels=4,
        torso_base_res=16,
        torso_finest_res=128,
        torso_log2_table=16,
        torso_hidden=32,
        torso_ind_dim=8,
        torso_shrink=0.8,
        save_every=200,
        log_every=50,
        ema_decay=0.99,
        unc_loss=True,
        lambda_amb_eye=0.0,
    ),
    "paper": NerfConfig(
        res=512,
        crop_scale=0.0,
        box_pad=0.03,
        box_top=0.12,
        box_back=0.13,
        encoder="hash",
        levels=12,
        channels=1,
        base_res=64,
        finest_res=512,
        log2_table=14,
        hidden=64,
        sigma_layers=3,
        geo_dim=64,
        color_hidden=64,
        color_layers=2,
        audio_dim=32,
        att_window=8,
        att_hidden=64,
        audio_noise=0.0,
        audio_dropout=0.0,
        ind_dim=4,
        n_samples=64,
        occ_res=128,
        occ_every=16,
        occ_warmup=0,
        min_transmittance=1e-4,
        chunk=65536,
        head_steps=100_000,
        lips_steps=25_000,
        torso_steps=200_000,
        rays=65_536,
        frames_per_step=1,
        lr=1e-2,
        lr_net=1e-3,
        lr_decay=0.5,
        lips_lr_decay=0.05,
        smooth_after=10_000,
        patch=32,
        lambda_patch=0.01,
        perceptual="lpips",
        lambda_mask=0.01,
        lambda_entropy=1e-4,
        lambda_amb=1e-4,
        head_ray_fraction=0.5,
        mouth_ray_fraction=0.0,
        torso_encoder="tiled",
        torso_levels=16,
        torso_channels=2,
        torso_base_res=16,
        torso_finest_res=2048,
        torso_log2_table=16,
        torso_hidden=32,
        torso_ind_dim=8,
        torso_shrink=0.8,
        save_every=1000,
        log_every=500,
        ema_decay=0.95,
        unc_loss=True,
        lambda_amb_eye=1e-4,
        mlp_bias=False,
        color_margin=0.001,
        att_pad="zeros",
        novel_code="first",
        coords="bound",
        sampler="ernerf",
        max_steps=16,
        dt_gamma=1 / 256,
        min_near=0.05,
        torso_model="ernerf",
        torso_thresh=0.01,
        code_init_std=0.1,
        autocast="fp16",
        lips_schedule="ernerf",
        ema_every=1000,
        ema_warmup=True,
    ),
}


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> NerfConfig:
    """The preset ``name`` with ``overrides`` (``config.yaml: nerf: overrides``) applied."""
    cfg = resolve_preset(PRESETS, name, overrides)
    check_config(cfg)
    return cfg


CHOICES = {
    "encoder": ("dense", "hash", "tiled"),
    "torso_encoder": ("dense", "hash", "tiled"),
    "perceptual": ("structural", "vgg", "lpips"),
    "att_pad": ("edge", "zeros"),
    "novel_code": ("mean", "first"),
    "coords": ("box", "bound"),
    "sampler": ("stratified", "ernerf"),
    "torso_model": ("twinflow", "ernerf"),
    "autocast": ("none", "fp16", "bf16"),
    "lips_schedule": ("twinflow", "ernerf"),
}


def check_config(cfg: NerfConfig) -> None:
    """Raise ValueError for a field outside its choices (:data:`CHOICES`)."""
    for field, choices in CHOICES.items():
        value = getattr(cfg, field)
        if value not in choices:
            raise ValueError(f"{field} must be one of {', '.join(choices)} (got '{value}')")
    if cfg.torso_model == "ernerf" and cfg.torso_encoder == "dense":
        raise ValueError("torso_model 'ernerf' needs torso_encoder 'tiled' or 'hash'")
    if cfg.ema_every < 1:
        raise ValueError(f"ema_every must be at least 1 (got {cfg.ema_every})")
    if cfg.sampler == "ernerf" and cfg.coords != "bound":
        raise ValueError("sampler 'ernerf' needs coords 'bound' (its grid spans the cube)")
