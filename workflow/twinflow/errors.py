"""Errors that name the twin and the file they are about.

A stage that fails on bad input raises :class:`InputError`; :func:`twinflow.cli.stage_main` turns it
into one clear line on stderr (which the rule's log captures and Snakemake prints) and exit code 1.
"""

from __future__ import annotations

from pathlib import Path


class TwinflowError(Exception):
    """Base class for errors twinflow reports to users without a traceback."""

    def __init__(
        self,
        message: str,
        *,
        twin: str | None = None,
        path: str | Path | None = None,
        render: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.twin = twin
        self.render = render
        self.path = str(path) if path is not None else None

    def __str__(self) -> str:
        parts = []
        if self.twin:
            parts.append(f"twin '{self.twin}'")
        if self.render:
            parts.append(f"render '{self.render}'")
        if self.path:
            parts.append(f"file '{self.path}'")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def with_context(
        self,
        *,
        twin: str | None = None,
        path: str | Path | None = None,
        render: str | None = None,
    ):
        """Fill in the twin, render or file when a lower layer did not know them; returns self."""
        if self.twin is None and twin is not None:
            self.twin = twin
        if self.render is None and render:
            self.render = render
        if self.path is None and path is not None:
            self.path = str(path)
        return self


class InputError(TwinflowError):
    """The user's input (a sheet row, a video, an audio file) cannot be used."""


class SheetError(InputError):
    """A row and column of a sample sheet is invalid."""


class ModelFileError(TwinflowError):
    """A registered external model file is missing or does not match its checksum."""
