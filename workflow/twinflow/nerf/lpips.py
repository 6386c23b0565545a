"""LPIPS (Zhang et al., CVPR 2018) with the AlexNet trunk, as ER-NeRF uses it, in plain torch.

ER-NeRF fine-tunes the lips with ``0.01 x lpips.LPIPS(net="alex")(pred, gt)`` on the mouth
patch (images scaled to [-1, 1]) and reports ``LPIPS (alex)`` of whole frames (``normalize=True``:
[0, 1] inputs). :class:`AlexLPIPS` is the ``lpips`` package's (0.1.4) model ``v0.1``, layer for
layer, with its state-dict layout:

``scaling_layer.shift`` / ``.scale``  buffers (-.030, -.088, -.188) / (.458, .448, .450):
    ``x <- (x - shift) / scale`` on [-1, 1] images;
``net.slice1.0``   conv 11x11 stride 4 pad 2 (3 -> 64) + ReLU;
``net.slice2.3``   max-pool 3/2, conv 5x5 pad 2 (-> 192) + ReLU;
``net.slice3.6``   max-pool 3/2, conv 3x3 pad 1 (-> 384) + ReLU;
``net.slice4.8``   conv 3x3 pad 1 (-> 256) + ReLU;
``net.slice5.10``  conv 3x3 pad 1 (-> 256) + ReLU  (torchvision's ``alexnet().features[0:12]``);
``lin{k}.model.1.weight``  a bias-free 1x1 conv to one channel per tap (after a dropout that
    is off in evaluation, as the package builds it: ``eval_mode=True``).

``d(x0, x1) = sum_k mean_hw lin_k((n(f_k(x0)) - n(f_k(x1)))^2)`` with ``n`` the unit
normalisation over channels (``f / (|f| + 1e-10)``); the output is ``(B, 1, 1, 1)``.

Weights are user-supplied (:func:`load_alex_lpips`, ``models/registry.yaml``): ``alexnet``,
torchvision's ImageNet AlexNet (``features.{0,3,6,8,10}.*``; the classifier is ignored), and
``lpips-alex``, the package's linear layers (``lpips/weights/v0.1/alex.pth``: ``lin0.model.1.
weight`` ... ``lin4``). A state dict already in the package's full layout (``net.slice*``) loads
too. Widths are read from the weights, so tests build small random networks in this layout.
Without the weights, the lips stage uses its named fallback (``perceptual: structural``) and
the ``lpips`` metric is not reported.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("twinflow.nerf.lpips")
WIDTHS = (64, 192, 384, 256, 256)  # AlexNet's
# (slice, index in torchvision's ``features``, kernel, padding, max-pool before)
CONVS = ((1, 0, 11, 2, False), (2, 3, 5, 2, True), (3, 6, 3, 1, True), (4, 8, 3, 1, False),
         (5, 10, 3, 1, False))  # fmt: skip
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
REGISTRY_NAMES = ("alexnet", "lpips-alex")


class ScalingLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class AlexTrunk(nn.Module):
    """AlexNet's ``features[0:12]`` in five slices; ``forward`` -> the five ReLU outputs."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        cin = 3
        for (k, index, kernel, pad, pool), cout in zip(CONVS, widths, strict=True):
            s = nn.Sequential()
            if pool:
                s.add_module(str(index - 1), nn.MaxPool2d(kernel_size=3, stride=2))
            stride = 4 if index == 0 else 1
            s.add_module(str(index), nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad))
            s.add_module(str(index + 1), nn.ReLU())
            setattr(self, f"slice{k}", s)
            cin = cout

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return outs


class NetLinLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (torch.sqrt(torch.sum(f**2, dim=1, keepdim=True)) + eps)


class AlexLPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet) of image pairs ``(B, 3, H, W)`` -> ``(B, 1, 1, 1)``: inputs in
    [-1, 1], or in [0, 1] with ``normalize=True``. Frozen, in evaluation mode."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = AlexTrunk(widths)
        for k, w in enumerate(widths):
            setattr(self, f"lin{k}", NetLinLayer(w))
        self.requires_grad_(False)
        self.eval()

    def forward(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False):
        if normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        outs0 = self.net(self.scaling_layer(in0))
        outs1 = self.net(self.scaling_layer(in1))
        val = 0
        for k, (a, b) in enumerate(zip(outs0, outs1, strict=True)):
            diff = (_unit(a) - _unit(b)) ** 2
            val = val + getattr(self, f"lin{k}")(diff).mean([2, 3], keepdim=True)
        return val

    def train(self, mode: bool = True):  # the package's eval_mode: dropout stays off
        return super().train(False)


def lpips_state(trunk: dict[str, torch.Tensor], lin: dict[str, torch.Tensor]):
    """The package's full state dict from torchvision's AlexNet (``features.N.*``, or already
    ``net.sliceK.N.*``) and the linear layers (``linK.model.1.weight``)."""
    slice_of = {index: k for k, index, *_ in CONVS}
    state: dict[str, torch.Tensor] = {}
    for key, value in trunk.items():
        m = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
        if m and int(m.group(1)) in slice_of:
            state[f"net.slice{slice_of[int(m.group(1))]}.{m.group(1)}.{m.group(2)}"] = value
        elif key.startswith("net.slice") or key.startswith("lin"):
            state[key] = value
    state.update({k: v for k, v in lin.items() if k.startswith("lin")})
    return state


def from_state_dict(state: dict[str, torch.Tensor], source: str = "LPIPS weights") -> AlexLPIPS:
    """An :class:`AlexLPIPS` holding ``state`` (the package's layout, without the scaling
    buffers); widths are read from the shapes. ValueError naming what is missing."""
    missing = [
        f"net.slice{k}.{index}.{p}" for k, index, *_ in CONVS for p in ("weight", "bias")
    ] + [f"lin{k}.model.1.weight" for k in range(5)]
    missing = [k for k in missing if k not in state]
    if missing:
        raise ValueError(
            f"{source} lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    widths = tuple(int(state[f"net.slice{k}.{index}.weight"].shape[0]) for k, index, *_ in CONVS)
    model = AlexLPIPS(widths)
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, expected "
                             f"{tuple(own[key].shape)}")  # fmt: skip
    weights = {k: v.float() for k, v in state.items() if k in own}
    weights |= {k: own[k] for k in ("scaling_layer.shift", "scaling_layer.scale")}
    model.load_state_dict(weights)
    return model


def load_alex_lpips(registry: str | Path = "models/registry.yaml") -> AlexLPIPS:
    """LPIPS(alex) from the registry's ``alexnet`` and ``lpips-alex`` files (checksums verified;
    :class:`~twinflow.errors.ModelFileError` when one is not supplied)."""
    from twinflow.models import resolve

    trunk_path, lin_path = (resolve(name, registry) for name in REGISTRY_NAMES)
    trunk = torch.load(trunk_path, map_location="cpu", weights_only=True)
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    return from_state_dict(lpips_state(trunk, lin), f"{trunk_path} + {lin_path}")


def supplied(registry: str | Path = "models/registry.yaml") -> tuple[AlexLPIPS | None, str]:
    """``(LPIPS, "")`` when the weights are supplied, else ``(None, why)``: a missing file or
    checksum (not supplied, the caller falls back); a wrong file is still an error."""
    from twinflow.errors import ModelFileError

    if not Path(registry).is_file():
        return None, f"no model registry at {registry}"
    try:
        return load_alex_lpips(registry), ""
    except ModelFileError as err:
        text = str(err)
        if "mismatch" in text or "not in the registry" in text:
            raise
        return None, text


def patch_lpips(model: AlexLPIPS, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ER-NeRF's lips term: LPIPS of patches ``(B, 3, P, P)`` in [0, 1], scaled to [-1, 1] and
    zero-padded to at least 32 pixels a side, averaged over the patches."""
    pred, gt = pred * 2 - 1, gt * 2 - 1
    ph = max(0, (32 - pred.shape[-2] + 1) // 2)
    pw = max(0, (32 - pred.shape[-1] + 1) // 2)
    if ph or pw:
        pred = nn.functional.pad(pred, (pw, pw, ph, ph))
        gt = nn.functional.pad(gt, (pw, pw, ph, ph))
    return model(pred, gt).mean()
