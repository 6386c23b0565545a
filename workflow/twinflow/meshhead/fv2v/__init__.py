"""face-vid2vid (Wang et al., CVPR 2021), as zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis
re-implements it (commit 9511d25), in plain torch: the meshhead pipeline's head warp.

Modules: :mod:`.layers` (blocks), :mod:`.keypoints` (canonical keypoint detector, head-pose and
expression estimator), :mod:`.pose` (angles, rotation, keypoint transformation, relative motion),
:mod:`.generator` (3-D dense motion, ``original`` and ``spade`` generators), :mod:`.discriminator`,
:mod:`.losses` (the reference's training losses), :mod:`.hopenet` (the head-pose loss network),
:mod:`.model` (the networks of one :class:`~twinflow.meshhead.presets.WarpConfig`).
Module and parameter names are the reference's, so its checkpoints load as they are
(``python -m twinflow.convert fv2v``).
"""
