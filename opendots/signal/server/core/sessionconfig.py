"""Signal channel session configuration (RFC 9132 §4.5): limits, current values, PUT parsing, GET body."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.signal.server.core import defaults
from opendots.signal.server.core.messages import SIGNAL_CONFIG, reject

INTEGER_PARAMETERS = ("heartbeat-interval", "missing-hb-allowed", "probing-rate", "max-retransmit")
DECIMAL_PARAMETERS = ("ack-timeout", "ack-random-factor")
SETS = ("mitigating-config", "idle-config")


def _attribute(parameter: str) -> str:
    return parameter.replace("-", "_")


@dataclass(frozen=True)
class ParameterSet:
    """Current values of one configuration set ('mitigating-config' or 'idle-config')."""

    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL
    missing_hb_allowed: int = defaults.MISSING_HB_ALLOWED
    probing_rate: int = defaults.PROBING_RATE
    max_retransmit: int = defaults.MAX_RETRANSMIT
    ack_timeout: Decimal = defaults.ACK_TIMEOUT
    ack_random_factor: Decimal = defaults.ACK_RANDOM_FACTOR

    def to_json(self) -> dict[str, Any]:
        return {name: _to_json(getattr(self, f.name)) for name, f in zip(_NAMES, fields(self), strict=True)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParameterSet:
        values = {f.name: _from_json(data[name], f.type) for name, f in zip(_NAMES, fields(cls), strict=True)}
        return cls(**values)


_NAMES = INTEGER_PARAMETERS + DECIMAL_PARAMETERS


def _to_json(value: int | Decimal) -> int | str:
    return f"{value:.2f}" if isinstance(value, Decimal) else value


def _from_json(value: Any, kind: Any) -> int | Decimal:
    return Decimal(value) if kind in ("Decimal", Decimal) else int(value)


@dataclass(frozen=True)
class Limits:
    """Acceptable [minimum, maximum] of each parameter; a heartbeat-interval of 0 (disabled) is always accepted."""

    heartbeat_interval: tuple[int, int] = (defaults.MIN_HEARTBEAT_INTERVAL, defaults.MAX_HEARTBEAT_INTERVAL)
    missing_hb_allowed: tuple[int, int] = (defaults.MIN_MISSING_HB_ALLOWED, defaults.MAX_MISSING_HB_ALLOWED)
    probing_rate: tuple[int, int] = (defaults.MIN_PROBING_RATE, defaults.MAX_PROBING_RATE)
    max_retransmit: tuple[int, int] = (defaults.MIN_MAX_RETRANSMIT, defaults.MAX_MAX_RETRANSMIT)
    ack_timeout: tuple[Decimal, Decimal] = (defaults.MIN_ACK_TIMEOUT, defaults.MAX_ACK_TIMEOUT)
    ack_random_factor: tuple[Decimal, Decimal] = (defaults.MIN_ACK_RANDOM_FACTOR, defaults.MAX_ACK_RANDOM_FACTOR)

    def accepts(self, parameter: str, value: int | Decimal) -> bool:
        if parameter == "heartbeat-interval" and value == 0:
            return True
        low, high = getattr(self, _attribute(parameter))
        return low <= value <= high


@dataclass(frozen=True)
class SessionConfig:
    """The configuration in force for one client's session."""

    mitigating: ParameterSet = ParameterSet()
    idle: ParameterSet = ParameterSet()
    sid: int | None = None
    """The 'sid' of the PUT that installed it; None: the server defaults."""

    def for_activity(self, mitigating: bool) -> ParameterSet:
        return self.mitigating if mitigating else self.idle

    def to_json(self) -> dict[str, Any]:
        return {"sid": self.sid, "mitigating-config": self.mitigating.to_json(), "idle-config": self.idle.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionConfig:
        return cls(
            mitigating=ParameterSet.from_json(data["mitigating-config"]),
            idle=ParameterSet.from_json(data["idle-config"]),
            sid=data.get("sid"),
        )


def parse_config_body(body: Any, base: SessionConfig, limits: Limits, sid: int) -> SessionConfig:
    """Validate a PUT /config body (Figures 22/23) and return BASE overridden by its current values.

    Malformed or unknown members: 4.00. Values outside LIMITS: 4.22 (§4.5.2).
    """
    if not isinstance(body, dict) or set(body) != {SIGNAL_CONFIG}:
        raise reject("4.00", f"the body must hold exactly one '{SIGNAL_CONFIG}' member")
    container = body[SIGNAL_CONFIG]
    if not isinstance(container, dict) or not container or not set(container) <= set(SETS):
        raise reject("4.00", "'signal-config' holds 'mitigating-config' and/or 'idle-config' only")
    result = {"mitigating-config": base.mitigating, "idle-config": base.idle}
    present = 0
    out_of_range: list[str] = []
    for set_name, parameters in container.items():
        if not isinstance(parameters, dict) or not set(parameters) <= set(_NAMES):
            raise reject("4.00", f"'{set_name}' holds unknown parameters")
        changes: dict[str, int | Decimal] = {}
        for parameter, holder in parameters.items():
            value = _current_value(set_name, parameter, holder)
            present += 1
            if not limits.accepts(parameter, value):
                out_of_range.append(f"{set_name}/{parameter}={_to_json(value)}")
            changes[_attribute(parameter)] = value
        result[set_name] = replace(result[set_name], **changes)
    if not present:
        raise reject("4.00", "at least one configuration parameter must be present")
    if out_of_range:
        raise reject("4.22", "values outside the acceptable range (GET /config for limits): " + ", ".join(out_of_range))
    return SessionConfig(mitigating=result["mitigating-config"], idle=result["idle-config"], sid=sid)


def _current_value(set_name: str, parameter: str, holder: Any) -> int | Decimal:
    decimal = parameter in DECIMAL_PARAMETERS
    key = "current-value-decimal" if decimal else "current-value"
    if not isinstance(holder, dict) or set(holder) != {key}:
        raise reject("4.00", f"'{set_name}/{parameter}' must hold only '{key}' (min/max are sent by servers only)")
    value = holder[key]
    if decimal:
        return _decimal(f"{set_name}/{parameter}", value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise reject("4.00", f"'{set_name}/{parameter}' must be an unsigned 16-bit integer")
    return value


def _decimal(name: str, value: Any) -> Decimal:
    # decimal64 with 2 fraction digits: a string in YANG-JSON (RFC 7951 §6.1).
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise reject("4.00", f"'{name}' is not a decimal number: {value!r}") from None
    else:
        raise reject("4.00", f"'{name}' must be a decimal64 string such as \"2.00\"")
    if not number.is_finite() or number != number.quantize(Decimal("0.01")) or number < 0:
        raise reject("4.00", f"'{name}' must be a non-negative decimal with at most 2 fraction digits")
    return number.quantize(Decimal("0.01"))


def render_config(config: SessionConfig, limits: Limits) -> dict[str, Any]:
    """GET /config body (Figure 19/20): min, max and current value of every parameter in both sets."""

    def parameter_set(values: ParameterSet) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        for name in _NAMES:
            low, high = getattr(limits, _attribute(name))
            current = getattr(values, _attribute(name))
            suffix = "-decimal" if name in DECIMAL_PARAMETERS else ""
            rendered[name] = {
                f"max-value{suffix}": _to_json(high),
                f"min-value{suffix}": _to_json(low),
                f"current-value{suffix}": _to_json(current),
            }
        return rendered

    return {
        SIGNAL_CONFIG: {
            "mitigating-config": parameter_set(config.mitigating),
            "idle-config": parameter_set(config.idle),
        }
    }
