"""Mocap: a parametric whole body (pose, hands, face) fitted to each person track, one file per
person, plus a diffusion prior for the global trajectory and mesh previews.

Stages (each ``python -m twinflow.mocap.<stage>``, one Snakemake rule each, see
``workflow/rules/mocap.smk``):

``fit``          SMPLify-X-style fit of a body model to the perception stage's 2-D pose, hand and
                 face landmarks -> ``{base}/mocap/person0.npz`` (:mod:`twinflow.mocap.fit` documents
                 the keys)
``traj.synth``   a small synthetic AMASS-layout motion set (only when no dataset is configured)
``traj.train``   the trajectory diffusion model -> ``results/mocap/traj/model.pt``
``traj.infer``   world root orientation and trajectory of a fit -> ``person0_world.npz``
``preview``      the fitted mesh over the video -> ``preview.mp4``
``metrics``      reprojection error and jitter against baselines -> ``metrics.json``
``publish``      a mocap render's video -> ``results/renders/{render}.mp4``
``acceptance``   the acceptance measurement on real clips (a benchmark, not a stage)

``{base}`` is ``results/{twin}`` for a twin's video and ``results/drive/{render}`` for a render's
driving video. Body-model backends: :mod:`twinflow.mocap.body_models` (``anny``, the embedded
default, and ``smplx`` with a user-supplied model file); the common skeleton they map to:
:mod:`twinflow.mocap.skeleton`.

``person0.npz`` in short (all backends): ``trans (T, 3)``, ``global_orient (T, 3)``,
``joints3d / joints2d`` (the 126 common points), ``kin3d`` (17 joints), ``bbox (T, 4)``,
``camera_K``, ``fps`` / ``mocap_framerate``, ``gender``; with ``smplx`` also the SMPL-X Blender
add-on's ``betas (10,)``, ``poses (T, 55, 3)`` (axis-angle), ``expression (T, 10)``; with
``anny`` its ``phenotype (6,)``, ``pose (T, 104, 3)``, ``transl``, ``facial_actions``.
Coordinates are OpenCV camera coordinates in metres (x right, y down, z forward);
``person0_world.npz`` has the same body in a z-up world from the trajectory model.
"""
