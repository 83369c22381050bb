"""Bulk statements for the hot paths: many rows in, many ids looked up.

SQLAlchemy's ``execute(insert(table), rows)`` spends several microseconds of Python per row on
bookkeeping a plain INSERT does not need; :func:`insert_rows` converts only the columns whose
type needs it (dates, money, label lists), converts the columns every row shares once, and
hands the rows to PostgreSQL's COPY or to SQLite's ``executemany`` of a statement compiled
once per table and set of columns. Looking rows up by a page of ids is one statement with
one parameter on both databases (see :func:`among_ids`). ``bench/ingest.py`` shows the
difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import repeat
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Insert,
    String,
    Table,
    any_,
    func,
    insert,
    select,
)
from sqlalchemy import bindparam as bind_parameter
from sqlalchemy.sql.selectable import TableValuedAlias

from sync.types import UTCDateTime

_Processor = Callable[[Any], Any] | None


@lru_cache(maxsize=128)
def _compiled_insert(
    table: Table, dialect: Dialect, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...], bool]:
    """The INSERT's text, its parameter names in order, and whether they are positional."""
    compiled = table.insert().compile(dialect=dialect, column_keys=list(keys))
    if compiled.positiontup is None:
        return str(compiled), keys, False
    return str(compiled), tuple(compiled.positiontup), True


@lru_cache(maxsize=512)
def _processor(table: Table, name: str, dialect: Dialect) -> _Processor:
    """The column's conversion as SQLAlchemy's own statements apply it on this database.

    Through ``dialect_impl``: the column type's own ``bind_processor`` skips the dialect's
    implementation, which on SQLite stored money as a float's text and datetimes in
    another format than the rows SQLAlchemy updates.
    """
    column_type = table.c[name].type
    if dialect.name == "sqlite" and isinstance(column_type, UTCDateTime):
        return _sqlite_datetime_text(column_type, dialect)
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_datetime_text(column_type: UTCDateTime, dialect: Dialect) -> Callable[[Any], Any]:
    """The text SQLAlchemy's SQLite DATETIME stores, without its dictionary and %-format.

    Half the cost per value; tests/test_bulk.py checks the text is the same.
    """
    to_utc = column_type.process_bind_param

    def convert(value: datetime | None) -> str | None:
        naive = to_utc(value, dialect)
        return None if naive is None else naive.isoformat(" ", "microseconds")

    return convert


def _converted(
    connection: Connection,
    table: Table,
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    same_for_all: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """Each row's values in ``names`` order, as the driver takes them.

    Column by column: one list comprehension per column is several times cheaper than a
    generator per row with a branch per value.
    """
    dialect = connection.dialect
    columns: list[Any] = []
    for name in names:
        process = _processor(table, name, dialect)
        if name in same_for_all:
            value = same_for_all[name]
            columns.append(repeat(value if process is None else process(value), len(rows)))
        elif process is None:
            columns.append([row[name] for row in rows])
        else:
            columns.append([process(row[name]) for row in rows])
    return list(zip(*columns, strict=True))


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    same_for_all: Mapping[str, Any] | None = None,
) -> None:
    """INSERT ``rows`` (mappings with the same keys) plus the ``same_for_all`` columns.

    PostgreSQL gets them through COPY, SQLite through one ``executemany``; both inside the
    connection's transaction.
    """
    if not rows:
        return
    same_for_all = same_for_all or {}
    keys = tuple(key for key in rows[0] if key not in same_for_all) + tuple(same_for_all)
    if connection.dialect.name == "postgresql":
        columns = ", ".join(connection.dialect.identifier_preparer.quote(key) for key in keys)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for values in _converted(connection, table, keys, rows, same_for_all):
                copy.write_row(values)
        return
    statement, names, positional = _compiled_insert(table, connection.dialect, keys)
    converted = _converted(connection, table, names, rows, same_for_all)
    if positional:
        connection.exec_driver_sql(statement, converted)
    else:
        connection.exec_driver_sql(
            statement, [dict(zip(names, values, strict=True)) for values in converted]
        )


def insert_ids(
    connection: Connection,
    table: Table,
    column: str,
    ids: Sequence[str],
    same_for_all: Mapping[str, Any],
) -> None:
    """INSERT one row per id (into ``column``) plus the ``same_for_all`` columns.

    On SQLite one ``INSERT ... SELECT`` over ``json_each``: the ids reach SQLite as one JSON
    text instead of one bound row each, a third of the cost per id. PostgreSQL gets COPY.
    """
    if connection.dialect.name != "sqlite":
        insert_rows(connection, table, [{column: value} for value in ids], same_for_all)
        return
    statement = _insert_ids_statement(table, column, tuple(same_for_all))
    connection.execute(statement, {**same_for_all, "ids": json.dumps(list(ids))})


@lru_cache(maxsize=32)
def _insert_ids_statement(table: Table, key: str, shared: tuple[str, ...]) -> Insert:
    listed = _json_ids()
    shared_values = [bind_parameter(name, type_=table.c[name].type) for name in shared]
    return insert(table).from_select([key, *shared], select(listed.c.value, *shared_values))


def among_ids(column: Column[Any], dialect: Dialect) -> ColumnElement[bool]:
    """A WHERE clause: ``column`` is one of the ids given as parameter ``ids``.

    One parameter however many ids a page has, so the statement is built and compiled once:
    ``= ANY(array)`` on PostgreSQL, ``IN (SELECT value FROM json_each(?))`` on SQLite (JSON
    functions are built into SQLite since 3.38); both use the key index. Pass the ids
    through :func:`ids_parameter`.
    """
    if dialect.name == "postgresql":
        return column == any_(bind_parameter("ids", type_=ARRAY(String)))
    return column.in_(select(_json_ids().c.value))


def _json_ids() -> TableValuedAlias:
    """SQLite's ``json_each(:ids)``: the ids of one JSON-array parameter as rows of ``value``."""
    return func.json_each(bind_parameter("ids", type_=String)).table_valued("value")


def ids_parameter(dialect: Dialect, ids: Sequence[str]) -> dict[str, Any]:
    """The ``ids`` parameter of an :func:`among_ids` clause."""
    if dialect.name == "postgresql":
        return {"ids": list(ids)}
    return {"ids": json.dumps(list(ids))}
