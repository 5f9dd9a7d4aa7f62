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
from opendots.signal.server.core.sessionconfig import DECIMAL_PARAMETERS, INTEGER_PARAMETERS, ParameterSet

INFINITE_MAX_AGE = 0xFFFFFFFF  # RFC 9132 §4.5.3 / §4.6: Max-Age 2^32-1 means "forever"
DEFAULT_CONFIG_REFRESH = 60.0  # RFC 7252 §5.10.5 default Max-Age, used when the server sends none
NO_RTT_MIN_INTERVAL = 3.0  # RFC 9132 §4.4: without an RTT estimate, at most one NON request every 3 s

# (YANG container name, attribute, is decimal64), in the server's order
_PARAMETERS = tuple(
    (name, name.replace("-", "_"), name in DECIMAL_PARAMETERS) for name in INTEGER_PARAMETERS + DECIMAL_PARAMETERS
)


class ConfigValueError(UsageError, ValueError):
    """A session configuration value that cannot be sent or was not understood."""


@dataclass(frozen=True)
class SessionParameters(ParameterSet):
    """One configuration set (idle-config or mitigating-config) as the client holds it: the server core's
    ParameterSet (same values, RFC 9132 Appendix C defaults), read from and written as YANG containers."""

    @classmethod
    def from_yang(cls, container: dict[str, Any], base: SessionParameters | None = None) -> SessionParameters:
        """Current values from an idle-config/mitigating-config container; missing ones keep BASE's values."""
        values: dict[str, Any] = {}
        for yang_name, attribute, is_decimal in _PARAMETERS:
            node = container.get(yang_name)
            if not isinstance(node, dict):
                continue
            key = "current-value-decimal" if is_decimal else "current-value"
            if key not in node:
                continue
            try:
                values[attribute] = Decimal(str(node[key])) if is_decimal else int(node[key])
            except (InvalidOperation, TypeError, ValueError):
                raise ConfigValueError(f"{yang_name}: bad current value {node[key]!r}") from None
        return replace(base or cls(), **values)

    def to_yang(self, only: set[str] | None = None) -> dict[str, Any]:
        """Current values as a PUT body container (ONLY: attribute names to include; default all)."""
        container: dict[str, Any] = {}
        for yang_name, attribute, is_decimal in _PARAMETERS:
            if only is not None and attribute not in only:
                continue
            value = getattr(self, attribute)
            container[yang_name] = (
                {"current-value-decimal": f"{value:.2f}"} if is_decimal else {"current-value": int(value)}
            )
        return container

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

    Example: config_put_body(mitigating={"heartbeat_interval": 30}, idle={"heartbeat_interval": 0}).
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
                name: Decimal(str(value)) if name in ("ack_timeout", "ack_random_factor") else int(value)
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
