"""twinflow.device.pick_device: explicit request > TWINFLOW_DEVICE > auto (CUDA if visible)."""

from __future__ import annotations

import json

import pytest
import torch

from twinflow import device as dev
from twinflow.errors import TwinflowError


@pytest.fixture
def env(monkeypatch):
    """A clean device environment; ``env(gpus=N, visible=...)`` fakes N usable CUDA GPUs."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(dev.ENV_VAR, raising=False)
    calls = []

    def setup(gpus: int = 0, visible: str | None = None, override: str | None = None):
        def is_available():
            calls.append("is_available")
            return gpus > 0

        monkeypatch.setattr(torch.cuda, "is_available", is_available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        if visible is not None:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        if override is not None:
            monkeypatch.setenv(dev.ENV_VAR, override)
        return calls

    return setup


def test_auto_without_gpu_is_cpu(env):
    env(gpus=0)
    assert dev.pick_device() == torch.device("cpu")


def test_auto_with_gpu_is_cuda(env):
    env(gpus=2, visible="3,5")
    assert dev.pick_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize("visible", ["", "-1", " -1,0"])
def test_hidden_gpus_give_cpu_without_touching_cuda(env, visible):
    calls = env(gpus=1, visible=visible)
    assert dev.pick_device() == torch.device("cpu")
    assert calls == [], "torch.cuda must not be queried when CUDA_VISIBLE_DEVICES hides all GPUs"


def test_visible_gpu_but_cpu_torch_falls_back_with_warning(env, caplog):
    # A SLURM --gpus job on the test cluster: CUDA_VISIBLE_DEVICES=0, CPU-only torch.
    env(gpus=0, visible="0")
    with caplog.at_level("WARNING", logger="twinflow.device"):
        assert dev.pick_device() == torch.device("cpu")
    assert "CUDA_VISIBLE_DEVICES=0" in caplog.text


def test_explicit_cpu_wins_over_gpu_and_env(env):
    env(gpus=1, override="cuda")
    assert dev.pick_device("cpu") == torch.device("cpu")


def test_env_override_replaces_auto(env):
    env(gpus=1, override="cpu")
    assert dev.pick_device() == torch.device("cpu")
    assert dev.pick_device("auto") == torch.device("cpu")


def test_env_override_selects_gpu_index(env):
    env(gpus=2, override="cuda:1")
    assert dev.pick_device() == torch.device("cuda", 1)


@pytest.mark.parametrize("spec", ["cuda", "GPU", "cuda:0", " cuda "])
def test_explicit_cuda_spellings(env, spec):
    env(gpus=1)
    assert dev.pick_device(spec) == torch.device("cuda", 0)


def test_explicit_cuda_without_gpu_is_a_clear_error(env):
    env(gpus=0)
    with pytest.raises(TwinflowError, match="sees no usable CUDA GPU"):
        dev.pick_device("cuda")


def test_env_cuda_with_hidden_gpus_names_the_variable(env):
    env(gpus=1, visible="", override="cuda")
    with pytest.raises(TwinflowError, match="TWINFLOW_DEVICE.*hides all GPUs"):
        dev.pick_device()


def test_gpu_index_out_of_range(env):
    env(gpus=1)
    with pytest.raises(TwinflowError, match="only 1 GPU"):
        dev.pick_device("cuda:1")


@pytest.mark.parametrize("spec", ["tpu", "cpu:0", "cuda:x", "auto:1"])
def test_invalid_spec(env, spec):
    env(gpus=1)
    with pytest.raises(TwinflowError, match="use auto, cpu, cuda"):
        dev.pick_device(spec)


def test_empty_env_override_is_ignored(env):
    env(gpus=0, override="  ")
    assert dev.pick_device() == torch.device("cpu")


def test_cli_reports_device_and_environment(env, tmp_path, capsys):
    env(gpus=0, visible="0")
    out = tmp_path / "device.json"
    assert dev.main(["--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["device"] == "cpu"
    assert info["CUDA_VISIBLE_DEVICES"] == "0"
    assert json.loads(capsys.readouterr().out) == info


def test_cli_error_exits_1(env, capsys):
    env(gpus=0)
    assert dev.main(["--device", "cuda"]) == 1
    assert "twinflow error" in capsys.readouterr().err
