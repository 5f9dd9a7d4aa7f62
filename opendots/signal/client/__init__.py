"""DOTS signal channel client (RFC 9132 client side): sans-I/O core, agent, local control API.

- `core.DotsClientCore`: requests, responses, session clocks (heartbeats, refresh, lifetimes), events.
- `core_eyeballs`: Happy Eyeballs ordering and race (§4.3).
- `core_timing`: session parameters, NON retransmission schedule, reconnect back-off.
- `state.ClientStateStore`: durable mid/sid counters and active mitigations (SQLite).
- `agent.ClientAgent`: the long-running asyncio agent; `control`: its JSON-over-Unix-socket API.
"""
