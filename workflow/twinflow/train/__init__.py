"""The one training loop every model stage uses: seeds, progress bar, resumable atomic checkpoints.

Beside it, what several pipelines' trainings share: :mod:`.augment` (the first-order-motion
family's pair augmentation: flips, resize, colour jitter), :mod:`.vgg` (VGG-19 features for
perceptual losses, user-supplied weights), :mod:`.ema` (moving average of the weights).
"""

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
