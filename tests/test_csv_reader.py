"""The CSV reader's rows, line numbers and resumable byte offsets, read in batches of lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import Origin
from connectors.csv import reader
from connectors.csv.reader import BadRow, CsvFile, GoodRow, Positioned
from connectors.csv.streams import FILES, CsvSettings, CsvStream

TEXT = (
    b"id,name\n"
    b"1,Ann\n"
    b'2,"Bob\nSmith"\n'  # a quoted field over two lines
    b"\n"  # a blank line is no row
    b"3,\xff\xfeBroken\n"  # not UTF-8
    b'4,"Zo\xc3\xab\n'  # an unclosed quote takes the rest of the file
    b"5,Eve\n"
)


def read_all(path: Path, offset: int, line: int) -> list[Positioned]:
    return list(CsvFile(path).rows(offset, line))


@pytest.fixture(params=[1, 16, reader.BATCH_BYTES], ids=lambda size: f"batch{size}")
def batch_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches of one line, a few lines and the default: rows cross batch boundaries."""
    monkeypatch.setattr(reader, "BATCH_BYTES", request.param)
    return int(request.param)


def test_rows_lines_and_offsets(tmp_path: Path, batch_bytes: int) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(TEXT)
    header, start = CsvFile(path).header()
    assert (header, start) == (["id", "name"], 8)

    rows = read_all(path, start, 2)

    ends = [TEXT.index(b"\n", TEXT.index(marker)) + 1 for marker in (b"1,", b"Smith", b"3,")]
    assert rows[:3] == [
        Positioned(GoodRow(2, ["1", "Ann"]), ends[0]),
        Positioned(GoodRow(3, ["2", "Bob\nSmith"]), ends[1]),
        Positioned(
            BadRow(
                6,
                "bytes that are not valid utf-8 (at byte 3 of the line); re-export the file "
                "as utf-8 or set the source's `encoding`",
                "3,\\xff\\xfeBroken",
            ),
            ends[2],
        ),
    ]
    # the csv module, not strict, ends the open field at the end of the file
    assert rows[3:] == [Positioned(GoodRow(7, ["4", "Zoë\n5,Eve\n"]), len(TEXT))]


def test_reading_resumes_at_any_stored_offset(tmp_path: Path, batch_bytes: int) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(TEXT)
    rows = read_all(path, 8, 2)
    for done, before in enumerate(rows, start=1):
        line = TEXT[: before.offset].count(b"\n") + 1
        assert read_all(path, before.offset, line) == rows[done:]


def test_a_malformed_row_does_not_stop_the_file(tmp_path: Path, batch_bytes: int) -> None:
    path = tmp_path / "customers.csv"
    # the \r inside an unquoted field is refused by the csv module; the next line is read on
    path.write_bytes(b"id,name\n1,A\rB\n2,Bob\n")

    rows = read_all(path, 8, 2)

    assert [type(p.row).__name__ for p in rows] == ["BadRow", "GoodRow"]
    bad, good = rows
    assert isinstance(bad.row, BadRow) and bad.row.reason.startswith("malformed CSV")
    assert bad.row.raw == "1,A\rB" and bad.offset == 14
    assert good == Positioned(GoodRow(3, ["2", "Bob"]), 20)


def test_origins_are_built_for_the_records_asked_for(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text("id,name\nC1,Ann\nC2,Bob\n", encoding="utf-8")
    spec = next(spec for spec in FILES if spec.stream == "customers")
    settings = CsvSettings(tmp_path, 100, ",", "utf-8", None, "USD")

    (page,) = CsvStream(spec, settings, {}).pages({})

    path = tmp_path / "customers.csv"
    assert len(page.origins) == len(page.records) == 2
    assert page.origins[1] == Origin(f"{path}:3", "C2,Bob")
    assert list(page.origins[:1]) == [Origin(f"{path}:2", "C1,Ann")]
