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
from itertools import accumulate, chain
from pathlib import Path
from typing import BinaryIO, NamedTuple

# The csv module refuses fields above this; far above any valid cell, and the row is then
# quarantined rather than the file abandoned.
MAX_FIELD_BYTES = 64 * 1024 * 1024
csv.field_size_limit(MAX_FIELD_BYTES)
# Bytes of whole lines read and decoded at a time.
BATCH_BYTES = 64 * 1024


class GoodRow(NamedTuple):
    line: int
    cells: list[str]


class BadRow(NamedTuple):
    line: int
    reason: str
    raw: str


class Positioned(NamedTuple):
    """A row and the byte offset just after it."""

    row: GoodRow | BadRow
    offset: int


def file_fingerprint(path: Path) -> str:
    """Size and modification time: cheap, and changes whenever an export is rewritten."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class _Lines:
    """Feeds decoded lines to ``csv.reader`` a batch at a time, remembering where each ends.

    Lines are read and decoded in batches of about ``BATCH_BYTES`` and handed over through
    ``itertools.chain``, so no Python code runs per line; ``csv.reader``'s ``line_num`` then
    says how many lines a row took. The lines of the row being read (and of the batch
    holding them) are kept as bytes for the raw text of a bad row and their end offsets for
    the cursor; older ones are dropped when the next batch is read, so memory stays bounded
    by the batch and the longest row.
    """

    def __init__(self, handle: BinaryIO, encoding: str, offset: int) -> None:
        self._handle = handle
        self._encoding = encoding
        self._end = offset
        self._first = 0
        """Index (counted from the first line read) of the first line still kept."""
        self._ends: list[int] = []
        self._raw: list[bytes] = []
        self._decode_errors: dict[int, str] = {}
        self.keep = 0
        """Index of the first line of the row being read; the reader sets it per row."""
        self.lines: Iterator[str] = chain.from_iterable(self._batches())

    def _batches(self) -> Iterator[list[str]]:
        while batch := self._handle.readlines(BATCH_BYTES):
            drop = self.keep - self._first
            if drop > 0:
                del self._ends[:drop], self._raw[:drop]
                self._first = self.keep
            ends = list(accumulate(map(len, batch), initial=self._end))
            self._end = ends[-1]
            first_new = self._first + len(self._ends)
            self._ends.extend(ends[1:])
            self._raw.extend(batch)
            try:
                yield [line.decode(self._encoding) for line in batch]
            except UnicodeDecodeError:
                yield [self._decode(first_new + i, line) for i, line in enumerate(batch)]

    def _decode(self, index: int, raw: bytes) -> str:
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as error:
            self._decode_errors[index] = (
                f"bytes that are not valid {self._encoding} (at byte {error.start + 1} of the "
                f"line); re-export the file as {self._encoding} or set the "
                "source's `encoding`"
            )
            return raw.decode(self._encoding, "replace")

    def end_of(self, index: int) -> int:
        """The byte offset after line ``index``."""
        return self._ends[index - self._first]

    def raw_text(self, start: int, stop: int) -> str:
        """Lines ``start`` to ``stop`` (exclusive) as received, undecodable bytes escaped."""
        chunks = self._raw[start - self._first : stop - self._first]
        return b"".join(chunks).decode(self._encoding, "backslashreplace").rstrip("\r\n")

    def decode_error(self, start: int, stop: int) -> str | None:
        """Why lines ``start`` to ``stop`` (exclusive) could not be decoded (the last reason)."""
        if not self._decode_errors:
            return None
        reasons = [self._decode_errors.pop(index, None) for index in range(start, stop)]
        return next((reason for reason in reversed(reasons) if reason is not None), None)


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
            lines = _Lines(handle, self.encoding, 0)
            reader = csv.reader(lines.lines, delimiter=self.delimiter)
            try:
                names = next(reader)
            except StopIteration:
                return [], 0
            names = [name.lstrip("\ufeff").strip() for name in names]
            return names, lines.end_of(reader.line_num - 1)

    def rows(self, offset: int, first_line: int) -> Iterator[Positioned]:
        """Rows from byte ``offset`` on; ``first_line`` is the line number found there."""
        with self.path.open("rb") as handle:
            handle.seek(offset)
            lines = _Lines(handle, self.encoding, offset)
            while True:
                # after a malformed row, a fresh reader goes on with the next line
                reader = csv.reader(lines.lines, delimiter=self.delimiter)
                done = lines.keep  # lines taken by the readers before this one
                try:
                    yield from self._read(reader, lines, done, first_line)
                    return
                except csv.Error as error:
                    start, stop = lines.keep, done + reader.line_num
                    lines.decode_error(start, stop)  # the row is bad either way
                    raw = lines.raw_text(start, stop)
                    bad = BadRow(first_line + stop - 1, f"malformed CSV: {error}", raw)
                    yield Positioned(bad, lines.end_of(stop - 1))
                    lines.keep = stop

    @staticmethod
    def _read(
        reader: Iterator[list[str]], lines: _Lines, done: int, first_line: int
    ) -> Iterator[Positioned]:
        start = done
        for cells in reader:
            stop = done + reader.line_num  # type: ignore[attr-defined]
            error = lines.decode_error(start, stop)
            if error is not None:
                raw = lines.raw_text(start, stop)
                yield Positioned(BadRow(first_line + start, error, raw), lines.end_of(stop - 1))
            elif cells and (cells[0].strip() or any(cell.strip() for cell in cells)):
                yield Positioned(GoodRow(first_line + start, cells), lines.end_of(stop - 1))
            start = lines.keep = stop
