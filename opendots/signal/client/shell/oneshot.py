"""One operation over a connection of its own, for CLI runs when no agent is listening."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiocoap

from opendots.config import ClientConfig
from opendots.discovery.records import name_origin
from opendots.pki.cuid import cuid_from_certificate
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsRequest, DotsResponse
from opendots.signal.client.shell import coap
from opendots.signal.client.shell.connect import (
    ConnectError,
    Connection,
    Group,
    candidates_for,
    discovered_groups,
    race,
    resolve_addresses,
)
from opendots.signal.client.shell.control import ControlError
from opendots.signal.client.shell.operations import ClientOperations, OperationError
from opendots.signal.client.shell.settings import AgentSettings
from opendots.store.client_state import ClientStateStore
from opendots.transport import create_client_context, open_session

log = logging.getLogger(__name__)


async def run_once(
    config: ClientConfig, settings: AgentSettings, operation: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Connect (Happy Eyeballs), run OPERATION like the agent's control API would, disconnect.

    Uses the same state file as the agent, so mids stay monotonic whichever way a request was sent. The
    credentials are checked first (ConfigError naming the file), as the agent's are at start.
    """
    from opendots.app import check_credentials  # the composition root's check; imported late (it imports us)

    check_credentials(config.tls)
    cuid = cuid_from_certificate(config.tls.cert.read_bytes())
    store = ClientStateStore(settings.state_file, cuid)
    context = None
    try:
        core = DotsClientCore(cuid, store, now=time.time())
        context, connection = await _connect(config, settings)

        async def send(request: DotsRequest) -> DotsResponse:
            try:
                return await coap.send(
                    context,
                    connection.candidate.base_uri,
                    request,
                    reliable=connection.reliable,
                    parameters=core.parameters,
                    timeout=settings.request_timeout,
                )
            except coap.NoAnswer as error:
                raise ControlError(str(error), "5.04") from None
            except coap.TransportFailure as error:
                raise ControlError(f"session failed: {error}", "5.03") from None

        operations = ClientOperations(core, send)
        try:
            result = await operations.dispatch(operation, {k: v for k, v in args.items() if k != "refresh"})
        except OperationError as error:
            raise ControlError(str(error), error.code) from None
        return {"server": connection.candidate.base_uri, **result}
    finally:
        try:
            if context is not None:
                await context.shutdown()
        except Exception:  # the exchange is over: a failing teardown must not turn its outcome into a crash
            log.warning("closing the one-shot session failed", exc_info=True)
        store.close()


async def _connect(config: ClientConfig, settings: AgentSettings) -> tuple[aiocoap.Context, Connection]:
    """Happy Eyeballs to the configured server, or (discovery = "auto") to each discovered peer name in the
    RFC 8973 §4 order, each on a context that verifies that name."""
    if config.discovery == "auto":
        from opendots.discovery.discover import discoverer_for

        groups = await discovered_groups(config, discoverer_for(config))
    else:
        groups = [Group(config.server_name, candidates_for(config, await resolve_addresses(config)))]
    errors: list[str] = []
    for group in groups:
        server_name, candidates = group.server_name, group.candidates
        origin = "server_name in client.toml" if group.source is None else name_origin(group.source, server_name)
        context = await create_client_context(config.tls, server_name=server_name, name_source=origin)

        async def attempt(candidate: Any, context: aiocoap.Context = context) -> float:
            return await open_session(context, candidate.base_uri, timeout=settings.connect_timeout)

        try:
            return context, await race(candidates, attempt, attempt_delay=settings.attempt_delay)
        except ConnectError as error:
            errors.append(f"{server_name}: {error}" if len(groups) > 1 else str(error))
            await context.shutdown()
    raise ConnectError("; ".join(errors))
