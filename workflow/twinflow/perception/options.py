"""Command-line flags from the config dataclasses, so rules pass config sections verbatim.

A field ``hand_gate`` of the ``body`` section becomes ``--body-hand-gate``; booleans become
``--body-hands`` / ``--no-body-hands``. :func:`flags` builds the same flags from a config
mapping (used by ``workflow/rules/perception.smk``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str) -> None:
    group = parser.add_argument_group(f"{prefix} settings ({cls.__name__})")
    for field in dataclasses.fields(cls):
        flag = f"--{prefix}-{field.name.replace('_', '-')}"
        dest = f"{prefix}_{field.name}"
        if isinstance(field.default, bool):
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=field.default
            )
        else:
            group.add_argument(flag, dest=dest, type=type(field.default), default=field.default)


def dataclass_from_args(cls: type[T], args: argparse.Namespace, prefix: str) -> T:
    return cls(**{f.name: getattr(args, f"{prefix}_{f.name}") for f in dataclasses.fields(cls)})


def flags(prefix: str, section: Mapping[str, Any]) -> str:
    """``{"hand_gate": 0.3, "hands": False}`` -> ``"--body-hand-gate 0.3 --no-body-hands"``."""
    out = []
    for key, value in section.items():
        name = f"{prefix}-{key.replace('_', '-')}"
        if isinstance(value, bool):
            out.append(f"--{name}" if value else f"--no-{name}")
        else:
            out.append(f"--{name} {value}")
    return " ".join(out)
