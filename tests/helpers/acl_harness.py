"""RFC 9133 filter control, sans I/O: the signal core and the data channel core on one real SQLite file, with the
RFC's §4 examples (cuids replaced by our test client's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore, RestconfRequest, RestconfResponse
from opendots.data.records import DataChannelQuery
from opendots.signal.server.core import Request, Response, ServerSettings
from opendots.signal.server.shell.acls import DataChannelAclControl
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.signal import SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.signal_harness import SettledServer

T0 = 1_800_000_000.0
SCOPE = "ietf-dots-signal-channel:mitigation-scope"
ACL_LIST = "ietf-dots-signal-control:acl-list"
DATA = "/ietf-dots-data-channel:dots-data"

FIGURE_2 = {
    "ietf-dots-data-channel:acls": {
        "acl": [
            {
                "name": "an-accept-list",
                "type": "ipv6-acl-type",
                "activation-type": "activate-when-mitigating",
                "aces": {
                    "ace": [
                        {
                            "name": "test-ace-ipv6-udp",
                            "matches": {
                                "ipv6": {
                                    "destination-ipv6-network": "2001:db8:6401::2/127",
                                    "source-ipv6-network": "2001:db8:1234::/48",
                                },
                                "udp": {"destination-port-range-or-operator": {"operator": "eq", "port": 443}},
                            },
                            "actions": {"forwarding": "accept"},
                        }
                    ]
                },
            }
        ]
    }
}
FIGURE_3 = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::2/127"], "target-protocol": [17], "lifetime": 3600}]}}
FIGURE_4 = {SCOPE: {"scope": [{"mid": 123, "lifetime": 3600}]}}
FIGURE_5 = {
    SCOPE: {
        "scope": [
            {
                "target-prefix": ["2001:db8:6401::2/127"],
                "target-protocol": [17],
                ACL_LIST: [{"acl-name": "an-accept-list", "activation-type": "deactivate"}],
                "lifetime": 3600,
            }
        ]
    }
}
FIGURE_7_ACL = {
    "name": "my-accept-list",
    "type": "ipv6-acl-type",
    "activation-type": "deactivate",
    "aces": {
        "ace": [
            {
                "name": "an-ace",
                "matches": {
                    "ipv6": {
                        "destination-ipv6-network": "2001:db8:6401::2/127",
                        "source-ipv6-network": "2001:db8:1234::/48",
                        "protocol": 17,
                    }
                },
                "actions": {"forwarding": "accept"},
            }
        ]
    },
}
FIGURE_8 = {
    SCOPE: {
        "scope": [
            {
                "target-prefix": ["2001:db8:6401::2/127"],
                "target-protocol": [17],
                ACL_LIST: [{"acl-name": "my-accept-list", "activation-type": "immediate"}],
                "lifetime": 3600,
            }
        ]
    }
}


def udp_53_drop_acl(name: str, network: str) -> dict[str, Any]:
    """A data-channel ACL NAME dropping UDP to port 53 of the IPv4 NETWORK (activate-when-mitigating, RFC 8783)."""
    udp = {"destination-port-range-or-operator": {"operator": "eq", "port": 53}}
    ace = {"name": "udp-53", "matches": {"ipv4": {"destination-ipv4-network": network}, "udp": udp}}
    return {
        "name": name,
        "type": "ipv4-acl-type",
        "activation-type": "activate-when-mitigating",
        "aces": {"ace": [{**ace, "actions": {"forwarding": "drop"}}]},
    }


@dataclass
class Harness:
    config: ServerConfig
    core: SettledServer
    data: DataChannelCore
    cuid: str
    heard: list[str]

    def signal(
        self, method: str, mid: int, body: dict[str, Any] | None, now: float, peer: str | None = None
    ) -> Response:
        path = ("mitigate", f"cuid={self.cuid}", f"mid={mid}")
        response, _ = self.core.handle(Request(method, path, peer=peer or self.cuid, body=body), now)
        return response

    def rest(self, method: str, path: str, body: dict[str, Any] | None, now: float, cuid: str | None = None):
        cuid = cuid or self.cuid
        raw = json.dumps(body).encode() if body is not None else b""
        request = RestconfRequest(method, DATA + path, cuid, body=raw, content_type="application/yang-data+json")
        response: RestconfResponse = self.data.handle(request, now)
        assert response.status < 300, response.body
        return response

    def register(self, cuid: str, now: float = T0) -> None:
        self.rest("POST", "", {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]}, now, cuid)

    def activation(self, name: str, cuid: str | None = None) -> str:
        return next(
            a.activation_type
            for a in DataChannelQuery(self.data.store, lambda: T0).acls_for(cuid or self.cuid)
            if a.name == name
        )


@pytest.fixture
def harness(server_config: ServerConfig, tmp_path: Path) -> Harness:
    database = SqliteDatabase(tmp_path / "server.db")
    data = DataChannelCore(SqliteDataChannelStore(database), server_config.client_by_cuid)
    heard: list[str] = []
    data.subscribe(heard.append)
    settings = ServerSettings(clients=server_config.clients, acl_control=DataChannelAclControl(data))
    core = SettledServer(settings, SqliteSignalStore(database), T0)
    cuid = next(c.cuid for c in server_config.clients if c.name == "client")
    built = Harness(server_config, core, data, cuid, heard)
    built.register(cuid)
    return built
