"""The [data] table of server.toml → DataChannelSettings (every key optional)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendots.config import ClientAuthorization, ConfigError
from opendots.data.core.settings import MINIMUM_LIFETIME, DataChannelSettings
from opendots.model.data_channel import ModelError
from opendots.model.vendor_mapping import MAPPING, validate_vendor_mapping

KEYS = (
    "gateways",
    "lifetime",
    "server_id",
    "max_entries",
    "max_aces",
    "domain_conflicts",
    "header_timeout",
    "body_timeout",
    "keepalive_timeout",
    "vendor_mapping",
    "max_attack_mappings",
)
TIMEOUT_KEYS = {"header_timeout": "header", "body_timeout": "body", "keepalive_timeout": "keepalive"}


@dataclass(frozen=True)
class HttpTimeouts:
    """Seconds the HTTPS server waits for a client (slowloris defence): the first request head after the TLS
    handshake (header), a whole request body once its head is in (body), the next request head on a kept-alive
    connection after a response (keepalive)."""

    header: float = 10.0
    body: float = 30.0
    keepalive: float = 15.0


def timeouts_from_table(table: dict[str, Any]) -> HttpTimeouts:
    """header_timeout, body_timeout, keepalive_timeout of [data]: positive numbers of seconds."""
    values = {}
    for key, field_name in TIMEOUT_KEYS.items():
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 3600:
                raise ConfigError(f"[data] {key} must be a number of seconds above 0 and at most 3600, not {value!r}")
            values[field_name] = float(value)
    return HttpTimeouts(**values)


def data_settings_from_table(clients: Sequence[ClientAuthorization], table: dict[str, Any]) -> DataChannelSettings:
    """Keys: gateways (names of the clients that are server-domain DOTS gateways, allowed to register and act for
    the clients of their domain, RFC 8783 §3.3), lifetime (seconds an alias or ACL lives without a refresh, at
    least one week, §3.5), server_id (the Via pseudonym used for loop detection, §3.4), max_entries (aliases plus
    ACLs per client), max_aces (ACEs in one ACL), domain_conflicts ("reject" or "allow": an ACE with the opposite
    action to one of another client of the same domain, §7.2), vendor_mapping (a JSON file holding the server's
    RFC 9244 §8.1.6 {"ietf-dots-mapping:vendor-mapping": {...}}), max_attack_mappings (per client)."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(f"[data]: unknown keys {unknown} (known: {sorted(KEYS)})")
    timeouts_from_table(table)  # checked here too, so that a bad value is reported with the others
    values: dict[str, Any] = {}
    if "gateways" in table:
        gateways = table["gateways"]
        by_name = {client.name: client.cuid for client in clients}
        if not isinstance(gateways, list) or not all(isinstance(name, str) for name in gateways):
            raise ConfigError("[data] gateways must be a list of client names")
        strangers = sorted(set(gateways) - by_name.keys())
        if strangers:
            raise ConfigError(f"[data] gateways names clients that are not configured: {strangers}")
        values["gateways"] = frozenset(by_name[name] for name in gateways)
    if "lifetime" in table:
        lifetime = table["lifetime"]
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime < MINIMUM_LIFETIME:
            raise ConfigError(f"[data] lifetime must be at least {MINIMUM_LIFETIME:.0f} s (one week, RFC 8783 §3.5)")
        values["lifetime"] = float(lifetime)
    if "server_id" in table:
        if not isinstance(table["server_id"], str) or not table["server_id"].strip():
            raise ConfigError("[data] server_id must be a non-empty string")
        values["server_id"] = table["server_id"]
    for key in ("max_entries", "max_aces"):
        if key in table:
            limit = table[key]
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ConfigError(f"[data] {key} must be a positive integer")
            values[key] = limit
    if "vendor_mapping" in table:
        values["vendor_mapping"] = load_vendor_mapping(table["vendor_mapping"])
    if "max_attack_mappings" in table:
        limit = table["max_attack_mappings"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError("[data] max_attack_mappings must be a positive integer")
        values["max_attack_mappings"] = limit
    if "domain_conflicts" in table:
        if table["domain_conflicts"] not in ("reject", "allow"):
            raise ConfigError('[data] domain_conflicts must be "reject" or "allow"')
        values["domain_conflicts"] = table["domain_conflicts"]
    return DataChannelSettings(**values)


def load_vendor_mapping(path: Any) -> dict[str, Any]:
    """The 'vendor-mapping' container of the JSON file at PATH, validated against ietf-dots-mapping."""
    if not isinstance(path, str) or not path:
        raise ConfigError("[data] vendor_mapping must be the path of a JSON file")
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError) as problem:
        raise ConfigError(f"[data] vendor_mapping {path}: {problem}") from None
    if not isinstance(body, dict) or list(body) != [MAPPING]:
        raise ConfigError(f'[data] vendor_mapping {path}: expected {{"{MAPPING}": {{"vendor": [...]}}}}')
    try:
        return validate_vendor_mapping(body[MAPPING], server=True)
    except ModelError as problem:
        raise ConfigError(f"[data] vendor_mapping {path}: {problem.message}") from None
