"""How long a change made through one node (or worker) takes to reach observers: on that node, and on another.

The change is one that is notified wherever it is made (RFC 9132 §4.4.2.1, a status change): the mitigation is
withdrawn (DELETE, §4.4.4: kept active-but-terminating, status 5) and asked for again (a PUT during
active-but-terminating makes it active, status 1), in turn. A refresh that keeps the status is notified on no node,
so it cannot be timed this way. Each change is timed from its request leaving to the writer's answer and to each
observer's notification with the new status.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiocoap

from opendots.model import decode_signal
from tests.helpers.cluster import SCOPE, DotsClient, Node

WITHDRAWN = "dots-client-withdrawn-mitigation"
ACTIVE = "attack-mitigation-in-progress"


async def _heard(notifications: AsyncIterator[Any], status: str) -> float:
    while True:
        notified = await asyncio.wait_for(notifications.__anext__(), 15)
        if decode_signal(notified.payload)[SCOPE]["scope"][0]["status"] == status:
            return time.perf_counter()


async def status_change_latency(
    writer: tuple[DotsClient, Node],
    observers: Sequence[tuple[DotsClient, Node]],
    mid: int,
    prefix: str,
    count: int,
    jitter: float = 0.0,
) -> tuple[list[float], list[list[float]]]:
    """COUNT status changes of a new mitigation MID (PREFIX) made by WRITER (a client and the node it sends to),
    each OBSERVER (a client and the node it observes on) watching: (the writer's answer times, each observer's
    notification times), in seconds. JITTER: a random pause before each change, up to that many seconds (not in
    step with a poll)."""
    client, node = writer
    created = await client.put(node, mid, prefix)
    assert created.code == aiocoap.CREATED, (created.code, created.payload)
    watches = []
    for observer, where in observers:
        await observer.entries(where, mid)  # read through that node: it holds the mitigation
        watch = observer.observe(where, mid)
        await asyncio.wait_for(watch.response, 15)
        watches.append(watch)
    streams = [watch.observation.__aiter__() for watch in watches]
    answers: list[float] = []
    heard: list[list[float]] = [[] for _ in observers]
    for i in range(count):
        if jitter:
            await asyncio.sleep(random.uniform(0, jitter))
        withdraw = i % 2 == 0
        started = time.perf_counter()

        async def answered(withdraw: bool = withdraw) -> float:
            if withdraw:
                response, expected = await client.request(node, aiocoap.DELETE, mid), aiocoap.DELETED
            else:
                response, expected = await client.put(node, mid, prefix), aiocoap.CHANGED
            assert response.code == expected, (response.code, response.payload)
            return time.perf_counter()

        status = WITHDRAWN if withdraw else ACTIVE
        times = await asyncio.gather(answered(), *(_heard(stream, status) for stream in streams))
        answers.append(times[0] - started)
        for samples, at in zip(heard, times[1:], strict=True):
            samples.append(at - started)
    for watch in watches:
        watch.observation.cancel()
    return answers, heard
