"""Benchmark of the meshhead models at the paper's sizes (random weights).

``python -m twinflow.meshhead.gpu_bench [--model warp] [options of the model's bench]``

``warp``: face-vid2vid at the reference's vox-256 sizes (:mod:`twinflow.meshhead.warp_bench`:
parameters, one training step, rendering; on CUDA steps per second, frames per second, peak
memory, autocast). A benchmark, not a test; on a CPU it is a smoke run of the full-size model.
"""

from __future__ import annotations

import argparse

from twinflow.cli import stage_main
from twinflow.meshhead.common import add_common


def build_parser() -> argparse.ArgumentParser:
    from twinflow.meshhead import warp_bench

    p = argparse.ArgumentParser(prog="twinflow.meshhead.gpu_bench", description=__doc__)
    p.add_argument("--model", choices=("warp",), default="warp")
    warp_bench.add_arguments(p)
    add_common(p)
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.meshhead import warp_bench

    warp_bench.run(args)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
