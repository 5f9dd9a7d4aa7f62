"""gw.toml: the gateway's own [gateway] table, and the two legs as the files they already are — a server.toml for
the downstream DOTS server side and a client.toml for the upstream DOTS client side.

    [gateway]
    kind = "client-domain"          # or "server-domain" (RFC 9132 §4.4.1, RFC 8811 §2.3)
    identity = "gw1.example.net"    # RFC 8768 §4: this gateway's name in 5.08 diagnostics, no spaces
    downstream = "downstream.toml"  # server.toml format: listen, ports, [tls], [[clients]] the gateway serves
    upstream = "upstream.toml"      # client.toml format: the upstream server, [tls] the gateway's client credentials
    state = "gateway.db"            # SQLite: the mapping downstream (client, cuid, mid) <-> upstream mid
    hop_limit = 16                  # RFC 8768 §3: initial Hop-Limit inserted when a request has none
    rewrite_hop_limit = false       # RFC 8768 §3: a boundary gateway MAY ignore the received value
    insert_cdid = true              # server-domain: add 'cdid' (RFC 9132 §4.4.1.2)
    retry_after = 30                # Max-Age of the 5.03 answered while the upstream server is unreachable
    admin_socket = "gateway.sock"   # `opendots gateway status`; default: the upstream file's control_socket
    metrics = "127.0.0.1:9465"      # Prometheus endpoint (optional)
    data_channel = false            # relay RFC 8783 on the downstream data_port (data_relay.py; client-domain:
                                    # data_client_domain.py, its clients' names kept apart upstream)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from opendots.config import ClientConfig, ConfigError, ServerConfig
from opendots.gateway.hoplimit import DEFAULT_HOP_LIMIT, IdentityError, check_identity, check_initial
from opendots.gateway.relay import KINDS, Kind

KEYS = (
    "kind",
    "identity",
    "downstream",
    "upstream",
    "state",
    "hop_limit",
    "rewrite_hop_limit",
    "insert_cdid",
    "retry_after",
    "admin_socket",
    "metrics",
    "data_channel",
)


@dataclass
class GatewayConfig:
    kind: Kind
    identity: str
    downstream: ServerConfig
    upstream: ClientConfig
    state: Path
    hop_limit: int = DEFAULT_HOP_LIMIT
    rewrite_hop_limit: bool = False
    insert_cdid: bool = True
    retry_after: int = 30
    admin_socket: Path | None = None
    metrics: str | None = None
    data_channel: bool = False

    @classmethod
    def load(cls, path: Path | str) -> GatewayConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{path}: {error}") from None
        base = path.resolve().parent
        unknown_tables = sorted(set(data) - {"gateway"})
        if unknown_tables:
            raise ConfigError(f"{path}: unknown table(s) {unknown_tables} (only [gateway])")
        table = data.get("gateway")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: a [gateway] table is required")
        where = f"{path}: [gateway]"
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}")
        for key in ("kind", "identity", "downstream", "upstream"):
            if not isinstance(table.get(key), str):
                raise ConfigError(f"{where}: '{key}' (a string) is required")
        if table["kind"] not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {list(KINDS)}, not {table['kind']!r}")
        try:
            identity = check_identity(table["identity"])
            hop_limit = check_initial(table.get("hop_limit", DEFAULT_HOP_LIMIT))
        except (IdentityError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
        for key in ("rewrite_hop_limit", "insert_cdid", "data_channel"):
            if key in table and not isinstance(table[key], bool):
                raise ConfigError(f"{where}: {key} must be true or false")
        retry_after = table.get("retry_after", 30)
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ConfigError(f"{where}: retry_after must be a number of seconds (0 or more)")
        return cls(
            kind=table["kind"],
            identity=identity,
            downstream=ServerConfig.load(base / table["downstream"]),
            upstream=ClientConfig.load(base / table["upstream"]),
            state=base / str(table.get("state", "gateway.db")),
            hop_limit=hop_limit,
            rewrite_hop_limit=table.get("rewrite_hop_limit", False),
            insert_cdid=table.get("insert_cdid", True),
            retry_after=retry_after,
            admin_socket=base / str(table["admin_socket"]) if "admin_socket" in table else None,
            metrics=str(table["metrics"]) if "metrics" in table else None,
            data_channel=table.get("data_channel", False),
        )
