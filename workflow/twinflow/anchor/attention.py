"""The "inflated" UNet of Make-Your-Anchor: self-attention over all frames of a window.

The per-frame model is turned into a video model without new weights: in every self-attention
layer (``attn1`` of each transformer block, in the UNet and the ControlNet) the queries of each
frame attend to the keys and values of *all* frames of the window, so appearance is shared across
frames. Frames are the batch: a call with batch ``G * F`` holds ``G`` groups (e.g. the
unconditional and conditional halves of classifier-free guidance) of ``F`` frames each, and
attention never crosses groups.

Because a query of frame ``i`` attends to the concatenation of every frame's keys, the result
equals one scaled-dot-product attention over the window's ``F * N`` tokens (queries and keys of
all frames concatenated), which is how it is computed: no key/value copies per frame. With one
frame per window it is exactly standard self-attention.

The reference's inflated networks (ControlVideo's ``UNet3DConditionModel`` and
``ControlNetModel3D``) also change the normalisation: their ResNet blocks and the UNet's output
norm apply ``nn.GroupNorm`` to ``(B, C, F, H, W)`` tensors, so the group statistics are taken over
all frames of the window. :func:`inflate_norms` does the same with diffusers' 2D models
(:class:`FrameGroupNorm`, sharing the original weights); the transformer blocks' input norm stays
per frame, as in the reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F


class FrameWindow:
    """Shared, mutable frame count read by every :class:`InflatedAttnProcessor` of a model.

    ``frames=None`` (or 1) means per-frame attention (training, ordinary image sampling).
    """

    def __init__(self, frames: int | None = None):
        self.frames = frames


class InflatedAttnProcessor:
    """diffusers attention processor for self-attention layers: keys and values from all frames
    of the window (``window.frames`` consecutive batch entries)."""

    def __init__(self, window: FrameWindow):
        self.window = window

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("InflatedAttnProcessor is for self-attention (attn1) layers only")
        if attention_mask is not None:
            raise ValueError("InflatedAttnProcessor does not support attention masks")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, tokens, _ = hidden_states.shape
        frames = self.window.frames or 1
        if batch % frames:
            raise ValueError(f"batch {batch} is not a multiple of the window's {frames} frames")
        groups = batch // frames
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        inner = key.shape[-1]
        head_dim = inner // attn.heads

        def heads(x: torch.Tensor) -> torch.Tensor:
            # (G*F, N, inner) -> (G, heads, F*N, head_dim): a window's frames become one sequence
            return x.reshape(groups, frames * tokens, attn.heads, head_dim).transpose(1, 2)

        query, key, value = heads(query), heads(key), heads(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, tokens, inner).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def self_attention_names(model: torch.nn.Module) -> list[str]:
    """Processor names (``...attn1.processor``) of a diffusers model's self-attention layers."""
    return [name for name in model.attn_processors if name.endswith("attn1.processor")]


def inflate(*models: torch.nn.Module, window: FrameWindow | None = None) -> FrameWindow:
    """Put :class:`InflatedAttnProcessor` on every ``attn1`` of ``models`` (UNet, ControlNet);
    other processors stay. Returns the :class:`FrameWindow` that sets the frame count."""
    window = window or FrameWindow()
    for model in models:
        if model is None:
            continue
        processors = dict(model.attn_processors)
        names = self_attention_names(model)
        if not names:
            raise ValueError(f"{type(model).__name__} has no self-attention (attn1) layers")
        for name in names:
            processors[name] = InflatedAttnProcessor(window)
        model.set_attn_processor(processors)
    return window


class FrameGroupNorm(torch.nn.GroupNorm):
    """``nn.GroupNorm`` whose statistics span the ``window.frames`` consecutive batch entries of
    a window (a 5D ``GroupNorm`` over ``(G, C, F, H, W)``); per frame when ``frames`` is 1."""

    window: FrameWindow

    @classmethod
    def wrap(cls, norm: torch.nn.GroupNorm, window: FrameWindow) -> FrameGroupNorm:
        new = cls(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
        new.weight, new.bias = norm.weight, norm.bias  # the same parameters (and state_dict keys)
        new.window = window
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.window.frames or 1
        if frames == 1 or x.ndim != 4:
            return super().forward(x)
        batch, c, h, w = x.shape
        if batch % frames:
            raise ValueError(f"batch {batch} is not a multiple of the window's {frames} frames")
        y = x.view(batch // frames, frames, c, h, w).transpose(1, 2)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.transpose(1, 2).reshape(batch, c, h, w)


def inflate_norms(*models: torch.nn.Module, window: FrameWindow) -> FrameWindow:
    """Make the group norms of every ResNet block of ``models`` (and a UNet's ``conv_norm_out``)
    :class:`FrameGroupNorm` over ``window``, as the reference's inflated UNet and ControlNet."""
    from diffusers.models.resnet import ResnetBlock2D

    for model in models:
        if model is None:
            continue
        for module in model.modules():
            names = ("norm1", "norm2") if isinstance(module, ResnetBlock2D) else ()
            if module is model and hasattr(module, "conv_norm_out"):
                names = ("conv_norm_out",)
            for name in names:
                norm = getattr(module, name, None)
                if isinstance(norm, FrameGroupNorm):
                    norm.window = window
                elif isinstance(norm, torch.nn.GroupNorm):
                    setattr(module, name, FrameGroupNorm.wrap(norm, window))
    return window


@contextlib.contextmanager
def frames_per_window(window: FrameWindow, frames: int) -> Iterator[None]:
    """Within the block, model calls treat each ``frames`` consecutive batch entries as a window."""
    previous = window.frames
    window.frames = frames
    try:
        yield
    finally:
        window.frames = previous
