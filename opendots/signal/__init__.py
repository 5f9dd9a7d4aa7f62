"""The DOTS signal channel (RFC 9132). Each role is a sans-I/O core beside the asyncio shell that drives it:

- ``server.core``: ``SignalServer(settings, state, now)``; ``handle(Request, now) -> Decision`` (response, changes to
  store, events), ``apply(decision)`` once the changes are stored, ``next_timer()``, ``handle_timer(now)``,
  ``report_status``, ``report_counters``, ``set_redirection``. No sockets, clocks or database.
- ``server.shell``: ``SignalService`` (timers, mitigator, name resolution, events), ``resources.build_site`` (aiocoap
  Site under /.well-known/dots), ``run.start_signal_server(config)``, ``durable.settle`` (store, then apply).
- ``client.core``: ``DotsClientCore``: requests, responses, session clocks, events. No sockets, clocks or database.
- ``client.shell``: ``ClientAgent`` (the long-running asyncio agent), its control socket, one-shot calls.

Stored state lives in ``opendots.store`` (``records`` for what is stored and the ``SignalStore`` interface, ``signal``
for the server's SQLite store, ``client_state`` for the client's).
"""
