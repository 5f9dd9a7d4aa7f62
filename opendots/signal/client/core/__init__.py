"""Sans-I/O DOTS signal-channel client core: no sockets, clocks or database.

- `client.DotsClientCore`: requests, responses, session clocks (heartbeats, refresh, lifetimes), events.
- `requests`, `events`, `scope`: what the core sends, what it reports, the mitigation scope it asks for.
- `eyeballs`: Happy Eyeballs ordering and race (§4.3); `timing`: session parameters, NON retransmission schedule,
  reconnect back-off; `state`: the `ClientState` interface the core keeps its mid/sid/tsid/tmid counters behind.
- `telemetry.TelemetryClient` (the core's `telemetry`): RFC 9244 setups and reports; `telemetry_bodies`: their
  bodies and requests built from operator values (RATE[:UNIT], SRC[:PORT]).
"""
