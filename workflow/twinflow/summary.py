"""Print what a run produced and where: per twin, per render, with sizes and metrics.

``python -m twinflow.summary [--config config/config.yaml] [--results results]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from twinflow.sheets import load_sheets


def _size(path: Path) -> str:
    n = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
    n = n or (path.stat().st_size if path.is_file() else 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def describe_video(path: Path) -> str:
    from twinflow.media.video import probe_video

    try:
        info = probe_video(path)
    except Exception as err:  # a summary never fails on one bad file
        return f"unreadable ({err})"
    audio = ", audio" if info.has_audio else ""
    return f"{info.n_frames} frames, {info.width}x{info.height}, {info.fps:g} fps{audio}"


def summarise(config_path: Path, results: Path) -> list[str]:
    config = yaml.safe_load(config_path.read_text())
    sheets = load_sheets(config["twins"], config["renders"])
    lines = []
    for twin in sheets.twins:
        folder = results / twin
        lines.append(f"twin {twin}: {folder}/")
        if not folder.exists():
            lines.append("    (nothing produced yet)")
            continue
        for stage in sorted(p for p in folder.iterdir() if p.is_dir()):
            files = sorted(p for p in stage.iterdir() if not p.name.startswith("."))
            lines.append(f"    {stage.name + '/':14s} {len(files)} items, {_size(stage)}")
            metrics = stage / "metrics.json"
            if metrics.exists():
                data = json.loads(metrics.read_text())
                values = ", ".join(f"{k}={v:.4g}" for k, v in data["values"].items())
                lines.append(f"    {'':14s} metrics: {values}")
                for name, base in data["baselines"].items():
                    vals = ", ".join(f"{k}={v:.4g}" for k, v in base.items())
                    lines.append(f"    {'':14s} baseline {name}: {vals}")
    lines.append("renders:")
    for render in sheets.renders.values():
        out = results / "renders" / f"{render.render_id}.mp4"
        state = describe_video(out) if out.exists() else "not produced (pipeline not run yet)"
        lines.append(f"    {render.render_id:18s} {render.pipeline:9s} {out}: {state}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(prog="twinflow.summary", description=__doc__)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", default="results")
    args = p.parse_args()
    print("\n".join(summarise(Path(args.config), Path(args.results))))


if __name__ == "__main__":
    main()
