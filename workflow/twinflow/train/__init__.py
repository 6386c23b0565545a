"""The one training loop every model stage uses: seeds, progress bar, resumable atomic checkpoints."""

from twinflow.train.checkpoint import load_checkpoint, save_checkpoint
from twinflow.train.loop import LoopConfig, TrainResult, run_training, seed_everything

__all__ = [
    "LoopConfig",
    "TrainResult",
    "load_checkpoint",
    "run_training",
    "save_checkpoint",
    "seed_everything",
]
