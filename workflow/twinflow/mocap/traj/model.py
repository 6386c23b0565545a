"""The trajectory denoiser (a transformer over a window of frames) and its DDPM.

DiffTraj-style: ``x`` (per frame: root orientation 6D + root velocity, normalised) is diffused
with a cosine schedule (Nichol & Dhariwal 2021; diffusers' ``squaredcos_cap_v2``) over
``diffusion_steps``; the denoiser sees the noisy ``x_t``, the step ``t`` and the local body pose
sequence ``cond`` and predicts ``x0`` or the noise ``epsilon``. Sampling is deterministic DDIM
(eta = 0) over ``sample_steps`` evenly strided steps, from a seeded Gaussian.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``(B,) -> (B, dim)`` sinusoidal embedding of (diffusion or frame) positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TrajDenoiser(nn.Module):
    """Transformer encoder over frames: ``(x_t, t, cond) -> x0 or epsilon``."""

    def __init__(
        self,
        n_x: int,
        n_cond: int,
        d_model: int,
        layers: int,
        heads: int,
        dropout: float,
        max_len: int = 4096,
    ):
        super().__init__()
        self.d_model = d_model
        self.inp = nn.Linear(n_x + n_cond, d_model)
        self.time = nn.Sequential(
            nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model)
        )
        layer = nn.TransformerEncoderLayer(
            d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_x))
        self.register_buffer("pos", sinusoidal(torch.arange(max_len), d_model), persistent=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n = x_t.shape[1]
        h = self.inp(torch.cat([x_t, cond], dim=-1)) + self.pos[:n][None]
        h = h + self.time(sinusoidal(t, self.d_model))[:, None]
        return self.out(self.encoder(h))


class Diffusion:
    """A DDPM noise schedule with training loss and DDIM sampling."""

    def __init__(self, steps: int, predict: str = "x0", device: torch.device | str = "cpu"):
        if predict not in ("x0", "epsilon"):
            raise ValueError(f"predict must be x0 or epsilon, got {predict!r}")
        self.steps, self.predict = steps, predict
        s = 0.008
        x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
        ab = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
        ab = ab / ab[0]
        betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
        self.alpha_bar = torch.cumprod(1 - betas, 0).float().to(device)

    def loss(self, model: nn.Module, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        pred = model(x_t, t, cond)
        target = x0 if self.predict == "x0" else noise
        return ((pred - target) ** 2).mean()

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        cond: torch.Tensor,
        n_x: int,
        sample_steps: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        b, n = cond.shape[:2]
        x = torch.randn(b, n, n_x, generator=generator, device="cpu").to(cond.device)
        ts = torch.linspace(self.steps - 1, 0, max(2, sample_steps)).round().long().tolist()
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            tt = torch.full((b,), t, device=cond.device, dtype=torch.long)
            pred = model(x, tt, cond)
            if self.predict == "x0":
                x0 = pred
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt().clamp(min=1e-6)
            else:
                eps = pred
                x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
            if i + 1 < len(ts):
                ab_next = self.alpha_bar[ts[i + 1]]
                x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
            else:
                x = x0
        return x
