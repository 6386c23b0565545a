"""Device and thread choice for anchor stages, in one place.

Stages take ``--device auto|cpu|cuda[:i]`` and ``--threads N`` (Snakemake's ``{threads}``).
:func:`twinflow.device.pick_device` decides (explicit request, then ``TWINFLOW_DEVICE``, then a
visible GPU); if that module is unavailable, CUDA is used when torch sees it.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("twinflow.anchor")


def setup(device: str = "auto", threads: int | None = None) -> torch.device:
    """Set torch's CPU threads (oversubscribing shared cores is far slower) and pick the device."""
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        from twinflow.device import pick_device
    except ImportError:  # pragma: no cover - the shared module is part of the package
        chosen = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    else:
        chosen = pick_device(device)
    log.info("device %s, %d CPU threads", chosen, torch.get_num_threads())
    return chosen


def add_args(parser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
