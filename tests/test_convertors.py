import math
import re
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.convertors import (
    CONVERTOR_TYPES,
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
    register_url_convertor,
)


def full_match(convertor: Convertor[Any], text: str) -> bool:
    return re.fullmatch(convertor.regex, text) is not None


def test_builtin_convertors_are_registered_by_name() -> None:
    assert isinstance(CONVERTOR_TYPES["str"], StringConvertor)
    assert isinstance(CONVERTOR_TYPES["path"], PathConvertor)
    assert isinstance(CONVERTOR_TYPES["int"], IntegerConvertor)
    assert isinstance(CONVERTOR_TYPES["float"], FloatConvertor)
    assert isinstance(CONVERTOR_TYPES["uuid"], UUIDConvertor)


@pytest.mark.parametrize(
    ("convertor", "matching", "not_matching"),
    [
        (StringConvertor(), ["a", "with space", "%", "ünï"], ["", "a/b", "/"]),
        (PathConvertor(), ["", "a", "a/b/c", "/lead"], []),
        (IntegerConvertor(), ["0", "42", "007"], ["", "-1", "1.5", "a", "+1", "\u0661"]),
        (FloatConvertor(), ["0", "1.5", "10.25"], ["", "-1.5", "1.", ".5", "1e5", "nan", "inf"]),
        (
            UUIDConvertor(),
            [
                "12345678-1234-5678-1234-567812345678",
                "ABCDEF01-ABCD-ABCD-ABCD-ABCDEF012345",
                "12345678123456781234567812345678",
            ],
            ["12345678-1234-5678-1234-56781234567", "g2345678-1234-5678-1234-567812345678"],
        ),
    ],
)
def test_regex_matches_exactly_the_documented_segments(
    convertor: Convertor[Any], matching: list[str], not_matching: list[str]
) -> None:
    for text in matching:
        assert full_match(convertor, text), text
    for text in not_matching:
        assert not full_match(convertor, text), text


def test_convert_gives_python_values() -> None:
    assert CONVERTOR_TYPES["str"].convert("abc") == "abc"
    assert CONVERTOR_TYPES["path"].convert("a/b") == "a/b"
    assert CONVERTOR_TYPES["int"].convert("007") == 7
    assert CONVERTOR_TYPES["float"].convert("1.25") == 1.25
    value = "12345678123456781234567812345678"
    assert CONVERTOR_TYPES["uuid"].convert(value) == uuid.UUID(value)


def test_values_a_float_cannot_hold_are_rejected() -> None:
    # 400 digits parse as inf, which could never be formatted back: the route must not match.
    with pytest.raises(ValueError):
        FloatConvertor().convert("9" * 400)


def test_int_too_long_for_python_is_rejected_with_value_error() -> None:
    # Python refuses to parse huge digit strings; the router treats ValueError as "no match".
    with pytest.raises(ValueError):
        IntegerConvertor().convert("1" * 5000)


@pytest.mark.parametrize(
    ("convertor", "value"),
    [
        (StringConvertor(), "a/b"),
        (StringConvertor(), ""),
        (IntegerConvertor(), -1),
        (FloatConvertor(), -0.5),
        (FloatConvertor(), math.nan),
        (FloatConvertor(), math.inf),
    ],
)
def test_to_string_refuses_values_the_regex_could_not_match(
    convertor: Convertor[Any], value: Any
) -> None:
    with pytest.raises(ValueError):
        convertor.to_string(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5.0, "5"),
        (0.0, "0"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1e22, "10000000000000000000000"),
        (1e-25, "0.0000000000000000000000001"),
    ],
)
def test_float_to_string_is_short_and_exact(value: float, text: str) -> None:
    assert FloatConvertor().to_string(value) == text


def test_uuid_to_string_is_canonical() -> None:
    value = uuid.UUID("ABCDEF01ABCDABCDABCDABCDEF012345")
    assert UUIDConvertor().to_string(value) == "abcdef01-abcd-abcd-abcd-abcdef012345"


@given(st.integers(min_value=0, max_value=10**200))
def test_int_round_trips(value: int) -> None:
    convertor = IntegerConvertor()
    text = convertor.to_string(value)
    assert full_match(convertor, text)
    assert convertor.convert(text) == value


@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False))
def test_float_round_trips(value: float) -> None:
    convertor = FloatConvertor()
    text = convertor.to_string(value)
    assert full_match(convertor, text)
    assert convertor.convert(text) == value


@given(st.uuids())
def test_uuid_round_trips(value: uuid.UUID) -> None:
    convertor = UUIDConvertor()
    text = convertor.to_string(value)
    assert full_match(convertor, text)
    assert convertor.convert(text) == value


@given(st.text(st.characters(exclude_characters="/"), min_size=1))
def test_str_round_trips(value: str) -> None:
    convertor = StringConvertor()
    text = convertor.to_string(value)
    assert full_match(convertor, text)
    assert convertor.convert(text) == value


class HexConvertor(Convertor[int]):
    regex = "[0-9a-f]+"

    def convert(self, value: str) -> int:
        return int(value, 16)

    def to_string(self, value: int) -> str:
        return format(value, "x")


def test_register_url_convertor_adds_to_the_registry() -> None:
    convertor = HexConvertor()
    register_url_convertor("test-hex", convertor)
    try:
        assert CONVERTOR_TYPES["test-hex"] is convertor
    finally:
        del CONVERTOR_TYPES["test-hex"]
