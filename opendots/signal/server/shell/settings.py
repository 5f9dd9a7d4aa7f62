"""The [signal] table of server.toml → ServerSettings (every key optional; defaults: RFC 9132 Appendix C)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.config import ClientAuthorization, ConfigError
from opendots.signal.server.core import Limits, ParameterSet, ServerSettings
from opendots.signal.server.shell.telemetry_settings import TELEMETRY_KEYS, telemetry_policy

_LIMIT_KEYS = (
    "heartbeat_interval_limits",
    "missing_hb_allowed_limits",
    "probing_rate_limits",
    "max_retransmit_limits",
    "max_payloads_limits",
    "non_max_retransmit_limits",
)
# RFC 9362 attributes in seconds (decimal64 with 2 fraction digits): [min, max] as integers or floats.
_SECONDS_LIMIT_KEYS = (
    "non_timeout_limits",
    "non_receive_timeout_limits",
    "non_probing_wait_limits",
    "non_partial_timeout_limits",
)
RENEWAL_SLACK = 30.0
"""Default of [signal] renewal_slack: a refreshed mitigation's stored expiry is written ahead by this much, so the
refreshes within it store nothing (ServerSettings.renewal_slack)."""
_INTEGER_KEYS = (
    "active_but_terminating",
    "max_active_but_terminating",
    "config_max_age",
    "indefinite_retry_timer",
    "max_mitigations_per_client",
    "max_cuids_per_client",
)


def settings_from_table(clients: Sequence[ClientAuthorization], table: dict[str, Any]) -> ServerSettings:
    """Keys: max_lifetime, allow_indefinite, cross_client_conflicts ("reject"|"accept"), counters_interval
    (seconds between counter reads, each change notified), and the integers
    active_but_terminating, max_active_but_terminating, config_max_age, indefinite_retry_timer,
    max_mitigations_per_client, max_cuids_per_client; gateways (names of the clients that are trusted server-domain
    DOTS gateways: only their 'cdid' Uri-Path is honoured, RFC 9132 §4.4.1); heartbeat_interval_limits,
    missing_hb_allowed_limits, probing_rate_limits, max_retransmit_limits and the RFC 9362 max_payloads_limits,
    non_max_retransmit_limits, non_timeout_limits, non_receive_timeout_limits, non_probing_wait_limits,
    non_partial_timeout_limits ([min, max] a client may configure; seconds for the last four); the RFC 9244
    telemetry setup keys of opendots.signal.server.shell.telemetry_settings; for a Call Home DOTS server (RFC 9066),
    legitimate_sources (prefixes whose traffic its administrator classified as legitimate, §7.2) and
    nat_binding_timeout (seconds; the heartbeat-interval stays within half of it, §5.2.1); renewal_slack (seconds a
    refresh's stored expiry is written ahead, RENEWAL_SLACK by default; 0: every refresh is written exactly)."""
    known = {
        "max_lifetime",
        "allow_indefinite",
        "cross_client_conflicts",
        "counters_interval",
        "gateways",
        "legitimate_sources",
        "nat_binding_timeout",
        "renewal_slack",
        *_INTEGER_KEYS,
        *_LIMIT_KEYS,
        *_SECONDS_LIMIT_KEYS,
        *TELEMETRY_KEYS,
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[signal]: unknown keys {unknown} (known: {sorted(known)})")
    values: dict[str, Any] = {}
    try:
        for key in _INTEGER_KEYS:
            if key in table:
                values[key] = int(table[key])
        if "max_lifetime" in table:
            values["max_lifetime"] = int(table["max_lifetime"]) or None
        if "counters_interval" in table:
            values["counters_interval"] = float(table["counters_interval"])
            if not 0.1 <= values["counters_interval"] <= 3600:
                raise ValueError("counters_interval must be between 0.1 and 3600 seconds")
    except (TypeError, ValueError) as problem:
        raise ConfigError(f"[signal]: {problem}") from None
    slack = table.get("renewal_slack", RENEWAL_SLACK)
    if isinstance(slack, bool) or not isinstance(slack, int | float) or not 0 <= slack <= 3600:
        raise ConfigError(f"[signal] renewal_slack must be seconds from 0 to 3600, not {slack!r}")
    values["renewal_slack"] = float(slack)
    if "allow_indefinite" in table:
        values["allow_indefinite"] = bool(table["allow_indefinite"])
    if "cross_client_conflicts" in table:
        if table["cross_client_conflicts"] not in ("reject", "accept"):
            raise ConfigError('[signal] cross_client_conflicts must be "reject" or "accept"')
        values["cross_client_conflicts"] = table["cross_client_conflicts"]
    if "gateways" in table:
        gateways = table["gateways"]
        names = {client.name for client in clients}
        if not isinstance(gateways, list) or not all(isinstance(name, str) for name in gateways):
            raise ConfigError("[signal] gateways must be a list of client names")
        strangers = sorted(set(gateways) - names)
        if strangers:
            raise ConfigError(f"[signal] gateways names clients that are not configured: {strangers}")
        values["trusted_gateways"] = frozenset(gateways)
    if "nat_binding_timeout" in table:
        timeout = table["nat_binding_timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 2 <= timeout <= 86400:
            raise ConfigError(f"[signal] nat_binding_timeout must be seconds from 2 to 86400, not {timeout!r}")
        values["nat_binding_timeout"] = float(timeout)
    if "legitimate_sources" in table:
        values["legitimate_sources"] = _prefixes(table["legitimate_sources"], "[signal] legitimate_sources")
    policy = telemetry_policy(table)
    if policy is not None:
        values["telemetry"] = policy
    limits = _limits(table)
    if limits is not None:
        values["limits"] = limits
    return ServerSettings(clients=list(clients), **values)


def _limits(table: dict[str, Any]) -> Limits | None:
    """`<parameter>_limits = [min, max]`: the range a client may ask for (RFC 9132 §4.5.2, RFC 9362 §3), e.g.
    heartbeats every second in a lab, or never more often than a minute on a thin link; the server's default must
    stay inside. For an RFC 9362 attribute the default is the value derived from the other defaults."""
    given: dict[str, tuple[Any, Any]] = {}
    # The derived defaults as the server would compute them without any range to hold them in.
    default_values = ParameterSet().resolved()
    for key in (*_LIMIT_KEYS, *_SECONDS_LIMIT_KEYS):
        if key not in table:
            continue
        value = table[key]
        bounds = _seconds_bounds(value) if key in _SECONDS_LIMIT_KEYS else _integer_bounds(value)
        if bounds is None or not 0 < bounds[0] <= bounds[1]:
            raise ConfigError(f"[signal] {key} must be [min, max] with 0 < min <= max, not {value!r}")
        attribute = key.removesuffix("_limits")
        default = getattr(default_values, attribute)
        if not bounds[0] <= default <= bounds[1]:
            raise ConfigError(f"[signal] {key} {value} leaves out the default {attribute} {default}")
        given[attribute] = bounds
    return replace(Limits(), **given) if given else None


def _integer_bounds(value: Any) -> tuple[int, int] | None:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(bound, int) and not isinstance(bound, bool) for bound in value)
        or not all(bound <= 65535 for bound in value)
    ):
        return None
    return value[0], value[1]


def _seconds_bounds(value: Any) -> tuple[Decimal, Decimal] | None:
    """[min, max] in seconds: numbers with at most 2 fraction digits (the attributes' decimal64 type)."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    bounds: list[Decimal] = []
    for bound in value:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            return None
        try:
            number = Decimal(str(bound))
        except InvalidOperation:
            return None
        if not number.is_finite() or number != number.quantize(Decimal("0.01")) or number > 10**6:
            return None
        bounds.append(number.quantize(Decimal("0.01")))
    return bounds[0], bounds[1]


def _prefixes(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise ConfigError(f"{where} must be a list of prefixes")
    try:
        return tuple(ipaddress.ip_network(text) for text in value)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
