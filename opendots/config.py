"""Server and client configuration files (TOML).

Relative paths in a file are resolved against the file's own directory, so a generated
configuration folder can be moved as a whole.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import tomli_w

from opendots.domain.addresses import IPNetwork, network_bounds

DEFAULT_SIGNAL_PORT = 4646  # RFC 9132 §10.1, UDP and TCP
DEFAULT_CALL_HOME_PORT = 4647  # RFC 9066 §8.1
DEFAULT_DATA_PORT = 443  # RFC 8783: RESTCONF over HTTPS
DOCUMENTATION_PREFIXES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")


class ConfigError(ValueError):
    """A configuration file is missing a value or holds one that cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_table(cls, table: dict[str, Any], base: Path) -> TlsFiles:
        try:
            return cls(*(base / table[name] for name in ("ca", "cert", "key")))
        except KeyError as missing:
            raise ConfigError(f"[tls] needs {missing.args[0]!r}") from None

    def to_table(self, base: Path) -> dict[str, str]:
        return {name: _relative(getattr(self, name), base) for name in ("ca", "cert", "key")}


@dataclass(frozen=True)
class ClientAuthorization:
    """One DOTS client the server accepts, identified by its CUID, and what it may ask to protect."""

    name: str
    cuid: str
    prefixes: tuple[IPNetwork, ...] = ()
    fqdns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    gateway: bool = False
    """A server-domain DOTS gateway, for both channels: the 'cdid' it relays is honoured on the signal channel
    (RFC 9132 §4.4.1) and it may register and act for the clients of its domain on the data channel (RFC 8783
    §3.3). `[signal] gateways` and `[data] gateways` still add names per channel."""

    def covers_prefix(self, prefix: IPNetwork) -> bool:
        return self.covers_range(*network_bounds(prefix))

    def covers_range(self, version: int, first: int, last: int) -> bool:
        """True when the addresses FIRST..LAST of IP VERSION all lie inside one of the client's prefixes."""
        return any(
            version == own_version and own_first <= first and last <= own_last
            for own_version, own_first, own_last in self._own_ranges
        )

    @cached_property
    def _own_ranges(self) -> tuple[tuple[int, int, int], ...]:
        # Integer bounds, computed once: every mitigation request is checked against them, and comparing
        # integers is cheaper than ipaddress's subnet_of() for each prefix.
        return tuple(network_bounds(own) for own in self.prefixes)

    def covers_fqdn(self, fqdn: str) -> bool:
        fqdn = fqdn.rstrip(".").lower()
        for own in self.fqdns:
            own = own.rstrip(".").lower()
            if fqdn == own or (own.startswith("*.") and fqdn.endswith(own[1:])):
                return True
        return False


@dataclass
class ServerConfig:
    tls: TlsFiles
    clients: list[ClientAuthorization] = field(default_factory=list)
    listen: list[str] = field(default_factory=lambda: ["::"])
    signal_port: int = DEFAULT_SIGNAL_PORT
    data_port: int = DEFAULT_DATA_PORT
    db: Path = Path("opendots.db")
    max_sessions: int = 10_000
    idle_session_timeout: float = 600.0
    max_handshakes: int = 0
    """Unfinished DTLS handshakes held at once (past the cookie round); 0: max(64, max_sessions / 10)."""
    max_handshakes_per_address: int = 8
    """Unfinished DTLS handshakes one source address may hold."""
    handshake_timeout: float = 10.0
    """Seconds an unfinished DTLS handshake is kept."""
    full_collection_interval: float = 60.0
    """Seconds between full garbage collections while the server runs; 0: CPython's own policy (see
    opendots.signal.server.collection)."""
    admin_socket: Path | None = None
    """Unix socket of the operator's control API (`opendots admin`); None: none."""
    metrics: str | None = None
    """"host:port" of the Prometheus endpoint (GET /metrics, plain HTTP: bind it to a management address);
    None: no endpoint."""
    # Each component parses its own table, so its options live next to the code that uses them:
    signal: dict[str, Any] = field(default_factory=dict)  # [signal]: opendots.signal server settings
    data: dict[str, Any] = field(default_factory=dict)  # [data]: opendots.data.DataChannelSettings
    mitigators: list[dict[str, Any]] = field(default_factory=list)  # [[mitigators]]: opendots.mitigate

    _cuid_index: tuple[list[ClientAuthorization], int, dict[str, ClientAuthorization]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def client_by_cuid(self, cuid: str) -> ClientAuthorization | None:
        """O(1): called for every data-channel request and mitigation event, with possibly thousands of clients.
        The index follows `clients` being replaced or grown (identity and length)."""
        index = self._cuid_index
        if index is None or index[0] is not self.clients or index[1] != len(self.clients):
            by_cuid: dict[str, ClientAuthorization] = {}
            for client in self.clients:
                by_cuid.setdefault(client.cuid, client)  # the first one wins, as a scan would find it
            index = self._cuid_index = (self.clients, len(self.clients), by_cuid)
        return index[2].get(cuid)

    @classmethod
    def load(cls, path: Path | str) -> ServerConfig:
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        server = data.get("server", {})
        clients = []
        for entry in data.get("clients", []):
            try:
                clients.append(
                    ClientAuthorization(
                        name=entry["name"],
                        cuid=entry["cuid"],
                        prefixes=tuple(ipaddress.ip_network(p) for p in entry.get("prefixes", [])),
                        fqdns=tuple(entry.get("fqdns", [])),
                        uris=tuple(entry.get("uris", [])),
                        gateway=_flag(entry, "gateway"),
                    )
                )
            except (KeyError, ValueError) as error:
                raise ConfigError(f"{path}: bad [[clients]] entry {entry!r}: {error}") from None
        return cls(
            tls=TlsFiles.from_table(data.get("tls", {}), base),
            clients=clients,
            listen=list(server.get("listen", ["::"])),
            signal_port=int(server.get("signal_port", DEFAULT_SIGNAL_PORT)),
            data_port=int(server.get("data_port", DEFAULT_DATA_PORT)),
            db=base / server.get("db", "opendots.db"),
            max_sessions=int(server.get("max_sessions", 10_000)),
            idle_session_timeout=float(server.get("idle_session_timeout", 600.0)),
            max_handshakes=int(server.get("max_handshakes", 0)),
            max_handshakes_per_address=int(server.get("max_handshakes_per_address", 8)),
            handshake_timeout=_seconds(server, "handshake_timeout", 10.0, path),
            full_collection_interval=_seconds(server, "full_collection_interval", 60.0, path),
            metrics=server.get("metrics"),
            admin_socket=base / server["admin_socket"] if server.get("admin_socket") else None,
            signal=dict(data.get("signal", {})),
            data=dict(data.get("data", {})),
            mitigators=[dict(entry) for entry in data.get("mitigators", [])],
        )

    def save(self, path: Path | str) -> None:
        path = Path(path)
        base = path.resolve().parent
        data = {
            "server": {
                "listen": self.listen,
                "signal_port": self.signal_port,
                "data_port": self.data_port,
                "db": _relative(self.db, base),
                "max_sessions": self.max_sessions,
                "idle_session_timeout": self.idle_session_timeout,
                "max_handshakes": self.max_handshakes,
                "max_handshakes_per_address": self.max_handshakes_per_address,
                "handshake_timeout": self.handshake_timeout,
                "full_collection_interval": self.full_collection_interval,
                **({"metrics": self.metrics} if self.metrics else {}),
                **({"admin_socket": _relative(self.admin_socket, base)} if self.admin_socket else {}),
            },
            "tls": self.tls.to_table(base),
            "clients": [
                {
                    "name": c.name,
                    "cuid": c.cuid,
                    "prefixes": [str(p) for p in c.prefixes],
                    "fqdns": list(c.fqdns),
                    "uris": list(c.uris),
                    **({"gateway": True} if c.gateway else {}),
                }
                for c in self.clients
            ],
        }
        if self.signal:
            data["signal"] = self.signal
        if self.data:
            data["data"] = self.data
        if self.mitigators:
            data["mitigators"] = self.mitigators
        path.write_text(tomli_w.dumps(data))


@dataclass
class ClientConfig:
    tls: TlsFiles
    server_name: str = "localhost"
    server_addresses: list[str] = field(default_factory=list)  # empty: resolve server_name
    signal_port: int = DEFAULT_SIGNAL_PORT
    data_port: int = DEFAULT_DATA_PORT
    transport: Literal["auto", "dtls", "tls"] = "auto"
    control_socket: Path = Path("opendots-client.sock")

    @classmethod
    def load(cls, path: Path | str) -> ClientConfig:
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        client = data.get("client", {})
        transport = client.get("transport", "auto")
        if transport not in ("auto", "dtls", "tls"):
            raise ConfigError(f"{path}: transport must be auto, dtls or tls, not {transport!r}")
        return cls(
            tls=TlsFiles.from_table(data.get("tls", {}), base),
            server_name=client.get("server_name", "localhost"),
            server_addresses=list(client.get("server_addresses", [])),
            signal_port=int(client.get("signal_port", DEFAULT_SIGNAL_PORT)),
            data_port=int(client.get("data_port", DEFAULT_DATA_PORT)),
            transport=transport,
            control_socket=base / client.get("control_socket", "opendots-client.sock"),
        )

    def save(self, path: Path | str) -> None:
        path = Path(path)
        base = path.resolve().parent
        data = {
            "client": {
                "server_name": self.server_name,
                "server_addresses": self.server_addresses,
                "signal_port": self.signal_port,
                "data_port": self.data_port,
                "transport": self.transport,
                "control_socket": _relative(self.control_socket, base),
            },
            "tls": self.tls.to_table(base),
        }
        path.write_text(tomli_w.dumps(data))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base))
    except ValueError:
        return str(path)


def _flag(entry: dict[str, Any], key: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _seconds(table: dict[str, Any], key: str, default: float, path: Path) -> float:
    """A duration in seconds, zero or more (an int or a float in the file)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ConfigError(f"{path}: [server] {key} must be a number of seconds (0 or more), not {value!r}")
    return float(value)
