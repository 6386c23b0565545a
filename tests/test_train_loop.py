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


def noisy_problem(seed: int = 0):
    """A linear fit with a fresh noisy batch every step: the last weights jitter, their
    average does not."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = torch.tensor([[1.0], [-2.0], [0.5]])

    def step(i: int) -> dict[str, float]:
        g = torch.Generator().manual_seed(1000 + i)
        x = torch.randn(8, 3, generator=g)
        y = x @ w + 0.5 * torch.randn(8, 1, generator=g)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return {"mse": loss.item()}

    return model, opt, step, w


def test_ema_checkpoint_holds_the_running_average_of_the_weights(tmp_path):
    model, opt, step, w = noisy_problem()
    decay = 0.9
    manual: list[torch.Tensor] = []

    def tracking_step(i):
        out = step(i)
        p = model.weight.detach().clone()
        manual.append(p if not manual else decay * manual[-1] + (1 - decay) * p)
        return out

    cfg = LoopConfig(steps=300, ema_decay=decay)
    run_training({"m": model}, {"m": opt}, tracking_step, cfg, tmp_path / "m.pt", {})
    saved = load_checkpoint(tmp_path / "m.pt")["modules"]["m"]
    assert torch.allclose(saved["weight"], manual[-1], atol=1e-6)
    assert not torch.allclose(saved["weight"], model.weight), "the raw weights are not saved"
    # the average is closer to the true weights than the jittering last step
    assert (saved["weight"] - w.T).norm() < (model.weight.detach() - w.T).norm()


def test_ema_survives_an_interruption(tmp_path):
    cfg = LoopConfig(steps=120, save_every=40, ema_decay=0.95)
    model, opt, step, _ = noisy_problem()

    def dying_step(i):
        if i == 90:
            raise Interrupt
        return step(i)

    with pytest.raises(Interrupt):
        run_training({"m": model}, {"m": opt}, dying_step, cfg, tmp_path / "m.pt", {})
    model2, opt2, step2, _ = noisy_problem(seed=5)
    run_training({"m": model2}, {"m": opt2}, step2, cfg, tmp_path / "m.pt", {})
    model3, opt3, step3, _ = noisy_problem()
    run_training({"m": model3}, {"m": opt3}, step3, cfg, tmp_path / "ref.pt", {})
    resumed = load_checkpoint(tmp_path / "m.pt")["modules"]["m"]
    reference = load_checkpoint(tmp_path / "ref.pt")["modules"]["m"]
    for k in reference:
        assert torch.allclose(resumed[k], reference[k], atol=1e-6), k
