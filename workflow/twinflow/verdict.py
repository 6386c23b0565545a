"""Does a model beat its baselines? Verdicts read back from the one ``metrics.json`` shape.

For every metric and every row of ``baselines`` (:func:`twinflow.metrics.write_metrics`):

``better`` / ``worse``  the model's value is on the better / worse side of the baseline's, by the
                        metric's direction (``better``: higher or lower); where ``differences``
                        holds an interval of model - baseline, it must exclude 0 to count.
``no clear difference`` the interval holds 0, or both values are equal.
``not measured``        either value is missing or not a number.

Rows named in ``upper_bounds`` are oracles on the metrics listed there (e.g. the real tracked
mesh driving the warp, or the detections a fit is measured against): their verdicts are computed
the same way but they are not baselines to beat, and :func:`losses` leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BETTER, WORSE, UNCLEAR, MISSING = "better", "worse", "no clear difference", "not measured"


@dataclass(frozen=True)
class Verdict:
    """The model against one baseline on one metric.

    ``difference``: model - baseline; ``ci``: its confidence interval ``(low, high)`` at
    ``level`` when ``metrics.json`` carries one, else ``None``."""

    metric: str
    baseline: str
    direction: str  # "higher" | "lower": which way is better
    model: float
    reference: float
    verdict: str
    difference: float
    ci: tuple[float, float] | None = None
    level: float | None = None
    upper_bound: bool = False


def _number(x: Any) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x


def decide(model: float, reference: float, direction: str, ci=None) -> str:
    """The verdict of one comparison; ``ci`` ``(low, high)`` of model - baseline, if known."""
    if not (math.isfinite(model) and math.isfinite(reference)):
        return MISSING
    if ci is not None:
        low, high = ci
        if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 <= high:
            return UNCLEAR
        diff = low  # the whole interval is on one side of 0
    else:
        diff = model - reference
    if diff == 0:
        return UNCLEAR
    return BETTER if (diff > 0) == (direction == "higher") else WORSE


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    """Every metric against every baseline of one ``metrics.json`` (already parsed), in the
    file's order: metrics, then baselines."""
    out = []
    bounds = data.get("upper_bounds") or {}
    for metric, value in data["values"].items():
        direction = data["better"][metric]
        for name, base in data["baselines"].items():
            model, reference = _number(value), _number(base.get(metric))
            interval = (data.get("differences") or {}).get(metric, {}).get(name)
            ci = tuple(_number(c) for c in interval["ci"]) if interval else None
            difference = _number(interval["mean"]) if interval else model - reference
            out.append(
                Verdict(
                    metric=metric,
                    baseline=name,
                    direction=direction,
                    model=model,
                    reference=reference,
                    verdict=decide(model, reference, direction, ci),
                    difference=difference,
                    ci=ci,
                    level=interval.get("level") if interval else None,
                    upper_bound=metric in bounds.get(name, {}).get("metrics", ()),
                )
            )
    return out


def losses(found: list[Verdict]) -> list[Verdict]:
    """The comparisons a model loses to a naive baseline (upper bounds left out)."""
    return [v for v in found if v.verdict == WORSE and not v.upper_bound]


def describe(v: Verdict) -> str:
    """One line: ``psnr  model 24.05  no_audio 24.10  worse (-0.05)``, with the interval."""
    text = f"{v.verdict} ({v.difference:+.4g}"
    if v.ci is not None:
        level = f"{100 * v.level:.0f}% " if v.level else ""
        text += f", {level}CI [{v.ci[0]:+.4g}, {v.ci[1]:+.4g}]"
    text += ")"
    if v.verdict == MISSING:
        text = MISSING
    role = "upper bound " if v.upper_bound else ""
    return (
        f"{v.metric} ({v.direction} is better): model {v.model:.4g}, "
        f"{role}{v.baseline} {v.reference:.4g}: {text}"
    )
