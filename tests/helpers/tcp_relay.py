"""A TCP relay in front of a real server that never passes the server's close on to the client: the client reads
everything the server sent before it closed, then hears nothing more (a FIN lost, or late, on the way). With
PostgreSQL: a killed backend's FATAL reaches the client, the end of the session does not."""

from __future__ import annotations

import asyncio
import contextlib


class HeldCloseRelay:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> HeldCloseRelay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._writers += [client_writer, server_writer]
        # Client to server: the client's close is passed on. Server to client: its close is held back.
        await asyncio.gather(
            self._pump(client_reader, server_writer, close=True),
            self._pump(server_reader, client_writer, close=False),
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, close: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if close:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self._writers:
            writer.close()
