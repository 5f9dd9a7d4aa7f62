"""Waiting for a condition another process brings about (a real server, a cluster of them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool]], what: str, attempts: int = 300) -> None:
    """Poll CONDITION every 0.1 s until true: a bound on attempts, not a timing assertion."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")
