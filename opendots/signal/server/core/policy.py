"""What a signal-channel server decides by: its policy (RFC 9132 Appendix C defaults), and operator redirection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from opendots.config import ClientAuthorization
from opendots.domain import IPNetwork, defaults
from opendots.signal.server.core.authorization import AliasDirectory, StaticAliasDirectory
from opendots.signal.server.core.filtering import AclActivationControl
from opendots.signal.server.core.sessionconfig import Limits, SessionConfig
from opendots.signal.server.core.telemetry_config import TelemetryPolicy


@dataclass
class ServerSettings:
    """Server policy. Defaults follow RFC 9132 Appendix C (opendots.domain.defaults)."""

    clients: Sequence[ClientAuthorization]
    max_lifetime: int | None = None
    """Longest lifetime granted, in seconds; None: whatever the client asks."""
    allow_indefinite: bool = True
    """Grant lifetime -1; when False an indefinite request gets max_lifetime (or the default 3600 s)."""
    counters_interval: float = 10.0
    """Seconds between reads of the mitigators' counters; changed counters are notified to observers."""
    active_but_terminating: int = defaults.ACTIVE_BUT_TERMINATING
    max_active_but_terminating: int = defaults.MAX_ACTIVE_BUT_TERMINATING
    session_defaults: SessionConfig = field(default_factory=SessionConfig)
    limits: Limits = field(default_factory=Limits)
    config_max_age: int = 3600
    """Max-Age of GET /config responses (§4.5.3); the RFC leaves the value to deployments."""
    cross_client_conflicts: Literal["reject", "accept"] = "reject"
    """Overlap with another client's active mitigation: refuse with 4.09, or accept with conflict-status 2."""
    indefinite_retry_timer: int = defaults.LIFETIME
    """'retry-timer' when the blocking mitigation has an indefinite lifetime."""
    aliases: AliasDirectory = field(default_factory=StaticAliasDirectory)
    max_mitigations_per_client: int = 1000
    max_cuids_per_client: int = 16
    """Capacity guards: past them new requests get 5.03 (§4.4.1.3 lets a server refuse near capacity)."""
    acl_control: AclActivationControl | None = None
    """The data channel's ACLs, for RFC 9133 'acl-list' in mitigation requests; None: such requests get 4.00."""
    trusted_gateways: frozenset[str] = frozenset()
    """Names of the clients that are server-domain DOTS gateways trusted to supply 'cdid' (§4.4.1: a 'cdid'
    from anyone else is ignored)."""
    telemetry: TelemetryPolicy = field(default_factory=TelemetryPolicy)
    """What RFC 9244 telemetry setups (§7) may ask for."""
    call_home: bool = False
    """An RFC 9066 Call Home DOTS server (a CPE): scopes carry source members, and a client's prefixes are the
    sources it may ask about (authorization.check_call_home_authorized), not the targets it may protect; two
    requests overlap only when their sources do too (scope.sources_overlap)."""
    nat_binding_timeout: float | None = None
    """Call Home: seconds on-path NATs keep an idle binding; the heartbeat-interval is kept within half of it
    (RFC 9066 §5.2.1, opendots.callhome.redirect.nat_adjusted). None: 30 s for a Call Home DOTS server."""
    renewal_slack: float = 0.0
    """Seconds a refresh's renewed expiry may run ahead of the stored one before it is written (write-behind): a
    renewal that is written stores its expiry this much later (a quarter of the lifetime granted at most), and the
    refreshes that follow within the slack store nothing. A server killed meanwhile restores the mitigation at
    most this much longer than granted, never shorter. 0: every renewal is written with its exact expiry. On
    PostgreSQL (a cluster, even of one) or with SQLite workers, the server sets 0: the others read the rows."""
    legitimate_sources: tuple[IPNetwork, ...] = ()
    """Call Home: sources the CPE's administrator has classified as legitimate; a request naming any of them is
    refused with 4.09, conflict-cause request-rejected-legitimate-traffic (RFC 9066 §5.3.1, §7.2)."""


@dataclass(frozen=True)
class Redirection:
    alt_server: str
    records: tuple[str, ...] = ()
    ttl: int = 2**32 - 1
