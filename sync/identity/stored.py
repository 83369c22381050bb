"""Match features kept in the ledger, and the candidates of new records found through them.

Every live source customer has its features row (``match_features``), computed from the
content it had: a cycle featurizes only the records whose content hash changed, never the
whole base. An incremental cycle then looks up, through the blocking-rule indexes of that
table, the stored records that share a blocking key with its new records, and hands Splink
just those: the pairs it scores are exactly the pairs a full run would score that involve a
new record, and nothing else is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    text,
    union,
)

from sync.identity.features import FEATURE_COLUMNS, CustomerInput, features
from sync.identity.model import BLOCKING_RULES
from sync.ledger import MatchFeatures, SourceCustomerRow

if TYPE_CHECKING:
    import pandas as pd

_SOURCE = SourceCustomerRow.__table__  # type: ignore[attr-defined]
_FEATURES = MatchFeatures.__table__  # type: ignore[attr-defined]

STORED_COLUMNS = FEATURE_COLUMNS[1:]
"""The feature columns kept in ``match_features`` (``unique_id`` is its key)."""
BATCH = 900
"""Ids per IN (...) list: below SQLite's old 999-parameter limit."""
_CHUNK = 20_000
"""Records featurized and written at a time, so a first run over a large ledger stays small."""
_BULK = 50_000
"""From this many records to featurize on, the table's indexes are dropped while they are
written and built again afterwards: far faster than updating eight indexes row by row."""
_INPUT = (
    _SOURCE.c.name,
    _SOURCE.c.first_name,
    _SOURCE.c.last_name,
    _SOURCE.c.company,
    _SOURCE.c.email_normalized,
    _SOURCE.c.phone_e164,
    _SOURCE.c.address_line1,
    _SOURCE.c.postcode,
    _SOURCE.c.city,
)


_T = TypeVar("_T")


def in_batches(values: Sequence[_T], size: int = BATCH) -> Iterator[list[_T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


@dataclass(slots=True)
class Refreshed:
    """What changed since the features were last stored."""

    changed: list[int] = field(default_factory=list)
    """Live records featurized now: new, changed, or back from deletion (ascending)."""
    removed: list[int] = field(default_factory=list)
    """Records deleted since their features were stored."""
    old_keys: set[tuple[str, str]] = field(default_factory=set)
    """("email" | "phone", value) the changed and removed records had before: the records
    that shared them may have lost their link."""


def _row(source_id: int, content_hash: str, values: dict[str, object]) -> dict[str, object]:
    groups = values["first_groups"]
    row: dict[str, object] = {name: values[name] for name in STORED_COLUMNS}
    row["first_groups"] = " ".join(groups) if isinstance(groups, list) else None
    return row | {"source_customer_id": source_id, "content_hash": content_hash}


def _stale(connection: Connection, low: int, high: int | None, *columns: Any) -> Any:
    """``columns`` of the live source customers from ``low`` up to ``high`` whose features
    are missing or stale (the stored features, when there are any, joined as well)."""
    where = [
        _SOURCE.c.deleted.is_(False),
        _SOURCE.c.id >= low,
        or_(
            _FEATURES.c.source_customer_id.is_(None),
            _FEATURES.c.content_hash != _SOURCE.c.content_hash,
        ),
    ]
    if high is not None:
        where.append(_SOURCE.c.id <= high)
    return connection.execute(
        select(*columns)
        .select_from(_SOURCE.outerjoin(_FEATURES, _FEATURES.c.source_customer_id == _SOURCE.c.id))
        .where(*where)
        .order_by(_SOURCE.c.id)
    )


def _note_old_keys(keys: set[tuple[str, str]], email: str | None, phone: str | None) -> None:
    if email is not None:
        keys.add(("email", email))
    if phone is not None:
        keys.add(("phone", phone))


def refresh_features(connection: Connection) -> Refreshed:
    """Store the features of every live record whose content changed; drop deleted ones."""
    result = Refreshed()
    removed = connection.execute(
        select(_FEATURES.c.source_customer_id, _FEATURES.c.email, _FEATURES.c.phone)
        .join(_SOURCE, _SOURCE.c.id == _FEATURES.c.source_customer_id)
        .where(_SOURCE.c.deleted.is_(True))
    )
    for source_id, email, phone in removed:
        result.removed.append(source_id)
        _note_old_keys(result.old_keys, email, phone)
    for batch in in_batches(result.removed):
        connection.execute(delete(_FEATURES).where(_FEATURES.c.source_customer_id.in_(batch)))

    # The ids first, then their rows a chunk at a time: the features written for one chunk
    # are never read back by a cursor still open on the same table.
    stale_ids = [source_id for (source_id,) in _stale(connection, 0, None, _SOURCE.c.id)]
    bulk = len(stale_ids) >= _BULK
    if bulk:
        for index in _FEATURES.indexes:
            index.drop(connection)
    for start in range(0, len(stale_ids), _CHUNK):
        chunk = stale_ids[start : start + _CHUNK]
        rows = _stale(
            connection,
            chunk[0],
            chunk[-1],
            _SOURCE.c.id,
            _SOURCE.c.content_hash,
            *_INPUT,
            _FEATURES.c.source_customer_id.is_not(None),
            _FEATURES.c.email,
            _FEATURES.c.phone,
        ).all()
        replaced: list[int] = []
        written: list[dict[str, object]] = []
        for source_id, content_hash, *item, had, email, phone in rows:
            if had:
                replaced.append(source_id)
                _note_old_keys(result.old_keys, email, phone)
            values = features(CustomerInput(source_id, *item))
            written.append(_row(source_id, content_hash, values))
            result.changed.append(source_id)
        for batch in in_batches(replaced):
            connection.execute(delete(_FEATURES).where(_FEATURES.c.source_customer_id.in_(batch)))
        if written:
            connection.execute(insert(_FEATURES), written)
    if bulk:
        for index in _FEATURES.indexes:
            index.create(connection)
    return result


def _stored_rows(connection: Connection, ids: Sequence[int] | None) -> Iterator[Sequence[Any]]:
    """Chunks of stored feature rows: of ``ids``, else all of them straight from the driver
    (a million rows through the SQL layer's row objects would take as long again)."""
    columns = [_FEATURES.c.source_customer_id, *(_FEATURES.c[name] for name in STORED_COLUMNS)]
    query = select(*columns).order_by(_FEATURES.c.source_customer_id)
    if ids is not None:
        for batch in in_batches(sorted(ids)):
            yield connection.execute(query.where(_FEATURES.c.source_customer_id.in_(batch))).all()
        return
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(query.compile(dialect=connection.dialect)))
        while rows := cursor.fetchmany(_CHUNK):
            yield rows
    finally:
        cursor.close()


def features_frame(connection: Connection, ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The stored features as the model's input frame: of ``ids``, else of every record.

    Each column's repeated values (names, cities, postcodes, name groups) share one string
    object: a million records would otherwise hold some thirteen million separate strings.
    """
    import pandas as pd

    values: list[list[Any]] = [[] for _ in FEATURE_COLUMNS]
    shared: list[dict[Any, Any]] = [{} for _ in FEATURE_COLUMNS]
    for rows in _stored_rows(connection, ids):
        for index, column in enumerate(zip(*rows, strict=True)):
            seen = shared[index]
            values[index].extend(
                column
                if index == 0
                else [value if value is None else seen.setdefault(value, value) for value in column]
            )
    # One list of name groups per distinct value: Splink reads them, never changes them.
    groups = FEATURE_COLUMNS.index("first_groups")
    split = {text: text.split(" ") for text in shared[groups]}
    values[groups] = [None if text is None else split[text] for text in values[groups]]
    frame = pd.DataFrame(
        {
            name: pd.Series(column, dtype="int64" if index == 0 else object)
            for index, (name, column) in enumerate(zip(FEATURE_COLUMNS, values, strict=True))
        }
    )
    del values
    return frame


def current_features(connection: Connection, ids: Sequence[int]) -> list[dict[str, object]]:
    """Features of these records computed from their content now, stored or not (``explain``
    may ask about a record that arrived after the last cycle)."""
    rows = connection.execute(
        select(_SOURCE.c.id, *_INPUT).where(_SOURCE.c.id.in_(list(ids))).order_by(_SOURCE.c.id)
    )
    return [features(CustomerInput(source_id, *item)) for source_id, *item in rows]


_SIDE = re.compile(r"\b([lr])\.")


def _lookup(rule: str) -> str:
    """A blocking rule as a join condition: stored records ``f`` against new records ``n``."""
    return _SIDE.sub(lambda match: "f." if match.group(1) == "l" else "n.", rule)


_KEY_COLUMNS = sorted(
    {column for rule in BLOCKING_RULES for column in re.findall(r"\b[lr]\.(\w+)", rule)}
)


def candidates(connection: Connection, new: pd.DataFrame) -> list[int]:
    """Stored records (other than ``new``'s) that share a blocking key with a record of
    ``new``: the only ones any pair involving a new record can be made with."""
    if new.empty:
        return []
    scratch = Table(
        "clm_sync_new_records",
        MetaData(),
        Column("unique_id", Integer, primary_key=True),
        *(Column(name, String) for name in _KEY_COLUMNS),
        prefixes=["TEMPORARY"],
    )
    scratch.create(connection)
    try:
        keys = new[["unique_id", *_KEY_COLUMNS]].astype(object)
        rows = keys.where(keys.notna(), None).to_dict("records")
        connection.execute(insert(scratch), rows)
        # Each blocking rule is an equi-join the features' indexes serve.
        found = union(
            *(
                select(text("f.source_customer_id AS id")).select_from(
                    text(f"match_features f JOIN clm_sync_new_records n ON {_lookup(rule)}")
                )
                for rule in BLOCKING_RULES
            )
        )
        ids = {int(source_id) for (source_id,) in connection.execute(found)}
    finally:
        scratch.drop(connection)
    return sorted(ids - set(new["unique_id"].tolist()))


def key_neighbours(connection: Connection, keys: Iterable[tuple[str, str]]) -> list[int]:
    """Live records whose stored features have one of these e-mails or phones."""
    found: set[int] = set()
    for kind in ("email", "phone"):
        values = sorted({value for key, value in keys if key == kind})
        for batch in in_batches(values):
            found.update(
                connection.execute(
                    select(_FEATURES.c.source_customer_id).where(_FEATURES.c[kind].in_(batch))
                ).scalars()
            )
    return sorted(found)
