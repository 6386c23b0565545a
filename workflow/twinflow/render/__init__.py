"""Headless mesh rendering: a shaded triangle mesh seen by a pinhole camera, on black or over a frame.

Shared by the mocap preview and the anchor pipeline. Vertices are given in OpenCV camera
coordinates (x right, y down, z forward, any unit), the camera by its intrinsics ``K`` in pixels.

Backends, tried in this order by ``backend="auto"``:

``moderngl``   OpenGL 3.3 through EGL (``moderngl.create_standalone_context(backend="egl")``):
               Mesa's llvmpipe on a CPU-only machine (3-5 ms per 512x512 frame of a 10k-vertex
               mesh), the GPU driver's EGL where there is one. Needs the EGL loader and Mesa's
               drivers; on Debian/Ubuntu: ``apt-get install -y libegl1 libegl-mesa0
               libgl1-mesa-dri libgbm1``.
``pytorch3d``  PyTorch3D's rasteriser, used only when importable (optional, not a dependency).

When no backend works, :class:`RenderError` says why and how to install EGL.
"""

from twinflow.render.mesh import (
    EGL_APT_PACKAGES,
    MeshRenderer,
    RenderError,
    composite,
    egl_available,
    vertex_normals,
)

__all__ = [
    "EGL_APT_PACKAGES",
    "MeshRenderer",
    "RenderError",
    "composite",
    "egl_available",
    "vertex_normals",
]
