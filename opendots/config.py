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
from opendots.errors import ConfigError

DEFAULT_SIGNAL_PORT = 4646  # RFC 9132 §10.1, UDP and TCP
DEFAULT_CALL_HOME_PORT = 4647  # RFC 9066 §8.1
DEFAULT_DATA_PORT = 443  # RFC 8783: RESTCONF over HTTPS
DOCUMENTATION_PREFIXES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_table(cls, table: dict[str, Any], base: Path, path: Path | None = None) -> TlsFiles:
        where = f"{path}: [tls]" if path is not None else "[tls]"
        _known(table, ("ca", "cert", "key"), where)
        missing = [name for name in ("ca", "cert", "key") if name not in table]
        if missing:
            raise ConfigError(f"{where} needs {missing[0]!r}")
        for name in ("ca", "cert", "key"):
            if not isinstance(table[name], str):
                raise ConfigError(f"{where} {name} must be a file name, not {table[name]!r}")
        return cls(*(base / table[name] for name in ("ca", "cert", "key")))

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


@dataclass(frozen=True)
class DashboardConfig:
    """[dashboard]: where the web console listens and the file holding the token operators log in with."""

    listen: str
    token_file: Path

    @classmethod
    def from_table(cls, table: dict[str, Any], base: Path, where: str) -> DashboardConfig | None:
        _known(table, DASHBOARD_KEYS, where)
        listen = _string(table, "listen", None, where)
        if listen is None:
            if table:
                raise ConfigError(f"{where}: listen (host:port) is required to serve the dashboard")
            return None
        host, _, port = listen.rpartition(":")
        if not host:
            raise ConfigError(f"{where} listen must be host:port (e.g. 127.0.0.1:9647), not {listen!r}")
        check_port(int(port) if port.isdigit() else port, f"{where} listen port")
        token_file = _string(table, "token_file", None, where)
        if not token_file:  # never open by default: no token, no dashboard
            raise ConfigError(f"{where}: token_file is required (the dashboard is never served without a token)")
        return cls(listen, base / token_file)

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass
class ServerConfig:
    tls: TlsFiles
    clients: list[ClientAuthorization] = field(default_factory=list)
    listen: list[str] = field(default_factory=lambda: ["::"])
    signal_port: int = DEFAULT_SIGNAL_PORT
    data_port: int = DEFAULT_DATA_PORT
    db: Path = Path("opendots.db")
    """The SQLite file: every table, or, when `db_url` names a PostgreSQL database, a local file the server still
    opens (the `data_db` key; `opendots server` keeps the data channel in PostgreSQL too)."""
    db_url: str | None = None
    """`db = "postgresql://..."`: the signal and data channels' stores are in that PostgreSQL database
    (opendots.store.postgres, opendots.store.postgres_data), which several nodes may share."""
    max_sessions: int = 10_000
    idle_session_timeout: float = 600.0
    max_handshakes: int = 0
    """Unfinished DTLS handshakes held at once (past the cookie round); 0: max(64, max_sessions / 10)."""
    max_handshakes_per_address: int = 8
    """Unfinished DTLS handshakes one source address may hold."""
    handshake_timeout: float = 10.0
    """Seconds an unfinished DTLS handshake is kept."""
    lean_coap: bool = True
    """Plain DTLS requests (heartbeats, refreshes, GETs) answered without aiocoap's Message machinery
    (opendots.transport.coap_lean); false: every request through aiocoap (to compare, or to rule the lean path out)."""
    full_collection_interval: float = 10.0
    """Seconds between the server's garbage-collection ticks (the oldest generation is collected and what survives
    is frozen out of later walks); 0: CPython's own policy (see opendots.signal.server.shell.collection)."""
    admin_socket: Path | None = None
    """Unix socket of the operator's control API (`opendots admin`); None: none."""
    worker: int | None = None
    """Set by `opendots server --workers N` in each worker process (0..N-1): it shares the listening ports
    (SO_REUSEPORT) and the database with the others (opendots.cli.workers). Not a file key."""
    metrics: str | None = None
    """"host:port" of the Prometheus endpoint (GET /metrics, plain HTTP: bind it to a management address);
    None: no endpoint."""
    dashboard: DashboardConfig | None = None
    """[dashboard]: the operator's web console (opendots.console); None: not served."""
    audit_file: Path | str | None = None
    """[audit] file: where the audit log (opendots.audit) is appended, "-" for standard output; None: kept in
    memory only (the dashboard's timeline)."""
    # Each component parses its own table, so its options live next to the code that uses them:
    signal: dict[str, Any] = field(default_factory=dict)  # [signal]: opendots.signal server settings
    data: dict[str, Any] = field(default_factory=dict)  # [data]: opendots.data.DataChannelSettings
    mitigators: list[dict[str, Any]] = field(default_factory=list)  # [[mitigators]]: opendots.mitigate
    providers: list[dict[str, Any]] = field(default_factory=list)  # [[providers]]: opendots.callhome.cpe (a CPE's)
    call_home: dict[str, Any] = field(default_factory=dict)  # [call_home]: opendots.callhome.discovery (RFC 8973)
    mitigation: dict[str, Any] = field(default_factory=dict)  # [mitigation]: opendots.mitigate.top_talkers

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
        """Read server.toml; every key is checked here, so a misspelled one is named with its file at start-up."""
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        _known(data, SERVER_TABLES, str(path))
        server = _table(data, "server", path)
        _known(server, SERVER_KEYS, f"{path}: [server]")
        for channel in ("signal", "data"):
            if "gateways" in _table(data, channel, path):
                raise ConfigError(
                    f"{path}: [{channel}] gateways is no longer read: mark each gateway with `gateway = true` in its "
                    "[[clients]] entry (one list for both channels)"
                )
        clients = []
        for entry in _tables(data, "clients", path):
            _known(entry, CLIENT_ENTRY_KEYS, f"{path}: [[clients]] {entry.get('name', '')!s}".rstrip())
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
            except (KeyError, ValueError, TypeError) as error:
                raise ConfigError(f"{path}: bad [[clients]] entry {entry!r}: {error}") from None
        where = f"{path}: [server]"
        loaded = cls(
            tls=TlsFiles.from_table(_table(data, "tls", path), base, path),
            clients=clients,
            listen=_strings(server, "listen", ["::"], where),
            signal_port=_port(server, "signal_port", DEFAULT_SIGNAL_PORT, where),
            data_port=_port(server, "data_port", DEFAULT_DATA_PORT, where),
            **database_location(server, base, where),
            max_sessions=_integer(server, "max_sessions", 10_000, where),
            idle_session_timeout=_seconds(server, "idle_session_timeout", 600.0, path),
            max_handshakes=_integer(server, "max_handshakes", 0, where),
            max_handshakes_per_address=_integer(server, "max_handshakes_per_address", 8, where),
            handshake_timeout=_seconds(server, "handshake_timeout", 10.0, path),
            lean_coap=_flag(server, "lean_coap", True, where),
            full_collection_interval=_seconds(server, "full_collection_interval", 10.0, path),
            metrics=_string(server, "metrics", None, where),
            admin_socket=base / server["admin_socket"] if server.get("admin_socket") else None,
            dashboard=DashboardConfig.from_table(_table(data, "dashboard", path), base, f"{path}: [dashboard]"),
            audit_file=_audit_file(_table(data, "audit", path), base, f"{path}: [audit]"),
            signal=dict(_table(data, "signal", path)),
            data=dict(_table(data, "data", path)),
            mitigators=[dict(entry) for entry in _tables(data, "mitigators", path)],
            providers=[dict(entry) for entry in _tables(data, "providers", path)],
            call_home=dict(_table(data, "call_home", path)),
            mitigation=dict(_table(data, "mitigation", path)),
        )
        loaded.check_tables(path)
        return loaded

    def check_tables(self, path: Path | str) -> None:
        """The [signal] and [data] tables are parsed by their channels; parse them now so that an unknown or bad
        key stops the start (and a SIGHUP reload) with the file's name, before anything listens."""
        from opendots.data.shell.settings import data_settings_from_table
        from opendots.signal.server.shell.settings import settings_from_table

        for parse, table in ((settings_from_table, self.signal), (data_settings_from_table, self.data)):
            try:
                parse(self.clients, table)
            except ConfigError as error:
                raise ConfigError(f"{path}: {error}") from None
        from opendots.mitigate.top_talkers import TopTalkerSettings

        TopTalkerSettings.from_table(self.mitigation, f"{path}: [mitigation]")
        from opendots.callhome.discovery import CallHomeDiscoveryConfig

        CallHomeDiscoveryConfig.from_table(self.call_home, Path(path).resolve().parent, f"{path}: [call_home]")

    def save(self, path: Path | str) -> None:
        path = Path(path)
        base = path.resolve().parent
        data = {
            "server": {
                "listen": self.listen,
                "signal_port": self.signal_port,
                "data_port": self.data_port,
                **(
                    {"db": self.db_url, "data_db": _relative(self.db, base)}
                    if self.db_url
                    else {"db": _relative(self.db, base)}
                ),
                "max_sessions": self.max_sessions,
                "idle_session_timeout": self.idle_session_timeout,
                "max_handshakes": self.max_handshakes,
                "max_handshakes_per_address": self.max_handshakes_per_address,
                "handshake_timeout": self.handshake_timeout,
                "full_collection_interval": self.full_collection_interval,
                **({"lean_coap": False} if not self.lean_coap else {}),
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
        if self.dashboard is not None:
            data["dashboard"] = {
                "listen": self.dashboard.listen,
                "token_file": _relative(self.dashboard.token_file, base),
            }
        if self.audit_file is not None:
            data["audit"] = {
                "file": str(self.audit_file) if self.audit_file == "-" else _relative(self.audit_file, base)
            }
        if self.signal:
            data["signal"] = self.signal
        if self.data:
            data["data"] = self.data
        if self.mitigators:
            data["mitigators"] = self.mitigators
        if self.providers:
            data["providers"] = self.providers
        if self.call_home:
            data["call_home"] = self.call_home
        if self.mitigation:
            data["mitigation"] = self.mitigation
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
    discovery: Literal["off", "auto"] = "off"
    """"auto": find servers as RFC 8973 §4 says (opendots.discovery); "off": server_name / server_addresses only."""
    discovery_domain: str | None = None
    discovery_resolver: str | None = None
    discovery_dhcp_file: Path | None = None
    discovery_trusted_names: list[str] = field(default_factory=list)
    server_configured: bool = True
    """Whether server_name or server_addresses was written in the file (with discovery, explicit configuration
    comes first, RFC 8973 §4; the "localhost" default is not a configuration)."""
    agent: dict[str, Any] = field(default_factory=dict)
    """[agent]: the agent's own settings, parsed by opendots.signal.client.shell.settings.AgentSettings.from_config."""
    telemetry: dict[str, Any] = field(default_factory=dict)
    """[telemetry]: the RFC 9244 setups the agent installs (opendots.signal.client.core.telemetry.setups_from_table,
    checked when the file is read)."""
    path: Path | None = None
    """The file it was read from (relative names in [agent] are resolved against its directory)."""

    @classmethod
    def load(cls, path: Path | str) -> ClientConfig:
        """Read client.toml once: [client], [tls] and the agent's [agent] table (signal.client.shell.settings)."""
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        _known(data, CLIENT_TABLES, str(path))
        client = _table(data, "client", path)
        where = f"{path}: [client]"
        _known(client, CLIENT_KEYS, where)
        transport = client.get("transport", "auto")
        if transport not in ("auto", "dtls", "tls"):
            raise ConfigError(f"{path}: transport must be auto, dtls or tls, not {transport!r}")
        addresses = _strings(client, "server_addresses", [], where)
        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(
                    f"{where} server_addresses: {address!r} is not an IP address (put a name in server_name)"
                ) from None
        agent = _table(data, "agent", path)
        _known(agent, AGENT_KEYS, f"{path}: [agent]")
        discovery = client.get("discovery", "off")
        if discovery not in ("off", "auto"):
            raise ConfigError(f"{where} discovery must be off or auto, not {discovery!r}")
        resolver = _string(client, "discovery_resolver", None, where)
        if resolver is not None:
            from opendots.discovery.resolve import check_resolver

            check_resolver(resolver, where)
        dhcp_file = _string(client, "discovery_dhcp_file", None, where)
        telemetry = _table(data, "telemetry", path)
        if telemetry:
            from opendots.signal.client.core.telemetry import setups_from_table  # the client core imports us
            from opendots.signal.client.core.telemetry_bodies import TelemetryError

            try:
                setups_from_table(telemetry)
            except (TelemetryError, ValueError, TypeError) as problem:
                raise ConfigError(f"{path}: [telemetry] {problem}") from None
        return cls(
            tls=TlsFiles.from_table(_table(data, "tls", path), base, path),
            server_name=_string(client, "server_name", "localhost", where),
            server_addresses=addresses,
            signal_port=_port(client, "signal_port", DEFAULT_SIGNAL_PORT, where),
            data_port=_port(client, "data_port", DEFAULT_DATA_PORT, where),
            transport=transport,
            control_socket=base / _string(client, "control_socket", "opendots-client.sock", where),
            discovery=discovery,
            discovery_domain=_string(client, "discovery_domain", None, where),
            discovery_resolver=resolver,
            discovery_dhcp_file=None if dhcp_file is None else base / dhcp_file,
            discovery_trusted_names=_strings(client, "discovery_trusted_names", [], where),
            server_configured="server_name" in client or "server_addresses" in client,
            agent=dict(agent),
            telemetry=dict(telemetry),
            path=path,
        )

    def save(self, path: Path | str) -> None:
        path = Path(path)
        base = path.resolve().parent
        data = {
            "client": {
                **(
                    {"server_name": self.server_name, "server_addresses": self.server_addresses}
                    if self.server_configured
                    else {}
                ),
                "signal_port": self.signal_port,
                "data_port": self.data_port,
                "transport": self.transport,
                "control_socket": _relative(self.control_socket, base),
                **_discovery_keys(self, base),
            },
            "tls": self.tls.to_table(base),
        }
        if self.agent:
            data["agent"] = self.agent
        if self.telemetry:
            data["telemetry"] = self.telemetry
        path.write_text(tomli_w.dumps(data))


def _discovery_keys(config: ClientConfig, base: Path) -> dict[str, Any]:
    if config.discovery == "off":
        return {}
    table: dict[str, Any] = {"discovery": config.discovery}
    for key in ("discovery_domain", "discovery_resolver"):
        if getattr(config, key) is not None:
            table[key] = getattr(config, key)
    if config.discovery_dhcp_file is not None:
        table["discovery_dhcp_file"] = _relative(config.discovery_dhcp_file, base)
    if config.discovery_trusted_names:
        table["discovery_trusted_names"] = config.discovery_trusted_names
    return table


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


def _flag(entry: dict[str, Any], key: str, default: bool = False, where: str | None = None) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        if where is not None:
            raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _seconds(table: dict[str, Any], key: str, default: float, path: Path) -> float:
    """A duration in seconds, zero or more (an int or a float in the file)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ConfigError(f"{path}: [server] {key} must be a number of seconds (0 or more), not {value!r}")
    return float(value)


SERVER_TABLES = (
    "server",
    "tls",
    "clients",
    "signal",
    "data",
    "mitigators",
    "mitigation",
    "dashboard",
    "providers",
    "audit",
    "call_home",
)
DASHBOARD_KEYS = ("listen", "token_file")
AUDIT_KEYS = ("file",)


def _audit_file(table: dict[str, Any], base: Path, where: str) -> Path | str | None:
    _known(table, AUDIT_KEYS, where)
    file = _string(table, "file", None, where)
    if not file:
        return None
    return file if file == "-" else base / file


SERVER_KEYS = (
    "listen",
    "signal_port",
    "data_port",
    "db",
    "data_db",
    "max_sessions",
    "idle_session_timeout",
    "max_handshakes",
    "max_handshakes_per_address",
    "handshake_timeout",
    "lean_coap",
    "full_collection_interval",
    "metrics",
    "admin_socket",
)
CLIENT_ENTRY_KEYS = ("name", "cuid", "prefixes", "fqdns", "uris", "gateway")
CLIENT_TABLES = ("client", "tls", "agent", "telemetry")
CLIENT_KEYS = (
    "server_name",
    "server_addresses",
    "signal_port",
    "data_port",
    "transport",
    "control_socket",
    "discovery",
    "discovery_domain",
    "discovery_resolver",
    "discovery_dhcp_file",
    "discovery_trusted_names",
)
AGENT_KEYS = ("state_file", "reconnect_min", "reconnect_max", "attempt_delay", "connect_timeout", "request_timeout")


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """A misspelled key would otherwise be ignored and its default used without a word."""
    unknown = [key for key in table if key not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table ([{name}])")
    return value


def _tables(data: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ConfigError(f"{path}: {name} must be an array of tables ([[{name}]])")
    return value


def _integer(table: dict[str, Any], key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} {key} must be an integer, not {value!r}")
    return value


def check_port(value: Any, what: str) -> int:
    """A TCP/UDP port 1-65535: the socket layer would silently take 70000 modulo 65536 or fail obscurely on -1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{what} must be a port number from 1 to 65535, not {value!r}")
    return value


def _port(table: dict[str, Any], key: str, default: int, where: str) -> int:
    return check_port(table.get(key, default), f"{where} {key}")


def _string(table: dict[str, Any], key: str, default: Any, where: str) -> Any:
    value = table.get(key, default)
    if value is not default and not isinstance(value, str):
        raise ConfigError(f"{where} {key} must be a string, not {value!r}")
    return value


def _strings(table: dict[str, Any], key: str, default: list[str], where: str) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} {key} must be a list of strings, not {value!r}")
    return list(value)


def database_location(server: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """`db` and `data_db` of [server] as ServerConfig fields: a PostgreSQL URL in `db` goes to `db_url`, and the
    SQLite file (`db`) is then `data_db`'s, for the data channel."""
    text = _string(server, "db", "opendots.db", where)
    if text.partition("://")[0] in ("postgresql", "postgres"):
        return {"db_url": text, "db": database_path(_string(server, "data_db", "opendots.db", where), base, where)}
    if "data_db" in server:
        raise ConfigError(f"{where} data_db is only for a PostgreSQL db (the SQLite db holds every table)")
    return {"db": database_path(text, base, where)}


def database_path(location: str | Path, base: Path, where: str = "db") -> Path:
    """The SQLite file a database location names: a plain path, or a URL `sqlite:///absolute/path` or
    `sqlite://relative/path`. Other schemes are refused (a PostgreSQL URL is told apart before, by
    database_location; opendots.app opens the database)."""
    text = str(location)
    scheme, separator, rest = text.partition("://")
    if not separator:
        return base / text
    if scheme != "sqlite":
        raise ConfigError(
            f"{where}: unsupported database {text!r} (give a file path, sqlite:///path or postgresql://...)"
        )
    if not rest or rest == "/":
        raise ConfigError(f"{where}: {text!r} names no file")
    return base / rest  # an absolute rest ("/var/lib/x.db") stays absolute
