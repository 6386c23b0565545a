"""A resumable training loop.

The stage supplies modules, optimizers and a ``step(i) -> {loss name: value}`` function; the loop
seeds everything, shows a progress bar, saves a resumable state every ``save_every`` steps next
to the final checkpoint (``<final>.resume.pt``, not a declared output, so Snakemake keeps it when a
job is killed), continues from it when rerun, and writes the final checkpoint atomically, with its
loss curve beside it (``<final>.curve.json``, an undeclared sidecar the report draws). With
``ema_decay`` it keeps an exponential moving average of the parameters
(:class:`twinflow.train.ema.ParameterEMA`), saved in the resumable state, and the final
checkpoint holds the averaged parameters. ``ema_every`` > 1 updates the average every that many
steps (counted from ``ema_offset``, the steps a previous stage already made), ``ema_warmup`` is
``torch_ema``'s average (:class:`twinflow.train.ema.ParameterEMA`); with it the final checkpoint
also keeps the average's state (``ema``) and the last, un-averaged parameters (``last``), so a
later stage can continue both, as a resumed reference trainer does (``ema_start``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from twinflow.atomic import write_json
from twinflow.train.checkpoint import load_checkpoint, save_checkpoint
from twinflow.train.ema import ParameterEMA

log = logging.getLogger("twinflow.train")


@dataclass
class LoopConfig:
    """How long to train and how often to save.

    Attributes:
        steps: total optimisation steps (a resumed run continues up to this count).
        save_every: steps between resumable states.
        log_every: steps between loss lines in the log (the bar updates every step).
        seed: seed for python, numpy and torch.
        max_minutes: optional wall-clock budget; training stops early (and says so) when spent.
        desc: progress bar label.
        ema_decay: decay of an exponential moving average of every module's parameters, updated
            after each step (0: none); the final checkpoint then holds the averages (buffers
            as trained). A few hundred steps of averaging (0.99-0.998) remove the step-to-step
            noise that a high learning rate leaves in the last weights.
        ema_every: update the average only after every ``ema_every``-th step.
        ema_warmup: ``torch_ema``'s average (starts at the initial parameters, per-update decay
            ``min(ema_decay, (1 + n) / (10 + n))``); the final checkpoint then also holds
            ``ema`` (the average's state) and ``last`` (the last parameters of each module).
        ema_offset: steps made before this run (a previous stage's), so that the updates fall
            on the multiples of ``ema_every`` of the total step count.
    """

    steps: int
    save_every: int = 200
    log_every: int = 50
    seed: int = 0
    max_minutes: float | None = None
    desc: str = "train"
    ema_decay: float = 0.0
    ema_every: int = 1
    ema_warmup: bool = False
    ema_offset: int = 0


@dataclass
class TrainResult:
    steps_done: int
    resumed_from: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resume_path(final: str | Path) -> Path:
    final = Path(final)
    return final.with_name(final.name + ".resume.pt")


def curve_path(final: str | Path) -> Path:
    """``<final>.curve.json``: the logged losses beside a final checkpoint, for the report.

    An undeclared sidecar (like ``<final>.resume.pt``): ``{"desc", "steps", "planned_steps",
    "stopped_early", "max_minutes", "seconds", "resumed_from", "history": [{"step": int,
    loss name: float}, ...]}`` (``seconds``: this run's, after any resume)."""
    final = Path(final)
    return final.with_name(final.name + ".curve.json")


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def run_training(
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    step: Callable[[int], dict[str, float]],
    cfg: LoopConfig,
    final_path: str | Path,
    meta: dict[str, Any],
    schedulers: dict[str, Any] | None = None,
    extra_state: dict[str, Any] | None = None,
    ema_start: dict[str, dict[str, Any]] | None = None,
) -> TrainResult:
    """Train ``modules`` for ``cfg.steps`` steps and write the final checkpoint to ``final_path``.

    The final checkpoint holds ``modules`` (state dicts), ``meta``, ``history`` (logged losses),
    ``steps`` and ``extra`` (``extra_state``, e.g. normalisation statistics). ``step(i)`` runs one
    optimisation step (it owns zero_grad/backward/optimizer.step) and returns scalar losses.
    ``ema_start``: per module, an average's state to continue (a previous stage's ``ema``).
    """
    schedulers = schedulers or {}
    state_file = resume_path(final_path)
    seed_everything(cfg.seed)
    emas = {}
    if cfg.ema_decay:
        emas = {n: ParameterEMA(m, cfg.ema_decay, cfg.ema_warmup) for n, m in modules.items()}
    for name, state in (ema_start or {}).items():
        if name in emas:
            emas[name].load_state_dict(state)
    start_step = 0
    history: list[dict[str, float]] = []
    if state_file.exists():
        state = load_checkpoint(state_file)
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        for name, ema in emas.items():
            if name in state.get("ema", {}):
                ema.load_state_dict(state["ema"][name])
        _set_rng_state(state["rng"])
        start_step = int(state["steps"])
        history = list(state.get("history", []))
        log.info("resuming %s from step %d (%s)", cfg.desc, start_step, state_file)

    def payload(steps: int, with_optim: bool) -> dict[str, Any]:
        final = not with_optim and emas
        data = {
            "modules": {
                n: emas[n].state_dict_for(m) if final else m.state_dict()
                for n, m in modules.items()
            },
            "meta": meta,
            "steps": steps,
            "history": history,
            "extra": extra_state or {},
        }
        if with_optim:
            data["optimizers"] = {n: o.state_dict() for n, o in optimizers.items()}
            data["schedulers"] = {n: s.state_dict() for n, s in schedulers.items()}
            data["rng"] = _rng_state()
            data["ema"] = {n: e.state_dict() for n, e in emas.items()}
        elif final and cfg.ema_warmup:
            data["ema"] = {n: e.state_dict() for n, e in emas.items()}
            data["last"] = {
                n: {k: p.detach().clone() for k, p in m.named_parameters(remove_duplicate=False)}
                for n, m in modules.items()
            }
        return data

    for module in modules.values():
        module.train()
    t0 = time.perf_counter()
    stopped_early = False
    i = start_step
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc=cfg.desc)
    running: dict[str, float] = {}
    for i in bar:
        losses = step(i)
        if (cfg.ema_offset + i + 1) % cfg.ema_every == 0:
            for name, ema in emas.items():
                ema.update(modules[name])
        for k, v in losses.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * float(v)
        bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
        if (i + 1) % cfg.log_every == 0 or i + 1 == cfg.steps:
            history.append({"step": i + 1, **{k: float(v) for k, v in losses.items()}})
            log.info("step %d %s", i + 1, " ".join(f"{k}={v:.5g}" for k, v in running.items()))
        if (i + 1) % cfg.save_every == 0 and i + 1 < cfg.steps:
            save_checkpoint(state_file, payload(i + 1, with_optim=True))
        if cfg.max_minutes and (time.perf_counter() - t0) > 60 * cfg.max_minutes:
            stopped_early = True
            log.warning("wall-clock budget of %.1f min spent at step %d", cfg.max_minutes, i + 1)
            break
    bar.close()
    steps_done = i + 1 if cfg.steps > start_step else start_step
    for module in modules.values():
        module.eval()
    save_checkpoint(final_path, payload(steps_done, with_optim=False))
    state_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    write_json(
        curve_path(final_path),
        {
            "desc": cfg.desc, "steps": steps_done, "planned_steps": cfg.steps,
            "stopped_early": stopped_early, "max_minutes": cfg.max_minutes,
            "seconds": seconds, "resumed_from": start_step, "history": history,
        },
    )  # fmt: skip
    return TrainResult(
        steps_done=steps_done,
        resumed_from=start_step,
        seconds=seconds,
        history=history,
        stopped_early=stopped_early,
    )
