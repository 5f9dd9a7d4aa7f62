"""The DOTS signal channel (RFC 9132): sans-I/O server core, its asyncio service and CoAP resources.

- ``opendots.signal.core``: ``SignalServer(settings, state, now)``; ``handle(Request, now) -> Decision`` (response,
  changes to store, events), ``apply(decision)`` once the changes are stored, ``next_timer()``, ``handle_timer(now)``,
  ``report_status(key, status, now)``, ``report_counters(key, counters, now)``, ``set_redirection(Redirection |
  None)``, ``restore_events()``. No sockets, clocks or database.
- ``opendots.signal.server``: ``SignalService`` (timers, Mitigator, name resolution, events),
  ``resources.build_site`` (aiocoap Site under /.well-known/dots), ``run.start_signal_server(config)``.
- Persistent state: ``opendots.store.records`` (what is stored, the ``SignalStore`` interface, ``StoreError``),
  ``opendots.store.signal`` (``SqliteSignalStore``); ``opendots.signal.server.durable.settle`` stores a decision,
  then applies it.
"""
