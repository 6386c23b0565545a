"""Checkpoint conversion: a reference system's weights -> a twinflow checkpoint.

``python -m twinflow.convert KIND SOURCE --out OUT [options]``

``KIND`` names the reference format; each kind is a module ``twinflow.convert.<kind>`` with
``build_parser(parser)`` (adds its options to the common ones) and ``convert(args)`` (writes
``args.out`` with :func:`twinflow.train.save_checkpoint`, or a folder). The kinds present are
listed by ``python -m twinflow.convert --help``. Conversion never downloads anything: ``SOURCE`` is
a file the user has.

What every kind shares lives here: reading a reference checkpoint (:func:`load_reference`, a
clear error for a missing, truncated or foreign file), renaming keys by rules
(:func:`rename_keys`) and checking the result against the twinflow module it is for
(:func:`check_state_dict`: every missing, unexpected or mis-shaped key is named at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from twinflow.errors import TwinflowError


class ConversionError(TwinflowError):
    """A source checkpoint is missing, unreadable, or does not fit the model it should become."""


def load_reference(path: str | Path, *, key: str | None = None) -> Any:
    """``torch.load`` a reference checkpoint on the CPU; ``key`` selects an entry of the saved
    dict (e.g. MRAA's ``"generator"``). A missing, truncated or non-torch file, or a missing
    ``key``, is a :class:`ConversionError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError("source checkpoint not found", path=path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a bad file
        raise ConversionError(
            f"cannot be read as a torch checkpoint ({type(err).__name__}: {err}); "
            "is the file complete?",
            path=path,
        ) from None
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            have = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ConversionError(f"has no '{key}' entry (it has {have})", path=path)
        data = data[key]
    return data


def rename_keys(
    state: Mapping[str, torch.Tensor],
    rules: Iterable[tuple[str, str]],
    drop: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Apply regex ``rules`` ``(pattern, replacement)`` in order to every key (each rule on the
    result of the previous ones); keys matching a ``drop`` pattern (full match) are left out."""
    rules = [(re.compile(p), r) for p, r in rules]
    drop = [re.compile(p) for p in drop]
    out = {}
    for name, value in state.items():
        if any(d.fullmatch(name) for d in drop):
            continue
        for pattern, repl in rules:
            name = pattern.sub(repl, name)
        out[name] = value
    return out


def check_state_dict(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str | Path,
    what: str,
) -> None:
    """Raise a :class:`ConversionError` naming ``source`` when ``state`` does not load into
    ``module`` exactly: missing keys, unexpected keys and shape mismatches, all listed (up to 10
    of each). ``what`` names the target (e.g. ``"MRAA vox256 generator"``)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
            problems.append(f"{label}: {', '.join(items[:10])}{more}")
    if problems:
        raise ConversionError(
            f"does not fit the {what} (checkpoint vs model): " + "; ".join(problems), path=source
        )
