"""Model-size presets: every pipeline defines ``tiny`` and ``paper`` configs as dataclasses.

``tiny`` trains and runs on a CPU in tests and the demo; ``paper`` has the published sizes and
hyper-parameters for a GPU. A run picks one by name (``config.yaml: preset``) and may override
single fields (``config.yaml: <pipeline>: overrides: {field: value}``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

T = TypeVar("T")


def resolve_preset(presets: dict[str, T], name: str, overrides: dict[str, Any] | None = None) -> T:
    """The preset ``name`` with ``overrides`` applied; unknown names or fields raise ValueError.

    Override values are converted to the field's current type (so ``"1e-3"`` from a command line
    becomes a float).
    """
    if name not in presets:
        raise ValueError(f"unknown preset '{name}' (choose from {', '.join(presets)})")
    base = presets[name]
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(
            f"unknown preset field(s) {sorted(unknown)} for {type(base).__name__}; "
            f"known: {sorted(fields)}"
        )
    typed = {}
    for key, value in overrides.items():
        current = getattr(base, key)
        if isinstance(value, str) and not isinstance(current, str):
            value = (
                json.loads(value)
                if current is None or isinstance(current, (list, tuple, dict, bool))
                else type(current)(value)
            )
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        typed[key] = value
    return dataclasses.replace(base, **typed)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=1e-3", "steps=10"]`` (command-line ``--set`` values) -> dict of strings."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override '{item}' is not key=value")
        out[key.strip()] = value.strip()
    return out


def preset_dict(cfg: Any) -> dict[str, Any]:
    """A preset as a JSON-able dict (stored inside checkpoints and metrics)."""
    return dataclasses.asdict(cfg)
