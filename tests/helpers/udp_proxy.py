"""A UDP forwarder between the peers that send to it and one server, that drops the datagrams a test asks it to:
loss on one leg of a chain, without namespaces (the payload is DTLS: it is chosen by direction and size only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: LossyUdpProxy, peer: Any) -> None:
        self.proxy, self.peer = proxy, peer

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.proxy.listener is not None
        self.proxy.listener.sendto(data, self.peer)


class LossyUdpProxy(asyncio.DatagramProtocol):
    """`await proxy.start(server_port)` → the port to send to; `drop_next_upstream(larger_than)` arms the loss of the
    next datagram toward the server above that size; `upstream_filter`, while set, drops every datagram toward the
    server it returns True for; `dropped` counts the losses."""

    def __init__(self) -> None:
        self.listener: asyncio.DatagramTransport | None = None
        self.server: tuple[str, int] | None = None
        self.upstream: dict[Any, asyncio.DatagramTransport] = {}
        self.waiting: dict[Any, list[bytes]] = {}
        self.armed: list[int] = []
        self.upstream_filter: Callable[[bytes], bool] | None = None
        self.dropped = 0

    async def start(self, server_port: int, host: str = "127.0.0.1") -> int:
        self.server = (host, server_port)
        loop = asyncio.get_running_loop()
        self.listener, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        return int(self.listener.get_extra_info("sockname")[1])

    def drop_next_upstream(self, larger_than: int) -> None:
        self.armed.append(larger_than)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.armed and len(data) > self.armed[0]:
            self.armed.pop(0)
            self.dropped += 1
            return
        if self.upstream_filter is not None and self.upstream_filter(data):
            self.dropped += 1
            return
        if addr in self.waiting:  # its upstream socket is being opened
            self.waiting[addr].append(data)
        elif addr in self.upstream:
            self.upstream[addr].sendto(data)
        else:
            self.waiting[addr] = [data]
            asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(self, addr), remote_addr=self.server)
        self.upstream[addr] = transport
        for data in self.waiting.pop(addr):
            transport.sendto(data)

    def close(self) -> None:
        for transport in self.upstream.values():
            transport.close()
        if self.listener is not None:
            self.listener.close()
