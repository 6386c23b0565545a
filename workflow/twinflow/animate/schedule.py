"""Training length and learning-rate drops: the reference's epochs, or a number of steps.

The reference trains ``epochs`` epochs; an epoch is one pass over its training set repeated
``num_repeats`` times (``DatasetRepeater``), in batches with the last incomplete one dropped. Its
training set has one item per identity (``id_sampling``), each item a random pair of one of that
identity's videos; twinflow's items are the training videos. The learning rate drops tenfold
after each epoch of ``milestones`` (``MultiStepLR`` stepped per epoch), i.e. at step
``milestone * steps_per_epoch``.

With an explicit number of ``steps`` the drops come at the same fractions
``milestone / epochs`` of the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinflow.errors import InputError


@dataclass(frozen=True)
class Schedule:
    """``steps`` optimisation steps, the learning rate /10 after each step of ``drops``;
    ``steps_per_epoch`` is None for an explicit number of steps."""

    steps: int
    drops: list[int]
    steps_per_epoch: int | None

    def describe(self) -> str:
        if self.steps_per_epoch is None:
            return f"{self.steps} steps, lr /10 after steps {self.drops}"
        return (
            f"{self.steps} steps = {self.steps // self.steps_per_epoch} epochs of "
            f"{self.steps_per_epoch} steps, lr /10 after steps {self.drops}"
        )


def make_schedule(
    *,
    steps: int | None,
    epochs: int,
    num_repeats: int,
    milestones: tuple[int, ...],
    batch_size: int,
    num_videos: int,
) -> Schedule:
    """The schedule of the module docstring; ``steps`` (when given) wins over the epochs."""
    if steps:
        if epochs <= 0:
            return Schedule(int(steps), [], None)
        drops = sorted({max(1, round(m / epochs * steps)) for m in milestones})
        return Schedule(int(steps), drops, None)
    per_epoch = (num_videos * num_repeats) // batch_size
    if per_epoch < 1:
        raise InputError(
            f"an epoch of {num_videos} video(s) x {num_repeats} repeats holds no full batch of "
            f"{batch_size}: set animate: steps (or a smaller batch_size)"
        )
    return Schedule(epochs * per_epoch, [m * per_epoch for m in milestones], per_epoch)
