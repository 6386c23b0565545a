"""Stage ``anchor_use_model``: a supplied body or head model becomes the twin's, no training.

``python -m twinflow.anchor.use_model --twin ID --kind body --model body.pt --data
data/clip_*.npz --out results/{twin}/anchor/body.pt``

For twins listed in ``config.yaml: anchor: models: {twin: FOLDER}`` (e.g. Make-Your-Anchor's
fine-tuned weights converted by ``python -m twinflow.convert mya``): the checkpoint is checked
(an anchor model of that kind, its size that of the twin's data) and written as the twin's model.
When it holds no appearance image, the twin's reference frame (the one training would pick,
:meth:`twinflow.anchor.data.ClipSet.reference_index`) is stored: the body frame, or its head crop.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from twinflow.anchor.data import load_clips
from twinflow.cli import stage_main
from twinflow.errors import InputError, TwinflowError
from twinflow.train import load_checkpoint, save_checkpoint

log = logging.getLogger("twinflow.anchor.use_model")


def use_model(twin: str, kind: str, model: str | Path, data: list[str], out: str | Path) -> None:
    model = Path(model)
    if model.is_dir():
        raise TwinflowError(
            f"a folder: convert a Make-Your-Anchor model first (python -m twinflow.convert mya "
            f"{model} --part {kind} --out {kind}.pt)",
            path=model,
        )
    ckpt = load_checkpoint(model, expect={"pipeline": "anchor", "kind": kind})
    clips = load_clips(data)
    images = clips.arrays["frames" if kind == "body" else "head"]
    size = int(ckpt["meta"]["size"])
    if images.shape[1] != size:
        raise InputError(
            f"the supplied {kind} model works at {size} px but twin {twin}'s anchor data is "
            f"{images.shape[1]} px; use the preset the model was made for (anchor: preset: "
            f"{ckpt['meta'].get('preset')})",
            path=model,
        )
    extra = dict(ckpt.get("extra") or {})
    if extra.get("reference") is None:
        index = clips.reference_index()
        extra["reference"] = np.asarray(images[index])
        extra["reference_frame"] = int(clips.arrays["frame_index"][index])
        log.info("%s: reference frame %d of twin %s", kind, extra["reference_frame"], twin)
    ckpt["extra"] = extra
    ckpt.setdefault("meta", {})["used_for"] = twin
    save_checkpoint(out, {k: v for k, v in ckpt.items() if k != "format"})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.use_model", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--kind", choices=("body", "head"), required=True)
    p.add_argument("--model", required=True, help="the supplied twinflow anchor checkpoint")
    p.add_argument("--data", nargs="+", required=True, help="the twin's anchor clip data")
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    use_model(args.twin, args.kind, args.model, args.data, args.out)
    log.info("%s model of %s: %s -> %s", args.kind, args.twin, args.model, args.out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
