"""The RFC 9244 telemetry setup keys of server.toml's [signal] table → TelemetryPolicy (every key optional).

telemetry_interval_limits = ["5-minutes", "day"]     # [min, max] measurement-interval
telemetry_sample_limits = ["second", "hour"]         # [min, max] measurement-sample
telemetry_percentile_limits = [1.0, 99.99]           # [min, max] of an enabled low/mid/high percentile
telemetry_notify_interval_limits = [1, 3600]         # [min, max] telemetry-notify-interval, seconds
telemetry_unit_classes = ["packet-ps", "bit-ps", "byte-ps"]
telemetry_server_originated = false                  # true: clients may ask for it (§8.3, §9.2)
max_telemetry_setups_per_client = 64
max_telemetry_reports_per_client = 64                # pre-or-ongoing-mitigation telemetry (tmids, §8.2); then 5.03
max_telemetry_top_talkers = 256                      # top talkers in one report or mitigation request; more: 4.22
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.config import ConfigError
from opendots.signal.server.core.telemetry_config import INTERVALS, SAMPLES, UNIT_CLASSES, TelemetryPolicy

TELEMETRY_KEYS = (
    "telemetry_interval_limits",
    "telemetry_sample_limits",
    "telemetry_percentile_limits",
    "telemetry_notify_interval_limits",
    "telemetry_unit_classes",
    "telemetry_server_originated",
    "max_telemetry_setups_per_client",
    "max_telemetry_reports_per_client",
    "max_telemetry_top_talkers",
)


def telemetry_policy(table: dict[str, Any]) -> TelemetryPolicy | None:
    """The policy the telemetry_* keys of TABLE describe; None when none is given (the defaults)."""
    if not any(key in table for key in TELEMETRY_KEYS):
        return None
    values: dict[str, Any] = {}
    for key, attribute, names in (
        ("telemetry_interval_limits", "interval", INTERVALS),
        ("telemetry_sample_limits", "sample", SAMPLES),
    ):
        if key in table:
            bounds = table[key]
            if (
                not isinstance(bounds, list)
                or len(bounds) != 2
                or not all(b in names for b in bounds)
                or names[bounds[0]] > names[bounds[1]]
            ):
                raise ConfigError(f"[signal] {key} must be [min, max] of {list(names)}, not {bounds!r}")
            values[attribute] = (bounds[0], bounds[1])
    if "telemetry_percentile_limits" in table:
        bounds = table["telemetry_percentile_limits"]
        try:
            low, high = (Decimal(str(b)).quantize(Decimal("0.01")) for b in bounds)
        except (TypeError, ValueError, InvalidOperation):
            low, high = Decimal(1), Decimal(0)
        if not Decimal(0) < low <= high <= Decimal(100) or isinstance(bounds[0], bool):
            raise ConfigError(f"[signal] telemetry_percentile_limits must be [min, max] in (0, 100], not {bounds!r}")
        values["percentiles"] = (low, high)
    if "telemetry_notify_interval_limits" in table:
        bounds = table["telemetry_notify_interval_limits"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            or not 1 <= bounds[0] <= bounds[1] <= 3600
        ):
            raise ConfigError(
                f"[signal] telemetry_notify_interval_limits must be [min, max] in 1..3600, not {bounds!r}"
            )
        values["notify_interval"] = (bounds[0], bounds[1])
    if "telemetry_unit_classes" in table:
        classes = table["telemetry_unit_classes"]
        if not isinstance(classes, list) or not classes or not all(c in UNIT_CLASSES for c in classes):
            raise ConfigError(f"[signal] telemetry_unit_classes must be a non-empty list of {list(UNIT_CLASSES)}")
        values["unit_classes"] = tuple(dict.fromkeys(classes))
    if "telemetry_server_originated" in table:
        if not isinstance(table["telemetry_server_originated"], bool):
            raise ConfigError("[signal] telemetry_server_originated must be true or false")
        values["server_originated"] = table["telemetry_server_originated"]
    for key, attribute in (
        ("max_telemetry_setups_per_client", "max_setups_per_client"),
        ("max_telemetry_reports_per_client", "max_reports_per_client"),
        ("max_telemetry_top_talkers", "max_top_talkers"),
    ):
        if key in table:
            count = table[key]
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ConfigError(f"[signal] {key} must be a positive integer")
            values[attribute] = count
    return replace(TelemetryPolicy(), **values)
