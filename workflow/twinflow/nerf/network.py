"""The ER-NeRF networks: audio encoder and smoothing, the region-aware head field, the torso.

Head field (:class:`HeadField`), for a point ``x`` of the head box, an audio code ``a`` of the
frame, the eye (blink) value ``e`` and a view direction ``d``::

    f   = TriPlane(x)                                   # xy, yz, xz planes, concatenated
    a_x = a * AudioAttention(f)                         # region attention: the spatial feature
                                                        # weighs every channel of the audio code
    e_x = e * sigmoid(EyeAttention(f))                  # the blink acts where the eyes are
    sigma, g = SigmaNet([f, a_x, e_x])                  # density (exp), geometry feature
    rgb = sigmoid(ColorNet([SH(d), g, code_frame]))     # a per-frame code (optional) for lighting
    u = softplus(UncNet(stop_grad(f)))                   # training only: how hard this point is

The uncertainty ``u`` (ER-NeRF's ``unc_net``, built when ``unc_loss`` is on) reads the spatial
feature without letting gradients into it; rendered along a ray it weighs that ray's colour loss
(:func:`twinflow.nerf.losses.uncertainty_weighted_mse`). Rendering for output never evaluates it.

Audio (:class:`AudioEncoder`): a window of 16 feature vectors ``[16, C]`` per video frame goes
through 1-D convolutions over time to a ``audio_dim`` code (ER-NeRF's AudioNet); the codes of
``att_window`` (8) neighbouring frames are then combined by a small attention net
(:class:`AudioSmoother`, ER-NeRF's AudioAttNet) that predicts softmax weights over the window,
which smooths the mouth motion in time.

Torso (:class:`TorsoField`): a 2-D image-plane model. Three anchor points near the neck, moved
by the head pose and projected, encode the pose; an MLP predicts a 2-D deformation of the pixel
coordinate, at which a multi-resolution 2-D grid is read; a second MLP gives colour and alpha.
"""

from __future__ import annotations

import torch
from torch import nn

from twinflow.nerf.encoding import (
    TriPlaneEncoder,
    frequency_encoding,
    frequency_encoding_ernerf,
    make_grid2d,
    sh_encoding,
)
from twinflow.nerf.presets import NerfConfig


class MLP(nn.Sequential):
    """``layers`` linear layers with ReLU between them (ER-NeRF's ``MLP`` when ``bias=False``;
    its ``net.k`` is our ``2k``)."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int, layers: int, bias: bool = True):
        mods: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            mods.append(
                nn.Linear(dim_in if i == 0 else hidden, dim_out if last else hidden, bias=bias)
            )
            if not last:
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)


class AudioEncoder(nn.Module):
    """``(B, 16, C)`` feature windows -> ``(B, audio_dim)`` codes (convolutions over the 16 steps)."""

    def __init__(self, dim_in: int, audio_dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(dim_in, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(32, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(32, 64, 3, stride=2, padding=1),
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(64, 64, 3, stride=2, padding=1),
            nn.LeakyReLU(0.02, True),
        )
        self.fc = nn.Sequential(
            nn.Linear(64, 64), nn.LeakyReLU(0.02, True), nn.Linear(64, audio_dim)
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        h = self.conv(windows.transpose(1, 2))  # (B, 64, 1)
        return self.fc(h.mean(-1))


class AudioSmoother(nn.Module):
    """Attention over ``window`` neighbouring frames' codes ``(B, window, D)`` -> ``(B, D)``."""

    def __init__(self, audio_dim: int, window: int):
        super().__init__()
        self.window = window
        chans = [audio_dim, 16, 8, 4, 2, 1]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv1d(a, b, 3, padding=1), nn.LeakyReLU(0.02, True)]
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(window, window)

    def weights(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.conv(codes.transpose(1, 2))[:, 0]  # (B, window)
        return torch.softmax(self.fc(h), -1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.weights(codes)[..., None] * codes).sum(1)


def window_indices(centre: torch.Tensor, window: int, n: int) -> torch.Tensor:
    """Frame indices ``(B, window)`` of the smoothing window around each ``centre`` (clamped to
    ``0..n-1``): ``window // 2`` frames before the centre and the rest from it on."""
    offs = torch.arange(window, device=centre.device) - window // 2
    return (centre[:, None] + offs).clamp(0, n - 1)


class OccupancyGrid(nn.Module):
    """Which cells of the head box may hold density (instant-ngp's density grid, in PyTorch).

    ``density`` is a running maximum of the head's density at a random point of every cell
    (decayed by ``decay`` per update, so cells the mouth opens into stay marked for a while);
    a cell is occupied when a sample spacing of density there would be more than
    ``alpha_min`` opaque, or while the grid has not been updated yet. Saved with the model, so
    rendering skips empty space too.
    """

    def __init__(self, res: int, decay: float = 0.95, alpha_min: float = 0.005):
        super().__init__()
        self.res, self.decay, self.alpha_min = res, decay, alpha_min
        self.register_buffer("density", torch.full((res, res, res), 1e4))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("mask", torch.ones((res, res, res), dtype=torch.bool))

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """Flat cell index of points ``x (..., 3)`` in [-1, 1] (x, y, z -> [z, y, x] order)."""
        i = ((x.clamp(-1, 1 - 1e-6) + 1) / 2 * self.res).long()
        return (i[..., 2] * self.res + i[..., 1]) * self.res + i[..., 0]

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.flatten()[self.cells(x)]

    @torch.no_grad()
    def update(
        self, density_fn, step_size: float, generator: torch.Generator | None = None
    ) -> float:
        """Re-measure every cell with ``density_fn(points (P, 3)) -> (P,)``; returns the occupied
        fraction. ``step_size``: the sample spacing (normalised units) of the opacity test."""
        r = self.res
        dev = self.density.device
        zz, yy, xx = torch.meshgrid(*(torch.arange(r, device=dev),) * 3, indexing="ij")
        idx = torch.stack([xx, yy, zz], -1).reshape(-1, 3).float()
        jitter = torch.rand(idx.shape, generator=generator).to(dev)
        pts = (idx + jitter) / r * 2 - 1
        sig = torch.cat([density_fn(c) for c in pts.split(65536)]).view(r, r, r)
        self.density.copy_(
            torch.maximum(self.density * self.decay, sig) if self.updates > 0 else sig
        )
        self.updates += 1
        occ = (1 - torch.exp(-self.density * step_size)) > self.alpha_min
        occ = torch.nn.functional.max_pool3d(occ[None, None].float(), 3, 1, 1)[0, 0] > 0
        self.mask.copy_(occ)
        return float(occ.float().mean())

    def cell_points(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """ER-NeRF's density-update points ``(G^3, 3)`` ([z, y, x] order): cell ``c`` at
        ``(2c / (G-1) - 1)(1 - 1/G)``, jittered by up to half a cell."""
        r, dev = self.res, self.density.device
        zz, yy, xx = torch.meshgrid(*(torch.arange(r, device=dev),) * 3, indexing="ij")
        c = torch.stack([xx, yy, zz], -1).reshape(-1, 3).float()
        half = 1 / r
        pts = (2 * c / (r - 1) - 1) * (1 - half)
        return pts + (torch.rand(pts.shape, generator=generator).to(dev) * 2 - 1) * half

    @torch.no_grad()
    def update_ernerf(
        self, density_fn, thresh: float = 10.0, decay: float = 0.95, generator=None
    ) -> float:
        """ER-NeRF's ``update_extra_state`` (one cascade): the density at every cell's point,
        dilated to the 6 face neighbours, ``max(decay x old, new)`` where the cell is not marked
        unseen (-1, :meth:`mark_unseen`); occupied where above ``min(mean density, thresh)``
        (the mean over the grid, unseen cells counting 0). Returns the occupied fraction."""
        r = self.res
        pts = self.cell_points(generator)
        new = torch.cat([density_fn(c) for c in pts.split(65536)]).view(r, r, r)
        dil = new.clone()
        for dim in range(3):
            n = dil.shape[dim]
            dil.narrow(dim, 0, n - 1).copy_(
                torch.maximum(dil.narrow(dim, 0, n - 1), new.narrow(dim, 1, n - 1))
            )
            dil.narrow(dim, 1, n - 1).copy_(
                torch.maximum(dil.narrow(dim, 1, n - 1), new.narrow(dim, 0, n - 1))
            )
        valid = self.density >= 0
        self.density.copy_(
            torch.where(valid, torch.maximum(self.density * decay, dil), self.density)
        )
        self.updates += 1
        limit = min(float(self.density.clamp(min=0).mean()), thresh)
        self.mask.copy_(self.density > limit)
        return float(self.mask.float().mean())

    @torch.no_grad()
    def mark_unseen(self, c2w: torch.Tensor, intrinsics: torch.Tensor, chunk: int = 64) -> int:
        """ER-NeRF's ``mark_untrained_grid``: cells no camera ``c2w (T, 4, 4)`` (OpenGL, in the
        grid's [-1, 1] units) sees, within a cell's margin, get density -1 (never occupied);
        returns their number."""
        r, dev = self.res, self.density.device
        zz, yy, xx = torch.meshgrid(*(torch.arange(r, device=dev),) * 3, indexing="ij")
        c = torch.stack([xx, yy, zz], -1).reshape(-1, 3).float()
        half = 1 / r
        pts = (2 * c / (r - 1) - 1) * (1 - half)
        fx, fy, cx, cy = (float(v) for v in intrinsics)
        seen = torch.zeros(len(pts), dtype=torch.bool, device=dev)
        flip = torch.tensor([1.0, -1.0, -1.0], device=dev)  # OpenGL -> OpenCV camera axes
        for s in range(0, len(c2w), chunk):
            rot = c2w[s : s + chunk, :3, :3] * flip
            cam = (
                torch.einsum("pj,bjk->bpk", pts, rot)
                - torch.einsum("bj,bjk->bk", c2w[s : s + chunk, :3, 3], rot)[:, None]
            )
            z = cam[..., 2]
            ok = (z > 0) & (cam[..., 0].abs() < cx / fx * z + 2 * half)
            ok &= cam[..., 1].abs() < cy / fy * z + 2 * half
            seen |= ok.any(0)
        unseen = ~seen.view(r, r, r)
        self.density[unseen] = -1
        self.mask[unseen] = False
        return int(unseen.sum())


class HeadField(nn.Module):
    """The audio-driven head radiance field plus its audio networks and per-frame codes."""

    def __init__(self, cfg: NerfConfig, audio_in: int, n_codes: int):
        super().__init__()
        self.cfg = cfg
        self.audio_net = AudioEncoder(audio_in, cfg.audio_dim)
        self.audio_smoother = AudioSmoother(cfg.audio_dim, cfg.att_window)
        self.encoder = TriPlaneEncoder(
            cfg.encoder, cfg.levels, cfg.channels, cfg.base_res, cfg.finest_res, cfg.log2_table
        )
        d, b = self.encoder.out_dim, cfg.mlp_bias
        self.aud_att = MLP(d, cfg.audio_dim, cfg.att_hidden, 2, b)
        self.eye_att = MLP(d, 1, 16, 2, b)
        self.sigma_net = MLP(
            d + cfg.audio_dim + 1, 1 + cfg.geo_dim, cfg.hidden, cfg.sigma_layers, b
        )
        self.color_net = MLP(
            16 + cfg.geo_dim + cfg.ind_dim, 3, cfg.color_hidden, cfg.color_layers, b
        )
        self.codes = nn.Parameter(init_codes(n_codes, cfg.ind_dim, cfg.code_init_std))
        self.occupancy = OccupancyGrid(cfg.occ_res)
        self.unc_net = MLP(d, 1, 32, 2, b) if cfg.unc_loss else None

    # -- audio ----------------------------------------------------------------------------
    def audio_codes(
        self,
        feats: torch.Tensor,
        frames: torch.Tensor,
        smooth: bool = True,
        augment: tuple[torch.Tensor, torch.Generator | None] | None = None,
    ):
        """Codes ``(B, audio_dim)`` of ``frames (B,)`` of the feature sequence ``feats (N, 16, C)``.
        With ``smooth`` the codes of the ``att_window`` neighbours are combined by attention.

        ``augment = (mean_window, generator)`` (training): each frame's windows are replaced by
        the mean training window with probability ``audio_dropout`` (so the model learns what
        "no information" looks like, as in the evaluation baseline), and Gaussian noise of std
        ``audio_noise`` is added, which keeps a small audio network from memorising frames."""
        window = self.cfg.att_window if smooth and self.cfg.att_window > 1 else 1
        if self.cfg.att_pad == "zeros":  # ER-NeRF: zero feature windows past the ends
            offs = torch.arange(window, device=frames.device) - window // 2
            raw = frames[:, None] + offs
            idx = raw.clamp(0, len(feats) - 1)
            x = feats[idx.reshape(-1)].view(*idx.shape, *feats.shape[1:])
            inside = (raw >= 0) & (raw < len(feats))
            x = x * inside.view(*inside.shape, *(1,) * (feats.dim() - 1)).to(x.dtype)
        else:
            idx = window_indices(frames, window, len(feats))  # (B, window)
            x = feats[idx.reshape(-1)].view(*idx.shape, *feats.shape[1:])
        if augment is not None and self.training:
            mean, gen = augment
            p, std = self.cfg.audio_dropout, self.cfg.audio_noise
            if p > 0:
                drop = torch.rand(len(frames), generator=gen).to(x.device) < p
                x = torch.where(drop[:, None, None, None], mean.expand_as(x), x)
            if std > 0:
                x = x + std * torch.randn(x.shape, generator=gen).to(x.device)
        codes = self.audio_net(x.reshape(-1, *feats.shape[1:])).view(*idx.shape, -1)
        return self.audio_smoother(codes) if window > 1 else codes[:, 0]

    def frame_codes(self, frames: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Per-frame appearance codes; ``None`` (novel frames) gives the mean training code
        (``novel_code: mean``) or the first one (``first``, ER-NeRF)."""
        return novel_or_frame_codes(self.codes, self.cfg.novel_code, frames, batch)

    # -- field ----------------------------------------------------------------------------
    def density(self, x, aud, eye, f: torch.Tensor | None = None):
        """Points ``x (P, 3)`` in [-1, 1], per-point audio codes ``aud (P, A)`` and blink
        ``eye (P, 1)`` -> ``sigma (P,)``, geometry features ``(P, geo_dim)``, the norm of the
        audio attention ``(P,)`` and the eye attention ``(P,)``. ``f``: the tri-plane features
        of ``x`` when the caller has them already."""
        if f is None:
            f = self.encoder(x)
        att = self.aud_att(f)
        eye_att = torch.sigmoid(self.eye_att(f))
        h = self.sigma_net(torch.cat([f, aud * att, eye * eye_att], -1))
        sigma = torch.exp(h[:, 0].clamp(max=15.0))
        return sigma, h[:, 1:], att.norm(dim=-1), eye_att[:, 0]

    def uncertainty(self, f: torch.Tensor) -> torch.Tensor:
        """Per-point uncertainty ``(P,)`` >= 0 from tri-plane features ``f`` (no gradient reaches
        ``f``); requires ``unc_loss``."""
        return torch.nn.functional.softplus(self.unc_net(f.detach())[:, 0])

    def color(self, d, geo, code):
        """Unit view directions ``d (P, 3)``, geometry features, frame codes -> rgb ``(P, 3)``."""
        h = self.color_net(torch.cat([sh_encoding(d), geo, code], -1))
        return squash(h, self.cfg.color_margin)

    def coord_scale(self, box: torch.Tensor) -> torch.Tensor:
        """Divisor ``(3,)`` mapping head-box points to the encoders' [-1, 1]: the box's half
        extents (``coords: box``) or its largest one on every axis (``bound``, ER-NeRF)."""
        return box if self.cfg.coords == "box" else box.max().expand(3)

    def forward(self, x, d, aud, eye, code):
        """``density`` and ``color`` in one call -> sigma, rgb, audio and eye attention."""
        sigma, geo, att, eye_att = self.density(x, aud, eye)
        return sigma, self.color(d, geo, code), att, eye_att

    def param_groups(self, lr: float, lr_net: float) -> list[dict]:
        grids = list(self.encoder.parameters())
        ids = {id(p) for p in grids}
        nets = [
            p
            for n, p in self.named_parameters()
            if id(p) not in ids and not n.startswith("audio_smoother")
        ]
        return [
            {"params": grids, "lr": lr},
            {"params": nets, "lr": lr_net},
            {
                "params": list(self.audio_smoother.parameters()),
                "lr": lr_net * 5,
                "weight_decay": 1e-4,
            },
        ]


def squash(h: torch.Tensor, margin: float) -> torch.Tensor:
    """``sigmoid(h) (1 + 2 margin) - margin`` (ER-NeRF's colours: margin 0.001)."""
    out = torch.sigmoid(h)
    return out * (1 + 2 * margin) - margin if margin else out


def init_codes(n: int, dim: int, std: float) -> torch.Tensor:
    """``(max(n, 1), dim)`` per-frame codes: zeros, or ``N(0, std^2)`` (ER-NeRF: 0.1)."""
    if std == 0:
        return torch.zeros(max(n, 1), dim)
    return torch.randn(max(n, 1), dim) * std


def novel_or_frame_codes(codes, novel: str, frames: torch.Tensor | None, batch: int):
    """Rows ``frames`` of ``codes``; ``frames=None``: the mean row or the first (``novel``)."""
    if frames is None:
        row = codes.mean(0, keepdim=True) if novel == "mean" else codes[:1]
        return row.expand(batch, -1)
    return codes[frames]


class TorsoField(nn.Module):
    """2-D torso: pixel coordinates ``(P, 2)`` in [-1, 1] and the head pose -> rgb, alpha."""

    def __init__(self, cfg: NerfConfig, n_codes: int):
        super().__init__()
        self.cfg = cfg
        # three points below the head (normalised head space), moved with the head pose
        self.anchors = nn.Parameter(
            torch.tensor([[0.0, -0.8, 0.0], [-0.5, -1.0, -0.3], [0.5, -1.0, -0.3]])
        )
        self.xy_freqs, self.anchor_freqs = 8, 3
        d_xy = 2 * (1 + 2 * self.xy_freqs)
        d_anchor = 6 * (1 + 2 * self.anchor_freqs)
        self.deform = MLP(d_xy + d_anchor + cfg.torso_ind_dim, 2, cfg.torso_hidden, 3)
        self.grid = make_grid2d(
            cfg.torso_encoder, cfg.torso_levels, cfg.torso_channels, cfg.torso_base_res,
            cfg.torso_finest_res, cfg.torso_log2_table,
        )  # fmt: skip
        self.net = MLP(
            self.grid.out_dim + d_xy + d_anchor + cfg.torso_ind_dim, 4, cfg.torso_hidden, 3
        )
        self.codes = nn.Parameter(torch.zeros(max(n_codes, 1), cfg.torso_ind_dim))
        nn.init.zeros_(self.deform[-1].weight)
        nn.init.zeros_(self.deform[-1].bias)

    def pixel_coords(self, uv: torch.Tensor, res: int) -> torch.Tensor:
        """Pixel positions ``uv (P, 2)`` (column, row; centres at +0.5) -> ``(P, 2)`` in [-1, 1]."""
        return uv / res * 2 - 1

    def pose_code(self, c2w: torch.Tensor, intrinsics: torch.Tensor, res: int) -> torch.Tensor:
        """The anchors seen by each camera ``c2w (B, 4, 4)``: projected, in [-1, 1] -> ``(B, 6)``."""
        w2c = torch.linalg.inv(c2w)
        p = torch.einsum("bij,kj->bki", w2c[:, :3, :3], self.anchors) + w2c[:, None, :3, 3]
        fx, fy, cx, cy = intrinsics.unbind(-1)
        z = (-p[..., 2]).clamp(min=1e-3)
        u = fx * p[..., 0] / z + cx
        v = -fy * p[..., 1] / z + cy
        return torch.stack([u, v], -1).div(res / 2).sub(1).flatten(1)

    def forward(self, xy: torch.Tensor, pose: torch.Tensor, code: torch.Tensor):
        """``xy (P, 2)``, per-point pose codes ``(P, 6)`` and frame codes -> rgb ``(P, 3)``,
        alpha ``(P,)``, deformation ``(P, 2)``."""
        xy = xy * self.cfg.torso_shrink
        h = torch.cat(
            [
                frequency_encoding(xy, self.xy_freqs),
                frequency_encoding(pose, self.anchor_freqs),
                code,
            ],
            -1,
        )
        dxy = self.deform(h)
        f = self.grid((xy + dxy).clamp(-1, 1))
        out = self.net(torch.cat([f, h], -1))
        return torch.sigmoid(out[:, 1:]), torch.sigmoid(out[:, 0]), dxy

    def frame_codes(self, frames: torch.Tensor | None, batch: int) -> torch.Tensor:
        return novel_or_frame_codes(self.codes, self.cfg.novel_code, frames, batch)

    def param_groups(self, lr: float, lr_net: float) -> list[dict]:
        grid = list(self.grid.parameters())
        ids = {id(p) for p in grid}
        return [
            {"params": grid, "lr": lr},
            {"params": [p for p in self.parameters() if id(p) not in ids], "lr": lr_net},
        ]


_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # OpenGL camera <-> OpenCV camera


class ErnerfTorso(nn.Module):
    """ER-NeRF's torso (``NeRFNetwork.forward_torso`` and ``run_torso`` at 0cf72d8), exactly.

    Pixel coordinates ``x (P, 2)`` are ER-NeRF's ``bg_coords``: (row, column) mapped to [-1, 1]
    with the first and last pixel centres at -1 and 1. With ``s = torso_shrink``::

        A   = anchors (3, 4, homogeneous) in the camera frame: inv(pose^T) applied to them,
              (x / w / z, y / w / z) each -> 6 values (pose: OpenCV camera-to-world)
        h   = [Freq_8(s x), Freq_3(A), code]                 # FreqEncoder, no pi
        dx  = deform(h);  f = Grid(clamp(s x + dx, -1, 1))   # tiled grid, 16 x 2
        alpha, rgb = squash(net([f, h]))                     # margin 0.001

    and only pixels where the 128x128 alpha grid (``density``, bilinear, align_corners) is above
    ``min(torso_thresh, mean_density)`` are evaluated; the others get alpha 0. The grid is
    ER-NeRF's ``density_grid_torso`` (:meth:`update_density` re-measures it while training).
    Parameter names follow ER-NeRF's after ``python -m twinflow.convert ernerf``:
    ``anchor_points``, ``deform`` (``torso_deform_net``), ``grid`` (``torso_encoder``), ``net``
    (``torso_net``), ``codes`` (``individual_codes_torso``).
    """

    GRID = 128

    def __init__(self, cfg: NerfConfig, n_codes: int):
        super().__init__()
        self.cfg = cfg
        self.anchor_points = nn.Parameter(
            torch.tensor([[0.01, 0.01, 0.1, 1], [-0.1, -0.1, 0.1, 1], [0.1, -0.1, 0.1, 1]])
        )
        self.xy_freqs, self.anchor_freqs = 8, 3
        d_xy = 2 * (1 + 2 * self.xy_freqs)
        d_anchor = 6 * (1 + 2 * self.anchor_freqs)
        b = cfg.mlp_bias
        self.deform = MLP(d_xy + d_anchor + cfg.torso_ind_dim, 2, cfg.torso_hidden, 3, b)
        self.grid = make_grid2d(
            cfg.torso_encoder, cfg.torso_levels, cfg.torso_channels, cfg.torso_base_res,
            cfg.torso_finest_res, cfg.torso_log2_table,
        )  # fmt: skip
        self.net = MLP(
            self.grid.out_dim + d_xy + d_anchor + cfg.torso_ind_dim, 4, cfg.torso_hidden, 3, b
        )
        self.codes = nn.Parameter(init_codes(n_codes, cfg.torso_ind_dim, cfg.code_init_std))
        self.register_buffer("density", torch.zeros(self.GRID, self.GRID))
        self.register_buffer("mean_density", torch.zeros(()))

    def pixel_coords(self, uv: torch.Tensor, res: int) -> torch.Tensor:
        """``uv (P, 2)`` (column, row; centres at +0.5) of a ``res x res`` image -> ER-NeRF's
        ``bg_coords`` (row, column) in [-1, 1]."""
        return torch.stack([(uv[:, 1] - 0.5) / (res - 1), (uv[:, 0] - 0.5) / (res - 1)], -1) * 2 - 1

    def pose_code(self, c2w: torch.Tensor, intrinsics: torch.Tensor, res: int) -> torch.Tensor:
        """ER-NeRF's wrapped anchors of OpenGL cameras ``c2w (B, 4, 4)`` -> ``(B, 6)``."""
        pose = c2w @ _GL_TO_CV.to(c2w)
        wrapped = self.anchor_points[None] @ torch.linalg.inv(pose.transpose(1, 2))
        xy = wrapped[..., :2] / wrapped[..., 3:4] / wrapped[..., 2:3]
        return xy.flatten(1)

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels ``x (P, 2)`` whose alpha-grid value is above the threshold."""
        thresh = min(float(self.mean_density), self.cfg.torso_thresh)
        occ = torch.nn.functional.grid_sample(
            self.density.view(1, 1, self.GRID, self.GRID), x.view(1, -1, 1, 2), align_corners=True
        ).view(-1)
        return occ > thresh

    def field(self, x: torch.Tensor, pose: torch.Tensor, code: torch.Tensor):
        """``forward_torso`` without the grid mask -> alpha ``(P,)``, rgb ``(P, 3)``, dx."""
        x = x * self.cfg.torso_shrink
        h = torch.cat(
            [
                frequency_encoding_ernerf(x, self.xy_freqs),
                frequency_encoding_ernerf(pose, self.anchor_freqs),
                code,
            ],
            -1,
        )
        dx = self.deform(h)
        f = self.grid((x + dx).clamp(-1, 1))
        out = squash(self.net(torch.cat([f, h], -1)), self.cfg.color_margin)
        return out[:, 0], out[:, 1:], dx

    def forward(self, x: torch.Tensor, pose: torch.Tensor, code: torch.Tensor):
        """``x (P, 2)`` (bg_coords), per-point pose codes ``(P, 6)`` and frame codes -> rgb
        ``(P, 3)``, alpha ``(P,)``, deformation ``(P, 2)``; 0 outside the alpha grid."""
        mask = self.occupied(x)
        alpha = x.new_zeros(len(x))
        rgb = x.new_zeros(len(x), 3)
        dx = x.new_zeros(len(x), 2)
        if mask.any():
            a, c, d = self.field(x[mask], pose[mask], code[mask])
            alpha, rgb, dx = (
                alpha.index_put((mask,), a),
                rgb.index_put((mask,), c),
                dx.index_put((mask,), d),
            )
        return rgb, alpha, dx

    def frame_codes(self, frames: torch.Tensor | None, batch: int) -> torch.Tensor:
        return novel_or_frame_codes(self.codes, self.cfg.novel_code, frames, batch)

    @torch.no_grad()
    def update_density(
        self, pose: torch.Tensor, code: torch.Tensor, generator: torch.Generator | None = None,
        decay: float = 0.95,
    ) -> float:  # fmt: skip
        """ER-NeRF's torso part of ``update_extra_state``: alpha at a jittered point of every
        cell for one camera code ``pose (1, 6)`` and frame code ``code (1, D)``, 5x5 max-pool,
        then ``max(decay x old, new)``; returns the occupied fraction."""
        g = self.GRID
        dev = self.density.device
        xx, yy = torch.meshgrid(
            torch.arange(g, device=dev), torch.arange(g, device=dev), indexing="ij"
        )
        coords = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
        half = 1 / g
        xys = (2 * coords.float() / (g - 1) - 1) * (1 - half)
        xys = xys + (torch.rand(xys.shape, generator=generator).to(dev) * 2 - 1) * half
        alpha = self.field(xys, pose.expand(len(xys), -1), code.expand(len(xys), -1))[0]
        tmp = torch.zeros(g * g, device=dev)
        tmp[coords[:, 1] * g + coords[:, 0]] = alpha
        tmp = torch.nn.functional.max_pool2d(tmp.view(1, 1, g, g), 5, 1, 2).view(g, g)
        self.density.copy_(torch.maximum(self.density * decay, tmp))
        self.mean_density.copy_(self.density.mean())
        return float(self.occupied_fraction())

    def occupied_fraction(self) -> torch.Tensor:
        thresh = min(float(self.mean_density), self.cfg.torso_thresh)
        return (self.density > thresh).float().mean()

    def param_groups(self, lr: float, lr_net: float) -> list[dict]:
        grid = list(self.grid.parameters())
        ids = {id(p) for p in grid}
        return [
            {"params": grid, "lr": lr},
            {"params": [p for p in self.parameters() if id(p) not in ids], "lr": lr_net},
        ]


def new_torso(cfg: NerfConfig, n_codes: int) -> nn.Module:
    """The configured torso model (``torso_model``)."""
    return (ErnerfTorso if cfg.torso_model == "ernerf" else TorsoField)(cfg, n_codes)
