"""The scenario table shared by inproc.py and served.py: one row per kind of request.

To add a scenario, give every app in apps/ the route it needs and add a row here. A row whose
``kind`` a harness cannot drive yet (only "http" today; "websocket" is the next one planned) is
skipped by that harness with a message, so rows can land before their driver does.

Planned rows: a WebSocket session and per-message echo. Files (FileResponse, StaticFiles, uploads)
need files made at run time and have their own harness, files.py.
"""

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.apps.common import ECHO_BODY, ECHO_PAYLOAD, GZIP_BODY, HELLO


@dataclass(frozen=True)
class Scenario:
    """One request every app must answer with status 200, and how to recognise a right answer.

    ``headers`` are sent with the request (beside host, user-agent and accept). ``target`` is the
    most toolkit's in-process time may be, as a multiple of Starlette's; ``served_target`` the
    least toolkit's requests/s may be, served, as a multiple of Starlette's (None: no target).
    ``max_connections`` caps the load generator's connections for requests heavy enough that
    many at once measure the CPU cache rather than the framework.
    """

    name: str
    doc: str
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    expected_text: str | None = None
    expected_json: Any = None
    expected_header: tuple[str, str] | None = None
    target: float | None = 1.0
    served_target: float | None = None
    max_connections: int | None = None
    kind: str = "http"

    def problem(self, status: int, headers: Mapping[str, str], body: bytes) -> str | None:
        """Say what is wrong with a response (headers lower-cased), or None if it is right."""
        if status != 200:
            return f"status {status}, body {body[:200]!r}"
        if headers.get("content-encoding") == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                return f"body is not valid gzip: {exc}"
        if self.expected_text is not None and body != self.expected_text.encode():
            return f"body {body[:200]!r}, expected {self.expected_text!r}"
        if self.expected_json is not None:
            try:
                value = json.loads(body)
            except ValueError:
                return f"body is not JSON: {body[:200]!r}"
            if value != self.expected_json:
                return f"JSON {value!r}, expected {self.expected_json!r}"
        if self.expected_header is not None:
            name, value = self.expected_header
            if headers.get(name) != value:
                return f"header {name}: {headers.get(name)!r}, expected {value!r}"
        return None


SCENARIOS = [
    Scenario(
        "plaintext",
        "GET /plaintext: a 13-byte text response, the smallest round trip",
        "GET",
        "/plaintext",
        expected_text=HELLO,
        served_target=1.0,
    ),
    Scenario(
        "json",
        "GET /json: a small dict serialised by JSONResponse",
        "GET",
        "/json",
        expected_json={"message": HELLO},
        served_target=1.0,
    ),
    Scenario(
        "users",
        "GET /users/42: an int path parameter on the route listed after 50 decoys",
        "GET",
        "/users/42",
        expected_json={"user_id": 42},
        target=0.3,
        served_target=1.3,
    ),
    Scenario(
        "echo",
        "POST /echo: read and parse a 1 KB JSON body, serialise it back",
        "POST",
        "/echo",
        body=ECHO_BODY,
        content_type="application/json",
        expected_json=ECHO_PAYLOAD,
    ),
    Scenario(
        "mw_asgi",
        "GET /mw-asgi/plaintext: plain text through 3 pure-ASGI middlewares on the Route",
        "GET",
        "/mw-asgi/plaintext",
        expected_text=HELLO,
        expected_header=("x-asgi-middleware", "1"),
    ),
    Scenario(
        "mw_base",
        "GET /mw-base/plaintext: mw_asgi plus one BaseHTTPMiddleware that adds a header",
        "GET",
        "/mw-base/plaintext",
        expected_text=HELLO,
        expected_header=("x-dispatch", "1"),
        target=0.3,
        served_target=1.5,
    ),
    Scenario(
        "gzip",
        "GET /gzip/stream: 1 MiB streamed in 64 KiB chunks through GZipMiddleware (level 9)",
        "GET",
        "/gzip/stream",
        headers=(("accept-encoding", "gzip"),),
        expected_text=GZIP_BODY.decode(),
        expected_header=("content-encoding", "gzip"),
        served_target=1.0,
        max_connections=8,
    ),
]

SCENARIOS_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
