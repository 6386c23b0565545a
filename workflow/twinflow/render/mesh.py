"""A shaded mesh renderer for pinhole cameras: moderngl (EGL) first, PyTorch3D if importable.

Usage::

    renderer = MeshRenderer(512, 512)                 # one GL context per process
    rgba, depth = renderer.render(vertices, faces, K) # (H, W, 4) uint8, (H, W) float32
    frame = composite(frame, rgba)                    # mesh over a video frame

``vertices`` ``(V, 3)`` are OpenCV camera coordinates (x right, y down, z forward); ``depth`` is
the camera-space z of the nearest surface (``inf`` where the mesh is absent). Shading is a
two-sided Lambert term with a headlight and a little specular, in one flat colour, so that face
and finger geometry reads well in previews.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from twinflow.errors import TwinflowError

log = logging.getLogger(__name__)

EGL_APT_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
DEFAULT_COLOR = (0.72, 0.78, 0.92)


class RenderError(TwinflowError):
    """No rendering backend works on this machine (EGL missing, no PyTorch3D)."""


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit per-vertex normals ``(V, 3)`` (area-weighted face normals summed at each vertex)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return (vn / np.maximum(norm, 1e-12)).astype(np.float32)


def gl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL projection of OpenCV intrinsics, for eye coordinates ``(x, -y, -z)``.

    A camera point ``(x, y, z)`` lands on pixel ``(fx x / z + cx, fy y / z + cy)`` with row 0 at
    the top of the image once the GL framebuffer (row 0 at the bottom) is flipped.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2 * fx / width, 0, 1 - 2 * cx / width, 0],
            [0, 2 * fy / height, 2 * cy / height - 1, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ],
        np.float32,
    )


_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_pos;
out vec3 v_normal;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    gl_Position = proj * vec4(in_pos.x, -in_pos.y, -in_pos.z, 1.0);
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 color;
uniform float opacity;
in vec3 v_pos;
in vec3 v_normal;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    // key light from the upper left of the camera, a fill light from the camera
    vec3 key = normalize(vec3(-0.4, -0.6, -1.0));
    float diffuse = 0.65 * abs(dot(n, key)) + 0.25 * abs(dot(n, view));
    vec3 h = normalize(key + view);
    float spec = 0.15 * pow(abs(dot(n, h)), 24.0);
    vec3 c = color * (0.18 + diffuse) + vec3(spec);
    f_color = vec4(clamp(c, 0.0, 1.0), opacity);
}
"""


def egl_available() -> tuple[bool, str]:
    """Whether moderngl can open an EGL context here, and why not when it cannot."""
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl")
        ctx.release()
        return True, "ok"
    except Exception as err:  # the EGL loader raises several kinds
        return False, f"{type(err).__name__}: {err}"


class _ModernGL:
    name = "moderngl"

    def __init__(self, width: int, height: int, samples: int):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.width, self.height = width, height
        self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        size = (width, height)
        self.fbo = self.ctx.framebuffer(
            color_attachments=[self.ctx.renderbuffer(size, 4)],
            depth_attachment=self.ctx.depth_renderbuffer(size),
        )
        self.msaa = None
        if samples > 1:
            try:
                self.msaa = self.ctx.framebuffer(
                    color_attachments=[self.ctx.renderbuffer(size, 4, samples=samples)],
                    depth_attachment=self.ctx.depth_renderbuffer(size, samples=samples),
                )
            except Exception as err:  # no multisampling: render aliased
                log.debug("no MSAA (%s)", err)
        self._vbo = None
        self._ibo = None
        self._vao = None
        self._nv = self._nf = -1
        self.renderer_name = self.ctx.info.get("GL_RENDERER", "?")

    def _buffers(self, n_vertices: int, faces: np.ndarray):
        same = self._vao is not None and n_vertices == self._nv and len(faces) == self._nf
        if same and np.array_equal(faces, self._faces):
            return
        for obj in (self._vao, self._vbo, self._ibo):
            if obj is not None:
                obj.release()
        self._vbo = self.ctx.buffer(reserve=n_vertices * 6 * 4, dynamic=True)
        self._ibo = self.ctx.buffer(np.ascontiguousarray(faces, np.int32).tobytes())
        self._vao = self.ctx.vertex_array(
            self.prog, [(self._vbo, "3f 3f", "in_pos", "in_normal")], index_buffer=self._ibo
        )
        self._nv, self._nf, self._faces = n_vertices, len(faces), np.array(faces, copy=True)

    def render(self, vertices, faces, normals, K, color, opacity, near, far):
        import moderngl

        self._buffers(len(vertices), faces)
        data = np.concatenate([vertices, normals], axis=1).astype(np.float32)
        self._vbo.write(np.ascontiguousarray(data).tobytes())
        self.prog["proj"].write(gl_projection(K, self.width, self.height, near, far).T.tobytes())
        self.prog["color"].value = tuple(float(c) for c in color)
        self.prog["opacity"].value = float(opacity)
        target = self.msaa or self.fbo
        target.use()
        self.ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)
        self._vao.render(moderngl.TRIANGLES)
        if self.msaa is not None:
            self.ctx.copy_framebuffer(self.fbo, self.msaa)
        rgba = np.frombuffer(self.fbo.read(components=4), np.uint8)
        rgba = rgba.reshape(self.height, self.width, 4)[::-1]
        d = np.frombuffer(self.fbo.read(components=1, attachment=-1, dtype="f4"), np.float32)
        d = d.reshape(self.height, self.width)[::-1]
        # window depth -> camera z
        ndc = 2.0 * d - 1.0
        z = 2.0 * near * far / (far + near - ndc * (far - near))
        z = np.where(d >= 1.0, np.inf, z).astype(np.float32)
        return np.ascontiguousarray(rgba), np.ascontiguousarray(z)

    def close(self):
        self.ctx.release()


class _PyTorch3D:
    """PyTorch3D's rasteriser (optional; used only when the package imports)."""

    name = "pytorch3d"

    def __init__(self, width: int, height: int):
        import pytorch3d.renderer  # noqa: F401  (import check)

        self.width, self.height = width, height

    def render(self, vertices, faces, normals, K, color, opacity, near, far):
        import torch
        from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
        from pytorch3d.structures import Meshes

        h, w = self.height, self.width
        # PyTorch3D's camera looks down +z with +x left and +y up: flip x and y of OpenCV points.
        verts = torch.as_tensor(vertices, dtype=torch.float32) * torch.tensor([-1.0, -1.0, 1.0])
        mesh = Meshes([verts], [torch.as_tensor(faces, dtype=torch.int64)])
        cams = PerspectiveCameras(
            focal_length=((float(K[0, 0]), float(K[1, 1])),),
            principal_point=((float(K[0, 2]), float(K[1, 2])),),
            image_size=((h, w),),
            in_ndc=False,
        )
        raster = MeshRasterizer(
            cameras=cams, raster_settings=RasterizationSettings(image_size=(h, w))
        )
        frags = raster(mesh)
        pix = frags.pix_to_face[0, ..., 0].numpy()
        bary = frags.bary_coords[0, ..., 0, :].numpy()
        zbuf = frags.zbuf[0, ..., 0].numpy()
        hit = pix >= 0
        n = np.zeros((h, w, 3), np.float32)
        tri = np.asarray(faces)[pix[hit]]
        n[hit] = np.einsum("pk,pkc->pc", bary[hit], normals[tri])
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
        key = np.array([-0.4, -0.6, -1.0]) / np.linalg.norm([-0.4, -0.6, -1.0])
        shade = 0.18 + 0.65 * np.abs(n @ key) + 0.25 * np.abs(n[..., 2])
        rgb = np.clip(np.asarray(color)[None, None] * shade[..., None], 0, 1)
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., :3] = np.where(hit[..., None], rgb * 255, 0).astype(np.uint8)
        rgba[..., 3] = np.where(hit, round(255 * opacity), 0).astype(np.uint8)
        z = np.where(hit, zbuf, np.inf).astype(np.float32)
        return rgba, z

    def close(self):
        pass


class MeshRenderer:
    """Render triangle meshes to ``width x height`` RGBA images; see the module docstring.

    ``backend``: ``"auto"`` (moderngl/EGL, else PyTorch3D), ``"moderngl"`` or ``"pytorch3d"``.
    Raises :class:`RenderError` naming the cause and the packages to install when none works.
    """

    def __init__(self, width: int, height: int, backend: str = "auto", samples: int = 4):
        self.width, self.height = int(width), int(height)
        errors = []
        self._impl = None
        order = ["moderngl", "pytorch3d"] if backend == "auto" else [backend]
        for name in order:
            try:
                if name == "moderngl":
                    self._impl = _ModernGL(self.width, self.height, samples)
                elif name == "pytorch3d":
                    self._impl = _PyTorch3D(self.width, self.height)
                else:
                    raise ValueError(f"unknown render backend '{name}'")
                break
            except Exception as err:
                errors.append(f"{name}: {type(err).__name__}: {err}")
        if self._impl is None:
            raise RenderError(
                "no mesh renderer works here ("
                + "; ".join(errors)
                + "). moderngl needs EGL and Mesa's drivers: on Debian/Ubuntu run "
                f"`apt-get install -y {EGL_APT_PACKAGES}` (or install pytorch3d)"
            )
        self.backend = self._impl.name
        log.debug("mesh renderer: %s", self.backend)

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        K: np.ndarray,
        *,
        color: tuple[float, float, float] = DEFAULT_COLOR,
        opacity: float = 1.0,
        normals: np.ndarray | None = None,
        near: float | None = None,
        far: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rgba (H, W, 4) uint8, depth (H, W) float32)`` of the mesh; alpha 0 off the mesh."""
        vertices = np.asarray(vertices, np.float32)
        faces = np.asarray(faces, np.int32)
        if normals is None:
            normals = vertex_normals(vertices, faces)
        z = vertices[:, 2]
        zmax = float(z.max()) if len(z) else 1.0
        if near is None:
            near = max(1e-3, 0.5 * float(z[z > 0].min())) if np.any(z > 0) else 1e-2
        if far is None:
            far = max(2.0 * zmax, near * 10)
        return self._impl.render(
            vertices, faces, normals, np.asarray(K, np.float64), color, opacity, near, far
        )

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def composite(frame: np.ndarray, rgba: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The rendering over ``frame`` (RGB uint8), blended by its alpha times ``strength``."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0 * strength
    out = frame.astype(np.float32) * (1 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """``K`` of a centred pinhole camera with square pixels."""
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], np.float64)


def focal_from_fov(fov_deg: float, width: int) -> float:
    return 0.5 * width / math.tan(math.radians(fov_deg) / 2)
