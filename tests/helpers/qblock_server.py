"""A QBlockServer (opendots.transport.qblock_server) driven without sockets: real aiocoap messages carrying Q-Block
options, and a clock object in place of the event loop, whose one timer a test fires when it chooses (`now`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap.numbers.types import NON
from aiocoap.optiontypes import OpaqueOption

from opendots.transport.qblock import QBLOCK1, QBLOCK2, BlockOption, QBlockLimits, QBlockParameters
from opendots.transport.qblock_server import REQUEST_TAG, QBlockServer

PEER = "peer-a"
SZX = 0  # 16-byte blocks


class _Handle:
    def cancel(self) -> None:
        pass


class Clock:
    """What QBlockServer asks of its loop: the time, and one timer (the engine's earliest deadline)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timer: tuple[float, Callable[[], None]] | None = None

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        self.timer = (when, callback)
        return _Handle()

    def fire(self) -> None:
        assert self.timer is not None
        self.now, callback = self.timer
        self.timer = None
        callback()


def served(**limits: Any) -> tuple[QBlockServer, Clock, list[aiocoap.Message]]:
    clock, sent = Clock(), []
    server = QBlockServer(loop=clock, send=sent.append, params=QBlockParameters(), limits=QBlockLimits(**limits))
    return server, clock, sent


def block1(num: int, body: bytes, tag: bytes) -> aiocoap.Message:
    more = (num + 1) * 16 < len(body)
    message = aiocoap.Message(code=aiocoap.PUT, uri_path=("m",))
    message.mtype, message.token = NON, tag + bytes([num])
    message.opt.add_option(OpaqueOption(QBLOCK1, BlockOption(num, more, SZX).encode()))
    message.opt.add_option(OpaqueOption(REQUEST_TAG, tag))
    message.opt.size1 = len(body)
    message.payload = body[num * 16 : (num + 1) * 16]
    message.remote = PEER
    return message


def get(token: bytes, *options: BlockOption) -> aiocoap.Message:
    message = aiocoap.Message(code=aiocoap.GET, uri_path=("big",))
    message.mtype, message.token = NON, token
    for option in options:
        message.opt.add_option(OpaqueOption(QBLOCK2, option.encode()))
    message.remote = PEER
    return message
