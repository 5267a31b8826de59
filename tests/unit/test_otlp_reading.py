"""The OTLP normaliser's one reading of a value and of a number, against what OTLP sends: for
every generated value, the exact result (or the refusal) an independent reading predicts."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from ulid import ULID

from claresia_sync.telemetry import otlp

_numberish = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["12", " 7 ", "-1", "1e3", "0.5", "abc", "", "NaN", "-0", "1e400"])
    | st.text(max_size=6)
    | st.lists(st.integers(), max_size=2)
)


def _expected(value: Any) -> Decimal | str | None:
    """What OTLP's value means as a number, worked out by kind: "refused" when it is none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if value >= 0 else "refused"
    if isinstance(value, float):
        finite = not math.isnan(value) and not math.isinf(value) and value >= 0
        return Decimal(repr(value)) if finite else "refused"
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return "refused"
        return number if number.is_finite() and number >= 0 else "refused"
    return "refused"  # a list, a map: not a number


@given(_numberish)
def test_a_number_reads_as_its_kind_says(value: Any) -> None:
    expected = _expected(value)
    if expected == "refused":
        with pytest.raises(ValueError, match=r"^k is "):
            otlp._number({"k": value}, "k")
        with pytest.raises(ValueError, match=r"^k is "):
            otlp._count({"k": value}, "k")
        return
    number = otlp._number({"k": value}, "k")
    assert type(number) is type(expected) and str(number) == str(expected)
    count = otlp._count({"k": value}, "k")
    assert type(count) is int and count == (0 if expected is None else int(expected))


@given(st.integers(0, 2**40))
def test_an_otlp_int_is_its_own_count(value: int) -> None:
    assert otlp._count({"k": value}, "k") == value


@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_an_otlp_double_is_the_decimal_of_its_repr(value: float) -> None:
    assert otlp._number({"k": value}, "k") == Decimal(str(value)) == Decimal(repr(value))


def test_an_absent_number_is_none_and_counts_zero() -> None:
    assert otlp._number({}, "k") is None and otlp._count({}, "k") == 0


@given(st.binary(min_size=16, max_size=16))
def test_ulid_text_is_the_ulid(raw: bytes) -> None:
    assert otlp.ulid_text(raw) == str(ULID.from_bytes(raw))


_any_value = st.one_of(
    st.builds(AnyValue),
    st.text().map(lambda s: AnyValue(string_value=s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats().map(lambda f: AnyValue(double_value=f)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
)


@given(_any_value)
def test_value_of_reads_the_oneof(v: AnyValue) -> None:
    kind = v.WhichOneof("value")
    expected = None if kind is None else getattr(v, kind)
    got = otlp.value_of(v)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)  # NaN


@given(
    st.lists(st.tuples(st.text(max_size=8), _any_value), max_size=6),
    st.frozensets(st.text(max_size=8)),
)
def test_a_records_attributes_read_through_the_map_are_those_of_the_list(
    pairs: list[tuple[str, AnyValue]], keys: frozenset[str]
) -> None:
    """`otlp_lean` reads a record's attributes as a map over the same bytes: the same dict as
    the generated classes' list (the last of two entries with one key wins), and a lookup of
    some keys the same as filtering all."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    from claresia_sync.telemetry.otlp_lean import lean

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.attributes.extend(KeyValue(key=k, value=v) for k, v in pairs)
    every = otlp.attributes(record.attributes)
    assert list(every) == list(dict(pairs))
    (read,) = lean(request).resource_logs[0].scope_logs[0].log_records
    mapped = otlp.record_attributes(read)
    some = otlp.record_attributes(read, tuple(keys))
    assert set(mapped) == set(every) and set(some) == set(every) & keys
    for key, value in mapped.items():
        assert value == every[key] or (value != value and every[key] != every[key])
        if key in some:
            assert some[key] == value or (value != value and some[key] != some[key])
