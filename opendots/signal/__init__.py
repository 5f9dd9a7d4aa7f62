"""The DOTS signal channel (RFC 9132): sans-I/O server core, its asyncio service and CoAP resources.

- ``opendots.signal.core``: ``SignalServer(settings, store, now)``; ``handle(Request, now) -> (Response, events)``,
  ``next_timer()``, ``handle_timer(now)``, ``report_status(key, status, now)``, ``report_counters(key, counters, now)``,
  ``set_redirection(Redirection | None)``, ``restore_events()``. No sockets, clocks or CBOR.
- ``opendots.signal.server``: ``SignalService`` (timers, Mitigator, name resolution, events),
  ``resources.build_site`` (aiocoap Site under /.well-known/dots), ``run.start_signal_server(config)``.
- Persistent state: ``opendots.store.signal`` (``SignalStore``, ``SqliteSignalStore``).
"""
