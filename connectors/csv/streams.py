"""The CSV source's streams: one export file each, read as a full-refresh pass.

A pass reads the whole file; the cursor holds the file's fingerprint, the byte offset after
the last committed row and the pass id. An unchanged file whose last pass completed is not
read at all; after a crash the pass resumes at the stored offset.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, overload

from connectors.base import Cursor, Origin, Page
from connectors.csv.reader import BadRow, CsvFile, GoodRow, file_fingerprint
from connectors.errors import SourceError
from connectors.records import (
    Direction,
    Record,
    RecordKind,
    Rejected,
    SourceCustomer,
    SourceInteraction,
    SourceReferral,
    SourceSpend,
    SourceTransaction,
    TransactionKind,
)

_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


class BadValue(ValueError):
    """A cell that cannot be read; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class CsvSettings:
    folder: Path
    page_size: int
    delimiter: str
    encoding: str
    date_format: str | None
    home_currency: str


class Cells:
    """A row's cells by default column name, after the YAML renames."""

    def __init__(self, cells: list[str], index: dict[str, int], settings: CsvSettings) -> None:
        count = len(cells)
        # every cell stripped once, empty ones left out: the mappers ask for each several times
        self._values = {
            column: value
            for column, position in index.items()
            if position < count and (value := cells[position].strip())
        }
        self._settings = settings

    def text(self, column: str) -> str | None:
        return self._values.get(column)

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise BadValue(f"column {column!r} is empty")
        return value

    def moment(self, column: str) -> datetime:
        value = self.required(column)
        try:
            if self._settings.date_format:
                parsed = datetime.strptime(value, self._settings.date_format)
            else:
                parsed = datetime.fromisoformat(value)
        except ValueError:
            expected = (
                self._settings.date_format or "ISO 8601, e.g. 2024-03-05 or 2024-03-05T14:22:00Z"
            )
            raise BadValue(
                f"{column} {value!r} is not a date in the expected format ({expected}); set "
                "`date_format` in the source's YAML if the export uses another one"
            ) from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def optional_moment(self, column: str) -> datetime | None:
        return None if self.text(column) is None else self.moment(column)

    def money(self, column: str) -> Decimal:
        value = self.required(column)
        try:
            amount = Decimal(value.replace(" ", ""))
        except InvalidOperation:
            raise BadValue(f"{column} {value!r} is not a number like 1234.50") from None
        if not amount.is_finite():
            raise BadValue(f"{column} {value!r} is not a finite number")
        return amount

    def optional_money(self, column: str) -> Decimal | None:
        return None if self.text(column) is None else self.money(column)

    def currency(self) -> str:
        return self.text("currency") or self._settings.home_currency

    def labels(self, column: str) -> tuple[str, ...]:
        """A list cell such as ``VIP; wholesale`` (separated by semicolons)."""
        value = self.text(column)
        if value is None:
            return ()
        return tuple(label.strip() for label in value.split(";") if label.strip())

    def flag(self, column: str) -> bool:
        value = self.text(column)
        if value is None:
            return False
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise BadValue(f"{column} {value!r} is not a yes/no value (true, false, yes, no, 1, 0)")


def _customer(cells: Cells) -> SourceCustomer:
    return SourceCustomer(
        external_id=cells.required("id"),
        name=cells.text("name"),
        first_name=cells.text("first_name"),
        last_name=cells.text("last_name"),
        company=cells.text("company"),
        email=cells.text("email"),
        phone=cells.text("phone"),
        address_line1=cells.text("address_line1"),
        address_line2=cells.text("address_line2"),
        city=cells.text("city"),
        postcode=cells.text("postcode"),
        region=cells.text("region"),
        country=cells.text("country"),
        created_at=cells.optional_moment("created_at"),
        parent_external_id=cells.text("parent_id"),
        notes=cells.text("notes"),
        labels=cells.labels("labels"),
        acquisition_channel=cells.text("channel"),
    )


_TRANSACTION_KINDS = {kind.value: kind for kind in TransactionKind}


def _transaction(cells: Cells) -> SourceTransaction:
    kind = (cells.text("kind") or "sale").lower()
    transaction_kind = _TRANSACTION_KINDS.get(kind)
    if transaction_kind is None:
        raise BadValue(f"kind {kind!r} is neither 'sale' nor 'refund'")
    return SourceTransaction(
        external_id=cells.required("id"),
        customer_external_id=cells.text("customer_id"),
        occurred_at=cells.moment("date"),
        amount=cells.money("amount"),
        currency=cells.currency(),
        transaction_kind=transaction_kind,
        home_amount=cells.optional_money("home_amount"),
        reference=cells.text("reference"),
        memo=cells.text("memo"),
        discount=cells.optional_money("discount"),
        refund_of=cells.text("refund_of"),
        channel=cells.text("channel"),
    )


def _direction(cells: Cells) -> Direction | None:
    value = cells.text("direction")
    if value is None:
        return None
    try:
        return Direction(value.lower())
    except ValueError:
        raise BadValue(f"direction {value!r} is neither 'inbound' nor 'outbound'") from None


def _interaction(cells: Cells) -> SourceInteraction:
    return SourceInteraction(
        external_id=cells.required("id"),
        customer_external_id=cells.text("customer_id"),
        occurred_at=cells.moment("date"),
        interaction_kind=(cells.text("kind") or "other").lower(),
        subject=cells.text("subject"),
        cost=cells.optional_money("cost"),
        direction=_direction(cells),
        conversation_id=cells.text("conversation_id"),
        support=cells.flag("support"),
        labels=cells.labels("labels"),
    )


def _referral(cells: Cells) -> SourceReferral:
    referrer, referred = cells.required("referrer_id"), cells.required("referred_id")
    return SourceReferral(
        external_id=cells.text("id") or f"{referrer}>{referred}",
        referrer_external_id=referrer,
        referred_external_id=referred,
        occurred_at=cells.optional_moment("date"),
    )


def _spend(cells: Cells) -> SourceSpend:
    spent_on: date = cells.moment("date").date()
    channel = cells.required("channel")
    return SourceSpend(
        external_id=cells.text("id") or f"{spent_on.isoformat()}|{channel}",
        spent_on=spent_on,
        channel=channel,
        amount=cells.money("amount"),
        currency=cells.currency(),
        home_amount=cells.optional_money("home_amount"),
    )


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One export file: its name, columns, which of them must exist, and the row mapper."""

    stream: str
    record_kind: RecordKind
    required_file: bool
    columns: tuple[str, ...]
    required_columns: tuple[str, ...]
    mapper: Callable[[Cells], Record]

    @property
    def filename(self) -> str:
        return f"{self.stream}.csv"


FILES = (
    FileSpec(
        "customers",
        RecordKind.CUSTOMER,
        True,
        (
            "id",
            "name",
            "first_name",
            "last_name",
            "company",
            "email",
            "phone",
            "address_line1",
            "address_line2",
            "city",
            "postcode",
            "region",
            "country",
            "created_at",
            "parent_id",
            "notes",
            "labels",
            "channel",
        ),
        ("id",),
        _customer,
    ),
    FileSpec(
        "transactions",
        RecordKind.TRANSACTION,
        True,
        (
            "id",
            "customer_id",
            "date",
            "amount",
            "currency",
            "kind",
            "home_amount",
            "reference",
            "memo",
            "discount",
            "refund_of",
            "channel",
        ),
        ("id", "customer_id", "date", "amount"),
        _transaction,
    ),
    FileSpec(
        "interactions",
        RecordKind.INTERACTION,
        False,
        (
            "id",
            "customer_id",
            "date",
            "kind",
            "subject",
            "cost",
            "direction",
            "conversation_id",
            "support",
            "labels",
        ),
        ("id", "customer_id", "date"),
        _interaction,
    ),
    FileSpec(
        "referrals",
        RecordKind.REFERRAL,
        False,
        ("id", "referrer_id", "referred_id", "date"),
        ("referrer_id", "referred_id"),
        _referral,
    ),
    FileSpec(
        "marketing_spend",
        RecordKind.SPEND,
        False,
        ("id", "date", "channel", "amount", "currency", "home_amount"),
        ("date", "channel", "amount"),
        _spend,
    ),
)


class CsvStream:
    """A full-refresh stream over one export file."""

    full_refresh: ClassVar[bool] = True

    def __init__(self, spec: FileSpec, settings: CsvSettings, renames: dict[str, str]) -> None:
        self.spec = spec
        self.settings = settings
        self.renames = renames
        self.name = spec.stream
        self.record_kind = spec.record_kind
        self.path = settings.folder / spec.filename

    def _column_index(self, header: list[str]) -> dict[str, int]:
        positions = {name.casefold(): i for i, name in enumerate(header)}
        index: dict[str, int] = {}
        for column in self.spec.columns:
            actual = self.renames.get(column, column)
            if actual.casefold() in positions:
                index[column] = positions[actual.casefold()]
            elif column in self.spec.required_columns:
                raise SourceError(
                    f"{self.path} has no column {actual!r} (columns found: "
                    f"{', '.join(header) or 'none'}); rename it in the file or map it in the "
                    f"source's YAML under columns.{self.spec.stream}: {{{column}: <your name>}}"
                )
        return index

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        if not self.path.is_file():
            if self.spec.required_file:
                raise SourceError(
                    f"{self.path} not found; export your {self.spec.stream} there as CSV with a "
                    f"header row (columns: {', '.join(self.spec.columns)})"
                )
            return
        fingerprint = file_fingerprint(self.path)
        if cursor.get("fingerprint") == fingerprint and cursor.get("complete"):
            return
        csv_file = CsvFile(self.path, self.settings.encoding, self.settings.delimiter)
        header, header_end = csv_file.header()
        index = self._column_index(header)
        if cursor.get("fingerprint") == fingerprint:
            pass_id = str(cursor["pass_id"])
            offset, line = int(cursor["offset"]), int(cursor["line"])
        else:
            pass_id, offset, line = uuid.uuid4().hex, header_end, 2
        yield from self._pages(csv_file, index, fingerprint, pass_id, offset, line)

    def _pages(
        self,
        csv_file: CsvFile,
        index: dict[str, int],
        fingerprint: str,
        pass_id: str,
        offset: int,
        line: int,
    ) -> Iterator[Page]:
        records: list[Record] = []
        origins = _Origins(self.path, self.settings.delimiter)
        rejected: list[Rejected] = []
        page_size = self.settings.page_size

        def cursor(complete: bool) -> Cursor:
            return {
                "fingerprint": fingerprint,
                "pass_id": pass_id,
                "offset": offset,
                "line": line,
                "complete": complete,
            }

        for row, end in csv_file.rows(offset, line):
            offset, line = end, row.line + 1
            if isinstance(row, BadRow):
                rejected.append(Rejected(row.reason, row.raw, location=f"{self.path}:{row.line}"))
            else:
                self._map(row, index, records, origins, rejected)
            if len(records) + len(rejected) >= page_size:
                yield Page(records, cursor(False), rejected, pass_id=pass_id, origins=origins)
                records, origins, rejected = [], _Origins(self.path, self.settings.delimiter), []
        yield Page(
            records, cursor(True), rejected, pass_complete=True, pass_id=pass_id, origins=origins
        )

    def _map(
        self,
        row: GoodRow,
        index: dict[str, int],
        records: list[Record],
        origins: _Origins,
        rejected: list[Rejected],
    ) -> None:
        cells = Cells(row.cells, index, self.settings)
        try:
            records.append(self.spec.mapper(cells))
        except BadValue as bad:
            raw = self.settings.delimiter.join(row.cells)
            location = f"{self.path}:{row.line}"
            rejected.append(Rejected(str(bad), raw, cells.text("id"), location))
            return
        origins.rows.append(row)


class _Origins(Sequence[Origin]):
    """The origins of a page's records, made only for the few the ledger refuses.

    A page holds the rows anyway; the file-and-line text and the joined raw row cost more
    than checking the record, so they are built when ingest asks for one.
    """

    def __init__(self, path: Path, delimiter: str) -> None:
        self.path = path
        self.delimiter = delimiter
        self.rows: list[GoodRow] = []

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, position: int) -> Origin: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[Origin]: ...

    def __getitem__(self, position: int | slice) -> Origin | Sequence[Origin]:
        if isinstance(position, slice):
            return [self._origin(row) for row in self.rows[position]]
        return self._origin(self.rows[position])

    def _origin(self, row: GoodRow) -> Origin:
        return Origin(f"{self.path}:{row.line}", self.delimiter.join(row.cells))
