"""ER-NeRF's ray marcher (its CUDA ``raymarching`` extension), re-done in PyTorch.

``sampler: ernerf`` (the ``paper`` preset) renders the head as ER-NeRF's ``run_cuda`` does (at
0cf72d8; ``raymarching/src/raymarching.cu``), for a scene in ``[-bound, bound]^3`` with one
density-grid cascade (ER-NeRF's default ``--bound 1``):

* near/far: the ray's entry and exit of the axis-aligned box (ER-NeRF's ``aabb``:
  ``[-b, -b/2, -b, b, b/2, b]`` for its own data), near at least ``min_near``;
* steps: from ``t = near (+ dt x noise while training)``, ``t += dt`` with
  ``dt = clamp(t dt_gamma, dt_min, dt_max)``, ``dt_max = 2 sqrt(3) / grid``,
  ``dt_min = min(dt_max, 2 sqrt(3) / max_steps)`` (so a constant ``2 sqrt(3) / 128`` with the
  defaults), accumulated in float32; a step is a sample when its cell of the ``grid^3``
  occupancy grid is occupied (empty cells are stepped over: the kernel's jump to the next cell
  lands on the same lattice of steps). The point is the position at ``t`` clamped to the bound,
  its interval ``dt``, its depth ``t + dt``;
* inference (:func:`render_rays`): the kernel's loop of rounds over the rays still alive: each
  round gives every alive ray its next ``n_step = max(min(N // alive, 8), 1)`` samples (``N``:
  all rays of the call, e.g. the whole image), composites them with ``T = 1 - sum(weights)``
  and ends a ray when a sample had ``T < T_thresh`` or it ran out of samples; rounds stop once
  ``max_steps`` steps have been given. Audio/eye attention are summed unweighted, as the kernel
  does;
* training (:func:`train_rays`): the first ``max_steps`` samples of every ray, composited with
  ``T`` as a running product, and the samples after the one where ``T`` fell below
  ``T_thresh`` dropped (the kernel's ``break``). ER-NeRF's random dropping of rays past its
  running mean sample count (``mean_count``) is not reproduced: every ray is rendered.

Differences from the CUDA kernels: float rounding only. A point within a float ulp of a cell
edge can land in the neighbouring cell here and not there (the kernel reaches cell edges by a
distance formula), which changes a sample only in the rare case where that neighbour's
occupancy differs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

SQRT3 = float(np.float32(1.7320508075688772))


def step_sizes(grid: int, max_steps: int) -> tuple[float, float]:
    """``(dt_min, dt_max)`` of the kernel for one cascade, in float32."""
    dt_max = float(np.float32(2 * np.float32(SQRT3)) / np.float32(grid))
    dt_min = min(dt_max, float(np.float32(2 * np.float32(SQRT3)) / np.float32(max_steps)))
    return dt_min, dt_max


def near_far(
    origins: torch.Tensor, dirs: torch.Tensor, half: torch.Tensor, min_near: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box ``[-half, half]`` (``near >= min_near``)
    and the rays that have a segment inside it."""
    inv = 1.0 / dirs
    t0 = (-half - origins) * inv
    t1 = (half - origins) * inv
    near = torch.minimum(t0, t1).nan_to_num(nan=-float("inf")).amax(-1)
    far = torch.maximum(t0, t1).nan_to_num(nan=float("inf")).amin(-1)
    hit = near <= far
    near = near.clamp(min=min_near)
    hit = hit & (near < far)
    return near, far, hit


def cells(x: torch.Tensor, bound: float, grid: int) -> torch.Tensor:
    """Integer cell ``(..., 3)`` (x, y, z) of points ``x`` (clamped to the bound), as the kernel
    computes it (``0.5 (x / bound + 1) grid`` in double, to float, truncated)."""
    v = (x * (1.0 / bound) + 1).double() * 0.5 * grid
    return v.float().clamp(0, grid - 1).long()


def lattice(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    occupied: torch.Tensor,
    bound: float,
    *,
    max_steps: int,
    dt_gamma: float,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The steps of every ray: ``t (R, K)``, their ``dt (R, K)`` and whether each is a sample
    (``(R, K)`` bool: before ``far`` and in an occupied cell). ``occupied``: ``(G, G, G)`` bool
    indexed ``[z, y, x]`` (:class:`twinflow.nerf.network.OccupancyGrid`)."""
    grid = occupied.shape[-1]
    dt_min, dt_max = step_sizes(grid, max_steps)
    flat = occupied.reshape(-1)
    t = near.clone()
    if noise is not None:
        t = t + (t * dt_gamma).clamp(dt_min, dt_max) * noise
    span = float((far - t).clamp(min=0).max()) if len(t) else 0.0
    k_max = int(np.ceil(span / dt_min)) + 1
    ts, dts, samples = [], [], []
    for _ in range(k_max):
        dt = (t * dt_gamma).clamp(dt_min, dt_max)
        x = (origins + t[:, None] * dirs).clamp(-bound, bound)
        c = cells(x, bound, grid)
        occ = flat[(c[:, 2] * grid + c[:, 1]) * grid + c[:, 0]]
        ts.append(t)
        dts.append(dt)
        samples.append(occ & (t < far))
        t = t + dt
    if not ts:
        empty = origins.new_zeros(len(origins), 0)
        return empty, empty, empty.bool()
    return torch.stack(ts, 1), torch.stack(dts, 1), torch.stack(samples, 1)


def ranked(samples: torch.Tensor, n: int) -> torch.Tensor:
    """Step index ``(R, n)`` of each ray's ``q``-th sample (``-1`` past its last)."""
    r, k = samples.shape
    rank = torch.cumsum(samples.long(), 1) - 1
    out = torch.full((r, n + 1), -1, dtype=torch.long, device=samples.device)
    keep = samples & (rank < n)
    rows = torch.arange(r, device=samples.device)[:, None].expand(r, k)
    steps = torch.arange(k, device=samples.device)[None].expand(r, k)
    out[rows[keep], rank[keep]] = steps[keep]
    return out[:, :n]


FieldFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
"""``field(points (P, 3) in [-bound, bound], ray ids (P,)) -> {sigma, rgb, amb_aud, amb_eye}``."""


def render_rays(
    field: FieldFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    half: torch.Tensor,
    occupied: torch.Tensor,
    *,
    max_steps: int,
    dt_gamma: float,
    min_near: float,
    t_thresh: float,
    chunk: int = 65536,
) -> dict[str, torch.Tensor]:
    """ER-NeRF's inference rendering of ``origins, dirs (N, 3)`` (all the rays of one image, as
    the round sizes depend on ``N``) -> ``rgb (N, 3)`` (premultiplied), ``acc (N,)``, ``depth``
    (sum of weight x step end), ``depth_norm`` (ER-NeRF's ``(depth - near) / (far - near)``),
    ``amb_aud``, ``amb_eye`` (unweighted sums) and ``samples`` (mean per ray)."""
    n = len(origins)
    bound = float(half.max())
    near, far, hit = near_far(origins, dirs, half, min_near)
    out = {
        "rgb": origins.new_zeros(n, 3),
        "acc": origins.new_zeros(n),
        "depth": origins.new_zeros(n),
        "amb_aud": origins.new_zeros(n),
        "amb_eye": origins.new_zeros(n),
    }
    idx = torch.nonzero(hit)[:, 0]
    t, dt, samples = lattice(
        origins[idx], dirs[idx], near[idx], far[idx], occupied, bound,
        max_steps=max_steps, dt_gamma=dt_gamma,
    )  # fmt: skip
    order = ranked(samples, max_steps + 8)  # (H, Q) step of the q-th sample
    # round 1 gives every ray (hit or not) one step; rays without samples end there
    alive = torch.arange(len(idx), device=origins.device)  # positions in idx
    n_alive, consumed, step, total = n, 0, 0, 0
    wsum = origins.new_zeros(len(idx))
    rgb, depth = origins.new_zeros(len(idx), 3), origins.new_zeros(len(idx))
    a_aud, a_eye = origins.new_zeros(len(idx)), origins.new_zeros(len(idx))
    while step < max_steps and n_alive > 0:
        n_step = max(min(n // n_alive, 8), 1)
        k = order[alive, consumed : consumed + n_step]  # (A, n_step) step index or -1
        valid = k >= 0
        rows = alive[:, None].expand_as(k)[valid]
        ks = k[valid]
        pts = (origins[idx[rows]] + t[rows, ks][:, None] * dirs[idx[rows]]).clamp(-bound, bound)
        res = _field_chunks(field, pts, idx[rows], chunk)
        total += len(ks)
        sig, col = _scatter(res["sigma"], valid), _scatter(res["rgb"], valid)  # (A, n_step)
        aa, ae = _scatter(res["amb_aud"], valid), _scatter(res["amb_eye"], valid)
        dts, ends = _scatter(dt[rows, ks], valid), _scatter(t[rows, ks] + dt[rows, ks], valid)
        died = torch.zeros(len(alive), dtype=torch.bool, device=origins.device)
        w_s = wsum[alive]
        c_s, d_s = rgb[alive], depth[alive]
        aa_s, ae_s = a_aud[alive], a_eye[alive]
        for j in range(n_step):
            go = ~died & valid[:, j]
            died = died | ~valid[:, j]
            alpha = 1.0 - torch.exp(-sig[:, j] * dts[:, j])
            trans = 1 - w_s
            w = torch.where(go, alpha * trans, torch.zeros_like(alpha))
            w_s = w_s + w
            d_s = d_s + w * ends[:, j]
            c_s = c_s + w[:, None] * col[:, j]
            aa_s = aa_s + torch.where(go, aa[:, j], torch.zeros_like(alpha))
            ae_s = ae_s + torch.where(go, ae[:, j], torch.zeros_like(alpha))
            died = died | (go & (trans < t_thresh))
        wsum[alive], rgb[alive], depth[alive] = w_s, c_s, d_s
        a_aud[alive], a_eye[alive] = aa_s, ae_s
        alive = alive[~died]
        # rays that miss the box are alive in the kernel's first round only
        n_alive = len(alive)
        consumed += n_step
        step += n_step
    out["rgb"][idx], out["acc"][idx], out["depth"][idx] = rgb, wsum, depth
    out["amb_aud"][idx], out["amb_eye"][idx] = a_aud, a_eye
    span = (far - near).clamp(min=1e-12)
    out["depth_norm"] = torch.where(
        hit, (out["depth"] - near).clamp(min=0) / span, torch.zeros_like(near)
    )
    out["samples"] = torch.tensor(total / max(n, 1))
    return out


def train_rays(
    field: FieldFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    half: torch.Tensor,
    occupied: torch.Tensor,
    *,
    max_steps: int,
    dt_gamma: float,
    min_near: float,
    t_thresh: float,
    perturb: bool,
    generator: torch.Generator | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """ER-NeRF's training rendering (``march_rays_train`` + ``composite_rays_train_triplane``),
    differentiable: ``rgb (R, 3)``, ``acc``, ``depth``, ``amb_aud``, ``amb_eye`` and any
    ``extra`` per-sample output of ``field`` (weighted sum, e.g. ``uncertainty``)."""
    r = len(origins)
    bound = float(half.max())
    near, far, hit = near_far(origins, dirs, half, min_near)
    idx = torch.nonzero(hit)[:, 0]
    noise = torch.rand(len(idx), generator=generator).to(origins) if perturb else None
    t, dt, samples = lattice(
        origins[idx], dirs[idx], near[idx], far[idx], occupied, bound,
        max_steps=max_steps, dt_gamma=dt_gamma, noise=noise,
    )  # fmt: skip
    order = ranked(samples, max_steps)
    valid = order >= 0
    rows = torch.arange(len(idx), device=origins.device)[:, None].expand_as(order)[valid]
    ks = order[valid]
    pts = (origins[idx[rows]] + t[rows, ks][:, None] * dirs[idx[rows]]).clamp(-bound, bound)
    res = field(pts, idx[rows])
    grid = lambda v: _scatter(v, valid)  # noqa: E731
    sig = grid(res["sigma"])
    dts = grid(dt[rows, ks])
    alpha = 1.0 - torch.exp(-sig * dts)
    before = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha], 1), 1)[:, :-1]
    w = alpha * before * (before >= t_thresh) * valid
    out = {k: origins.new_zeros(r) for k in ("acc", "depth", "amb_aud", "amb_eye", *extra)}
    out["rgb"] = origins.new_zeros(r, 3)
    used = valid & (before >= t_thresh)
    put = lambda full, part: full.index_put((idx,), part)  # noqa: E731
    out["rgb"] = put(out["rgb"], (w[..., None] * grid(res["rgb"])).sum(1))
    out["acc"] = put(out["acc"], w.sum(1))
    out["depth"] = put(out["depth"], (w * grid(t[rows, ks] + dt[rows, ks])).sum(1))
    out["amb_aud"] = put(out["amb_aud"], (grid(res["amb_aud"]) * used).sum(1))
    out["amb_eye"] = put(out["amb_eye"], (grid(res["amb_eye"]) * used).sum(1))
    for key in extra:
        out[key] = put(out[key], (w.detach() * grid(res[key])).sum(1))
    out["samples"] = torch.tensor(float(valid.sum()) / max(r, 1))
    return out


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample ``values (P, ...)`` into a zero-padded ``(R, S, ...)`` where ``mask``."""
    full = values.new_zeros(*mask.shape, *values.shape[1:])
    return full.index_put((mask,), values) if len(values) else full


def _field_chunks(field: FieldFn, pts: torch.Tensor, rays: torch.Tensor, chunk: int):
    if len(pts) <= chunk:
        return field(pts, rays)
    parts = [field(pts[s : s + chunk], rays[s : s + chunk]) for s in range(0, len(pts), chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
