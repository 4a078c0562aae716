#!/usr/bin/env python3
"""Broadcast fan-out benchmark: one publisher, ``--subscribers`` in-process subscribers.

Every subscriber is a task iterating its subscription, as a WebSocket session's forwarding
child would; the publisher publishes ``--messages`` messages as fast as it can, then waits
until every subscriber has seen the last one. Reported: messages published per second and
deliveries (messages x subscribers) per second, median of ``--rounds`` rounds.

    python benchmarks/ws_broadcast.py
    python benchmarks/ws_broadcast.py --subscribers 1000 --messages 2000 -r 5 --json /tmp/b.json
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from benchmarks.reporting import describe_environment, format_table
from toolkit.broadcast import Broadcast, Subscriber


async def fan_out(subscribers: int, messages: int, buffer_size: int) -> tuple[float, int]:
    """Seconds from the first publish to the last delivery, and the messages dropped."""
    broadcast = Broadcast(buffer_size=buffer_size)
    done = trio.Event()
    finished = 0
    ready = 0
    all_ready = trio.Event()
    dropped = 0

    async def subscriber() -> None:
        nonlocal finished, ready, dropped
        async with broadcast.subscribe("feed") as subscription:
            ready += 1
            if ready == subscribers:
                all_ready.set()
            await drain(subscription)
            dropped += subscription.dropped
        finished += 1
        if finished == subscribers:
            done.set()

    async def drain(subscription: Subscriber) -> None:
        async for message in subscription:
            if message == messages - 1:
                return

    async with trio.open_nursery() as nursery:
        for _ in range(subscribers):
            nursery.start_soon(subscriber)
        await all_ready.wait()
        start = time.perf_counter()
        for number in range(messages):
            await broadcast.publish("feed", number)
        await done.wait()
        elapsed = time.perf_counter() - start
    return elapsed, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--buffer-size", type=int, default=100)
    parser.add_argument("-r", "--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rounds = [
        trio.run(fan_out, args.subscribers, args.messages, args.buffer_size)
        for _ in range(args.rounds)
    ]
    seconds = statistics.median(elapsed for elapsed, _ in rounds)
    dropped = max(lost for _, lost in rounds)
    published = args.messages / seconds
    delivered = (args.messages * args.subscribers - dropped) / seconds
    header = ["subscribers", "messages", "published/s", "deliveries/s", "dropped (worst round)"]
    row = [
        str(args.subscribers),
        str(args.messages),
        f"{published:,.0f}",
        f"{delivered:,.0f}",
        str(dropped),
    ]
    print(format_table(header, [row]))
    if args.json:
        result = {
            "subscribers": args.subscribers,
            "messages": args.messages,
            "published_per_s": published,
            "deliveries_per_s": delivered,
            "dropped": dropped,
            "environment": describe_environment(),
        }
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
