"""Sheet validation: every problem names the sheet, row, id and column, before any job runs."""

from __future__ import annotations

import pytest

from tests.helpers import RENDER_COLUMNS, TWIN_COLUMNS, make_project, snakemake, write_tsv
from twinflow.errors import SheetError
from twinflow.sheets import load_sheets, parse_options


@pytest.fixture
def media(tmp_path):
    for name in ("a.mp4", "b.mp4", "speech.wav", "face.png"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def sheets(tmp_path, twins, renders=()):
    extra = sorted({k for row in twins for k in row} - set(TWIN_COLUMNS))
    write_tsv(tmp_path / "twins.tsv", TWIN_COLUMNS + extra, twins)
    write_tsv(tmp_path / "renders.tsv", RENDER_COLUMNS, list(renders))
    return load_sheets(tmp_path / "twins.tsv", tmp_path / "renders.tsv")


def test_valid_sheets_parse(media):
    s = sheets(
        media,
        [
            {"twin_id": "alice", "video": media / "a.mp4", "photo": media / "face.png"},
            {"twin_id": "bob_2", "video": media / "b.mp4", "crop": "10,20,300,300"},
        ],
        [
            {
                "render_id": "r1",
                "twin_id": "alice",
                "pipeline": "nerf",
                "driving_audio": media / "speech.wav",
                "options": "paste=head;x=1",
            },
            {"render_id": "r2", "twin_id": "bob_2", "pipeline": "mocap"},
        ],
    )
    assert s.twins["bob_2"].crop == (10, 20, 300, 300)
    assert s.twins["alice"].audio is None
    assert s.renders["r1"].options == {"paste": "head", "x": "1"}
    assert [r.render_id for r in s.renders_of("mocap")] == ["r2"]


@pytest.mark.parametrize(
    "twin, renders, message",
    [
        ({"twin_id": "al ice"}, [], r"twins.tsv row 1 \(twin_id=al ice\), column 'twin_id'"),
        ({"twin_id": "drive"}, [], r"column 'twin_id': 'drive' is reserved"),
        ({"video": "missing.mp4"}, [], r"row 1 \(twin_id=alice\), column 'video': file not found"),
        ({"video": ""}, [], r"column 'video': 'video' is a required property"),
        ({"crop": "1,2,3"}, [], r"column 'crop'"),
        ({"colour": "red"}, [], r"column 'colour'"),
        (
            {},
            [{"render_id": "r1", "twin_id": "alice", "pipeline": "nerf"}],
            r"renders.tsv row 1 \(render_id=r1\), column 'driving_audio': .*required",
        ),
        (
            {},
            [{"render_id": "r1", "twin_id": "alice", "pipeline": "animate"}],
            r"column 'driving_video': .*required",
        ),
        (
            {},
            [{"render_id": "r1", "twin_id": "alice", "pipeline": "dance"}],
            r"column 'pipeline': 'dance' is not one of",
        ),
        (
            {},
            [{"render_id": "r1", "twin_id": "carol", "pipeline": "mocap"}],
            r"column 'twin_id': unknown twin 'carol'",
        ),
        (
            {},
            [
                {"render_id": "r1", "twin_id": "alice", "pipeline": "mocap"},
                {"render_id": "r1", "twin_id": "alice", "pipeline": "mocap"},
            ],
            r"row 2 \(render_id=r1\), column 'render_id': duplicate id \(also row 1\)",
        ),
        (
            {},
            [{"render_id": "r1", "twin_id": "alice", "pipeline": "mocap", "options": "a"}],
            r"column 'options'",
        ),
    ],
)
def test_bad_rows_name_row_and_column(media, twin, renders, message):
    row = {"twin_id": "alice", "video": str(media / "a.mp4"), **twin}
    with pytest.raises(SheetError, match=message):
        sheets(media, [row], renders)


def test_parse_options():
    assert parse_options("") == {}
    assert parse_options("mode=avd;scale=0.5") == {"mode": "avd", "scale": "0.5"}


def test_bad_sheet_fails_before_any_job(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    make_project(tmp_path, [{"twin_id": "bad id!", "video": str(tmp_path / "a.mp4")}])
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "invalid sample sheet" in out and "row 1 (twin_id=bad id!), column 'twin_id'" in out
    assert not (tmp_path / "results").exists()
