"""Aliases a client created over the data channel (RFC 8783 §6), as the signal core's AliasDirectory.

This couples the two channels by the client's identity (RFC 9132 §4.4.1.3): an alias is only
visible to the client whose certificate CUID created it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from opendots.config import ClientAuthorization
from opendots.domain import Targets, parse_port_ranges
from opendots.store.data_channel import DataChannelStore

log = logging.getLogger(__name__)


class DataChannelAliases:
    def __init__(
        self,
        store: DataChannelStore,
        clients: Sequence[ClientAuthorization],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._cuids = {client.name: client.cuid for client in clients}
        self.clock = clock

    def set_clients(self, clients: Sequence[ClientAuthorization]) -> None:
        self._cuids = {client.name: client.cuid for client in clients}

    def resolve(self, client: str, alias: str) -> Targets | None:
        cuid = self._cuids.get(client)
        entry = self.store.get_alias(cuid, alias, self.clock()) if cuid else None
        if entry is None:
            return None
        try:
            return alias_targets(entry.body)
        except (ValueError, TypeError, KeyError) as problem:  # stored by the data channel, validated there
            log.error("alias %s of %s cannot be used: %s", alias, client, problem)
            return None


def alias_targets(body: dict[str, Any]) -> Targets:
    """An RFC 8783 alias entry (target-prefix, target-port-range, target-protocol, target-fqdn, target-uri)."""
    return Targets(
        target_prefixes=tuple(ipaddress.ip_network(p) for p in body.get("target-prefix", [])),
        target_port_ranges=parse_port_ranges(body.get("target-port-range", [])),
        target_protocols=tuple(int(p) for p in body.get("target-protocol", [])),
        target_fqdns=tuple(name.rstrip(".").lower() for name in body.get("target-fqdn", [])),
        target_uris=tuple(body.get("target-uri", [])),
    )
