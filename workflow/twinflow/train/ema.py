"""An exponential moving average of a module's parameters (``torch.optim.swa_utils``).

``avg <- decay x avg + (1 - decay) x param`` after every optimisation step (the first update
copies the parameters). Buffers are not averaged: :meth:`ParameterEMA.state_dict_for` returns
the module's own state with its parameters replaced by the averages, so a checkpoint written
from it loads into the module class as usual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ParameterEMA:
    """The running average of ``module``'s parameters with ``decay`` per update (0 < decay < 1)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.averaged = AveragedModel(
            module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False
        )
        self.averaged.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Fold ``module``'s current parameters into the average."""
        self.averaged.update_parameters(module)

    def state_dict_for(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """``module.state_dict()`` with every parameter replaced by its average."""
        state = dict(module.state_dict())
        averaged = dict(self.averaged.module.named_parameters(remove_duplicate=False))
        for name in state:
            if name in averaged:
                state[name] = averaged[name].detach().clone()
        return state

    def state_dict(self) -> dict[str, Any]:
        """The average's own state (for resuming)."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
