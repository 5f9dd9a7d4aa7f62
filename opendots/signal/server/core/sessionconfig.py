"""Signal channel session configuration (RFC 9132 §4.5, RFC 9362 §3): limits, current values, PUT parsing, GET body."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from opendots.domain import defaults
from opendots.signal.server.core.messages import SIGNAL_CONFIG, reject
from opendots.signal.server.core.robust import RobustTransmission

INTEGER_PARAMETERS = ("heartbeat-interval", "missing-hb-allowed", "probing-rate", "max-retransmit")
DECIMAL_PARAMETERS = ("ack-timeout", "ack-random-factor")
ROBUST_MODULE = "ietf-dots-robust-trans"
# RFC 9362 attributes, written "ietf-dots-robust-trans:<name>" in bodies (their module augments the sets).
ROBUST_INTEGER_PARAMETERS = ("max-payloads", "non-max-retransmit")
ROBUST_DECIMAL_PARAMETERS = ("non-timeout", "non-receive-timeout", "non-probing-wait", "non-partial-timeout")
SETS = ("mitigating-config", "idle-config")
_CENT = Decimal("0.01")
_MAX_DOUBLINGS = 40  # 2^40 x 2 s is 70,000 years already
_DECIMAL64_MAX = Decimal("92233720368547758.07")  # decimal64 with 2 fraction digits (RFC 7950 §9.3.4)


@dataclass(frozen=True)
class Parameter:
    """One session parameter: its YANG name, the member that carries it in a body, its Python attribute."""

    name: str
    decimal: bool
    robust: bool = False

    @property
    def member(self) -> str:
        return f"{ROBUST_MODULE}:{self.name}" if self.robust else self.name

    @property
    def attribute(self) -> str:
        return _attribute(self.name)

    @property
    def value_key(self) -> str:
        return "current-value-decimal" if self.decimal else "current-value"


PARAMETERS = (
    *(Parameter(name, False) for name in INTEGER_PARAMETERS),
    *(Parameter(name, True) for name in DECIMAL_PARAMETERS),
    *(Parameter(name, False, robust=True) for name in ROBUST_INTEGER_PARAMETERS),
    *(Parameter(name, True, robust=True) for name in ROBUST_DECIMAL_PARAMETERS),
)
"""Every parameter, in the order GET renders them (RFC 9132's first, then RFC 9362's)."""
_BY_MEMBER = {parameter.member: parameter for parameter in PARAMETERS}


def _attribute(parameter: str) -> str:
    return parameter.replace("-", "_")


@dataclass(frozen=True)
class ParameterSet:
    """Current values of one configuration set ('mitigating-config' or 'idle-config').

    A robust-transmission attribute left None was not set explicitly: it follows the other parameters
    (RFC 9362 §3, Implementation Note 2); `resolved()` fills it in, `robust()` gives the Q-Block values."""

    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL
    missing_hb_allowed: int = defaults.MISSING_HB_ALLOWED
    probing_rate: int = defaults.PROBING_RATE
    max_retransmit: int = defaults.MAX_RETRANSMIT
    ack_timeout: Decimal = defaults.ACK_TIMEOUT
    ack_random_factor: Decimal = defaults.ACK_RANDOM_FACTOR
    max_payloads: int = defaults.MAX_PAYLOADS
    non_max_retransmit: int | None = None
    non_timeout: Decimal | None = None
    non_receive_timeout: Decimal | None = None
    non_probing_wait: Decimal | None = None
    non_partial_timeout: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """For the store: explicit values only (a derived one is recomputed when read back)."""
        values = ((parameter.name, getattr(self, parameter.attribute)) for parameter in PARAMETERS)
        return {name: _to_json(value) for name, value in values if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParameterSet:
        # Records written before RFC 9362 support lack the robust attributes: they keep their defaults.
        values = {
            parameter.attribute: Decimal(data[parameter.name]) if parameter.decimal else int(data[parameter.name])
            for parameter in PARAMETERS
            if data.get(parameter.name) is not None
        }
        return cls(**values)

    def resolved(self, limits: Limits | None = None) -> ParameterSet:
        """Every attribute with a value: the derived ones computed as RFC 9177 §7.2 and RFC 9362 §3 say, and held
        inside LIMITS when given (a server's range bounds what it derives, e.g. how long a partial body is kept)."""

        def fit(attribute: str, value: Decimal) -> Decimal:
            if limits is None:
                return value
            low, high = getattr(limits, attribute)
            return min(max(value, low), high)

        non_max_retransmit = self.non_max_retransmit
        if non_max_retransmit is None:
            non_max_retransmit = int(fit("non_max_retransmit", Decimal(self.max_retransmit)))
        non_timeout = self.non_timeout if self.non_timeout is not None else fit("non_timeout", self.ack_timeout)
        non_receive_timeout = self.non_receive_timeout
        if non_receive_timeout is None:
            # Twice non-timeout, but never less than RFC 9177 §7.2's MUST (see receive_floor).
            non_receive_timeout = max(fit("non_receive_timeout", 2 * non_timeout), receive_floor(self, non_timeout))
        # EXCHANGE_LIFETIME's formula with the NON parameters (the base value, without NON_TIMEOUT_RANDOM's jitter).
        # Bounded so that peer-sent extremes (a uint16 exponent) stay cheap and inside decimal64.
        doubling = 2 ** min(non_max_retransmit, _MAX_DOUBLINGS) - 1
        span = _seconds(non_timeout * doubling * self.ack_random_factor + 2 * defaults.MAX_LATENCY + non_timeout)
        probing_wait, partial_timeout = self.non_probing_wait, self.non_partial_timeout
        return replace(
            self,
            non_max_retransmit=non_max_retransmit,
            non_timeout=non_timeout,
            non_receive_timeout=non_receive_timeout,
            non_probing_wait=probing_wait if probing_wait is not None else fit("non_probing_wait", span),
            non_partial_timeout=partial_timeout if partial_timeout is not None else fit("non_partial_timeout", span),
        )

    def robust(self, limits: Limits | None = None) -> RobustTransmission:
        """The Q-Block parameters in force with this set (RFC 9362 §3)."""
        full = self.resolved(limits)
        return RobustTransmission(
            max_payloads=full.max_payloads,
            non_max_retransmit=int(full.non_max_retransmit or 0),
            non_timeout=float(full.non_timeout or 0),
            non_receive_timeout=float(full.non_receive_timeout or 0),
            non_probing_wait=float(full.non_probing_wait or 0),
            non_partial_timeout=float(full.non_partial_timeout or 0),
            ack_random_factor=float(full.ack_random_factor),
            probing_rate=full.probing_rate,
            explicit_probing_wait=self.non_probing_wait is not None,
        )


def receive_floor(parameters: ParameterSet, non_timeout: Decimal) -> Decimal:
    """RFC 9177 §7.2: NON_RECEIVE_TIMEOUT MUST exceed NON_TIMEOUT_RANDOM (at most non-timeout x ack-random-factor)
    by at least one second."""
    return _seconds(non_timeout * parameters.ack_random_factor + 1, ROUND_CEILING)


def _seconds(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """VALUE as a decimal64 with 2 fraction digits, the largest one for anything bigger."""
    return min(value, _DECIMAL64_MAX).quantize(_CENT, rounding=rounding)


def _to_json(value: int | Decimal) -> int | str:
    return f"{value:.2f}" if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class Limits:
    """Acceptable [minimum, maximum] of each parameter; a heartbeat-interval of 0 (disabled) is always accepted."""

    heartbeat_interval: tuple[int, int] = (defaults.MIN_HEARTBEAT_INTERVAL, defaults.MAX_HEARTBEAT_INTERVAL)
    missing_hb_allowed: tuple[int, int] = (defaults.MIN_MISSING_HB_ALLOWED, defaults.MAX_MISSING_HB_ALLOWED)
    probing_rate: tuple[int, int] = (defaults.MIN_PROBING_RATE, defaults.MAX_PROBING_RATE)
    max_retransmit: tuple[int, int] = (defaults.MIN_MAX_RETRANSMIT, defaults.MAX_MAX_RETRANSMIT)
    ack_timeout: tuple[Decimal, Decimal] = (defaults.MIN_ACK_TIMEOUT, defaults.MAX_ACK_TIMEOUT)
    ack_random_factor: tuple[Decimal, Decimal] = (defaults.MIN_ACK_RANDOM_FACTOR, defaults.MAX_ACK_RANDOM_FACTOR)
    max_payloads: tuple[int, int] = (defaults.MIN_MAX_PAYLOADS, defaults.MAX_MAX_PAYLOADS)
    non_max_retransmit: tuple[int, int] = (defaults.MIN_NON_MAX_RETRANSMIT, defaults.MAX_NON_MAX_RETRANSMIT)
    non_timeout: tuple[Decimal, Decimal] = (defaults.MIN_NON_TIMEOUT, defaults.MAX_NON_TIMEOUT)
    non_receive_timeout: tuple[Decimal, Decimal] = (defaults.MIN_NON_RECEIVE_TIMEOUT, defaults.MAX_NON_RECEIVE_TIMEOUT)
    non_probing_wait: tuple[Decimal, Decimal] = (defaults.MIN_NON_PROBING_WAIT, defaults.MAX_NON_PROBING_WAIT)
    non_partial_timeout: tuple[Decimal, Decimal] = (defaults.MIN_NON_PARTIAL_TIMEOUT, defaults.MAX_NON_PARTIAL_TIMEOUT)

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
    """Validate a PUT /config body (RFC 9132 Figures 22/23, RFC 9362 Figure 2) and return BASE overridden by its
    current values.

    Malformed or unknown members: 4.00. Values outside LIMITS, or breaking an RFC 9362/9177 rule: 4.22 (§4.5.2).
    """
    if not isinstance(body, dict) or set(body) != {SIGNAL_CONFIG}:
        raise reject("4.00", f"the body must hold exactly one '{SIGNAL_CONFIG}' member")
    container = body[SIGNAL_CONFIG]
    if not isinstance(container, dict) or not container or not set(container) <= set(SETS):
        raise reject("4.00", "'signal-config' holds 'mitigating-config' and/or 'idle-config' only")
    result = {"mitigating-config": base.mitigating, "idle-config": base.idle}
    present = 0
    out_of_range: list[str] = []
    max_payloads: dict[str, int] = {}
    for set_name, members in container.items():
        if not isinstance(members, dict) or not set(members) <= set(_BY_MEMBER):
            raise reject("4.00", f"'{set_name}' holds unknown parameters")
        changes: dict[str, int | Decimal] = {}
        for member, holder in members.items():
            parameter = _BY_MEMBER[member]
            value = _current_value(set_name, parameter, holder)
            present += 1
            if not limits.accepts(parameter.name, value):
                out_of_range.append(f"{set_name}/{member}={_to_json(value)}")
            changes[parameter.attribute] = value
        if "max_payloads" in changes:
            max_payloads[set_name] = int(changes["max_payloads"])
        result[set_name] = replace(result[set_name], **changes)
    if not present:
        raise reject("4.00", "at least one configuration parameter must be present")
    if out_of_range:
        raise reject("4.22", "values outside the acceptable range (GET /config for limits): " + ", ".join(out_of_range))
    _one_max_payloads(result, max_payloads)
    for set_name, parameters in result.items():
        _check_receive_timeout(set_name, parameters, limits)
    return SessionConfig(mitigating=result["mitigating-config"], idle=result["idle-config"], sid=sid)


def _one_max_payloads(result: dict[str, ParameterSet], given: dict[str, int]) -> None:
    """RFC 9362 §3: max-payloads conveyed in both sets MUST be equal; conveyed in one, it applies to the other too
    (both CoAP endpoints need the same value, RFC 9177 §7.2)."""
    member = f"{ROBUST_MODULE}:max-payloads"
    if len(set(given.values())) > 1:
        values = ", ".join(f"{set_name}/{member}={value}" for set_name, value in given.items())
        raise reject("4.22", f"'{member}' must be the same in both sets (RFC 9362 §3): {values}")
    if given:
        value = next(iter(given.values()))
        for set_name in result:
            result[set_name] = replace(result[set_name], max_payloads=value)


def _check_receive_timeout(set_name: str, parameters: ParameterSet, limits: Limits) -> None:
    if parameters.non_receive_timeout is None:
        return  # derived values respect the floor by construction
    non_timeout = parameters.resolved(limits).non_timeout
    assert non_timeout is not None
    floor = receive_floor(parameters, non_timeout)
    if parameters.non_receive_timeout < floor:
        raise reject(
            "4.22",
            f"{set_name}/{ROBUST_MODULE}:non-receive-timeout={_to_json(parameters.non_receive_timeout)} must be at "
            f"least non-timeout x ack-random-factor + 1 s = {_to_json(floor)} (RFC 9177 §7.2)",
        )


def _current_value(set_name: str, parameter: Parameter, holder: Any) -> int | Decimal:
    key = parameter.value_key
    where = f"{set_name}/{parameter.member}"
    if not isinstance(holder, dict) or set(holder) != {key}:
        raise reject("4.00", f"'{where}' must hold only '{key}' (min/max are sent by servers only)")
    value = holder[key]
    if parameter.decimal:
        return _decimal(where, value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise reject("4.00", f"'{where}' must be an unsigned 16-bit integer")
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
    if not number.is_finite() or number != number.quantize(_CENT) or number < 0:
        raise reject("4.00", f"'{name}' must be a non-negative decimal with at most 2 fraction digits")
    return number.quantize(_CENT)


def render_config(config: SessionConfig, limits: Limits) -> dict[str, Any]:
    """GET /config body (RFC 9132 Figures 19/20, RFC 9362 Figure 1): min, max and current value of every parameter
    in both sets; a robust-transmission attribute nobody set shows the value derived for it."""

    def parameter_set(values: ParameterSet) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        values = values.resolved(limits)
        for parameter in PARAMETERS:
            low, high = getattr(limits, parameter.attribute)
            suffix = "-decimal" if parameter.decimal else ""
            rendered[parameter.member] = {
                f"max-value{suffix}": _to_json(high),
                f"min-value{suffix}": _to_json(low),
                f"current-value{suffix}": _to_json(getattr(values, parameter.attribute)),
            }
        return rendered

    return {
        SIGNAL_CONFIG: {
            "mitigating-config": parameter_set(config.mitigating),
            "idle-config": parameter_set(config.idle),
        }
    }
