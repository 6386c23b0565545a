"""Stage ``meshhead_train_audio2mesh``: train the FaceFormer model on a mesh dataset.

``python -m twinflow.meshhead.train_audio2mesh --twin ID --dataset dataset.npz --preset tiny
[--set field=value ...] [--steps N] [--max-minutes M] [--save-every N] [--threads 2]
[--pretrained audio2mesh.pt [--finetune] [--style NAME]] [--registry models/registry.yaml]
--out audio2mesh.pt``

Each step takes ``batch`` random windows of ``seq_len`` frames (a whole sentence when it is
shorter) from the training split. ``train_mode="scheduled"`` (``tiny``) runs a teacher-forced
pass without gradients, replaces a growing fraction (up to ``sched_sampling``) of the input
frames by those predictions (scheduled sampling, against exposure bias when the model later feeds
on its own outputs), and trains on a second pass: MSE of the normalised motion, of its
frame-to-frame velocity, and of the mouth vertices (metres, over their std).
``train_mode="autoregressive"`` (the FaceFormer presets) trains as FaceFormer's ``main.py``:
each frame is decoded from the model's own previous outputs, gradients flow through the whole
rollout, MSE of the vertex offsets (dropout masks are drawn once per frame, where FaceFormer
re-runs the sequence with new ones at every frame). A ``wav2vec2_finetune`` model starts from
the registry's ``wav2vec2-base-960h`` (as FaceFormer's ``from_pretrained``) and takes each
window's raw audio, normalised per window (FaceFormer: per sentence).

``--pretrained``: a converted FaceFormer (``python -m twinflow.convert faceformer``) or another
trained ``audio2mesh.pt``. Alone it is checked against the dataset (same vertex count) and
written to ``--out`` as the twin's model (no training); with ``--finetune`` training starts from
its weights, config (``--set`` changes training fields) and output basis. ``--style``: the
model's speaker whose style the dataset's unknown speakers get (default: its first).
Training resumes from ``<out>.resume.pt`` after a kill (:func:`twinflow.train.run_training`).
"""

from __future__ import annotations

import argparse
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.meshhead.audio import WAV2VEC2, audio_features, require_transformers
from twinflow.meshhead.audio2mesh import Audio2Mesh, MotionBasis, generate, rollout
from twinflow.meshhead.common import add_common, audio_slice, load_npz, setup_torch, split_ranges
from twinflow.meshhead.presets import AUDIO2MESH_NAMES, Audio2MeshConfig, audio2mesh_preset
from twinflow.meshhead.wav2vec2 import normalise_wave
from twinflow.presets import parse_overrides, preset_dict, resolve_preset
from twinflow.train import (
    LoopConfig,
    load_checkpoint,
    run_training,
    save_checkpoint,
    seed_everything,
)
from twinflow.train.ema import ParameterEMA
from twinflow.train.loop import resume_path

log = logging.getLogger("twinflow.meshhead.train_audio2mesh")
MARGIN = 24  # audio frames of context either side of a training window (> encoder reach)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.train_audio2mesh", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--preset", choices=AUDIO2MESH_NAMES, default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--pretrained", help="start from (or, without --finetune, use) this model")
    p.add_argument("--finetune", action="store_true", help="train from --pretrained")
    p.add_argument("--style", help="--pretrained's speaker for the dataset's unknown speakers")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def sequence_features(dataset: dict, cfg: Audio2MeshConfig, registry) -> list[np.ndarray]:
    """Audio features ``(2 T_s, F)`` of every sequence of the dataset; the raw audio of each
    sequence for ``wav2vec2_finetune``."""
    fps, sr = float(dataset["fps"]), int(dataset["sample_rate"])
    starts = dataset["seq_start"]
    feats = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        wave = audio_slice(dataset, int(a), int(b))
        if cfg.audio_encoder == "wav2vec2_finetune":
            feats.append(wave.astype(np.float32))
            continue
        f = audio_features(wave, sr, fps, cfg.audio_encoder, cfg.n_mels, registry)
        f = f[: 2 * (b - a)]
        feats.append(np.pad(f, ((0, 2 * (b - a) - len(f)), (0, 0))))
    return feats


def fit_val_ranges(dataset: dict, val_fraction: float, blocks: int = 3) -> tuple[list, list]:
    """Training ranges with ``val_fraction`` of their frames held out for model selection, as
    ``blocks`` contiguous blocks spread over each range (one short clip at its end would make
    the choice hinge on a few seconds of one expression)."""
    fit, val = [], []
    for a, b in split_ranges(dataset, 0):
        n = b - a
        k = blocks if n >= 60 * blocks else 1
        length = int(round(val_fraction * n / k)) if n >= 20 else 0
        if not length:
            fit.append((a, b))
            continue
        starts = [a + int(round((i + 0.5) * n / k - length / 2)) for i in range(k)]
        if k == 1:
            starts = [b - length]
        cursor = a
        for s in starts:
            if s > cursor:
                fit.append((cursor, s))
            val.append((s, s + length))
            cursor = s + length
        if cursor < b:
            fit.append((cursor, b))
    return fit, val


def encode(model: Audio2Mesh, audio: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, int]:
    """Memory of ``n_frames`` frames from a window's audio input (features with ``MARGIN`` each
    side, or raw audio), and the frames it covers (a raw-audio encoder may give fewer)."""
    if model.raw_audio:
        memory = model.encode(audio, n_frames)
        return memory, min(n_frames, memory.shape[1] // model.cfg.audio_per_frame)
    return model.encode(audio)[:, MARGIN:-MARGIN], n_frames


class Windows:
    """Training windows (motion targets, padded audio features or raw audio, offsets, speakers)
    and the validation clips. ``speaker_index`` maps the dataset's speakers to the model's
    one-hot positions (default: the same)."""

    def __init__(
        self,
        dataset,
        feats,
        z,
        stats,
        cfg: Audio2MeshConfig,
        device,
        val_fraction,
        n_speakers: int | None = None,
        speaker_index: list[int] | None = None,
    ):
        self.cfg = cfg
        self.device = device
        self.ranges, self.val = fit_val_ranges(dataset, val_fraction)
        self.seq_start = dataset["seq_start"]
        self.seq_speaker = dataset["seq_speaker"]
        self.n_speakers = n_speakers or len(dataset["speakers"])
        self.speaker_index = speaker_index or list(range(len(dataset["speakers"])))
        self.raw = cfg.audio_encoder == "wav2vec2_finetune"
        self.samples_per_frame = int(dataset["sample_rate"]) / float(dataset["fps"])
        mean, std = stats
        if self.raw:
            self.feats = [torch.from_numpy(f) for f in feats]
        else:
            self.feats = [torch.from_numpy((f - mean) / std) for f in feats]
        self.z = torch.from_numpy(z)
        weights = np.array([b - a for a, b in self.ranges], float)
        self.p = weights / weights.sum()

    def window(self, s: int, length: int):
        """Features (with MARGIN each side) or raw audio (normalised), offset in its sequence,
        one-hot style."""
        seq = int(np.searchsorted(self.seq_start, s, side="right") - 1)
        local = s - int(self.seq_start[seq])
        feats = self.feats[seq]
        style = torch.zeros(self.n_speakers)
        style[self.speaker_index[int(self.seq_speaker[seq])]] = 1
        if self.raw:
            lo = int(round(local * self.samples_per_frame))
            n = int(round(length * self.samples_per_frame))
            wave = F.pad(feats[lo : lo + n], (0, max(0, lo + n - len(feats))))
            return torch.from_numpy(normalise_wave(wave.numpy())), local, style
        lo, hi = 2 * local - MARGIN, 2 * (local + length) + MARGIN
        f = feats[max(0, lo) : min(len(feats), hi)]
        f = F.pad(f.T, (max(0, -lo), max(0, hi - len(feats)))).T
        return f, local, style

    def sample(self):
        # numpy's global generator: run_training saves and restores its state on resume
        picks = np.random.choice(len(self.ranges), size=self.cfg.batch, p=self.p)
        length = min(self.cfg.seq_len, min(self.ranges[i][1] - self.ranges[i][0] for i in picks))
        zs, fs, offs, styles = [], [], [], []
        for i in picks:
            a, b = self.ranges[i]
            s = int(np.random.randint(a, b - length + 1))
            f, local, style = self.window(s, length)
            fs.append(f)
            zs.append(self.z[s : s + length])
            offs.append(local)
            styles.append(style)
        dev = self.device
        return (
            torch.stack(zs).to(dev),
            torch.stack(fs).to(dev),
            torch.tensor(offs, device=dev),
            torch.stack(styles).to(dev),
        )

    @torch.no_grad()
    def validate(self, model: Audio2Mesh, basis: MotionBasis, mouth, disp, scales=(1.0,)):
        """Mouth LMD (mm) of windowed autoregressive decoding on the validation clips, for each
        output scale in ``scales``."""
        model.eval()
        errs = np.zeros(len(scales))
        count = 0
        for a, b in self.val:
            f, _, style = self.window(a, b - a)
            memory, n = encode(model, f[None].to(self.device), b - a)
            z = generate(
                model, memory, n, style[None].to(self.device), self.cfg.window, self.cfg.history
            )
            pred = basis.decode(z.cpu().numpy())[:, mouth]
            for j, scale in enumerate(scales):
                errs[j] += (
                    np.linalg.norm(scale * pred - disp[a : a + n, mouth], axis=-1).sum(0).mean()
                    * 1000
                )
            count += n
        model.train()
        return errs / max(1, count)


def load_pretrained(args, dataset: dict) -> dict:
    """The ``--pretrained`` checkpoint, checked against the dataset: its config (``--set``
    applied), output basis, speakers and the dataset speakers' one-hot positions."""
    ckpt = load_checkpoint(args.pretrained, expect={"stage": "meshhead.audio2mesh"})
    meta, extra = ckpt["meta"], ckpt["extra"]
    n_vertices = int(dataset["disp"].shape[1])
    if int(meta["n_vertices"]) != n_vertices:
        raise InputError(
            f"the pretrained model predicts {meta['n_vertices']} vertices ({meta['topology']}), "
            f"the twin '{args.twin}' dataset has {n_vertices} ({dataset['topology']}): use "
            "a dataset of the model's topology (e.g. meshhead topology flame with VOCASET-format "
            "data for a VOCASET FaceFormer)",
            path=args.pretrained,
        )
    if abs(float(meta["fps"]) - float(dataset["fps"])) > 1e-6 and args.finetune:
        raise InputError(
            f"the pretrained model runs at {meta['fps']} fps, the dataset at {dataset['fps']} fps",
            path=args.pretrained,
        )
    speakers = list(extra["speakers"])
    default = args.style or speakers[0]
    if default not in speakers:
        raise InputError(
            f"--style '{default}' is not a speaker of the model ({', '.join(speakers)})",
            path=args.pretrained,
        )
    index = [speakers.index(str(s)) if str(s) in speakers else speakers.index(default)
             for s in dataset["speakers"]]  # fmt: skip
    base = Audio2MeshConfig(**meta["config"])
    cfg = resolve_preset({"pretrained": base}, "pretrained", parse_overrides(args.set))
    return {
        "ckpt": ckpt,
        "cfg": cfg,
        "basis": MotionBasis.from_state(extra["basis"]),
        "speakers": speakers,
        "default_speaker": default,
        "speaker_index": index,
    }


def use_pretrained(args, dataset: dict, pre: dict) -> None:
    """Write ``--pretrained`` as the twin's model, unchanged but for its record of the twin."""
    ckpt = pre["ckpt"]
    ckpt["meta"] = {**ckpt["meta"], "twin": args.twin, "pretrained": str(args.pretrained)}
    ckpt["extra"] = {**ckpt["extra"], "default_speaker": pre["default_speaker"]}
    if not len(ckpt["extra"].get("mouth_index", [])):
        ckpt["extra"]["mouth_index"] = dataset["mouth_index"]
    save_checkpoint(args.out, {k: v for k, v in ckpt.items() if k != "format"})
    log.info("%s used as is for twin %s (no training)", args.pretrained, args.twin)


def wav2vec2_start(registry) -> tuple[dict, dict]:
    """The registry's wav2vec2-base-960h: FaceFormer's starting point for its audio encoder."""
    from twinflow.models import resolve

    path = resolve(WAV2VEC2, registry)
    transformers = require_transformers()
    w2v = transformers.Wav2Vec2Model.from_pretrained(str(path))
    return w2v.config.to_dict(), w2v.state_dict()


def build_optimiser(model: Audio2Mesh, cfg: Audio2MeshConfig, steps: int):
    """AdamW or Adam (FaceFormer: Adam, no weight decay) on the trainable parameters (a
    wav2vec2's CNN stays frozen), and the cosine (warm-up, to 0.1 lr) or constant schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, min(100, steps // 20))

    def lr_at(i):
        if cfg.lr_schedule == "constant":
            return 1.0
        if i < warmup:
            return (i + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (
            1 + math.cos(math.pi * min(1.0, (i - warmup) / max(1, steps - warmup)))
        )

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    dataset = load_npz(args.dataset, "mesh dataset")
    pre = load_pretrained(args, dataset) if args.pretrained else None
    if pre is not None and not args.finetune:
        use_pretrained(args, dataset, pre)
        return
    cfg = pre["cfg"] if pre else audio2mesh_preset(args.preset, parse_overrides(args.set))
    steps = args.steps or cfg.steps
    train = dataset["split"] == 0
    disp = dataset["disp"]
    basis = pre["basis"] if pre else MotionBasis.fit(disp[train], cfg.pca_components, cfg.normalise)
    z = basis.encode(disp)
    feats = sequence_features(dataset, cfg, args.registry)
    raw = cfg.audio_encoder == "wav2vec2_finetune"
    if pre and "feat_mean" in pre["ckpt"]["extra"]:
        stats = (pre["ckpt"]["extra"]["feat_mean"], pre["ckpt"]["extra"]["feat_std"])
    elif raw:
        stats = (np.zeros(1, np.float32), np.ones(1, np.float32))
    else:
        train_feats = np.concatenate([f.reshape(-1, 2, f.shape[1])[train[a:b]].reshape(-1, f.shape[1])
                                      for f, a, b in zip(feats, dataset["seq_start"][:-1], dataset["seq_start"][1:], strict=True)])  # fmt: skip
        stats = (
            train_feats.mean(0).astype(np.float32),
            (train_feats.std(0) + 1e-5).astype(np.float32),
        )
    speakers = pre["speakers"] if pre else [str(s) for s in dataset["speakers"]]
    windows = Windows(
        dataset, feats, z, stats, cfg, device, cfg.val_fraction,
        n_speakers=len(speakers), speaker_index=pre["speaker_index"] if pre else None,
    )  # fmt: skip
    fps = float(dataset["fps"])
    w2v_config, w2v_state = None, None
    if pre:
        w2v_config = pre["ckpt"]["meta"].get("wav2vec2_config")
    elif raw:
        w2v_config, w2v_state = wav2vec2_start(args.registry)
    feat_dim = 0 if raw else feats[0].shape[1]
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    model = Audio2Mesh(
        cfg, basis.n_out, len(speakers), feat_dim, wav2vec2_config=w2v_config, fps=fps
    ).to(device)
    if pre:
        model.load_state_dict(pre["ckpt"]["modules"]["model"])
    elif w2v_state is not None:
        model.audio.wav2vec2.load_state_dict(w2v_state)
    opt, sched = build_optimiser(model, cfg, steps)
    mouth = dataset["mouth_index"].astype(int)
    mouth_rms = float(np.sqrt((disp[train][:, mouth] ** 2).sum(-1).mean()) + 1e-9)
    log.info(
        "%d training frames (%d for validation), %d test; %s model: %d parameters, %d outputs (%s)",
        int(train.sum()),
        sum(b - a for a, b in windows.val),
        int((~train).sum()),
        f"pretrained {args.pretrained}" if pre else args.preset,
        sum(p.numel() for p in model.parameters()),
        basis.n_out,
        f"PCA {cfg.pca_components}" if cfg.pca_components else "full displacement",
    )
    # model selection survives a kill: the best validation state is part of the resumable state
    extra = {
        "basis": basis.state(),
        "feat_mean": stats[0],
        "feat_std": stats[1],
        "speakers": speakers,
        "mouth_index": mouth,
        "template": dataset["template"],
        "edges": dataset["edges"],
        "best": {"val_mouth_lmd_mm": float("inf"), "step": 0, "state": None},
        "ema": None,
        "output_scale": 1.0,
    }
    if pre:
        extra["default_speaker"] = pre["default_speaker"]
    # the moving average of the weights is validated and kept instead of the raw weights, which
    # on a few minutes of speech jump from batch to batch; it is part of the resumable state
    ema = ParameterEMA(model, cfg.ema_decay) if cfg.ema_decay else None
    state_file = resume_path(args.out)
    if state_file.exists():
        saved = load_checkpoint(state_file, map_location=device)["extra"]
        extra["best"] = saved.get("best", extra["best"])
        if ema is not None and saved.get("ema") is not None:
            ema.load_state_dict(saved["ema"])

    def step(i: int) -> dict[str, float]:
        model.train()
        z_gt, f, off, style = windows.sample()
        if cfg.audio_augment and not raw:
            f = f + cfg.audio_augment * (
                torch.randn(f.shape[0], 1, 1, device=device) + 0.5 * torch.randn_like(f)
            )
        memory, n = encode(model, f, z_gt.shape[1])
        z_gt = z_gt[:, :n]
        if cfg.train_mode == "autoregressive":
            pred = rollout(model, memory[:, : cfg.audio_per_frame * n], n, style, off)
        else:
            noise = cfg.input_noise * torch.randn_like(z_gt)
            p_ss = cfg.sched_sampling * min(1.0, i / max(1.0, 0.5 * steps))
            prev = z_gt
            if p_ss > 0:
                with torch.no_grad():
                    first = model(memory.detach(), z_gt + noise, style, off)
                replace = torch.rand(z_gt.shape[:2], device=device)[..., None] < p_ss
                prev = torch.where(replace, first, z_gt)
            pred = model(memory, prev + noise, style, off)
        loss_z = F.mse_loss(pred, z_gt)
        losses = {"z": loss_z}
        if cfg.velocity_weight:
            loss_v = F.mse_loss(pred[:, 1:] - pred[:, :-1], z_gt[:, 1:] - z_gt[:, :-1])
            losses["vel"] = cfg.velocity_weight * loss_v
        if cfg.mouth_weight:
            pm = basis.decode_torch(pred, mouth)
            gm = basis.decode_torch(z_gt, mouth)
            dist = torch.sqrt(((pm - gm) ** 2).sum(-1) + 1e-12).mean()
            losses["mouth"] = cfg.mouth_weight * dist / mouth_rms
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
            extra["ema"] = ema.state_dict()
        out = {k: v.item() for k, v in losses.items()}
        if windows.val and ((i + 1) % cfg.eval_every == 0 or i + 1 == steps):
            weights = ema.state_dict_for(model) if ema is not None else model.state_dict()
            raw_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(weights)
            val = float(windows.validate(model, basis, mouth, disp)[0])
            out["val_mouth_mm"] = val
            if val < extra["best"]["val_mouth_lmd_mm"]:
                state = {k: v.detach().cpu().clone() for k, v in weights.items()}
                extra["best"] = {"val_mouth_lmd_mm": val, "step": i + 1, "state": state}
            model.load_state_dict(raw_weights)
        return out

    meta = {
        "stage": "meshhead.audio2mesh",
        "topology": str(dataset["topology"]),
        "audio_encoder": cfg.audio_encoder,
        "n_vertices": int(disp.shape[1]),
        "fps": fps,
        "sample_rate": int(dataset["sample_rate"]),
        "preset": "pretrained" if pre else args.preset,
        "config": preset_dict(cfg),
        "n_out": basis.n_out,
        "feat_dim": int(feat_dim),
        "wav2vec2_config": w2v_config,
        "twin": args.twin,
    }
    if pre:
        meta["pretrained"] = str(args.pretrained)
    result = run_training(
        {"model": model},
        {"opt": opt},
        step,
        LoopConfig(
            steps=steps,
            save_every=args.save_every,
            seed=args.seed,
            max_minutes=args.max_minutes,
            desc="audio2mesh",
        ),
        args.out,
        meta,
        schedulers={"sched": sched},
        extra_state=extra,
    )
    finish(args.out, model, windows, basis, mouth, disp, extra)
    log.info(
        "trained %d steps (resumed from %d) in %.0f s%s",
        result.steps_done,
        result.resumed_from,
        result.seconds,
        " (stopped early: time budget)" if result.stopped_early else "",
    )


def finish(path, model, windows, basis, mouth, disp, extra) -> None:
    """Keep the weights of the best validation step and fit the output scale on validation:
    predictions are ``scale x`` the decoded displacement (0 would be the static template)."""
    ckpt = load_checkpoint(path)
    best = extra["best"]
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        ckpt["modules"]["model"] = best["state"]
    scales = np.round(np.arange(0.0, 2.01, 0.1), 2)
    if windows.val:
        errs = windows.validate(model, basis, mouth, disp, scales)
        scale = float(scales[int(np.argmin(errs))])
        log.info(
            "best validation step %d: mouth LMD %.3f mm at output scale 1; %.3f mm at scale %.1f "
            "(scale 0 = static template: %.3f mm)",
            best["step"], errs[list(scales).index(1.0)], errs.min(), scale, errs[0],
        )  # fmt: skip
    else:
        scale = 1.0
    ckpt["extra"] = {
        **{k: v for k, v in ckpt["extra"].items() if k != "ema"},
        "output_scale": scale,
        "best": {k: v for k, v in best.items() if k != "state"},
    }
    ckpt["meta"] = {**ckpt["meta"], "selected_step": int(best["step"]), "output_scale": scale}
    save_checkpoint(path, {k: v for k, v in ckpt.items() if k != "format"})


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
