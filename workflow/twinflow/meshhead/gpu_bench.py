"""Benchmark of the meshhead models at the paper's sizes (random weights).

``python -m twinflow.meshhead.gpu_bench [--model audio2mesh] [--presets vocaset biwi]
[--train-seconds 4] [--infer-seconds 10] [--repeats 5] [--dtype fp32|fp16|bf16] [--device auto]
[--threads 2] [--json out.json]``

``audio2mesh``: FaceFormer in its VOCASET and BIWI setups with a wav2vec2-base-sized encoder
(:mod:`twinflow.meshhead.audio2mesh_bench`): parameters, one autoregressive training step and one
inference; on CUDA steps per second, frames per second and peak memory. A benchmark, not a test;
on a CPU it is a smoke run of the full-size model (one step of each).
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.gpu_bench", description=__doc__)
    p.add_argument("--model", choices=("audio2mesh",), default="audio2mesh")
    p.add_argument("--presets", nargs="+", choices=("vocaset", "biwi"), default=["vocaset", "biwi"])
    p.add_argument("--train-seconds", type=float, default=4.0)
    p.add_argument("--infer-seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CUDA")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="autocast dtype")
    p.add_argument("--json", default=None, help="also write the result here")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.meshhead.audio2mesh_bench import bench

    device = setup_torch(args.threads, args.device)
    dtype = DTYPES[args.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    results = bench(
        args.presets, device, dtype, args.train_seconds, args.infer_seconds, args.repeats
    )
    result = {
        "model": args.model,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).replace("torch.", ""),
        "setups": results,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
