"""Benchmark of the meshhead models at the paper's sizes (random weights).

``python -m twinflow.meshhead.gpu_bench [--model audio2mesh warp] [--presets vocaset biwi]
[--train-seconds 4] [--infer-seconds 10] [--configs vox-256 vox-256-spade] [--batch 1]
[--render-batch 8] [--repeats 5] [--dtype fp32|fp16|bf16] [--device auto] [--threads 2]
[--json out.json]``

``audio2mesh``: FaceFormer in its VOCASET and BIWI setups with a wav2vec2-base-sized encoder
(:mod:`twinflow.meshhead.audio2mesh_bench`): parameters, one autoregressive training step and one
inference. ``warp``: face-vid2vid at the reference's vox-256 sizes
(:mod:`twinflow.meshhead.warp_bench`): parameters, one training step, rendering. On CUDA: steps
per second, frames per second and peak memory, under autocast with ``--dtype``. A benchmark, not
a test; on a CPU it is a smoke run of the full-size models (one step of each).
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.meshhead.common import add_common, setup_torch

log = logging.getLogger("twinflow.meshhead.gpu_bench")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODELS = ("audio2mesh", "warp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.gpu_bench", description=__doc__)
    p.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS))
    a = p.add_argument_group("audio2mesh")
    a.add_argument("--presets", nargs="+", choices=("vocaset", "biwi"), default=["vocaset", "biwi"])
    a.add_argument("--train-seconds", type=float, default=4.0, help="audio per training step")
    a.add_argument("--infer-seconds", type=float, default=10.0, help="audio per inference")
    w = p.add_argument_group("warp")
    w.add_argument("--configs", nargs="+", default=["vox-256", "vox-256-spade"])
    w.add_argument("--batch", type=int, default=1, help="training batch (the reference: 32)")
    w.add_argument("--render-batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CUDA")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="autocast dtype")
    p.add_argument("--json", default=None, help="also write the result here")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    dtype = DTYPES[args.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).replace("torch.", ""),
    }
    if "audio2mesh" in args.model:
        from twinflow.meshhead import audio2mesh_bench

        result["audio2mesh"] = audio2mesh_bench.bench(
            args.presets, device, dtype, args.train_seconds, args.infer_seconds, args.repeats
        )
    if "warp" in args.model:
        from twinflow.meshhead import warp_bench

        result["warp"] = warp_bench.bench(
            args.configs, device, dtype, args.batch, args.render_batch, args.repeats
        )
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
