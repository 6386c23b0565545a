"""Build, load and render the nerf models (head field, torso) for one or many rays.

Rendering a ray of frame ``f``: the head field is integrated inside the head box (stratified
samples, skipping empty space and occluded samples), giving head colour and opacity; the torso
model gives colour and alpha at the pixel for frame ``f``'s head pose; the final colour is::

    head_rgb + (1 - head_acc) * (torso_alpha * torso_rgb + (1 - torso_alpha) * background)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from twinflow.nerf.network import HeadField, TorsoField, new_torso
from twinflow.nerf.presets import NerfConfig
from twinflow.nerf.rays import bin_edges, composite, pixel_rays, ray_box, stratified_samples

PREPASS_STRIDE = 2  # the early-termination pass reads every 2nd sample (see :func:`visible`)


def config_from_meta(meta: dict[str, Any]) -> NerfConfig:
    return NerfConfig(**meta["preset"])


def new_head(cfg: NerfConfig, audio_in: int, n_codes: int, device) -> HeadField:
    return HeadField(cfg, audio_in, n_codes).to(device)


def load_head(ckpt: dict[str, Any], device) -> HeadField:
    meta = ckpt["meta"]
    head = HeadField(config_from_meta(meta), int(meta["audio_dim"]), int(meta["n_codes"]))
    head.load_state_dict(ckpt["modules"]["head"])
    return head.to(device).eval()


def load_torso(ckpt: dict[str, Any], device) -> torch.nn.Module:
    meta = ckpt["meta"]
    torso = new_torso(config_from_meta(meta), int(meta["n_codes"]))
    torso.load_state_dict(ckpt["modules"]["torso"])
    return torso.to(device).eval()


@dataclass
class Conditions:
    """Per-ray conditioning of the head: audio codes, blink, appearance codes."""

    aud: torch.Tensor  # (R, A)
    eye: torch.Tensor  # (R, 1)
    code: torch.Tensor  # (R, ind_dim)

    def select(self, mask: torch.Tensor) -> Conditions:
        return Conditions(self.aud[mask], self.eye[mask], self.code[mask])


def render_head_rays(
    head: HeadField,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    cond: Conditions,
    box: torch.Tensor,
    *,
    perturb: bool,
) -> dict[str, torch.Tensor]:
    """Head colour ``rgb (R, 3)`` (premultiplied), opacity ``acc (R,)``, ``depth``, and the
    rendered audio attention norm ``amb_aud (R,)`` / eye attention ``amb_eye`` of rays; while
    the head trains with ``unc_loss``, also the rendered ``uncertainty (R,)``.

    ``n_samples`` stratified samples per ray inside the head box; samples in cells the occupancy
    grid marks empty are skipped (density 0), and so are samples behind the point where the
    transmittance drops below ``min_transmittance`` (:func:`visible`). With ``sampler: ernerf``
    the rays are marched as ER-NeRF's training marcher does (:func:`twinflow.nerf.marcher.train_rays`;
    ``perturb`` jitters the first step)."""
    cfg = head.cfg
    if cfg.sampler == "ernerf":
        return _ernerf_rays(head, origins, dirs, cond, box, perturb=perturb)
    r = len(origins)
    out = {k: origins.new_zeros(r) for k in ("acc", "depth", "amb_aud", "amb_eye")}
    out["rgb"] = origins.new_zeros(r, 3)
    near, far, hit = ray_box(origins, dirs, box)
    if not hit.any():
        return out
    hit_idx = torch.nonzero(hit)[:, 0]
    o, d, near, far, c = origins[hit], dirs[hit], near[hit], far[hit], cond.select(hit)
    rh, n = len(o), cfg.n_samples
    t = stratified_samples(near, far, n, perturb)
    x = (o[:, None] + d[:, None] * t[..., None]) / head.coord_scale(box)  # (Rh, S, 3)
    deltas = torch.diff(bin_edges(t, near, far), dim=-1).clamp(min=0)
    keep = head.occupancy.occupied(x)
    if cfg.min_transmittance > 0 and keep.any():
        keep = keep & visible(head, x, deltas, keep, c, cfg.min_transmittance)
    flat = torch.nonzero(keep.flatten())[:, 0]
    ray = torch.div(flat, n, rounding_mode="floor")
    xs = x.reshape(-1, 3)[flat]
    f = head.encoder(xs)
    sig, geo, att, eye_att = head.density(xs, c.aud[ray], c.eye[ray], f=f)
    rgb = head.color(d[ray], geo, c.code[ray])
    sigma = x.new_zeros(rh * n).index_put((flat,), sig).view(rh, n)
    colors = x.new_zeros(rh * n, 3).index_put((flat,), rgb).view(rh, n, 3)
    res = composite(sigma, colors, t, near, far)
    w = res["weights"]
    att_s = x.new_zeros(rh * n).index_put((flat,), att).view(rh, n)
    eye_s = x.new_zeros(rh * n).index_put((flat,), eye_att).view(rh, n)
    put = lambda full, part: full.index_put((hit_idx,), part)  # noqa: E731
    result = {
        "rgb": put(out["rgb"], res["rgb"]),
        "acc": put(out["acc"], res["acc"]),
        "depth": put(out["depth"], res["depth"]),
        "amb_aud": put(out["amb_aud"], (w * att_s).sum(1)),
        "amb_eye": put(out["amb_eye"], (w * eye_s).sum(1)),
        "samples": torch.tensor(float(len(flat)) / max(rh * n, 1)),
    }
    if head.unc_net is not None and head.training:
        unc_s = x.new_zeros(rh * n).index_put((flat,), head.uncertainty(f)).view(rh, n)
        result["uncertainty"] = put(origins.new_zeros(r), (w.detach() * unc_s).sum(1))
    return result


def head_field(head: HeadField, dirs: torch.Tensor, cond: Conditions, scale: torch.Tensor):
    """The head as a function of points (head-box units) and their rays, for the marcher."""
    want_unc = head.unc_net is not None and head.training

    def field(pts: torch.Tensor, rays: torch.Tensor) -> dict[str, torch.Tensor]:
        x = pts / scale
        f = head.encoder(x)
        sig, geo, att, eye_att = head.density(x, cond.aud[rays], cond.eye[rays], f=f)
        out = {
            "sigma": sig,
            "rgb": head.color(dirs[rays], geo, cond.code[rays]),
            "amb_aud": att,
            "amb_eye": eye_att,
        }
        if want_unc:
            out["uncertainty"] = head.uncertainty(f)
        return out

    return field


def _ernerf_rays(head, origins, dirs, cond, box, *, perturb: bool, generator=None):
    from twinflow.nerf.marcher import train_rays

    cfg = head.cfg
    unc = head.unc_net is not None and head.training
    return train_rays(
        head_field(head, dirs, cond, head.coord_scale(box)), origins, dirs, box,
        head.occupancy.mask, max_steps=cfg.max_steps, dt_gamma=cfg.dt_gamma,
        min_near=cfg.min_near, t_thresh=cfg.min_transmittance, perturb=perturb,
        generator=generator, extra=("uncertainty",) if unc else (),
    )  # fmt: skip


@torch.no_grad()
def visible(
    head: HeadField,
    x: torch.Tensor,
    deltas: torch.Tensor,
    occupied: torch.Tensor,
    cond: Conditions,
    min_transmittance: float,
) -> torch.Tensor:
    """Samples ``(R, S)`` not yet hidden behind the surface: a density-only pass without
    gradients over every ``PREPASS_STRIDE``-th sample (of the occupied ones) estimates the
    transmittance in front of each sample (a coarse sample's density stands for its stride of
    intervals), and samples where it is below ``min_transmittance`` are dropped (early ray
    termination, as ER-NeRF's CUDA ray marcher does). ``x (R, S, 3)``, ``deltas (R, S)``,
    ``occupied (R, S)`` bool.

    On a trained talk_d6 model, stride 2 keeps 36% of the samples (exact, stride 1: 32%) and
    changes rendered pixels by at most 0.6/255 (mean 0.001/255); a CPU training step from that
    model (2 threads) took 94 ms instead of 126 ms with the exact pass."""
    r, n = occupied.shape
    k = PREPASS_STRIDE
    coarse = occupied[:, ::k]
    nc = coarse.shape[1]
    flat = torch.nonzero(coarse.flatten())[:, 0]
    ray = torch.div(flat, nc, rounding_mode="floor")
    sig = head.density(x[:, ::k].reshape(-1, 3)[flat], cond.aud[ray], cond.eye[ray])[0]
    span = torch.nn.functional.pad(deltas, (0, (-n) % k)).view(r, nc, k).sum(-1)
    depth = x.new_zeros(r * nc).index_put((flat,), sig).view(r, nc) * span
    before = torch.cumsum(depth, -1) - depth  # optical depth in front of each coarse sample
    alive = torch.exp(-before) > min_transmittance  # (R, S / k)
    return alive.repeat_interleave(k, dim=1)[:, :n]


def sample_step(head: HeadField, box: torch.Tensor) -> float:
    """Typical sample spacing (normalised units) for the occupancy test: the box depth / samples."""
    return float(2 * box[2]) / head.cfg.n_samples


@torch.no_grad()
def update_occupancy(
    head: HeadField,
    feats: torch.Tensor,
    frames: torch.Tensor,
    blink: torch.Tensor,
    box: torch.Tensor,
    gen: torch.Generator,
) -> float:
    """Re-measure the occupancy grid with the conditions of a random frame of ``frames``."""
    f = frames[torch.randint(len(frames), (1,), generator=gen).to(frames.device)]
    aud = head.audio_codes(feats, f, smooth=True)
    eye = blink[f][:, None]

    def density(x: torch.Tensor) -> torch.Tensor:
        return head.density(x, aud.expand(len(x), -1), eye.expand(len(x), -1))[0]

    if head.cfg.sampler == "ernerf":
        return head.occupancy.update_ernerf(density, generator=gen)
    return head.occupancy.update(density, sample_step(head, box), generator=gen)


def head_conditions(
    head: HeadField,
    feats: torch.Tensor,
    frames: torch.Tensor,
    blink: torch.Tensor,
    *,
    smooth: bool,
    codes_for: torch.Tensor | None,
    augment=None,
) -> Conditions:
    """Per-ray conditions for rays of ``frames (R,)``: audio codes of those frames of ``feats``,
    their blink, and the appearance codes of ``codes_for`` (training frames) or the mean code.
    ``augment``: see :meth:`HeadField.audio_codes`."""
    uniq, inv = torch.unique(frames, return_inverse=True)
    aud = head.audio_codes(feats, uniq, smooth=smooth, augment=augment)[inv]
    code = head.frame_codes(None if codes_for is None else codes_for, len(frames))
    return Conditions(aud, blink[frames][:, None], code)


def torso_rays(
    torso: TorsoField,
    uv: torch.Tensor,
    frames_c2w: torch.Tensor,
    intrinsics: torch.Tensor,
    res: int,
    code: torch.Tensor,
    pose: torch.Tensor | None = None,
):
    """Torso colour and alpha of pixels ``uv (R, 2)`` for cameras ``(R, 4, 4)`` (``pose``: their
    pose codes when already known, e.g. one camera's for a whole image)."""
    xy = torso.pixel_coords(uv, res)
    if pose is None:
        pose = torso.pose_code(frames_c2w, intrinsics, res)
    rgb, alpha, dxy = torso(xy, pose, code)
    return rgb, alpha, dxy


@torch.no_grad()
def render_frame(
    head: HeadField,
    torso: TorsoField | None,
    c2w: torch.Tensor,
    intrinsics: torch.Tensor,
    res: int,
    box: torch.Tensor,
    aud: torch.Tensor,
    eye: float,
    bg: torch.Tensor,
    head_region: torch.Tensor | None,
    chunk: int,
) -> dict[str, torch.Tensor]:
    """One full image: ``rgb (res, res, 3)`` composite, head ``acc``, ``torso_alpha``, and the
    head-only colour ``head_rgb`` (premultiplied). ``aud (A,)`` is the frame's audio code; rays
    outside ``head_region`` skip the head field (opacity 0)."""
    dev = c2w.device
    v, u = torch.meshgrid(
        torch.arange(res, device=dev), torch.arange(res, device=dev), indexing="ij"
    )
    uv = torch.stack([u.flatten(), v.flatten()], -1).float() + 0.5
    n = res * res
    head_rgb = torch.zeros(n, 3, device=dev)
    acc = torch.zeros(n, device=dev)
    depth = torch.zeros(n, device=dev)
    code = head.frame_codes(None, 1)
    if head.cfg.sampler == "ernerf":  # ER-NeRF marches every ray of the image at once
        o, d = pixel_rays(c2w, intrinsics, uv)
        out = render_head_ernerf(head, o, d, aud, float(eye), code, box, chunk)
        head_rgb, acc, depth = out["rgb"], out["acc"], out["depth_norm"]
    else:
        sel = (
            torch.arange(n, device=dev)
            if head_region is None
            else torch.nonzero(head_region.flatten())[:, 0]
        )
        o_all, d_all = pixel_rays(c2w, intrinsics, uv[sel])
        for s in range(0, len(sel), chunk):
            o, d = o_all[s : s + chunk], d_all[s : s + chunk]
            m = len(o)
            cond = Conditions(
                aud[None].expand(m, -1),
                torch.full((m, 1), float(eye), device=dev),
                code.expand(m, -1),
            )
            out = render_head_rays(head, o, d, cond, box, perturb=False)
            head_rgb[sel[s : s + chunk]] = out["rgb"]
            acc[sel[s : s + chunk]] = out["acc"]
            depth[sel[s : s + chunk]] = out["depth"]
    base = bg.reshape(-1, 3).clone()
    talpha = torch.zeros(n, device=dev)
    if torso is not None:
        tcode = torso.frame_codes(None, 1)
        pose = torso.pose_code(c2w[None], intrinsics, res)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            trgb, ta, _ = torso_rays(
                torso, uv[s : s + m], c2w[None].expand(m, 4, 4), intrinsics, res,
                tcode.expand(m, -1), pose.expand(m, -1),
            )  # fmt: skip
            base[s : s + m] = ta[:, None] * trgb + (1 - ta[:, None]) * base[s : s + m]
            talpha[s : s + m] = ta
    rgb = head_rgb + (1 - acc[:, None]) * base
    return {
        "rgb": rgb.view(res, res, 3).clamp(0, 1),
        "acc": acc.view(res, res),
        "torso_alpha": talpha.view(res, res),
        "head_rgb": head_rgb.view(res, res, 3),
        "depth": depth.view(res, res),
    }


def render_head_ernerf(
    head: HeadField,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    aud: torch.Tensor,
    eye: float,
    code: torch.Tensor,
    box: torch.Tensor,
    chunk: int,
) -> dict[str, torch.Tensor]:
    """ER-NeRF's inference rendering of all the rays ``(N, 3)`` of one frame with its audio
    code ``aud (A,)``, blink and appearance code ``(1, D)``
    (:func:`twinflow.nerf.marcher.render_rays`)."""
    from twinflow.nerf.marcher import render_rays

    cfg = head.cfg
    n = len(origins)
    cond = Conditions(
        aud[None].expand(n, -1), torch.full((n, 1), eye, device=origins.device), code.expand(n, -1)
    )
    return render_rays(
        head_field(head, dirs, cond, head.coord_scale(box)), origins, dirs, box,
        head.occupancy.mask, max_steps=cfg.max_steps, dt_gamma=cfg.dt_gamma,
        min_near=cfg.min_near, t_thresh=cfg.min_transmittance, chunk=chunk,
    )  # fmt: skip


def preset_meta(cfg: NerfConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
