"""Stage ``anchor_train_body``: train the twin's body denoiser (see :mod:`twinflow.anchor.train`).

``python -m twinflow.anchor.train_body --twin ID --data clip_000.npz ... --preset tiny
[--set field=value] [--steps N] [--max-minutes M] [--save-every K] --out body.pt``

Resumable: a rerun after a kill continues from ``body.pt.resume.pt`` and logs the step.
"""

from __future__ import annotations

from twinflow.anchor.train import build_parser, run
from twinflow.cli import stage_main

if __name__ == "__main__":
    raise SystemExit(stage_main(lambda: build_parser("body"), lambda args: run("body", args)))
