"""The torch device a stage runs on: the GPU its environment gives it, else the CPU.

Stages call ``pick_device(args.device)`` with ``--device`` defaulting to ``"auto"``. The choice:

1. an explicit request (``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``"gpu"`` means ``"cuda"``) wins;
2. else the ``TWINFLOW_DEVICE`` environment variable, with the same values (e.g.
   ``TWINFLOW_DEVICE=cpu`` to keep a run off the GPUs, or to debug on a GPU node);
3. else ``"auto"``: CUDA when a GPU is visible, the CPU otherwise.

"Visible" follows the scheduler: SLURM (``--gpus``/``--gres``) and most launchers hand a job its
GPUs through ``CUDA_VISIBLE_DEVICES``. An empty value or ``-1`` hides all GPUs and torch's CUDA
is then not initialised at all. A job that was given a GPU but whose torch build cannot use it
(a CPU wheel, a driver mismatch) runs on the CPU with a warning.

``python -m twinflow.device [--device X] [--json FILE]`` prints what a job sees, e.g.
``srun --gpus=1 python -m twinflow.device`` on a cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

import torch

from twinflow.errors import TwinflowError

log = logging.getLogger(__name__)

ENV_VAR = "TWINFLOW_DEVICE"
_SPEC = re.compile(r"^(auto|cpu|cuda|gpu)(?::(\d+))?$")


def gpus_hidden() -> bool:
    """True when ``CUDA_VISIBLE_DEVICES`` is set but lists no GPU ("" or a leading -1)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return False
    first = value.split(",")[0].strip()
    return first == "" or first.startswith("-")


def cuda_usable() -> bool:
    """A GPU is visible to this process and torch can use it."""
    return not gpus_hidden() and torch.cuda.is_available()


def _parse(spec: str, origin: str) -> tuple[str, int | None]:
    match = _SPEC.match(spec.strip().lower())
    if not match or (match.group(1) in ("auto", "cpu") and match.group(2) is not None):
        raise TwinflowError(
            f"{origin} asks for device '{spec}'; use auto, cpu, cuda or cuda:<index>"
        )
    kind = "cuda" if match.group(1) == "gpu" else match.group(1)
    return kind, int(match.group(2)) if match.group(2) is not None else None


def pick_device(requested: str = "auto") -> torch.device:
    """The device to run on; see the module docstring for the order of precedence.

    Raises :class:`~twinflow.errors.TwinflowError` when CUDA is asked for explicitly (argument or
    ``TWINFLOW_DEVICE``) but no usable GPU is visible, or the index is out of range.
    """
    origin = "the stage"
    spec = requested or "auto"
    if spec.strip().lower() == "auto" and os.environ.get(ENV_VAR, "").strip():
        spec, origin = os.environ[ENV_VAR], f"{ENV_VAR}"
    kind, index = _parse(spec, origin)

    if kind == "cpu":
        return torch.device("cpu")
    if kind == "auto":
        if cuda_usable():
            return torch.device("cuda", 0)
        if not gpus_hidden() and os.environ.get("CUDA_VISIBLE_DEVICES"):
            log.warning(
                "CUDA_VISIBLE_DEVICES=%s but torch %s cannot use CUDA: running on the CPU",
                os.environ["CUDA_VISIBLE_DEVICES"],
                torch.__version__,
            )
        return torch.device("cpu")

    # An explicit CUDA request must be satisfiable: failing here names the cause, while a
    # silent CPU fallback would turn a GPU job into a much slower CPU job.
    if not cuda_usable():
        why = (
            f"CUDA_VISIBLE_DEVICES='{os.environ['CUDA_VISIBLE_DEVICES']}' hides all GPUs"
            if gpus_hidden()
            else f"torch {torch.__version__} sees no usable CUDA GPU"
        )
        raise TwinflowError(f"{origin} asks for device '{spec}' but {why}")
    index = index or 0
    count = torch.cuda.device_count()
    if index >= count:
        raise TwinflowError(
            f"{origin} asks for device '{spec}' but only {count} GPU(s) are visible"
        )
    return torch.device("cuda", index)


def describe(requested: str = "auto") -> dict:
    """What a job sees: the picked device and the environment that decided it."""
    device = pick_device(requested)
    info = {
        "device": str(device),
        "requested": requested,
        ENV_VAR: os.environ.get(ENV_VAR),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_available": torch.cuda.is_available() if not gpus_hidden() else False,
        "torch": torch.__version__,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    from twinflow.atomic import write_json
    from twinflow.cli import stage_main

    def build_parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="twinflow.device", description=__doc__)
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
        p.add_argument("--json", type=Path, help="also write the report to this file")
        return p

    def run(args: argparse.Namespace) -> None:
        info = describe(args.device)
        text = json.dumps(info, indent=2)
        print(text)
        if args.json:
            write_json(args.json, info)

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
