"""Asyncio shell of the DOTS signal-channel client.

- `agent.ClientAgent`: the long-running agent that drives `DotsClientCore` over CoAP (`coap`, `connect`).
- `control`: the agent's JSON-over-Unix-socket API; `operations` (with `telemetry_operations`, RFC 9244), `oneshot`:
  the CLI's calls through it or directly.
- `settings.AgentSettings`: the agent's configuration. Its durable state is `opendots.store.client_state`.
"""
