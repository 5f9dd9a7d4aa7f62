"""Is this client allowed to ask for this scope? (RFC 9132 §4.4.1.1, §4.4.1.3, §8)

Aliases come from the data channel (RFC 8783); the core sees them through the small AliasDirectory
interface so the two channels stay decoupled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from opendots.config import ClientAuthorization
from opendots.domain.addresses import network_bounds
from opendots.domain.targets import Targets, uri_host
from opendots.signal.server.core.messages import reject


class AliasDirectory(Protocol):
    """Aliases created by each client over the data channel."""

    def resolve(self, client: str, alias: str) -> Targets | None:
        """The targets behind ALIAS if CLIENT (its ClientAuthorization.name) created it, else None."""
        ...


@dataclass
class StaticAliasDirectory:
    """Aliases held in memory: {client name: {alias: Targets}} (operator configuration, tests)."""

    aliases: Mapping[str, Mapping[str, Targets]] = field(default_factory=dict)

    def resolve(self, client: str, alias: str) -> Targets | None:
        return self.aliases.get(client, {}).get(alias)


def resolve_aliases(client: ClientAuthorization, targets: Targets, directory: AliasDirectory) -> Targets:
    """TARGETS with every alias's own targets appended (§4.4.1.3); unknown aliases are refused (4.00)."""
    if not targets.alias_names:
        return targets  # the same object: a held mitigation keeps one Targets, not an equal copy
    resolved = targets
    for alias in targets.alias_names:
        found = directory.resolve(client.name, alias)
        if found is None:
            raise reject("4.00", f"alias-name {alias!r} was not created by this DOTS client")
        resolved = resolved.merged(replace(found, alias_names=()))  # a new Targets: TARGETS is left as it was
    return resolved


def check_call_home_authorized(client: ClientAuthorization, targets: Targets) -> None:
    """RFC 9066 §5.3.1: a Call Home DOTS server checks that every 'source-prefix' is within its own domain (the
    prefixes configured for the Call Home DOTS client that asks); any routable 'target-prefix' is in scope."""
    for prefix in targets.source_prefixes:
        if not client.covers_range(*network_bounds(prefix)):
            raise reject(
                "4.00", f"source-prefix {prefix} is outside the prefixes this Call Home DOTS client may ask about"
            )


def check_authorized(client: ClientAuthorization, targets: Targets) -> None:
    """Refuse (4.00, with the offending target named) anything outside the client's domain."""
    for prefix, (version, first, last) in zip(targets.target_prefixes, targets.prefix_ranges, strict=True):
        if not client.covers_range(version, first, last):
            raise reject("4.00", f"target-prefix {prefix} is outside the prefixes this DOTS client may protect")
    for fqdn in targets.target_fqdns:
        if not client.covers_fqdn(fqdn):
            raise reject("4.00", f"target-fqdn {fqdn} is outside the names this DOTS client may protect")
    for uri in targets.target_uris:
        if uri in client.uris:
            continue
        host = uri_host(uri)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            allowed = client.covers_fqdn(host)
        else:
            allowed = client.covers_prefix(ipaddress.ip_network(address))
        if not allowed:
            raise reject("4.00", f"target-uri {uri} is outside the resources this DOTS client may protect")
