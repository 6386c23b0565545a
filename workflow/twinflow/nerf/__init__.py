"""nerf: an ER-NeRF talking head (Li et al., ICCV 2023) trained on the twin's video, driven by audio.

Stages (each ``python -m twinflow.nerf.<stage>``, one Snakemake rule each, workflow/rules/nerf.smk):

==================  ==========================================  ===============================
stage               makes                                       from
==================  ==========================================  ===============================
audio_features      ``audio_features.npz``: ``[N, 16, C]``       a 16 kHz wav (twin or driving)
                    windows per 25 fps frame (log-mel default)
dataset             ``frames.mkv`` (RGB + labels),              normalised video + perception
                    ``dataset.npz`` (cameras, masks, plate,     (face, signals, matte, template,
                    blink, mouth boxes, split)                  transforms, parsing, background)
train --stage head  ``head.pt``: tri-plane head field with      dataset + the twin's features
                    region audio attention and eye control
train --stage lips  ``lips.pt``: + mouth-patch fine-tuning      head.pt
train --stage torso ``torso.pt``: 2-D torso deformation model   lips.pt (head frozen)
evaluate            ``metrics.json``, ``val.mp4``               held-out frames, own audio
render              ``render.mkv`` (RGBA), ``render.json``       lips.pt, torso.pt, driving
                    (+ ``depth.mkv``)                           features (a time range of them)
paste               ``pasted.mp4`` in the original framing      render + plate / original frames
                    (full, head, face, face_neck; at the       / parsing (/ the source video)
                    normalised or the source's resolution)
mux                 ``results/renders/{render}.mp4``            pasted.mp4 + driving audio
==================  ==========================================  ===============================

Modules: :mod:`~twinflow.nerf.presets` (tiny / paper), :mod:`~twinflow.nerf.encoding` (tri-plane
dense grids, ER-NeRF's hash / tiled grid encoder), :mod:`~twinflow.nerf.network` (audio encoder
and smoothing, head field, occupancy grid, twinflow's and ER-NeRF's torso), :mod:`~twinflow.nerf.rays` (rays, samples, volume rendering),
:mod:`~twinflow.nerf.model` (rendering rays and frames), :mod:`~twinflow.nerf.marcher` (ER-NeRF's
ray marcher in PyTorch, the ``paper`` preset's sampler), :mod:`~twinflow.nerf.data` (the dataset
in memory, ray batches), :mod:`~twinflow.nerf.losses` (mouth-patch loss), :mod:`~twinflow.nerf.lpips` (LPIPS(alex) in plain
torch, ER-NeRF's lips loss and metric, user-supplied weights), :mod:`~twinflow.nerf.plan`
(config for the rules), :mod:`~twinflow.nerf.synthetic` (a synthetic talking head for tests and
benchmarks), :mod:`~twinflow.nerf.gpu_bench` and :mod:`~twinflow.nerf.acceptance` (measurements),
:mod:`~twinflow.nerf.speech_probe` (can audio explain the mouth on the val frames at all?).

An ER-NeRF model trained with the reference code imports with ``python -m twinflow.convert ernerf``
(:mod:`twinflow.convert.ernerf`) and renders through ``config.yaml: nerf: pretrained:`` (with
``nerf: finetune: true``, after ER-NeRF's lips fine-tuning on its imported data).
"""
