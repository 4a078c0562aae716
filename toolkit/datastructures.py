"""The values a request is made of: URLs, query parameters, headers, form data and state.

The API is Starlette's ``starlette.datastructures``. Everything built from an ASGI scope is lazy
and never raises on malformed client input: header bytes decode as latin-1 (as ASGI requires) and
query strings as UTF-8 with replacement characters.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from ipaddress import IPv6Address
from operator import itemgetter
from shlex import shlex
from typing import Any, BinaryIO, Literal, NamedTuple, TypeVar, overload
from urllib.parse import SplitResult, unquote, urlencode, urlsplit

import trio

from toolkit.types import Scope

_KeyType = TypeVar("_KeyType")
# Values are only ever read out of an immutable multidict, so they may vary covariantly.
_CovariantValueType = TypeVar("_CovariantValueType", covariant=True)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# A Host header that cannot smuggle a path, query, fragment or userinfo into the URL:
# a reg-name, a bracketed IPv6 address or IPvFuture literal, and an optional port.
_HOST_HEADER = re.compile(
    r"(?P<host>[a-z0-9._~%!$&'()*+,;=-]+"
    r"|\[(?:(?P<ipv6>[0-9a-f]*:[0-9a-f.:]+)|v[0-9a-f]+\.[a-z0-9._~!$&'()*+,;=:-]+)\])"
    r"(?::(?P<port>[0-9]+))?",
    re.IGNORECASE,
)


def parse_host_header(value: str | None) -> tuple[str, int | None] | None:
    """Split a ``Host`` header into host (IPv6 keeps its brackets) and port.

    ``None`` when the header is absent or malformed: anything but a bare authority, an invalid
    IPv6 address or a port above 65535. Routing by host and host checks share this one parser.
    """
    if value is None:
        return None
    match = _HOST_HEADER.fullmatch(value)
    if match is None:
        return None
    ipv6 = match["ipv6"]
    if ipv6 is not None:
        try:
            IPv6Address(ipv6)
        except ValueError:
            return None
    port = match["port"]
    if port is None:
        return match["host"], None
    port = port.lstrip("0")
    if len(port) > 5 or int(port or "0") > 65535:
        return None
    return match["host"], int(port or "0")


def _parse_query(query: str) -> list[tuple[str, str]]:
    """Split a query string into decoded ``(name, value)`` pairs.

    Same result as ``urllib.parse.parse_qsl(query, keep_blank_values=True)``: ``&`` separates
    fields, ``+`` means a space, and bad percent-escapes stay as they are instead of raising.
    """
    pairs = []
    for field in query.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    return pairs


class Address(NamedTuple):
    """A network peer: the ``client`` or ``server`` entry of an ASGI scope."""

    host: str
    port: int


class URL:
    """A URL string with its parts parsed on first use, built from a string, parts or a scope."""

    _components: SplitResult

    def __init__(self, url: str = "", scope: Scope | None = None, **components: Any) -> None:
        if scope is not None:
            assert not url, 'Cannot set both "url" and "scope".'
            assert not components, 'Cannot set both "scope" and "**components".'
            url = self._from_scope(scope)
        elif components:
            assert not url, 'Cannot set both "url" and "**components".'
            url = URL("").replace(**components).components.geturl()
        self._url = url

    @staticmethod
    def _from_scope(scope: Scope) -> str:
        """The request's full URL: the Host header if it is well formed, else the server address."""
        scheme: str = scope.get("scheme", "http")
        path: str = scope["path"]
        # These characters would end the path early or change its meaning once reparsed.
        path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        query = scope.get("query_string", b"").decode("utf-8", "replace")

        netloc = None
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host_header = value.decode("latin-1")
                if parse_host_header(host_header) is not None:
                    netloc = host_header
                break
        if netloc is None:
            server = scope.get("server")
            if server is not None and server[1] is not None:
                host, port = server
                if ":" in host and not host.startswith("["):
                    host = f"[{host}]"
                netloc = host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"

        if netloc is not None:
            if path and path[0] != "/":
                path = "/" + path
            url = f"{scheme}://{netloc}{path}"
        elif path.startswith("//"):
            # With no authority, a leading "//" would be read back as one.
            url = "/%2F" + path[2:]
        else:
            url = path
        return f"{url}?{query}" if query else url

    @property
    def components(self) -> SplitResult:
        """The parsed parts, as ``urllib.parse.urlsplit`` gives them."""
        try:
            return self._components
        except AttributeError:
            self._components = urlsplit(self._url)
            return self._components

    @property
    def scheme(self) -> str:
        """The scheme, lower-cased (``""`` when the URL is relative)."""
        return self.components.scheme

    @property
    def netloc(self) -> str:
        """The authority: ``user:password@host:port`` as written."""
        return self.components.netloc

    @property
    def path(self) -> str:
        """The path, still percent-encoded as written."""
        return self.components.path

    @property
    def query(self) -> str:
        """The query string without the ``?``."""
        return self.components.query

    @property
    def fragment(self) -> str:
        """The fragment without the ``#``."""
        return self.components.fragment

    @property
    def username(self) -> str | None:
        """The user name from the authority, if any."""
        return self.components.username

    @property
    def password(self) -> str | None:
        """The password from the authority, if any."""
        return self.components.password

    @property
    def hostname(self) -> str | None:
        """The host, lower-cased, without brackets around an IPv6 address."""
        return self.components.hostname

    @property
    def port(self) -> int | None:
        """The explicit port, or ``None`` when the URL has none."""
        return self.components.port

    @property
    def is_secure(self) -> bool:
        """Whether the scheme is one that runs over TLS."""
        return self.scheme in ("https", "wss")

    def replace(self, **kwargs: Any) -> URL:
        """A copy with parts changed: any ``urlsplit`` field, or hostname/port/username/password."""
        if kwargs.keys() & {"username", "password", "hostname", "port"}:
            kwargs["netloc"] = self._replaced_netloc(
                hostname=kwargs.pop("hostname", None),
                port=kwargs.pop("port", self.port),
                username=kwargs.pop("username", self.username),
                password=kwargs.pop("password", self.password),
            )
        return self.__class__(self.components._replace(**kwargs).geturl())

    def _replaced_netloc(
        self, hostname: str | None, port: int | None, username: str | None, password: str | None
    ) -> str:
        """An authority built from the given parts, keeping this URL's host when none is given."""
        if hostname is None:
            hostname = self.netloc.rpartition("@")[2]
            if hostname and hostname[-1] != "]":
                hostname = hostname.rsplit(":", 1)[0]
        elif ":" in hostname and not hostname.startswith("["):
            try:
                IPv6Address(hostname)
            except ValueError:
                pass
            else:
                hostname = f"[{hostname}]"
        netloc = hostname if port is None else f"{hostname}:{port}"
        if username is None:
            return netloc
        userinfo = username if password is None else f"{username}:{password}"
        return f"{userinfo}@{netloc}"

    def include_query_params(self, **kwargs: Any) -> URL:
        """A copy whose query has these parameters set, replacing any of the same name."""
        params = MultiDict(_parse_query(self.query))
        params.update({str(key): str(value) for key, value in kwargs.items()})
        return self.replace(query=urlencode(params.multi_items()))

    def replace_query_params(self, **kwargs: Any) -> URL:
        """A copy whose query is exactly these parameters."""
        return self.replace(query=urlencode([(str(k), str(v)) for k, v in kwargs.items()]))

    def remove_query_params(self, keys: str | Sequence[str]) -> URL:
        """A copy without any query parameter named in ``keys``."""
        removed = {keys} if isinstance(keys, str) else set(keys)
        kept = [pair for pair in _parse_query(self.query) if pair[0] not in removed]
        return self.replace(query=urlencode(kept))

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        url = str(self.replace(password="********")) if self.password else self._url
        return f"{self.__class__.__name__}({url!r})"


class URLPath(str):
    """A path from ``url_path_for``, which may also know its protocol and host.

    ``make_absolute_url`` turns it into a full URL against a base URL.
    """

    protocol: Literal["http", "websocket", ""]
    host: str

    def __new__(
        cls, path: str, protocol: Literal["http", "websocket", ""] = "", host: str = ""
    ) -> URLPath:
        assert protocol in ("http", "websocket", "")
        path = path.replace("\\", "%5C")
        if path.startswith("//"):
            # A leading "//" would be read back as an authority.
            path = "/%2F" + path[2:]
        return str.__new__(cls, path)

    def __init__(
        self, path: str, protocol: Literal["http", "websocket", ""] = "", host: str = ""
    ) -> None:
        self.protocol = protocol
        self.host = host

    def make_absolute_url(self, base_url: str | URL) -> URL:
        """This path under ``base_url``, with a scheme matching the protocol and base's security."""
        if isinstance(base_url, str):
            base_url = URL(base_url)
        if self.protocol == "http":
            scheme = "https" if base_url.is_secure else "http"
        elif self.protocol == "websocket":
            scheme = "wss" if base_url.is_secure else "ws"
        else:
            scheme = base_url.scheme
        netloc = self.host or base_url.netloc
        path = base_url.path.rstrip("/") + str(self)
        return URL(scheme=scheme, netloc=netloc, path=path)


class Secret:
    """A string kept out of reprs and tracebacks; ``str()`` it where the real value is needed."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('**********')"

    def __str__(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)


class CommaSeparatedStrings(Sequence[str]):
    """A list of strings read from ``"a, b, 'c, d'"`` (shell-style quotes keep commas)."""

    def __init__(self, value: str | Sequence[str]) -> None:
        if isinstance(value, str):
            splitter = shlex(value, posix=True)
            splitter.whitespace = ","
            splitter.whitespace_split = True
            self._items = [item.strip() for item in splitter]
        else:
            self._items = list(value)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._items[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._items!r})"

    def __str__(self) -> str:
        return ", ".join(repr(item) for item in self._items)


class ImmutableMultiDict(Mapping[_KeyType, _CovariantValueType]):
    """A mapping that may hold several values per key, in order.

    Indexing gives a key's last value; ``getlist`` and ``multi_items`` give all of them.
    """

    _dict: dict[_KeyType, _CovariantValueType]
    _list: list[tuple[_KeyType, _CovariantValueType]]

    def __init__(
        self,
        *args: ImmutableMultiDict[_KeyType, _CovariantValueType]
        | Mapping[_KeyType, _CovariantValueType]
        | Iterable[tuple[_KeyType, _CovariantValueType]],
        **kwargs: Any,
    ) -> None:
        assert len(args) < 2, "Too many arguments."
        value: Any = args[0] if args else ()
        if kwargs:
            value = ImmutableMultiDict(value).multi_items() + list(kwargs.items())
        if isinstance(value, ImmutableMultiDict):
            items = value.multi_items()
        elif hasattr(value, "multi_items"):
            items = list(value.multi_items())
        elif hasattr(value, "items"):
            items = list(value.items())
        else:
            items = list(value)
        self._list = items
        self._dict = dict(items)

    def getlist(self, key: Any) -> list[_CovariantValueType]:
        """Every value stored under ``key``, in order (empty when there is none)."""
        return [item_value for item_key, item_value in self._list if item_key == key]

    def keys(self) -> KeysView[_KeyType]:
        return self._dict.keys()

    def values(self) -> ValuesView[_CovariantValueType]:
        return self._dict.values()

    def items(self) -> ItemsView[_KeyType, _CovariantValueType]:
        return self._dict.items()

    def multi_items(self) -> list[tuple[_KeyType, _CovariantValueType]]:
        """Every ``(key, value)`` pair, duplicates included, in order."""
        return list(self._list)

    def __getitem__(self, key: _KeyType) -> _CovariantValueType:
        return self._dict[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._dict

    def __iter__(self) -> Iterator[_KeyType]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, self.__class__):
            return False
        by_key = itemgetter(0)
        return sorted(self._list, key=by_key) == sorted(other._list, key=by_key)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._list!r})"


class MultiDict(ImmutableMultiDict[Any, Any]):
    """A mutable multidict; setting a key replaces all of its values."""

    def __setitem__(self, key: Any, value: Any) -> None:
        self.setlist(key, [value])

    def __delitem__(self, key: Any) -> None:
        del self._dict[key]
        self._list = [item for item in self._list if item[0] != key]

    def pop(self, key: Any, default: Any = None) -> Any:
        """Remove every value of ``key`` and return its last one (or ``default``)."""
        self._list = [item for item in self._list if item[0] != key]
        return self._dict.pop(key, default)

    def popitem(self) -> tuple[Any, Any]:
        """Remove the most recently added key with all its values; return it and its last value."""
        key, value = self._dict.popitem()
        self._list = [item for item in self._list if item[0] != key]
        return key, value

    def poplist(self, key: Any) -> list[Any]:
        """Remove every value of ``key`` and return them all."""
        values = self.getlist(key)
        self.pop(key)
        return values

    def clear(self) -> None:
        self._dict.clear()
        self._list.clear()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``key``'s value, first storing ``default`` under it if it has none."""
        if key not in self._dict:
            self._dict[key] = default
            self._list.append((key, default))
        return self._dict[key]

    def setlist(self, key: Any, values: list[Any]) -> None:
        """Make ``values`` the values of ``key`` (an empty list removes the key)."""
        if not values:
            self.pop(key, None)
            return
        self._list = [item for item in self._list if item[0] != key]
        self._list.extend((key, value) for value in values)
        self._dict[key] = values[-1]

    def append(self, key: Any, value: Any) -> None:
        """Add one more value for ``key``, keeping the ones it has."""
        self._list.append((key, value))
        self._dict[key] = value

    def update(
        self, *args: MultiDict | Mapping[Any, Any] | list[tuple[Any, Any]], **kwargs: Any
    ) -> None:
        """Replace the values of every key present in the arguments; leave other keys alone."""
        new = MultiDict(*args, **kwargs)
        self._list = [item for item in self._list if item[0] not in new._dict]
        self._list.extend(new._list)
        self._dict.update(new._dict)


class QueryParams(ImmutableMultiDict[str, str]):
    """The decoded parameters of a query string; ``str()`` encodes them back."""

    def __init__(
        self,
        *args: ImmutableMultiDict[Any, Any]
        | Mapping[Any, Any]
        | list[tuple[Any, Any]]
        | str
        | bytes,
        **kwargs: Any,
    ) -> None:
        assert len(args) < 2, "Too many arguments."
        value = args[0] if args else ()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            items = _parse_query(value)
            if not kwargs:
                self._list = items
                self._dict = dict(items)
                return
            value = items
        super().__init__(value, **kwargs)
        self._list = [(str(key), str(item)) for key, item in self._list]
        self._dict = dict(self._list)

    def __str__(self) -> str:
        return urlencode(self._list)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self)!r})"


class UploadFile:
    """A file sent in a form, with its name and part headers.

    The async methods run the blocking file calls in a worker thread, so a large upload spooled
    to disk never stalls the event loop.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.file = file
        self.size = size
        self.filename = filename
        self.headers = headers or Headers()

    @property
    def content_type(self) -> str | None:
        """The part's ``Content-Type`` header, if it had one."""
        return self.headers.get("content-type")

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (everything left when negative)."""
        return await trio.to_thread.run_sync(self.file.read, size)

    async def write(self, data: bytes) -> None:
        """Append ``data`` at the current position, counting it into ``size`` when known."""
        if self.size is not None:
            self.size += len(data)
        await trio.to_thread.run_sync(self.file.write, data)

    async def seek(self, offset: int) -> None:
        """Move to byte ``offset`` from the start."""
        await trio.to_thread.run_sync(self.file.seek, offset)

    async def close(self) -> None:
        """Close the underlying file."""
        await trio.to_thread.run_sync(self.file.close)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(filename={self.filename!r}, "
            f"size={self.size!r}, headers={self.headers!r})"
        )


class FormData(ImmutableMultiDict[str, UploadFile | str]):
    """A parsed form: text fields as ``str``, file fields as ``UploadFile``."""

    def __init__(
        self,
        *args: FormData | Mapping[str, str | UploadFile] | list[tuple[str, str | UploadFile]],
        **kwargs: str | UploadFile,
    ) -> None:
        super().__init__(*args, **kwargs)

    async def close(self) -> None:
        """Close every uploaded file in the form."""
        for _, value in self._list:
            if isinstance(value, UploadFile):
                await value.close()


def _header_key(key: str) -> bytes | None:
    """``key`` as stored in a raw header list, or ``None`` if no header can have that name."""
    try:
        return key.lower().encode("latin-1")
    except UnicodeEncodeError:
        return None


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive HTTP headers over a raw ``(bytes, bytes)`` list.

    Names and values are decoded (latin-1) only when read, so wrapping a scope costs nothing.
    """

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        raw: list[tuple[bytes, bytes]] | None = None,
        scope: Scope | None = None,
    ) -> None:
        self._list: list[tuple[bytes, bytes]]
        if headers is not None:
            assert raw is None, 'Cannot set both "headers" and "raw".'
            assert scope is None, 'Cannot set both "headers" and "scope".'
            self._list = [
                (key.lower().encode("latin-1"), value.encode("latin-1"))
                for key, value in headers.items()
            ]
        elif raw is not None:
            assert scope is None, 'Cannot set both "raw" and "scope".'
            self._list = raw
        elif scope is not None:
            # Share the scope's own list, so that MutableHeaders edits land in the scope.
            scope_headers = scope.get("headers")
            if not isinstance(scope_headers, list):
                scope_headers = scope["headers"] = list(scope_headers or ())
            self._list = scope_headers
        else:
            self._list = []

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """A copy of the raw ``(name, value)`` byte pairs."""
        return list(self._list)

    def keys(self) -> list[str]:  # type: ignore[override]
        return [key.decode("latin-1") for key, _ in self._list]

    def values(self) -> list[str]:  # type: ignore[override]
        return [value.decode("latin-1") for _, value in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in self._list]

    def getlist(self, key: str) -> list[str]:
        """Every value of header ``key``, in order (empty when absent)."""
        wanted = _header_key(key)
        return [value.decode("latin-1") for name, value in self._list if name == wanted]

    def mutablecopy(self) -> MutableHeaders:
        """An independent, editable copy."""
        return MutableHeaders(raw=self._list[:])

    def __getitem__(self, key: str) -> str:
        wanted = _header_key(key)
        for name, value in self._list:
            if name == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        wanted = _header_key(key)
        return any(name == wanted for name, _ in self._list)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return False
        return sorted(self._list) == sorted(other._list)

    def __repr__(self) -> str:
        as_dict = dict(self.items())
        if len(as_dict) == len(self):
            return f"{self.__class__.__name__}({as_dict!r})"
        return f"{self.__class__.__name__}(raw={self.raw!r})"


class MutableHeaders(Headers):
    """Editable headers; every edit changes the underlying raw list in place."""

    def __setitem__(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``: the first existing entry is replaced, later ones removed."""
        name = key.lower().encode("latin-1")
        entry = (name, value.encode("latin-1"))
        items = self._list
        first = -1
        for index in range(len(items) - 1, -1, -1):
            if items[index][0] == name:
                if first != -1:
                    del items[first]
                first = index
        if first == -1:
            items.append(entry)
        else:
            items[first] = entry

    def __delitem__(self, key: str) -> None:
        """Remove every entry of ``key`` (no error when there is none)."""
        name = _header_key(key)
        self._list[:] = [item for item in self._list if item[0] != name]

    def __ior__(self, other: Mapping[str, str]) -> MutableHeaders:
        if not isinstance(other, Mapping):
            raise TypeError(f"Expected a mapping but got {other.__class__.__name__}")
        self.update(other)
        return self

    def __or__(self, other: Mapping[str, str]) -> MutableHeaders:
        if not isinstance(other, Mapping):
            raise TypeError(f"Expected a mapping but got {other.__class__.__name__}")
        new = self.mutablecopy()
        new.update(other)
        return new

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The live raw list itself (editing it edits these headers)."""
        return self._list

    def setdefault(self, key: str, value: str) -> str:
        """``key``'s first value, first appending ``value`` for it if it is absent."""
        name = key.lower().encode("latin-1")
        for item_name, item_value in self._list:
            if item_name == name:
                return item_value.decode("latin-1")
        self._list.append((name, value.encode("latin-1")))
        return value

    def update(self, other: Mapping[str, str]) -> None:
        """Set each header in ``other``, replacing existing entries of the same name."""
        for key, value in other.items():
            self[key] = value

    def append(self, key: str, value: str) -> None:
        """Add an entry for ``key``, keeping any it already has."""
        self._list.append((key.lower().encode("latin-1"), value.encode("latin-1")))

    def add_vary_header(self, vary: str) -> None:
        """Add ``vary`` to the ``Vary`` header, merging all of its entries into one."""
        self["vary"] = ", ".join([*self.getlist("vary"), vary])


class State:
    """Arbitrary attributes kept in a dict: ``app.state`` and ``request.state``.

    ``State(d)`` wraps ``d`` itself, so writes through the object show up in ``d``.
    """

    _state: dict[str, Any]

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", {} if state is None else state)

    def __setattr__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(
                f"'{self.__class__.__name__}' object has no attribute '{key}'"
            ) from None

    def __delattr__(self, key: str) -> None:
        del self._state[key]

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __delitem__(self, key: str) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)
