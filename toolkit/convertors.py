"""Path parameter convertors: how ``{name:type}`` in a route path matches, converts and formats."""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")


class Convertor(Generic[T]):
    """Turns a matched path segment into a Python value and back.

    ``regex`` is the pattern the segment must match; a value that matches the
    regex but fails ``convert`` with ``ValueError`` makes the route not match.
    """

    regex: ClassVar[str] = ""

    def convert(self, value: str) -> T:
        raise NotImplementedError()

    def to_string(self, value: T) -> str:
        raise NotImplementedError()


class StringConvertor(Convertor[str]):
    """One path segment: anything but ``/``, never empty."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        value = str(value)
        if "/" in value:
            raise ValueError("May not contain path separators")
        if not value:
            raise ValueError("Must not be empty")
        return value


class PathConvertor(Convertor[str]):
    """The rest of the path, slashes included."""

    regex = ".*"

    def convert(self, value: str) -> str:
        return str(value)

    def to_string(self, value: str) -> str:
        return str(value)


class IntegerConvertor(Convertor[int]):
    """A non-negative decimal integer."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        value = int(value)
        if value < 0:
            raise ValueError("Negative integers are not supported")
        return str(value)


class FloatConvertor(Convertor[float]):
    """A non-negative decimal number, with an optional fractional part.

    Digits too many for a float (which would become ``inf``) do not match, so
    every value converted can be formatted back.
    """

    regex = r"[0-9]+(?:\.[0-9]+)?"

    def convert(self, value: str) -> float:
        number = float(value)
        if math.isinf(number):
            raise ValueError("Too large for a float")
        return number

    def to_string(self, value: float) -> str:
        value = float(value)
        if value < 0.0:
            raise ValueError("Negative floats are not supported")
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN and infinite values are not supported")
        # The shortest digits that read back as the same float, without an exponent
        # (abs: -0.0 is not negative, but its repr has a sign).
        text = format(Decimal(repr(abs(value))), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text


class UUIDConvertor(Convertor[uuid.UUID]):
    """A UUID as 32 hex digits (either case), hyphenated or not; formatted hyphenated."""

    regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(value)


CONVERTOR_TYPES: dict[str, Convertor[Any]] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntegerConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}


def register_url_convertor(key: str, convertor: Convertor[Any]) -> None:
    """Make ``{name:key}`` usable in route paths compiled from now on."""
    CONVERTOR_TYPES[key] = convertor
