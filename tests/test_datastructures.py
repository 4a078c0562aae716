import io
import string
import threading
from tempfile import SpooledTemporaryFile
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.datastructures import (
    URL,
    Address,
    CommaSeparatedStrings,
    FormData,
    Headers,
    ImmutableMultiDict,
    MultiDict,
    MutableHeaders,
    QueryParams,
    Secret,
    State,
    UploadFile,
    URLPath,
    parse_host_header,
)
from toolkit.types import Scope


def http_scope(**overrides: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": [],
    }
    scope.update(overrides)
    return scope


# -- Address -------------------------------------------------------------------------------------


def test_address_is_a_named_pair() -> None:
    address = Address("127.0.0.1", 8000)
    assert address.host == "127.0.0.1"
    assert address.port == 8000
    host, port = address
    assert (host, port) == ("127.0.0.1", 8000)


# -- URL from a string ---------------------------------------------------------------------------


def test_url_components() -> None:
    url = URL("https://user:secret@Example.com:8443/a/b%20c?x=1&y=2#frag")
    assert url.scheme == "https"
    assert url.netloc == "user:secret@Example.com:8443"
    assert url.path == "/a/b%20c"
    assert url.query == "x=1&y=2"
    assert url.fragment == "frag"
    assert url.username == "user"
    assert url.password == "secret"
    assert url.hostname == "example.com"
    assert url.port == 8443
    assert url.is_secure


@pytest.mark.parametrize(
    ("url", "secure"),
    [("http://a", False), ("https://a", True), ("ws://a", False), ("wss://a", True), ("/a", False)],
)
def test_url_is_secure_follows_the_scheme(url: str, secure: bool) -> None:
    assert URL(url).is_secure is secure


def test_url_without_optional_parts() -> None:
    url = URL("http://example.com")
    assert url.path == ""
    assert url.query == ""
    assert url.fragment == ""
    assert url.username is None
    assert url.password is None
    assert url.port is None


def test_relative_url() -> None:
    url = URL("/path?q=1")
    assert url.scheme == ""
    assert url.netloc == ""
    assert url.hostname is None
    assert url.path == "/path"
    assert url.query == "q=1"


def test_url_ipv6_hostname_has_no_brackets() -> None:
    url = URL("http://[::1]:8080/")
    assert url.hostname == "::1"
    assert url.port == 8080
    assert url.netloc == "[::1]:8080"


def test_url_from_components() -> None:
    url = URL(scheme="https", netloc="example.com", path="/a", query="b=1")
    assert str(url) == "https://example.com/a?b=1"


def test_url_from_component_hostname_and_port() -> None:
    assert str(URL(scheme="http", hostname="example.com", port=81, path="/")) == (
        "http://example.com:81/"
    )


def test_url_rejects_conflicting_arguments() -> None:
    with pytest.raises(AssertionError):
        URL("http://a", scope=http_scope())
    with pytest.raises(AssertionError):
        URL(scope=http_scope(), path="/x")
    with pytest.raises(AssertionError):
        URL("http://a", path="/x")


def test_url_str_and_equality() -> None:
    url = URL("http://example.com/a?b=1")
    assert str(url) == "http://example.com/a?b=1"
    assert url == "http://example.com/a?b=1"
    assert url == URL("http://example.com/a?b=1")
    assert url != "http://example.com/a"
    assert url != URL("http://example.com/a")


def test_url_repr_hides_the_password() -> None:
    assert repr(URL("http://user:secret@example.com/")) == (
        "URL('http://user:********@example.com/')"
    )
    assert repr(URL("http://user@example.com/")) == "URL('http://user@example.com/')"
    assert repr(URL("/a")) == "URL('/a')"


# -- URL.replace ---------------------------------------------------------------------------------


def test_replace_plain_components() -> None:
    url = URL("http://example.com/a?b=1#c")
    assert url.replace(scheme="https") == "https://example.com/a?b=1#c"
    assert url.replace(path="/z") == "http://example.com/z?b=1#c"
    assert url.replace(query="") == "http://example.com/a#c"
    assert url.replace(fragment="") == "http://example.com/a?b=1"
    assert url.replace(netloc="other:9") == "http://other:9/a?b=1#c"


def test_replace_returns_a_new_url() -> None:
    url = URL("http://example.com/a")
    replaced = url.replace(path="/b")
    assert isinstance(replaced, URL)
    assert url == "http://example.com/a"


def test_replace_port_keeps_user_and_host() -> None:
    url = URL("http://u:p@example.com:8000/a")
    assert url.replace(port=9000) == "http://u:p@example.com:9000/a"
    assert url.replace(port=None) == "http://u:p@example.com/a"


def test_replace_hostname_keeps_port_and_user() -> None:
    url = URL("http://u:p@example.com:8000/a")
    assert url.replace(hostname="other.org") == "http://u:p@other.org:8000/a"


def test_replace_hostname_with_ipv6_adds_brackets() -> None:
    url = URL("http://example.com:8000/a")
    assert url.replace(hostname="::1") == "http://[::1]:8000/a"
    assert url.replace(hostname="[::1]") == "http://[::1]:8000/a"
    assert url.replace(hostname="::1").hostname == "::1"


def test_replace_port_on_ipv6_url() -> None:
    assert URL("http://[::1]:8000/a").replace(port=1) == "http://[::1]:1/a"
    assert URL("http://[::1]/a").replace(port=1) == "http://[::1]:1/a"


def test_replace_username_and_password() -> None:
    url = URL("http://example.com/")
    assert url.replace(username="u") == "http://u@example.com/"
    assert url.replace(username="u", password="p") == "http://u:p@example.com/"
    assert URL("http://u:p@example.com/").replace(password="q") == "http://u:q@example.com/"
    assert URL("http://u:p@example.com/").replace(username=None) == "http://example.com/"


def test_replace_unknown_component_raises() -> None:
    with pytest.raises(ValueError):
        URL("http://a/").replace(color="blue")


# -- URL query helpers ---------------------------------------------------------------------------


def test_include_query_params_replaces_existing_and_appends_new() -> None:
    url = URL("http://example.com/p?a=1&b=2&a=3&flag#f")
    assert url.include_query_params(a=9, c="x y") == ("http://example.com/p?b=2&flag=&a=9&c=x+y#f")


def test_replace_query_params_drops_everything_else() -> None:
    url = URL("http://example.com/p?a=1&b=2")
    assert url.replace_query_params(c=3, d="é") == "http://example.com/p?c=3&d=%C3%A9"
    assert url.replace_query_params() == "http://example.com/p"


def test_remove_query_params() -> None:
    url = URL("http://example.com/p?a=1&b=2&a=3&c=4")
    assert url.remove_query_params("a") == "http://example.com/p?b=2&c=4"
    assert url.remove_query_params(["a", "c"]) == "http://example.com/p?b=2"
    assert url.remove_query_params(["missing"]) == "http://example.com/p?a=1&b=2&a=3&c=4"


def test_query_helpers_survive_a_malformed_query() -> None:
    url = URL("http://example.com/p?a=%zz&b=%FF&c")
    assert url.include_query_params(d=1) == "http://example.com/p?a=%25zz&b=%EF%BF%BD&c=&d=1"
    assert url.remove_query_params("a") == "http://example.com/p?b=%EF%BF%BD&c="


# -- URL from an ASGI scope ----------------------------------------------------------------------


def test_url_from_scope_uses_the_host_header() -> None:
    scope = http_scope(
        path="/a/b",
        query_string=b"x=1",
        headers=[(b"accept", b"*/*"), (b"host", b"example.com:8000")],
        server=("10.0.0.1", 80),
    )
    url = URL(scope=scope)
    assert url == "http://example.com:8000/a/b?x=1"
    assert url.hostname == "example.com"
    assert url.port == 8000
    assert url.path == "/a/b"
    assert url.query == "x=1"


def test_url_from_scope_uses_the_first_host_header() -> None:
    scope = http_scope(headers=[(b"host", b"first"), (b"host", b"second")])
    assert URL(scope=scope) == "http://first/"


@pytest.mark.parametrize(
    ("scheme", "server", "expected"),
    [
        ("http", ("example.com", 80), "http://example.com/p"),
        ("http", ("example.com", 8080), "http://example.com:8080/p"),
        ("https", ("example.com", 443), "https://example.com/p"),
        ("https", ("example.com", 80), "https://example.com:80/p"),
        ("ws", ("example.com", 80), "ws://example.com/p"),
        ("wss", ("example.com", 443), "wss://example.com/p"),
        ("http", ("::1", 8000), "http://[::1]:8000/p"),
        ("http", ("[::1]", 80), "http://[::1]/p"),
    ],
)
def test_url_from_scope_falls_back_to_the_server_address(
    scheme: str, server: tuple[str, int], expected: str
) -> None:
    assert URL(scope=http_scope(scheme=scheme, server=server, path="/p")) == expected


def test_url_from_scope_with_an_unknown_scheme_always_shows_the_port() -> None:
    assert URL(scope=http_scope(scheme="h3x", server=("a", 80))) == "h3x://a:80/"


def test_url_from_scope_defaults_to_http() -> None:
    scope = http_scope(server=("a", 80))
    del scope["scheme"]
    assert URL(scope=scope) == "http://a/"


@pytest.mark.parametrize(
    "host",
    [
        b"",
        b"evil.com/path",
        b"evil.com?q",
        b"evil.com#f",
        b"user@evil.com",
        b"evil .com",
        b"a:99999",
        b"a:",
        b"a:" + b"0" * 10 + b"65536",
        b"[::1",
        b"[not:an:ip:zz]",
        b"\xff\xfe",
        b"a\\b",
    ],
)
def test_url_from_scope_ignores_a_malformed_host_header(host: bytes) -> None:
    scope = http_scope(path="/p", headers=[(b"host", host)], server=("server", 8000))
    assert URL(scope=scope) == "http://server:8000/p"


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"EXAMPLE.com:65535",
        b"a:00080",
        b"127.0.0.1:1",
        b"[::1]",
        b"[2001:db8::1]:443",
        b"[v1.fe80::a+en1]",
        b"xn--bcher-kva.example",
    ],
)
def test_url_from_scope_keeps_a_well_formed_host_header(host: bytes) -> None:
    scope = http_scope(path="/p", headers=[(b"host", host)], server=("server", 8000))
    assert URL(scope=scope) == f"http://{host.decode()}/p"


def test_url_from_scope_without_server_or_host_is_relative() -> None:
    url = URL(scope=http_scope(path="/p", query_string=b"a=1"))
    assert url == "/p?a=1"
    assert url.path == "/p"
    assert url.query == "a=1"
    assert url.netloc == ""


def test_url_from_scope_without_headers_key() -> None:
    scope = http_scope(path="/p", server=("a", 80))
    del scope["headers"]
    assert URL(scope=scope) == "http://a/p"


def test_url_from_scope_with_a_unix_socket_server_is_relative() -> None:
    scope = http_scope(path="/p", server=("/run/app.sock", None))
    assert URL(scope=scope) == "/p"


def test_url_from_scope_without_a_host_escapes_a_leading_double_slash() -> None:
    url = URL(scope=http_scope(path="//evil.com/x"))
    assert url == "/%2Fevil.com/x"
    assert url.netloc == ""
    assert url.path == "/%2Fevil.com/x"


def test_url_from_scope_keeps_a_double_slash_path_under_a_host() -> None:
    url = URL(scope=http_scope(path="//x", headers=[(b"host", b"h")]))
    assert url.hostname == "h"
    assert url.path == "//x"


def test_url_from_scope_escapes_characters_that_would_change_the_path() -> None:
    scope = http_scope(path="/a?b#c\\d", query_string=b"q=1", headers=[(b"host", b"h")])
    url = URL(scope=scope)
    assert url == "http://h/a%3Fb%23c%5Cd?q=1"
    assert url.path == "/a%3Fb%23c%5Cd"
    assert url.query == "q=1"
    assert url.fragment == ""


def test_url_from_scope_adds_the_leading_slash_a_path_needs_after_a_host() -> None:
    assert URL(scope=http_scope(path="", headers=[(b"host", b"h")])) == "http://h"
    assert URL(scope=http_scope(path="x", headers=[(b"host", b"h")])) == "http://h/x"


def test_url_from_scope_query_with_unicode_and_invalid_utf8() -> None:
    scope = http_scope(query_string=b"a=caf\xc3\xa9&b=\xff", headers=[(b"host", b"h")])
    url = URL(scope=scope)
    assert url.query == "a=café&b=\ufffd"
    assert QueryParams(url.query) == QueryParams(scope["query_string"])


def test_url_from_scope_ignores_root_path_because_path_includes_it() -> None:
    scope = http_scope(root_path="/api", path="/api/items", headers=[(b"host", b"h")])
    assert URL(scope=scope) == "http://h/api/items"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM:8000", ("Example.COM", 8000)),
        ("a:000080", ("a", 80)),
        ("a:0", ("a", 0)),
        ("a:65535", ("a", 65535)),
        ("[::1]", ("[::1]", None)),
        ("[2001:db8::1]:443", ("[2001:db8::1]", 443)),
        ("[v1.fe80::a+en1]:1", ("[v1.fe80::a+en1]", 1)),
    ],
)
def test_parse_host_header(header: str, expected: tuple[str, int | None]) -> None:
    assert parse_host_header(header) == expected


@pytest.mark.parametrize(
    "header",
    [None, "", "a:", "a:65536", "a:" + "9" * 5000, "[::1", "::1", "[zz::1]", "a/b", "u@a", "a b"],
)
def test_parse_host_header_rejects_malformed_values(header: str | None) -> None:
    assert parse_host_header(header) is None


# -- URLPath -------------------------------------------------------------------------------------


def test_url_path_is_a_str_with_protocol_and_host() -> None:
    path = URLPath("/users/1", protocol="http", host="api.example.com")
    assert isinstance(path, str)
    assert path == "/users/1"
    assert path.protocol == "http"
    assert path.host == "api.example.com"
    plain = URLPath("/x")
    assert plain.protocol == ""
    assert plain.host == ""


def test_url_path_escapes_backslashes_and_a_leading_double_slash() -> None:
    assert URLPath("/a\\b") == "/a%5Cb"
    assert URLPath("//evil.com") == "/%2Fevil.com"


def test_url_path_rejects_an_unknown_protocol() -> None:
    with pytest.raises(AssertionError):
        URLPath("/", protocol="ftp")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("protocol", "base", "expected"),
    [
        ("http", "http://example.com", "http://example.com/x"),
        ("http", "https://example.com", "https://example.com/x"),
        ("http", "ws://example.com", "http://example.com/x"),
        ("websocket", "http://example.com", "ws://example.com/x"),
        ("websocket", "https://example.com", "wss://example.com/x"),
        ("", "wss://example.com", "wss://example.com/x"),
        ("", "https://example.com/root/", "https://example.com/root/x"),
    ],
)
def test_make_absolute_url(protocol: Any, base: str, expected: str) -> None:
    url = URLPath("/x", protocol=protocol).make_absolute_url(base)
    assert isinstance(url, URL)
    assert url == expected


def test_make_absolute_url_prefers_its_own_host_and_accepts_a_url() -> None:
    path = URLPath("/x", protocol="http", host="other.org")
    assert path.make_absolute_url(URL("https://example.com:8443/base")) == (
        "https://other.org/base/x"
    )


# -- Secret --------------------------------------------------------------------------------------


def test_secret_hides_its_value_in_repr() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert repr(secret) == "Secret('**********')"
    assert str(secret) == "hunter2"
    assert bool(secret)
    assert not Secret("")


# -- CommaSeparatedStrings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a, b, c", ["a", "b", "c"]),
        ("a,b,c", ["a", "b", "c"]),
        ("'a, b', c", ["a, b", "c"]),
        ('"x y" , z', ["x y", "z"]),
        ("single", ["single"]),
        ("", []),
        (["a", "b"], ["a", "b"]),
        (("t",), ["t"]),
    ],
)
def test_comma_separated_strings(value: Any, expected: list[str]) -> None:
    strings = CommaSeparatedStrings(value)
    assert list(strings) == expected
    assert len(strings) == len(expected)


def test_comma_separated_strings_sequence_protocol_and_display() -> None:
    strings = CommaSeparatedStrings("a, b, c")
    assert strings[0] == "a"
    assert strings[-1] == "c"
    assert strings[1:] == ["b", "c"]
    assert "b" in strings
    assert repr(strings) == "CommaSeparatedStrings(['a', 'b', 'c'])"
    assert str(strings) == "'a', 'b', 'c'"


def test_comma_separated_strings_unbalanced_quote_raises() -> None:
    with pytest.raises(ValueError):
        CommaSeparatedStrings("'a, b")


# -- ImmutableMultiDict --------------------------------------------------------------------------


def test_immutable_multidict_from_pairs() -> None:
    d = ImmutableMultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert d["a"] == "3"
    assert d.get("b") == "2"
    assert d.get("missing") is None
    assert d.getlist("a") == ["1", "3"]
    assert d.getlist("missing") == []
    assert list(d.keys()) == ["a", "b"]
    assert list(d.values()) == ["3", "2"]
    assert list(d.items()) == [("a", "3"), ("b", "2")]
    assert d.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert list(d) == ["a", "b"]
    assert len(d) == 2
    assert "a" in d
    assert "z" not in d
    with pytest.raises(KeyError):
        d["missing"]


def test_immutable_multidict_from_mapping_multidict_kwargs_and_nothing() -> None:
    assert ImmutableMultiDict({"a": 1}).multi_items() == [("a", 1)]
    source = ImmutableMultiDict([("a", 1), ("a", 2)])
    assert ImmutableMultiDict(source).multi_items() == [("a", 1), ("a", 2)]
    assert ImmutableMultiDict([("a", 1)], b=2).multi_items() == [("a", 1), ("b", 2)]
    assert ImmutableMultiDict(a=1).multi_items() == [("a", 1)]
    assert ImmutableMultiDict().multi_items() == []
    assert ImmutableMultiDict(iter([("g", 1)])).multi_items() == [("g", 1)]


def test_immutable_multidict_rejects_two_positional_arguments() -> None:
    with pytest.raises(AssertionError):
        ImmutableMultiDict([], [])  # type: ignore[call-arg]


def test_immutable_multidict_multi_items_is_a_copy() -> None:
    d = ImmutableMultiDict([("a", 1)])
    d.multi_items().append(("b", 2))
    assert d.multi_items() == [("a", 1)]


def test_immutable_multidict_has_no_setters() -> None:
    d: Any = ImmutableMultiDict([("a", 1)])
    with pytest.raises(TypeError):
        d["a"] = 2
    assert not hasattr(d, "append")


def test_immutable_multidict_equality() -> None:
    d = ImmutableMultiDict([("a", 1), ("b", 2), ("a", 3)])
    # Order between keys does not matter; order of one key's values does.
    assert d == ImmutableMultiDict([("b", 2), ("a", 1), ("a", 3)])
    assert d != ImmutableMultiDict([("b", 2), ("a", 3), ("a", 1)])
    assert d != ImmutableMultiDict([("a", 1), ("b", 2)])
    assert d != {"a": 3, "b": 2}
    assert ImmutableMultiDict([("a", "1")]) != QueryParams("a=1")


def test_immutable_multidict_repr() -> None:
    d = ImmutableMultiDict([("a", "1"), ("a", "2")])
    assert repr(d) == "ImmutableMultiDict([('a', '1'), ('a', '2')])"


# -- MultiDict -----------------------------------------------------------------------------------


def test_multidict_setitem_replaces_every_value() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    d["a"] = 9
    assert d["a"] == 9
    assert d.getlist("a") == [9]
    assert d.multi_items() == [("b", 2), ("a", 9)]


def test_multidict_delitem() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    del d["a"]
    assert d.multi_items() == [("b", 2)]
    assert "a" not in d
    with pytest.raises(KeyError):
        del d["a"]


def test_multidict_pop() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    assert d.pop("a") == 3
    assert d.multi_items() == [("b", 2)]
    assert d.pop("a") is None
    assert d.pop("a", "default") == "default"


def test_multidict_popitem_removes_the_last_added_key_and_all_its_values() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("b", 3), ("c", 4)])
    assert d.popitem() == ("c", 4)
    assert d.popitem() == ("b", 3)
    assert d.multi_items() == [("a", 1)]
    d.popitem()
    with pytest.raises(KeyError):
        d.popitem()


def test_multidict_poplist() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    assert d.poplist("a") == [1, 3]
    assert d.multi_items() == [("b", 2)]
    assert d.poplist("a") == []


def test_multidict_clear() -> None:
    d = MultiDict([("a", 1)])
    d.clear()
    assert len(d) == 0
    assert d.multi_items() == []


def test_multidict_setdefault() -> None:
    d = MultiDict([("a", 1)])
    assert d.setdefault("a", 5) == 1
    assert d.setdefault("b", 5) == 5
    assert d.setdefault("c") is None
    assert d.multi_items() == [("a", 1), ("b", 5), ("c", None)]


def test_multidict_setlist() -> None:
    d = MultiDict([("a", 1), ("b", 2)])
    d.setlist("a", [7, 8])
    assert d["a"] == 8
    assert d.multi_items() == [("b", 2), ("a", 7), ("a", 8)]
    d.setlist("a", [])
    assert "a" not in d
    assert d.multi_items() == [("b", 2)]


def test_multidict_append_keeps_existing_values() -> None:
    d = MultiDict([("a", 1)])
    d.append("a", 2)
    d.append("b", 3)
    assert d["a"] == 2
    assert d.getlist("a") == [1, 2]
    assert d.multi_items() == [("a", 1), ("a", 2), ("b", 3)]


def test_multidict_update_replaces_only_the_keys_it_names() -> None:
    d = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    d.update({"a": 9})
    assert d.multi_items() == [("b", 2), ("a", 9)]
    d.update([("c", 1), ("c", 2)], d=4)
    assert d.getlist("c") == [1, 2]
    assert d["d"] == 4
    d.update(MultiDict([("b", 0)]))
    assert d.getlist("b") == [0]


def test_multidict_equality_and_repr() -> None:
    assert MultiDict([("a", 1)]) == MultiDict({"a": 1})
    assert repr(MultiDict([("a", 1)])) == "MultiDict([('a', 1)])"


# -- QueryParams ---------------------------------------------------------------------------------


def test_query_params_from_a_string() -> None:
    q = QueryParams("a=1&b=two&a=3&empty=&flag")
    assert q["a"] == "3"
    assert q.getlist("a") == ["1", "3"]
    assert q["b"] == "two"
    assert q["empty"] == ""
    assert q["flag"] == ""
    assert q.multi_items() == [("a", "1"), ("b", "two"), ("a", "3"), ("empty", ""), ("flag", "")]


def test_query_params_decoding() -> None:
    q = QueryParams("name=J%C3%BCrgen+M&sum=1%2B1&eq=a%3Db&amp=%26&semi=a;b")
    assert q["name"] == "Jürgen M"
    assert q["sum"] == "1+1"
    assert q["eq"] == "a=b"
    assert q["amp"] == "&"
    assert q["semi"] == "a;b"


def test_query_params_value_may_contain_equals_signs() -> None:
    assert QueryParams("token=a=b=c")["token"] == "a=b=c"


def test_query_params_skips_empty_fields() -> None:
    assert QueryParams("&&a=1&&").multi_items() == [("a", "1")]
    assert QueryParams("").multi_items() == []
    assert QueryParams(b"").multi_items() == []


def test_query_params_from_bytes_equals_from_str() -> None:
    assert QueryParams(b"a=1&b=%20x") == QueryParams("a=1&b=%20x")


def test_query_params_from_bytes_decodes_raw_utf8() -> None:
    assert QueryParams(b"q=caf\xc3\xa9")["q"] == "café"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a=%zz", "%zz"),
        ("a=%", "%"),
        ("a=%4", "%4"),
        ("a=100%", "100%"),
        ("a=%FF", "\ufffd"),
        ("a=%C3", "\ufffd"),
        ("a=%C3%28", "\ufffd("),
        ("a=%00", "\x00"),
    ],
)
def test_query_params_malformed_percent_encoding_never_raises(query: str, expected: str) -> None:
    assert QueryParams(query)["a"] == expected
    assert QueryParams(query.encode())["a"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a=\xff", "\ufffd"),
        (b"a=\xc3", "\ufffd"),
        (b"a=caf\xe9", "caf\ufffd"),
        (b"\xfe=1", "1"),
    ],
)
def test_query_params_invalid_utf8_bytes_are_replaced(raw: bytes, expected: str) -> None:
    q = QueryParams(raw)
    assert list(q.values()) == [expected]
    assert "\ufffd" in "".join(q.keys()) + "".join(q.values())


def test_query_params_from_other_containers_stringifies_keys_and_values() -> None:
    assert QueryParams([("a", 1), ("b", 2.5)]).multi_items() == [("a", "1"), ("b", "2.5")]
    assert QueryParams({"a": 1}).multi_items() == [("a", "1")]
    assert QueryParams({1: True})["1"] == "True"
    assert QueryParams(MultiDict([("a", "1"), ("a", "2")])).getlist("a") == ["1", "2"]
    assert QueryParams(QueryParams("x=1")) == QueryParams("x=1")
    assert QueryParams(a=1).multi_items() == [("a", "1")]
    assert QueryParams().multi_items() == []


def test_query_params_string_with_kwargs() -> None:
    q = QueryParams("a=1", b=2)
    assert q.multi_items() == [("a", "1"), ("b", "2")]
    assert QueryParams(b"a=1", b="x").multi_items() == [("a", "1"), ("b", "x")]


def test_query_params_str_and_repr_urlencode() -> None:
    q = QueryParams([("a", "1"), ("b", "x y"), ("a", "é&=")])
    assert str(q) == "a=1&b=x+y&a=%C3%A9%26%3D"
    assert repr(q) == "QueryParams('a=1&b=x+y&a=%C3%A9%26%3D')"
    assert str(QueryParams("flag")) == "flag="


def test_query_params_is_immutable() -> None:
    q: Any = QueryParams("a=1")
    with pytest.raises(TypeError):
        q["a"] = "2"


def test_query_params_equality_ignores_order_between_keys() -> None:
    assert QueryParams("a=1&b=2") == QueryParams("b=2&a=1")
    assert QueryParams("a=1&a=2") != QueryParams("a=2&a=1")
    assert QueryParams("a=1") != "a=1"


pair_text = st.text(max_size=12)


@given(st.lists(st.tuples(pair_text, pair_text), max_size=8))
def test_query_params_round_trip_through_str(pairs: list[tuple[str, str]]) -> None:
    params = QueryParams(pairs)
    encoded = str(params)
    assert QueryParams(encoded).multi_items() == pairs
    assert QueryParams(encoded.encode("ascii")).multi_items() == pairs


@given(st.text(alphabet=st.sampled_from("ab=&+%;2Fc3é# \x00"), max_size=40))
def test_query_parsing_matches_the_stdlib(query: str) -> None:
    assert QueryParams(query).multi_items() == parse_qsl(query, keep_blank_values=True)


@given(st.binary(max_size=40))
def test_query_params_accept_any_bytes(raw: bytes) -> None:
    q = QueryParams(raw)
    for key, value in q.multi_items():
        assert isinstance(key, str)
        assert isinstance(value, str)
    assert QueryParams(str(q)) == q


# -- Headers -------------------------------------------------------------------------------------


def test_headers_from_a_mapping_lowercases_names() -> None:
    h = Headers(headers={"Content-Type": "text/plain", "X-Thing": "Value"})
    assert h.raw == [(b"content-type", b"text/plain"), (b"x-thing", b"Value")]
    assert h["content-type"] == "text/plain"
    assert h["X-THING"] == "Value"


def test_headers_lookup_is_case_insensitive() -> None:
    h = Headers(raw=[(b"content-type", b"text/html"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert h["Content-Type"] == "text/html"
    assert h.get("CONTENT-TYPE") == "text/html"
    assert "Content-Type" in h
    assert h["x-a"] == "1"
    assert h.getlist("X-A") == ["1", "2"]


def test_headers_missing_names() -> None:
    h = Headers(raw=[(b"a", b"1")])
    with pytest.raises(KeyError):
        h["b"]
    assert h.get("b") is None
    assert h.get("b", "default") == "default"
    assert h.getlist("b") == []
    assert "b" not in h
    assert 1 not in h


def test_headers_lookup_with_a_name_outside_latin1_finds_nothing() -> None:
    h = Headers(raw=[(b"a", b"1")])
    assert h.get("ключ") is None
    assert "ключ" not in h
    assert h.getlist("ключ") == []
    with pytest.raises(KeyError):
        h["ключ"]


def test_headers_keys_values_items_keep_duplicates_and_order() -> None:
    h = Headers(raw=[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert h.keys() == ["a", "b", "a"]
    assert h.values() == ["1", "2", "3"]
    assert h.items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert list(h) == ["a", "b", "a"]
    assert len(h) == 3


def test_headers_decode_odd_bytes_as_latin1() -> None:
    raw = [(b"x-bin", b"\xff\xfe\x00\x80"), (b"x-utf8", "café".encode())]
    h = Headers(raw=raw)
    assert h["x-bin"] == "\xff\xfe\x00\x80"
    assert h["x-utf8"] == "cafÃ©"
    assert h.items()[0] == ("x-bin", "\xff\xfe\x00\x80")


def test_headers_raw_property_is_a_copy() -> None:
    raw = [(b"a", b"1")]
    h = Headers(raw=raw)
    h.raw.append((b"b", b"2"))
    assert "b" not in h


def test_headers_from_scope_share_the_scope_list() -> None:
    scope = http_scope(headers=[(b"host", b"example.com")])
    h = Headers(scope=scope)
    scope["headers"].append((b"x-late", b"1"))
    assert h["x-late"] == "1"


def test_headers_from_scope_turn_a_tuple_into_a_list_stored_in_the_scope() -> None:
    scope = http_scope(headers=((b"a", b"1"),))
    h = MutableHeaders(scope=scope)
    h["b"] = "2"
    assert scope["headers"] == [(b"a", b"1"), (b"b", b"2")]


def test_headers_from_scope_without_headers_key() -> None:
    message: Scope = {"type": "http.response.start", "status": 200}
    h = MutableHeaders(scope=message)
    assert len(h) == 0
    h["content-length"] = "0"
    assert message["headers"] == [(b"content-length", b"0")]


def test_headers_empty() -> None:
    h = Headers()
    assert len(h) == 0
    assert h.raw == []
    assert repr(h) == "Headers({})"


def test_headers_reject_conflicting_sources() -> None:
    with pytest.raises(AssertionError):
        Headers(headers={}, raw=[])
    with pytest.raises(AssertionError):
        Headers(headers={}, scope=http_scope())
    with pytest.raises(AssertionError):
        Headers(raw=[], scope=http_scope())


def test_headers_equality_ignores_order() -> None:
    a = Headers(raw=[(b"a", b"1"), (b"b", b"2")])
    assert a == Headers(raw=[(b"b", b"2"), (b"a", b"1")])
    assert a == Headers(headers={"A": "1", "B": "2"})
    assert a != Headers(raw=[(b"a", b"1")])
    assert a != {"a": "1", "b": "2"}


def test_headers_repr() -> None:
    assert repr(Headers(raw=[(b"a", b"1")])) == "Headers({'a': '1'})"
    assert repr(Headers(raw=[(b"a", b"1"), (b"a", b"2")])) == (
        "Headers(raw=[(b'a', b'1'), (b'a', b'2')])"
    )


def test_headers_mutablecopy_is_independent() -> None:
    h = Headers(raw=[(b"a", b"1")])
    copy = h.mutablecopy()
    assert isinstance(copy, MutableHeaders)
    copy["a"] = "2"
    copy["b"] = "3"
    assert h["a"] == "1"
    assert "b" not in h
    assert copy["a"] == "2"


def test_headers_are_read_only() -> None:
    h: Any = Headers(raw=[(b"a", b"1")])
    with pytest.raises(TypeError):
        h["a"] = "2"


header_name = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
header_value = st.binary(max_size=20)


@given(header_name, header_value, st.randoms())
def test_headers_any_case_variant_finds_the_header(name: str, value: bytes, rnd: Any) -> None:
    # "x.other" cannot collide: "." is not in the generated names' alphabet.
    h = Headers(raw=[(b"x.other", b"x"), (name.lower().encode(), value)])
    variant = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in name)
    assert h[variant] == value.decode("latin-1")
    assert variant in h
    assert h.getlist(variant) == [value.decode("latin-1")]


@given(st.lists(st.tuples(header_name, header_value), max_size=6))
def test_headers_built_from_a_mapping_answer_every_case(pairs: list[tuple[str, bytes]]) -> None:
    mapping = {name: value.decode("latin-1") for name, value in pairs}
    h = Headers(headers=mapping)
    for name, value in mapping.items():
        assert h[name.upper()] == h[name.lower()]
        assert value in h.getlist(name.swapcase())


# -- MutableHeaders ------------------------------------------------------------------------------


def test_mutable_headers_setitem_replaces_every_entry_in_place_of_the_first() -> None:
    h = MutableHeaders(raw=[(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"a", b"4")])
    h["A"] = "x"
    assert h.raw == [(b"a", b"x"), (b"b", b"2")]
    h["c"] = "new"
    assert h.raw == [(b"a", b"x"), (b"b", b"2"), (b"c", b"new")]


def test_mutable_headers_delitem_removes_every_entry() -> None:
    h = MutableHeaders(raw=[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    del h["A"]
    assert h.raw == [(b"b", b"2")]
    del h["missing"]
    del h["ключ"]
    assert h.raw == [(b"b", b"2")]


def test_mutable_headers_edit_the_list_they_wrap() -> None:
    raw = [(b"a", b"1"), (b"a", b"2")]
    h = MutableHeaders(raw=raw)
    h["b"] = "3"
    del h["a"]
    assert raw == [(b"b", b"3")]
    assert h.raw is raw


def test_mutable_headers_edit_a_scope() -> None:
    scope = http_scope(headers=[(b"a", b"1")])
    h = MutableHeaders(scope=scope)
    h.append("x-new", "1")
    h["a"] = "2"
    del h["a"]
    assert scope["headers"] == [(b"x-new", b"1")]


def test_mutable_headers_append_keeps_duplicates() -> None:
    h = MutableHeaders()
    h.append("Set-Cookie", "a=1")
    h.append("set-cookie", "b=2")
    assert h.getlist("set-cookie") == ["a=1", "b=2"]
    assert h.raw == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


def test_mutable_headers_setdefault() -> None:
    h = MutableHeaders(raw=[(b"a", b"1"), (b"a", b"2")])
    assert h.setdefault("A", "9") == "1"
    assert h.getlist("a") == ["1", "2"]
    assert h.setdefault("B", "9") == "9"
    assert h.raw[-1] == (b"b", b"9")


def test_mutable_headers_update() -> None:
    h = MutableHeaders(raw=[(b"a", b"1"), (b"a", b"2"), (b"b", b"3")])
    h.update({"A": "x", "c": "y"})
    assert h.raw == [(b"a", b"x"), (b"b", b"3"), (b"c", b"y")]


def test_mutable_headers_or_makes_a_new_object() -> None:
    h = MutableHeaders({"a": "1", "b": "2"})
    merged = h | {"b": "3", "c": "4"}
    assert isinstance(merged, MutableHeaders)
    assert merged.raw == [(b"a", b"1"), (b"b", b"3"), (b"c", b"4")]
    assert h.raw == [(b"a", b"1"), (b"b", b"2")]


def test_mutable_headers_ior_updates_in_place() -> None:
    h = MutableHeaders({"a": "1"})
    same = h
    h |= {"a": "2", "b": "3"}
    assert h is same
    assert h.raw == [(b"a", b"2"), (b"b", b"3")]
    h |= Headers({"c": "4"})
    assert h["c"] == "4"


def test_mutable_headers_or_rejects_non_mappings() -> None:
    h: Any = MutableHeaders()
    with pytest.raises(TypeError, match="Expected a mapping but got list"):
        h | [("a", "1")]
    with pytest.raises(TypeError, match="Expected a mapping but got str"):
        h |= "a"


def test_mutable_headers_add_vary_header() -> None:
    h = MutableHeaders()
    h.add_vary_header("Origin")
    assert h["vary"] == "Origin"
    h.add_vary_header("Accept-Encoding")
    assert h["vary"] == "Origin, Accept-Encoding"
    h.append("Vary", "Cookie")
    h.add_vary_header("Accept")
    assert h.getlist("vary") == ["Origin, Accept-Encoding, Cookie, Accept"]


def test_mutable_headers_values_must_be_latin1() -> None:
    h = MutableHeaders()
    with pytest.raises(UnicodeEncodeError):
        h["x"] = "ключ"


@given(st.lists(st.tuples(header_name, st.text(alphabet=string.printable, max_size=5))))
def test_mutable_headers_setitem_leaves_exactly_one_entry(
    assignments: list[tuple[str, str]],
) -> None:
    h = MutableHeaders()
    for name, value in assignments:
        h.append(name, "old")
        h[name.swapcase()] = value
        assert h.getlist(name) == [value]
    assert len({key for key, _ in h.raw}) == len(h.raw)


# -- State ---------------------------------------------------------------------------------------


def test_state_attribute_access() -> None:
    state = State()
    state.db = "connection"
    assert state.db == "connection"
    assert state["db"] == "connection"
    del state.db
    with pytest.raises(AttributeError, match="'State' object has no attribute 'db'"):
        _ = state.db


def test_state_item_access_iteration_and_length() -> None:
    state = State()
    state["a"] = 1
    state.b = 2
    assert state.a == 1
    assert list(state) == ["a", "b"]
    assert len(state) == 2
    del state["a"]
    assert list(state) == ["b"]
    with pytest.raises(KeyError):
        state["a"]


def test_state_wraps_the_given_dict() -> None:
    backing: dict[str, Any] = {"existing": 1}
    state = State(backing)
    assert state.existing == 1
    state.added = 2
    del state.existing
    assert backing == {"added": 2}


def test_states_do_not_share_storage() -> None:
    first, second = State(), State()
    first.x = 1
    assert not hasattr(second, "x")


# -- UploadFile ----------------------------------------------------------------------------------


async def test_upload_file_read_write_seek_close() -> None:
    upload = UploadFile(io.BytesIO(), filename="a.txt", size=0)
    await upload.write(b"hello ")
    await upload.write(b"world")
    assert upload.size == 11
    await upload.seek(0)
    assert await upload.read() == b"hello world"
    await upload.seek(6)
    assert await upload.read(3) == b"wor"
    await upload.close()
    assert upload.file.closed


async def test_upload_file_with_unknown_size_stays_unknown() -> None:
    upload = UploadFile(io.BytesIO())
    await upload.write(b"abc")
    assert upload.size is None


async def test_upload_file_works_with_a_spooled_file_that_rolls_to_disk() -> None:
    with SpooledTemporaryFile(max_size=4) as spooled:
        upload = UploadFile(spooled, filename="big.bin", size=0)  # type: ignore[arg-type]
        await upload.write(b"0123456789")
        assert spooled._rolled  # type: ignore[attr-defined]
        await upload.seek(0)
        assert await upload.read() == b"0123456789"
        assert upload.size == 10
        await upload.close()
        assert spooled.closed


async def test_upload_file_does_its_io_in_a_worker_thread() -> None:
    calls: list[tuple[str, threading.Thread]] = []
    here = threading.current_thread()

    class RecordingFile(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            calls.append(("read", threading.current_thread()))
            return super().read(size)

        def write(self, data: Any) -> int:
            calls.append(("write", threading.current_thread()))
            return super().write(data)

        def seek(self, offset: int, whence: int = 0) -> int:
            calls.append(("seek", threading.current_thread()))
            return super().seek(offset, whence)

        def close(self) -> None:
            calls.append(("close", threading.current_thread()))
            super().close()

    upload = UploadFile(RecordingFile())
    await upload.write(b"x")
    await upload.seek(0)
    await upload.read()
    await upload.close()
    assert [name for name, _ in calls] == ["write", "seek", "read", "close"]
    assert all(thread is not here for _, thread in calls)


def test_upload_file_attributes() -> None:
    headers = Headers({"content-type": "image/png"})
    upload = UploadFile(io.BytesIO(), filename="a.png", size=3, headers=headers)
    assert upload.filename == "a.png"
    assert upload.size == 3
    assert upload.headers is headers
    assert upload.content_type == "image/png"
    assert repr(upload) == (
        "UploadFile(filename='a.png', size=3, headers=Headers({'content-type': 'image/png'}))"
    )


def test_upload_file_defaults() -> None:
    upload = UploadFile(io.BytesIO())
    assert upload.filename is None
    assert upload.size is None
    assert upload.headers == Headers()
    assert upload.content_type is None


def test_upload_file_arguments_after_file_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        UploadFile(io.BytesIO(), 3)  # type: ignore[misc]


# -- FormData ------------------------------------------------------------------------------------


async def test_form_data_close_closes_every_upload() -> None:
    first = UploadFile(io.BytesIO(b"1"), filename="1")
    second = UploadFile(io.BytesIO(b"2"), filename="2")
    form = FormData([("name", "value"), ("file", first), ("file", second)])
    assert form["name"] == "value"
    assert form.getlist("file") == [first, second]
    await form.close()
    assert first.file.closed
    assert second.file.closed


async def test_form_data_close_with_no_files() -> None:
    form = FormData({"a": "1"}, b="2")
    await form.close()
    assert form.multi_items() == [("a", "1"), ("b", "2")]


def test_form_data_equality_and_repr() -> None:
    assert FormData([("a", "1")]) == FormData({"a": "1"})
    assert FormData([("a", "1")]) != ImmutableMultiDict([("a", "1")])
    assert repr(FormData([("a", "1")])) == "FormData([('a', '1')])"
