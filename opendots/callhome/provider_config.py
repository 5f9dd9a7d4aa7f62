"""provider.toml: the configuration of a Call Home DOTS client (the provider's side of RFC 9066).

[provider]
listen = ["::"]                       # addresses to accept CPEs on
port = 4647                           # RFC 9066 §8.1, UDP (DTLS) and TCP (TLS)
transports = ["dtls", "tls"]
control_socket = "opendots-provider.sock"
state_file = "opendots-provider.json" # the last 'mid' used toward each CPE (RFC 9132 §4.4.1: mids only grow)

[tls]                                 # this provider's certificate, and the CA its CPEs' certificates come from
ca = "ca.crt"
cert = "provider.crt"
key = "provider.key"

[[cpes]]                              # one per CPE: known by the CUID of its certificate
name = "home"
cuid = "..."
prefixes = ["192.0.2.0/24"]           # the sources this provider may ask the CPE about (RFC 9066 §5.3.1)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from opendots.callhome.provider import CpePeer
from opendots.config import (
    DEFAULT_CALL_HOME_PORT,
    TlsFiles,
    _known,
    _port,
    _read,
    _relative,
    _strings,
    _table,
    _tables,
)
from opendots.errors import ConfigError

PROVIDER_TABLES = ("provider", "tls", "cpes")
PROVIDER_KEYS = ("listen", "port", "transports", "control_socket", "state_file")
CPE_KEYS = ("name", "cuid", "prefixes")


@dataclass
class ProviderConfig:
    tls: TlsFiles
    cpes: list[CpePeer] = field(default_factory=list)
    listen: list[str] = field(default_factory=lambda: ["::"])
    port: int = DEFAULT_CALL_HOME_PORT
    transports: list[str] = field(default_factory=lambda: ["dtls", "tls"])
    control_socket: Path = Path("opendots-provider.sock")
    state_file: Path = Path("opendots-provider.json")

    def cpe(self, name: str) -> CpePeer | None:
        return next((peer for peer in self.cpes if peer.name == name), None)

    @classmethod
    def load(cls, path: Path | str) -> ProviderConfig:
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        _known(data, PROVIDER_TABLES, str(path))
        table = _table(data, "provider", path)
        where = f"{path}: [provider]"
        _known(table, PROVIDER_KEYS, where)
        transports = _strings(table, "transports", ["dtls", "tls"], where)
        if not transports or any(name not in ("dtls", "tls") for name in transports):
            raise ConfigError(f"{where} transports must list 'dtls' and/or 'tls', not {transports!r}")
        cpes: list[CpePeer] = []
        for entry in _tables(data, "cpes", path):
            label = f"{path}: [[cpes]] {entry.get('name', '')!s}".rstrip()
            _known(entry, CPE_KEYS, label)
            try:
                peer = CpePeer(
                    name=str(entry["name"]),
                    cuid=str(entry["cuid"]),
                    prefixes=tuple(ipaddress.ip_network(text) for text in entry.get("prefixes", [])),
                )
            except (KeyError, ValueError, TypeError) as error:
                raise ConfigError(f"{label}: {error}") from None
            if not peer.prefixes:
                raise ConfigError(f"{label}: prefixes is empty: nothing could be asked of this CPE (RFC 9066 §5.3.1)")
            if any(other.name == peer.name or other.cuid == peer.cuid for other in cpes):
                raise ConfigError(f"{label}: a CPE of that name or cuid is already listed")
            cpes.append(peer)
        return cls(
            tls=TlsFiles.from_table(_table(data, "tls", path), base, path),
            cpes=cpes,
            listen=_strings(table, "listen", ["::"], where),
            port=_port(table, "port", DEFAULT_CALL_HOME_PORT, where),
            transports=transports,
            control_socket=base / str(table.get("control_socket", "opendots-provider.sock")),
            state_file=base / str(table.get("state_file", "opendots-provider.json")),
        )

    def save(self, path: Path | str) -> None:
        path = Path(path)
        base = path.resolve().parent
        data: dict[str, Any] = {
            "provider": {
                "listen": self.listen,
                "port": self.port,
                "transports": self.transports,
                "control_socket": _relative(self.control_socket, base),
                "state_file": _relative(self.state_file, base),
            },
            "tls": self.tls.to_table(base),
            "cpes": [
                {"name": peer.name, "cuid": peer.cuid, "prefixes": [str(p) for p in peer.prefixes]}
                for peer in self.cpes
            ],
        }
        path.write_text(tomli_w.dumps(data))
