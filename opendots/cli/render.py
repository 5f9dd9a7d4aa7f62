"""What every `opendots` verb prints for people: one table renderer, and values with their units (a duration
says whether it counts seconds or minutes, a protocol number prints as its name)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(column) for column in columns) for columns in zip(*cells, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def seconds(value: Any) -> str:
    """A lifetime or interval in seconds (RFC 9132 lifetimes: -1 is indefinite)."""
    if value is None or value == "-":
        return "-"
    if value == -1:
        return "indefinite"
    return f"{value} s"


def minutes(value: Any) -> str:
    """An RFC 8783 pending-lifetime: whole minutes (its YANG `units "minutes"`)."""
    return "-" if value is None else f"{value} min"


def protocol_name(number: Any) -> str:
    from opendots.signal.client.core.scope import PROTOCOL_NUMBERS

    names = {value: name for name, value in PROTOCOL_NUMBERS.items()}  # the last name wins: 58 is icmpv6
    return names.get(number, str(number))


def protocols(numbers: Iterable[Any]) -> str:
    return ",".join(protocol_name(number) for number in numbers) or "any"


def port_ranges(ranges: Iterable[Mapping[str, Any]]) -> str:
    """RFC 9132 / RFC 8783 target-port-range entries as 53,8000-8080 ('any' when there are none)."""
    return (
        ",".join(
            str(entry["lower-port"]) + (f"-{entry['upper-port']}" if "upper-port" in entry else "") for entry in ranges
        )
        or "any"
    )


# Units of the RFC 9132 and RFC 9362 session parameters (their YANG `units`); the others are counts or factors.
PARAMETER_UNITS = {
    "heartbeat-interval": "s",
    "probing-rate": "bytes/s",
    "ack-timeout": "s",
    "non-timeout": "s",
    "non-receive-timeout": "s",
    "non-probing-wait": "s",
    "non-partial-timeout": "s",
}


def parameter(name: str, value: Any) -> str:
    """A session parameter's value with its unit; NAME in YANG (heartbeat-interval) or Python spelling."""
    unit = PARAMETER_UNITS.get(name.replace("_", "-"))
    return f"{value} {unit}" if unit and value not in (None, "-") else str(value)


def rate(value: Any, unit: str) -> str:
    """An RFC 9244 gauge with its unit as operators write it: '500 Mbps', '25000 pps' (the YANG name otherwise)."""
    from opendots.signal.client.core.telemetry_bodies import UNIT_SYMBOLS

    return f"{value} {UNIT_SYMBOLS.get(unit, unit)}"


def current_and_peak(entries: Iterable[Mapping[str, Any]]) -> str:
    """A server's traffic list (RFC 9244 §9.2) in a status row: '2000 pps (peak 5000 pps), 1600000 bps (...)'."""
    words = []
    for entry in entries:
        unit = entry.get("unit", "")
        word = rate(entry["current-g"], unit) if "current-g" in entry else "-"
        if "peak-g" in entry:
            word += f" (peak {rate(entry['peak-g'], unit)})"
        words.append(word)
    return ", ".join(words) or "-"


def rates(entries: Iterable[Mapping[str, Any]]) -> str:
    """A traffic list (one entry per unit): every gauge it carries, e.g. '300 Mbps (mid), 900 Mbps (peak)'."""
    names = {"current-g": "", "low-percentile-g": " (low)", "mid-percentile-g": " (mid)"}
    names |= {"high-percentile-g": " (high)", "peak-g": " (peak)"}
    words = [
        rate(entry[leaf], entry.get("unit", "")) + suffix
        for entry in entries
        for leaf, suffix in names.items()
        if leaf in entry
    ]
    return ", ".join(words) or "-"
