"""An exponential moving average of a module's parameters (``torch.optim.swa_utils``).

``avg <- decay x avg + (1 - decay) x param`` after every optimisation step (the first update
copies the parameters). Buffers are not averaged: :meth:`ParameterEMA.state_dict_for` returns
the module's own state with its parameters replaced by the averages, so a checkpoint written
from it loads into the module class as usual.

``warmup=True`` is the ``torch_ema`` package's ``ExponentialMovingAverage`` (the reference
trainers of ER-NeRF and torch-ngp): the average starts as the parameters at construction, and
the ``n``-th update uses ``min(decay, (1 + n) / (10 + n))``, so early updates weigh the new
parameters more (0.18 at the first, 0.95 only from the 170th).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ParameterEMA:
    """The running average of ``module``'s parameters with ``decay`` per update (0 < decay < 1);
    ``warmup``: ``torch_ema``'s average (module docstring)."""

    def __init__(self, module: torch.nn.Module, decay: float, warmup: bool = False):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        if warmup:
            self.shadow = {
                n: p.detach().clone() for n, p in module.named_parameters(remove_duplicate=False)
            }
            self.updates = 0
            return
        self.averaged = AveragedModel(
            module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False
        )
        self.averaged.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Fold ``module``'s current parameters into the average."""
        if not self.warmup:
            self.averaged.update_parameters(module)
            return
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for n, p in module.named_parameters(remove_duplicate=False):
            s = self.shadow[n]
            s.sub_((s - p.detach()) * (1.0 - keep))

    def _averages(self) -> dict[str, torch.Tensor]:
        if self.warmup:
            return self.shadow
        return dict(self.averaged.module.named_parameters(remove_duplicate=False))

    def state_dict_for(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """``module.state_dict()`` with every parameter replaced by its average."""
        state = dict(module.state_dict())
        averaged = self._averages()
        for name in state:
            if name in averaged:
                state[name] = averaged[name].detach().clone()
        return state

    def state_dict(self) -> dict[str, Any]:
        """The average's own state (for resuming, or continuing in a later stage)."""
        if self.warmup:
            return {
                "shadow": {n: t.clone() for n, t in self.shadow.items()},
                "updates": self.updates,
            }
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.warmup:
            self.averaged.load_state_dict(state)
            return
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise ValueError(f"ema state lacks {sorted(missing)[:4]}")
        for n, t in self.shadow.items():
            t.copy_(state["shadow"][n])
        self.updates = int(state["updates"])
