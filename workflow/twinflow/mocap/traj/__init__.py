"""Global trajectory prior: a DiffTraj-style diffusion model of root motion given the body's
local motion.

``synth``  a small procedural motion set in AMASS layout (used when ``mocap: traj_dataset`` is
           empty; exercises the code, claims nothing about real motion)
``data``   AMASS-layout loading, features (local pose -> conditioning; root orientation 6D and
           velocity -> target)
``model``  transformer denoiser and DDPM (cosine schedule, DDIM sampling)
``train``  stage ``mocap_traj_train`` -> ``results/mocap/traj/model.pt``
``infer``  stage ``mocap_traj_infer`` -> ``{person}_world.npz``
"""
