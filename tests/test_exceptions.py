"""toolkit.exceptions: the exceptions handlers raise to answer with an error."""

from __future__ import annotations

import pytest

from toolkit.exceptions import HTTPException, WebSocketException


def test_http_exception_detail_defaults_to_the_status_phrase() -> None:
    exc = HTTPException(404)
    assert exc.status_code == 404
    assert exc.detail == "Not Found"
    assert exc.headers is None


def test_http_exception_keeps_detail_and_headers() -> None:
    exc = HTTPException(401, detail="Log in first", headers={"WWW-Authenticate": "Bearer"})
    assert exc.detail == "Log in first"
    assert exc.headers == {"WWW-Authenticate": "Bearer"}


def test_http_exception_empty_detail_is_kept() -> None:
    assert HTTPException(400, detail="").detail == ""


def test_http_exception_str_and_repr() -> None:
    exc = HTTPException(418)
    assert str(exc) == "418: I'm a Teapot"
    assert repr(exc) == 'HTTPException(status_code=418, detail="I\'m a Teapot")'


def test_http_exception_repr_names_the_subclass() -> None:
    class PaymentRequired(HTTPException):
        pass

    assert repr(PaymentRequired(402, "pay up")) == (
        "PaymentRequired(status_code=402, detail='pay up')"
    )


def test_http_exception_unknown_status_without_detail_is_rejected() -> None:
    with pytest.raises(ValueError):
        HTTPException(999)


def test_http_exception_unknown_status_with_detail_is_allowed() -> None:
    assert str(HTTPException(599, "Network timeout")) == "599: Network timeout"


def test_http_exception_can_be_raised_and_caught_as_exception() -> None:
    with pytest.raises(HTTPException) as info:
        raise HTTPException(503)
    assert info.value.args == (503, "Service Unavailable")


def test_websocket_exception_code_and_reason() -> None:
    exc = WebSocketException(1008, reason="policy")
    assert exc.code == 1008
    assert exc.reason == "policy"
    assert str(exc) == "1008: policy"
    assert repr(exc) == "WebSocketException(code=1008, reason='policy')"


def test_websocket_exception_reason_defaults_to_empty() -> None:
    exc = WebSocketException(1011)
    assert exc.reason == ""
    assert str(exc) == "1011: "
    assert repr(exc) == "WebSocketException(code=1011, reason='')"
