"""Aliases created over the data channel (RFC 8783) are usable in signal-channel requests, per client only."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.signal.server.core import (
    MitigationActivated,
    Request,
    ServerSettings,
    StaticAliasDirectory,
    Targets,
)
from opendots.signal.server.core.authorization import resolve_aliases
from opendots.signal.server.shell.aliases import DataChannelAliases
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.signal import SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    T0,
    SettledServer,
    mitigate_path,
    scope_body,
)

ROOT = "ietf-dots-data-channel:dots-data"


def data_request(service: DataChannelCore, method: str, path: str, cuid: str, body: dict) -> int:
    request = RestconfRequest(
        method, path, cuid, body=json.dumps(body).encode(), content_type="application/yang-data+json"
    )
    return service.handle(request, T0).status


def test_signal_request_uses_the_clients_own_data_channel_alias(tmp_path: Path):
    database = SqliteDatabase(tmp_path / "shared.db")
    data_store = SqliteDataChannelStore(database)
    clients = {c.cuid: c for c in (ALPHA, BRAVO)}
    data = DataChannelCore(data_store, clients.get)
    for client in (ALPHA, BRAVO):
        registration = {"ietf-dots-data-channel:dots-client": [{"cuid": client.cuid}]}
        assert data_request(data, "POST", ROOT, client.cuid, registration) == 201
    alias = {
        "ietf-dots-data-channel:aliases": {
            "alias": [
                {
                    "name": "web",
                    "target-prefix": ["192.0.2.0/28"],
                    "target-port-range": [{"lower-port": 443}],
                    "target-protocol": [6],
                }
            ]
        }
    }
    assert data_request(data, "POST", f"{ROOT}/dots-client={ALPHA_CUID}", ALPHA_CUID, alias) == 201

    settings = ServerSettings(
        clients=[ALPHA, BRAVO], aliases=DataChannelAliases(data_store, [ALPHA, BRAVO], lambda: T0)
    )
    core = SettledServer(settings, SqliteSignalStore(database), T0)
    response, events = core.handle(
        Request("PUT", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, body=scope_body(alias_name=["web"])), T0
    )
    assert response.code == "2.01", response.diagnostic
    (activated,) = [e for e in events if isinstance(e, MitigationActivated)]
    assert [str(p) for p in activated.scope.target_prefixes] == ["192.0.2.0/28"]
    assert activated.scope.target_protocols == (6,)
    # Bravo has no alias named "web": its request is refused, not served with alpha's alias.
    response, _ = core.handle(
        Request("PUT", mitigate_path(BRAVO_CUID, 1), BRAVO_CUID, body=scope_body(alias_name=["web"])), T0
    )
    assert response.code == "4.00" and "alias" in response.diagnostic


def test_targets_without_aliases_are_held_as_parsed_not_copied():
    """Every held mitigation keeps its request's Targets; without aliases the resolved ones are that very object."""
    plain = Targets(target_prefixes=(ipaddress.ip_network("192.0.2.0/28"),))
    directory = StaticAliasDirectory(
        {"alpha": {"web": Targets(target_prefixes=(ipaddress.ip_network("192.0.2.128/25"),))}}
    )
    assert resolve_aliases(ALPHA, plain, directory) is plain
    named = Targets(target_prefixes=plain.target_prefixes, alias_names=("web",))
    resolved = resolve_aliases(ALPHA, named, directory)
    assert [str(p) for p in resolved.target_prefixes] == ["192.0.2.0/28", "192.0.2.128/25"]
    assert named.target_prefixes == plain.target_prefixes  # the request's own Targets is left as it was
