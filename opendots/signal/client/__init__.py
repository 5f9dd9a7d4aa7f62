"""DOTS signal channel client (RFC 9132 client side): a sans-I/O core (`core`) and its asyncio shell (`shell`)."""
