"""DOTS signal channel server (RFC 9132 server side): a sans-I/O core (`core`) and its asyncio shell (`shell`)."""
