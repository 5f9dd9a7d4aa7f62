"""Session parameters and the clocks derived from them: RFC 9132 §4.5 values (Appendix C defaults), the NON
retransmission schedule (RFC 7252 §4.8 back-off; aiocoap does not retransmit NON) and reconnection back-off (§4.7).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.errors import UsageError
from opendots.signal.client.core.scope import MODULE
from opendots.signal.server.core.robust import RobustTransmission
from opendots.signal.server.core.sessionconfig import PARAMETERS, ParameterSet

INFINITE_MAX_AGE = 0xFFFFFFFF  # RFC 9132 §4.5.3 / §4.6: Max-Age 2^32-1 means "forever"
DEFAULT_CONFIG_REFRESH = 60.0  # RFC 7252 §5.10.5 default Max-Age, used when the server sends none
NO_RTT_MIN_INTERVAL = 3.0  # RFC 9132 §4.4: without an RTT estimate, at most one NON request every 3 s

_DECIMAL_ATTRIBUTES = frozenset(parameter.attribute for parameter in PARAMETERS if parameter.decimal)


class ConfigValueError(UsageError, ValueError):
    """A session configuration value that cannot be sent or was not understood."""


@dataclass(frozen=True)
class SessionParameters(ParameterSet):
    """One configuration set (idle-config or mitigating-config) as the client holds it: the server core's
    ParameterSet (same values, RFC 9132 Appendix C and RFC 9362 defaults), read from and written as YANG containers.

    The RFC 9362 attributes a server reported are held as given; those it did not report (a server without RFC 9362)
    stay None and are derived from the others (`robust()`, RFC 9362 §3)."""

    @classmethod
    def from_yang(cls, container: dict[str, Any], base: SessionParameters | None = None) -> SessionParameters:
        """Current values from an idle-config/mitigating-config container; missing ones keep BASE's values."""
        values: dict[str, Any] = {}
        for parameter in PARAMETERS:
            node = container.get(parameter.member)
            if not isinstance(node, dict):
                continue
            key = parameter.value_key
            if key not in node:
                continue
            try:
                value = Decimal(str(node[key])) if parameter.decimal else int(node[key])
            except (InvalidOperation, TypeError, ValueError):
                raise ConfigValueError(f"{parameter.member}: bad current value {node[key]!r}") from None
            if value < 0 or (isinstance(value, Decimal) and not value.is_finite()):
                raise ConfigValueError(f"{parameter.member}: bad current value {node[key]!r}")
            values[parameter.attribute] = value
        parameters = replace(base or cls(), **values)
        # A server renders a derived non-probing-wait as its current value; held as explicit it would lose the
        # jitter RFC 9362 §3 (Implementation Note 1) asks for. The value we derive ourselves is that derived one.
        if parameters.non_probing_wait is not None:
            derived = replace(parameters, non_probing_wait=None).resolved().non_probing_wait
            if parameters.non_probing_wait == derived:
                parameters = replace(parameters, non_probing_wait=None)
        return parameters

    def to_yang(self, only: set[str] | None = None) -> dict[str, Any]:
        """Current values as a PUT body container (ONLY: attribute names to include; default all that have one)."""
        container: dict[str, Any] = {}
        for parameter in PARAMETERS:
            value = getattr(self, parameter.attribute)
            if (only is not None and parameter.attribute not in only) or value is None:
                continue
            container[parameter.member] = (
                {"current-value-decimal": f"{value:.2f}"} if parameter.decimal else {"current-value": int(value)}
            )
        return container

    def in_force(self) -> dict[str, str]:
        """Every parameter's value in force, derived ones computed, as text keyed by attribute (for displays)."""
        full = self.resolved()
        return {parameter.attribute: str(getattr(full, parameter.attribute)) for parameter in PARAMETERS}

    @classmethod
    def attribute_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class SignalConfig:
    """The session configuration of a DOTS signal channel session: both sets, as the server reported them."""

    idle: SessionParameters = SessionParameters()
    mitigating: SessionParameters = SessionParameters()

    def active(self, mitigating: bool) -> SessionParameters:
        """RFC 9132 §4.5: follow mitigating-config while a mitigation is active, idle-config otherwise."""
        return self.mitigating if mitigating else self.idle

    def robust(self, mitigating: bool) -> RobustTransmission:
        """RFC 9362: the Q-Block parameters in force with the set that applies (the server's values when it
        reported them, else derived from the set's RFC 9132 parameters as RFC 9362 §3 says)."""
        return self.active(mitigating).robust()

    @classmethod
    def from_body(cls, body: dict[str, Any] | None, base: SignalConfig | None = None) -> SignalConfig:
        base = base or cls()
        config = (body or {}).get(f"{MODULE}:signal-config")
        if not isinstance(config, dict):
            raise ConfigValueError("response has no ietf-dots-signal-channel:signal-config member")
        return cls(
            idle=SessionParameters.from_yang(config.get("idle-config", {}), base.idle),
            mitigating=SessionParameters.from_yang(config.get("mitigating-config", {}), base.mitigating),
        )


def config_put_body(idle: dict[str, Any] | None = None, mitigating: dict[str, Any] | None = None) -> dict[str, Any]:
    """A signal-config PUT body from {attribute: value} maps (attributes as in SessionParameters).

    Example: config_put_body(mitigating={"heartbeat_interval": 30, "max_payloads": 20}, idle={"heartbeat_interval": 0}).
    """
    names = set(SessionParameters.attribute_names())
    body: dict[str, Any] = {}
    for yang_set, values in (("mitigating-config", mitigating), ("idle-config", idle)):
        if not values:
            continue
        unknown = set(values) - names
        if unknown:
            raise ConfigValueError(f"unknown session parameter(s) {sorted(unknown)}; known: {sorted(names)}")
        try:
            converted = {
                name: Decimal(str(value)) if name in _DECIMAL_ATTRIBUTES else int(value)
                for name, value in values.items()
            }
        except (InvalidOperation, ValueError):
            raise ConfigValueError(f"bad session parameter value in {values!r}") from None
        body[yang_set] = SessionParameters(**converted).to_yang(only=set(values))
    if not body:
        raise ConfigValueError("a configuration PUT needs at least one parameter (RFC 9132 §4.5.2)")
    return {f"{MODULE}:signal-config": body}


def retransmission_schedule(
    parameters: SessionParameters, rng: random.Random | None = None, *, min_interval: float = 0.0
) -> list[float]:
    """Offsets (seconds after the first send) of every transmission of a NON request, and last: the give-up time.

    RFC 7252 §4.2/§4.8: the first timeout is random in [ack_timeout, ack_timeout * ack_random_factor] and doubles
    after each of max_retransmit retransmissions. MIN_INTERVAL (3 s when no RTT estimate exists, RFC 9132 §4.4)
    floors each gap. For the defaults (2 s, 1.5, 3) transmissions happen at 0, t, 3t, 7t and the request is given
    up at 15t, with t in [2, 3].
    """
    rng = rng or random.Random()
    timeout = float(parameters.ack_timeout) * rng.uniform(1.0, float(parameters.ack_random_factor))
    offsets = [0.0]
    elapsed = 0.0
    for _ in range(parameters.max_retransmit + 1):  # +1: the wait after the last retransmission
        elapsed += max(timeout, min_interval)
        offsets.append(elapsed)
        timeout *= 2
    return offsets


class ReconnectBackoff:
    """Delay before the next attempt to (re)establish a session (RFC 9132 §4.7 note).

    The first attempt after a session loss is immediate; after a failed attempt wait MIN_DELAY, doubling up to
    MAX_DELAY. RFC 9132: SHOULD NOT retry more often than every 300 s, MUST NOT more often than every 60 s —
    the defaults are 60 s doubling to 300 s; labs and tests may pass smaller values.
    """

    def __init__(self, min_delay: float = 60.0, max_delay: float = 300.0, rng: random.Random | None = None) -> None:
        if min_delay <= 0 or max_delay < min_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next attempt, given the failures recorded so far."""
        if self.failures == 0:
            return 0.0
        base = min(self.max_delay, self.min_delay * 2 ** (self.failures - 1))
        # Up to 10 % jitter on top (never below the floor) so a fleet of clients does not reconnect in lockstep.
        return base * (1.0 + 0.1 * self._rng.random())

    def failed(self) -> float:
        self.failures += 1
        return self.next_delay()

    def succeeded(self) -> None:
        self.failures = 0
