"""DOTS data channel (RFC 8783): RESTCONF server and client, and the typed records the rest of OpenDOTS reads.

Public API:
    create_data_app(config, store, settings=None, clock=time.time) -> aiohttp.web.Application
    start_data_server(config, store, host, port, settings=None, clock=time.time) -> aiohttp.web.AppRunner
    DataChannelSettings (capabilities, gateways, lifetime, server_id, max_entries, domain_conflicts)
    DataChannelQuery(store).resolve_alias(cuid, name) / .acls_for(cuid, activation_type)
    Alias, Acl, Ace, AceMatch, AceAction, PortMatch, BitmaskMatch
    DataChannelClient (host-meta discovery, RFC 8783 operations)
"""

from opendots.data.records import (
    Ace,
    AceAction,
    AceMatch,
    Acl,
    Alias,
    BitmaskMatch,
    DataChannelQuery,
    PortMatch,
)
from opendots.data.service import DataChannelService, DataChannelSettings

__all__ = [
    "Ace",
    "AceAction",
    "AceMatch",
    "Acl",
    "Alias",
    "BitmaskMatch",
    "DataChannelQuery",
    "DataChannelService",
    "DataChannelSettings",
    "PortMatch",
]
