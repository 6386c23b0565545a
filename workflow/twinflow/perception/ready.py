"""Stage ``perception_ready``: can one pipeline use what perception found in a video?

``python -m twinflow.perception.ready --twin ID --pipeline nerf --face face.npz --body body.npz
[--source ORIGINAL] [--max-missing-face 0.2] [--max-missing-body 0.2] --out ready/nerf.json``

Fails with :class:`~twinflow.errors.InputError` naming the twin (or render), the user's file and
the pipeline when the pipeline needs the face or the body and too few frames show it
(:mod:`twinflow.perception.needs`). Otherwise writes ``{"pipeline", "needs", "face", "body",
"limits"}`` (frame counts and the limits applied) for the pipeline's first job to depend on.
"""

from __future__ import annotations

import argparse
import logging

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.perception.needs import check_coverage, coverage, needing
from twinflow.perception.store import load_npz

log = logging.getLogger("twinflow.perception.ready")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.ready", description=__doc__)
    p.add_argument("--twin", required=True, help="twin or render id (for messages)")
    p.add_argument("--pipeline", required=True, help="the pipeline that will use the video")
    p.add_argument("--face", required=True, help="face.npz")
    p.add_argument("--body", required=True, help="body.npz")
    p.add_argument("--source", default=None, help="the user's original video (for messages)")
    p.add_argument("--max-missing-face", type=float, default=0.2, help="fraction of frames")
    p.add_argument("--max-missing-body", type=float, default=0.2, help="fraction of frames")
    p.add_argument("--out", required=True, help="out: ready/{pipeline}.json")
    return p


def run(args: argparse.Namespace) -> None:
    found = {
        "face": load_npz(args.face)["detected"],
        "body": load_npz(args.body)["pose_present"],
    }
    limits = {"face": args.max_missing_face, "body": args.max_missing_body}
    where = {"twin": args.twin, "path": args.source or args.face}
    for part in ("face", "body"):
        check_coverage(found[part], part, limits[part], [args.pipeline], **where)
    needs = [part for part in ("face", "body") if needing(part, [args.pipeline])]
    report = {
        "pipeline": args.pipeline,
        "needs": needs,
        **{part: coverage(present) for part, present in found.items()},
        "limits": {f"max_missing_{part}": limit for part, limit in limits.items()},
    }
    write_json(args.out, report)
    log.info(
        "%s needs %s: face in %d of %d frames, body in %d",
        args.pipeline,
        " and ".join(needs) or "neither face nor body",
        report["face"]["found"],
        report["face"]["frames"],
        report["body"]["found"],
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
