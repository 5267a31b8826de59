"""The OTLP normaliser's fast paths against the general ones they shortcut: for every generated
value, the same result (or the same refusal)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


def _general(fn: Any, value: Any) -> tuple[str, str]:
    """What the general reading (`_number`) gives for `value`, typed and exact."""
    try:
        number = fn({"k": value}, "k")
    except ValueError:
        return ("refused", "")
    return (type(number).__name__, str(number))


@given(_numberish)
def test_count_fast_path_reads_as_number(value: Any) -> None:
    def general(attrs: dict[str, Any], key: str) -> int | None:
        number = otlp._number(attrs, key)
        return None if number is None else int(number)

    assert _general(otlp._count, value) == _general(general, value)


@given(_numberish)
def test_cost_fast_path_reads_as_number(value: Any) -> None:
    assert _general(otlp._cost, value) == _general(otlp._number, value)
    if isinstance(value, float) and value == value and value >= 0 and value != float("inf"):
        assert otlp._cost({"k": value}, "k") == Decimal(str(value))


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
def test_value_of_string_shortcut_reads_the_oneof(v: AnyValue) -> None:
    kind = v.WhichOneof("value")
    expected = None if kind is None else getattr(v, kind)
    got = otlp.value_of(v)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)  # NaN
