"""DOTS data channel (RFC 8783): a sans-I/O RESTCONF core, its HTTPS shell, a client, and the typed records the
rest of OpenDOTS reads.

    core/    DataChannelCore: a RestconfRequest and `now` in, a RestconfResponse and its change set out
    shell/   aiohttp mutual-TLS server (create_data_app, start_data_server), the [data] table, how the core runs
    client.py   DataChannelClient (host-meta discovery, RFC 8783 operations)
    discovery.py   the server found by RFC 8973 (data.tcp) when client.toml names none
    records.py  Alias, Acl, Ace, ... and DataChannelQuery(store).resolve_alias / .acls_for

The shell imports aiohttp: import it from opendots.data.shell.server, not from here.
"""

from opendots.data.core import DataChannelCore, DataChannelSettings
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

__all__ = [
    "Ace",
    "AceAction",
    "AceMatch",
    "Acl",
    "Alias",
    "BitmaskMatch",
    "DataChannelCore",
    "DataChannelQuery",
    "DataChannelSettings",
    "PortMatch",
]
