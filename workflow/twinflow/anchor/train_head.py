"""Stage ``anchor_train_head``: train the twin's head denoiser (see :mod:`twinflow.anchor.train`).

``python -m twinflow.anchor.train_head --twin ID --data clip_000.npz ... --preset tiny
[--set field=value] [--steps N] [--max-minutes M] [--save-every K] --out head.pt``

Resumable: a rerun after a kill continues from ``head.pt.resume.pt`` and logs the step.
"""

from __future__ import annotations

from twinflow.anchor.train import build_parser, run
from twinflow.cli import stage_main

if __name__ == "__main__":
    raise SystemExit(stage_main(lambda: build_parser("head"), lambda args: run("head", args)))
