import re
from http import HTTPStatus

import toolkit.status as status

NAME = re.compile(r"(HTTP|WS)_(\d{3,4})_[A-Z0-9_]+")


def test_every_exported_name_is_an_int_matching_the_number_in_its_name() -> None:
    for name in status.__all__:
        match = NAME.fullmatch(name)
        assert match is not None, name
        value = getattr(status, name)
        assert type(value) is int
        assert value == int(match[2]), name


def test_all_lists_every_constant_in_the_module_and_nothing_else() -> None:
    constants = {name for name in vars(status) if NAME.fullmatch(name)}
    assert set(status.__all__) == constants
    assert len(status.__all__) == len(set(status.__all__))


def test_every_registered_http_status_has_a_constant() -> None:
    exported = {getattr(status, name) for name in status.__all__ if name.startswith("HTTP_")}
    assert {code.value for code in HTTPStatus} <= exported


def test_rfc_9110_names_and_their_older_aliases() -> None:
    assert status.HTTP_413_CONTENT_TOO_LARGE == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE == 413
    assert status.HTTP_414_URI_TOO_LONG == status.HTTP_414_REQUEST_URI_TOO_LONG == 414
    assert (
        status.HTTP_416_RANGE_NOT_SATISFIABLE
        == status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE
        == 416
    )
    assert status.HTTP_422_UNPROCESSABLE_CONTENT == status.HTTP_422_UNPROCESSABLE_ENTITY == 422


def test_boundary_codes_exist() -> None:
    assert status.HTTP_100_CONTINUE == 100
    assert status.HTTP_306_RESERVED == 306
    assert status.HTTP_418_IM_A_TEAPOT == 418
    assert status.HTTP_511_NETWORK_AUTHENTICATION_REQUIRED == 511


def test_websocket_close_codes() -> None:
    ws = {getattr(status, name) for name in status.__all__ if name.startswith("WS_")}
    # 1004 is reserved with no meaning, so it has no constant.
    assert ws == set(range(1000, 1016)) - {1004}
    assert status.WS_1000_NORMAL_CLOSURE == 1000
    assert status.WS_1012_SERVICE_RESTART == 1012
    assert status.WS_1013_TRY_AGAIN_LATER == 1013
    assert status.WS_1014_BAD_GATEWAY == 1014
    assert status.WS_1015_TLS_HANDSHAKE == 1015


def test_star_import_gives_the_constants() -> None:
    namespace: dict[str, object] = {}
    exec("from toolkit.status import *", namespace)
    assert namespace["HTTP_404_NOT_FOUND"] == 404
    assert namespace["WS_1011_INTERNAL_ERROR"] == 1011
