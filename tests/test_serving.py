"""toolkit.serving: what serve() checks before it opens any socket."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.serving import serve


async def never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("serve() must fail before running the app")


async def test_unknown_option_is_a_type_error_naming_it_with_a_suggestion() -> None:
    with pytest.raises(TypeError) as error:
        await serve(never_called, port=0, graceful_timout=1, colour="blue")
    message = str(error.value)
    assert "'colour'" in message
    assert "'graceful_timout' (did you mean 'graceful_timeout'?)" in message


@pytest.mark.parametrize(
    "name",
    [
        "_log",  # private state
        "log",  # read-only property
        "from_mapping",  # classmethod
        "create_sockets",  # method
        "application_path",  # only meaningful to hypercorn's command line
    ],
)
async def test_config_names_that_are_not_settings_are_rejected(name: str) -> None:
    with pytest.raises(TypeError, match=f"'{name}'"):
        await serve(never_called, port=0, **{name: None})


async def test_bind_is_rejected_in_favour_of_host_and_port() -> None:
    with pytest.raises(TypeError, match=r"'bind' \(use host= and port=\)"):
        await serve(never_called, port=0, bind=["127.0.0.1:0"])
