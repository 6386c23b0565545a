"""What each pipeline needs perception to find in a video; the check ``perception_ready`` applies.

A twin's video (or a render's driving video) is held to what the renders that use it need:

=========  ============================================================================
pipeline   needs
=========  ============================================================================
nerf       the face, in all but ``perception.max_missing_face`` of the frames (the head
           NeRF is posed and masked by the face mesh)
meshhead   the face, likewise (FLAME tracking, the warp's keypoints and its mouth box)
mocap      the body, in all but ``perception.max_missing_body`` of the frames
anchor     the body, likewise; its head model runs only on frames with a face and
           keeps the body model's head elsewhere (counted in anchor's metrics)
animate    neither (articulated motion of whatever the frames show)
=========  ============================================================================

Stage ``perception_ready`` (:mod:`.ready`) asks it once per pipeline and video and writes
``ready/{pipeline}.json``; each pipeline's first job takes that file as an ``ancient`` input, a
gate that changes no data: a failed check stops only that pipeline, and adding a render of another
pipeline (or changing a limit) retrains nothing. A video no render needs anything of is never
refused: its frames without a face are flagged in ``face.npz`` (``detected``), those without a
body in ``body.npz`` (``pose_present``). Head pose (a face template) is made only for videos used
by a pipeline that needs the face, or by no render at all (:func:`wants_head_pose`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from twinflow.errors import InputError

FACE_PIPELINES = ("nerf", "meshhead")
BODY_PIPELINES = ("mocap", "anchor")


def needing(part: str, pipelines: Iterable[str]) -> list[str]:
    """The pipelines among ``pipelines`` that need ``part`` (``"face"`` or ``"body"``), sorted."""
    wanted = {"face": FACE_PIPELINES, "body": BODY_PIPELINES}[part]
    return sorted({p for p in pipelines if p in wanted})


def wants_head_pose(pipelines: Iterable[str]) -> bool:
    """Whether a video used by ``pipelines`` gets a face template and head pose: when one of them
    needs the face, or when no render uses it (a perception-only twin gets every product)."""
    pipelines = list(pipelines)
    return not pipelines or bool(needing("face", pipelines))


def coverage(present: np.ndarray) -> dict:
    """``{"frames": T, "found": n, "missing": T - n}`` of a ``(T,)`` bool array."""
    found = int(np.count_nonzero(present))
    return {"frames": len(present), "found": found, "missing": len(present) - found}


def check_coverage(
    present: np.ndarray,
    part: str,
    max_missing: float,
    pipelines: Iterable[str],
    *,
    twin: str | None,
    path: str | Path,
) -> None:
    """Raise :class:`InputError` when a pipeline in ``pipelines`` needs ``part`` and more than
    ``max_missing`` of the frames (``present``: ``(T,)`` bool) show none, or none at all does
    (whatever the limit); the message names the pipelines and the config key of the limit."""
    users = needing(part, pipelines)
    n = len(present)
    missing = int(n - np.count_nonzero(present))
    if not users or (missing < n and missing <= max_missing * n):
        return
    raise InputError(
        f"no {part} found in {missing} of {n} frames ({missing / max(n, 1):.0%}; at most "
        f"{max_missing:.0%} allowed by perception.max_missing_{part}): "
        f"{' and '.join(users)} need{'s' if len(users) == 1 else ''} the person's {part}",
        twin=twin,
        path=path,
    )
