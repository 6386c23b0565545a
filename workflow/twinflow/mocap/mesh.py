"""Fitted meshes for other pipelines (the anchor pipeline renders them as its conditioning).

:func:`fit_vertices` evaluates the body model of a fit (``{person}.npz`` of
:mod:`twinflow.mocap.fit`) at its parameters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from twinflow.mocap.common import load_npz


@lru_cache(maxsize=2)
def _body(backend: str, smplx_model: str | None, gender: str):
    from twinflow.mocap.body_models import load_body_model

    return load_body_model(backend, smplx_model=smplx_model, gender=gender)


def fit_vertices(
    fit: str | Path, start: int = 0, stop: int | None = None, smplx_model: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Meshes of frames ``[start, stop)`` of a fit: ``(vertices (T, V, 3) float32, faces (F, 3),
    K (3, 3), (width, height))``, vertices in OpenCV camera coordinates (metres)."""
    from twinflow.mocap.common import npz_info

    data = load_npz(fit)
    backend = str(data["backend"])
    if backend == "smplx" and smplx_model is None:
        smplx_model = npz_info(data).get("smplx_model")
    body = _body(backend, smplx_model, str(data.get("gender", "neutral")))
    n = len(data["trans"])
    stop = n if stop is None else min(stop, n)
    params = body.params_from_npz(data)
    expr = params["expression"]
    with torch.no_grad():
        verts = body.vertices(
            params["pose"][start:stop],
            params["transl"][start:stop],
            params["shape"],
            None if expr is None else expr[start:stop],
        )
    width, height = (int(v) for v in data["image_size"])
    return (
        verts.cpu().numpy().astype(np.float32),
        body.faces,
        data["camera_K"].astype(np.float64),
        (width, height),
    )
