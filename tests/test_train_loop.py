"""The shared training loop: resume after an interruption, atomic final checkpoint, metadata."""

from __future__ import annotations

import pytest
import torch

from twinflow.train import LoopConfig, load_checkpoint, run_training
from twinflow.train.checkpoint import CheckpointError
from twinflow.train.loop import resume_path


class Interrupt(Exception):
    pass


def make_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(123))  # same data every time
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3

    def step(i: int) -> dict[str, float]:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return {"mse": loss.item()}

    return model, opt, step


def test_training_lowers_loss_and_writes_checkpoint(tmp_path):
    model, opt, step = make_problem()
    final = tmp_path / "model.pt"
    result = run_training(
        {"model": model}, {"model": opt}, step, LoopConfig(steps=200, log_every=20), final, {"k": 1}
    )
    assert result.steps_done == 200 and result.resumed_from == 0
    assert result.history[-1]["mse"] < 0.05 * result.history[0]["mse"]
    ckpt = load_checkpoint(final, expect={"k": 1})
    assert ckpt["steps"] == 200 and "optimizers" not in ckpt
    assert not resume_path(final).exists()


def test_interrupted_training_resumes_where_it_stopped(tmp_path):
    final = tmp_path / "model.pt"
    model, opt, step = make_problem()

    def dying_step(i):
        if i == 130:
            raise Interrupt
        return step(i)

    cfg = LoopConfig(steps=200, save_every=50, log_every=10)
    with pytest.raises(Interrupt):
        run_training({"model": model}, {"model": opt}, dying_step, cfg, final, {})
    assert not final.exists(), "no final checkpoint after a kill"
    assert load_checkpoint(resume_path(final))["steps"] == 100

    calls = []
    model2, opt2, step2 = make_problem(seed=1)  # fresh weights: must be replaced by the state

    def counting_step(i):
        calls.append(i)
        return step2(i)

    result = run_training({"model": model2}, {"model": opt2}, counting_step, cfg, final, {})
    assert result.resumed_from == 100 and calls[0] == 100 and len(calls) == 100

    # Same result as an uninterrupted run (same seed, restored optimiser and RNG state).
    model3, opt3, step3 = make_problem()
    run_training({"model": model3}, {"model": opt3}, step3, cfg, tmp_path / "ref.pt", {})
    for a, b in zip(model2.parameters(), model3.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_checkpoint_metadata_mismatch_is_a_clear_error(tmp_path):
    model, opt, step = make_problem()
    final = tmp_path / "m.pt"
    run_training({"m": model}, {"m": opt}, step, LoopConfig(steps=5), final, {"features": "logmel"})
    with pytest.raises(CheckpointError, match="features='logmel'.*features='hubert'"):
        load_checkpoint(final, expect={"features": "hubert"})
