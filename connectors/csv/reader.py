"""Read a CSV export row by row, knowing the byte offset after every row.

The offset is the resumable position a cursor stores: after a crash the next pass seeks
straight to the first row not yet committed. Undecodable bytes, oversized or malformed
fields do not stop the file: such a row comes back as a :class:`BadRow` with the reason and
the raw bytes, and reading goes on with the next line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The csv module refuses fields above this; far above any valid cell, and the row is then
# quarantined rather than the file abandoned.
MAX_FIELD_BYTES = 64 * 1024 * 1024
csv.field_size_limit(MAX_FIELD_BYTES)


@dataclass(frozen=True, slots=True)
class GoodRow:
    line: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Positioned:
    """A row and the byte offset just after it."""

    row: GoodRow | BadRow
    offset: int


def file_fingerprint(path: Path) -> str:
    """Size and modification time: cheap, and changes whenever an export is rewritten."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class _LineFeed:
    """Feeds decoded lines to ``csv.reader`` while counting the bytes it has taken."""

    def __init__(self, raw_lines: Iterator[bytes], encoding: str) -> None:
        self._raw_lines = raw_lines
        self._encoding = encoding
        self.consumed = 0
        self.lines = 0
        self.row_bytes: list[bytes] = []
        self.decode_error: str | None = None

    def start_row(self) -> None:
        self.row_bytes = []
        self.decode_error = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._raw_lines)
        self.consumed += len(raw)
        self.lines += 1
        self.row_bytes.append(raw)
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as error:
            self.decode_error = (
                f"bytes that are not valid {self._encoding} (at byte {error.start + 1} of the "
                "line); re-export the file as {self._encoding} or set the "
                "source's `encoding`"
            )
            return raw.decode(self._encoding, "replace")


def _raw_text(chunks: list[bytes], encoding: str) -> str:
    return b"".join(chunks).decode(encoding, "backslashreplace").rstrip("\r\n")


class CsvFile:
    """One CSV file with a header row."""

    def __init__(self, path: Path, encoding: str = "utf-8", delimiter: str = ",") -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        codecs.lookup(encoding)  # raises LookupError for an unknown encoding name

    def header(self) -> tuple[list[str], int]:
        """The column names (BOM and blanks stripped) and the byte offset after the header."""
        with self.path.open("rb") as handle:
            feed = _LineFeed(iter(handle), self.encoding)
            reader = csv.reader(feed, delimiter=self.delimiter)
            feed.start_row()
            try:
                names = next(reader)
            except StopIteration:
                return [], feed.consumed
            names = [name.lstrip("\ufeff").strip() for name in names]
            return names, feed.consumed

    def rows(self, offset: int, first_line: int) -> Iterator[Positioned]:
        """Rows from byte ``offset`` on; ``first_line`` is the line number found there."""
        with self.path.open("rb") as handle:
            handle.seek(offset)
            feed = _LineFeed(iter(handle), self.encoding)
            while True:
                reader = csv.reader(feed, delimiter=self.delimiter)
                try:
                    yield from self._read(reader, feed, offset, first_line)
                    return
                except csv.Error as error:
                    line = first_line + feed.lines - 1
                    bad = BadRow(
                        line, f"malformed CSV: {error}", _raw_text(feed.row_bytes, self.encoding)
                    )
                    yield Positioned(bad, offset + feed.consumed)

    def _read(
        self, reader: Iterator[list[str]], feed: _LineFeed, offset: int, first_line: int
    ) -> Iterator[Positioned]:
        while True:
            feed.start_row()
            line = first_line + feed.lines
            try:
                cells = next(reader)
            except StopIteration:
                return
            position = offset + feed.consumed
            if feed.decode_error is not None:
                raw = _raw_text(feed.row_bytes, self.encoding)
                yield Positioned(BadRow(line, feed.decode_error, raw), position)
            elif cells and any(cell.strip() for cell in cells):
                yield Positioned(GoodRow(line, cells), position)
