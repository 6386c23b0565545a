"""Where and how wide the animate stages run."""

from __future__ import annotations

import argparse
import logging

import torch

from twinflow.device import pick_device as _pick_device

log = logging.getLogger("twinflow.animate")


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="auto", help="auto (TWINFLOW_DEVICE, else GPU if any), cpu, cuda[:i]"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def setup(args: argparse.Namespace) -> torch.device:
    """Limit torch's CPU threads to the rule's ``threads`` and pick the device
    (:func:`twinflow.device.pick_device`)."""
    if args.threads and args.threads > 0:
        torch.set_num_threads(args.threads)
    device = _pick_device(args.device)
    log.info("device %s, %d CPU threads", device, torch.get_num_threads())
    return device
