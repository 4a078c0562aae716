"""Settings from the environment and a ``.env`` file, cast to the types the app wants.

    config = Config(".env")
    DEBUG = config("DEBUG", cast=bool, default=False)
    DATABASE_URL = config("DATABASE_URL")
    SECRET_KEY = config("SECRET_KEY", cast=Secret)
    ALLOWED_HOSTS = config("ALLOWED_HOSTS", cast=CommaSeparatedStrings, default="localhost")

The environment wins over the file. ``environ`` guards ``os.environ``: once a
variable has been read through it, changing it raises ``EnvironError``, so a
test cannot set a value after the app has already read it and believe it
took effect.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypeVar, overload

from toolkit.datastructures import CommaSeparatedStrings, Secret

__all__ = ["CommaSeparatedStrings", "Config", "Environ", "EnvironError", "Secret", "environ"]

T = TypeVar("T")

_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class undefined:
    """The default of a setting with no default: reading it when it is missing is an error."""


class EnvironError(Exception):
    """A variable was changed after it had been read."""


class Environ(MutableMapping[str, str]):
    """A view of ``os.environ`` (or any mapping) that refuses to change what was already read."""

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._has_been_read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self._has_been_read.add(key)
        return self._environ[key]

    def __setitem__(self, key: str, value: str) -> None:
        if key in self._has_been_read:
            raise EnvironError(
                f"Attempting to set environ['{key}'], but the value has already been read."
            )
        self._environ[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self._has_been_read:
            raise EnvironError(
                f"Attempting to delete environ['{key}'], but the value has already been read."
            )
        del self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


environ = Environ()


class Config:
    """Read settings: ``config(key, cast=None, default=...)``.

    ``env_prefix`` is put before every key looked up. A missing ``env_file``
    only warns (a deployment may set everything in the environment).
    """

    def __init__(
        self,
        env_file: str | Path | None = None,
        environ: Mapping[str, str] = environ,
        env_prefix: str = "",
        encoding: str = "utf-8",
    ) -> None:
        self.environ = environ
        self.env_prefix = env_prefix
        self.file_values: dict[str, str] = {}
        if env_file is not None:
            if os.path.isfile(env_file):
                self.file_values = self._read_file(env_file, encoding)
            else:
                warnings.warn(f"Config file '{env_file}' not found.", stacklevel=2)

    @overload
    def __call__(self, key: str, *, default: None) -> str | None: ...

    @overload
    def __call__(self, key: str, cast: type[T], default: T = ...) -> T: ...

    @overload
    def __call__(self, key: str, cast: type[str] = ..., default: str = ...) -> str: ...

    @overload
    def __call__(self, key: str, cast: Callable[[Any], T] = ..., default: Any = ...) -> T: ...

    @overload
    def __call__(self, key: str, cast: type[str] = ..., default: T = ...) -> T | str: ...

    def __call__(
        self, key: str, cast: Callable[[Any], Any] | None = None, default: Any = undefined
    ) -> Any:
        return self.get(key, cast, default)

    def get(
        self, key: str, cast: Callable[[Any], Any] | None = None, default: Any = undefined
    ) -> Any:
        """The setting ``key``: from the environment, else the file, else ``default``; cast."""
        key = self.env_prefix + key
        if key in self.environ:
            return self._perform_cast(key, self.environ[key], cast)
        if key in self.file_values:
            return self._perform_cast(key, self.file_values[key], cast)
        if default is not undefined:
            return self._perform_cast(key, default, cast)
        raise KeyError(f"Config '{key}' is missing, and has no default.")

    def _read_file(self, file_name: str | Path, encoding: str) -> dict[str, str]:
        with open(file_name, encoding=encoding) as env_file:
            return parse_env(env_file.read())

    def _perform_cast(self, key: str, value: Any, cast: Callable[[Any], Any] | None) -> Any:
        if cast is None or value is None:
            return value
        if cast is bool and isinstance(value, str):
            try:
                return _BOOLEANS[value.strip().lower()]
            except KeyError:
                raise ValueError(f"Config '{key}' has value '{value}'. Not a valid bool.") from None
        try:
            return cast(value)
        except (TypeError, ValueError):
            name = getattr(cast, "__name__", repr(cast))
            raise ValueError(f"Config '{key}' has value '{value}'. Not a valid {name}.") from None


def parse_env(text: str) -> dict[str, str]:
    """The ``KEY=value`` pairs of a ``.env`` file.

    Blank lines and ``#`` comments are skipped, as is a leading ``export``.
    A value in single quotes is taken as it is; in double quotes, ``\\n``,
    ``\\t``, ``\\"`` and ``\\\\`` are unescaped; unquoted, it ends at `` #``.
    Lines without ``=`` are ignored.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not key:
            continue
        values[key] = _parse_value(value.strip())
    return values


def _parse_value(value: str) -> str:
    quote = value[:1]
    if quote in ("'", '"'):
        end = _closing_quote(value, quote)
        if end > 0:
            inner = value[1:end]
            return inner if quote == "'" else _unescape(inner)
    comment = value.find(" #")
    return value if comment < 0 else value[:comment].rstrip()


def _closing_quote(value: str, quote: str) -> int:
    """Where the quote opened at 0 closes (-1 if it does not); ``\\"`` does not close ``"``."""
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\" and quote == '"':
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            out.append(_ESCAPES.get(escaped, "\\" + escaped))
        else:
            out.append(char)
    return "".join(out)
