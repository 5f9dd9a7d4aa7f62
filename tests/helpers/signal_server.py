"""Talking to a running signal server over real sockets with an aiocoap client: the well-known path, one request,
a client's CUID by name."""

from __future__ import annotations

import asyncio

import aiocoap

from opendots.config import ServerConfig
from opendots.model import encode_signal

BASE = "/.well-known/dots"


async def request(context, method, uri, body=None, timeout=10.0, **options) -> aiocoap.Message:
    message = aiocoap.Message(code=method, uri=uri, **options)
    if body is not None:
        message.payload = encode_signal(body) if isinstance(body, dict) else body
        message.opt.content_format = options.get("content_format", 271)
    return await asyncio.wait_for(context.request(message).response, timeout)


def cuid_of(config: ServerConfig, name: str) -> str:
    return next(c.cuid for c in config.clients if c.name == name)
