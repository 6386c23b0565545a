"""Load and validate the sample sheets (config/twins.tsv, config/renders.tsv).

Validation happens when the Snakefile is parsed, before any job runs; every problem is reported
with the sheet, the row number (1 = first data row), the row's id and the column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from twinflow.errors import SheetError

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
PIPELINES = ("nerf", "meshhead", "anchor", "animate", "mocap")
# results/drive/ and results/renders/ hold driving media and final videos, so no twin may use them.
RESERVED_TWIN_IDS = ("drive", "renders")
FILE_COLUMNS = {
    "twins": ("video", "photo", "audio"),
    "renders": ("driving_audio", "driving_video"),
}


@cache
def load_schema(name: str) -> dict:
    """The JSON schema ``workflow/schemas/<name>.schema.yaml`` as a dict."""
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text())


@dataclass(frozen=True)
class Twin:
    """A person: their training video and optional photo, audio and crop."""

    twin_id: str
    video: str
    photo: str | None = None
    audio: str | None = None
    crop: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Render:
    """A requested output of one pipeline for one twin."""

    render_id: str
    twin_id: str
    pipeline: str
    driving_audio: str | None = None
    driving_video: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sheets:
    twins: dict[str, Twin]
    renders: dict[str, Render]

    def renders_of(self, pipeline: str) -> list[Render]:
        return [r for r in self.renders.values() if r.pipeline == pipeline]


def _read_tsv(path: Path, sheet: str) -> list[dict[str, str]]:
    if not path.exists():
        raise SheetError(f"{sheet} sheet not found", path=path)
    try:
        frame = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, comment="#", skip_blank_lines=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SheetError(f"not a readable TSV ({err})", path=path) from err
    frame.columns = [c.strip() for c in frame.columns]
    # Empty cells mean "not given": drop them so that "required" checks see them as missing.
    return [
        {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        for row in frame.to_dict(orient="records")
    ]


def _describe(sheet_path: Path, index: int, row: dict, id_column: str) -> str:
    ident = row.get(id_column)
    return f"{sheet_path} row {index + 1}" + (f" ({id_column}={ident})" if ident else "")


def _column_of(error: jsonschema.ValidationError) -> str:
    if error.path:
        return str(error.path[0])
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in error.instance]
        return missing[0] if missing else "?"
    if error.validator == "additionalProperties":
        extra = set(error.instance) - set(error.schema.get("properties", {}))
        return ", ".join(sorted(extra)) or "?"
    return "?"


def _validate_rows(rows: list[dict], sheet: str, path: Path, id_column: str) -> None:
    validator = jsonschema.Draft202012Validator(load_schema(sheet))
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = _describe(path, i, row, id_column)
        errors = sorted(validator.iter_errors(row), key=lambda e: (list(e.path), e.message))
        if errors:
            err = errors[0]
            raise SheetError(f"{where}, column '{_column_of(err)}': {err.message}")
        ident = row[id_column]
        if ident in seen:
            raise SheetError(
                f"{where}, column '{id_column}': duplicate id (also row {seen[ident] + 1})"
            )
        seen[ident] = i
        if sheet == "twins" and ident in RESERVED_TWIN_IDS:
            raise SheetError(
                f"{where}, column '{id_column}': '{ident}' is reserved (results/{ident}/)"
            )
        for column in FILE_COLUMNS[sheet]:
            value = row.get(column)
            if value is not None and not Path(value).is_file():
                raise SheetError(f"{where}, column '{column}': file not found: {value}")


def parse_options(text: str | None) -> dict[str, str]:
    """``"a=1;b=x"`` -> ``{"a": "1", "b": "x"}`` (the format is checked by the schema)."""
    if not text:
        return {}
    return dict(part.split("=", 1) for part in text.split(";"))


def load_sheets(twins_path: str | Path, renders_path: str | Path) -> Sheets:
    """Read, validate and cross-check both sheets; raises :class:`SheetError` on the first problem."""
    twins_path, renders_path = Path(twins_path), Path(renders_path)
    twin_rows = _read_tsv(twins_path, "twins")
    _validate_rows(twin_rows, "twins", twins_path, "twin_id")
    twins = {}
    for row in twin_rows:
        crop = tuple(int(v) for v in row["crop"].split(",")) if "crop" in row else None
        twins[row["twin_id"]] = Twin(
            twin_id=row["twin_id"],
            video=row["video"],
            photo=row.get("photo"),
            audio=row.get("audio"),
            crop=crop,
        )
    render_rows = _read_tsv(renders_path, "renders")
    _validate_rows(render_rows, "renders", renders_path, "render_id")
    renders = {}
    for i, row in enumerate(render_rows):
        if row["twin_id"] not in twins:
            where = _describe(renders_path, i, row, "render_id")
            raise SheetError(
                f"{where}, column 'twin_id': unknown twin '{row['twin_id']}' (not in {twins_path})"
            )
        renders[row["render_id"]] = Render(
            render_id=row["render_id"],
            twin_id=row["twin_id"],
            pipeline=row["pipeline"],
            driving_audio=row.get("driving_audio"),
            driving_video=row.get("driving_video"),
            options=parse_options(row.get("options")),
        )
    return Sheets(twins=twins, renders=renders)
