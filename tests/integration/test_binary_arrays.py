"""The arrays built by `claresia_sync.db.binary_arrays` read back in PostgreSQL as the lists
they were made of, equal to the arrays psycopg makes of the same lists."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from claresia_sync.db import binary_arrays
from claresia_sync.db.binary_arrays import int8_array, text_array

TEXTS: list[list[Any]] = [
    [],
    ["otlp_01JQ4X8ZK3M2V9W7T5R6Y1B0CD", "otlp_01JQ4X8ZK3M2V9W7T5R6Y1B0CE"],  # one length
    ["a", "", "déjà vu €", "x" * 300, "q"],  # lengths differ, multi-byte characters
    ["a", None, "", None],
    [None],
    ["same"] * 3,
]
INTS: list[list[int]] = [[], [0, -1, 2**63 - 1, -(2**63), 5], [42] * 4]


@pytest.mark.parametrize("values", TEXTS)
def test_a_text_array_reads_back_as_its_list(engine: Engine, values: list[Any]) -> None:
    _reads_back(engine, "text", text_array(values), values)


@pytest.mark.parametrize("values", INTS)
def test_a_bigint_array_reads_back_as_its_list(engine: Engine, values: list[int]) -> None:
    _reads_back(engine, "bigint", int8_array(values), values)


def _reads_back(engine: Engine, kind: str, made: bytes, values: list[Any]) -> None:
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            binary_arrays.register(cur)
            cur.execute(
                f"SELECT %b::{kind}[], %b::{kind}[] IS NOT DISTINCT FROM %b::{kind}[], "
                f"cardinality(%b::{kind}[])",
                (made, made, values, made),
            )
            back, same, size = cur.fetchone() or (None, None, None)
    assert back == values
    assert same is True
    assert size == len(values)
