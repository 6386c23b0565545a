"""Presets of the mocap pipeline: ``tiny`` (CPU, tests and the demo) and ``paper`` (a GPU).

``config.yaml: mocap: overrides: {field: value}`` changes single fields of the fitting preset,
``mocap: traj_overrides:`` those of the trajectory model (see :func:`twinflow.presets.resolve_preset`).
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("anny", "smplx")


@dataclass(frozen=True)
class FitConfig:
    """SMPLify-X-style fitting of one person track (``twinflow.mocap.fit``).

    Stages, each over all frames of the track in one batch:
    1. ``iters_global``: global orientation and translation on the torso points;
    2. ``iters_body``: + body pose and shape on the 33 pose points;
    3. ``iters_full``: + hands, jaw and expression on hand and face points too.

    ``optimizer``: ``lbfgs`` (default; ``iters_*`` count outer steps of ``lbfgs_inner``
    iterations with a strong-Wolfe line search, as SMPLify) or ``adam`` (``iters_*`` steps at
    ``lr``, cosine-decayed). Loss weights ``w_*`` multiply the terms of
    :func:`twinflow.mocap.fit.objective`; the data term is robust (Geman-McClure with scale
    ``robust_sigma`` x person height) and normalised by the person's height in pixels, so the
    weights do not depend on the video size.
    """

    iters_global: int = 10
    iters_body: int = 20
    iters_full: int = 15
    optimizer: str = "lbfgs"
    lbfgs_inner: int = 10
    lr: float = 0.02
    lr_transl: float = 0.01
    robust_sigma: float = 0.15
    conf_threshold: float = 0.25
    w_body: float = 1.0
    w_pose_face: float = 0.3
    w_hands: float = 0.5
    w_face: float = 0.5
    w_pose_prior: float = 2e-3
    w_hinge: float = 0.05
    w_shape: float = 2e-3
    w_expr: float = 1e-3
    w_smooth: float = 30.0
    w_smooth_pose: float = 2e-3
    w_depth: float = 1e-3
    focal_factor: float = 1.2  # focal = factor x max(W, H) when perception gives none
    use_head_pose_focal: bool = True


@dataclass(frozen=True)
class TrajConfig:
    """The trajectory diffusion model (``twinflow.mocap.traj``).

    A transformer denoiser over ``window`` frames predicts (``predict``: ``x0`` or ``epsilon``)
    per-frame root orientation (6D) and root velocity from noisy ones, conditioned on the local
    body pose (root-relative kinematic joints); DDPM with ``diffusion_steps`` steps, sampled with
    ``sample_steps`` (strided DDPM/DDIM-style, deterministic).

    Bodies of other proportions than the training data's (a fitted anny or SMPL-X body against
    the one generic skeleton of the synthetic set or of AMASS's forward kinematics, limbs out of
    frame) must look like training bodies to the model: ``cond_std_floor`` bounds the
    normalisation's divisor (features that never vary in the training set, such as the hips'
    offsets from the pelvis, are not blown up into tens of standard deviations), and
    ``cond_noise`` perturbs the training conditioning (per window by ``cond_noise``, per frame by
    a quarter of it). On the demo twin (a standing talker, legs out of frame) the world root
    walked off at 0.6 m/s and rose 2 m in 6 s without them, and drifts at 0.15 m/s at a constant
    height with them; on a synthetic stop-and-go walk the distance walked by each frame is
    followed more closely (0.05 vs 0.12 m off), the speed per frame less (0.18 vs 0.08 m/s).
    """

    window: int = 32
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0
    diffusion_steps: int = 100
    sample_steps: int = 20
    predict: str = "x0"
    steps: int = 600
    batch: int = 32
    lr: float = 1e-3
    fps: float = 25.0
    seed: int = 0
    save_every: int = 200
    # synthetic data when no dataset is configured
    synth_sequences: int = 48
    synth_seconds: float = 8.0
    cond_std_floor: float = 0.05  # least divisor of the conditioning (units of body height)
    cond_noise: float = 0.05  # training noise on the conditioning (units of body height)


FIT_PRESETS = {
    "tiny": FitConfig(),
    "paper": FitConfig(iters_global=30, iters_body=60, iters_full=40, lbfgs_inner=20),
}

TRAJ_PRESETS = {
    "tiny": TrajConfig(),
    "paper": TrajConfig(
        window=120,
        d_model=256,
        layers=6,
        heads=8,
        dropout=0.1,
        diffusion_steps=1000,
        sample_steps=50,
        steps=200_000,
        batch=128,
        lr=2e-4,
        save_every=2000,
        synth_sequences=512,
        synth_seconds=20.0,
    ),
}
