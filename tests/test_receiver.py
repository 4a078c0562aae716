"""RequestReceiver: the one reader of a request, driven by a scripted server ``receive``."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from toolkit.exceptions import HTTPException
from toolkit.receiver import READ_AHEAD, RequestReceiver
from toolkit.types import Message

TIME_LIMIT = 2
#: With ``autojump_clock`` the bound is in virtual seconds, so it can be generous.
VIRTUAL_LIMIT = 1000
DISCONNECT: Message = {"type": "http.disconnect"}


def chunk(body: bytes, more_body: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more_body}


class FakeServer:
    """The server side of ``receive``: queued messages, at most one reader at a time.

    ``receive()`` blocks while nothing is queued, like hypercorn's app queue; it fails
    the test if two callers are inside it at once, and counts its calls.
    """

    def __init__(self, *messages: Message) -> None:
        self.send_channel, self.receive_channel = trio.open_memory_channel[Message](math.inf)
        self.reading = False
        self.calls = 0
        for message in messages:
            self.put(message)

    def put(self, message: Message) -> None:
        self.send_channel.send_nowait(message)

    async def receive(self) -> Message:
        assert not self.reading, "two concurrent calls of the server's receive()"
        self.reading = True
        self.calls += 1
        try:
            return await self.receive_channel.receive()
        finally:
            self.reading = False


class Owner:
    """Stands in for the request scope: counts disconnect notifications."""

    # Outside a request's cancel scope, the receiver times the body with its own.
    in_cancel_scope = False

    def __init__(self) -> None:
        self.disconnects = 0

    def client_disconnected(self) -> None:
        self.disconnects += 1


def make_receiver(
    server: FakeServer,
    max_body_size: int | None = None,
    body_timeout: float | None = None,
) -> tuple[RequestReceiver, Owner]:
    owner = Owner()
    receiver = RequestReceiver(server.receive, owner, max_body_size, body_timeout)  # type: ignore[arg-type]
    return receiver, owner


async def test_body_then_disconnect_then_disconnect_again_without_blocking() -> None:
    server = FakeServer(chunk(b"ab"), chunk(b"cd", more_body=False))
    receiver, owner = make_receiver(server)
    with trio.fail_after(VIRTUAL_LIMIT):
        assert await receiver() == chunk(b"ab")
        assert await receiver() == chunk(b"cd", more_body=False)
        async with trio.open_nursery() as nursery:
            received: list[Message] = []

            async def read() -> None:
                received.append(await receiver())

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            assert received == []  # after the body, receive waits for the disconnect
            server.put(DISCONNECT)
        assert received == [DISCONNECT]
        # hypercorn delivers the disconnect once; the receiver answers it every time after.
        for _ in range(3):
            assert await receiver() == DISCONNECT
    assert owner.disconnects == 1
    assert receiver.disconnected
    assert server.calls == 3


async def test_disconnect_is_reported_to_the_owner_once() -> None:
    server = FakeServer(chunk(b"", more_body=False), DISCONNECT, DISCONNECT)
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        await receiver()
        await receiver.watch()
        await receiver.watch()
        assert await receiver() == DISCONNECT
    assert owner.disconnects == 1
    assert server.calls == 2  # nobody reads the server again after a disconnect


async def test_disconnect_while_the_body_is_incomplete() -> None:
    server = FakeServer(chunk(b"part"), DISCONNECT)
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        assert await receiver() == chunk(b"part")
        assert await receiver() == DISCONNECT
        assert await receiver() == DISCONNECT
    assert owner.disconnects == 1


async def test_watch_sees_a_disconnect_queued_behind_an_unread_body() -> None:
    server = FakeServer(chunk(b"x" * 1000), chunk(b"y" * 1000), DISCONNECT)
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        await receiver.watch()
    assert owner.disconnects == 1
    # The body read ahead is still there for the app, in order, then the disconnect.
    assert await receiver() == chunk(b"x" * 1000)
    assert await receiver() == chunk(b"y" * 1000)
    assert await receiver() == DISCONNECT


async def test_watch_reads_ahead_a_bounded_amount_of_body() -> None:
    size = 64 * 1024
    total_chunks = 3 * READ_AHEAD // size
    server = FakeServer(*(chunk(b"z" * size) for _ in range(total_chunks)))
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver.watch)
            await trio.testing.wait_all_tasks_blocked()
            # The watcher stopped reading: at most READ_AHEAD (plus the chunk that crossed it).
            read_ahead = server.calls
            assert READ_AHEAD <= read_ahead * size <= READ_AHEAD + size
            assert not server.reading

            # Each chunk the app takes makes room for the watcher to read one more.
            assert await receiver() == chunk(b"z" * size)
            await trio.testing.wait_all_tasks_blocked()
            assert server.calls == read_ahead + 1

            nursery.cancel_scope.cancel()
    assert owner.disconnects == 0


async def test_watch_never_reads_past_the_read_ahead_to_find_a_disconnect() -> None:
    size = 64 * 1024
    messages = [chunk(b"z" * size) for _ in range(2 * READ_AHEAD // size)]
    server = FakeServer(*messages, DISCONNECT)
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        with trio.move_on_after(0.05) as scope:
            await receiver.watch()
    assert scope.cancelled_caught
    assert owner.disconnects == 0
    assert server.calls * size <= READ_AHEAD + size


async def test_the_app_and_the_watcher_never_read_the_server_at_once() -> None:
    server = FakeServer()
    receiver, owner = make_receiver(server)
    body: list[bytes] = []

    async def read_body() -> None:
        while True:
            message = await receiver()
            body.append(message["body"])
            if not message["more_body"]:
                return

    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver.watch)
            nursery.start_soon(read_body)
            for index in range(20):
                await trio.testing.wait_all_tasks_blocked()
                server.put(chunk(b"%d," % index, more_body=index < 19))
            await trio.testing.wait_all_tasks_blocked()
            server.put(DISCONNECT)
    assert b"".join(body) == b"".join(b"%d," % index for index in range(20))
    assert owner.disconnects == 1


async def test_a_request_message_after_the_last_body_chunk_is_ignored() -> None:
    server = FakeServer(chunk(b"end", more_body=False), chunk(b"stray"), DISCONNECT)
    receiver, owner = make_receiver(server)
    with trio.fail_after(TIME_LIMIT):
        assert await receiver() == chunk(b"end", more_body=False)
        assert await receiver() == DISCONNECT
    assert receiver.received_bytes == 3
    assert owner.disconnects == 1


async def test_body_over_the_limit_is_413_after_the_chunks_within_it() -> None:
    server = FakeServer(chunk(b"a" * 6), chunk(b"b" * 4), chunk(b"c"), chunk(b"", more_body=False))
    receiver, _ = make_receiver(server, max_body_size=10)
    with trio.fail_after(TIME_LIMIT):
        assert await receiver() == chunk(b"a" * 6)
        assert await receiver() == chunk(b"b" * 4)  # exactly at the limit is fine
        for _ in range(2):  # and every later read says so again
            with pytest.raises(HTTPException) as info:
                await receiver()
            assert info.value.status_code == 413
    assert receiver.too_large
    assert server.calls == 3  # nothing more is read once over the limit


async def test_body_over_the_limit_read_by_the_watcher_is_413_for_the_app() -> None:
    server = FakeServer(chunk(b"a" * 8), chunk(b"b" * 8))
    receiver, owner = make_receiver(server, max_body_size=10)
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver.watch)
            await trio.testing.wait_all_tasks_blocked()
            assert receiver.too_large
            assert server.calls == 2  # the watcher stops reading, too
            assert await receiver() == chunk(b"a" * 8)
            with pytest.raises(HTTPException) as info:
                await receiver()
            assert info.value.status_code == 413
            nursery.cancel_scope.cancel()
    assert owner.disconnects == 0


@pytest.mark.parametrize(("content_length", "status"), [("11", 413), ("abc", 400), ("-", 400)])
def test_declared_length_over_the_limit_or_invalid(content_length: str, status: int) -> None:
    receiver, _ = make_receiver(FakeServer(), max_body_size=10)
    with pytest.raises(HTTPException) as info:
        receiver.check_declared_length(content_length)
    assert info.value.status_code == status


@pytest.mark.parametrize(("limit", "content_length"), [(10, "10"), (10, None), (None, "99999")])
def test_declared_length_within_the_limit(limit: int | None, content_length: str | None) -> None:
    receiver, _ = make_receiver(FakeServer(), max_body_size=limit)
    receiver.check_declared_length(content_length)


async def test_slow_body_is_408_counted_from_the_first_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer()
    receiver, _ = make_receiver(server, body_timeout=10)

    async def trickle() -> None:
        for _ in range(3):
            await trio.sleep(4)
            server.put(chunk(b"."))

    with trio.fail_after(VIRTUAL_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            start = trio.current_time()
            assert await receiver() == chunk(b".")
            assert await receiver() == chunk(b".")
            # The third chunk would come at +12 s: past the 10 s budget of the whole body.
            with pytest.raises(HTTPException) as info:
                await receiver()
            assert info.value.status_code == 408
            assert trio.current_time() - start == pytest.approx(10)


async def test_body_in_time_is_not_408(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer()
    receiver, _ = make_receiver(server, body_timeout=10)

    async def trickle() -> None:
        await trio.sleep(9)
        server.put(chunk(b"late but in time", more_body=False))

    with trio.fail_after(VIRTUAL_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            assert await receiver() == chunk(b"late but in time", more_body=False)
            # Waiting for the disconnect after the body is not a body read: no 408.
            with trio.move_on_after(100):
                await receiver()
            assert not receiver.disconnected


async def test_slow_body_while_the_watcher_reads_is_408(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer(chunk(b"first"))
    receiver, _ = make_receiver(server, body_timeout=5)
    with trio.fail_after(VIRTUAL_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver.watch)
            assert await receiver() == chunk(b"first")
            with pytest.raises(HTTPException) as info:
                await receiver()
            assert info.value.status_code == 408
            nursery.cancel_scope.cancel()
