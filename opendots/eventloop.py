"""Which asyncio event loop the long-running processes use.

uvloop (libuv, compiled) runs the same asyncio code with less interpreter work per callback, timer and datagram: on
the signal-channel benchmark it takes 6-8 % off the server's CPU per request. aiocoap keeps one timer per received
message for duplicate detection (EXCHANGE_LIFETIME, 247 s), so a busy server holds hundreds of thousands of timers;
uvloop keeps them in C. `--event-loop asyncio` falls back to the standard loop, e.g. to rule uvloop out when
chasing a problem.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from opendots.errors import UnavailableError

T = TypeVar("T")
EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
CHOICES: tuple[str, ...] = ("auto", "uvloop", "asyncio")


class EventLoopUnavailable(UnavailableError, RuntimeError):
    """The loop asked for is not installed."""


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """asyncio.run(MAIN) on the chosen loop; "auto" is uvloop when it is installed, the standard loop otherwise."""
    factory = None
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise EventLoopUnavailable("--event-loop uvloop: the uvloop package is not installed") from None
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """ "uvloop" or "asyncio": what this process runs on (operator status)."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def stop_on_signals() -> asyncio.Event:
    """An event SIGINT and SIGTERM set on the running loop: what a long-running command awaits before it stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    return stop
