"""One-dimensional PostgreSQL arrays in their binary form, built a column at a time, as query
parameters (`%b`).

psycopg dumps a list parameter element by element in Python (`types/array.py`: a dumper lookup,
a call and three appends per element): the OTLP receiver's usage statement spent ~13 us of
client CPU per activation there (bench/RESULTS.md, "Session 8: OTLP"). Here a column is
encoded with `map`/`zip`/`join`, which iterate in C: the same bytes, a fraction of the cost.

Wrap a column (`text_array(values)`, ...) and register `DUMPERS` on the cursor that executes
the statement (`register(cursor)`); the statement casts each parameter to its array type as it
would a list's (`%(ids)b::text[]`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat

from psycopg import adapt, postgres
from psycopg.abc import AdaptContext
from psycopg.pq import Format

_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)


class _Array(bytes):
    """An array's binary form; the subclass names its PostgreSQL type."""

    type_name = ""


class TextArray(_Array):
    type_name = "text"


class Int8Array(_Array):
    type_name = "int8"


def _header(element: str, size: int, has_null: bool) -> bytes:
    oid = postgres.types[element].oid
    if not size:
        return struct.pack(">iiI", 0, 0, oid)  # no dimension: '{}'
    return struct.pack(">iiIii", 1, has_null, oid, size, 1)


def text_array(values: Sequence[str | None]) -> TextArray:
    """A `text[]` of these strings (None: NULL)."""
    if None in values:
        items = [_NULL if v is None else _LENGTH(len(e := v.encode())) + e for v in values]
        return TextArray(_header("text", len(values), True) + b"".join(items))
    encoded = list(map(str.encode, values))  # type: ignore[arg-type]  # no None here
    sizes = set(map(len, encoded))
    if len(sizes) == 1:  # ids, UUIDs, one tenant: every element after the same length word
        length = _LENGTH(sizes.pop())
        body = length + length.join(encoded)
    else:
        body = b"".join([_LENGTH(len(e)) + e for e in encoded])
    return TextArray(_header("text", len(values), False) + body)


_INT8 = struct.Struct(">iq").pack  # an element: its length (8), then its value


def int8_array(values: Sequence[int]) -> Int8Array:
    """A `bigint[]` of these integers (none NULL)."""
    return Int8Array(_header("int8", len(values), False) + b"".join(map(_INT8, repeat(8), values)))


def _dumper(kind: type[_Array]) -> type[adapt.Dumper]:
    class Dumper(adapt.Dumper):
        format = Format.BINARY
        oid = postgres.types[kind.type_name].array_oid

        def dump(self, obj: bytes) -> bytes:
            return obj

    Dumper.__name__ = f"{kind.__name__}Dumper"
    return Dumper


DUMPERS = {kind: _dumper(kind) for kind in (TextArray, Int8Array)}


def register(cursor: AdaptContext) -> None:
    """Let this cursor send the arrays made here (for it alone)."""
    for kind, dumper in DUMPERS.items():
        cursor.adapters.register_dumper(kind, dumper)
