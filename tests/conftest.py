"""Session fixtures: the demo media (built once) and small real clips cut from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory) -> Path:
    """The demo twin's media (``talk.mp4``, ``photo.png``, ``drive_speech.wav``,
    ``drive_motion.mp4``), built once per session, 6 s long to keep tests fast."""
    from twinflow.demo.__main__ import build

    out = tmp_path_factory.mktemp("demo_media")
    build(out, seconds=6.0)
    return out
