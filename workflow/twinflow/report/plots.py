"""The report's charts, drawn with matplotlib (Agg backend, no display) as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from twinflow.report.collect import Curve, Job  # noqa: E402


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=96, bbox_inches="tight")
    plt.close(fig)
    return out


def training_curve(curve: Curve, out: str | Path) -> Path:
    """Every logged loss of one training job against its step (log scale where all are
    positive); a dashed red line where a wall-clock budget stopped it early."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    names = [k for k in (curve.history[0] if curve.history else {}) if k != "step"]
    steps = [row["step"] for row in curve.history]
    positive = True
    for name in names:
        ys = [row.get(name, float("nan")) for row in curve.history]
        positive &= all(y > 0 for y in ys)
        ax.plot(steps, ys, marker="." if len(steps) < 30 else None, label=name)
    if positive and names:
        ax.set_yscale("log")
    if curve.stopped_early and steps:
        budget = f"{curve.max_minutes:g} min budget" if curve.max_minutes else "budget"
        ax.axvline(steps[-1], color="red", linestyle="--", label=f"stopped early ({budget})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{curve.desc or curve.model.name}: {curve.model}", fontsize=9)
    if names:
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no losses logged", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def timing_chart(jobs: list[Job], out: str | Path, title: str = "") -> Path:
    """Wall-clock seconds per rule (all its jobs together), slowest first, one bar per rule,
    labelled with the number of jobs and the largest peak memory (max RSS) among them."""
    per_rule: dict[str, list[Job]] = {}
    for j in jobs:
        per_rule.setdefault(j.rule, []).append(j)
    rows = sorted(per_rule.items(), key=lambda kv: -sum(j.seconds for j in kv[1]))
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.28 * max(1, len(rows))))
    names = [r for r, _ in rows][::-1]
    secs = [sum(j.seconds for j in js) for _, js in rows][::-1]
    ax.barh(names, secs, color="#4c72b0")
    for y, (_, js) in enumerate(rows[::-1]):
        rss = [j.max_rss_mb for j in js if j.max_rss_mb is not None]
        mem = f", {max(rss):.0f} MB" if rss else ""
        ax.text(secs[y], y, f" {secs[y]:.1f} s ({len(js)} jobs{mem})", va="center", fontsize=7)
    ax.set_xlabel("seconds (sum over the rule's jobs)")
    total = sum(j.seconds for j in jobs)
    ax.set_title(f"{title}total {total:.1f} s over {len(jobs)} jobs", fontsize=9)
    ax.set_xlim(0, max(secs or [1]) * 1.45)
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, out)
