"""Video sampling with batch-overlapped windows (Make-Your-Anchor's temporal denoising).

A clip of ``T`` frames is covered by windows of ``window`` frames that overlap by ``overlap``: a
window starts every ``window - overlap`` frames and the last ones are cut at the clip's end (the
reference's ``get_overlap_slide_window_indices``, ``last="truncate"``), or the last window is
moved back to end at the clip's last frame (``last="shift"``). At every DDIM step each window
is denoised with inflated attention (:mod:`twinflow.anchor.attention`), and each frame's noise
prediction is the average over the windows that contain it; then one scheduler step moves all
frames. Every frame starts from the same initial noise, and classifier-free guidance mixes
predictions with and without the reference tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from twinflow.anchor.attention import FrameWindow, frames_per_window


def window_starts(
    n_frames: int, window: int = 16, overlap: int = 4, last: str = "shift"
) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` windows covering ``range(n_frames)``.

    ``last="truncate"``: a window at every multiple of ``window - overlap`` below ``n_frames``,
    cut at ``n_frames`` (Make-Your-Anchor's; e.g. 16 frames, window 16, overlap 4:
    ``[(0, 16), (12, 16)]``). ``last="shift"``: neighbours share at least ``overlap`` frames,
    exactly ``overlap`` except where the last window was moved back to end at the last frame.
    """
    if n_frames <= 0:
        return []
    if window <= overlap:
        raise ValueError(f"window ({window}) must exceed overlap ({overlap})")
    if last == "truncate":
        stride = window - overlap
        return [(a, min(a + window, n_frames)) for a in range(0, n_frames, stride)]
    if last != "shift":
        raise ValueError(f"last must be shift or truncate, got {last!r}")
    if n_frames <= window:
        return [(0, n_frames)]
    stride = window - overlap
    out = []
    start = 0
    while True:
        if start + window >= n_frames:
            out.append((n_frames - window, n_frames))
            break
        out.append((start, start + window))
        start += stride
    return out


def initial_noise(
    n_frames: int, shape: tuple[int, int, int], generator: torch.Generator, device="cpu"
) -> torch.Tensor:
    """One noise image ``shape`` (C, H, W), repeated for every frame: ``(T, C, H, W)``."""
    noise = torch.randn((1, *shape), generator=generator, device="cpu")
    return noise.to(device).expand(n_frames, *shape).clone()


def ddim_scheduler(scheduler_config: dict):
    """A DDIM sampler for a model trained with the DDPM schedule ``scheduler_config``."""
    from diffusers import DDIMScheduler

    config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    config.update(set_alpha_to_one=False, steps_offset=1)
    return DDIMScheduler.from_config(config)


EpsFn = Callable[[torch.Tensor, torch.Tensor, slice, bool], torch.Tensor]


@torch.no_grad()
def sample_video(
    eps_fn: EpsFn,
    n_frames: int,
    shape: tuple[int, int, int],
    scheduler,
    *,
    steps: int = 20,
    window: int = 16,
    overlap: int = 4,
    guidance: float = 1.0,
    frame_window: FrameWindow | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    latents: torch.Tensor | None = None,
    eta: float = 0.0,
    last: str = "shift",
) -> torch.Tensor:
    """Denoise ``n_frames`` frames of ``shape`` (C, H, W) and return the final ``(T, C, H, W)``.

    ``eps_fn(x, t, frames, with_ref)`` predicts the noise of the window ``x`` (``(F, C, H, W)``,
    the frames ``frames`` of the clip) at timestep ``t``, with or without the reference tokens;
    it picks its per-frame conditions with ``frames``. With ``guidance != 1`` both are batched
    into one call per window when ``eps_fn`` accepts ``with_ref=None`` (returning the
    unconditional half first), else called twice.

    ``eta > 0`` makes the DDIM steps stochastic (``eta = 1``: DDPM-like variance); the noise
    added at a step is again one image shared by every frame, like the initial noise.
    """
    generator = generator or torch.Generator().manual_seed(0)
    scheduler.set_timesteps(steps)
    if latents is None:
        latents = initial_noise(n_frames, shape, generator, device)
    latents = latents * scheduler.init_noise_sigma
    windows = window_starts(n_frames, window, overlap, last)
    for k, t in enumerate(scheduler.timesteps):
        eps_sum = torch.zeros_like(latents)
        count = torch.zeros(n_frames, 1, 1, 1, device=latents.device)
        for a, b in windows:
            x = scheduler.scale_model_input(latents[a:b], t)
            frames = slice(a, b)
            ctx = frames_per_window(frame_window, b - a) if frame_window else _null()
            with ctx:
                if guidance == 1.0:
                    eps = eps_fn(x, t, frames, True)
                else:
                    eps_u, eps_c = eps_fn(x, t, frames, None).chunk(2)
                    eps = eps_u + guidance * (eps_c - eps_u)
            eps_sum[a:b] += eps
            count[a:b] += 1
        step_kw = {}
        if eta > 0:
            step_kw = {
                "eta": eta,
                "variance_noise": initial_noise(n_frames, shape, generator, latents.device),
            }
        latents = scheduler.step(eps_sum / count, t, latents, **step_kw).prev_sample
        if progress:
            progress(k + 1, len(scheduler.timesteps))
    return latents


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
