"""Typed rows at the database boundary, at no cost per row.

A part declares the rows its queries return as subclasses of :class:`Row` with one typed
:class:`Column` per column, in its own ``rows.py``, and passes the class to asyncpg
(``conn.fetch(query, *args, record_class=EventRow)``). asyncpg then builds its records as that
class directly, so nothing is copied, and the code reads ``row.job_id`` (checked by mypy)
instead of ``row["job_id"]`` (checked by nothing). A column the query does not return
raises ``KeyError`` on first use, which the tests of every query's path meet.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

import asyncpg

__all__ = ["Column", "Row"]

T = TypeVar("T")


class Row(asyncpg.Record):
    """Base of typed row classes (asyncpg forbids them their own ``__init__``/``__new__``)."""


class Column(Generic[T]):
    """One typed column of a :class:`Row` class: reads the record's value of that name."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, row: None, owner: type[Any]) -> Column[T]: ...

    @overload
    def __get__(self, row: Row, owner: type[Any]) -> T: ...

    def __get__(self, row: Row | None, owner: type[Any]) -> Column[T] | T:
        if row is None:
            return self
        value: T = row[self.name]
        return value
