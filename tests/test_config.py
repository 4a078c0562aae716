"""toolkit.config: Config, casting, defaults, .env files and the Environ guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from toolkit import datastructures
from toolkit.config import (
    CommaSeparatedStrings,
    Config,
    Environ,
    EnvironError,
    Secret,
    environ,
    parse_env,
)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_secret_and_comma_separated_strings_are_the_datastructures_ones() -> None:
    assert Secret is datastructures.Secret
    assert CommaSeparatedStrings is datastructures.CommaSeparatedStrings


def test_values_casts_and_defaults(tmp_path: Path) -> None:
    path = write_env(
        tmp_path,
        "# comment\n"
        "DATABASE_URL=postgres://user:pass@localhost/db\n"
        "REQUEST_TIMEOUT=10\n"
        "RATIO=0.5\n"
        "SECRET_KEY='12345'\n"
        "ALLOWED_HOSTS=a.example, b.example,'c, d'\n"
        "DEBUG=true\n"
        "\n"
        "not a setting\n",
    )
    config = Config(path, environ={"DEBUG": "0"})
    assert config("DATABASE_URL") == "postgres://user:pass@localhost/db"
    assert config("REQUEST_TIMEOUT", cast=int) == 10
    assert config("RATIO", cast=float) == 0.5
    secret = config("SECRET_KEY", cast=Secret)
    assert repr(secret) == "Secret('**********')"
    assert str(secret) == "12345"
    assert list(config("ALLOWED_HOSTS", cast=CommaSeparatedStrings)) == [
        "a.example",
        "b.example",
        "c, d",
    ]
    # The environment wins over the file.
    assert config("DEBUG", cast=bool) is False
    # Defaults are cast too; a None default stays None.
    assert config("MISSING", cast=int, default="42") == 42
    assert config("MISSING", default=None) is None
    assert config("MISSING", cast=int, default=None) is None
    assert config.get("REQUEST_TIMEOUT", int) == 10
    with pytest.raises(KeyError, match="Config 'MISSING' is missing, and has no default"):
        config("MISSING")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
        (" true ", True),
    ],
)
def test_bool_strings(value: str, expected: bool) -> None:
    assert Config(environ={"FLAG": value})("FLAG", cast=bool) is expected


def test_bool_default_that_is_already_a_bool() -> None:
    assert Config(environ={})("FLAG", cast=bool, default=True) is True


@pytest.mark.parametrize(
    ("value", "cast", "message"),
    [
        ("maybe", bool, "Config 'KEY' has value 'maybe'. Not a valid bool."),
        ("ten", int, "Config 'KEY' has value 'ten'. Not a valid int."),
        ("1.5.2", float, "Config 'KEY' has value '1.5.2'. Not a valid float."),
    ],
)
def test_cast_errors_name_the_setting(value: str, cast: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Config(environ={"KEY": value})("KEY", cast=cast)
    assert str(info.value) == message


def test_cast_error_from_a_callable_without_a_name() -> None:
    class Parser:
        def __call__(self, value: str) -> int:
            raise ValueError("nope")

    with pytest.raises(ValueError, match="Not a valid <"):
        Config(environ={"KEY": "x"})("KEY", cast=Parser())


def test_env_prefix(tmp_path: Path) -> None:
    path = write_env(tmp_path, "APP_NAME=from-file\nNAME=unprefixed\n")
    config = Config(path, environ={"APP_PORT": "8000"}, env_prefix="APP_")
    assert config("NAME") == "from-file"
    assert config("PORT", cast=int) == 8000
    with pytest.raises(KeyError, match="APP_MISSING"):
        config("MISSING")


def test_encoding(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes("GREETING=héllo\n".encode("latin-1"))
    assert Config(path, environ={}, encoding="latin-1")("GREETING") == "héllo"


def test_missing_env_file_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not found"):
        config = Config(tmp_path / "absent.env", environ={"A": "1"})
    assert config("A") == "1"


def test_parse_env() -> None:
    text = "\n".join(
        [
            "  # a comment",
            "export EXPORTED=yes",
            "SPACED = around equals ",
            "EMPTY=",
            "SINGLE='kept as is \\n # not a comment'",
            'DOUBLE="line\\nbreak, tab\\t, quote\\" and \\\\ slash" # trailing comment',
            'UNKNOWN_ESCAPE="a\\qb"',
            "UNQUOTED=value # comment",
            "HASH_IN_VALUE=abc#def",
            'UNCLOSED="abc',
            "EQUALS=a=b=c",
            "=no key",
            "no equals sign",
        ]
    )
    assert parse_env(text) == {
        "EXPORTED": "yes",
        "SPACED": "around equals",
        "EMPTY": "",
        "SINGLE": "kept as is \\n # not a comment",
        "DOUBLE": 'line\nbreak, tab\t, quote" and \\ slash',
        "UNKNOWN_ESCAPE": "a\\qb",
        "UNQUOTED": "value",
        "HASH_IN_VALUE": "abc#def",
        "UNCLOSED": '"abc',
        "EQUALS": "a=b=c",
    }


def test_environ_guards_values_already_read() -> None:
    backing: dict[str, str] = {"READ": "1", "UNREAD": "2"}
    guarded = Environ(backing)
    guarded["NEW"] = "3"
    del guarded["NEW"]
    assert guarded["READ"] == "1"
    with pytest.raises(EnvironError, match="environ\\['READ'\\]"):
        guarded["READ"] = "changed"
    with pytest.raises(EnvironError, match="delete"):
        del guarded["READ"]
    guarded["UNREAD"] = "changed"
    del guarded["UNREAD"]
    assert set(guarded) == {"READ"}
    assert len(guarded) == 1
    assert backing == {"READ": "1"}


def test_config_reads_mark_the_default_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "TOOLKIT_CONFIG_TEST_VARIABLE"
    monkeypatch.setenv(key, "before")
    assert Config()(key) == "before"
    with pytest.raises(EnvironError):
        environ[key] = "after"
    assert os.environ[key] == "before"
