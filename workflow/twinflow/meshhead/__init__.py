"""Meshhead: speech to face-mesh motion (FaceFormer-style) driving a one-shot head warp
(face-vid2vid-style) of the twin's photo or a frame of its video.

Stages (``python -m twinflow.meshhead.<stage>``, one rule each in ``workflow/rules/meshhead.smk``):
``dataset`` (pose-free mesh motion + speech), ``frames`` (head crops + warp keypoints),
``train_audio2mesh``, ``train_warp``, ``evaluate`` (``metrics.json``), ``infer`` (mesh sequence
of a driving audio), ``preview`` (mesh video), ``render`` (warped head video), ``mux`` (+ audio).
``acceptance`` is the benchmark on a real clip. File formats are in each stage's docstring.
"""

import os

# With more runnable threads than cores (a shared machine, parallel jobs), OpenMP's default
# spin-waiting makes multi-threaded torch several times slower than one thread; passive waiting
# keeps two threads faster than one. Set before torch is imported by the stage modules.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
