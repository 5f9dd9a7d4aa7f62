"""What `opendots data` prints for people: aliases, ACLs and capabilities as tables (the renderer the `client`
verbs use), durations with their units, and results that say only what the server confirmed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opendots.cli.render import minutes, port_ranges, protocols, table

ACL_PREFIX = "ietf-access-control-list:"
DEFAULT_ACTIVATION = "activate-when-mitigating"  # RFC 8783 §7.2, the YANG default

# What each activation type means for enforcement (RFC 8783 §7.2): said with every stored ACL.
ACTIVATION_MEANING = {
    "activate-when-mitigating": "applied only while this client has an active mitigation",
    "immediate": "applied now",
    "deactivate": "kept, not applied",
}
# The data channel (RFC 8783) has no leaf telling whether a server's mitigators enforce an ACL: the client can
# only say it was stored, and point at where the truth is shown.
ENFORCEMENT_NOTE = (
    "note: the data channel does not report enforcement; on the server, `opendots admin status` says "
    '"not enforced" when only the logging mitigator runs'
)


def _short(identity: Any) -> str:
    return str(identity).removeprefix(ACL_PREFIX)


def alias_rows(aliases: Iterable[dict[str, Any]]) -> str:
    rows = [
        [
            alias.get("name", "-"),
            " ".join(alias.get("target-prefix", []) + alias.get("target-fqdn", []) + alias.get("target-uri", []))
            or "-",
            port_ranges(alias.get("target-port-range", [])),
            protocols(alias.get("target-protocol", [])),
            minutes(alias.get("pending-lifetime")),
        ]
        for alias in aliases
    ]
    return table(rows, ["NAME", "TARGETS", "PORTS", "PROTO", "LIFETIME LEFT"])


def _port(key: str, value: Any) -> str:
    if isinstance(value, dict) and "lower-port" in value:
        return f"{key} {port_ranges([value])}"
    if isinstance(value, dict) and "port" in value:
        operator = value.get("operator", "eq")
        return f"{key} {value['port']}" if operator == "eq" else f"{key} {operator} {value['port']}"
    return f"{key} {value}"


_MATCH_WORDS = {
    "destination-ipv4-network": "dst",
    "destination-ipv6-network": "dst",
    "source-ipv4-network": "src",
    "source-ipv6-network": "src",
    "destination-port-range-or-operator": "dst-port",
    "source-port-range-or-operator": "src-port",
}


def _layer(layer: str, fields: dict[str, Any]) -> str:
    words = [layer]
    for key, value in fields.items():
        word = _MATCH_WORDS.get(key, key)
        if word.endswith("-port"):
            words.append(_port(word, value))
        elif key == "fragment":
            words.append("fragments")
        elif key == "flags-bitmask" and isinstance(value, dict):
            words.append(f"flags {value.get('bitmask')}")
        elif key == "protocol":
            words.append(f"proto {protocols([value])}")
        else:
            words.append(f"{word} {value}")
    return " ".join(words)


def matches(ace: dict[str, Any]) -> str:
    return ", ".join(_layer(layer, fields) for layer, fields in ace.get("matches", {}).items()) or "any"


def action(ace: dict[str, Any]) -> str:
    actions = ace.get("actions", {})
    if "rate-limit" in actions:
        return f"rate-limit {actions['rate-limit']} bytes/s"  # its YANG units: bytes per second
    return _short(actions.get("forwarding", "-"))


def acl_rows(acls: Iterable[dict[str, Any]]) -> str:
    """One row per ACE; the ACL's own columns on its first row only."""
    rows = []
    for acl in acls:
        first = [
            acl.get("name", "-"),
            _short(acl.get("type", "-")).removesuffix("-acl-type"),
            acl.get("activation-type", DEFAULT_ACTIVATION),
            minutes(acl.get("pending-lifetime")),
        ]
        aces = acl.get("aces", {}).get("ace", []) or [{}]
        for index, ace in enumerate(aces):
            own = first if index == 0 else [""] * len(first)
            rows.append([*own[:3], ace.get("name", "-"), matches(ace), action(ace), own[3]])
    return table(rows, ["NAME", "TYPE", "ACTIVATION", "RULE", "MATCHES", "ACTION", "LIFETIME LEFT"])


def capability_rows(capabilities: dict[str, Any]) -> str:
    rows = []
    for name, value in capabilities.items():
        if name == "transport-protocols":
            text = protocols(value)
        elif name == "forwarding-actions":
            text = ", ".join(_short(action) for action in value)
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, dict):  # per-layer match fields the server can filter on
            text = ", ".join(key for key, supported in value.items() if supported) or "-"
            name = f"{name} matches"
        elif isinstance(value, list):
            text = ", ".join(str(item) for item in value)
        else:
            text = str(value)
        rows.append([name.split(":", 1)[-1], text])  # an augment's module prefix (ietf-dots-mapping:) is noise here
    return table(rows, ["CAPABILITY", "VALUE"])


def stored_acls(acls: list[dict[str, Any]]) -> list[str]:
    """The lines `acl add` prints: what the server confirmed (stored), and what each activation type means."""
    lines = []
    for acl in acls:
        activation = acl.get("activation-type", DEFAULT_ACTIVATION)
        meaning = ACTIVATION_MEANING.get(activation, activation)
        lines.append(f"ACL {acl.get('name')} stored ({activation}: {meaning})")
    return lines


def mapping_rows(mapping: dict[str, Any]) -> str:
    """A vendor attack mapping (RFC 9244 §8.1.6): one row per vendor, its attack ids and how many."""
    rows = []
    for vendor in mapping.get("vendor", []):
        attacks = vendor.get("attack-mapping", [])
        ids = ",".join(str(a["attack-id"]) for a in attacks[:8]) + (",..." if len(attacks) > 8 else "")
        rows.append(
            [
                str(vendor["vendor-id"]),
                vendor.get("vendor-name", "-"),
                str(vendor["last-updated"]),
                str(len(attacks)),
                ids or "-",
            ]
        )
    return table(rows, ["VENDOR-ID", "NAME", "LAST-UPDATED", "ATTACKS", "ATTACK-IDS"])
