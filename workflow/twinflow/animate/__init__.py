"""The animate pipeline: MRAA (Siarohin et al., "Motion Representations for Articulated Animation",
CVPR 2021), written for twinflow.

A photo is animated by the motion of a driving video. Each frame is described by K regions; every
region is a heatmap whose first and second moments give a shift (mean) and an affine (the
principal axes: ``U sqrt(S)`` of the heatmap covariance). Source-to-driving motion is one affine
per region plus a background affine; a pixel-wise flow predictor blends these K+1 motions and
predicts an occlusion map; a generator warps the source's features with that flow and paints what
is occluded.

Modules (one purpose each):

* :mod:`.presets` -- ``tiny``, ``vox256``, ``ted384`` model and training settings.
* :mod:`.geometry` -- coordinate grids, heatmap -> region (PCA), region Gaussians, random TPS.
* :mod:`.blocks` -- convolution blocks, the hourglass, anti-aliased resizing.
* :mod:`.region_predictor`, :mod:`.bg_motion`, :mod:`.flow_predictor`, :mod:`.generator`,
  :mod:`.avd` -- the networks; :mod:`.model` bundles them.
* :mod:`.losses`, :mod:`.vgg` -- reconstruction and equivariance losses.
* :mod:`.modes` -- standard, relative and avd animation.
* :mod:`.data`, :mod:`.landmarks`, :mod:`.runtime` -- datasets, face landmarks, device/threads.
* Stages (``python -m twinflow.animate.<stage>``): :mod:`.dataset`, :mod:`.train`,
  :mod:`.train_avd`, :mod:`.render`, :mod:`.evaluate`; :mod:`.acceptance` is the CPU benchmark.
"""
