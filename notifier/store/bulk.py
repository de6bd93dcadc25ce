"""Bulk writes for the hot path: a statement compiled once, run with the driver's executemany."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Update
from sqlalchemy.types import TypeEngine

from notifier.store.schema import UTCDateTime


class Bulk:
    """A statement compiled once per dialect and run through the driver's ``executemany``.

    The hot path writes thousands of rows per batch; SQLAlchemy's generic per-row parameter
    handling costs more than the database does. This keeps the same types (their public bind
    processors) but applies them in one tight loop.
    """

    def __init__(self, stmt: Insert | Update, types: Mapping[str, TypeEngine[Any]]) -> None:
        self._stmt = stmt
        self._types = types
        self._compiled: dict[str, tuple[str, list[str], bool, dict[str, Any], dict[str, Any]]] = {}

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement once per row (rows are dicts keyed by bind parameter)."""
        if not rows:
            return
        dialect = conn.dialect
        cached = self._compiled.get(dialect.name)
        if cached is None:
            compiled = self._stmt.compile(dialect=dialect)
            processors = {}
            for name, type_ in self._types.items():
                proc = type_.bind_processor(dialect)
                if proc is not None:
                    # Only for datetimes: identity says nothing about a mutable value.
                    memo = isinstance(type_, UTCDateTime)
                    processors[name] = _remember_last(proc) if memo else proc
            positional = bool(compiled.positional and compiled.positiontup)
            names = list(compiled.positiontup or ()) if positional else list(compiled.params)
            # Literal values in the statement (e.g. a CASE comparing with 'firing') are bound
            # parameters too; rows never carry them.
            literals = {k: v for k, v in compiled.params.items() if k not in self._types}
            cached = (str(compiled), names, positional, processors, literals)
            self._compiled[dialect.name] = cached
        sql, names, positional, processors, literals = cached
        params: list[Any] = []
        for row in rows:
            # Columns a row leaves out are NULL, as with a plain INSERT.
            values = [row[n] if n in row else literals.get(n) for n in names]
            for i, n in enumerate(names):
                process = processors.get(n)
                if process is not None and values[i] is not None:
                    values[i] = process(values[i])
            params.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
        conn.exec_driver_sql(sql, params)


def _remember_last(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a bind processor to reuse its last result: a batch stamps one ``now`` on each row."""
    last_in: Any = None
    last_out: Any = None

    def process(value: Any) -> Any:
        nonlocal last_in, last_out
        if value is not last_in:
            last_in, last_out = value, proc(value)
        return last_out

    return process
