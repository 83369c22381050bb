"""The connector interface: streams to pull from, and optionally a writer to push to.

A connector knows HTTP (or files), auth, paging, rate limits and the remote schema; it never
touches the ledger. The ingest step drives a stream page by page and commits each page's
records *and* the cursor that follows it in one transaction, so a crash re-pulls at most one
page. Cursors are plain JSON objects owned by the stream: the stream receives the last
committed one and returns the next with every page.

Two kinds of stream:

* **incremental** (``full_refresh = False``): each pass yields only what changed since the
  cursor; deletions arrive as tombstones (records with ``deleted=True``).
* **full refresh** (``full_refresh = True``): each pass yields every live record (a CSV file, an
  endpoint without a change filter). Ingest marks records that a *complete* pass did not yield
  as deleted, and quarantines an id yielded twice in one pass.

An incremental stream that cannot see deletions for a while (QuickBooks after a CDC answer cut
at its cap) can read everything instead: it marks the pages of that read ``full_pass=True``
under one ``pass_id`` (kept in its cursor, so a resumed pass is the same pass), and ingest then
flags deleted every live row the complete pass did not yield, exactly as for a full-refresh
stream. An id such a pass yields twice (overlapping pages) is stored again, not quarantined.

One remote read can feed several ledger streams: a WooCommerce order page holds the
transactions, the guest customers and the referrals. Such a stream is a
:class:`MultiKindStream`: its pages mix records of the kinds it declares, each record goes to
the ledger stream named for its kind (``record.kind``), and ingest stores all of a page's
kinds and the stream's one cursor in ONE transaction. So the remote is read once per cycle,
and a crash between kinds cannot leave one kind ahead of another: the page commits whole or
not at all. Page flags (``pass_complete``, ``full_pass``, ``pass_id``) hold for every kind of
the page; rejected items are quarantined under the stream's own ``name``.
Such a pass may also list ids alone (``Page.seen``): when a remote keeps no trace of what it
deleted (Shopify customers), a cheap pass over the ids of every live record is enough to find
the gone ones, without reading or rewriting the records themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from connectors.records import FieldUpdate, Record, RecordKind, Rejected

Cursor = Mapping[str, Any]
"""A stream's position as a JSON object; ``{}`` means "from the beginning"."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one record came from (file and line, URL) and its payload as received.

    Optional: when a stream gives them, a record the ledger refuses is quarantined with these
    rather than with the normalized record, so the admin sees the line to fix.
    """

    location: str | None
    raw: str


@dataclass(frozen=True, slots=True)
class Page:
    """One unit of work: what the remote returned, and the cursor that follows it.

    ``records`` are of the stream's ``record_kind``, or of any kind a :class:`MultiKindStream`
    declares (in any order; each record's ``kind`` says which).

    ``pass_complete`` is true on the last page of a pass; for a full-refresh stream only then
    may records that were not seen be marked deleted. ``full_pass`` says that the page belongs
    to a pass over every live record although the stream is incremental (see the module
    docstring); ``pass_id`` names that pass (at most 40 characters). ``origins`` is empty or
    one per record. ``seen`` lists ids of a ``full_pass`` page that the remote still holds but
    whose records the page does not carry (an id-only pass): they count as seen, nothing more.
    """

    records: Sequence[Record]
    cursor: Cursor
    rejected: Sequence[Rejected] = ()
    pass_complete: bool = False
    pass_id: str = ""
    full_pass: bool = False
    origins: Sequence[Origin] = ()
    seen: Sequence[str] = ()


class Stream(Protocol):
    """One remote collection; one kind of record unless it is a :class:`MultiKindStream`."""

    @property
    def name(self) -> str:
        """The stream's name in the ledger (``customers``, ``invoices``, ...)."""
        ...

    @property
    def record_kind(self) -> RecordKind: ...

    @property
    def full_refresh(self) -> bool:
        """True if every pass yields every live record (see the module docstring)."""
        ...

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        """Yield pages from ``cursor`` on; stop when the remote has nothing more."""
        ...


@runtime_checkable
class MultiKindStream(Stream, Protocol):
    """A stream whose pages carry records of several kinds (see the module docstring).

    ``ledger_streams`` names the ledger stream each kind is stored under; it includes
    ``record_kind``, normally under the stream's own ``name``, which also keys its cursor.
    """

    @property
    def ledger_streams(self) -> Mapping[RecordKind, str]: ...


def ledger_streams(stream: Stream) -> Mapping[RecordKind, str]:
    """The ledger stream each kind of ``stream``'s records goes to."""
    if isinstance(stream, MultiKindStream):
        return stream.ledger_streams
    return {stream.record_kind: stream.name}


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How one :class:`FieldUpdate` fared; ``error`` is None on success."""

    update: FieldUpdate
    error: str | None = None


@runtime_checkable
class Writer(Protocol):
    """Writes metric values into remote custom fields."""

    max_batch: int

    def write(self, updates: Sequence[FieldUpdate]) -> Sequence[WriteResult]:
        """Send one batch (at most ``max_batch`` updates) and report each one's fate."""
        ...


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """A ledger customer the remote system has no record of, with the values to give it."""

    ledger_id: int
    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    phone: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    """The pushed fields' values, by field name."""


@dataclass(frozen=True, slots=True)
class Created:
    """How one creation fared: the new record's external id, or the error."""

    customer: NewCustomer
    external_id: str | None
    error: str | None = None


@runtime_checkable
class Creating(Protocol):
    """A writer that can also create remote records for customers that have none there."""

    max_batch: int

    @property
    def creates(self) -> bool:
        """Whether the source's YAML turned creation on."""
        ...

    def create(self, customers: Sequence[NewCustomer]) -> Sequence[Created]:
        """Create one record per customer (at most ``max_batch``), with its values set."""
        ...


class Connector(Protocol):
    """A configured source: its streams in dependency order, and its writer if any."""

    system: str

    def streams(self) -> Sequence[Stream]: ...

    def writer(self) -> Writer | None: ...


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A system's OAuth tokens as the ledger keeps them (encrypted at rest)."""

    payload: dict[str, Any]
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None


class TokenVault(Protocol):
    """Where a connector keeps OAuth tokens: the ledger, encrypted (``sync.tokens``).

    ``save`` commits before it returns, so a rotated refresh token is safe before it is used.
    """

    def save(
        self,
        system: str,
        payload: Mapping[str, Any],
        access_expires_at: datetime | None = None,
        refresh_expires_at: datetime | None = None,
    ) -> None: ...

    def load(self, system: str) -> StoredToken | None: ...


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the service hands a connector besides its YAML: the token vault."""

    tokens: TokenVault


class Console(Protocol):
    """The admin's terminal, for the interactive commands (``auth``, ``setup``)."""

    def say(self, text: str) -> None: ...

    def ask(self, question: str) -> str: ...


@runtime_checkable
class Authorizing(Protocol):
    """A connector whose system needs an interactive consent (``clm-sync auth SOURCE``)."""

    def authorize(self, console: Console) -> None:
        """Walk the admin through the consent flow and save the tokens in the vault."""
        ...


@runtime_checkable
class SettingUp(Protocol):
    """A connector that creates remote definitions first (``clm-sync setup SOURCE``)."""

    def set_up(self, console: Console, dry_run: bool) -> None:
        """Create what the push needs (custom-field definitions ...); say what was done."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """A connector with warnings for ``clm-sync status`` (a token about to expire ...)."""

    def status_notes(self) -> Sequence[str]: ...


@runtime_checkable
class Listening(Protocol):
    """A connector that acts on what a verified webhook is about (its topic)."""

    def heard(self, topic: str) -> None:
        """A signed webhook of ``topic`` arrived (``customers/delete`` ...); a cycle follows."""
        ...
