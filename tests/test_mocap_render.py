"""The headless mesh renderer (moderngl on EGL): shaded meshes where the camera projects them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from twinflow.render import EGL_APT_PACKAGES, MeshRenderer, RenderError, composite, egl_available
from twinflow.render.mesh import intrinsics


@pytest.fixture(scope="module")
def renderer():
    ok, why = egl_available()
    if not ok:
        message = (
            f"EGL is unavailable ({why}); install it with `apt-get install -y {EGL_APT_PACKAGES}`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI machines have EGL: the renderer must be tested there
        pytest.skip(message)
    with MeshRenderer(160, 120) as r:
        yield r


def _sphere(n: int = 24):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    return np.asarray(m.vertices), np.asarray(m.faces)


def test_renders_a_shaded_mesh_where_it_projects(renderer):
    v, f = _sphere()
    K = intrinsics(150, 160, 120)
    centre = np.array([0.2, -0.1, 2.0])
    rgba, depth = renderer.render(v * 0.25 + centre, f, K)
    assert rgba.shape == (120, 160, 4) and rgba.dtype == np.uint8
    mask = rgba[..., 3] > 0
    assert 200 < mask.sum() < 160 * 120 / 2
    ys, xs = np.nonzero(mask)
    u = 150 * centre[0] / centre[2] + 80
    w = 150 * centre[1] / centre[2] + 60
    assert abs(xs.mean() - u) < 2 and abs(ys.mean() - w) < 2
    # shaded, not flat; black (and far) off the mesh
    assert rgba[..., :3][mask].std() > 3
    assert (rgba[~mask] == 0).all() and np.isinf(depth[~mask]).all()
    assert abs(depth[mask].min() - (centre[2] - 0.25)) < 0.02
    over = composite(np.full((120, 160, 3), 255, np.uint8), rgba, 0.5)
    assert (over[~mask] == 255).all() and (over[mask] < 255).any()


def test_unknown_backend_fails_with_install_hint():
    with pytest.raises(RenderError, match="apt-get install"):
        MeshRenderer(32, 32, backend="nope")
