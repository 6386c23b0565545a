"""ER-NeRF's training as the reference: the lips stage's learning-rate schedule and its weight
average (``torch_ema`` every 1000 steps), LPIPS(alex) for the lips loss and the metric.

Values are derived by hand from ER-NeRF's main.py / nerf_triplane/utils.py at 0cf72d8, the
``torch_ema`` package (0.3) and the ``lpips`` package (0.1.4).
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import REPO
from twinflow.nerf.presets import get_preset

# --- the lips stage's learning rate and the weight average ------------------------------------


def test_paper_has_ernerfs_lips_schedule_and_average_and_tiny_keeps_its_own():
    paper, tiny = get_preset("paper"), get_preset("tiny")
    assert (paper.lips_schedule, paper.lips_lr_decay, paper.ema_every, paper.ema_warmup) == (
        "ernerf",
        0.05,
        1000,
        True,
    )
    assert paper.ema_decay == 0.95 and paper.lr_decay == 0.5
    assert (tiny.lips_schedule, tiny.lips_lr_decay, tiny.ema_every, tiny.ema_warmup) == (
        "twinflow",
        0.1,
        1,
        False,
    )
    with pytest.raises(ValueError, match="lips_schedule"):
        get_preset("tiny", {"lips_schedule": "cosine"})
    with pytest.raises(ValueError, match="ema_every"):
        get_preset("tiny", {"ema_every": 0})


def _lrs(sched, opt, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out + [opt.param_groups[0]["lr"]]


def test_lips_rate_continues_ernerfs_step_count():
    """ER-NeRF: LambdaLR(0.05 ** (iter / iters)) with the head stage's scheduler state loaded,
    ``iters`` = head + lips steps: after 100 head steps, 25 lips steps run from 0.05^0.8."""
    from twinflow.nerf.train import Progress, lips_lr_schedule

    cfg = get_preset("paper")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = _lrs(lips_lr_schedule(opt, Progress(25, None), cfg, 25, done=100), opt, 25)
    for k, lr in enumerate(lrs):  # ER-NeRF's rate at its global step 100 + k
        assert lr == pytest.approx(0.05 ** ((100 + k) / 125), rel=1e-12)
    assert lrs[0] == pytest.approx(0.0910, abs=1e-4) and lrs[-1] == pytest.approx(0.05)
    tiny = get_preset("tiny")  # twinflow's: from lr_decay (0.3), 0.1x more
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = _lrs(lips_lr_schedule(opt, Progress(10, None), tiny, 10, done=100), opt, 10)
    assert lrs[0] == pytest.approx(0.3) and lrs[-1] == pytest.approx(0.03)


def test_torch_ema_average_by_hand():
    """``torch_ema.ExponentialMovingAverage(decay=0.95)``: the average starts at the parameters
    it was made with; the n-th update keeps min(0.95, (1 + n) / (10 + n)) of it."""
    from twinflow.train.ema import ParameterEMA

    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = ParameterEMA(lin, 0.95, warmup=True)
    avg, values = 1.0, [3.0, -2.0, 5.0]
    for n, v in enumerate(values, 1):
        with torch.no_grad():
            lin.weight.fill_(v)
        ema.update(lin)
        keep = min(0.95, (1 + n) / (10 + n))
        avg = keep * avg + (1 - keep) * v
    assert ema.state_dict_for(lin)["weight"].item() == pytest.approx(avg, rel=1e-6)
    assert ema.state_dict()["updates"] == 3
    assert min(0.95, 171 / 180) == 0.95 and 170 / 179 < 0.95  # 0.95 from the 170th update on
    again = ParameterEMA(lin, 0.95, warmup=True)
    again.load_state_dict(ema.state_dict())
    assert again.state_dict_for(lin)["weight"].item() == pytest.approx(avg, rel=1e-6)
    plain = ParameterEMA(lin, 0.5)  # twinflow's: the first update copies the weights
    plain.update(lin)
    assert plain.state_dict_for(lin)["weight"].item() == 5.0


def test_loop_updates_the_average_every_n_steps_of_the_total_count(tmp_path):
    from twinflow.train import LoopConfig, load_checkpoint, run_training

    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)

    def step(i: int) -> dict[str, float]:
        with torch.no_grad():
            lin.weight.add_(1.0)  # the weight is the number of steps made
        return {}

    cfg = LoopConfig(steps=7, ema_decay=0.95, ema_every=3, ema_warmup=True, ema_offset=2)
    run_training({"m": lin}, {}, step, cfg, tmp_path / "m.pt", {})
    ckpt = load_checkpoint(tmp_path / "m.pt")
    # total steps 3, 4, ..., 9 -> updates after total steps 3, 6, 9 (this run's 1st, 4th, 7th)
    avg = 0.0
    for n, v in enumerate((1.0, 4.0, 7.0), 1):
        keep = min(0.95, (1 + n) / (10 + n))
        avg = keep * avg + (1 - keep) * v
    assert ckpt["modules"]["m"]["weight"].item() == pytest.approx(avg, rel=1e-6)
    assert ckpt["ema"]["m"]["updates"] == 3 and ckpt["last"]["m"]["weight"].item() == 7.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from twinflow.nerf.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("nerf_syn"), res=32, n_frames=40)


SMALL = [
    "--set", "rays=256", "--set", "frames_per_step=1", "--set", "n_samples=8",
    "--set", "occ_res=16", "--set", "occ_warmup=99", "--set", "patch=8",
]  # fmt: skip


def _train(synthetic, stage: str, out, steps: int, *extra: str) -> None:
    from twinflow.nerf.train import main

    args = [
        "--stage", stage, "--twin", "syn", "--dataset", str(synthetic["dataset"]),
        "--frames", str(synthetic["frames"]), "--features", str(synthetic["features"]),
        "--steps", str(steps), "--threads", "1", "--device", "cpu", *SMALL, *extra,
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0


def test_the_lips_stage_continues_the_head_stages_average_and_last_weights(tmp_path, synthetic):
    """ER-NeRF's lips fine-tune resumes the head run: its last weights, its average (with the
    update count) and its step count (updates every ``ema_every`` of the total)."""
    from twinflow.train import load_checkpoint

    ema = ["--set", "ema_every=2", "--set", "ema_warmup=true", "--set", "ema_decay=0.95"]
    head, lips = tmp_path / "head.pt", tmp_path / "lips.pt"
    _train(synthetic, "head", head, 3, *ema)
    h = load_checkpoint(head)
    assert h["ema"]["head"]["updates"] == 1  # after step 2
    key = next(k for k in h["last"]["head"] if k.startswith("encoder"))
    assert not torch.equal(h["last"]["head"][key], h["modules"]["head"][key])  # averaged != last
    _train(synthetic, "lips", tmp_path / "lips0.pt", 0, "--init", str(head), *ema)
    l0 = load_checkpoint(tmp_path / "lips0.pt")  # no step: what the lips stage started from
    assert torch.equal(l0["last"]["head"][key], h["last"]["head"][key])
    assert torch.equal(l0["modules"]["head"][key], h["modules"]["head"][key])
    _train(synthetic, "lips", lips, 3, "--init", str(head), *ema)
    lp = load_checkpoint(lips)
    assert lp["ema"]["head"]["updates"] == 3  # + after total steps 4 and 6
    assert lp["meta"]["init"]["steps"] == 3


def test_tiny_checkpoints_keep_no_average_state(tmp_path, synthetic):
    from twinflow.train import load_checkpoint

    _train(synthetic, "head", tmp_path / "head.pt", 2)
    ckpt = load_checkpoint(tmp_path / "head.pt")
    assert "ema" not in ckpt and "last" not in ckpt and math.isfinite(ckpt["steps"])


# --- LPIPS(alex) ------------------------------------------------------------------------------

LPIPS_FIXTURE = REPO / "tests" / "fixtures" / "nerf" / "lpips" / "reference.pt"


@pytest.fixture(scope="module")
def lpips_ref() -> dict:
    return torch.load(LPIPS_FIXTURE, weights_only=True)


def test_lpips_matches_the_lpips_package(lpips_ref):
    """The package's LPIPS v0.1 (AlexNet trunk at reduced widths, random weights): ER-NeRF's
    lips term on [-1, 1] patches and its metric (``normalize=True``) on [0, 1] frames."""
    from twinflow.nerf.lpips import AlexLPIPS, from_state_dict

    model = from_state_dict(lpips_ref["state_dict"])
    assert tuple(model.lin2.model[1].weight.shape) == (1, 16, 1, 1)
    for key in ("scaling_layer.shift", "scaling_layer.scale"):  # the constants, not loaded
        assert torch.equal(AlexLPIPS().state_dict()[key], lpips_ref["state_dict"][key])
    p, f = lpips_ref["patches"], lpips_ref["frames"]
    with torch.no_grad():
        patch = model(p[0] * 2 - 1, p[1] * 2 - 1)
        frame = model(f[1], f[0], normalize=True)
    assert patch.shape == (4, 1, 1, 1)
    assert (patch - lpips_ref["patch_lpips"]).abs().max() <= 1e-6
    assert (frame - lpips_ref["frame_lpips"]).abs().max() <= 1e-6
    model.train()
    assert not model.training and not model.lin0.model[0].training  # dropout stays off


def _write_lpips_weights(lpips_ref, models_dir):
    """The fixture's weights as the user supplies them: torchvision's AlexNet layout and the
    package's linear layers."""
    sd = lpips_ref["state_dict"]
    trunk = {}
    for key, value in sd.items():
        if key.startswith("net.slice"):
            _, _, index, param = key.split(".")
            trunk[f"features.{index}.{param}"] = value
    trunk["classifier.1.weight"] = torch.zeros(2, 2)  # not read
    (models_dir / "lpips").mkdir(parents=True)
    torch.save(trunk, models_dir / "alexnet-owt-7be5be79.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("lin") and "lins" not in k},
               models_dir / "lpips" / "alex.pth")  # fmt: skip


def test_lpips_from_the_registry_and_its_fallback(tmp_path, lpips_ref):
    import shutil

    from twinflow.models import record
    from twinflow.nerf.losses import LPIPSPatchLoss, patch_loss_for, structural_patch_loss
    from twinflow.nerf.lpips import supplied

    registry = tmp_path / "models" / "registry.yaml"
    registry.parent.mkdir()
    shutil.copy(REPO / "models" / "registry.yaml", registry)
    model, why = supplied(registry)
    assert model is None and "alexnet" in why and "not supplied" in why
    loss, used = patch_loss_for("lpips", str(registry))
    assert loss is structural_patch_loss and used.startswith("structural (fallback")
    _write_lpips_weights(lpips_ref, registry.parent)
    model, why = supplied(registry)  # files there, no checksum recorded yet
    assert model is None and "checksum" in why
    record("alexnet", registry), record("lpips-alex", registry)
    loss, used = patch_loss_for("lpips", str(registry))
    assert isinstance(loss, LPIPSPatchLoss) and used == "lpips"
    p = lpips_ref["patches"]
    pred = p[0].clone().requires_grad_(True)
    value = loss(pred, p[1])  # ER-NeRF: mean LPIPS of the [-1, 1] patches
    assert value.item() == pytest.approx(lpips_ref["patch_lpips"].mean().item(), abs=1e-6)
    value.backward()
    assert pred.grad.abs().sum() > 0
    small = loss(p[0][:, :, :20, :24], p[1][:, :, :20, :24])  # padded to 32 as ER-NeRF does
    padded = [torch.nn.functional.pad(x[:, :, :20, :24] * 2 - 1, (4, 4, 6, 6)) for x in p]
    assert small.item() == pytest.approx(loss.lpips(*padded).mean().item(), abs=1e-7)
    torch.save(
        {"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, registry.parent / "lpips" / "alex.pth"
    )
    with pytest.raises(Exception, match="checksum mismatch"):  # a wrong file is an error
        supplied(registry)


# --- metrics: LMD in ER-NeRF's convention, LPIPS of frames --------------------------------------


def test_ernerfs_lmd_uses_the_68_point_mouth_centred():
    """ER-NeRF's LMDMeter: points 48-67 of the 68, each set minus its mean, mean distance."""
    import numpy as np

    from twinflow.nerf.evaluate import mouth_distances, mouth_points
    from twinflow.perception.landmarks import IBUG68

    pts = mouth_points()
    assert pts["ibug_mouth"] == IBUG68[48:68] and len(pts["ibug_mouth"]) == 20
    assert pts["ibug_mouth"][0] == 61 and pts["ibug_mouth"][6] == 291  # the mouth corners
    rng = np.random.default_rng(0)
    real = {"lips": rng.normal(size=(40, 2)), "ibug_mouth": rng.normal(size=(20, 2))}
    moved = {k: v + [5.0, -3.0] for k, v in real.items()}  # same shape, elsewhere
    assert mouth_distances(moved, real)[0] == pytest.approx(0.0, abs=1e-12)
    assert mouth_distances(moved, real)[2] == pytest.approx(0.0, abs=1e-12)
    assert mouth_distances(moved, real)[1] == pytest.approx(np.hypot(5, 3))
    wider = {k: v * 1.5 for k, v in real.items()}
    a = wider["ibug_mouth"] - wider["ibug_mouth"].mean(0)
    b = real["ibug_mouth"] - real["ibug_mouth"].mean(0)
    expected = np.sqrt(((a - b) ** 2).sum(1)).mean(0)  # LMDMeter's formula
    assert mouth_distances(wider, real)[2] == pytest.approx(expected, rel=1e-12)
    assert all(np.isnan(mouth_distances(None, real)))


def test_frame_lpips_is_ernerfs_meter(lpips_ref):
    import numpy as np

    from twinflow.nerf.evaluate import frame_lpips
    from twinflow.nerf.lpips import from_state_dict

    model = from_state_dict(lpips_ref["state_dict"])
    f = (lpips_ref["frames"][:, 0] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    value = frame_lpips(model, f[1], f[0])
    t = torch.as_tensor(np.stack([f[0], f[1]])).permute(0, 3, 1, 2).float() / 255
    direct = model(t[:1], t[1:], normalize=True).item()
    assert value == pytest.approx(direct, abs=1e-7)
    assert value == pytest.approx(lpips_ref["frame_lpips"][0].item(), abs=2e-3)  # 8-bit frames


def test_evaluate_reports_lpips_only_with_its_weights_and_ernerfs_lmd(tmp_path, lpips_ref):
    """nerf_evaluate on an imported ER-NeRF model (its 2 val frames): ``lpips`` among the
    values, baselines and differences when the weights are supplied, absent (and said why)
    otherwise; ``lmd_ernerf`` always (NaN here: the fixture's random frames have no face)."""
    import json
    import shutil

    from twinflow.convert.__main__ import main as convert
    from twinflow.models import record
    from twinflow.nerf.evaluate import main

    fixtures = REPO / "tests" / "fixtures" / "nerf" / "ernerf"
    model = tmp_path / "model"
    assert convert(["ernerf", str(fixtures), "--data", str(fixtures / "data"), "--out",
                    str(model), "--twin", "fixture"]) == 0  # fmt: skip
    registry = tmp_path / "models" / "registry.yaml"
    registry.parent.mkdir()
    shutil.copy(REPO / "models" / "registry.yaml", registry)
    args = ["--twin", "fixture", "--dataset", str(model / "dataset.npz"),
            "--frames", str(model / "frames.mkv"), "--features", str(model / "audio_features.npz"),
            "--head", str(model / "lips.pt"), "--torso", str(model / "torso.pt"),
            "--threads", "1", "--device", "cpu", "--registry", str(registry)]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "without.json")]) == 0
    without = json.loads((tmp_path / "without.json").read_text())
    assert "lpips" not in without["values"] and "lmd_ernerf" in without["values"]
    assert (
        "not reported" in without["measured"]["lpips"] and "alexnet" in without["measured"]["lpips"]
    )
    _write_lpips_weights(lpips_ref, registry.parent)
    record("alexnet", registry), record("lpips-alex", registry)
    assert main([*args, "--out", str(tmp_path / "with.json")]) == 0
    got = json.loads((tmp_path / "with.json").read_text())
    assert got["better"]["lpips"] == "lower" and 0 < got["values"]["lpips"] < 2
    assert "lpips" in got["baselines"]["no_audio"] and "lpips" in got["differences"]
    for key in ("psnr", "psnr_full", "ssim"):
        assert got["values"][key] == without["values"][key]
