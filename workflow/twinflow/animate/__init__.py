"""The animate pipeline: MRAA (Siarohin et al., "Motion Representations for Articulated Animation",
CVPR 2021), written for twinflow. The reference implementation is snap-research/articulated-animation
(commit 03f1968): its published configs are presets here, its checkpoints convert
(``python -m twinflow.convert mraa``) and reproduce its frames (tests/test_animate_parity.py).

A photo is animated by the motion of a driving video. Each frame is described by K regions; every
region is a heatmap whose first and second moments give a shift (mean) and an affine (the
principal axes: ``U sqrt(S)`` of the heatmap covariance). Source-to-driving motion is one affine
per region plus a background affine; a pixel-wise flow predictor blends these K+1 motions and
predicts an occlusion map; a generator warps the source's features with that flow and paints what
is occluded.

Modules (one purpose each):

* :mod:`.presets` -- ``tiny`` and the reference's configs (``vox256``, ``ted384``, ...);
  :mod:`.reference_config` reads the reference's YAML configs.
* :mod:`.geometry` -- coordinate grids, heatmap -> region (PCA), region Gaussians, random TPS;
  :mod:`.svd2x2` -- the principal axes with torch.svd's (LAPACK's) signs.
* :mod:`.blocks` -- convolution blocks, the hourglass, anti-aliased resizing.
* :mod:`.region_predictor`, :mod:`.bg_motion`, :mod:`.flow_predictor`, :mod:`.generator`,
  :mod:`.avd` -- the networks; :mod:`.model` bundles them.
* :mod:`.losses` -- reconstruction and equivariance losses; :mod:`.schedule` -- the reference's
  epoch schedule (its augmentations and VGG-19, shared with the other pipelines:
  :mod:`twinflow.train.augment`, :mod:`twinflow.train.vgg`).
* :mod:`.modes` -- standard, relative and avd animation.
* :mod:`.data`, :mod:`.landmarks`, :mod:`.runtime` -- datasets, face landmarks, device/threads.
* Stages (``python -m twinflow.animate.<stage>``): :mod:`.dataset`, :mod:`.train`,
  :mod:`.train_avd`, :mod:`.render`, :mod:`.evaluate`; :mod:`.acceptance` is the CPU benchmark,
  :mod:`.gpu_bench` times the reference-size model.
"""
